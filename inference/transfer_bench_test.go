package inference

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/sandbox"
)

// transferAlgorithm returns its input (a uint8 array), a 48 MiB array made
// once (x is JSON), or 0 (an int8 array: only the request carries data).
const transferAlgorithm = `
import numpy as np
class AAI:
    def __init__(self):
        self.big = np.full((4096, 4096, 3), 7, np.uint8)
    def predict(self, x):
        if not isinstance(x, np.ndarray):
            return self.big
        if x.dtype == np.int8:
            return 0
        return x
`

// BenchmarkTransfer moves a 4096x4096x3 uint8 array (48 MiB) between Go and
// a Python worker through the pipe protocol, against a Go memcpy of the same
// bytes: to_python (the reply is a small JSON value), from_python (the
// request is), and roundtrip (an identity predict; MB/s counts both
// directions). Each with the kernel's 64 KiB pipes and with 1 MiB ones
// (F_SETPIPE_SZ).
func BenchmarkTransfer(b *testing.B) {
	const size = 4096 * 4096 * 3
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i * 7)
	}
	b.Run("memcpy", func(b *testing.B) {
		dst := make([]byte, size)
		copy(dst, src) // fault the pages in before timing
		b.SetBytes(size)
		for b.Loop() {
			copy(dst, src)
		}
	})
	tensor := Value{Kind: KindTensor, DType: "uint8", Shape: []int{4096, 4096, 3}, Data: src}
	small := Value{Kind: KindJSON, Data: []byte("0")}
	oneWay := tensor
	oneWay.DType = "int8"
	cases := []struct {
		name  string
		in    Value
		want  Kind
		bytes int64
	}{
		{"to_python", oneWay, KindJSON, size},
		{"from_python", small, KindTensor, size},
		{"roundtrip", tensor, KindTensor, 2 * size},
	}
	for _, pipe := range []struct {
		name string
		size int
	}{{"pipe64KiB", 0}, {"pipe1MiB", 1 << 20}} {
		for _, c := range cases {
			b.Run(c.name+"/"+pipe.name, func(b *testing.B) {
				requirePython(b)
				saved := pipeSize
				pipeSize = pipe.size
				defer func() { pipeSize = saved }()
				w := startTestWorker(b, transferAlgorithm)
				in := call{Op: opPredict, Want: c.want, In: c.in}
				roundTrip := func() {
					err := w.roundTripBatch([]call{in}, false, func(_ int, v Value, err error) {
						require.NoError(b, err)
						require.Equal(b, c.want, v.Kind)
					})
					require.NoError(b, err)
				}
				roundTrip() // untimed: the worker's first buffers
				b.SetBytes(c.bytes)
				for b.Loop() {
					roundTrip()
				}
			})
		}
	}
}

// startTestWorker starts one worker on aai_main.py code, stopped at cleanup.
func startTestWorker(tb testing.TB, code string) *worker {
	tb.Helper()
	dir := tb.TempDir()
	runner, err := writeRunner(tb.TempDir())
	require.NoError(tb, err)
	require.NoError(tb, os.WriteFile(dir+"/aai_main.py", []byte(code), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Unconfined: the benchmark measures the pipes, which a sandbox does
	// not change; every worker needs a launcher (a nil one panicked here).
	box, err := sandbox.New(sandbox.Config{Mode: sandbox.ModeNone, Group: "transfer-bench"})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = box.Close() })
	w, err := startWorker(ctx, workerSpec{python: testPython, runner: runner, dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil)), box: box})
	require.NoError(tb, err)
	tb.Cleanup(func() { w.close(2 * time.Second) })
	return w
}
