package onnxrt

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// Image is an 8-bit image in row-major HWC order: what the server decodes
// (RGB, Channels 3, like the numpy array predict gets) and what image
// postprocessing returns (Channels 1 or 3).
type Image struct {
	Width, Height, Channels int
	Pix                     []uint8
}

// Validate checks that Pix holds Width×Height×Channels values.
func (im Image) Validate() error {
	if im.Width < 1 || im.Height < 1 || im.Channels < 1 {
		return fmt.Errorf("onnxrt: image is %dx%dx%d", im.Width, im.Height, im.Channels)
	}
	if len(im.Pix) != im.Width*im.Height*im.Channels {
		return fmt.Errorf("onnxrt: %dx%dx%d image has %d bytes", im.Width, im.Height, im.Channels, len(im.Pix))
	}
	return nil
}

// FromImage converts any image.Image to an RGB Image (alpha dropped, keeping the
// straight colour, like PIL's convert("RGB")).
func FromImage(src image.Image) Image {
	b := src.Bounds()
	im := Image{Width: b.Dx(), Height: b.Dy(), Channels: 3}
	im.Pix = make([]uint8, im.Width*im.Height*3)
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(src.At(x, y)).(color.NRGBA)
			im.Pix[i], im.Pix[i+1], im.Pix[i+2] = c.R, c.G, c.B
			i += 3
		}
	}
	return im
}

// ToImage returns an *image.Gray (1 channel) or *image.NRGBA (3 channels,
// opaque) sharing nothing with im, ready for png.Encode.
func (im Image) ToImage() image.Image {
	r := image.Rect(0, 0, im.Width, im.Height)
	if im.Channels == 1 {
		g := image.NewGray(r)
		copy(g.Pix, im.Pix)
		return g
	}
	out := image.NewNRGBA(r)
	for i, j := 0, 0; i+2 < len(im.Pix); i, j = i+im.Channels, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = im.Pix[i], im.Pix[i+1], im.Pix[i+2], 255
	}
	return out
}

// Preprocess declares how an RGB uint8 image becomes one item of the model's
// float32 input: resize to Width×Height (bilinear, half-pixel centres, no
// antialiasing: what cv2.resize INTER_LINEAR does), reorder channels, then
// value = (pixel*Scale - Mean[c]) / Std[c], written in Layout order. Mean and Std
// are indexed by the model's channel (after ChannelOrder).
type Preprocess struct {
	// Width and Height are the model input's size. 0 takes the model's fixed
	// size; with a dynamic size and 0, each image keeps its own size.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Resize is "stretch" (default: ignore the aspect ratio) or "letterbox"
	// (keep it, pad the rest with PadValue).
	Resize string `json:"resize,omitempty"`
	// Anchor places a letterboxed image: "center" (default) or "topleft"
	// (padding right and bottom, as PaddleOCR's classifier does).
	Anchor string `json:"anchor,omitempty"`
	// PadValue is the letterbox padding, as a 0..255 pixel value in every channel
	// (normalised like a pixel).
	PadValue float32 `json:"pad_value,omitempty"`
	// Layout is the input's layout: "NCHW" (default) or "NHWC".
	Layout string `json:"layout,omitempty"`
	// Scale multiplies each 0..255 pixel first; 0 means 1/255.
	Scale float32 `json:"scale,omitempty"`
	// Mean is subtracted after scaling, per model channel; default 0.
	Mean [3]float32 `json:"mean"`
	// Std divides last, per model channel; 0 means 1.
	Std [3]float32 `json:"std"`
	// ChannelOrder is the model's channel order: "RGB" (default) or "BGR".
	ChannelOrder string `json:"channel_order,omitempty"`
}

// Transform records how Apply mapped an image into the model's input, so that
// image postprocessing can map an output back onto the original image.
type Transform struct {
	// SrcWidth, SrcHeight: the original image.
	SrcWidth, SrcHeight int
	// Width, Height: the model input (the canvas).
	Width, Height int
	// X, Y, W, H: where the resized image lies on the canvas (the whole canvas
	// unless letterboxed).
	X, Y, W, H int
}

// withDefaults fills the enum and numeric defaults and checks them.
func (p Preprocess) withDefaults() (Preprocess, error) {
	if p.Resize == "" {
		p.Resize = "stretch"
	}
	if p.Anchor == "" {
		p.Anchor = "center"
	}
	if p.Layout == "" {
		p.Layout = "NCHW"
	}
	if p.ChannelOrder == "" {
		p.ChannelOrder = "RGB"
	}
	if p.Scale == 0 {
		p.Scale = 1.0 / 255
	}
	for c := range p.Std {
		if p.Std[c] == 0 {
			p.Std[c] = 1
		}
	}
	switch {
	case p.Resize != "stretch" && p.Resize != "letterbox":
		return p, fmt.Errorf("onnxrt: preprocess resize %q: want stretch or letterbox", p.Resize)
	case p.Anchor != "center" && p.Anchor != "topleft":
		return p, fmt.Errorf("onnxrt: preprocess anchor %q: want center or topleft", p.Anchor)
	case p.Layout != "NCHW" && p.Layout != "NHWC":
		return p, fmt.Errorf("onnxrt: preprocess layout %q: want NCHW or NHWC", p.Layout)
	case p.ChannelOrder != "RGB" && p.ChannelOrder != "BGR":
		return p, fmt.Errorf("onnxrt: preprocess channel_order %q: want RGB or BGR", p.ChannelOrder)
	case p.Width < 0 || p.Height < 0 || (p.Width == 0) != (p.Height == 0):
		return p, fmt.Errorf("onnxrt: preprocess size %dx%d: set both or neither", p.Width, p.Height)
	}
	return p, nil
}

