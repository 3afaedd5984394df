package inference

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEncodeRawPNG round-trips every filter, level and channel count through
// the standard decoder, on sizes that exercise row edges.
func TestEncodeRawPNG(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, size := range [][2]int{{1, 1}, {7, 3}, {64, 33}} {
		w, h := size[0], size[1]
		for _, c := range []int{1, 3, 4} {
			pix := make([]byte, w*h*c)
			for i := range pix {
				pix[i] = byte(r.IntN(256))
			}
			for f := filterNone; f <= filterPaeth; f++ {
				for _, level := range []int{zlib.HuffmanOnly, zlib.BestSpeed, zlib.DefaultCompression} {
					t.Run(fmt.Sprintf("%dx%dx%d/filter%d/level%d", w, h, c, f, level), func(t *testing.T) {
						b, err := encodeRawPNG(pix, w, h, c, pngOptions{f, level})
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
	_, err := encodeRawPNG(make([]byte, 5), 2, 2, 1, fastOptionsForTest())
	require.ErrorContains(t, err, "are not 2x2x1 pixels")
}

func fastOptionsForTest() pngOptions { return pngOptions{filterUp, zlib.HuffmanOnly} }

// TestChoosePNG: flat images get BestSpeed, noisy ones Huffman-only.
func TestChoosePNG(t *testing.T) {
	imgs := benchImages()
	require.Equal(t, zlib.BestSpeed, choosePNG(imgs["mask"].(*image.Gray).Pix, 512).level)
	require.Equal(t, zlib.HuffmanOnly, choosePNG(toRGB(imgs["landscape"]), 512*3).level)
	require.Equal(t, zlib.HuffmanOnly, choosePNG(toRGB(imgs["noise"]), 512*3).level)
}

// TestPNGReadByPIL: what the server writes opens in Pillow with the same pixels.
func TestPNGReadByPIL(t *testing.T) {
	requirePython(t)
	dir := t.TempDir()
	pix := toRGB(benchImages()["landscape"])
	for name, o := range map[string]pngOptions{"huffman": {filterUp, zlib.HuffmanOnly}, "speed": {filterUp, zlib.BestSpeed}} {
		b, err := encodeRawPNG(pix, 512, 512, 3, o)
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
