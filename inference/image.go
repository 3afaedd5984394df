package inference

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // GIF input (first frame)
	_ "image/jpeg"
	_ "image/png" // PNG input; outputs use package pngenc
	"io"
	"math"
	"net/http"
	"runtime"

	"github.com/algocloud/algocloud/inference/pngenc"
)

// decodeImage decodes PNG, JPEG or GIF bytes into the tensor predict receives:
// uint8 HxWx3 RGB. Grayscale and palette images are expanded to RGB and an
// alpha channel is dropped, keeping the straight (un-premultiplied) colour,
// as PIL's image.convert("RGB") does. The header's dimensions are checked
// against maxPixels before any pixel is decoded (decompression bombs).
func decodeImage(data []byte, maxPixels int64) (Value, error) {
	return decodeImageFor(data, maxPixels, false)
}

// decodeImageFor is decodeImage, except that with pillowJPEG (Python
// workers) a JPEG is only checked here (format, size against maxPixels) and
// goes to the worker encoded (KindImage), where Pillow decodes it: Go's JPEG
// decoder rounds differently from libjpeg-turbo (up to 36 levels on a
// progressive JPEG), and authors compare the endpoint's answers with their
// own Pillow run. PNG and GIF decode exactly alike in both, and stay here.
func decodeImageFor(data []byte, maxPixels int64, pillowJPEG bool) (Value, error) {
	if len(data) == 0 {
		return Value{}, apiErr(http.StatusBadRequest, CodeEmptyBody, "the request holds no image bytes")
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return Value{}, apiErr(http.StatusBadRequest, CodeNotAnImage, "the bytes are not a PNG, JPEG or GIF image")
		}
		return Value{}, apiErr(http.StatusBadRequest, CodeCorruptImage, "the image header cannot be read: %v", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Value{}, apiErr(http.StatusBadRequest, CodeCorruptImage, "the %s image is %dx%d", format, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > maxPixels {
		return Value{}, apiErr(http.StatusRequestEntityTooLarge, CodeImageTooLarge,
			"the %s image is %dx%d (%d pixels); the limit is %d pixels", format, cfg.Width, cfg.Height, px, maxPixels)
	}
	if pillowJPEG && format == "jpeg" {
		return Value{Kind: KindImage, Format: format, DType: "uint8", Shape: []int{cfg.Height, cfg.Width, 3}, Data: data}, nil
	}
	img, _, err := image.Decode(&yieldingReader{r: bytes.NewReader(data)})
	if err != nil {
		return Value{}, apiErr(http.StatusBadRequest, CodeCorruptImage, "the %s image is truncated or corrupt: %v", format, err)
	}
	b := img.Bounds()
	if int64(b.Dx())*int64(b.Dy()) > maxPixels { // a GIF frame must lie inside the screen, but check anyway
		return Value{}, apiErr(http.StatusRequestEntityTooLarge, CodeImageTooLarge, "the decoded image is %dx%d", b.Dx(), b.Dy())
	}
	return Value{Kind: KindTensor, DType: "uint8", Shape: []int{b.Dy(), b.Dx(), 3}, Data: toRGB(img)}, nil
}

// toRGB returns img's pixels as packed RGB rows, with fast paths for the types
// the standard decoders produce.
func toRGB(img image.Image) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]byte, 0, w*h*3)
	switch m := img.(type) {
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
			for i := 0; i < len(row); i += 4 {
				out = append(out, row[i], row[i+1], row[i+2])
			}
		}
	case *image.RGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
			for i := 0; i < len(row); i += 4 {
				if row[i+3] == 0xff {
					out = append(out, row[i], row[i+1], row[i+2])
					continue
				}
				c := color.NRGBAModel.Convert(color.RGBA{row[i], row[i+1], row[i+2], row[i+3]}).(color.NRGBA)
				out = append(out, c.R, c.G, c.B)
			}
		}
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for _, g := range m.Pix[m.PixOffset(b.Min.X, y):][:w] {
				out = append(out, g, g, g)
			}
		}
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				ci := m.COffset(x, y)
				r, g, bb := color.YCbCrToRGB(m.Y[m.YOffset(x, y)], m.Cb[ci], m.Cr[ci])
				out = append(out, r, g, bb)
			}
		}
	case *image.Paletted:
		lut := make([][3]byte, 256)
		for i, c := range m.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]byte{n.R, n.G, n.B}
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for _, p := range m.Pix[m.PixOffset(b.Min.X, y):][:w] {
				out = append(out, lut[p][0], lut[p][1], lut[p][2])
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				out = append(out, c.R, c.G, c.B)
			}
		}
	}
	return out
}

// tensorToImage turns an array predict returned into an image, by the rules
// of tensorPixels.
func tensorToImage(v Value) (image.Image, error) {
	pix, w, h, c, err := tensorPixels(v)
	if err != nil {
		return nil, err
	}
	rect := image.Rect(0, 0, w, h)
	switch c {
	case 1:
		return &image.Gray{Pix: pix, Stride: w, Rect: rect}, nil
	case 4:
		return &image.NRGBA{Pix: pix, Stride: 4 * w, Rect: rect}, nil
	}
	rgba := make([]byte, 4*w*h)
	for i, j := 0, 0; i < len(pix); i, j = i+3, j+4 {
		rgba[j], rgba[j+1], rgba[j+2], rgba[j+3] = pix[i], pix[i+1], pix[i+2], 0xff
	}
	return &image.NRGBA{Pix: rgba, Stride: 4 * w, Rect: rect}, nil
}

