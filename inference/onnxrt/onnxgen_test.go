package onnxrt

// A tiny ONNX (protobuf) writer for the tests: it builds real conv nets with
// random weights at test time, so no model binary is committed. Field numbers
// are onnx.proto's (ModelProto, GraphProto, NodeProto, AttributeProto,
// TensorProto, ValueInfoProto, TypeProto, TensorShapeProto).

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type pb []byte

func (b pb) tag(field, wire int) pb { return binary.AppendUvarint(b, uint64(field<<3|wire)) }
func (b pb) varint(field int, v int64) pb {
	return binary.AppendUvarint(b.tag(field, 0), uint64(v))
}
func (b pb) bytes(field int, v []byte) pb {
	return append(binary.AppendUvarint(b.tag(field, 2), uint64(len(v))), v...)
}
func (b pb) str(field int, s string) pb { return b.bytes(field, []byte(s)) }

// attr is an AttributeProto: an int, a float or a list of ints.
func attrInt(name string, v int64) pb { return pb{}.str(1, name).varint(3, v).varint(20, 2) }
func attrFloat(name string, v float32) pb {
	b := pb{}.str(1, name).tag(2, 5)
	return pb(binary.LittleEndian.AppendUint32(b, math.Float32bits(v))).varint(20, 1)
}
func attrInts(name string, vs ...int64) pb {
	b := pb{}.str(1, name)
	for _, v := range vs {
		b = b.varint(8, v)
	}
	return b.varint(20, 7)
}

// node is a NodeProto.
func node(op string, in, out []string, attrs ...pb) pb {
	b := pb{}
	for _, s := range in {
		b = b.str(1, s)
	}
	for _, s := range out {
		b = b.str(2, s)
	}
	b = b.str(3, out[0]+"_"+op).str(4, op)
	for _, a := range attrs {
		b = b.bytes(5, a)
	}
	return b
}

// valueInfo is a float32 (elem 1) or int64 (elem 7) ValueInfoProto; a dim <= 0
// is dynamic, named by dimNames.
func valueInfo(name string, elem int64, dims ...int64) pb {
	shape := pb{}
	for i, d := range dims {
		dim := pb{}
		if d > 0 {
			dim = dim.varint(1, d)
		} else {
			dim = dim.str(2, []string{"N", "C", "H", "W"}[min(i, 3)])
		}
		shape = shape.bytes(1, dim)
	}
	tensor := pb{}.varint(1, elem).bytes(2, shape)
	return pb{}.str(1, name).bytes(2, pb{}.bytes(1, tensor))
}

// graphBuilder collects nodes and random float32 initializers.
type graphBuilder struct {
	rng   *rand.Rand
	nodes []pb
	inits []pb
	n     int
}

func newGraph(seed uint64) *graphBuilder {
	return &graphBuilder{rng: rand.New(rand.NewPCG(seed, 1))}
}

func (g *graphBuilder) name(prefix string) string {
	g.n++
	return prefix + string(rune('a'+g.n%26)) + string(rune('0'+g.n/26))
}

// weight adds a random initializer, uniform in ±sqrt(6/fanIn) (He), or ±0.1 for
// biases (fanIn 0).
func (g *graphBuilder) weight(fanIn int, dims ...int64) string {
	name := g.name("w")
	a := 0.1
	if fanIn > 0 {
		a = math.Sqrt(6 / float64(fanIn))
	}
	raw := make([]byte, 0, 4*product(dims))
	for i := int64(0); i < product(dims); i++ {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(float32((g.rng.Float64()*2-1)*a)))
	}
	t := pb{}
	for _, d := range dims {
		t = t.varint(1, d)
	}
	g.inits = append(g.inits, t.varint(2, 1).str(8, name).bytes(9, raw))
	return name
}

func (g *graphBuilder) op(op string, in []string, attrs ...pb) string {
	out := g.name(op)
	g.nodes = append(g.nodes, node(op, in, []string{out}, attrs...))
	return out
}

// conv is Conv(k×k, padding same unless stride > 1) + bias, optionally + Relu.
func (g *graphBuilder) conv(x string, cin, cout, k, stride int64, relu bool) string {
	w := g.weight(int(cin*k*k), cout, cin, k, k)
	b := g.weight(0, cout)
	p := k / 2
	y := g.op("Conv", []string{x, w, b}, attrInts("kernel_shape", k, k), attrInts("pads", p, p, p, p), attrInts("strides", stride, stride))
	if relu {
		y = g.op("Relu", []string{y})
	}
	return y
}

