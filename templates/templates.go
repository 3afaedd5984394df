// Package templates holds the files algocloud generates or ships into a
// deployment: the aai_main.py skeleton for each API type and the Python runner
// that the inference server starts for every worker.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"text/template"

	"github.com/algocloud/algocloud/spec"
)

//go:embed python/aai_runner.py
var runnerPy []byte

//go:embed skeletons/*.py.tmpl
var skeletonFS embed.FS

// skeletons parses every skeleton once: types.py.tmpl defines the per-type
// comment blocks and sample inputs that the per-pair files (in_out.py.tmpl) share,
// so a new pair reuses what its types already explain.
var skeletons = template.Must(template.New("").Option("missingkey=error").ParseFS(skeletonFS, "skeletons/*.py.tmpl"))

// ErrUnsupportedPair is returned by Skeleton for an API type with no skeleton.
var ErrUnsupportedPair = errors.New("no aai_main.py skeleton for this API type")

// RunnerPy returns the Python worker runner (templates/python/aai_runner.py).
// The caller must not modify the returned slice.
func RunnerPy() []byte { return runnerPy }

// Skeleton returns a working aai_main.py for the in->out API type, with comments
// that explain the Python types predict receives and must return.
func Skeleton(in, out spec.IOType) (string, error) {
	name := fmt.Sprintf("%s_%s.py.tmpl", in, out)
	t := skeletons.Lookup(name)
	if t == nil {
		return "", fmt.Errorf("skeleton %s: %w", spec.Pair{In: in, Out: out}, ErrUnsupportedPair)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, spec.Pair{In: in, Out: out}); err != nil {
		return "", fmt.Errorf("render skeleton %s: %w", name, err)
	}
	return b.String(), nil
}