// tensorPixels turns an array predict returned into 8-bit pixels, c bytes
// each (1 gray, 3 RGB, 4 RGBA with straight alpha): shape HxW or HxWx1
// (gray), HxWx3 or HxWx4. uint8 is taken as it is (no copy), bool as 0/255,
// floats must lie in [0, 1] and are scaled by 255 (rounded), other integers
// must lie in 0..255. Anything else is an error whose message tells the
// author what to change.
func tensorPixels(v Value) (pix []byte, w, h, c int, err error) {
	if v.Kind != KindTensor {
		return nil, 0, 0, 0, fmt.Errorf("expected a numpy array, got a %s value", v.Kind)
	}
	if _, err := v.tensorLen(); err != nil {
		return nil, 0, 0, 0, err
	}
	switch {
	case len(v.Shape) == 2:
		h, w, c = v.Shape[0], v.Shape[1], 1
	case len(v.Shape) == 3 && (v.Shape[2] == 1 || v.Shape[2] == 3 || v.Shape[2] == 4):
		h, w, c = v.Shape[0], v.Shape[1], v.Shape[2]
	case len(v.Shape) == 3 && (v.Shape[0] == 3 || v.Shape[0] == 4):
		return nil, 0, 0, 0, fmt.Errorf("shape %v looks channels-first: return (height, width, channels), e.g. np.transpose(x, (1, 2, 0))", v.Shape)
	default:
		return nil, 0, 0, 0, fmt.Errorf("shape %v is not an image: return (height, width) or (height, width, 1|3|4)", v.Shape)
	}
	if h == 0 || w == 0 {
		return nil, 0, 0, 0, fmt.Errorf("shape %v is an empty image", v.Shape)
	}
	pix, err = toUint8(v)
	return pix, w, h, c, err
}

// toUint8 converts a tensor's elements to 0..255 by the rules of tensorToImage.
func toUint8(v Value) ([]byte, error) {
	d := v.Data
	switch v.DType {
	case "uint8":
		return d, nil
	case "bool":
		out := make([]byte, len(d))
		for i, b := range d {
			if b != 0 {
				out[i] = 0xff
			}
		}
		return out, nil
	case "float16", "float32", "float64":
		size := dtypeSizes[v.DType]
		out := make([]byte, len(d)/size)
		for i := range out {
			var f float64
			switch size {
			case 2:
				f = halfToFloat(binary.LittleEndian.Uint16(d[2*i:]))
			case 4:
				f = float64(math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:])))
			default:
				f = math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:]))
			}
			if !(f >= 0 && f <= 1) { // NaN fails too
				return nil, fmt.Errorf("a %s image must hold values in [0, 1] (found %g): scale it, or return np.clip(x, 0, 1), or x.astype(np.uint8) for 0..255 values", v.DType, f)
			}
			out[i] = uint8(math.Round(f * 255))
		}
		return out, nil
	}
	size := dtypeSizes[v.DType]
	signed := v.DType[0] == 'i'
	out := make([]byte, len(d)/size)
	for i := range out {
		var n int64
		switch size {
		case 1:
			n = int64(d[i])
			if signed {
				n = int64(int8(d[i]))
			}
		case 2:
			u := binary.LittleEndian.Uint16(d[2*i:])
			n = int64(u)
			if signed {
				n = int64(int16(u))
			}
		case 4:
			u := binary.LittleEndian.Uint32(d[4*i:])
			n = int64(u)
			if signed {
				n = int64(int32(u))
			}
		default:
			u := binary.LittleEndian.Uint64(d[8*i:])
			n = int64(u)
			if !signed && u > math.MaxInt64 {
				n = -1
			}
		}
		if n < 0 || n > 255 {
			return nil, fmt.Errorf("an %s image must hold values in 0..255 (found %d): return x.astype(np.uint8) after scaling", v.DType, n)
		}
		out[i] = uint8(n)
	}
	return out, nil
}

// halfToFloat decodes an IEEE 754 binary16.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}

// encodeTensorPNG writes an array predict returned as a lossless PNG.
func encodeTensorPNG(v Value) ([]byte, error) {
	pix, w, h, c, err := tensorPixels(v)
	if err != nil {
		return nil, err
	}
	return pngenc.Encode(pix, w, h, c, pngenc.Choose(pix, w*c))
}

// yieldEvery is how much codec work (bytes read or written) runs between
// runtime.Gosched calls: about a millisecond of decoding or encoding. The
// PNG encoder (package pngenc) yields as often.
const yieldEvery = pngenc.YieldEvery

// yieldingReader lets other goroutines run every yieldEvery bytes. Decoding
// and encoding are tight loops that Go preempts only every 10 ms; with a few
// of them on every P, the goroutine that feeds a Python worker its next batch
// waited that long to run, leaving the workers idle (queue_wait_seconds
// showed it). A yield every millisecond or so costs nothing measurable.
type yieldingReader struct {
	r    io.Reader
	read int
}

func (y *yieldingReader) Read(p []byte) (int, error) {
	n, err := y.r.Read(p)
	if y.read += n; y.read >= yieldEvery {
		y.read = 0
		runtime.Gosched()
	}
	return n, err
}
