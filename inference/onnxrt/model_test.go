package onnxrt

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func randomInput(seed uint64, shape ...int64) Tensor {
	rng := rand.New(rand.NewPCG(seed, 2))
	t := Tensor{Shape: shape, Data: make([]float32, product(shape))}
	for i := range t.Data {
		t.Data[i] = rng.Float32()*2 - 1
	}
	return t
}

func TestInitIsOncePerProcess(t *testing.T) {
	requireORT(t)
	require.NoError(t, Init(""), "a second Init is a no-op")
	ok, path := Initialized()
	require.True(t, ok)
	require.NoError(t, Init(path), "Init with the loaded path is a no-op")
	require.Equal(t, LibraryVersion, Version(), "scripts/onnxruntime.sh installs the release onnxruntime_go's headers name")

	other := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	require.NoError(t, os.WriteFile(other, []byte("not a library"), 0o644))
	err := Init(other)
	require.ErrorContains(t, err, "already loaded")
}

func TestLibraryPathSaysHowToInstall(t *testing.T) {
	_, err := LibraryPath(filepath.Join(t.TempDir(), "missing.so"))
	require.ErrorContains(t, err, "scripts/onnxruntime.sh")
	t.Setenv(LibraryEnv, filepath.Join(t.TempDir(), "nope.so"))
	_, err = LibraryPath("")
	require.ErrorContains(t, err, "$"+LibraryEnv)
	require.ErrorContains(t, err, "scripts/onnxruntime.sh")
}

func TestOpenReadsSignature(t *testing.T) {
	requireORT(t)
	m, err := Open(writeModel(t, "seg.onnx", segNet(-1, -1, 8)), Options{IntraOpThreads: 1})
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, TensorInfo{Name: "image", Type: "float32", Shape: []int64{-1, 3, -1, -1}}, m.Input())
	require.Equal(t, []TensorInfo{
		{Name: "mask", Type: "float32", Shape: []int64{-1, 1, -1, -1}},
		{Name: "logits", Type: "float32", Shape: []int64{-1, 1, -1, -1}},
	}, m.Outputs())
	require.Equal(t, 0, m.FixedBatch())

	c, err := Open(writeModel(t, "cls.onnx", classifier(false, 1)), Options{})
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, []int64{1, 3, 32, 32}, c.Input().Shape)
	require.Equal(t, "int64", c.Outputs()[1].Type)
	require.Equal(t, 1, c.FixedBatch())
}

func TestRunSegNet(t *testing.T) {
	requireORT(t)
	m, err := Open(writeModel(t, "seg.onnx", segNet(-1, -1, 8)), Options{IntraOpThreads: 1})
	require.NoError(t, err)
	defer m.Close()
	outs, err := m.Run(randomInput(1, 2, 3, 24, 40))
	require.NoError(t, err)
	require.Len(t, outs, 2)
	require.Equal(t, []int64{2, 1, 24, 40}, outs[0].Shape)
	require.Len(t, outs[0].Data, 2*24*40)
	for i, v := range outs[0].Data {
		require.InDelta(t, 1/(1+math.Exp(-float64(outs[1].Data[i]))), float64(v), 1e-5, "mask is sigmoid(logits)")
	}
}

// A batch of N gives what N runs of one give, for dynamic and fixed batches.
func TestBatchEqualsSingles(t *testing.T) {
	requireORT(t)
	cases := []struct {
		name  string
		model []byte
		item  []int64
	}{
		{"unet dynamic", segNet(-1, -1, 8), []int64{3, 32, 48}},
		{"unet fixed size", segNet(64, 64, 8), []int64{3, 64, 64}},
		{"classifier", classifier(false, -1), []int64{3, 32, 32}},
		{"classifier fixed batch 1", classifier(false, 1), []int64{3, 32, 32}},
		{"classifier NHWC", classifier(true, -1), []int64{32, 32, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Open(writeModel(t, "m.onnx", tc.model), Options{IntraOpThreads: 2})
			require.NoError(t, err)
			defer m.Close()
			const n = 5
			batch := randomInput(9, append([]int64{n}, tc.item...)...)
			outs, err := m.Run(batch)
			require.NoError(t, err)
			per := int(product(tc.item))
			for i := 0; i < n; i++ {
				one, err := m.Run(Tensor{Shape: append([]int64{1}, tc.item...), Data: batch.Data[i*per : (i+1)*per]})
				require.NoError(t, err)
				for j := range outs {
					require.Equal(t, int64(n), outs[j].Shape[0])
					got, _, err := item(outs[j], i)
					require.NoError(t, err)
					require.LessOrEqual(t, maxAbsDiff(got, one[j].Data), 1e-4, "item %d output %d", i, j)
				}
			}
		})
	}
}

