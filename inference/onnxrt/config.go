package onnxrt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/algocloud/algocloud/inference/inferapi"
)

// ConfigFile is the name of an ONNX deployment's configuration, in the
// algorithm's folder beside the model (docs/onnx.md; inferapi's, which the
// platform names it with).
const ConfigFile = inferapi.ONNXConfigFile

// DefaultMaxBatchSize is the batch limit of a model with a dynamic batch
// dimension when the configuration sets none.
const DefaultMaxBatchSize = 8

// Config is an ONNX deployment's aai_onnx.json: which model to serve and how
// images go in and answers come out. The deployment carries it as JSON.
type Config struct {
	// Model is the .onnx file, relative to the configuration's folder.
	Model string `json:"model"`
	// Preprocess turns each request's image into one input item.
	Preprocess Preprocess `json:"preprocess"`
	// Postprocess turns each item's outputs into the answer.
	Postprocess Postprocess `json:"postprocess"`
	// MaxBatchSize is the largest batch one Run gets (Triton's name). 0 is
	// DefaultMaxBatchSize, or the model's fixed batch when it fixes one.
	MaxBatchSize int `json:"max_batch_size,omitempty"`
	// TestingInput is an optional sample image (PNG, JPEG or GIF) in the
	// folder that Test Code sends to /predict (the server's /v1/test-input).
	// Without it the server generates an image of the model's input size.
	TestingInput string `json:"testing_input,omitempty"`

	// Dir is the folder the configuration was read from; relative paths start
	// there. Not part of the JSON.
	Dir string `json:"-"`
}

// LoadConfig reads dir/aai_onnx.json: unknown fields are errors (a typo would
// otherwise be silently ignored), enumerations and paths are checked, and
// defaults are filled in. The model file is not opened (Load does that).
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Config{}, fmt.Errorf("onnxrt: no %s in %s: an ONNX deployment needs one (docs/onnx.md)", ConfigFile, dir)
		}
		return Config{}, fmt.Errorf("onnxrt: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("onnxrt: parse %s: %w", path, err)
	}
	c.Dir = dir
	if c, err = c.WithDefaults(); err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// WithDefaults fills unset fields and checks the configuration.
func (c Config) WithDefaults() (Config, error) {
	var err error
	if strings.TrimSpace(c.Model) == "" {
		return c, errors.New("onnxrt: config: model (the .onnx file) is required")
	}
	if !filepath.IsLocal(c.Model) {
		return c, fmt.Errorf("onnxrt: config: model %q must be a path inside the algorithm's folder", c.Model)
	}
	if c.Postprocess.Labels != "" && !filepath.IsLocal(c.Postprocess.Labels) {
		return c, fmt.Errorf("onnxrt: config: labels %q must be a path inside the algorithm's folder", c.Postprocess.Labels)
	}
	if c.TestingInput != "" && !filepath.IsLocal(c.TestingInput) {
		return c, fmt.Errorf("onnxrt: config: testing_input %q must be a path inside the algorithm's folder", c.TestingInput)
	}
	if c.MaxBatchSize < 0 {
		return c, fmt.Errorf("onnxrt: config: max_batch_size %d is negative", c.MaxBatchSize)
	}
	if c.Preprocess, err = c.Preprocess.withDefaults(); err != nil {
		return c, err
	}
	if c.Postprocess, err = c.Postprocess.withDefaults(); err != nil {
		return c, err
	}
	return c, nil
}

// ModelPath is the model file's path (Model under Dir).
func (c Config) ModelPath() string { return filepath.Join(c.Dir, c.Model) }

// TestingInputPath is the sample image's path (TestingInput under Dir), or ""
// when the configuration names none.
func (c Config) TestingInputPath() string {
	if c.TestingInput == "" {
		return ""
	}
	return filepath.Join(c.Dir, c.TestingInput)
}

// readLabels reads one label per line, trimming spaces and a final empty line.
func readLabels(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: labels: %w", err)
	}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	if n := len(lines); n > 0 && strings.TrimSpace(lines[n-1]) == "" {
		lines = lines[:n-1]
	}
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return lines, nil
}
