package onnxrt

import (
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/require"
)

// gray builds a w×h RGB image whose three channels all hold v(x, y).
func gray(w, h int, v func(x, y int) uint8) Image {
	im := Image{Width: w, Height: h, Channels: 3, Pix: make([]uint8, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := v(x, y)
			copy(im.Pix[(y*w+x)*3:], []uint8{p, p, p})
		}
	}
	return im
}

// planes repeats one plane for the three channels (NCHW of a gray image).
func planes(p ...float32) []float32 { return append(append(append([]float32{}, p...), p...), p...) }

func TestPreprocess(t *testing.T) {
	rgb := Image{Width: 2, Height: 2, Channels: 3, Pix: []uint8{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120}}
	ramp := gray(4, 4, func(x, y int) uint8 { return uint8(x*10 + y*40) })
	wide := gray(8, 4, func(x, y int) uint8 { return uint8(x*10 + y*40) })
	cases := []struct {
		name string
		pre  Preprocess
		img  Image
		want []float32
		tr   Transform
	}{
		{"identity NCHW", Preprocess{Scale: 1}, rgb,
			[]float32{10, 40, 70, 100, 20, 50, 80, 110, 30, 60, 90, 120},
			Transform{SrcWidth: 2, SrcHeight: 2, Width: 2, Height: 2, W: 2, H: 2}},
		{"identity NHWC", Preprocess{Scale: 1, Layout: "NHWC"}, rgb,
			[]float32{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120},
			Transform{SrcWidth: 2, SrcHeight: 2, Width: 2, Height: 2, W: 2, H: 2}},
		{"default scale 1/255", Preprocess{Layout: "NHWC"}, Image{Width: 1, Height: 1, Channels: 3, Pix: []uint8{0, 51, 255}},
			[]float32{0, 0.2, 1}, Transform{SrcWidth: 1, SrcHeight: 1, Width: 1, Height: 1, W: 1, H: 1}},
		{"BGR, mean and std per model channel", Preprocess{Scale: 1, ChannelOrder: "BGR", Mean: [3]float32{1, 2, 3}, Std: [3]float32{1, 0, 2}}, rgb,
			[]float32{29, 59, 89, 119, 18, 48, 78, 108, 3.5, 18.5, 33.5, 48.5},
			Transform{SrcWidth: 2, SrcHeight: 2, Width: 2, Height: 2, W: 2, H: 2}},
		{"BGR NHWC", Preprocess{Scale: 1, ChannelOrder: "BGR", Layout: "NHWC"}, rgb,
			[]float32{30, 20, 10, 60, 50, 40, 90, 80, 70, 120, 110, 100},
			Transform{SrcWidth: 2, SrcHeight: 2, Width: 2, Height: 2, W: 2, H: 2}},
		{"stretch halves: 2x2 block means", Preprocess{Scale: 1, Width: 2, Height: 2}, ramp,
			planes(25, 45, 105, 125),
			Transform{SrcWidth: 4, SrcHeight: 4, Width: 2, Height: 2, W: 2, H: 2}},
		{"stretch doubles: half-pixel centres, clamped edges", Preprocess{Scale: 1, Width: 4, Height: 1},
			gray(2, 1, func(x, _ int) uint8 { return uint8(x * 100) }),
			planes(0, 25, 75, 100),
			Transform{SrcWidth: 2, SrcHeight: 1, Width: 4, Height: 1, W: 4, H: 1}},
		{"letterbox centred", Preprocess{Scale: 1, Width: 4, Height: 4, Resize: "letterbox", PadValue: 7},
			gray(4, 2, func(x, y int) uint8 { return uint8(1 + x + 4*y) }),
			planes(7, 7, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 7, 7, 7, 7),
			Transform{SrcWidth: 4, SrcHeight: 2, Width: 4, Height: 4, X: 0, Y: 1, W: 4, H: 2}},
		{"letterbox top-left", Preprocess{Scale: 1, Width: 4, Height: 4, Resize: "letterbox", Anchor: "topleft"},
			gray(2, 4, func(x, y int) uint8 { return uint8(1 + x + 2*y) }),
			planes(1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0, 7, 8, 0, 0),
			Transform{SrcWidth: 2, SrcHeight: 4, Width: 4, Height: 4, W: 2, H: 4}},
		{"letterbox shrinks and pads", Preprocess{Scale: 1, Width: 4, Height: 4, Resize: "letterbox"}, wide,
			planes(0, 0, 0, 0, 25, 45, 65, 85, 105, 125, 145, 165, 0, 0, 0, 0),
			Transform{SrcWidth: 8, SrcHeight: 4, Width: 4, Height: 4, Y: 1, W: 4, H: 2}},
		{"letterbox odd padding goes after", Preprocess{Scale: 1, Width: 4, Height: 4, Resize: "letterbox", Layout: "NHWC"},
			gray(4, 3, func(x, y int) uint8 { return 9 }),
			append(fill(36, 9), fill(12, 0)...),
			Transform{SrcWidth: 4, SrcHeight: 3, Width: 4, Height: 4, W: 4, H: 3}},
		{"pad value is normalised like a pixel", Preprocess{Width: 1, Height: 2, Resize: "letterbox", PadValue: 127.5, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}},
			gray(2, 2, func(x, y int) uint8 { return 255 }),
			planes(1, 0),
			Transform{SrcWidth: 2, SrcHeight: 2, Width: 1, Height: 2, W: 1, H: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, h := tc.pre.Size(tc.img)
			dst := make([]float32, 3*w*h)
			tr, err := tc.pre.Apply(tc.img, dst)
			require.NoError(t, err)
			require.Equal(t, tc.tr, tr)
			require.InDeltaSlice(t, tc.want, dst, 1e-4)
		})
	}
}

