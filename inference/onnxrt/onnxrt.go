// Package onnxrt serves ONNX image models for the inference server
// (`environment: onnx`): it loads ONNX Runtime (libonnxruntime.so.1, installed by
// scripts/onnxruntime.sh) through github.com/yalue/onnxruntime_go, opens a model
// with its input and output names, shapes and types, runs whole batches, and turns
// decoded images into the model's float32 input and its outputs into an image or
// JSON, as declared in the algorithm's aai_onnx.json (docs/onnx.md).
//
// Typical use, once per process and once per deployment:
//
//	if err := onnxrt.Init(""); err != nil { ... }       // library: default location
//	p, err := onnxrt.Load(codeDir, onnxrt.Options{IntraOpThreads: 2})
//	results, err := p.Predict([]onnxrt.Image{img1, img2}) // one batch, one Run
//
// A Model and a Pipeline are safe for concurrent use.
package onnxrt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryVersion is the ONNX Runtime release scripts/onnxruntime.sh installs:
// the one whose C API headers github.com/yalue/onnxruntime_go v1.27.0 is built
// with (ORT_API_VERSION 24). Later releases also serve that API version.
const LibraryVersion = "1.24.1"

// LibraryEnv names the environment variable that points at libonnxruntime.so.1
// when no path is configured.
const LibraryEnv = "ALGOCLOUD_ONNXRUNTIME_LIB"

// DefaultLibrary is where scripts/onnxruntime.sh puts the library, relative to
// the repository root.
const DefaultLibrary = "third_party/onnxruntime/lib/libonnxruntime.so.1"

// installHint ends every "library missing" error.
const installHint = "run scripts/onnxruntime.sh (it installs " + DefaultLibrary +
	") or set " + LibraryEnv

var (
	initMu   sync.Mutex
	initPath string
)

// LibraryPath resolves which libonnxruntime.so.1 to load: configured when it is
// not empty, else $ALGOCLOUD_ONNXRUNTIME_LIB, else DefaultLibrary looked up from
// the working directory and the executable's directory and each of their parents
// (so both `go test` in a package folder and a binary in bin/ find the
// repository's copy). The error says where it looked and how to install it.
func LibraryPath(configured string) (string, error) {
	if configured != "" {
		return checkLibrary(configured, "configured")
	}
	if env := os.Getenv(LibraryEnv); env != "" {
		return checkLibrary(env, "$"+LibraryEnv)
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
			p := filepath.Join(dir, DefaultLibrary)
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
		DefaultLibrary, starts, installHint)
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

// Init loads ONNX Runtime once per process: libPath as LibraryPath resolves it
// ("" for the environment variable or the default location). Calling it again
// with the same (or an empty) path is a no-op; another path is an error, since a
// process can hold only one ONNX Runtime.
func Init(libPath string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if initPath != "" {
		if libPath == "" || sameFile(libPath, initPath) {
			return nil
		}
		return fmt.Errorf("onnxrt: ONNX Runtime already loaded from %s; cannot load %s too", initPath, libPath)
	}
	path, err := LibraryPath(libPath)
	if err != nil {
		return err
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("onnxrt: load ONNX Runtime from %s (want release %s or later): %w", path, LibraryVersion, err)
	}
	initPath = path
	return nil
}

// Initialized reports whether Init succeeded, and the library it loaded.
func Initialized() (bool, string) {
	initMu.Lock()
	defer initMu.Unlock()
	return initPath != "", initPath
}

// Version is the loaded ONNX Runtime's release ("1.24.1"), or "" before Init.
func Version() string {
	if ok, _ := Initialized(); !ok {
		return ""
	}
	return ort.GetVersion()
}

// ErrNotInitialized is returned by Open before Init.
var ErrNotInitialized = errors.New("onnxrt: ONNX Runtime not loaded: call onnxrt.Init first")

func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}
