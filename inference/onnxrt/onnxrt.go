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
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/algocloud/algocloud/inference/inferapi"
)

// LibraryVersion is the ONNX Runtime release scripts/onnxruntime.sh installs:
// the one whose C API headers github.com/yalue/onnxruntime_go v1.27.0 is built
// with (ORT_API_VERSION 24). Later releases also serve that API version.
const LibraryVersion = "1.24.1"

// LibraryEnv names the environment variable that points at libonnxruntime.so.1
// when no path is configured (inferapi's, which the platform resolves it with).
const LibraryEnv = inferapi.ONNXRuntimeLibEnv

// DefaultLibrary is where scripts/onnxruntime.sh puts the library, relative to
// the repository root (inferapi's).
const DefaultLibrary = inferapi.DefaultONNXRuntimeLib

var (
	initMu   sync.Mutex
	initPath string
)

// LibraryPath resolves which libonnxruntime.so.1 to load
// (inferapi.ONNXRuntimeLibPath: configured, $ALGOCLOUD_ONNXRUNTIME_LIB, or
// DefaultLibrary above the working and executable folders).
func LibraryPath(configured string) (string, error) { return inferapi.ONNXRuntimeLibPath(configured) }

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
