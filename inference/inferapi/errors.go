package inferapi

import (
	"fmt"

	"github.com/algocloud/algocloud/inference/npy"
)

// Error codes of the JSON error body. Clients branch on them; they never change
// meaning. docs/inference-protocol.md lists them with their HTTP statuses. The
// names the platform API answers too (api/errcode) are spelt alike there:
// invalid_json and invalid_multipart were bad_json and bad_multipart here.
const (
	CodeUnauthorized      = "unauthorized"           // 401: missing or wrong bearer token
	CodeNotFound          = "not_found"              // 404
	CodeMethodNotAllowed  = "method_not_allowed"     // 405
	CodeEmptyBody         = "empty_body"             // 400: no request body
	CodeBodyTooLarge      = "body_too_large"         // 413: body (or downloaded image) over MaxBodyBytes
	CodeUnsupportedMedia  = "unsupported_media_type" // 415: Content-Type the input type does not take
	CodeNotAnImage        = "not_an_image"           // 400: bytes in no supported image format
	CodeCorruptImage      = "corrupt_image"          // 400: a known format that fails to decode (truncated...)
	CodeImageTooLarge     = "image_too_large"        // 413: width*height over MaxPixels
	CodeInvalidJSON       = "invalid_json"           // 400: malformed JSON body (nested too deep too); image input's JSON: not one "url" or "image_base64"
	CodeNotNPY            = "not_npy"                // 400: numpy input: the bytes do not start with the .npy magic
	CodeBadNPYHeader      = "bad_npy_header"         // 400: numpy input: unknown version, truncated or unparseable header
	CodeNPYHeaderTooLarge = "npy_header_too_large"   // 400: numpy input: header over 64 KiB
	CodeUnsupportedDType  = "unsupported_dtype"      // 400: numpy input: object, complex, string, structured... dtypes
	CodeBadNPYShape       = "bad_npy_shape"          // 400: numpy input: negative dimension, too many dimensions, absurd size
	CodeNPYSizeMismatch   = "npy_size_mismatch"      // 400: numpy input: shape x itemsize differs from the data's length
	CodeMissingFilename   = "missing_filename"       // 400: file input: no file name given
	CodeBadFilename       = "bad_filename"           // 400: file input: the name has no usable characters
	CodeBadBase64         = "bad_base64"             // 400: image_base64 is not base64
	CodeInvalidMultipart  = "invalid_multipart"      // 400: malformed multipart body or no "image"/"array"/"file" field
	CodeBadURL            = "bad_url"                // 400: not an http(s) URL
	CodeURLForbidden      = "url_forbidden"          // 400: URL resolves to a non-public address (internal/netpolicy)
	CodeURLFetchFailed    = "url_fetch_failed"       // 400: the URL could not be downloaded
	CodeNotReady          = "not_ready"              // 503: workers still running __init__
	CodeInitFailed        = "init_failed"            // 503: __init__ (or importing aai_main.py) raised
	CodeOutOfMemory       = "out_of_memory"          // 422: the call made the algorithm use more memory than its limit (the worker was killed and restarts)
	CodeOverloaded        = "overloaded"             // 429: the queue is full (inference.ErrOverflow); 503: no worker became free in time
	CodeShuttingDown      = "shutting_down"          // 503: the server is draining
	CodePredictFailed     = "predict_failed"         // 500: predict raised (traceback included) or ONNX Runtime's Run failed; 422 (onnx): one image failed its pipeline
	CodeTestInputFailed   = "test_input_failed"      // 500: testing_input_data raised (traceback included)
	CodeBadOutput         = "bad_output"             // 500: predict returned a value the output type cannot carry
	CodeWorkerCrashed     = "worker_crashed"         // 500: the worker process died during the call; it is restarted
	CodePredictTimeout    = "predict_timeout"        // 504: the call ran past Timeout; the worker is restarted
	CodeInternal          = "internal"               // 500: a bug in the server
)

// ErrorCodes lists every code above, in their order: the enum of the error
// schema in the endpoint's OpenAPI document (a test keeps it complete).
var ErrorCodes = []string{
	CodeUnauthorized, CodeNotFound, CodeMethodNotAllowed, CodeEmptyBody, CodeBodyTooLarge,
	CodeUnsupportedMedia, CodeNotAnImage, CodeCorruptImage, CodeImageTooLarge, CodeInvalidJSON,
	CodeNotNPY, CodeBadNPYHeader, CodeNPYHeaderTooLarge, CodeUnsupportedDType, CodeBadNPYShape,
	CodeNPYSizeMismatch, CodeMissingFilename, CodeBadFilename, CodeBadBase64, CodeInvalidMultipart,
	CodeBadURL, CodeURLForbidden, CodeURLFetchFailed, CodeNotReady, CodeInitFailed, CodeOutOfMemory, CodeOverloaded,
	CodeShuttingDown, CodePredictFailed, CodeTestInputFailed, CodeBadOutput, CodeWorkerCrashed,
	CodePredictTimeout, CodeInternal,
}

// Error is the JSON error body every endpoint answers with, as a client
// reads it. The server's own error type (inference.APIError) has the same
// JSON form and also carries the sentinel it stands for.
type Error struct {
	// Status is the HTTP status the body came with (not in the body).
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Stage names the part of the algorithm's run that failed, for errors
	// the algorithm caused (see the Stage constants); empty otherwise.
	Stage     string `json:"stage,omitempty"`
	Traceback string `json:"traceback,omitempty"`
}

// Error formats the status, code and message, as inference.APIError does.
func (e *Error) Error() string {
	if e.Status == 0 {
		return e.Code + ": " + e.Message
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Stages of an algorithm's run that an error may name (Error.Stage): what
// Test Code and endpoint callers are told failed. The runner reports all but
// StageOutput's Go-side checks (package inference's codec.go, badOutput) itself.
const (
	StageImport          = "import"            // importing aai_main.py (module-level code, its imports)
	StageClass           = "class"             // finding the class to serve in aai_main.py
	StageInit            = "init"              // the class's __init__
	StageTestInput       = "test_input"        // testing_input_data()
	StagePredict         = "predict"           // predict or predict_batch
	StageOutput          = "output"            // encoding predict's answer for the output type
	StageTestInputOutput = "test_input_output" // encoding testing_input_data's value for the input type
)

// NPYErrorCodes is the API error code of each kind of .npy file npy.Decode
// refuses (all 400s): the server answers them and Summarize names them.
var NPYErrorCodes = map[npy.ErrorKind]string{
	npy.KindEmpty:            CodeEmptyBody,
	npy.KindNotNPY:           CodeNotNPY,
	npy.KindBadHeader:        CodeBadNPYHeader,
	npy.KindHeaderTooLarge:   CodeNPYHeaderTooLarge,
	npy.KindBadShape:         CodeBadNPYShape,
	npy.KindSizeMismatch:     CodeNPYSizeMismatch,
	npy.KindUnsupportedDType: CodeUnsupportedDType,
}

// InitError is returned by WaitReady when the algorithm's __init__ (or the
// import of aai_main.py) raised: a permanent failure until the code changes.
type InitError struct {
	Code    string
	Message string
	// Stage is StageImport, StageClass or StageInit when the runner said
	// which; empty when the worker died or Python did not start.
	Stage     string
	Traceback string
}

// Error says that loading the algorithm failed; the message names the stage.
func (e *InitError) Error() string { return "loading the algorithm failed: " + e.Message }
