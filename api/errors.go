package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/store"
)

// apiError is an error answer: {"code": ..., "message": ..., extra...}. Code
// is one of the registry's (package errcode), which also decides the status;
// Message is for people.
type apiError struct {
	Code    errcode.Code
	Message string
	Extra   map[string]any
}

func (e *apiError) Error() string { return e.Code.String() + ": " + e.Message }

// with adds an extra member to the error's body.
func (e *apiError) with(key string, v any) *apiError {
	if e.Extra == nil {
		e.Extra = map[string]any{}
	}
	e.Extra[key] = v
	return e
}

// writeError answers with e and stops the handler chain. It is the only
// place that writes an error body's "code".
func writeError(c *gin.Context, e *apiError) {
	body := gin.H{}
	for k, v := range e.Extra {
		body[k] = v
	}
	body["code"] = e.Code.String()
	body["message"] = e.Message
	c.AbortWithStatusJSON(e.Code.Status(), body)
}

func errNotFound(msg string) *apiError {
	return &apiError{Code: errcode.NotFound, Message: msg}
}

func errUnauthorized(msg string) *apiError {
	return &apiError{Code: errcode.Unauthorized, Message: msg}
}

func errInternal() *apiError {
	return &apiError{Code: errcode.Internal, Message: "internal error; it has been logged"}
}

// errorf is an error answer with a formatted message.
func errorf(code errcode.Code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func errTooLarge(limit int64) *apiError {
	return errorf(errcode.BodyTooLarge, "request body is over the limit of %d bytes", limit)
}

// errFields is an error answer (a 400 code) listing every invalid field.
func errFields(code errcode.Code, msg string, fields []spec.FieldError) *apiError {
	return (&apiError{Code: code, Message: msg}).with("fields", fields)
}

// errField is an error answer (a 400 code) naming one invalid field.
func errField(code errcode.Code, field, format string, args ...any) *apiError {
	m := fmt.Sprintf(format, args...)
	return errFields(code, field+": "+m, []spec.FieldError{{Field: field, Message: m}})
}

// errValidation turns a *spec.ValidationError into an error answer (a 400
// code) with its fields.
func errValidation(code errcode.Code, err error) *apiError {
	if v, ok := spec.AsValidation(err); ok {
		return errFields(code, v.Error(), v.Fields)
	}
	return errorf(code, "%v", err)
}

// fail answers a handler's unexpected error: a known kind maps to its status,
// anything else is logged and answered 500 without its detail.
func (s *server) fail(c *gin.Context, what string, err error) {
	var ae *apiError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		writeError(c, ae)
		return
	case errors.As(err, &tooBig):
		writeError(c, errTooLarge(tooBig.Limit))
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(c, errNotFound("deployment not found"))
		return
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		// The client left; nobody reads the answer.
		_ = c.Error(err)
		c.AbortWithStatus(499)
		return
	}
	_ = c.Error(err)
	s.log.ErrorContext(c.Request.Context(), what, "path", c.Request.URL.Path, "error", err)
	writeError(c, errInternal())
}

// workflowFailure answers an error from Workflows that is not a *StepError:
// a missing workflow is 404, anything else means Temporal did not answer.
func (s *server) workflowFailure(c *gin.Context, what string, err error) {
	switch {
	case errors.Is(err, ErrWorkflowNotFound):
		writeError(c, &apiError{Code: errcode.WorkflowNotFound,
			Message: "the deployment's workflow no longer runs; delete the deployment and create it again"})
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		_ = c.Error(err)
		c.AbortWithStatus(499)
	default:
		_ = c.Error(err)
		s.log.WarnContext(c.Request.Context(), what, "path", c.Request.URL.Path, "error", err)
		writeError(c, &apiError{Code: errcode.TemporalUnavailable,
			Message: "the workflow service did not answer; try again shortly"})
	}
}

// decodeJSON reads the request body into dst: at most maxJSONBytes, no unknown
// fields, nothing after the value. An empty body leaves dst as it is when
// allowEmpty, else it is an error.
func decodeJSON(c *gin.Context, dst any, allowEmpty bool) *apiError {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, maxJSONBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if errors.Is(err, io.EOF) {
		if allowEmpty {
			return nil
		}
		return errorf(errcode.InvalidJSON, "the request body is empty: send a JSON object")
	}
	if err != nil {
		return jsonError(err)
	}
	var rest json.RawMessage
	if err := dec.Decode(&rest); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errTooLarge(tooBig.Limit)
		}
		return errorf(errcode.InvalidJSON, "unexpected data after the JSON value")
	}
	return nil
}

// jsonError explains a decoding error.
func jsonError(err error) *apiError {
	var (
		tooBig  *http.MaxBytesError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return errTooLarge(tooBig.Limit)
	case errors.As(err, &syntax):
		return errorf(errcode.InvalidJSON, "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(errcode.InvalidJSON, "malformed JSON: the body ends too early")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return errorf(errcode.InvalidJSON, "the body must be a JSON %s, not %s", typeErr.Type, typeErr.Value)
		}
		return errField(errcode.InvalidField, field, "must be %s, not %s", jsonKind(typeErr.Type), typeErr.Value)
	}
	// encoding/json has no typed error for an unknown field; its text is
	// `json: unknown field "name"` (stable since Go 1.10).
	if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, uerr := strconv.Unquote(rest)
		if uerr != nil {
			name = rest
		}
		return errField(errcode.UnknownField, name, "unknown field")
	}
	return errorf(errcode.InvalidJSON, "malformed JSON: %v", err)
}

// jsonKind names a Go type the way a JSON author thinks of it.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}
