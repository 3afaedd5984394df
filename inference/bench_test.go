package inference

import (
	"bytes"
	"compress/zlib"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/algocloud/algocloud/inference/pngenc"
	"github.com/algocloud/algocloud/spec"
)

// benchImages are 512x512: a smooth gradient with mild noise ("photo"), a
// landscape-like picture with soft shapes and sensor noise σ≈3 (closer to a
// camera's: what algocloud-bench-infer sends), uniform noise, and a
// binary mask.
func benchImages() map[string]image.Image {
	r := rand.New(rand.NewPCG(1, 2))
	photo, noise := image.NewNRGBA(image.Rect(0, 0, 512, 512)), image.NewNRGBA(image.Rect(0, 0, 512, 512))
	land := image.NewNRGBA(image.Rect(0, 0, 512, 512))
	mask := image.NewGray(image.Rect(0, 0, 512, 512))
	for y := 0; y < 512; y++ {
		for x := 0; x < 512; x++ {
			i := photo.PixOffset(x, y)
			n := uint8(r.IntN(8))
			copy(photo.Pix[i:], []byte{uint8(x/2) + n, uint8(y/2) + n, uint8((x+y)/4) + n, 255})
			copy(noise.Pix[i:], []byte{uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32()), 255})
			fx, fy := float64(x)/512, float64(y)/512
			blob := 70 * math.Exp(-((fx-0.3)*(fx-0.3)+(fy-0.6)*(fy-0.6))*12)
			base := [3]float64{90 + 80*fy + blob, 140 + 60*fy - blob/2, 200 - 90*fy + 15*math.Sin(fx*30)}
			for c := range 3 {
				land.Pix[i+c] = uint8(max(0, min(255, base[c]+3*r.NormFloat64())))
			}
			land.Pix[i+3] = 255
			if (x-256)*(x-256)+(y-256)*(y-256) < 150*150 {
				mask.Pix[mask.PixOffset(x, y)] = 255
			}
		}
	}
	return map[string]image.Image{"photo": photo, "landscape": land, "noise": noise, "mask": mask}
}

// BenchmarkEncodePNG compares the standard encoder at its default level and
// at BestSpeed with the server's (package pngenc: one Up filter;
// Huffman-only, or BestSpeed for images with many repeated bytes:
// pngenc.Choose), on the outputs the server writes. ms/op and KiB are the
// figures in pngenc's comments.
func BenchmarkEncodePNG(b *testing.B) {
	for name, img := range benchImages() {
		for lname, level := range map[string]png.CompressionLevel{"std-default": png.DefaultCompression, "std-speed": png.BestSpeed} {
			b.Run(name+"/"+lname, func(b *testing.B) {
				enc := &png.Encoder{CompressionLevel: level}
				var buf bytes.Buffer
				for b.Loop() {
					buf.Reset()
					if err := enc.Encode(&buf, img); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(buf.Len())/1024, "KiB")
			})
		}
		pix, c := toRGB(img), 3
		if g, ok := img.(*image.Gray); ok {
			pix, c = g.Pix, 1
		}
		chosen := pngenc.Choose(pix, 512*c)
		for oname, o := range map[string]pngenc.Options{"ours-chosen": chosen,
			"ours-huffman": {Filter: pngenc.FilterUp, Level: zlib.HuffmanOnly}, "ours-speed": {Filter: pngenc.FilterUp, Level: zlib.BestSpeed}} {
			b.Run(name+"/"+oname, func(b *testing.B) {
				var out []byte
				for b.Loop() {
					var err error
					if out, err = pngenc.Encode(pix, 512, 512, c, o); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(out))/1024, "KiB")
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

// BenchmarkPredictImage is an identity predict on a 512x512 PNG through the
// whole server (HTTP on loopback, 2 workers) at concurrency 8, for profiles:
//
//	go test -run '^$' -bench PredictImage -cpuprofile /tmp/cpu.out ./inference/
//
// scripts/bench-inference.sh measures the same against its baselines.
func BenchmarkPredictImage(b *testing.B) {
	ts := startServer(b, codeDir(b, "class AAI:\n    def predict(self, x):\n        return x\n"), spec.Image, spec.Image,
		func(c *Config) { c.Threads = 2 })
	ts.waitReady(b)
	var buf bytes.Buffer
	if err := png.Encode(&buf, benchImages()["photo"]); err != nil {
		b.Fatal(err)
	}
	body := buf.Bytes()
	b.SetParallelism(4) // 4 x GOMAXPROCS(2) = 8 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "image/png")
			resp, err := ts.Client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
