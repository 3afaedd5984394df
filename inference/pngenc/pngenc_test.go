package pngenc

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEncode round-trips every filter, level and channel count through
// the standard decoder, on sizes that exercise row edges.
func TestEncode(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, size := range [][2]int{{1, 1}, {7, 3}, {64, 33}} {
		w, h := size[0], size[1]
		for _, c := range []int{1, 3, 4} {
			pix := make([]byte, w*h*c)
			for i := range pix {
				pix[i] = byte(r.IntN(256))
			}
			for f := FilterNone; f <= FilterPaeth; f++ {
				for _, level := range []int{zlib.HuffmanOnly, zlib.BestSpeed, zlib.DefaultCompression} {
					t.Run(fmt.Sprintf("%dx%dx%d/filter%d/level%d", w, h, c, f, level), func(t *testing.T) {
						b, err := Encode(pix, w, h, c, Options{f, level})
						require.NoError(t, err)
						img, err := png.Decode(bytes.NewReader(b))
						require.NoError(t, err)
						require.Equal(t, image.Rect(0, 0, w, h), img.Bounds())
						if c == 1 {
							require.Equal(t, color.GrayModel, img.ColorModel())
						}
						for y := range h {
							for x := range w {
								p := pix[(y*w+x)*c:]
								want := color.NRGBA{p[0], p[0], p[0], 255}
								if c >= 3 {
									want = color.NRGBA{p[0], p[1], p[2], 255}
								}
								if c == 4 {
									want.A = p[3]
								}
								require.Equal(t, want, color.NRGBAModel.Convert(img.At(x, y)), "pixel (%d, %d)", x, y)
							}
						}
					})
				}
			}
		}
	}
	_, err := Encode(make([]byte, 5), 2, 2, 1, Options{FilterUp, zlib.HuffmanOnly})
	require.ErrorContains(t, err, "are not 2x2x1 pixels")
}

// TestChoose: flat images get BestSpeed, noisy ones Huffman-only.
func TestChoose(t *testing.T) {
	mask, land, noise := testImages()
	require.Equal(t, zlib.BestSpeed, Choose(mask, 512).Level)
	require.Equal(t, zlib.HuffmanOnly, Choose(land, 512*3).Level)
	require.Equal(t, zlib.HuffmanOnly, Choose(noise, 512*3).Level)
}

// testImages are 512x512 pixels like inference's benchImages: a binary
// mask (gray), a landscape-like RGB picture with soft shapes and sensor
// noise σ≈3, and uniform RGB noise.
func testImages() (mask, land, noise []byte) {
	r := rand.New(rand.NewPCG(1, 2))
	mask, land, noise = make([]byte, 512*512), make([]byte, 512*512*3), make([]byte, 512*512*3)
	for y := range 512 {
		for x := range 512 {
			i := (y*512 + x) * 3
			for c := range 3 {
				noise[i+c] = uint8(r.Uint32())
			}
			fx, fy := float64(x)/512, float64(y)/512
			blob := 70 * math.Exp(-((fx-0.3)*(fx-0.3)+(fy-0.6)*(fy-0.6))*12)
			base := [3]float64{90 + 80*fy + blob, 140 + 60*fy - blob/2, 200 - 90*fy + 15*math.Sin(fx*30)}
			for c := range 3 {
				land[i+c] = uint8(max(0, min(255, base[c]+3*r.NormFloat64())))
			}
			if (x-256)*(x-256)+(y-256)*(y-256) < 150*150 {
				mask[y*512+x] = 255
			}
		}
	}
	return mask, land, noise
}

// testPython is Debian's Python with numpy and Pillow (scripts/setup.sh).
const testPython = "/usr/bin/python3"

// requirePython fails (not skips) without Debian's Python: that Pillow
// reads what Encode writes is the point of TestPNGReadByPIL.
func requirePython(t testing.TB) {
	t.Helper()
	require.NoError(t, exec.Command(testPython, "-c", "import numpy, PIL").Run(),
		"%s with numpy and Pillow is needed: run scripts/setup.sh", testPython)
}

// TestPNGReadByPIL: what the server writes opens in Pillow with the same pixels.
func TestPNGReadByPIL(t *testing.T) {
	requirePython(t)
	dir := t.TempDir()
	_, pix, _ := testImages()
	for name, o := range map[string]Options{"huffman": {FilterUp, zlib.HuffmanOnly}, "speed": {FilterUp, zlib.BestSpeed}} {
		b, err := Encode(pix, 512, 512, 3, o)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "raw"), pix, 0o644))
	code := `import sys, numpy as np
from PIL import Image
raw = np.fromfile(sys.argv[1] + "/raw", np.uint8).reshape(512, 512, 3)
for n in ("huffman", "speed"):
    im = Image.open(sys.argv[1] + "/" + n + ".png")
    im.load()
    assert im.mode == "RGB", im.mode
    assert (np.asarray(im) == raw).all(), n
`
	out, err := exec.Command(testPython, "-c", code, dir).CombinedOutput()
	require.NoError(t, err, string(out))
}
