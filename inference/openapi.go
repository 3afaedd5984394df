package inference

import (
	"net/http"
	"strings"

	"github.com/algocloud/algocloud/spec"
)

// openAPI serves this endpoint's OpenAPI 3.0 document, built from its codecs.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	writeJSON(w, http.StatusOK, s.openAPIDoc(scheme+"://"+r.Host))
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
		"500": errResp("predict_failed (with the Python traceback), bad_output, worker_crashed."),
		"429": errResp("overloaded: too many requests are in progress (the queue is full); retry after Retry-After seconds."),
		"503": errResp("not_ready, init_failed, overloaded (nothing became free within the timeout) or shutting_down: retry later."),
		"504": errResp("predict_timeout."),
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
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       name,
			"version":     "1",
			"description": "The " + string(s.cfg.Input) + " -> " + string(s.cfg.Output) + " API of the algorithm " + name + ", served by algocloud.",
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
			"securitySchemes": map[string]any{"bearerAuth": map[string]any{"type": "http", "scheme": "bearer"}},
			"responses":       map[string]any{"Unauthorized": errResp("unauthorized: missing or wrong bearer token.")},
			"schemas": map[string]any{"Error": map[string]any{
				"type": "object", "required": []string{"code", "message"},
				"properties": map[string]any{
					"code":    map[string]any{"type": "string", "example": "predict_failed"},
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