// model writes a ModelProto (IR 7, opset 13) with outputs renamed through
// Identity nodes so their names are stable.
func (g *graphBuilder) model(inputs, outputs []pb, outNames ...[2]string) []byte {
	graph := pb{}
	for _, o := range outNames {
		g.nodes = append(g.nodes, node("Identity", []string{o[0]}, []string{o[1]}))
	}
	for _, n := range g.nodes {
		graph = graph.bytes(1, n)
	}
	graph = graph.str(2, "algocloud_test")
	for _, t := range g.inits {
		graph = graph.bytes(5, t)
	}
	for _, v := range inputs {
		graph = graph.bytes(11, v)
	}
	for _, v := range outputs {
		graph = graph.bytes(12, v)
	}
	opset := pb{}.str(1, "").varint(2, 13)
	return pb{}.varint(1, 7).str(2, "algocloud-onnxgen").bytes(7, graph).bytes(8, opset)
}

// segNet is a small U-Net: two conv levels, a transposed-conv upsampling with a
// skip connection, and two outputs: "mask" (sigmoid, [N,1,H,W]) and "logits".
// h and w <= 0 make the spatial size dynamic (multiples of 2 then). base is the
// first level's channels (16 gives ~30 k weights and ~1.2 GFLOP at 320×320).
func segNet(h, w, base int64) []byte {
	g := newGraph(42)
	c1 := g.conv("image", 3, base, 3, 1, true)
	c1 = g.conv(c1, base, base, 3, 1, true)
	p1 := g.op("MaxPool", []string{c1}, attrInts("kernel_shape", 2, 2), attrInts("strides", 2, 2))
	c2 := g.conv(p1, base, 2*base, 3, 1, true)
	c2 = g.conv(c2, 2*base, 2*base, 3, 1, true)
	wt := g.weight(int(2*base*4), 2*base, base, 2, 2)
	up := g.op("ConvTranspose", []string{c2, wt, g.weight(0, base)}, attrInts("kernel_shape", 2, 2), attrInts("strides", 2, 2))
	up = g.op("Relu", []string{up})
	cat := g.op("Concat", []string{up, c1}, attrInt("axis", 1))
	c3 := g.conv(cat, 2*base, base, 3, 1, true)
	logits := g.conv(c3, base, 1, 1, 1, false)
	mask := g.op("Sigmoid", []string{logits})
	return g.model(
		[]pb{valueInfo("image", 1, -1, 3, h, w)},
		[]pb{valueInfo("mask", 1, -1, 1, h, w), valueInfo("logits", 1, -1, 1, h, w)},
		[2]string{mask, "mask"}, [2]string{logits, "logits"})
}

// classifier maps a 32×32 RGB image to 5 "logits" and the int64 "class"
// (ArgMax). nhwc takes [N,32,32,3]; batch > 0 fixes the batch dimension.
func classifier(nhwc bool, batch int64) []byte {
	g := newGraph(7)
	x := "input"
	in := valueInfo("input", 1, batch, 3, 32, 32)
	if nhwc {
		in = valueInfo("input", 1, batch, 32, 32, 3)
		x = g.op("Transpose", []string{x}, attrInts("perm", 0, 3, 1, 2))
	}
	c := g.conv(x, 3, 8, 3, 2, true)
	c = g.conv(c, 8, 16, 3, 2, true)
	pool := g.op("GlobalAveragePool", []string{c})
	flat := g.op("Flatten", []string{pool}, attrInt("axis", 1))
	logits := g.op("Gemm", []string{flat, g.weight(16, 5, 16), g.weight(0, 5)}, attrInt("transB", 1), attrFloat("alpha", 1))
	class := g.op("ArgMax", []string{logits}, attrInt("axis", 1), attrInt("keepdims", 0))
	return g.model([]pb{in},
		[]pb{valueInfo("logits", 1, batch, 5), valueInfo("class", 7, batch)},
		[2]string{logits, "logits"}, [2]string{class, "class"})
}

// writeModel writes an ONNX model into a test temp dir and returns its path.
func writeModel(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}
