package onnxrt

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// TensorInfo describes one input or output of a model, as the model declares it.
type TensorInfo struct {
	// Name is the graph's name for it ("x", "images", ...).
	Name string `json:"name"`
	// Type is the element type: "float32", "int64", "uint8", ...
	Type string `json:"type"`
	// Shape has -1 for each dynamic dimension (the batch, often height and width).
	Shape []int64 `json:"shape"`
}

// String is "x float32[-1 3 32 32]".
func (t TensorInfo) String() string { return fmt.Sprintf("%s %s%v", t.Name, t.Type, t.Shape) }

// Tensor is a dense float32 tensor in C (row-major) order. Model inputs are
// float32; numeric outputs of other types are converted to float32.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Options tune a model's ONNX Runtime session.
type Options struct {
	// IntraOpThreads is the number of threads one Run uses inside an operator
	// (ONNX Runtime's intra-op pool). 0 is ONNX Runtime's default: one per
	// physical core. The server sets it from the deployment's threads.
	IntraOpThreads int
	// InterOpThreads is the pool for running independent graph branches in
	// parallel; 0 is ONNX Runtime's default (sequential execution needs none).
	InterOpThreads int
	// NoSpinning stops the intra-op threads from busy-waiting for work between
	// operators (session.intra_op.allow_spinning=0): it leaves the CPU to other
	// goroutines and processes (the server's image codecs, other workers) at
	// some latency per Run. Worth it when the cores are shared.
	NoSpinning bool
}

// Model is an ONNX model opened in one ONNX Runtime session. It has exactly one
// float32 input, whose first dimension is the batch. Run is safe for concurrent
// use (ONNX Runtime sessions are); Close waits for running calls.
//
// One session serves every batch size: a DynamicAdvancedSession, whose input is
// created per call with the batch's shape and whose outputs ONNX Runtime
// allocates (then copied once into Go memory). With a dynamic batch dimension
// ONNX Runtime plans memory per input shape and reuses the plan for repeated
// shapes, so a session per batch size would only multiply the model's memory
// and load time. A model whose batch dimension is fixed (B, usually 1) runs a
// batch of N (a multiple of B) as N/B runs.
type Model struct {
	path    string
	input   TensorInfo
	outputs []TensorInfo

	mu      sync.RWMutex
	session *ort.DynamicAdvancedSession
}

// Open loads the model at modelPath: it reads the input and output names,
// shapes and types from the model and creates its session. Init must have
// succeeded. The model must have one float32 input of rank 2 or more and
// numeric tensor outputs.
func Open(modelPath string, opts Options) (*Model, error) {
	if ok, _ := Initialized(); !ok {
		return nil, ErrNotInitialized
	}
	name := filepath.Base(modelPath)
	if st, err := os.Stat(modelPath); err != nil {
		return nil, fmt.Errorf("onnxrt: model %s: %w", modelPath, err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("onnxrt: model %s is not a file", modelPath)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnxrt: session options: %w", err)
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("onnxrt: intra-op threads: %w", err)
		}
	}
	if opts.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return nil, fmt.Errorf("onnxrt: inter-op threads: %w", err)
		}
	}
	if opts.NoSpinning {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, fmt.Errorf("onnxrt: spinning: %w", err)
		}
	}
	ins, outs, err := ort.GetInputOutputInfoWithOptions(modelPath, so)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: %s is not a model ONNX Runtime can load: %w", name, err)
	}
	m := &Model{path: modelPath}
	if len(ins) != 1 {
		return nil, fmt.Errorf("onnxrt: %s has %d inputs (%s); image models need exactly one", name, len(ins), infoNames(ins))
	}
	if m.input, err = tensorInfo(ins[0]); err != nil {
		return nil, fmt.Errorf("onnxrt: %s input: %w", name, err)
	}
	if m.input.Type != "float32" || len(m.input.Shape) < 2 {
		return nil, fmt.Errorf("onnxrt: %s input %s: want float32 with a batch dimension and at least one more", name, m.input)
	}
	for _, o := range outs {
		ti, err := tensorInfo(o)
		if err != nil {
			return nil, fmt.Errorf("onnxrt: %s output: %w", name, err)
		}
		if _, ok := numericTypes[ti.Type]; !ok {
			return nil, fmt.Errorf("onnxrt: %s output %s: only numeric outputs are supported", name, ti)
		}
		m.outputs = append(m.outputs, ti)
	}
	outNames := make([]string, len(m.outputs))
	for i, o := range m.outputs {
		outNames[i] = o.Name
	}
	m.session, err = ort.NewDynamicAdvancedSession(modelPath, []string{m.input.Name}, outNames, so)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: open %s: %w", name, err)
	}
	return m, nil
}