func TestRunIntOutputAndConcurrency(t *testing.T) {
	requireORT(t)
	m, err := Open(writeModel(t, "cls.onnx", classifier(false, -1)), Options{IntraOpThreads: 2, InterOpThreads: 1, NoSpinning: true})
	require.NoError(t, err)
	defer m.Close()
	in := randomInput(3, 4, 3, 32, 32)
	want, err := m.Run(in)
	require.NoError(t, err)
	for i := 0; i < 4; i++ {
		best := 0
		for k := range 5 {
			if want[0].Data[i*5+k] > want[0].Data[i*5+best] {
				best = k
			}
		}
		require.Equal(t, float32(best), want[1].Data[i], "int64 ArgMax output converted to float32")
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := m.Run(in)
			if err == nil && maxAbsDiff(got[0].Data, want[0].Data) > 1e-5 {
				err = os.ErrInvalid
			}
			errs[g] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

func TestOpenBadModel(t *testing.T) {
	requireORT(t)
	_, err := Open(writeModel(t, "junk.onnx", []byte("this is not a protobuf")), Options{})
	require.ErrorContains(t, err, "junk.onnx is not a model ONNX Runtime can load")

	_, err = Open(filepath.Join(t.TempDir(), "absent.onnx"), Options{})
	require.ErrorContains(t, err, "absent.onnx")
	require.ErrorIs(t, err, os.ErrNotExist)

	g := newGraph(1)
	y := g.op("NoSuchOp", []string{"x"})
	unknown := g.model([]pb{valueInfo("x", 1, -1, 3, 8, 8)}, []pb{valueInfo("y", 1, -1, 3, 8, 8)}, [2]string{y, "y"})
	_, err = Open(writeModel(t, "unknown.onnx", unknown), Options{})
	require.ErrorContains(t, err, "NoSuchOp")

	g = newGraph(1)
	y = g.op("Add", []string{"a", "b"})
	two := g.model([]pb{valueInfo("a", 1, -1, 4), valueInfo("b", 1, -1, 4)}, []pb{valueInfo("y", 1, -1, 4)}, [2]string{y, "y"})
	_, err = Open(writeModel(t, "two.onnx", two), Options{})
	require.ErrorContains(t, err, "has 2 inputs (a, b)")

	g = newGraph(1)
	y = g.op("Cast", []string{"x"}, attrInt("to", 1))
	ints := g.model([]pb{valueInfo("x", 7, -1, 4)}, []pb{valueInfo("y", 1, -1, 4)}, [2]string{y, "y"})
	_, err = Open(writeModel(t, "ints.onnx", ints), Options{})
	require.ErrorContains(t, err, "want float32")
}

func TestRunWrongShape(t *testing.T) {
	requireORT(t)
	m, err := Open(writeModel(t, "cls.onnx", classifier(false, -1)), Options{IntraOpThreads: 1})
	require.NoError(t, err)
	defer m.Close()
	for _, shape := range [][]int64{{1, 3, 28, 28}, {1, 32, 32, 3}, {3, 32, 32}, {0, 3, 32, 32}} {
		_, err := m.Run(randomInput(1, shape...))
		require.ErrorContains(t, err, `input "input" of cls.onnx wants shape [N,3,32,32], got`, "shape %v", shape)
	}
	_, err = m.Run(Tensor{Shape: []int64{2, 3, 32, 32}, Data: make([]float32, 3*32*32)})
	require.ErrorContains(t, err, "needs 6144 values, got 3072")

	seg, err := Open(writeModel(t, "seg.onnx", segNet(-1, -1, 4)), Options{IntraOpThreads: 1})
	require.NoError(t, err)
	defer seg.Close()
	_, err = seg.Run(randomInput(1, 1, 3, 15, 16)) // odd height: the skip connection's Concat fails inside ORT
	require.ErrorContains(t, err, "run seg.onnx on [1 3 15 16]")

	fixed, err := Open(writeModel(t, "cls1.onnx", classifier(false, 2)), Options{})
	require.NoError(t, err)
	defer fixed.Close()
	_, err = fixed.Run(randomInput(1, 3, 3, 32, 32))
	require.ErrorContains(t, err, "fixed batch of 2; a batch of 3")

	require.NoError(t, m.Close())
	_, err = m.Run(randomInput(1, 1, 3, 32, 32))
	require.ErrorContains(t, err, "closed")
}
