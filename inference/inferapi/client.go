package inferapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/algocloud/algocloud/inference/npy"
)

// TestResult is what SelfTest saw: the /predict answer to testing_input_data().
type TestResult struct {
	// OK is true when /predict answered 200.
	OK bool
	// Status is the HTTP status of the failing call (or 200).
	Status int
	// Code, Message, Stage and Traceback are the JSON error body's fields
	// when !OK; Stage names what failed (StageImport ... StageOutput).
	Code, Message, Stage, Traceback string
	// ContentType and Output are the response when OK; FileName is the name
	// a file output was sent with (Content-Disposition).
	ContentType string
	Output      []byte
	FileName    string
	// Summary describes the output, e.g. "PNG 512x512 RGB", "NPY float32
	// (2, 3)", the JSON text truncated to 2 KB, or `file "x.csv": text/csv,
	// 12 bytes`.
	Summary string
	// InputSummary describes what testing_input_data() produced.
	InputSummary string
	// Duration is the /predict round trip.
	Duration time.Duration
}

// maxResponseBytes bounds what SelfTest and WaitReady read from a server.
const maxResponseBytes = 256 << 20

// SelfTest boots nothing: it calls a running server at baseURL
// (https://host:port), GETs /v1/test-input, POSTs it to /predict, and reports
// what came back. The error is for transport failures only; an algorithm
// error is a result with OK false.
func SelfTest(ctx context.Context, client *http.Client, baseURL, token string) (TestResult, error) {
	base := strings.TrimRight(baseURL, "/")
	status, hdr, body, err := do(ctx, client, http.MethodGet, base+"/v1/test-input", token, "", nil)
	if err != nil {
		return TestResult{}, fmt.Errorf("get test input: %w", err)
	}
	if status != http.StatusOK {
		return failed(status, body), nil
	}
	inType := hdr.Get("Content-Type") // whole: a multipart body needs its boundary
	res := TestResult{InputSummary: Summarize(inType, body)}
	start := time.Now()
	status, hdr, out, err := do(ctx, client, http.MethodPost, base+"/predict", token, inType, body)
	if err != nil {
		return TestResult{}, fmt.Errorf("post test input to predict: %w", err)
	}
	res.Duration = time.Since(start)
	if status != http.StatusOK {
		f := failed(status, out)
		f.InputSummary, f.Duration = res.InputSummary, res.Duration
		return f, nil
	}
	res.OK, res.Status = true, status
	res.ContentType, res.Output = mediaType(hdr.Get("Content-Type")), out
	res.Summary = Summarize(res.ContentType, out)
	if _, params, err := mime.ParseMediaType(hdr.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		res.FileName = params["filename"]
		res.Summary = fmt.Sprintf("file %q: %s", res.FileName, res.Summary)
	}
	return res, nil
}

// WaitReady polls baseURL/readyz until it answers 200. When the algorithm's
// __init__ raised it returns an *InitError at once; otherwise it keeps polling
// (through connection errors while the server starts) until ctx ends.
func WaitReady(ctx context.Context, client *http.Client, baseURL string) error {
	url := strings.TrimRight(baseURL, "/") + "/readyz"
	// Poll fast at first: most servers are ready within a few hundred ms, and
	// every poll step missed there adds to complete->live and Test Code.
	delay := 20 * time.Millisecond
	var last error
	for {
		status, _, body, err := do(ctx, client, http.MethodGet, url, "", "", nil)
		switch {
		case err != nil:
			last = err
		case status == http.StatusOK:
			return nil
		default:
			var e Error
			if json.Unmarshal(body, &e) == nil && e.Code == CodeInitFailed {
				return &InitError{Code: e.Code, Message: e.Message, Stage: e.Stage, Traceback: e.Traceback}
			}
			last = fmt.Errorf("readyz answered %d %s", status, strings.TrimSpace(string(truncate(body, 200))))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last: %v)", url, ctx.Err(), last)
		case <-time.After(delay):
		}
		delay = min(delay*3/2, time.Second)
	}
}

