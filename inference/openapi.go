package inference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// openAPI serves this endpoint's OpenAPI 3.0 document, built from its codecs:
// the same bytes the platform's clients listing offers for it (OpenAPIDocument).
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	b, err := OpenAPIDocument(OpenAPIParams{Name: s.cfg.Name, Input: s.cfg.Input, Output: s.cfg.Output,
		Environment: s.cfg.Environment, ServerURL: scheme + "://" + r.Host, MaxBatchSize: s.cfg.MaxBatchSize})
	if err != nil {
		writeError(w, apiErr(http.StatusInternalServerError, CodeInternal, "build the OpenAPI document: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// init gives the platform's clients listing (templates.Clients) this
// package's generator, so its openapi.json is the endpoint's own bytes.
func init() {
	templates.RegisterOpenAPIGenerator(func(d templates.ClientData) ([]byte, error) {
		return OpenAPIDocument(OpenAPIParams{Name: d.APIName, Input: d.Input, Output: d.Output,
			Environment: d.Environment, ServerURL: d.Endpoint, MaxBatchSize: d.MaxBatchSize})
	})
}

// OpenAPIParams is what an endpoint's OpenAPI document depends on: the
// inference server fills it from its config, the platform's clients listing
// from the deployment's spec, so both offer the same bytes.
type OpenAPIParams struct {
	// Name is the API name, which is also the Open Inference Protocol's model
	// name; "algorithm" when empty, as the server's modelName.
	Name string
	// Input and Output are the API type.
	Input, Output spec.IOType
	// Environment is python (the default when empty) or onnx.
	Environment string
	// ServerURL is the endpoint's base URL, the document's only server.
	ServerURL string
	// Version is info.version; "1" when empty.
	Version string
	// MaxBatchSize is the endpoint's dynamic batching bound: above 1 the
	// Open Inference Protocol's shapes get a leading batch dimension.
	MaxBatchSize int
}

// OpenAPIDocument is the OpenAPI 3.0 document of an endpoint, as JSON
// indented by two spaces. Object keys are sorted, except that a content
// object lists its media types in mediaTypeRank's order: tools (Swagger UI's
// Try it out, Postman's import, generated TypeScript clients) default to the
// first, which for an image input must be a file, not base64 JSON.
func OpenAPIDocument(p OpenAPIParams) ([]byte, error) {
	if !spec.SupportedPairs[spec.Pair{In: p.Input, Out: p.Output}] {
		return nil, fmt.Errorf("OpenAPI document: API type %s is not served", spec.Pair{In: p.Input, Out: p.Output})
	}
	env := p.Environment
	if env == "" {
		env = spec.EnvPython
	}
	in, err := newInputCodec(p.Input, Config{Environment: env}, nil)
	if err != nil {
		return nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	out, err := newOutputCodec(p.Output)
	if err != nil {
		return nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	// A server that is only read: the document's builders take its config
	// and codecs, as the serving one's.
	s := &Server{cfg: Config{Name: p.Name, Input: p.Input, Output: p.Output, Environment: env, MaxBatchSize: p.MaxBatchSize}, in: in, out: out}
	doc := s.openAPIDoc(p.ServerURL)
	if p.Version != "" {
		doc["info"].(map[string]any)["version"] = p.Version
	}
	return encodeOpenAPI(doc)
}

func (s *Server) openAPIDoc(serverURL string) map[string]any {
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/" + name} }
	errResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{
			"application/json": map[string]any{"schema": ref("schemas/Error")}}}
	}
	tooLarge := "body_too_large."
	if s.cfg.Input == spec.Image {
		tooLarge = "body_too_large or image_too_large."
	}
	predictErrors := map[string]any{
		"200": s.out.OpenAPIResponse(),
		"400": errResp("The input is unusable: " + strings.Join(s.in.ErrorCodes(), ", ") + "."),
		"401": ref("responses/Unauthorized"),
		"413": errResp(tooLarge),
		"415": errResp("unsupported_media_type."),
		"500": errResp(s.predictFailed500()),
		"429": errResp("overloaded: too many requests are in progress (the queue is full); retry after Retry-After seconds."),
		"503": errResp("not_ready, init_failed, overloaded (nothing became free within the timeout) or shutting_down: retry later."),
		"504": errResp("predict_timeout."),
	}
	if s.cfg.Environment == spec.EnvONNX {
		predictErrors["422"] = errResp(onnxPredictFailed422)
	} else {
		predictErrors["422"] = errResp(outOfMemory422)
	}
	predictOp := map[string]any{
		"operationId": "predict",
		"summary":     "Run the algorithm on one input.",
		"requestBody": s.in.OpenAPIRequest(),
		"responses":   predictErrors,
	}
	if s.cfg.Input == spec.File {
		predictOp["parameters"] = []any{
			map[string]any{"name": "filename", "in": "query", "required": false, "example": "data.csv",
				"description": "The file's name, for a raw (not multipart) body.", "schema": map[string]any{"type": "string"}},
			map[string]any{"name": "Content-Disposition", "in": "header", "required": false, "example": `attachment; filename="data.csv"`,
				"description": "Another way to name a raw body's file (filename or filename*); ?filename= wins.", "schema": map[string]any{"type": "string"}},
		}
	}
	name := s.cfg.Name
	if name == "" {
		name = "algorithm"
	}
	servedBy := " (Python workers)"
	if s.cfg.Environment == spec.EnvONNX {
		servedBy = " (ONNX Runtime)"
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       name,
			"version":     "1",
			"description": "The " + string(s.cfg.Input) + " -> " + string(s.cfg.Output) + " API of the algorithm " + name + ", served by algocloud" + servedBy + ".",
		},
		"servers":  []any{map[string]any{"url": serverURL}},
		"security": []any{map[string]any{"bearerAuth": []string{}}},
		"paths": map[string]any{
			"/predict": map[string]any{"post": predictOp},
			"/v1/test-input": map[string]any{"get": map[string]any{
				"operationId": "testInput",
				"summary":     "The algorithm's testing_input_data(), encoded as a /predict request body.",
				"responses": map[string]any{
					"200": map[string]any{
						"description": "A request body for /predict; its Content-Type (multipart boundary included) is the one to send.",
						"content":     testInputContent(s.cfg.Input, s.in.OpenAPIRequest()),
					},
					"401": ref("responses/Unauthorized"),
					"500": errResp("test_input_failed (with the Python traceback)."),
					"503": errResp("not_ready or init_failed."),
				},
			}},
			"/healthz": map[string]any{"get": map[string]any{
				"operationId": "health", "summary": "Liveness.", "security": []any{},
				"responses": map[string]any{"200": map[string]any{"description": "The server runs.",
					"content": map[string]any{"application/json": map[string]any{"example": map[string]any{"status": "ok"}}}}},
			}},
			"/readyz": map[string]any{"get": map[string]any{
				"operationId": "ready", "summary": "Readiness: every worker has run __init__.", "security": []any{},
				"responses": map[string]any{
					"200": map[string]any{"description": "Ready.",
						"content": map[string]any{"application/json": map[string]any{"example": map[string]any{"status": "ready"}}}},
					"503": errResp("not_ready while workers start; init_failed (with the stage and traceback) when importing aai_main.py or __init__ raised."),
				},
			}},
		},
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearerAuth": map[string]any{"type": "http", "scheme": "bearer",
				"description": "The endpoint token, shown once by Complete Deployment (the generated clients read it from $ALGOCLOUD_ENDPOINT_TOKEN)."}},
			"responses": map[string]any{"Unauthorized": errResp("unauthorized: missing or wrong bearer token.")},
			"schemas": map[string]any{"Error": map[string]any{
				"type": "object", "required": []string{"code", "message"},
				"properties": map[string]any{
					"code": map[string]any{"type": "string", "enum": errorCodes, "example": CodePredictFailed,
						"description": "The stable error code (docs/inference-protocol.md); a client that meets one it does not know treats it by the HTTP status."},
					"message": map[string]any{"type": "string", "example": "predict failed: ZeroDivisionError: division by zero"},
					"stage": map[string]any{"type": "string", "enum": []string{StageImport, StageClass, StageInit, StageTestInput, StagePredict, StageOutput, StageTestInputOutput},
						"description": "What failed, for errors the algorithm caused: import (of aai_main.py), class, init (__init__), test_input (testing_input_data), predict, output or test_input_output (encoding the value for the API type)."},
					"traceback": map[string]any{"type": "string", "description": "The Python traceback, when the algorithm raised; files relative to the code folder."},
				},
			}},
		},
	}
	nameJSONUnion(doc, s.cfg.Input)
	s.addV2OpenAPI(doc) // the Open Inference Protocol's routes (v2openapi.go)
	return doc
}

