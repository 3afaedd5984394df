// Package spec defines what an author configures for a deployment (the wizard's
// first two pages) and how it is validated. The API, the workflow, the activities
// and the inference server all read these types. Validation runs where input
// crosses a boundary: the CLI (to fail before uploading), the API (a 4xx naming
// the field), the workflow's configure validator (an update can come from any
// Temporal client), and the Python installer, which checks each requirement
// line again before pip sees it.
package spec

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IOType is the kind of data an algorithm takes or returns.
type IOType string

// The I/O types of docs/api-types.md.
const (
	Image IOType = "image" // PNG/JPEG bytes or a URL in; numpy HxWxC uint8 to predict; lossless PNG out
	Numpy IOType = "numpy" // .npy bytes
	JSON  IOType = "json"  // any JSON value
	File  IOType = "file"  // bytes plus a file name
)

// Pair is an input/output combination ("image->json").
type Pair struct{ In, Out IOType }

func (p Pair) String() string { return string(p.In) + "->" + string(p.Out) }

// SupportedPairs lists the API types the inference server serves: the whole
// 4x4 matrix of inputs and outputs (docs/api-types.md), each with a skeleton.
var SupportedPairs = map[Pair]bool{
	{Image, Image}: true, {Image, Numpy}: true, {Image, JSON}: true, {Image, File}: true,
	{Numpy, Image}: true, {Numpy, Numpy}: true, {Numpy, JSON}: true, {Numpy, File}: true,
	{JSON, Image}: true, {JSON, Numpy}: true, {JSON, JSON}: true, {JSON, File}: true,
	{File, Image}: true, {File, Numpy}: true, {File, JSON}: true, {File, File}: true,
}

// Environments and compute kinds an author can choose.
const (
	EnvPython = "python"
	EnvONNX   = "onnx"
	CPU       = "cpu"
	GPU       = "gpu"
)

// SupportedEnvironments are the environments this build can deploy.
var SupportedEnvironments = map[string]bool{EnvPython: true, EnvONNX: true}

// ONNXPairs are the API types environment onnx serves: an image goes through
// aai_onnx.json's preprocessing into the model, and its outputs come back as an
// image (postprocess kind "image") or JSON (kind "json"). See docs/onnx.md.
var ONNXPairs = map[Pair]bool{{Image, Image}: true, {Image, JSON}: true}

// ServesPair reports whether environment env serves the API type p.
func ServesPair(env string, p Pair) bool {
	if env == EnvONNX {
		return ONNXPairs[p]
	}
	return SupportedPairs[p]
}

// InstanceTypes lists the EC2 instance types offered per compute kind.
var InstanceTypes = map[string][]string{
	CPU: {"t2.micro", "t2.small", "t3.small", "t3.medium", "t3.large", "c5.large", "c5.xlarge", "c5.2xlarge", "m5.large", "m5.xlarge"},
	GPU: {"g4dn.xlarge", "g4dn.2xlarge", "g5.xlarge", "g5.2xlarge", "p3.2xlarge"},
}

// Regions lists the regions offered, with the names the wizard shows.
var Regions = map[string]string{
	"us-east-1": "N. Virginia", "us-east-2": "Ohio", "us-west-1": "N. California", "us-west-2": "Oregon",
	"eu-west-1": "Ireland", "eu-central-1": "Frankfurt", "ap-northeast-1": "Tokyo", "ap-southeast-1": "Singapore",
}

// MaxThreads bounds the worker count of one deployment.
const MaxThreads = 64

// Batching limits of a deployment.
const (
	MaxBatchSize    = 256
	MaxQueueDelayMS = 10000
	// MaxQueueSize bounds Spec.MaxQueueSize.
	MaxQueueSize = 100000
)

