package inference

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/algocloud/algocloud/inference/inferapi"
)

// The error codes and stages are package inferapi's (the client side
// branches on them too); these names keep the server's code short.
const (
	CodeUnauthorized      = inferapi.CodeUnauthorized
	CodeNotFound          = inferapi.CodeNotFound
	CodeMethodNotAllowed  = inferapi.CodeMethodNotAllowed
	CodeEmptyBody         = inferapi.CodeEmptyBody
	CodeBodyTooLarge      = inferapi.CodeBodyTooLarge
	CodeUnsupportedMedia  = inferapi.CodeUnsupportedMedia
	CodeNotAnImage        = inferapi.CodeNotAnImage
	CodeCorruptImage      = inferapi.CodeCorruptImage
	CodeImageTooLarge     = inferapi.CodeImageTooLarge
	CodeInvalidJSON       = inferapi.CodeInvalidJSON
	CodeNotNPY            = inferapi.CodeNotNPY
	CodeBadNPYHeader      = inferapi.CodeBadNPYHeader
	CodeNPYHeaderTooLarge = inferapi.CodeNPYHeaderTooLarge
	CodeUnsupportedDType  = inferapi.CodeUnsupportedDType
	CodeBadNPYShape       = inferapi.CodeBadNPYShape
	CodeNPYSizeMismatch   = inferapi.CodeNPYSizeMismatch
	CodeMissingFilename   = inferapi.CodeMissingFilename
	CodeBadFilename       = inferapi.CodeBadFilename
	CodeBadBase64         = inferapi.CodeBadBase64
	CodeInvalidMultipart  = inferapi.CodeInvalidMultipart
	CodeBadURL            = inferapi.CodeBadURL
	CodeURLForbidden      = inferapi.CodeURLForbidden
	CodeURLFetchFailed    = inferapi.CodeURLFetchFailed
	CodeNotReady          = inferapi.CodeNotReady
	CodeInitFailed        = inferapi.CodeInitFailed
	CodeOutOfMemory       = inferapi.CodeOutOfMemory
	CodeOverloaded        = inferapi.CodeOverloaded
	CodeShuttingDown      = inferapi.CodeShuttingDown
	CodePredictFailed     = inferapi.CodePredictFailed
	CodeTestInputFailed   = inferapi.CodeTestInputFailed
	CodeBadOutput         = inferapi.CodeBadOutput
	CodeWorkerCrashed     = inferapi.CodeWorkerCrashed
	CodePredictTimeout    = inferapi.CodePredictTimeout
	CodeInternal          = inferapi.CodeInternal
	StageImport           = inferapi.StageImport
	StageClass            = inferapi.StageClass
	StageInit             = inferapi.StageInit
	StageTestInput        = inferapi.StageTestInput
	StagePredict          = inferapi.StagePredict
	StageOutput           = inferapi.StageOutput
	StageTestInputOutput  = inferapi.StageTestInputOutput
)

// errorCodes lists every code, in order: the enum of the error schema in the
// endpoint's OpenAPI document (a test keeps it complete).
var errorCodes = inferapi.ErrorCodes

// APIError is the JSON error body every endpoint answers with, and the error
// type the server's layers pass up to the HTTP handlers.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Stage names the part of the algorithm's run that failed, for errors
	// the algorithm caused (see the Stage constants); empty otherwise.
	Stage     string `json:"stage,omitempty"`
	Traceback string `json:"traceback,omitempty"`
	// Logs is what the algorithm printed during the failed call, for a
	// caller that asked (header LogsHeader); never in the JSON body.
	Logs  string `json:"-"`
	cause error  // what errors.Is finds: ErrOverflow
}

// Unwrap returns the sentinel the error stands for, if any (ErrOverflow).
func (e *APIError) Unwrap() error { return e.cause }

// Error formats the status, code and message.
func (e *APIError) Error() string {
	if e.Status == 0 {
		return e.Code + ": " + e.Message
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func apiErr(status int, code, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// InitError is returned by WaitReady when the algorithm's __init__ (or the
// import of aai_main.py) raised; it is package inferapi's.
type InitError = inferapi.InitError

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"internal","message":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError writes e as the JSON error body with its status.
func writeError(w http.ResponseWriter, e *APIError) {
	writeJSON(w, errorHeaders(w, e), e)
}

// errorHeaders sets the headers an error's status calls for (the auth
// challenge, Retry-After) and returns the status (500 when e has none).
func errorHeaders(w http.ResponseWriter, e *APIError) int {
	status := e.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="algocloud"`)
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
	return status
}

// truncate cuts b to at most n bytes (for user text quoted in messages).
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
