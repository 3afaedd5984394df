package inference

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/spec"
)

// The Open Inference Protocol (KServe v2 / Triton HTTP) beside /predict:
//
//	GET  /v2                                  server metadata
//	GET  /v2/health/live, /v2/health/ready    liveness, readiness
//	GET  /v2/models/{name}[/versions/1]       model metadata
//	GET  /v2/models/{name}[/versions/1]/ready model readiness
//	GET  /v2/models/{name}[/versions/1]/config Triton's model configuration
//	POST /v2/models/{name}[/versions/1]/infer inference (bearer token)
//
// {name} is the deployment's API name (Config.Name). The model has one input
// named "input" and one output named "output"; their datatypes follow the
// deployment's input and output types (v2types.go). Health and metadata need
// no token, like /healthz, /readyz and /openapi.json; infer needs the
// endpoint's token, like /predict, and passes the same admission, size
// limits, batcher, timeouts and metrics. docs/inference-protocol.md has the
// details.

const (
	v2InputName    = "input"
	v2OutputName   = "output"
	v2ModelVersion = "1"
	// v2Platform is the model metadata's platform.
	v2Platform = "algocloud"
	// v2ServerVersion is the server metadata's version (of this protocol implementation).
	v2ServerVersion = "1"
	// headerInferLen is the binary tensor extension's header: the length of
	// the JSON object at the start of a body that binary tensor data follows.
	headerInferLen = "Inference-Header-Content-Length"
)

// v2Route is a /v2 path resolved to its handler.
type v2Route struct {
	method string
	auth   bool
	model  string // the {name} of /v2/models/{name}/...; "" for server routes
	ok     bool   // the version segment, when present, names the one version
	h      http.HandlerFunc
}

// v2Routes registers the protocol's routes on mux: everything under /v2
// answers v2-style errors ({"error": ...}).
func (s *Server) v2Routes(mux *http.ServeMux) {
	mux.HandleFunc("/v2", s.serveV2)
	mux.HandleFunc("/v2/", s.serveV2)
}

// resolveV2 maps a /v2 path to its route; nil when there is none.
func (s *Server) resolveV2(path string) *v2Route {
	parts := strings.Split(strings.Trim(path, "/"), "/")[1:] // after "v2"
	get := func(h http.HandlerFunc) *v2Route { return &v2Route{method: http.MethodGet, ok: true, h: h} }
	switch {
	case len(parts) == 0:
		return get(s.v2ServerMetadata)
	case len(parts) == 2 && parts[0] == "health" && parts[1] == "live":
		return get(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]bool{"live": true})
		})
	case len(parts) == 2 && parts[0] == "health" && parts[1] == "ready":
		return get(func(w http.ResponseWriter, r *http.Request) { s.v2Ready(w, nil) })
	case len(parts) < 2 || parts[0] != "models" || parts[1] == "":
		return nil
	}
	rt := &v2Route{model: parts[1], ok: true}
	tail := parts[2:]
	if len(tail) >= 2 && tail[0] == "versions" {
		rt.ok = tail[1] == v2ModelVersion
		tail = tail[2:]
	}
	switch {
	case len(tail) == 0:
		rt.method, rt.h = http.MethodGet, s.v2ModelMetadata
	case len(tail) == 1 && tail[0] == "ready":
		rt.method, rt.h = http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
			s.v2Ready(w, map[string]any{"name": s.modelName()})
		}
	case len(tail) == 1 && tail[0] == "config":
		rt.method, rt.h = http.MethodGet, s.v2ModelConfig
	case len(tail) == 1 && tail[0] == "infer":
		rt.method, rt.auth, rt.h = http.MethodPost, true, s.v2Infer
	default:
		return nil
	}
	return rt
}

// serveV2 checks a /v2 request's method, model name and token, then runs its handler.
func (s *Server) serveV2(w http.ResponseWriter, r *http.Request) {
	rt := s.resolveV2(r.URL.Path)
	method := http.MethodGet
	if rt != nil {
		method = rt.method
	}
	if cors(w, r, method) {
		return
	}
	switch {
	case rt == nil:
		writeV2Error(w, apiErr(http.StatusNotFound, CodeNotFound, "no such endpoint %s; see /openapi.json", r.URL.Path))
	case r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead):
		w.Header().Set("Allow", rt.method)
		writeV2Error(w, apiErr(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s takes %s", r.URL.Path, rt.method))
	case rt.model != "" && rt.model != s.modelName():
		writeV2Error(w, apiErr(http.StatusNotFound, CodeNotFound, "unknown model %q: this endpoint serves the model %q", truncate([]byte(rt.model), 100), s.modelName()))
	case !rt.ok:
		writeV2Error(w, apiErr(http.StatusNotFound, CodeNotFound, "model %q has only version %s", s.modelName(), v2ModelVersion))
	case rt.auth && !s.authorized(r):
		writeV2Error(w, apiErr(http.StatusUnauthorized, CodeUnauthorized, "send the endpoint's token as \"Authorization: Bearer <token>\""))
	default:
		rt.h(w, r)
	}
}

// modelName is the model's name in the protocol: the API name.
func (s *Server) modelName() string {
	if s.cfg.Name == "" {
		return "algorithm"
	}
	return s.cfg.Name
}

func (s *Server) v2ServerMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"name": "algocloud", "version": v2ServerVersion, "extensions": []string{"binary_tensor_data"}})
}