func fill(n int, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestPreprocessErrors(t *testing.T) {
	img := gradient(4, 4)
	cases := []struct {
		pre  Preprocess
		img  Image
		size int
		want string
	}{
		{Preprocess{Resize: "crop"}, img, 48, `resize "crop"`},
		{Preprocess{Layout: "CHW"}, img, 48, `layout "CHW"`},
		{Preprocess{ChannelOrder: "RGBA"}, img, 48, `channel_order "RGBA"`},
		{Preprocess{Anchor: "middle"}, img, 48, `anchor "middle"`},
		{Preprocess{Width: 4}, img, 48, "set both or neither"},
		{Preprocess{}, img, 47, "needs 48 values, buffer has 47"},
		{Preprocess{}, Image{Width: 4, Height: 4, Channels: 1, Pix: make([]uint8, 16)}, 48, "wants an RGB image, got 1 channels"},
		{Preprocess{}, Image{Width: 4, Height: 4, Channels: 3, Pix: make([]uint8, 5)}, 48, "has 5 bytes"},
		{Preprocess{}, Image{}, 0, "image is 0x0x0"},
	}
	for _, tc := range cases {
		_, err := tc.pre.Apply(tc.img, make([]float32, tc.size))
		require.ErrorContains(t, err, tc.want)
	}
}

func TestImageConversions(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	src.SetNRGBA(1, 0, color.NRGBA{R: 200, G: 100, B: 50, A: 128})
	src.SetNRGBA(2, 1, color.NRGBA{R: 1, G: 2, B: 3, A: 255})
	im := FromImage(src)
	require.Equal(t, 3, im.Channels)
	require.Equal(t, []uint8{200, 100, 50}, im.Pix[3:6], "alpha dropped, straight colour kept")
	require.Equal(t, []uint8{1, 2, 3}, im.Pix[15:18])
	back := im.ToImage().(*image.NRGBA)
	require.Equal(t, color.NRGBA{R: 200, G: 100, B: 50, A: 255}, back.NRGBAAt(1, 0))

	g := Image{Width: 2, Height: 1, Channels: 1, Pix: []uint8{5, 250}}
	require.Equal(t, []uint8{5, 250}, g.ToImage().(*image.Gray).Pix)
}
