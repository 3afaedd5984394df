package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/spec"
)

// ioTypes are the values ?input and ?output accept.
var ioTypes = map[spec.IOType]bool{spec.Image: true, spec.Numpy: true, spec.JSON: true, spec.File: true}

// getSkeleton serves the generated aai_main.py for ?input=...&output=...
func (s *server) getSkeleton(c *gin.Context) {
	in, out := spec.IOType(c.Query("input")), spec.IOType(c.Query("output"))
	var fields []spec.FieldError
	for _, q := range []struct {
		name string
		v    spec.IOType
	}{{"input", in}, {"output", out}} {
		if !ioTypes[q.v] {
			fields = append(fields, spec.FieldError{Field: q.name, Message: "must be one of image, numpy, json, file"})
		}
	}
	if len(fields) > 0 {
		writeError(c, errFields("invalid_query", "give ?input= and ?output= as image, numpy, json or file", fields))
		return
	}
	if s.skeleton == nil {
		writeError(c, &apiError{Status: http.StatusServiceUnavailable, Code: "skeleton_unavailable", Message: "this server cannot generate skeletons"})
		return
	}
	text, err := s.skeleton(in, out)
	if err != nil {
		writeError(c, errBadRequest("unsupported_type", "%v", err).with("input", in).with("output", out))
		return
	}
	c.Header("Content-Disposition", `attachment; filename="aai_main.py"`)
	c.Data(http.StatusOK, "text/x-python; charset=utf-8", []byte(text))
}
