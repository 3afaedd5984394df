package inferapi

import (
	"github.com/algocloud/algocloud/internal/sandbox"

	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/algocloud/algocloud/spec"
)

// Config is the inference server's configuration, written as JSON by the
// platform (activities) and read by cmd/algocloud-infer (package inference).
type Config struct {
	// Name is the API name, shown in the OpenAPI document and logs.
	Name string `json:"name"`
	// Listen is host:port.
	Listen string `json:"listen"`
	// CertFile and KeyFile enable TLS; both empty serves plain HTTP (tests only).
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// TokenSHA256 is the hex SHA-256 of the bearer token that may call predict.
	// The token itself never reaches the server's disk.
	TokenSHA256 string `json:"token_sha256"`
	// TokenFile, when set, is a file holding TokenSHA256's hex instead (and
	// TokenSHA256 is ignored): the server re-reads it when it changes, so a
	// rotated token takes effect at once, without a restart (token.go).
	TokenFile string `json:"token_file,omitempty"`
	// PlatformTokenSHA256 is the hex SHA-256 of the platform caller token
	// (predictions/call.PlatformToken) that the platform's async predictions
	// and batches call with. Accepted beside the user's token and untouched
	// by its rotation; empty accepts no platform caller.
	PlatformTokenSHA256 string `json:"platform_token_sha256,omitempty"`
	// AgentTokenSHA256 is the hex SHA-256 of the server agent's own token,
	// which its batch chunks (agent/commands KindBatch) call the live
	// revision with on loopback: the agent makes it and keeps it in its own
	// folder, never mounted into a sandbox; it never leaves the server.
	// Accepted beside the user's token; empty accepts no agent caller.
	AgentTokenSHA256 string `json:"agent_token_sha256,omitempty"`
	// AgentSocket, when set, is a Unix socket path on which the server also
	// serves plain HTTP (the same handler and token check) for its server
	// agent's batch chunks: no TLS and no TCP for a caller on the same
	// machine, which cost the endpoint CPU per request. The agent names a
	// path in its own folder, which no sandbox mounts; the socket is made
	// 0600 and opened once the workers are up. Empty: the agent calls the
	// TLS port as before.
	AgentSocket string `json:"agent_socket,omitempty"`
	// Environment is what serves predict: "python" (default: Python workers
	// running aai_main.py) or "onnx" (CodeDir/aai_onnx.json's model, run in
	// process with ONNX Runtime; docs/onnx.md).
	Environment string `json:"environment,omitempty"`
	// ONNXRuntimeLib is libonnxruntime.so.1 for environment onnx; empty
	// resolves it as onnxrt.LibraryPath does ($ALGOCLOUD_ONNXRUNTIME_LIB, then
	// third_party/onnxruntime/lib above the working and executable folders).
	ONNXRuntimeLib string `json:"onnxruntime_lib,omitempty"`
	// CodeDir holds aai_main.py (or aai_onnx.json) and the algorithm's files.
	CodeDir string `json:"code_dir"`
	// Python is the interpreter of the algorithm's venv.
	Python string `json:"python"`
	// RunDir is the server's own folder, where it writes the Python runner
	// (aai_runner.py) its workers start from. Empty: LoadConfig sets the
	// config file's folder (the server's folder on every provider), so a
	// crash leaves nothing in the system temp folder; a Config built in code
	// without one uses the system temp folder.
	RunDir string `json:"run_dir,omitempty"`
	// Threads is the number of Python worker processes; for onnx, the number
	// of batches run at once (see docs/onnx.md).
	Threads int `json:"threads"`
	// Input and Output are the API type.
	Input  spec.IOType `json:"input"`
	Output spec.IOType `json:"output"`
	// Timeout bounds one prediction; a worker past it is killed and restarted.
	Timeout Duration `json:"timeout"`
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// MaxPixels bounds a decoded image (width*height), against decompression bombs.
	MaxPixels int64 `json:"max_pixels"`
	// AllowPrivateURLs lets image URLs reach loopback, private, link-local
	// and every other non-public address (off by default: SSRF; see
	// internal/netpolicy for what is refused without it).
	AllowPrivateURLs bool `json:"allow_private_urls"`
	// PublicMetrics serves /metrics without the bearer token (for a
	// Prometheus that scrapes without credentials). Off by default: the
	// metrics tell request rates, errors and latencies, which are the
	// owner's business.
	PublicMetrics bool `json:"public_metrics,omitempty"`
	// Sandbox is how the Python workers run (internal/sandbox): under
	// bubblewrap with the deployment's limits, or, only where the operator
	// chose it, unconfined (mode "none"). Absent: unconfined, as a server
	// started by hand for a benchmark; every platform-made config sets it.
	Sandbox *sandbox.Config `json:"sandbox,omitempty"`

	// Dynamic batching, named after Triton's dynamic_batching settings.

	// MaxBatchSize is the most requests one batch holds (default 1: no
	// batching). Batches form only for classes that define predict_batch;
	// for others every call is a batch of one.
	MaxBatchSize int `json:"max_batch_size,omitempty"`
	// MaxQueueDelay is how long the oldest queued request may wait for a
	// batch to fill before a smaller batch leaves (default 0: a free worker
	// takes whatever is queued at once).
	MaxQueueDelay Duration `json:"max_queue_delay,omitempty"`
	// PreferredBatchSizes are batch sizes sent as soon as enough requests
	// are queued, without waiting for MaxQueueDelay (Triton's
	// preferred_batch_size); each at most MaxBatchSize. Empty: MaxBatchSize.
	PreferredBatchSizes []int `json:"preferred_batch_sizes,omitempty"`
	// MaxQueueSize bounds the requests waiting for a worker: once
	// MaxQueueSize + Threads*MaxBatchSize requests are in progress, /predict
	// answers 429 overloaded with Retry-After (ErrOverflow) before reading
	// the body. Default max(64, 16*Threads, 2*Threads*MaxBatchSize).
	MaxQueueSize int `json:"max_queue_size,omitempty"`
}

