package inference

import (
	"slices"
	"strings"

	"github.com/algocloud/algocloud/spec"
)

// addV2OpenAPI adds the Open Inference Protocol's routes (v2.go) to the
// endpoint's OpenAPI document: paths, schemas and an example request and
// response for the deployment's types.
func (s *Server) addV2OpenAPI(doc map[string]any) {
	paths := doc["paths"].(map[string]any)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
	v2Err := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": ref("V2Error")}}}
	}
	name := s.modelName()
	nameParam := map[string]any{"name": "name", "in": "path", "required": true, "example": name,
		"description": "The model's name: the deployment's API name, the only model this endpoint serves.",
		"schema":      map[string]any{"type": "string", "enum": []string{name}}}
	public := func(id, summary string, ok map[string]any, params bool, extra map[string]any) map[string]any {
		op := map[string]any{"operationId": id, "summary": summary, "security": []any{}, "tags": []string{"Open Inference Protocol"},
			"responses": map[string]any{"200": ok}}
		if params {
			op["parameters"] = []any{nameParam}
			op["responses"].(map[string]any)["404"] = v2Err("not_found: another model name.")
		}
		for k, v := range extra {
			op["responses"].(map[string]any)[k] = v
		}
		return map[string]any{"get": op}
	}
	jsonOK := func(desc string, example any) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{
			"schema": map[string]any{"type": "object"}, "example": example}}}
	}
	notReady := v2Err("Not ready: {\"ready\": false, \"error\": ..., \"code\": \"not_ready\" or \"init_failed\"}.")
	in, out := s.v2TensorMetadata()
	paths["/v2"] = public("v2ServerMetadata", "Open Inference Protocol: server metadata.",
		jsonOK("The server's name, version and protocol extensions.", map[string]any{"name": "algocloud", "version": v2ServerVersion, "extensions": []string{"binary_tensor_data"}}), false, nil)
	paths["/v2/health/live"] = public("v2Live", "Open Inference Protocol: liveness.", jsonOK("The server runs.", map[string]any{"live": true}), false, nil)
	paths["/v2/health/ready"] = public("v2Ready", "Open Inference Protocol: readiness (every worker has run __init__).",
		jsonOK("Ready.", map[string]any{"ready": true}), false, map[string]any{"503": notReady})
	paths["/v2/models/{name}"] = public("v2ModelMetadata", "Open Inference Protocol: the model's input and output tensors (-1: any size). Also at /v2/models/{name}/versions/1.",
		jsonOK("Model metadata.", map[string]any{"name": name, "versions": []string{v2ModelVersion}, "platform": v2Platform,
			"inputs": []any{in}, "outputs": []any{out}}), true, nil)
	paths["/v2/models/{name}/ready"] = public("v2ModelReady", "Open Inference Protocol: model readiness.",
		jsonOK("Ready.", map[string]any{"name": name, "ready": true}), true, map[string]any{"503": notReady})

	paths["/v2/models/{name}/config"] = public("v2ModelConfig", "Triton's model configuration extension: max_batch_size, tensors as data_type and dims, dynamic_batching.",
		jsonOK("Model configuration.", map[string]any{"name": name, "platform": v2Platform, "max_batch_size": 0,
			"input":  []any{map[string]any{"name": v2InputName, "data_type": "TYPE_" + in.Datatype, "dims": in.Shape}},
			"output": []any{map[string]any{"name": v2OutputName, "data_type": "TYPE_" + out.Datatype, "dims": out.Shape}}}), true, nil)

	reqExample, respExample := s.v2Examples()
	binary := map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
	tooLarge := "body_too_large."
	if s.cfg.Input == spec.Image {
		tooLarge = "body_too_large or image_too_large."
	}
	paths["/v2/models/{name}/infer"] = map[string]any{"post": map[string]any{
		"operationId": "v2Infer",
		"tags":        []string{"Open Inference Protocol"},
		"summary":     "Open Inference Protocol (KServe v2 / Triton): run the algorithm. Also at /v2/models/{name}/versions/1/infer.",
		"description": "One input named \"input\", one output named \"output\" (" + v2TypeText(s.cfg.Input, s.cfg.Output) + "). " +
			"Tensor data goes as JSON (\"data\": flat or nested arrays, row-major) or, with Triton's binary tensor data extension, " +
			"as raw little-endian bytes after the JSON: each input gives parameters.binary_data_size, and the " +
			"Inference-Header-Content-Length header gives the JSON's length. parameters.binary_data_output (or an output's " +
			"parameters.binary_data) asks for binary output. Same token, limits, batching and errors as /predict; " +
			"errors are {\"error\": message, \"code\": code}.",
		"parameters": []any{nameParam, map[string]any{"name": headerInferLen, "in": "header", "required": false,
			"description": "Binary tensor data extension: the length of the JSON object at the start of the body.",
			"schema":      map[string]any{"type": "integer", "minimum": 1}}},
		"requestBody": map[string]any{"required": true, "content": map[string]any{
			"application/json":         map[string]any{"schema": ref("V2InferenceRequest"), "example": reqExample},
			"application/octet-stream": binary,
		}},
		"responses": map[string]any{
			"200": map[string]any{
				"description": "The output tensor: JSON, or the JSON header then binary data when binary output was asked for (or the data cannot be JSON: NaN, non-UTF-8 bytes).",
				"headers": map[string]any{headerInferLen: map[string]any{"description": "Present when binary data follows the JSON: its length.",
					"schema": map[string]any{"type": "integer"}}},
				"content": map[string]any{
					"application/json":         map[string]any{"schema": ref("V2InferenceResponse"), "example": respExample},
					"application/octet-stream": binary,
				},
			},
			"400": v2Err("The request is unusable: " + strings.Join([]string{CodeBadInferRequest, CodeBadDatatype, CodeShapeMismatch,
				CodeBinarySizeMismatch, CodeBatchTooLarge, CodeUnsupportedFeature}, ", ") + ", or the input type's codes (" + strings.Join(s.in.ErrorCodes(), ", ") + ")."),
			"401": v2Err("unauthorized: missing or wrong bearer token."),
			"404": v2Err("not_found: another model name or version."),
			"413": v2Err(tooLarge),
			"415": v2Err("unsupported_media_type: a Content-Encoding."),
			"429": v2Err("overloaded: too many requests are in progress; retry after Retry-After seconds."),
			"500": v2Err(s.predictFailed500()),
			"503": v2Err("not_ready, init_failed, overloaded or shutting_down: retry later."),
			"504": v2Err("predict_timeout."),
		},
	}}
	infer422 := outOfMemory422
	if s.cfg.Environment == spec.EnvONNX {
		infer422 = onnxPredictFailed422
	}
	paths["/v2/models/{name}/infer"].(map[string]any)["post"].(map[string]any)["responses"].(map[string]any)["422"] = v2Err(infer422)

	datatypes := []string{"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}
	tensor := func(desc string) map[string]any {
		return map[string]any{"type": "object", "required": []string{"name", "datatype", "shape"}, "description": desc,
			"properties": map[string]any{
				"name":       map[string]any{"type": "string"},
				"datatype":   map[string]any{"type": "string", "enum": datatypes},
				"shape":      map[string]any{"type": "array", "items": map[string]any{"type": "integer", "format": "int64"}},
				"parameters": map[string]any{"type": "object", "additionalProperties": true},
				"data":       map[string]any{"description": "The elements in row-major order, flat or nested (BYTES: strings)."},
			}}
	}
	schemas["V2InferenceRequest"] = map[string]any{"type": "object", "required": []string{"inputs"},
		"properties": map[string]any{
			"id":         map[string]any{"type": "string"},
			"parameters": map[string]any{"type": "object", "additionalProperties": true, "description": "binary_data_output (bool) is read; others are ignored."},
			"inputs":     map[string]any{"type": "array", "items": tensor("An input tensor: data, or parameters.binary_data_size.")},
			"outputs": map[string]any{"type": "array", "items": map[string]any{"type": "object", "required": []string{"name"},
				"properties": map[string]any{"name": map[string]any{"type": "string"},
					"parameters": map[string]any{"type": "object", "additionalProperties": true, "description": "binary_data (bool)."}}}},
		}}
	schemas["V2InferenceResponse"] = map[string]any{"type": "object", "required": []string{"model_name", "outputs"},
		"properties": map[string]any{
			"model_name":    map[string]any{"type": "string"},
			"model_version": map[string]any{"type": "string"},
			"id":            map[string]any{"type": "string"},
			"outputs":       map[string]any{"type": "array", "items": tensor("An output tensor: data, or parameters.binary_data_size bytes after the JSON.")},
		}}
	schemas["V2Error"] = map[string]any{"type": "object", "required": []string{"error"},
		"properties": map[string]any{
			"error":     map[string]any{"type": "string", "example": "inputs[0] (\"input\").datatype \"FP8\" is not supported"},
			"code":      map[string]any{"type": "string", "enum": append(slices.Clip(errorCodes), v2ErrorCodes...), "example": CodeBadDatatype},
			"traceback": map[string]any{"type": "string"},
		}}
}

