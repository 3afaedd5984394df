package apiclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrStreamEnded is returned by StreamEvents when the server ended the
// stream on purpose (its lifetime): reconnect after the last event.
var ErrStreamEnded = errors.New("event stream ended by the server")

// errBadEvent is an event whose data is not an event's JSON.
var errBadEvent = errors.New("malformed event")

// StreamEvents reads the deployment's server-sent event stream from after
// on and calls fn for each event, in order, until ctx ends, fn fails, or the
// stream ends (ErrStreamEnded, or an error when the connection broke). It
// returns the ID of the last event it handed fn (after, when none), from
// which a caller reconnects.
func (c *Client) StreamEvents(ctx context.Context, id string, after int64, fn func(Event) error) (int64, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	req, err := c.newRequest(ctx, http.MethodGet, deploymentPath(id)+"/events/stream?"+q.Encode(), nil)
	if err != nil {
		return after, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(req)
	if err != nil {
		return after, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var kind string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // dispatch
			k, d := kind, data.String()
			kind = ""
			data.Reset()
			switch k {
			case "", "message":
				if d == "" {
					continue
				}
				var ev Event
				if err := json.Unmarshal([]byte(d), &ev); err != nil {
					return after, fmt.Errorf("event stream: %w %q: %v", errBadEvent, d, err)
				}
				if err := fn(ev); err != nil {
					return after, err
				}
				after = ev.ID
			case "end":
				return after, ErrStreamEnded
			case "error":
				return after, fmt.Errorf("event stream: server error: %s", d)
			}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			kind = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
		// "id", "retry" and comments (field "") need nothing: the event's JSON has its id.
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return after, fmt.Errorf("event stream: %w", err)
	}
	if ctx.Err() != nil {
		return after, ctx.Err()
	}
	return after, fmt.Errorf("event stream: the connection closed")
}

// FollowEvents streams events from after on until ctx ends, reconnecting
// when the stream ends or breaks (a second later, unless the server ended it
// on purpose). The API refusing (an *Error below 500: unauthorized, not
// found), a malformed event or fn's error ends it; so does ctx, whose error
// it then returns.
func (c *Client) FollowEvents(ctx context.Context, id string, after int64, fn func(Event) error) error {
	var fnErr error
	call := func(ev Event) error {
		fnErr = fn(ev)
		return fnErr
	}
	for {
		var err error
		after, err = c.StreamEvents(ctx, id, after, call)
		var apiErr *Error
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case fnErr != nil:
			return fnErr
		case errors.As(err, &apiErr) && apiErr.StatusCode < 500, errors.Is(err, errBadEvent):
			return err
		}
		pause := time.Second
		if errors.Is(err, ErrStreamEnded) {
			pause = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}
