package inference

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// bodyDrainTimeout bounds how long an answer waits for the rest of a request
// body it does not need (drainingWriter): long enough for a client on a slow
// link to finish sending a few megabytes, short enough that a client that
// never finishes holds its connection only briefly.
const bodyDrainTimeout = 15 * time.Second

// drainFloor is the least drainingWriter reads, so a small MaxBodyBytes
// still lets a body a little over it be discarded cleanly.
const drainFloor = 1 << 20

// drainLimit is the most drainingWriter discards of a request body: twice
// the size limit, so a body modestly over the limit still sees its 413;
// past that the connection closes.
func drainLimit(maxBody int64) int64 {
	return max(2*maxBody, drainFloor)
}

// trackedBody records whether a request body was read to its end.
type trackedBody struct {
	io.ReadCloser
	eof bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// drainingWriter reads and discards what is left of the request body just
// before the answer's header is written.
//
// Why: an answer given before the body is read (401 wrong token, 415 wrong
// Content-Type, 429 overloaded, 413 too large, a 400 found in the first
// bytes) would otherwise end with net/http discarding at most 256 KiB of the
// body and closing the connection with the rest unread. The kernel then
// resets the connection while the client is still sending, and clients that
// send the whole body before reading (Python's urllib and http.client, the
// generated client, curl without Expect) see ECONNRESET, a broken pipe or a
// TLS EOF instead of the status. Reading the rest first (at most drainLimit
// bytes, within bodyDrainTimeout) lets every client read the answer, and the
// connection stays reusable. A client that sent "Expect: 100-continue" has
// not sent its body: it gets the answer at once (net/http then closes the
// connection, and such a client stops sending). HTTP/2 bodies are drained
// too: a stream answered with its body unread ends in RST_STREAM, which
// net/http's server may write before the answer's last DATA frame, so curl
// saw "transfer closed with 77 bytes remaining" on some 413s.
type drainingWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	body    *trackedBody
	limit   int64
	log     *slog.Logger
	drained bool
	// http1: only an HTTP/1 connection is closed for a body left unread;
	// on HTTP/2 "Connection: close" would end every stream of the connection.
	http1 bool
}

// newDrainingWriter wraps w for r (whose Body it replaces); requests without
// a body to drain get w back unchanged.
func newDrainingWriter(w http.ResponseWriter, r *http.Request, maxBody int64, log *slog.Logger) http.ResponseWriter {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody ||
		strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return w
	}
	body := &trackedBody{ReadCloser: r.Body}
	r.Body = body
	return &drainingWriter{ResponseWriter: w, rc: http.NewResponseController(w), body: body, limit: drainLimit(maxBody), log: log, http1: r.ProtoMajor == 1}
}

// drain discards the unread rest of the body, once.
func (d *drainingWriter) drain() {
	if d.drained {
		return
	}
	d.drained = true
	if d.body.eof {
		return
	}
	_ = d.rc.SetReadDeadline(time.Now().Add(bodyDrainTimeout))
	n, err := io.CopyN(io.Discard, d.body, d.limit)
	_ = d.rc.SetReadDeadline(time.Time{})
	switch {
	case err == nil && !d.body.eof:
		// Over the limit: net/http closes the connection after the answer;
		// say so, so the client does not try to reuse it.
		if d.http1 {
			d.Header().Set("Connection", "close")
		}
		d.log.Warn("request body left unread past the drain limit; closing the connection", "discarded", n)
	case err != nil && err != io.EOF:
		if d.http1 {
			d.Header().Set("Connection", "close")
		}
		d.log.Debug("request body not drained", "discarded", n, "error", err)
	}
}

// closeAfter asks for the HTTP/1 connection to close after the answer. It
// leaves HTTP/2 alone: there "Connection: close" makes net/http shut the
// whole connection down, and other streams with it, while the stream ends
// on its own.
func closeAfter(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
}

// WriteHeader drains the body first (see drainingWriter).
func (d *drainingWriter) WriteHeader(code int) {
	d.drain()
	d.ResponseWriter.WriteHeader(code)
}

// Write drains the body first when it writes the header implicitly.
func (d *drainingWriter) Write(b []byte) (int, error) {
	d.drain()
	return d.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (d *drainingWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