func do(ctx context.Context, client *http.Client, method, url, token, contentType string, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read %s response: %w", url, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// failed reads a JSON error body into a result.
func failed(status int, body []byte) TestResult {
	res := TestResult{Status: status}
	var e Error
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" {
		res.Code, res.Message = "http_"+fmt.Sprint(status), string(truncate(body, 2048))
		return res
	}
	res.Code, res.Message, res.Stage, res.Traceback = e.Code, e.Message, e.Stage, e.Traceback
	return res
}

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

// Summarize describes a request or response body in a few words: the format,
// size and colour model of an image, the dtype and shape of a .npy array, the
// text of JSON (up to 2 KB), the name and content of a multipart file field,
// or the byte count of anything else. contentType may carry parameters
// (a multipart boundary).
func Summarize(contentType string, body []byte) string {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = contentType
	}
	switch {
	case strings.HasPrefix(mt, "image/"):
		cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
		if err != nil {
			return fmt.Sprintf("%s, %d bytes (undecodable: %v)", mt, len(body), err)
		}
		return fmt.Sprintf("%s %dx%d %s", strings.ToUpper(format), cfg.Width, cfg.Height, colorName(cfg.ColorModel))
	case mt == npyMediaType:
		a, err := npy.Decode(body)
		if err != nil {
			return fmt.Sprintf("%s, %d bytes (undecodable: %v)", mt, len(body), npyError(err))
		}
		return fmt.Sprintf("NPY %s %s", a.DType, npy.FormatShape(a.Shape))
	case mt == "application/json":
		if len(body) > 2048 {
			return string(body[:2048]) + "..."
		}
		return string(bytes.TrimSpace(body))
	case mt == "multipart/form-data" && params["boundary"] != "":
		return summarizeMultipart(params["boundary"], body)
	case strings.HasPrefix(mt, "text/") && utf8.Valid(body):
		preview := string(truncate(body, 200))
		for !utf8.ValidString(preview) {
			preview = preview[:len(preview)-1]
		}
		if len(preview) < len(body) {
			preview += "..."
		}
		return fmt.Sprintf("%s, %d bytes: %q", mt, len(body), preview)
	}
	return fmt.Sprintf("%s, %d bytes", mt, len(body))
}

// summarizeMultipart describes each field of a multipart/form-data body.
func summarizeMultipart(boundary string, body []byte) string {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var parts []string
	for len(parts) < 8 {
		p, err := mr.NextPart()
		if err != nil {
			if err != io.EOF {
				parts = append(parts, fmt.Sprintf("(malformed multipart body: %v)", err))
			}
			break
		}
		data, err := io.ReadAll(p)
		if err != nil {
			parts = append(parts, fmt.Sprintf("(malformed multipart body: %v)", err))
			break
		}
		ct := p.Header.Get("Content-Type")
		if ct == "" {
			ct = "text/plain"
		}
		desc := fmt.Sprintf("field %q", p.FormName())
		if _, cd, err := mime.ParseMediaType(p.Header.Get("Content-Disposition")); err == nil && cd["filename"] != "" {
			desc = fmt.Sprintf("file %q", cd["filename"])
		}
		parts = append(parts, desc+": "+Summarize(ct, data))
	}
	if len(parts) == 0 {
		return "multipart/form-data, no fields"
	}
	return strings.Join(parts, "; ")
}

func colorName(m color.Model) string {
	switch m {
	case color.GrayModel, color.Gray16Model:
		return "Gray"
	case color.RGBAModel, color.RGBA64Model:
		return "RGB" // the PNG decoder reports opaque truecolour this way
	case color.NRGBAModel, color.NRGBA64Model:
		return "RGBA"
	case color.YCbCrModel:
		return "YCbCr"
	case color.CMYKModel:
		return "CMYK"
	}
	if _, ok := m.(color.Palette); ok {
		return "paletted"
	}
	return "unknown colour model"
}

// npyMediaType is the numpy input and output type's media type.
const npyMediaType = "application/x-npy"

// npyError words a .npy decoding failure as the server's 400 answer to it
// would (its status, code and message), so a summary reads alike on both
// sides.
func npyError(err error) error {
	var ne *npy.Error
	if errors.As(err, &ne) {
		return &Error{Status: http.StatusBadRequest, Code: NPYErrorCodes[ne.Kind], Message: ne.Message}
	}
	return err
}

// truncate cuts b to at most n bytes.
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