// v2Ready answers readiness: 200 {"ready": true} once every worker ran
// __init__, else 503 with "ready": false and the reason as "error". extra
// adds fields (the model's name).
func (s *Server) v2Ready(w http.ResponseWriter, extra map[string]any) {
	body := map[string]any{"ready": true}
	for k, v := range extra {
		body[k] = v
	}
	rd := s.pool.Readiness()
	status := http.StatusOK
	switch {
	case rd.Err != nil:
		status, body["ready"], body["error"], body["code"] = rd.Err.Status, false, rd.Err.Message, rd.Err.Code
	case !rd.Ready:
		status, body["ready"], body["error"], body["code"] = http.StatusServiceUnavailable, false, "the model is still loading", CodeNotReady
	}
	if status != http.StatusOK {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, body)
}

func (s *Server) v2ModelMetadata(w http.ResponseWriter, r *http.Request) {
	in, out := s.v2TensorMetadata()
	writeJSON(w, http.StatusOK, map[string]any{
		"name": s.modelName(), "versions": []string{v2ModelVersion}, "platform": v2Platform,
		"inputs": []v2TensorMeta{in}, "outputs": []v2TensorMeta{out},
	})
}

// v2ModelConfig answers Triton's model configuration extension
// (GET /v2/models/{name}/config), which Triton's tools (perf_analyzer) read
// for max_batch_size: the model's tensors in Triton's terms (dims without
// the batch dimension when batching is on; BYTES is TYPE_STRING) and the
// dynamic batching settings.
func (s *Server) v2ModelConfig(w http.ResponseWriter, r *http.Request) {
	in, out := s.v2TensorMetadata()
	maxBatch := 0
	if s.cfg.MaxBatchSize > 1 {
		maxBatch = s.cfg.MaxBatchSize
	}
	tensor := func(m v2TensorMeta) map[string]any {
		dims := m.Shape
		if maxBatch > 0 {
			dims = dims[1:]
		}
		dt := "TYPE_" + m.Datatype
		if m.Datatype == v2Bytes {
			dt = "TYPE_STRING"
		}
		return map[string]any{"name": m.Name, "data_type": dt, "dims": dims}
	}
	cfg := map[string]any{"name": s.modelName(), "platform": v2Platform, "max_batch_size": maxBatch,
		"input": []any{tensor(in)}, "output": []any{tensor(out)}}
	if maxBatch > 0 {
		db := map[string]any{"max_queue_delay_microseconds": time.Duration(s.cfg.MaxQueueDelay).Microseconds()}
		if len(s.cfg.PreferredBatchSizes) > 0 {
			db["preferred_batch_size"] = s.cfg.PreferredBatchSizes
		}
		cfg["dynamic_batching"] = db
	}
	writeJSON(w, http.StatusOK, cfg)
}

