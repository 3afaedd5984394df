package onnxrt

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestImageOutput(t *testing.T) {
	nan := float32(math.NaN())
	// Two items of [1,2,3]: the second is the one drawn.
	oneCh := Tensor{Shape: []int64{2, 1, 2, 3}, Data: []float32{9, 9, 9, 9, 9, 9, 0, 0.5, 1, -1, 2, nan}}
	cases := []struct {
		name string
		post Postprocess
		out  Tensor
		want Image
	}{
		{"unit, clipped, NaN black", Postprocess{Kind: "image"}, oneCh,
			Image{Width: 3, Height: 2, Channels: 1, Pix: []uint8{0, 128, 255, 0, 255, 0}}},
		{"sigmoid", Postprocess{Kind: "image", Activation: "sigmoid"}, oneCh,
			Image{Width: 3, Height: 2, Channels: 1, Pix: []uint8{128, 159, 186, 69, 225, 0}}},
		{"symmetric", Postprocess{Kind: "image", Scaling: "symmetric"},
			Tensor{Shape: []int64{1, 1, 1, 3}, Data: []float32{-1, 0, 1}},
			Image{Width: 3, Height: 1, Channels: 1, Pix: []uint8{0, 128, 255}}},
		{"raw", Postprocess{Kind: "image", Scaling: "raw"},
			Tensor{Shape: []int64{1, 1, 1, 3}, Data: []float32{12.4, 300, -3}},
			Image{Width: 3, Height: 1, Channels: 1, Pix: []uint8{12, 255, 0}}},
		{"minmax per image", Postprocess{Kind: "image", Scaling: "minmax"},
			Tensor{Shape: []int64{2, 1, 1, 3}, Data: []float32{-100, 0, 100, 2, 4, 6}},
			Image{Width: 3, Height: 1, Channels: 1, Pix: []uint8{0, 128, 255}}},
		{"minmax of a flat image", Postprocess{Kind: "image", Scaling: "minmax"},
			Tensor{Shape: []int64{1, 1, 1, 2}, Data: []float32{3, 3}},
			Image{Width: 2, Height: 1, Channels: 1, Pix: []uint8{0, 0}}},
		{"[N,H,W] is gray", Postprocess{Kind: "image"},
			Tensor{Shape: []int64{1, 1, 2}, Data: []float32{0, 1}},
			Image{Width: 2, Height: 1, Channels: 1, Pix: []uint8{0, 255}}},
		{"NCHW RGB", Postprocess{Kind: "image"},
			Tensor{Shape: []int64{1, 3, 1, 2}, Data: []float32{1, 0, 0, 1, 0.2, 0.4}},
			Image{Width: 2, Height: 1, Channels: 3, Pix: []uint8{255, 0, 51, 0, 255, 102}}},
		{"NHWC BGR", Postprocess{Kind: "image", Layout: "NHWC", ChannelOrder: "BGR"},
			Tensor{Shape: []int64{1, 1, 2, 3}, Data: []float32{0.2, 0, 1, 0.4, 1, 0}},
			Image{Width: 2, Height: 1, Channels: 3, Pix: []uint8{255, 0, 51, 0, 255, 102}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.post.ImageOutput(tc.out, int(tc.out.Shape[0])-1, Transform{})
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestImageOutputRestoresSize(t *testing.T) {
	// An 8x4 image letterboxed into 4x4 (rows 1-2); the model answers at half
	// that resolution (2x2), so the image part is row 1 of the output.
	tr := Transform{SrcWidth: 8, SrcHeight: 4, Width: 4, Height: 4, Y: 1, W: 4, H: 2}
	out := Tensor{Shape: []int64{1, 1, 2, 2}, Data: []float32{0, 0, 0, 1}}
	im, err := Postprocess{Kind: "image", RestoreSize: true}.ImageOutput(out, 0, tr)
	require.NoError(t, err)
	require.Equal(t, 8, im.Width)
	require.Equal(t, 4, im.Height)
	for y := 0; y < 4; y++ {
		require.Equal(t, []uint8{0, 0, 32, 96, 159, 223, 255, 255}, im.Pix[y*8:(y+1)*8], "row %d (half-pixel centres)", y)
	}
}

func TestImageOutputErrors(t *testing.T) {
	two := Tensor{Shape: []int64{1, 2, 4, 4}, Data: make([]float32, 32)}
	_, err := Postprocess{Kind: "image"}.ImageOutput(two, 0, Transform{})
	require.ErrorContains(t, err, "not an image with 1 or 3 channels in NCHW layout")
	_, err = Postprocess{Kind: "image"}.ImageOutput(two, 1, Transform{})
	require.ErrorContains(t, err, "has no item 1")
	_, err = Postprocess{Kind: "image", Scaling: "log"}.ImageOutput(two, 0, Transform{})
	require.ErrorContains(t, err, `scaling "log"`)
	_, err = Postprocess{Kind: "png"}.ImageOutput(two, 0, Transform{})
	require.ErrorContains(t, err, `kind "png"`)
}

func TestJSONOutput(t *testing.T) {
	names := []string{"logits", "class", "boxes"}
	outs := []Tensor{
		{Shape: []int64{2, 3}, Data: []float32{1, 2, 3, 0, float32(math.Log(3)), 0}},
		{Shape: []int64{2}, Data: []float32{2, 1}},
		{Shape: []int64{2, 2, 2}, Data: []float32{1, 2, 3, 4, 0.5, 1e-7, float32(math.Inf(1)), -2}},
	}
	cases := []struct {
		name   string
		post   Postprocess
		labels []string
		want   string
	}{
		{"all outputs as arrays", Postprocess{Kind: "json"}, nil,
			`{"logits":[0,1.0986123,0],"class":1,"boxes":[[0.5,1e-7],[null,-2]]}`},
		{"chosen outputs", Postprocess{Kind: "json", Outputs: []string{"class"}}, nil, `{"class":1}`},
		{"softmax", Postprocess{Kind: "json", Outputs: []string{"logits"}, Softmax: true}, nil,
			`{"logits":[0.2,0.6,0.2]}`},
		{"top 2 with labels", Postprocess{Kind: "json", Outputs: []string{"logits"}, Softmax: true, TopK: 2}, []string{"cat", "dog", "eel"},
			`{"logits":[{"index":1,"label":"dog","score":0.6},{"index":0,"label":"cat","score":0.2}]}`},
		{"top 5 of 3, no labels", Postprocess{Kind: "json", Outputs: []string{"logits"}, TopK: 5}, nil,
			`{"logits":[{"index":1,"score":1.0986123},{"index":0,"score":0},{"index":2,"score":0}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.post.JSONOutput(names, outs, 1, tc.labels)
			require.NoError(t, err)
			require.True(t, json.Valid(got), string(got))
			var g, w any
			require.NoError(t, json.Unmarshal(got, &g))
			require.NoError(t, json.Unmarshal([]byte(tc.want), &w))
			requireJSONClose(t, w, g, string(got))
		})
	}
	_, err := Postprocess{Kind: "json", Outputs: []string{"probs"}}.JSONOutput(names, outs, 0, nil)
	require.ErrorContains(t, err, `output "probs": the model's outputs are [logits class boxes]`)
	_, err = Postprocess{Kind: "json", Outputs: []string{"boxes"}, TopK: 1}.JSONOutput(names, outs, 0, nil)
	require.ErrorContains(t, err, "top_k needs output \"boxes\" to be a vector per item")
}

// requireJSONClose compares decoded JSON values, numbers within 1e-6.
func requireJSONClose(t *testing.T, want, got any, msg string) {
	t.Helper()
	switch w := want.(type) {
	case float64:
		g, ok := got.(float64)
		require.True(t, ok, "want a number: %s", msg)
		require.InDelta(t, w, g, 1e-6, msg)
	case []any:
		g, ok := got.([]any)
		require.True(t, ok, "want an array: %s", msg)
		require.Len(t, g, len(w), msg)
		for i := range w {
			requireJSONClose(t, w[i], g[i], msg)
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		require.True(t, ok, "want an object: %s", msg)
		require.Len(t, g, len(w), msg)
		for k := range w {
			requireJSONClose(t, w[k], g[k], msg)
		}
	default:
		require.Equal(t, want, got, msg)
	}
}
