package inference

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/algocloud/algocloud/spec"
)

// inputCodec turns /predict requests into the value predict receives, for one
// input type. Implementations are safe for concurrent use.
type inputCodec interface {
	// Decode reads r's body, which the server has already bounded by
	// MaxBodyBytes. Client mistakes come back as *APIError (4xx).
	Decode(ctx context.Context, r *http.Request) (Value, error)
	// Want is the wire kind the runner should send testing_input_data's value as.
	Want() Kind
	// EncodeRequest turns testing_input_data's value into a /predict body.
	EncodeRequest(v Value) (contentType string, body []byte, err error)
	// OpenAPIRequest is the OpenAPI 3.0 requestBody object of /predict.
	OpenAPIRequest() map[string]any
}

// outputCodec turns what predict returned into the HTTP response, for one
// output type. Implementations are safe for concurrent use.
type outputCodec interface {
	// Want is the wire kind the runner should send predict's value as.
	Want() Kind
	// Encode makes the response body; a value the type cannot carry is an
	// *APIError with code bad_output.
	Encode(v Value) (contentType string, body []byte, err error)
	// OpenAPIResponse is the OpenAPI 3.0 response object of a successful /predict.
	OpenAPIResponse() map[string]any
}

// newInputCodec returns the codec for an input type; numpy, json and file
// inputs slot in here.
func newInputCodec(t spec.IOType, cfg Config, f *fetcher) (inputCodec, error) {
	switch t {
	case spec.Image:
		return &imageInput{maxPixels: cfg.MaxPixels, fetch: f}, nil
	}
	return nil, fmt.Errorf("input type %q is not served yet", t)
}

// newOutputCodec returns the codec for an output type; numpy and file outputs
// slot in here.
func newOutputCodec(t spec.IOType) (outputCodec, error) {
	switch t {
	case spec.Image:
		return imageOutput{}, nil
	case spec.JSON:
		return jsonOutput{}, nil
	}
	return nil, fmt.Errorf("output type %q is not served yet", t)
}

// badOutput is the error for a value predict returned that the output type
// cannot carry.
func badOutput(format string, args ...any) *APIError {
	return apiErr(http.StatusInternalServerError, CodeBadOutput, "the algorithm returned a value the API type cannot carry: "+format, args...)
}

// imageOutput sends predict's array as a lossless PNG.
type imageOutput struct{}

func (imageOutput) Want() Kind { return KindTensor }

func (imageOutput) Encode(v Value) (string, []byte, error) {
	img, err := tensorToImage(v)
	if err != nil {
		return "", nil, badOutput("%v", err)
	}
	b, err := encodePNG(img)
	if err != nil {
		return "", nil, err
	}
	return "image/png", b, nil
}

func (imageOutput) OpenAPIResponse() map[string]any {
	return map[string]any{
		"description": "The output image, as a lossless PNG (grayscale, RGB or RGBA).",
		"content": map[string]any{
			"image/png": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
		},
	}
}

// jsonOutput sends predict's value as JSON; the runner already serialised it.
type jsonOutput struct{}

func (jsonOutput) Want() Kind { return KindJSON }

func (jsonOutput) Encode(v Value) (string, []byte, error) {
	if v.Kind != KindJSON || !json.Valid(v.Data) {
		return "", nil, badOutput("expected JSON from the worker, got a %s value", v.Kind)
	}
	return "application/json", v.Data, nil
}

func (jsonOutput) OpenAPIResponse() map[string]any {
	return map[string]any{
		"description": "What the algorithm's predict returned, as JSON.",
		"content": map[string]any{
			"application/json": map[string]any{
				"schema":  map[string]any{},
				"example": map[string]any{"width": 64, "height": 64, "mean_rgb": []float64{127.5, 120.1, 99.8}},
			},
		},
	}
}