// Input describes the model's input.
func (m *Model) Input() TensorInfo { return cloneInfo(m.input) }

// Outputs describes the model's outputs, in the order Run returns them.
func (m *Model) Outputs() []TensorInfo {
	out := make([]TensorInfo, len(m.outputs))
	for i, o := range m.outputs {
		out[i] = cloneInfo(o)
	}
	return out
}

// Path is the model file.
func (m *Model) Path() string { return m.path }

// FixedBatch is the model's batch dimension when the model fixes it (usually 1),
// or 0 when it is dynamic.
func (m *Model) FixedBatch() int {
	if b := m.input.Shape[0]; b > 0 {
		return int(b)
	}
	return 0
}

// Run runs the model on one batch: in.Shape is the input's shape with every
// dimension set (the first is the batch, N >= 1) and in.Data holds its values.
// It returns one tensor per output, in Outputs' order, each with the batch as its
// first dimension. A shape the model does not accept is an error naming both.
func (m *Model) Run(in Tensor) ([]Tensor, error) {
	if err := m.checkInput(in); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.session == nil {
		return nil, fmt.Errorf("onnxrt: model %s is closed", filepath.Base(m.path))
	}
	n, b := in.Shape[0], int64(m.FixedBatch())
	if b == 0 || n == b {
		return m.run(in)
	}
	// Fixed batch B: N/B runs, outputs concatenated along the batch.
	per := int(product(in.Shape[1:]) * b)
	var outs []Tensor
	for i := int64(0); i < n/b; i++ {
		shape := append([]int64{b}, in.Shape[1:]...)
		part, err := m.run(Tensor{Shape: shape, Data: in.Data[int(i)*per : int(i+1)*per]})
		if err != nil {
			return nil, err
		}
		if outs == nil {
			outs = make([]Tensor, len(part))
			for j, p := range part {
				outs[j].Shape = append([]int64{0}, p.Shape[1:]...)
				outs[j].Data = make([]float32, 0, len(p.Data)*int(n/b))
			}
		}
		for j, p := range part {
			outs[j].Shape[0] += p.Shape[0]
			outs[j].Data = append(outs[j].Data, p.Data...)
		}
	}
	return outs, nil
}

func (m *Model) checkInput(in Tensor) error {
	want := m.input.Shape
	bad := len(in.Shape) != len(want) || in.Shape[0] < 1
	for i := 0; !bad && i < len(want); i++ {
		bad = in.Shape[i] < 1 || (i > 0 && want[i] > 0 && in.Shape[i] != want[i])
	}
	if bad {
		return fmt.Errorf("onnxrt: input %q of %s wants shape %s, got %v",
			m.input.Name, filepath.Base(m.path), shapeString(want), in.Shape)
	}
	if b := int64(m.FixedBatch()); b > 0 && in.Shape[0]%b != 0 {
		return fmt.Errorf("onnxrt: %s has a fixed batch of %d; a batch of %d is not a multiple of it",
			filepath.Base(m.path), b, in.Shape[0])
	}
	if n := product(in.Shape); int64(len(in.Data)) != n {
		return fmt.Errorf("onnxrt: input shape %v needs %d values, got %d", in.Shape, n, len(in.Data))
	}
	return nil
}

func (m *Model) run(in Tensor) ([]Tensor, error) {
	x, err := ort.NewTensor(ort.NewShape(in.Shape...), in.Data)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: input tensor: %w", err)
	}
	defer x.Destroy()
	vals := make([]ort.Value, len(m.outputs))
	defer func() {
		for _, v := range vals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err := m.session.Run([]ort.Value{x}, vals); err != nil {
		return nil, fmt.Errorf("onnxrt: run %s on %v: %w", filepath.Base(m.path), in.Shape, err)
	}
	outs := make([]Tensor, len(vals))
	for i, v := range vals {
		if outs[i], err = toTensor(v); err != nil {
			return nil, fmt.Errorf("onnxrt: output %q: %w", m.outputs[i].Name, err)
		}
		if len(outs[i].Shape) == 0 || outs[i].Shape[0] != in.Shape[0] {
			return nil, fmt.Errorf("onnxrt: output %q has shape %v: its first dimension is not the batch (%d)",
				m.outputs[i].Name, outs[i].Shape, in.Shape[0])
		}
	}
	return outs, nil
}