// Size is the model input size for img: Width×Height, or the image's own size
// when they are 0.
func (p Preprocess) Size(img Image) (w, h int) {
	if p.Width > 0 {
		return p.Width, p.Height
	}
	return img.Width, img.Height
}

// Apply writes img (RGB, 3 channels) as one input item into dst, which must hold
// 3×H×W values for the input size (Size), in Layout order. It returns where the
// image landed.
func (p Preprocess) Apply(img Image, dst []float32) (Transform, error) {
	p, err := p.withDefaults()
	if err != nil {
		return Transform{}, err
	}
	if err := img.Validate(); err != nil {
		return Transform{}, err
	}
	if img.Channels != 3 {
		return Transform{}, fmt.Errorf("onnxrt: preprocess wants an RGB image, got %d channels", img.Channels)
	}
	W, H := p.Size(img)
	if len(dst) != 3*W*H {
		return Transform{}, fmt.Errorf("onnxrt: preprocess: %dx%d input needs %d values, buffer has %d", W, H, 3*W*H, len(dst))
	}
	t := Transform{SrcWidth: img.Width, SrcHeight: img.Height, Width: W, Height: H, W: W, H: H}
	if p.Resize == "letterbox" {
		s := math.Min(float64(W)/float64(img.Width), float64(H)/float64(img.Height))
		t.W = min(W, max(1, int(math.Round(float64(img.Width)*s))))
		t.H = min(H, max(1, int(math.Round(float64(img.Height)*s))))
		if p.Anchor == "center" {
			t.X, t.Y = (W-t.W)/2, (H-t.H)/2
		}
	}
	// value = pixel*a[c] + b[c], c the model channel; src[c] the RGB channel it reads.
	var a, b [3]float32
	src := [3]int{0, 1, 2}
	if p.ChannelOrder == "BGR" {
		src = [3]int{2, 1, 0}
	}
	for c := 0; c < 3; c++ {
		a[c] = p.Scale / p.Std[c]
		b[c] = -p.Mean[c] / p.Std[c]
	}
	plane := W * H
	// at returns the index of model channel c at (x, y) in dst.
	at := func(x, y, c int) int {
		if p.Layout == "NCHW" {
			return c*plane + y*W + x
		}
		return (y*W+x)*3 + c
	}
	if t.W != W || t.H != H {
		for c := 0; c < 3; c++ {
			v := p.PadValue*a[c] + b[c]
			for y := 0; y < H; y++ {
				for x := 0; x < W; x++ {
					dst[at(x, y, c)] = v
				}
			}
		}
	}
	xs := resampleAxis(img.Width, t.W)
	ys := resampleAxis(img.Height, t.H)
	stride := img.Width * 3
	for y := 0; y < t.H; y++ {
		ry := ys[y]
		row0, row1 := img.Pix[ry.i0*stride:], img.Pix[ry.i1*stride:]
		for x := 0; x < t.W; x++ {
			rx := xs[x]
			for c := 0; c < 3; c++ {
				s := src[c]
				top := float32(row0[rx.i0*3+s])*(1-rx.f) + float32(row0[rx.i1*3+s])*rx.f
				bot := float32(row1[rx.i0*3+s])*(1-rx.f) + float32(row1[rx.i1*3+s])*rx.f
				dst[at(t.X+x, t.Y+y, c)] = (top*(1-ry.f)+bot*ry.f)*a[c] + b[c]
			}
		}
	}
	return t, nil
}

// tap is one output coordinate's two source samples and the weight of the second.
type tap struct {
	i0, i1 int
	f      float32
}

// resampleAxis maps n output positions onto a source axis of length src with
// half-pixel centres, clamped at the edges (cv2 INTER_LINEAR's convention). Equal
// lengths give exact copies (f = 0).
func resampleAxis(src, n int) []tap {
	taps := make([]tap, n)
	scale := float64(src) / float64(n)
	for i := range taps {
		s := (float64(i)+0.5)*scale - 0.5
		s = math.Max(s, 0)
		i0 := int(s)
		if i0 >= src-1 {
			taps[i] = tap{i0: src - 1, i1: src - 1}
			continue
		}
		taps[i] = tap{i0: i0, i1: i0 + 1, f: float32(s - float64(i0))}
	}
	return taps
}
