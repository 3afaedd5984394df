package inference

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own (one
// per Server, so that tests may run several) that also holds the Go runtime's
// and the process's collectors (process_resident_memory_bytes: the Go
// server's own memory, not its Python workers').
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec   // path, code
	latency    *prometheus.HistogramVec // path
	inFlight   prometheus.Gauge
	batchSize  prometheus.Histogram
	queueWait  prometheus.Histogram
	queueDepth prometheus.Gauge
	restarts   *prometheus.CounterVec // reason
}

const metricsNamespace = "algocloud_inference"

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "requests_total",
			Help: "HTTP requests answered, by path and status code."}, []string{"path", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metricsNamespace, Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by path.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"path"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: "in_flight_requests",
			Help: "Requests being served now (/predict and /v1/test-input)."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: metricsNamespace, Name: "batch_size",
			Help: "Calls per batch sent to a worker.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128}}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: metricsNamespace, Name: "queue_wait_seconds",
			Help:    "Time a call waited in the queue before a worker took it.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 5}}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: "queue_depth",
			Help: "Calls waiting for a worker."}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "worker_restarts_total",
			Help: "Python workers replaced, by reason: crashed (died during a call), timeout, exited (died while idle)."}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.inFlight, m.batchSize, m.queueWait, m.queueDepth, m.restarts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"crashed", "timeout", "exited"} {
		m.restarts.WithLabelValues(r) // present at 0 from the start
	}
	return m
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// metricPath bounds the path label to the server's routes.
func metricPath(p string) string {
	switch p {
	case "/predict", "/v1/test-input", "/healthz", "/readyz", "/openapi.json", "/metrics":
		return p
	}
	if p == "/v2" || strings.HasPrefix(p, "/v2/") { // the model name is not a label: it is the client's to choose
		if strings.HasPrefix(p, "/v2/models/") && strings.HasSuffix(p, "/infer") {
			return "/v2/models/{name}/infer"
		}
		return "/v2"
	}
	return "other"
}

// observe counts one answered request.
func (m *metrics) observe(path string, status int, seconds float64) {
	path = metricPath(path)
	m.requests.WithLabelValues(path, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(path).Observe(seconds)
}