// v2Infer serves POST /v2/models/{name}/infer through the same admission
// (admission.go) as /predict.
func (s *Server) v2Infer(w http.ResponseWriter, r *http.Request) {
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		writeV2Error(w, apiErr(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Encoding %q is not supported: send the body uncompressed", truncate([]byte(ce), 40)))
		return
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		closeAfter(w, r) // as /predict's 413 (server.go)
		writeV2Error(w, apiErr(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the request body exceeds %d bytes", s.cfg.MaxBodyBytes))
		return
	}
	release, err := s.admission.admit()
	if err != nil {
		writeV2Error(w, s.asAPIError(r, err))
		return
	}
	defer release()
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	ticket := &workTicket{a: s.admission}
	defer ticket.leave()
	b, err := s.runV2Infer(withWork(r.Context(), ticket), r, ticket)
	ticket.leaveWork() // as /predict: the intake slot covers writing the answer
	if err != nil {
		writeV2Error(w, s.asAPIError(r, err))
		return
	}
	h := w.Header()
	if b.headerLen >= 0 {
		h.Set(headerInferLen, fmt.Sprint(b.headerLen))
	}
	writeBody(w, b.httpBody)
}

func (s *Server) runV2Infer(ctx context.Context, r *http.Request, ticket *workTicket) (v2Body, error) {
	if err := ticket.enterIntake(ctx); err != nil {
		return v2Body{}, err
	}
	body, err := readBody(r, "a JSON inference request")
	if err != nil {
		return v2Body{}, err
	}
	if err := ticket.enter(ctx); err != nil {
		return v2Body{}, err
	}
	req, err := parseV2Infer(r.Header.Get(headerInferLen), body)
	if err != nil {
		return v2Body{}, err
	}
	in, binaryOut, err := v2Select(req)
	if err != nil {
		return v2Body{}, err
	}
	items, batched, err := s.v2Items(in)
	if err != nil {
		return v2Body{}, err
	}
	outs, err := s.v2Run(ctx, items)
	if err != nil {
		return v2Body{}, err
	}
	out, err := s.v2Output(outs, batched)
	if err != nil {
		return v2Body{}, err
	}
	out.binary = binaryOut
	return encodeV2Response(s.modelName(), req.ID, []v2OutTensor{out})
}

// v2Select finds the model's one input in the request and whether the
// output goes as binary data.
func v2Select(req *v2Request) (v2Tensor, bool, error) {
	var in *v2Tensor
	for i := range req.Inputs {
		if req.Inputs[i].Name != v2InputName {
			return v2Tensor{}, false, v2BadRequest(CodeBadInferRequest, "unexpected input %q: the model has one input, %q",
				truncate([]byte(req.Inputs[i].Name), 64), v2InputName)
		}
		if in != nil {
			return v2Tensor{}, false, v2BadRequest(CodeBadInferRequest, "input %q is given twice", v2InputName)
		}
		in = &req.Inputs[i]
	}
	binaryOut := req.BinaryOutput
	for _, o := range req.Outputs {
		if o.Name != v2OutputName {
			return v2Tensor{}, false, v2BadRequest(CodeBadInferRequest, "unknown output %q: the model has one output, %q", truncate([]byte(o.Name), 64), v2OutputName)
		}
		if raw, ok := o.Parameters["binary_data"]; ok {
			binaryOut = string(raw) == "true" // parseV2Infer checked it is a bool
		}
	}
	return *in, binaryOut, nil
}

// v2Run hands every item to the dispatcher at once, so that the batcher may
// put them in one batch; the first failure fails the request (the other
// items are dropped from the queue, or finish unseen).
func (s *Server) v2Run(ctx context.Context, items []Value) ([]Value, error) {
	outs := make([]Value, len(items))
	if len(items) == 1 {
		v, err := s.pool.Do(ctx, call{Op: opPredict, Want: s.out.Want(), In: items[0]})
		outs[0] = v
		return outs, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i := range items {
		wg.Go(func() {
			outs[i], errs[i] = s.pool.Do(ctx, call{Op: opPredict, Want: s.out.Want(), In: items[i]})
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		var ae *APIError
		if errors.As(err, &ae) {
			return nil, err // the cause, not a sibling's cancellation
		}
		if first == nil {
			first = err
		}
	}
	return outs, first
}

// writeV2Error writes e as the protocol's error body, {"error": message},
// with the stable code (and a traceback) beside it.
func writeV2Error(w http.ResponseWriter, e *APIError) {
	status := errorHeaders(w, e)
	body := map[string]string{"error": e.Message, "code": e.Code}
	if e.Traceback != "" {
		body["traceback"] = e.Traceback
	}
	writeJSON(w, status, body)
}

// v2TensorMeta is a tensor's model metadata: -1 marks a variable dimension.
type v2TensorMeta struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

// v2TensorMetadata describes the model's input and output for the
// deployment's types. With batching on (max_batch_size > 1) the shapes get a
// leading -1 batch dimension, as Triton's do.
func (s *Server) v2TensorMetadata() (in, out v2TensorMeta) {
	in, out = v2TensorMeta{Name: v2InputName}, v2TensorMeta{Name: v2OutputName}
	batch := s.cfg.MaxBatchSize > 1
	shape := func(dims ...int) []int {
		if batch {
			return append([]int{-1}, dims...)
		}
		return dims
	}
	bytesShape := []int{1}
	if batch {
		bytesShape = []int{-1}
	}
	switch s.cfg.Input {
	case spec.Image:
		in.Datatype, in.Shape = "UINT8", shape(-1, -1, 3)
	case spec.Numpy:
		in.Datatype, in.Shape = "FP32", []int{-1} // any datatype and rank are taken
	default:
		in.Datatype, in.Shape = v2Bytes, bytesShape
	}
	switch s.cfg.Output {
	case spec.Image:
		out.Datatype, out.Shape = "UINT8", shape(-1, -1, -1)
	case spec.Numpy:
		out.Datatype, out.Shape = "FP32", []int{-1} // the array's own datatype and shape
	default:
		out.Datatype, out.Shape = v2Bytes, bytesShape
	}
	return in, out
}
