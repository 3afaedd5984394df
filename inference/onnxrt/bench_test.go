//go:build unix

// The benchmarks read the process's CPU time with getrusage, hence unix only.

package onnxrt

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
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

// benchModel is one model the Run benchmarks measure, with its input: a batch
// of n copies of one image, preprocessed as the model expects.
type benchModel struct {
	path  string
	input func(b *testing.B, n int) Tensor
}

// benchModelNames orders benchModels.
var benchModelNames = []string{"ppocr-det", "ppocr-cls", "unet"}

// benchModels are the models the Run benchmarks measure: the pretrained
// PP-OCRv4 text detector at 320×320 and the PP-OCR direction classifier at
// 3×48×192 (scripts/onnxruntime.sh installs both), and the generated U-Net
// (base 16 channels) at 320×320. The classifier does little work per image
// (0.6 MB of weights on a 48×192 line), so a call's fixed cost weighs most
// there: the model where batching can pay on a CPU.
func benchModels(b *testing.B) map[string]benchModel {
	return map[string]benchModel{
		"ppocr-det": {realModel(b, ppocrDet), benchInput},
		"ppocr-cls": {realModel(b, ppocrCls), benchClsInput},
		"unet":      {writeModel(b, "unet.onnx", segNet(-1, -1, 16)), benchInput},
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

// benchClsInput is a batch of n copies of a cropped text line, preprocessed
// as PaddleOCR's direction classifier expects (3×48×192, letterboxed at the
// top left, BGR, mean and std 0.5).
func benchClsInput(b *testing.B, n int) Tensor {
	pre := Preprocess{Width: 192, Height: 48, Resize: "letterbox", Anchor: "topleft", PadValue: 127.5, ChannelOrder: "BGR",
		Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}}
	im, box := textImage("HELLO WORLD", 2)
	line := crop(im, box[0]-2, box[1]-2, box[2]+2, box[3]+2)
	per := 3 * 48 * 192
	in := Tensor{Shape: []int64{int64(n), 3, 48, 192}, Data: make([]float32, n*per)}
	for i := range n {
		_, err := pre.Apply(line, in.Data[i*per:(i+1)*per])
		require.NoError(b, err)
	}
	return in
}

// BenchmarkRun measures direct Model.Run on full batches (benchModels), in
// images/s and process CPU ms per image (every intra-op thread; set
// ONNXRT_BENCH_NOSPIN=1 as the server runs, or spinning counts too); each
// batch size > 1 also reports its throughput and CPU per image over batch 1's
// from the same run (x_batch1, cpu_x_batch1). This is the limit a batching
// server approaches. Each size runs back to back, its caches warm, as in a
// server that sees one batch size (BenchmarkRunInterleaved alternates them).
//
//	go test -run '^$' -bench BenchmarkRun -benchtime 3s ./inference/onnxrt/
func BenchmarkRun(b *testing.B) {
	requireORT(b)
	opts := benchOptions(b)
	models := benchModels(b)
	for _, name := range benchModelNames {
		b.Run(name, func(b *testing.B) {
			m, err := Open(models[name].path, opts)
			require.NoError(b, err)
			defer m.Close()
			var base, baseCPU float64
			for _, n := range []int{1, 4, 8, 16} {
				in := models[name].input(b, n)
				_, err := m.Run(in) // warm-up: the first run of a shape plans its memory
				require.NoError(b, err)
				b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
					c0 := processCPU(b)
					for b.Loop() {
						if _, err := m.Run(in); err != nil {
							b.Fatal(err)
						}
					}
					perImage := float64((processCPU(b) - c0).Microseconds()) / 1000 / float64(n*b.N)
					b.ReportMetric(perImage, "cpu_ms/image")
					ips := float64(n*b.N) / b.Elapsed().Seconds()
					b.ReportMetric(ips, "images/s")
					if n == 1 {
						base, baseCPU = ips, perImage
					} else if base > 0 {
						b.ReportMetric(ips/base, "x_batch1")
						b.ReportMetric(baseCPU/perImage, "cpu_x_batch1")
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
// hold better than across BenchmarkRun's sub-benchmarks. It also reports the
// process's CPU time per image at each size (bN_cpu_ms/image, every intra-op
// thread counted; spinning threads count too, so set ONNXRT_BENCH_NOSPIN=1 as
// the server runs) and batch 1's over batch N's (cpu_x_bN): what a batch saves
// in work, which other processes' load hardly moves.
//
//	go test -run '^$' -bench BenchmarkRunInterleaved -benchtime 10x ./inference/onnxrt/
func BenchmarkRunInterleaved(b *testing.B) {
	requireORT(b)
	opts := benchOptions(b)
	models := benchModels(b)
	sizes := []int{1, 4, 8, 16}
	for _, name := range benchModelNames {
		b.Run(name, func(b *testing.B) {
			m, err := Open(models[name].path, opts)
			require.NoError(b, err)
			defer m.Close()
			ins := make([]Tensor, len(sizes))
			for i, n := range sizes {
				ins[i] = models[name].input(b, n)
				_, err := m.Run(ins[i])
				require.NoError(b, err)
			}
			spent := make([][]time.Duration, len(sizes))
			cpu := make([]time.Duration, len(sizes)) // the process's CPU time (every intra-op thread) in each size's Runs
			for b.Loop() {
				for i := range sizes {
					c0 := processCPU(b)
					start := time.Now()
					if _, err := m.Run(ins[i]); err != nil {
						b.Fatal(err)
					}
					spent[i] = append(spent[i], time.Since(start))
					cpu[i] += processCPU(b) - c0
				}
			}
			var base, baseCPU float64
			for i, n := range sizes {
				slices.Sort(spent[i])
				ips := float64(n) / spent[i][len(spent[i])/2].Seconds()
				b.ReportMetric(ips, fmt.Sprintf("b%d_images/s", n))
				perImage := float64(cpu[i].Microseconds()) / 1000 / float64(n*len(spent[i]))
				b.ReportMetric(perImage, fmt.Sprintf("b%d_cpu_ms/image", n))
				if i == 0 {
					base, baseCPU = ips, perImage
				} else {
					b.ReportMetric(ips/base, fmt.Sprintf("x_b%d", n))
					b.ReportMetric(baseCPU/perImage, fmt.Sprintf("cpu_x_b%d", n))
				}
			}
		})
	}
}

// processCPU is the user and system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
