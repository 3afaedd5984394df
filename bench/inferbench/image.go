package inferbench

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
)

// naturalImage is a deterministic w×h RGB picture that compresses like a
// photo rather than like noise: a sky-to-ground gradient, a few soft blobs
// and ridges, and per-pixel sensor noise (σ≈3 levels).
func naturalImage(w, h int) *image.NRGBA {
	r := rand.New(rand.NewPCG(7, 11))
	type blob struct{ x, y, rad, r, g, b float64 }
	blobs := make([]blob, 9)
	for i := range blobs {
		blobs[i] = blob{r.Float64() * float64(w), r.Float64() * float64(h), (0.08 + 0.25*r.Float64()) * float64(w),
			r.Float64()*160 - 80, r.Float64()*160 - 80, r.Float64()*160 - 80}
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		fy := float64(y) / float64(h)
		for x := range w {
			fx := float64(x) / float64(w)
			// sky above a horizon that waves, ground below
			horizon := 0.55 + 0.05*math.Sin(fx*7)
			var c [3]float64
			if fy < horizon {
				c = [3]float64{90 + 80*fy, 140 + 70*fy, 230 - 40*fy}
			} else {
				c = [3]float64{110 - 40*fy + 20*math.Sin(fx*40+fy*9), 120 - 30*fy, 60 + 10*math.Cos(fx*13)}
			}
			for _, b := range blobs {
				d := math.Hypot(float64(x)-b.x, float64(y)-b.y) / b.rad
				k := math.Exp(-d * d)
				c[0] += k * b.r
				c[1] += k * b.g
				c[2] += k * b.b
			}
			i := img.PixOffset(x, y)
			for ch := range 3 {
				img.Pix[i+ch] = clamp8(c[ch] + r.NormFloat64()*3)
			}
			img.Pix[i+3] = 255
		}
	}
	return img
}

func clamp8(v float64) uint8 {
	return uint8(max(0, min(255, math.Round(v))))
}

// pngOf encodes img at the standard library's default level, as a client would.
func pngOf(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	err := png.Encode(&b, img)
	return b.Bytes(), err
}

// samePixels reports whether two encoded images hold the same RGB pixels
// (encoders differ, so bytes do not compare).
func samePixels(a, b []byte) bool {
	ia, _, err1 := image.Decode(bytes.NewReader(a))
	ib, _, err2 := image.Decode(bytes.NewReader(b))
	if err1 != nil || err2 != nil || ia.Bounds() != ib.Bounds() {
		return false
	}
	bd := ia.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r1, g1, b1, _ := ia.At(x, y).RGBA()
			r2, g2, b2, _ := ib.At(x, y).RGBA()
			if r1>>8 != r2>>8 || g1>>8 != g2>>8 || b1>>8 != b2>>8 {
				return false
			}
		}
	}
	return true
}
