package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/store"
)

// Paging of the events list.
const (
	defaultEventLimit = 100
	maxEventLimit     = 1000
	// sseKeepAlive is how long a quiet stream goes before a comment line
	// tells proxies it is still alive.
	sseKeepAlive = 15 * time.Second
)

// eventView is one progress event.
type eventView struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

func eventOf(e store.Event) eventView {
	return eventView{ID: e.ID, At: e.At, Kind: e.Kind, Message: e.Message}
}

// listEvents pages through a deployment's progress log: events with IDs above
// ?after, at most ?limit, oldest first. next_after continues the list.
func (s *server) listEvents(c *gin.Context) {
	a := deployment(c)
	after, e := queryInt(c, "after", 0, 0, 1<<62)
	if e != nil {
		writeError(c, e)
		return
	}
	limit, e := queryInt(c, "limit", defaultEventLimit, 1, maxEventLimit)
	if e != nil {
		writeError(c, e)
		return
	}
	evs, err := s.store.ListEvents(c.Request.Context(), a.ID, after, int(limit))
	if err != nil {
		s.fail(c, "list events", err)
		return
	}
	out := make([]eventView, len(evs))
	for i, ev := range evs {
		out[i] = eventOf(ev)
		after = ev.ID
	}
	c.JSON(http.StatusOK, gin.H{"events": out, "next_after": after})
}

// queryInt reads an optional integer query parameter within [lo, hi].
func queryInt(c *gin.Context, name string, def, lo, hi int64) (int64, *apiError) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, errField(errcode.InvalidQuery, name, "must be an integer from %d to %d", lo, hi)
	}
	return n, nil
}

// streamEvents sends the progress log as Server-Sent Events: each event is a
// message whose id is the event's ID and whose data is its JSON, so an
// EventSource that reconnects resumes after the last one (Last-Event-ID, or
// ?after). It polls the store every ssePoll and ends when the client leaves or
// after sseLifetime (the client reconnects).
func (s *server) streamEvents(c *gin.Context) {
	a := deployment(c)
	after, e := queryInt(c, "after", 0, 0, 1<<62)
	if e != nil {
		writeError(c, e)
		return
	}
	if id := c.GetHeader("Last-Event-ID"); id != "" {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && n >= 0 {
			after = n
		}
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.sseLifetime)
	defer cancel()

	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	w.Flush()

	tick := time.NewTicker(s.ssePoll)
	defer tick.Stop()
	quietSince := time.Now()
	for {
		evs, err := s.store.ListEvents(ctx, a.ID, after, defaultEventLimit)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "stream events", "deployment", a.ID, "error", err)
				fmt.Fprint(w, "event: error\ndata: {\"code\":\"internal\",\"message\":\"reading events failed\"}\n\n")
				w.Flush()
			}
			return
		}
		for _, ev := range evs {
			data, err := json.Marshal(eventOf(ev))
			if err != nil {
				s.fail(c, "encode event", err)
				return
			}
			fmt.Fprintf(w, "id: %d\ndata: %s\n\n", ev.ID, data)
			after = ev.ID
		}
		switch {
		case len(evs) > 0:
			w.Flush()
			quietSince = time.Now()
		case time.Since(quietSince) >= sseKeepAlive:
			fmt.Fprint(w, ": keep-alive\n\n")
			w.Flush()
			quietSince = time.Now()
		}
		if len(evs) == defaultEventLimit {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				fmt.Fprint(w, "event: end\ndata: {\"reason\":\"stream lifetime reached; reconnect to continue\"}\n\n")
				w.Flush()
			}
			return
		case <-tick.C:
		}
	}
}