// Spec is a deployment's configuration.
type Spec struct {
	Name         string   `json:"name"`
	Description  string   `json:"description"`
	APIName      string   `json:"api_name"`
	Environment  string   `json:"environment"`
	Compute      string   `json:"compute"`
	InstanceType string   `json:"instance_type"`
	Region       string   `json:"region"`
	Threads      int      `json:"threads"`
	Input        IOType   `json:"input"`
	Output       IOType   `json:"output"`
	Requirements []string `json:"requirements"`
	// MaxBatchSize and MaxQueueDelayMS are the endpoint's dynamic batching
	// (Triton's max_batch_size and max_queue_delay); zero values batch nothing.
	MaxBatchSize    int `json:"max_batch_size,omitempty"`
	MaxQueueDelayMS int `json:"max_queue_delay_ms,omitempty"`
	// MaxQueueSize is how many requests may wait for a worker before the
	// endpoint answers 429 with Retry-After (its admission limit is this
	// plus Threads × MaxBatchSize); 0 keeps the server's default,
	// max(64, 16 × Threads, 2 × Threads × MaxBatchSize). A small queue
	// makes callers back off sooner instead of waiting in line.
	MaxQueueSize int `json:"max_queue_size,omitempty"`
	// PublicMetrics lets anyone read the endpoint's /metrics (Prometheus
	// text) without its token; by default /metrics needs the token.
	PublicMetrics bool `json:"public_metrics,omitempty"`
	// Network is what the algorithm's code may reach while it installs,
	// tests and serves: NetworkOutbound (the default: the internet, for pip
	// and model downloads in __init__) or NetworkNone (nothing). Never the
	// platform's own services.
	Network string `json:"network,omitempty"`
}

// The values of Spec.Network.
const (
	NetworkOutbound = "outbound"
	NetworkNone     = "none"
)

// WithDefaults fills the fields an author may leave out.
func (s Spec) WithDefaults() Spec {
	s.Name = strings.TrimSpace(s.Name)
	s.APIName = strings.TrimSpace(s.APIName)
	if s.Environment == "" {
		s.Environment = EnvPython
	}
	if s.Compute == "" {
		s.Compute = CPU
	}
	if s.InstanceType == "" {
		if s.Compute == GPU {
			s.InstanceType = "g4dn.xlarge"
		} else {
			s.InstanceType = "t3.small"
		}
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.Threads == 0 {
		s.Threads = 1
	}
	if s.Requirements == nil {
		s.Requirements = []string{}
	}
	return s
}

// FieldError names one invalid field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of a request.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid " + strings.Join(parts, "; ")
}

// Add records a problem with field.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns e when it holds a problem, else nil.
func (e *ValidationError) Err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// AsValidation reports whether err is a ValidationError and returns it.
func AsValidation(err error) (*ValidationError, bool) {
	var v *ValidationError
	ok := errors.As(err, &v)
	return v, ok
}

