package inferapi

import (
	"fmt"
	"os"
	"path/filepath"
)

// ONNXConfigFile is the name of an ONNX deployment's configuration, in the
// algorithm's folder beside the model (docs/onnx.md; inference/onnxrt reads
// it as onnxrt.ConfigFile).
const ONNXConfigFile = "aai_onnx.json"

// ONNXRuntimeLibEnv names the environment variable that points at libonnxruntime.so.1
// when no path is configured.
const ONNXRuntimeLibEnv = "ALGOCLOUD_ONNXRUNTIME_LIB"

// DefaultONNXRuntimeLib is where scripts/onnxruntime.sh puts the library, relative to
// the repository root.
const DefaultONNXRuntimeLib = "third_party/onnxruntime/lib/libonnxruntime.so.1"

// installHint ends every "library missing" error.
const installHint = "run scripts/onnxruntime.sh (it installs " + DefaultONNXRuntimeLib +
	") or set " + ONNXRuntimeLibEnv

// ONNXRuntimeLibPath resolves which libonnxruntime.so.1 to load: configured when it is
// not empty, else $ALGOCLOUD_ONNXRUNTIME_LIB, else DefaultONNXRuntimeLib looked up from
// the working directory and the executable's directory and each of their parents
// (so both `go test` in a package folder and a binary in bin/ find the
// repository's copy). The error says where it looked and how to install it.
// The server (inference/onnxrt.Init) loads what it returns; the platform
// only hashes the file, so this lives here, without ONNX Runtime's cgo
// binding.
func ONNXRuntimeLibPath(configured string) (string, error) {
	if configured != "" {
		return checkLibrary(configured, "configured")
	}
	if env := os.Getenv(ONNXRuntimeLibEnv); env != "" {
		return checkLibrary(env, "$"+ONNXRuntimeLibEnv)
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, DefaultONNXRuntimeLib)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("onnxrt: libonnxruntime.so.1 not found (no %s above %v): %s",
		DefaultONNXRuntimeLib, starts, installHint)
}

func checkLibrary(path, from string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("onnxrt: ONNX Runtime library %s (%s): %w; %s", path, from, err, installHint)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("onnxrt: ONNX Runtime library %s (%s) is not a file; %s", path, from, installHint)
	}
	return path, nil
}