// Duration is a time.Duration that reads and writes as "30s".
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// WithDefaults fills unset limits.
func (c Config) WithDefaults() Config {
	if c.Environment == "" {
		c.Environment = spec.EnvPython
	}
	if c.Threads <= 0 {
		c.Threads = 1
	}
	if c.Timeout <= 0 {
		c.Timeout = Duration(60 * time.Second)
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 32 << 20
	}
	if c.MaxPixels <= 0 {
		c.MaxPixels = 40_000_000
	}
	if c.Python == "" {
		c.Python = "/usr/bin/python3"
	}
	if c.MaxBatchSize <= 0 {
		c.MaxBatchSize = 1
	}
	if c.MaxQueueDelay < 0 {
		c.MaxQueueDelay = 0
	}
	if c.MaxQueueSize <= 0 {
		c.MaxQueueSize = max(64, 16*c.Threads, 2*c.Threads*c.MaxBatchSize)
	}
	return c
}

// CheckBatching reports batching settings that cannot work together.
func (c Config) CheckBatching() error {
	for _, p := range c.PreferredBatchSizes {
		if p < 1 || p > c.MaxBatchSize {
			return fmt.Errorf("inference config: preferred_batch_sizes holds %d, which is not in 1..max_batch_size (%d)", p, c.MaxBatchSize)
		}
	}
	return nil
}

// LoadConfig reads a JSON config file.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read inference config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("parse inference config %s: %w", path, err)
	}
	if c.RunDir == "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return Config{}, fmt.Errorf("inference config %s: %w", path, err)
		}
		c.RunDir = filepath.Dir(abs)
	}
	return c.WithDefaults(), nil
}

// WriteConfig writes c to path (mode 0600).
func WriteConfig(path string, c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