var (
	apiNameRe     = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	requirementRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,-]+\])?\s*((===|==|>=|<=|~=|!=|>|<)\s*[A-Za-z0-9.*+!_-]+\s*)?(,\s*(===|==|>=|<=|~=|!=|>|<)\s*[A-Za-z0-9.*+!_-]+\s*)*$`)
)

// printable reports whether text is valid UTF-8 without control characters
// other than those in allowed. Names reach terminals (algocloud ls), logs and
// the Temporal UI: an ANSI escape sequence in one could rewrite what an
// operator sees, and a NUL truncates it in C-backed tools.
func printable(text, allowed string) bool {
	if !utf8.ValidString(text) {
		return false
	}
	for _, r := range text {
		if (unicode.IsControl(r) || r == '\u2028' || r == '\u2029') && !strings.ContainsRune(allowed, r) {
			return false
		}
	}
	return true
}

// ValidAPIName reports whether name is a DNS label the platform accepts.
func ValidAPIName(name string) bool {
	return apiNameRe.MatchString(name) && !strings.Contains(name, "--")
}

// ValidateRequirement checks one pip requirement line: a package name with optional
// extras and version specifiers. Options (-e, --index-url, -r) and URLs are refused:
// they would let a requirement file fetch from or run anything.
func ValidateRequirement(line string) error {
	l := strings.TrimSpace(line)
	if l == "" {
		return errors.New("empty requirement")
	}
	if len(l) > 200 {
		return errors.New("requirement longer than 200 characters")
	}
	if strings.HasPrefix(l, "-") {
		return fmt.Errorf("%q: pip options are not allowed, only package names with versions (e.g. pkg==1.2)", l)
	}
	if !requirementRe.MatchString(l) {
		return fmt.Errorf("%q is not a package name with optional version (e.g. mypackage==0.1.1)", l)
	}
	return nil
}

// ParseRequirements reads aai_pip-requirements.txt content: one requirement a line,
// blank lines and # comments ignored.
func ParseRequirements(text string) ([]string, error) {
	var out []string
	v := &ValidationError{}
	for i, line := range strings.Split(text, "\n") {
		if j := strings.Index(line, "#"); j >= 0 {
			line = line[:j]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if err := ValidateRequirement(line); err != nil {
			v.Add(fmt.Sprintf("requirements[line %d]", i+1), "%v", err)
			continue
		}
		out = append(out, line)
	}
	return out, v.Err()
}

// Validate checks every field of a spec already passed through WithDefaults and
// returns a *ValidationError naming each invalid one.
func (s Spec) Validate() error {
	v := &ValidationError{}
	switch {
	case s.Name == "":
		v.Add("name", "is required")
	case len(s.Name) > 100:
		v.Add("name", "must be at most 100 characters")
	case !printable(s.Name, ""):
		v.Add("name", "must be printable text: no control characters (NUL, escape sequences, line breaks)")
	}
	switch {
	case len(s.Description) > 2000:
		v.Add("description", "must be at most 2000 characters")
	case !printable(s.Description, "\n\t"):
		v.Add("description", "must be printable text: no control characters other than line breaks and tabs")
	}
	switch {
	case s.APIName == "":
		v.Add("api_name", "is required")
	case !ValidAPIName(s.APIName):
		v.Add("api_name", "must be a DNS label: lowercase letters, digits and single hyphens, starting with a letter, at most 63 characters")
	}
	if !SupportedEnvironments[s.Environment] {
		v.Add("environment", "must be one of %s", strings.Join(keys(SupportedEnvironments), ", "))
	}
	types, ok := InstanceTypes[s.Compute]
	if !ok {
		v.Add("compute", "must be cpu or gpu")
	} else if !contains(types, s.InstanceType) {
		v.Add("instance_type", "%q is not offered for %s servers; choose one of %s", s.InstanceType, s.Compute, strings.Join(types, ", "))
	}
	if _, ok := Regions[s.Region]; !ok {
		v.Add("region", "%q is not offered; choose one of %s", s.Region, strings.Join(keys(Regions), ", "))
	}
	if s.Threads < 1 || s.Threads > MaxThreads {
		v.Add("threads", "must be between 1 and %d", MaxThreads)
	}
	if s.MaxBatchSize < 0 || s.MaxBatchSize > MaxBatchSize {
		v.Add("max_batch_size", "must be between 0 and %d", MaxBatchSize)
	}
	if s.MaxQueueDelayMS < 0 || s.MaxQueueDelayMS > MaxQueueDelayMS {
		v.Add("max_queue_delay_ms", "must be between 0 and %d milliseconds", MaxQueueDelayMS)
	}
	if s.MaxQueueSize < 0 || s.MaxQueueSize > MaxQueueSize {
		v.Add("max_queue_size", "must be between 0 (the default) and %d", MaxQueueSize)
	}
	if s.Network != "" && s.Network != NetworkOutbound && s.Network != NetworkNone {
		v.Add("network", "must be %s (the internet, not the platform) or %s", NetworkOutbound, NetworkNone)
	}
	validIO := map[IOType]bool{Image: true, Numpy: true, JSON: true, File: true}
	if !validIO[s.Input] {
		v.Add("input", "must be one of image, numpy, json, file")
	}
	if !validIO[s.Output] {
		v.Add("output", "must be one of image, numpy, json, file")
	}
	if validIO[s.Input] && validIO[s.Output] && !SupportedPairs[Pair{s.Input, s.Output}] {
		v.Add("output", "%s is not served yet; supported: %s", Pair{s.Input, s.Output}, strings.Join(pairNames(), ", "))
	} else if validIO[s.Input] && validIO[s.Output] && SupportedEnvironments[s.Environment] && !ServesPair(s.Environment, Pair{s.Input, s.Output}) {
		field := "output"
		if s.Input != Image {
			field = "input"
		}
		v.Add(field, "environment %s serves image->image and image->json (an ONNX model takes an image); %s is not one of them", s.Environment, Pair{s.Input, s.Output})
	}
	for i, r := range s.Requirements {
		if err := ValidateRequirement(r); err != nil {
			v.Add(fmt.Sprintf("requirements[%d]", i), "%v", err)
		}
	}
	return v.Err()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func pairNames() []string {
	out := make([]string, 0, len(SupportedPairs))
	for p := range SupportedPairs {
		out = append(out, p.String())
	}
	sort.Strings(out)
	return out
}