// outOfMemory422 describes the 422 a Python endpoint answers when a call
// made the algorithm use more memory than its sandbox allows.
const outOfMemory422 = "out_of_memory: the call made the algorithm use more memory than its limit (named in the message); the worker was killed and restarts."

// onnxPredictFailed422 describes the 422 an ONNX endpoint answers when its
// pipeline fails for one image alone (onnxValue); a Python endpoint has none.
const onnxPredictFailed422 = "predict_failed: the ONNX pipeline could not process this image (its pre- or postprocessing failed for it alone)."

// predictFailed500 describes the 500s of /predict and /v2/.../infer: how
// predict_failed comes about depends on the environment, and only Python
// endpoints have workers that crash.
func (s *Server) predictFailed500() string {
	if s.cfg.Environment == spec.EnvONNX {
		return "predict_failed (ONNX Runtime failed to run the batch), bad_output."
	}
	return "predict_failed (with the Python traceback), bad_output, worker_crashed."
}

// nameJSONUnion moves an inline oneOf schema of /predict's JSON request body
// into components/schemas, as <Input>JSONInput, and refers to it there. Code
// generators give a named union its own type; oapi-codegen (v2.8.2) makes an
// inline one's request body a defined type without the union's MarshalJSON,
// so its clients would send {} (oapi-codegen issue #2498).
func nameJSONUnion(doc map[string]any, in spec.IOType) {
	paths, _ := doc["paths"].(map[string]any)
	predict, _ := paths["/predict"].(map[string]any)
	post, _ := predict["post"].(map[string]any)
	body, _ := post["requestBody"].(map[string]any)
	content, _ := body["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	schema, _ := media["schema"].(map[string]any)
	components, _ := doc["components"].(map[string]any)
	schemas, _ := components["schemas"].(map[string]any)
	if schema["oneOf"] == nil || schemas == nil || in == "" {
		return
	}
	name := strings.ToUpper(string(in[:1])) + string(in[1:]) + "JSONInput"
	schemas[name] = schema
	media["schema"] = map[string]any{"$ref": "#/components/schemas/" + name}
}

// testInputContent is what /v1/test-input answers for each input type.
func testInputContent(t spec.IOType, req map[string]any) map[string]any {
	binary := map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
	content, _ := req["content"].(map[string]any)
	switch t {
	case spec.Image:
		return map[string]any{"image/png": binary, "image/jpeg": binary, "image/gif": binary}
	case spec.Numpy:
		return map[string]any{npyMediaType: binary}
	case spec.JSON:
		return map[string]any{"application/json": map[string]any{"schema": map[string]any{}}}
	case spec.File:
		return map[string]any{"multipart/form-data": content["multipart/form-data"]}
	}
	return nil
}

// mediaTypeRank orders a content object's media types: binary ones first
// (image/png, then multipart/form-data for a file picker), then JSON, then
// the catch-alls; others follow, sorted.
var mediaTypeRank = []string{"image/png", "multipart/form-data", "image/jpeg", "image/gif", npyMediaType,
	"application/json", "application/octet-stream", "*/*"}

// encodeOpenAPI writes doc as indented JSON without HTML escaping ("->"
// reads better than "-\u003e" in a file people open), content objects'
// keys in mediaTypeRank's order and every other object's sorted.
func encodeOpenAPI(doc map[string]any) ([]byte, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode the OpenAPI document: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("encode the OpenAPI document: %w", err)
	}
	var b bytes.Buffer
	if err := writeOrdered(&b, v, false); err != nil {
		return nil, fmt.Errorf("encode the OpenAPI document: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("encode the OpenAPI document: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// writeOrdered writes v (what json decodes into any) compactly; content says
// v is a content object, whose media types go in mediaTypeRank's order.
func writeOrdered(b *bytes.Buffer, v any, content bool) error {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if content {
				ri, rj := mediaRank(keys[i]), mediaRank(keys[j])
				if ri != rj {
					return ri < rj
				}
			}
			return keys[i] < keys[j]
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeLeaf(b, k); err != nil {
				return err
			}
			b.WriteByte(':')
			// "content" holds media types in Request Body, Response and
			// Parameter objects; a schema property so named is an object
			// with "type" (never a media type key), which the rank leaves sorted.
			if err := writeOrdered(b, v[k], k == "content"); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeOrdered(b, x, false); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	default:
		return writeLeaf(b, v)
	}
	return nil
}

// mediaRank is a media type's place in mediaTypeRank; after them all when absent.
func mediaRank(mt string) int {
	for i, m := range mediaTypeRank {
		if m == mt {
			return i
		}
	}
	return len(mediaTypeRank)
}

// writeLeaf writes a string, number, bool or null without HTML escaping.
func writeLeaf(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}
