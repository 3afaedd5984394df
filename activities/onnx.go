package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"

	"github.com/algocloud/algocloud/activities/actdef"
)

// onnxRuntimeLib is the ONNX Runtime library an environment onnx endpoint
// loads: the one this worker finds (inferapi.ONNXRuntimeLibPath: $ALGOCLOUD_ONNXRUNTIME_LIB
// or third_party/onnxruntime/lib above the working or executable folder), as
// an absolute path, since the local provider starts endpoints in their server
// folder with a minimal environment. "" for python, or when none is found:
// the endpoint then looks itself and /readyz reports what is missing.
func onnxRuntimeLib(env string) string {
	if env != spec.EnvONNX {
		return ""
	}
	p, err := inferapi.ONNXRuntimeLibPath("")
	if err != nil {
		return ""
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	return abs
}

// publishONNXRuntime publishes, for an environment onnx deployment on a
// remote server, the ONNX Runtime library this worker resolves (the one Test
// Code ran with, inferapi.ONNXRuntimeLibPath) and returns its SHA-256 for the bundle;
// "" for python. The store uploads it only when no object holds that sum.
func (a *Activities) publishONNXRuntime(ctx context.Context, in actdef.ServiceInput) (string, error) {
	return a.publishONNXRuntimeFor(ctx, in.DeploymentID, in.Spec.Environment, "complete")
}

// publishONNXRuntimeFor is publishONNXRuntime for deployment id of
// environment env, logged under step (the agent's path publishes it for
// Test Code too).
func (a *Activities) publishONNXRuntimeFor(ctx context.Context, id, env, step string) (string, error) {
	if env != spec.EnvONNX {
		return "", nil
	}
	lib, err := inferapi.ONNXRuntimeLibPath("")
	if err != nil {
		return "", fmt.Errorf("environment onnx on a remote server: the worker has no ONNX Runtime library to publish: %w", err)
	}
	sum, err := a.Bundles.PublishONNXRuntime(ctx, lib)
	if err != nil {
		return "", err
	}
	a.event(ctx, id, step, "ONNX Runtime published (%s, sha256 %s)", filepath.Base(lib), sum[:12])
	return sum, nil
}

// onnxSkeleton writes the generated aai_onnx.json into an environment onnx
// code folder that has none, naming its .onnx model when it holds exactly one
// (else "model.onnx", which the author then adds).
func (a *Activities) onnxSkeleton(ctx context.Context, in actdef.FetchCodeInput, dir string, info *actdef.CodeInfo) error {
	if _, err := os.Stat(filepath.Join(dir, inferapi.ONNXConfigFile)); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	models, err := onnxModels(dir)
	if err != nil {
		return fmt.Errorf("look for .onnx models: %w", err)
	}
	model := "model.onnx"
	if len(models) == 1 {
		model = models[0]
	}
	skel, err := templates.ONNXSkeleton(in.Spec.Input, in.Spec.Output, model)
	if err != nil {
		return nonRetryable(actdef.BadInputErrorType, err)
	}
	if err := os.WriteFile(filepath.Join(dir, inferapi.ONNXConfigFile), []byte(skel), 0o644); err != nil {
		return err
	}
	info.GeneratedMain = true
	switch len(models) {
	case 1:
		a.event(ctx, in.DeploymentID, "fetch_code", "no %s in the code: wrote the generated %s->%s configuration for %s; adapt its preprocessing to your model and fetch again", inferapi.ONNXConfigFile, in.Spec.Input, in.Spec.Output, model)
	case 0:
		a.event(ctx, in.DeploymentID, "fetch_code", "no %s and no .onnx model in the code: wrote the generated %s->%s configuration naming %s; add the model and fetch again", inferapi.ONNXConfigFile, in.Spec.Input, in.Spec.Output, model)
	default:
		a.event(ctx, in.DeploymentID, "fetch_code", "no %s in the code, and %d .onnx models (%s): wrote the generated configuration naming %s; set its \"model\" and fetch again", inferapi.ONNXConfigFile, len(models), strings.Join(models, ", "), model)
	}
	return nil
}

// onnxModels lists the .onnx files under dir (slash paths relative to it,
// sorted), skipping hidden folders such as .git.
func onnxModels(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && strings.EqualFold(filepath.Ext(d.Name()), ".onnx") {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}
