package templates

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"text/template"

	"github.com/algocloud/algocloud/spec"
)

//go:embed onnx/aai_onnx.json.tmpl
var onnxSkeletonText string

var onnxSkeleton = template.Must(template.New("aai_onnx.json").Option("missingkey=error").Funcs(template.FuncMap{
	"json": func(s string) (string, error) {
		b, err := json.Marshal(s)
		return string(b), err
	},
}).Parse(onnxSkeletonText))

// ONNXSkeleton returns the aai_onnx.json written for an environment onnx
// deployment whose code has none: it serves model (a path in the folder) as
// the in->out API type (image->image or image->json, spec.ONNXPairs) with
// neutral settings: the model's own input size (each image its own size when
// the model's is dynamic), RGB scaled to 0..1, NCHW; an image output scaled
// by each image's min..max and restored to the request's size, or every
// output as JSON arrays. docs/onnx.md lists the fields to adapt it.
func ONNXSkeleton(in, out spec.IOType, model string) (string, error) {
	if !spec.ONNXPairs[spec.Pair{In: in, Out: out}] {
		return "", fmt.Errorf("aai_onnx.json skeleton %s: %w", spec.Pair{In: in, Out: out}, ErrUnsupportedPair)
	}
	var b bytes.Buffer
	if err := onnxSkeleton.Execute(&b, struct {
		Model  string
		Output spec.IOType
	}{model, out}); err != nil {
		return "", fmt.Errorf("render aai_onnx.json skeleton: %w", err)
	}
	return b.String(), nil
}
