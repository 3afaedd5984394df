package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoad: clients run until stopped; answers, failures and each
// client's last answer are kept; a request cut by Stop is dropped with
// DropCancelled.
func TestLoad(t *testing.T) {
	var n atomic.Int64
	l := Start(context.Background(), Options{Clients: 3, DropCancelled: true}, func(ctx context.Context, i int) (string, error) {
		if n.Add(1)%5 == 0 {
			return "", errors.New("boom")
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Millisecond):
		}
		return "a", nil
	})
	for l.OK() < 30 {
		time.Sleep(time.Millisecond)
	}
	l.Stop()
	l.Stop()
	fails := l.Failures()
	for _, f := range fails {
		if f != "boom" {
			t.Fatalf("failure %q: a cancelled request was kept", f)
		}
	}
	if len(fails) == 0 || int64(l.Answers()["a"]) != l.OK() || len(l.Samples()) != len(fails)+int(l.OK()) {
		t.Fatalf("fails %d, answers %v, ok %d, samples %d", len(fails), l.Answers(), l.OK(), len(l.Samples()))
	}
	for i, last := range l.Last() {
		if last != "a" {
			t.Fatalf("client %d's last answer: %q", i, last)
		}
	}
}

func TestP99(t *testing.T) {
	if P99(nil) != 0 {
		t.Fatal("P99(nil)")
	}
	d := make([]time.Duration, 200)
	for i := range d {
		d[i] = time.Duration(200-i) * time.Millisecond
	}
	if got := P99(d); got != 199*time.Millisecond {
		t.Fatalf("P99: %s", got)
	}
}
