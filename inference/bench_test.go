package inference

import (
	"bytes"
	"image"
	"image/png"
	"math/rand/v2"
	"testing"
)

// benchImages are 512x512: a smooth "photo" with mild noise, uniform noise, and a binary mask.
func benchImages() map[string]image.Image {
	r := rand.New(rand.NewPCG(1, 2))
	photo, noise := image.NewNRGBA(image.Rect(0, 0, 512, 512)), image.NewNRGBA(image.Rect(0, 0, 512, 512))
	mask := image.NewGray(image.Rect(0, 0, 512, 512))
	for y := 0; y < 512; y++ {
		for x := 0; x < 512; x++ {
			i := photo.PixOffset(x, y)
			n := uint8(r.IntN(8))
			copy(photo.Pix[i:], []byte{uint8(x/2) + n, uint8(y/2) + n, uint8((x+y)/4) + n, 255})
			copy(noise.Pix[i:], []byte{uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32()), 255})
			if (x-256)*(x-256)+(y-256)*(y-256) < 150*150 {
				mask.Pix[mask.PixOffset(x, y)] = 255
			}
		}
	}
	return map[string]image.Image{"photo": photo, "noise": noise, "mask": mask}
}

// BenchmarkEncodePNG compares zlib levels on the outputs the server writes;
// the server uses BestSpeed (see pngEncoder).
func BenchmarkEncodePNG(b *testing.B) {
	levels := map[string]png.CompressionLevel{"default": png.DefaultCompression, "speed": png.BestSpeed, "none": png.NoCompression}
	for name, img := range benchImages() {
		for lname, level := range levels {
			b.Run(name+"/"+lname, func(b *testing.B) {
				enc := &png.Encoder{CompressionLevel: level, BufferPool: &pngBuffers{}}
				var size int
				for b.Loop() {
					var buf bytes.Buffer
					if err := enc.Encode(&buf, img); err != nil {
						b.Fatal(err)
					}
					size = buf.Len()
				}
				b.ReportMetric(float64(size)/1024, "KiB")
			})
		}
	}
}

// BenchmarkDecodeImage is the request-side codec: PNG bytes to the RGB tensor.
func BenchmarkDecodeImage(b *testing.B) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, benchImages()["photo"]); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := decodeImage(buf.Bytes(), 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}