// v2TypeText says in words what the input and output tensors are.
func v2TypeText(in, out spec.IOType) string {
	ins := map[spec.IOType]string{
		spec.Image: "input: UINT8 [H, W, 3] RGB pixels, [N, H, W, 3] for a batch of N <= max_batch_size, or BYTES holding PNG/JPEG/GIF files",
		spec.Numpy: "input: an array of any numeric datatype and shape, or BYTES [1] holding a .npy file",
		spec.JSON:  "input: BYTES, one JSON text per element",
		spec.File:  "input: BYTES, one file per element; parameters.filename and parameters.content_type name it",
	}
	outs := map[spec.IOType]string{
		spec.Image: "output: UINT8 [H, W, C] pixels (C 1, 3 or 4)",
		spec.Numpy: "output: the array predict returned, with its datatype and shape",
		spec.JSON:  "output: BYTES [N], the JSON text",
		spec.File:  "output: BYTES [N], the file; parameters.filename and content_type for one",
	}
	return ins[in] + "; " + outs[out]
}

// v2Examples are an infer request and response for the deployment's types.
func (s *Server) v2Examples() (req, resp map[string]any) {
	var in map[string]any
	switch s.cfg.Input {
	case spec.Image:
		in = map[string]any{"name": v2InputName, "datatype": "UINT8", "shape": []int{1, 2, 3}, "data": []int{255, 0, 0, 0, 128, 255}}
	case spec.Numpy:
		in = map[string]any{"name": v2InputName, "datatype": "FP32", "shape": []int{2, 2}, "data": []float64{1, 2, 3, 4}}
	case spec.JSON:
		in = map[string]any{"name": v2InputName, "datatype": v2Bytes, "shape": []int{1}, "data": []string{`{"text": "hello world", "threshold": 0.5}`}}
	default:
		in = map[string]any{"name": v2InputName, "datatype": v2Bytes, "shape": []int{1}, "data": []string{"a,b\n1,2\n"},
			"parameters": map[string]any{"filename": "data.csv"}}
	}
	var out map[string]any
	switch s.cfg.Output {
	case spec.Image:
		out = map[string]any{"name": v2OutputName, "datatype": "UINT8", "shape": []int{1, 2, 1}, "data": []int{255, 0}}
	case spec.Numpy:
		out = map[string]any{"name": v2OutputName, "datatype": "FP32", "shape": []int{2}, "data": []float64{0.5, 1.5}}
	case spec.JSON:
		out = map[string]any{"name": v2OutputName, "datatype": v2Bytes, "shape": []int{1}, "data": []string{`{"width": 2, "height": 1}`}}
	default:
		out = map[string]any{"name": v2OutputName, "datatype": v2Bytes, "shape": []int{1}, "data": []string{"a,b\n1,2\n"},
			"parameters": map[string]any{"filename": "result.csv", "content_type": "text/csv"}}
	}
	req = map[string]any{"id": "42", "inputs": []any{in}, "outputs": []any{map[string]any{"name": v2OutputName, "parameters": map[string]any{"binary_data": false}}}}
	resp = map[string]any{"model_name": s.modelName(), "model_version": v2ModelVersion, "id": "42", "outputs": []any{out}}
	return req, resp
}
