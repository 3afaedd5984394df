package inference

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/algocloud/algocloud/spec"
)

// httpBody is a request or response body with the headers that describe it.
type httpBody struct {
	ContentType string
	Disposition string // Content-Disposition (file outputs)
	Data        []byte
}

// inputCodec turns /predict requests into the value predict receives, for one
// input type. Implementations are safe for concurrent use.
type inputCodec interface {
	// Decode reads r's body, which the server has already bounded by
	// MaxBodyBytes. Client mistakes come back as *APIError (4xx).
	Decode(ctx context.Context, r *http.Request) (Value, error)
	// Want is the wire kind the runner should send testing_input_data's value as.
	Want() Kind
	// EncodeRequest turns testing_input_data's value into a /predict body.
	EncodeRequest(v Value) (httpBody, error)
	// OpenAPIRequest is the OpenAPI 3.0 requestBody object of /predict.
	OpenAPIRequest() map[string]any
	// ErrorCodes are the 400 codes Decode may answer, for the OpenAPI document.
	ErrorCodes() []string
}

// outputCodec turns what predict returned into the HTTP response, for one
// output type. Implementations are safe for concurrent use.
type outputCodec interface {
	// Want is the wire kind the runner should send predict's value as.
	Want() Kind
	// Encode makes the response body; a value the type cannot carry is an
	// *APIError with code bad_output.
	Encode(v Value) (httpBody, error)
	// OpenAPIResponse is the OpenAPI 3.0 response object of a successful /predict.
	OpenAPIResponse() map[string]any
}

// newInputCodec returns the codec for an input type.
func newInputCodec(t spec.IOType, cfg Config, f *fetcher) (inputCodec, error) {
	switch t {
	case spec.Image:
		return &imageInput{maxPixels: cfg.MaxPixels, fetch: f, pillowJPEG: cfg.Environment != spec.EnvONNX}, nil
	case spec.Numpy:
		return numpyInput{}, nil
	case spec.JSON:
		return jsonInput{}, nil
	case spec.File:
		return fileInput{}, nil
	}
	return nil, fmt.Errorf("input type %q is not served", t)
}

// newOutputCodec returns the codec for an output type.
func newOutputCodec(t spec.IOType) (outputCodec, error) {
	switch t {
	case spec.Image:
		return imageOutput{}, nil
	case spec.JSON:
		return jsonOutput{}, nil
	case spec.Numpy:
		return numpyOutput{}, nil
	case spec.File:
		return fileOutput{}, nil
	}
	return nil, fmt.Errorf("output type %q is not served", t)
}

// badOutput is the error for a value predict returned that the output type
// cannot carry.
func badOutput(format string, args ...any) *APIError {
	e := apiErr(http.StatusInternalServerError, CodeBadOutput, "encoding the answer failed: the algorithm returned a value the API type cannot carry: "+format, args...)
	e.Stage = StageOutput
	return e
}

// imageOutput sends predict's array as a lossless PNG.
type imageOutput struct{}

func (imageOutput) Want() Kind { return KindTensor }

func (imageOutput) Encode(v Value) (httpBody, error) {
	b, err := encodeTensorPNG(v)
	if err != nil {
		return httpBody{}, badOutput("%v", err)
	}
	return httpBody{ContentType: "image/png", Data: b}, nil
}

func (imageOutput) OpenAPIResponse() map[string]any {
	return map[string]any{
		// In words, not as an Example Object: one without a value fails
		// validation (kin-openapi: "no value or externalValue field").
		"description": "The output image, as a lossless PNG (grayscale, RGB or RGBA); a (64, 64) bool mask comes as a 64x64 grayscale PNG of 0 and 255. " +
			"Save the body as a .png file, or decode it: np.asarray(Image.open(io.BytesIO(response_bytes))).",
		"content": map[string]any{
			"image/png": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
		},
	}
}

// jsonOutput sends predict's value as JSON; the runner already serialised it.
type jsonOutput struct{}

func (jsonOutput) Want() Kind { return KindJSON }

func (jsonOutput) Encode(v Value) (httpBody, error) {
	if v.Kind != KindJSON || !json.Valid(v.Data) {
		return httpBody{}, badOutput("expected JSON from the worker, got a %s value", v.Kind)
	}
	return httpBody{ContentType: "application/json", Data: v.Data}, nil
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

// numpyOutput sends predict's array as a .npy file.
type numpyOutput struct{}

func (numpyOutput) Want() Kind { return KindTensor }

func (numpyOutput) Encode(v Value) (httpBody, error) {
	if v.Kind == KindBytes { // predict returned .npy bytes itself (np.save to a BytesIO)
		t, err := decodeNPY(v.Data)
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) {
				err = errors.New(ae.Message)
			}
			return httpBody{}, badOutput("predict returned bytes that are not a usable .npy file: %v", err)
		}
		v = t
	}
	b, err := encodeNPY(v)
	if err != nil {
		return httpBody{}, badOutput("%v", err)
	}
	return httpBody{ContentType: npyMediaType, Data: b}, nil
}

func (numpyOutput) OpenAPIResponse() map[string]any {
	return map[string]any{
		"description": "The array predict returned, as a .npy file (format 1.0, C order, little-endian): " +
			"numpy.load(io.BytesIO(response_bytes)) reads it. dtypes: " + npySupported + ". " +
			"For example np.zeros((2, 3), np.float32) comes as 128 bytes: a 64-byte header, whose text is " +
			"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }, then 24 bytes of data.",
		"content": map[string]any{
			npyMediaType: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
		},
	}
}

// fileOutput sends predict's (name, bytes) as a download.
type fileOutput struct{}

func (fileOutput) Want() Kind { return KindFile }

func (fileOutput) Encode(v Value) (httpBody, error) {
	if v.Kind != KindFile && v.Kind != KindBytes {
		return httpBody{}, badOutput("expected a file (name, bytes) from the worker, got a %s value", v.Kind)
	}
	ct := fileContentType(v.Name, v.ContentType, v.Data)
	name := sanitizeFileName(v.Name)
	if name == "" {
		name = "output" + extensionFor(ct)
	}
	return httpBody{ContentType: ct, Disposition: contentDisposition(name), Data: v.Data}, nil
}

func (fileOutput) OpenAPIResponse() map[string]any {
	return map[string]any{
		"description": "The file predict returned. Content-Disposition: attachment carries its name; " +
			"Content-Type is the one predict gave, else the one the name's extension implies, else sniffed from the bytes.",
		"headers": map[string]any{
			"Content-Disposition": map[string]any{
				"description": "attachment; filename=\"...\" (with filename*=utf-8''... for names beyond ASCII).",
				"schema":      map[string]any{"type": "string"},
				"example":     `attachment; filename="result.csv"`,
			},
		},
		"content": map[string]any{
			"*/*": map[string]any{
				"schema": map[string]any{"type": "string", "format": "binary"},
				"examples": map[string]any{"csv": map[string]any{
					"summary": "predict returned (\"result.csv\", b\"a,b\\n1,2\\n\")",
					"value":   "a,b\n1,2\n",
				}},
			},
		},
	}
}
