package webhook

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/store"
)

// BenchmarkDeliver measures deliveries on the embedded Temporal server, one
// at a time, to a receiver on loopback answering 204: from Start to the
// receiver having the request (what a webhook adds after the event) and to
// the delivery workflow's end; it reports their medians.
// Run: go test -run '^$' -bench Deliver -benchtime 30x ./predictions/webhook/
func BenchmarkDeliver(b *testing.B) {
	c, _ := temporalClient(b)
	f := newFixture(b)
	got := make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got <- time.Now()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	queue := f.worker(b, c, &Activities{Dialer: loopbackOnly()})
	ctx := context.Background()
	var received, done []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		run, err := Start(ctx, c, queue, DeliverInput{
			DeliveryID: fmt.Sprintf("bench-%d-%d", start.UnixNano(), i), EndpointAlgorithmID: f.alg, SubjectID: "bench",
			URL: srv.URL, Event: event("bench"), Retry: fast,
		})
		require.NoError(b, err)
		var res Result
		require.NoError(b, run.Get(ctx, &res))
		done = append(done, time.Since(start))
		received = append(received, (<-got).Sub(start))
		require.Equal(b, store.WebhookDelivered, res.Outcome)
	}
	b.StopTimer()
	b.ReportMetric(median(received).Seconds()*1000, "ms-to-receiver")
	b.ReportMetric(median(done).Seconds()*1000, "ms-to-done")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
