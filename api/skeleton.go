package api

import (
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// ioTypes are the values ?input and ?output accept.
var ioTypes = map[spec.IOType]bool{spec.Image: true, spec.Numpy: true, spec.JSON: true, spec.File: true}

// defaultONNXModel is the model an ONNX skeleton names when ?model is not
// given: what fetch_code names when the code holds no .onnx file.
const defaultONNXModel = "model.onnx"

// getSkeleton serves the file an author starts from for ?input=...&output=...:
// the generated aai_main.py, or with ?environment=onnx the generated
// aai_onnx.json naming ?model (a .onnx path in the code folder), the same
// file fetch_code writes into a code folder that has none.
func (s *server) getSkeleton(c *gin.Context) {
	in, out := spec.IOType(c.Query("input")), spec.IOType(c.Query("output"))
	env := c.DefaultQuery("environment", spec.EnvPython)
	model := c.Query("model")
	var fields []spec.FieldError
	for _, q := range []struct {
		name string
		v    spec.IOType
	}{{"input", in}, {"output", out}} {
		if !ioTypes[q.v] {
			fields = append(fields, spec.FieldError{Field: q.name, Message: "must be one of image, numpy, json, file"})
		}
	}
	if env != spec.EnvPython && env != spec.EnvONNX {
		fields = append(fields, spec.FieldError{Field: "environment", Message: "must be python or onnx"})
	}
	if model != "" && env != spec.EnvONNX {
		fields = append(fields, spec.FieldError{Field: "model", Message: "is for environment onnx only"})
	} else if msg := checkModelPath(model); msg != "" {
		fields = append(fields, spec.FieldError{Field: "model", Message: msg})
	}
	if len(fields) > 0 {
		writeError(c, errFields(errcode.InvalidQuery, "give ?input= and ?output= as image, numpy, json or file, and optionally ?environment=python or onnx (with ?model= a .onnx path)", fields))
		return
	}
	if env == spec.EnvONNX {
		if model == "" {
			model = defaultONNXModel
		}
		text, err := templates.ONNXSkeleton(in, out, model)
		if err != nil {
			writeError(c, errorf(errcode.UnsupportedType, "environment onnx serves image->image and image->json; %s is not one of them", spec.Pair{In: in, Out: out}).
				with("input", in).with("output", out))
			return
		}
		c.Header("Content-Disposition", `attachment; filename="aai_onnx.json"`)
		c.Data(http.StatusOK, "application/json; charset=utf-8", []byte(text))
		return
	}
	if s.skeleton == nil {
		writeError(c, &apiError{Code: errcode.SkeletonUnavailable, Message: "this server cannot generate skeletons"})
		return
	}
	text, err := s.skeleton(in, out)
	if err != nil {
		writeError(c, errorf(errcode.UnsupportedType, "%v", err).with("input", in).with("output", out))
		return
	}
	c.Header("Content-Disposition", `attachment; filename="aai_main.py"`)
	c.Data(http.StatusOK, "text/x-python; charset=utf-8", []byte(text))
}

// checkModelPath says what is wrong with ?model, "" when it is empty or a
// relative slash path of a .onnx file that stays inside the code folder.
func checkModelPath(model string) string {
	switch {
	case model == "":
		return ""
	case len(model) > 255:
		return "is over 255 characters"
	case strings.ContainsAny(model, "\\\x00"), path.IsAbs(model), path.Clean(model) != model, model == "..", strings.HasPrefix(model, "../"):
		return "must be a relative path inside the code folder, with / between folders"
	case !strings.EqualFold(path.Ext(model), ".onnx"):
		return "must name a .onnx file"
	}
	for _, part := range strings.Split(model, "/") {
		if strings.HasPrefix(part, ".") {
			return "must not have hidden components"
		}
	}
	return ""
}
