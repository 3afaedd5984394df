package onnxrt

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchThreads is the intra-op thread count of the benchmarks: $ONNXRT_BENCH_THREADS,
// else GOMAXPROCS (2 on the project's machines, like DESIGN.md's ONNX figures).
func benchThreads(b *testing.B) int {
	if s := os.Getenv("ONNXRT_BENCH_THREADS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(b, err, "ONNXRT_BENCH_THREADS")
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// benchOptions are the benchmarks' session options: benchThreads intra-op
// threads, and NoSpinning when $ONNXRT_BENCH_NOSPIN=1.
func benchOptions(b *testing.B) Options {
	return Options{IntraOpThreads: benchThreads(b), NoSpinning: os.Getenv("ONNXRT_BENCH_NOSPIN") == "1"}
}

// benchModels are the models BenchmarkRun measures at 320×320: the pretrained
// PP-OCRv4 text detector (scripts/onnxruntime.sh installs it) and the generated
// U-Net (base 16 channels).
func benchModels(b *testing.B) map[string]string {
	return map[string]string{
		"ppocr-det": realModel(b, ppocrDet),
		"unet":      writeModel(b, "unet.onnx", segNet(-1, -1, 16)),
	}
}

// benchInput is a batch of n copies of a 320×320 text image, preprocessed as
// PaddleOCR does.
func benchInput(b *testing.B, n int) Tensor {
	pre := Preprocess{Width: 320, Height: 320, Resize: "letterbox", ChannelOrder: "BGR",
		Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}}
	img, _ := textImage("HELLO WORLD", 4)
	per := 3 * 320 * 320
	in := Tensor{Shape: []int64{int64(n), 3, 320, 320}, Data: make([]float32, n*per)}
	for i := 0; i < n; i++ {
		_, err := pre.Apply(img, in.Data[i*per:(i+1)*per])
		require.NoError(b, err)
	}
	return in
}

// BenchmarkRun measures direct Model.Run on full batches at 320×320, in
// images/s; each batch size > 1 also reports its throughput over batch 1's
// from the same run (x_batch1). This is the limit a batching server approaches.
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 3s ./inference/onnxrt/
func BenchmarkRun(b *testing.B) {
	requireORT(b)
	opts := benchOptions(b)
	models := benchModels(b)
	for _, name := range []string{"ppocr-det", "unet"} {
		b.Run(name, func(b *testing.B) {
			m, err := Open(models[name], opts)
			require.NoError(b, err)
			defer m.Close()
			var base float64
			for _, n := range []int{1, 4, 8, 16} {
				in := benchInput(b, n)
				_, err := m.Run(in) // warm-up: the first run of a shape plans its memory
				require.NoError(b, err)
				b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
					for b.Loop() {
						if _, err := m.Run(in); err != nil {
							b.Fatal(err)
						}
					}
					ips := float64(n*b.N) / b.Elapsed().Seconds()
					b.ReportMetric(ips, "images/s")
					if n == 1 {
						base = ips
					} else if base > 0 {
						b.ReportMetric(ips/base, "x_batch1")
					}
				})
			}
		})
	}
}

// BenchmarkRunInterleaved runs one batch of each size (1, 4, 8, 16) per
// iteration and reports each size's images/s from its median Run time, and the
// ratio over batch 1 (x_bN): on a shared machine, load that comes and goes then
// weighs on every size alike and bursts fall out of the median, so the ratios
// hold better than across BenchmarkRun's sub-benchmarks.
//
//	go test -run '^$' -bench BenchmarkRunInterleaved -benchtime 10x ./inference/onnxrt/
func BenchmarkRunInterleaved(b *testing.B) {
	requireORT(b)
	opts := benchOptions(b)
	models := benchModels(b)
	sizes := []int{1, 4, 8, 16}
	for _, name := range []string{"ppocr-det", "unet"} {
		b.Run(name, func(b *testing.B) {
			m, err := Open(models[name], opts)
			require.NoError(b, err)
			defer m.Close()
			ins := make([]Tensor, len(sizes))
			for i, n := range sizes {
				ins[i] = benchInput(b, n)
				_, err := m.Run(ins[i])
				require.NoError(b, err)
			}
			spent := make([][]time.Duration, len(sizes))
			for b.Loop() {
				for i := range sizes {
					start := time.Now()
					if _, err := m.Run(ins[i]); err != nil {
						b.Fatal(err)
					}
					spent[i] = append(spent[i], time.Since(start))
				}
			}
			var base float64
			for i, n := range sizes {
				slices.Sort(spent[i])
				ips := float64(n) / spent[i][len(spent[i])/2].Seconds()
				b.ReportMetric(ips, fmt.Sprintf("b%d_images/s", n))
				if i == 0 {
					base = ips
				} else {
					b.ReportMetric(ips/base, fmt.Sprintf("x_b%d", n))
				}
			}
		})
	}
}

// BenchmarkPredict measures the whole pipeline on batches of 8 decoded
// 512×384 images: letterbox preprocessing to 320×320, Run, and the
// probability map restored to 512×384 (what the server adds to Run).
func BenchmarkPredict(b *testing.B) {
	model := realModel(b, ppocrDet)
	dir := b.TempDir()
	require.NoError(b, os.Symlink(model, filepath.Join(dir, "det.onnx")))
	require.NoError(b, os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"model": "det.onnx",
		"preprocess": {"width": 320, "height": 320, "resize": "letterbox", "channel_order": "BGR",
			"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
		"postprocess": {"kind": "image", "restore_size": true}}`), 0o644))
	p, err := Load(dir, benchOptions(b))
	require.NoError(b, err)
	defer p.Close()
	imgs := make([]Image, 8)
	for i := range imgs {
		imgs[i] = gradient(512, 384)
	}
	b.Run("batch=8", func(b *testing.B) {
		for b.Loop() {
			if _, err := p.Predict(imgs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(imgs)*b.N)/b.Elapsed().Seconds(), "images/s")
	})
	b.Run("preprocess", func(b *testing.B) {
		dst := make([]float32, 3*320*320)
		for b.Loop() {
			if _, err := p.Config().Preprocess.Apply(imgs[0], dst); err != nil {
				b.Fatal(err)
			}
		}
	})
}