// Close releases the session; it waits for running calls. Run after Close is an
// error.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.session == nil {
		return nil
	}
	err := m.session.Destroy()
	m.session = nil
	return err
}

// toTensor copies (or, for float32, takes) an ONNX Runtime output's data. The Go
// slice a float32 output already lives in stays valid after Destroy.
func toTensor(v ort.Value) (Tensor, error) {
	t := Tensor{Shape: []int64(v.GetShape().Clone())}
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		t.Data = x.GetData()
	case *ort.Tensor[float64]:
		t.Data = convert(x.GetData())
	case *ort.Tensor[int64]:
		t.Data = convert(x.GetData())
	case *ort.Tensor[int32]:
		t.Data = convert(x.GetData())
	case *ort.Tensor[int16]:
		t.Data = convert(x.GetData())
	case *ort.Tensor[int8]:
		t.Data = convert(x.GetData())
	case *ort.Tensor[uint8]:
		t.Data = convert(x.GetData())
	case *ort.Tensor[uint16]:
		t.Data = convert(x.GetData())
	case *ort.Tensor[uint32]:
		t.Data = convert(x.GetData())
	case *ort.Tensor[uint64]:
		t.Data = convert(x.GetData())
	case *ort.Tensor[bool]:
		d := x.GetData()
		t.Data = make([]float32, len(d))
		for i, b := range d {
			if b {
				t.Data[i] = 1
			}
		}
	default:
		return Tensor{}, fmt.Errorf("unsupported output value %T", v)
	}
	return t, nil
}

func convert[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float64](d []T) []float32 {
	out := make([]float32, len(d))
	for i, v := range d {
		out[i] = float32(v)
	}
	return out
}

var numericTypes = map[string]struct{}{
	"float32": {}, "float64": {}, "int8": {}, "int16": {}, "int32": {}, "int64": {},
	"uint8": {}, "uint16": {}, "uint32": {}, "uint64": {}, "bool": {},
}

var typeNames = map[ort.TensorElementDataType]string{
	ort.TensorElementDataTypeFloat: "float32", ort.TensorElementDataTypeDouble: "float64",
	ort.TensorElementDataTypeFloat16: "float16", ort.TensorElementDataTypeBFloat16: "bfloat16",
	ort.TensorElementDataTypeInt8: "int8", ort.TensorElementDataTypeInt16: "int16",
	ort.TensorElementDataTypeInt32: "int32", ort.TensorElementDataTypeInt64: "int64",
	ort.TensorElementDataTypeUint8: "uint8", ort.TensorElementDataTypeUint16: "uint16",
	ort.TensorElementDataTypeUint32: "uint32", ort.TensorElementDataTypeUint64: "uint64",
	ort.TensorElementDataTypeBool: "bool", ort.TensorElementDataTypeString: "string",
}

func tensorInfo(io ort.InputOutputInfo) (TensorInfo, error) {
	if io.OrtValueType != ort.ONNXTypeTensor {
		return TensorInfo{}, fmt.Errorf("%s is a %s, not a tensor", io.Name, io.OrtValueType)
	}
	typ, ok := typeNames[io.DataType]
	if !ok {
		typ = io.DataType.String()
	}
	shape := make([]int64, len(io.Dimensions))
	for i, d := range io.Dimensions {
		shape[i] = max(d, -1) // dynamic dimensions read as -1 (or lower): always -1
	}
	return TensorInfo{Name: io.Name, Type: typ, Shape: shape}, nil
}

func infoNames(ios []ort.InputOutputInfo) string {
	names := make([]string, len(ios))
	for i, io := range ios {
		names[i] = io.Name
	}
	return strings.Join(names, ", ")
}

func cloneInfo(t TensorInfo) TensorInfo {
	t.Shape = append([]int64(nil), t.Shape...)
	return t
}

// shapeString writes [N,3,32,32] for a model shape, N for the batch and ? for
// other dynamic dimensions.
func shapeString(s []int64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		switch {
		case d > 0:
			parts[i] = fmt.Sprint(d)
		case i == 0:
			parts[i] = "N"
		default:
			parts[i] = "?"
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func product(s []int64) int64 {
	n := int64(1)
	for _, d := range s {
		n *= d
	}
	return n
}
