package onnxrt

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
)

// Postprocess declares how a model's outputs become the API's answer for one
// item of a batch: Kind "image" (one output → a 1- or 3-channel uint8 image,
// which the server encodes as PNG) or "json" (named outputs → JSON arrays, or
// the top classes with their labels).
type Postprocess struct {
	// Kind is "image" or "json".
	Kind string `json:"kind"`

	// Output (image) names the output to draw; default the model's first.
	Output string `json:"output,omitempty"`
	// Layout (image) of that output: "NCHW" (default: [N,C,H,W] or [N,H,W]) or
	// "NHWC" ([N,H,W,C]); C must be 1 or 3.
	Layout string `json:"layout,omitempty"`
	// ChannelOrder (image) of a 3-channel output: "RGB" (default) or "BGR".
	ChannelOrder string `json:"channel_order,omitempty"`
	// Activation (image) applied to each value first: "" or "sigmoid".
	Activation string `json:"activation,omitempty"`
	// Scaling (image) maps values to 0..255 (rounded, clipped): "unit" (default:
	// [0,1]), "symmetric" ([-1,1]), "raw" (already 0..255) or "minmax" (each
	// image's own min..max, a flat image → 0).
	Scaling string `json:"scaling,omitempty"`
	// RestoreSize (image) maps the output back onto the request's image: crops
	// the letterbox padding and resizes (bilinear) to the original size.
	RestoreSize bool `json:"restore_size,omitempty"`

	// Outputs (json) names the outputs to include; default all.
	Outputs []string `json:"outputs,omitempty"`
	// Softmax (json) turns each item's last axis into probabilities.
	Softmax bool `json:"softmax,omitempty"`
	// TopK (json), when > 0, answers each output as its K best classes
	// [{"index", "label", "score"}], best first; the item must be a vector.
	TopK int `json:"top_k,omitempty"`
	// Labels (json) is a text file, one class label per line, relative to the
	// folder of aai_onnx.json; labels are added to TopK's answers.
	Labels string `json:"labels,omitempty"`
}

func (p Postprocess) withDefaults() (Postprocess, error) {
	if p.Layout == "" {
		p.Layout = "NCHW"
	}
	if p.ChannelOrder == "" {
		p.ChannelOrder = "RGB"
	}
	if p.Scaling == "" {
		p.Scaling = "unit"
	}
	switch {
	case p.Kind != "image" && p.Kind != "json":
		return p, fmt.Errorf("onnxrt: postprocess kind %q: want image or json", p.Kind)
	case p.Layout != "NCHW" && p.Layout != "NHWC":
		return p, fmt.Errorf("onnxrt: postprocess layout %q: want NCHW or NHWC", p.Layout)
	case p.ChannelOrder != "RGB" && p.ChannelOrder != "BGR":
		return p, fmt.Errorf("onnxrt: postprocess channel_order %q: want RGB or BGR", p.ChannelOrder)
	case p.Activation != "" && p.Activation != "sigmoid":
		return p, fmt.Errorf("onnxrt: postprocess activation %q: want sigmoid or nothing", p.Activation)
	case !slices.Contains([]string{"unit", "symmetric", "raw", "minmax"}, p.Scaling):
		return p, fmt.Errorf("onnxrt: postprocess scaling %q: want unit, symmetric, raw or minmax", p.Scaling)
	case p.TopK < 0:
		return p, fmt.Errorf("onnxrt: postprocess top_k %d is negative", p.TopK)
	}
	return p, nil
}

// item returns the part of t that belongs to batch item i, and its shape
// without the batch dimension.
func item(t Tensor, i int) ([]float32, []int64, error) {
	if len(t.Shape) == 0 || int64(i) >= t.Shape[0] || i < 0 {
		return nil, nil, fmt.Errorf("onnxrt: output shape %v has no item %d", t.Shape, i)
	}
	per := int(product(t.Shape[1:]))
	return t.Data[i*per : (i+1)*per], t.Shape[1:], nil
}

// ImageOutput draws batch item i of out as an image. tr is the item's
// Transform (used by RestoreSize).
func (p Postprocess) ImageOutput(out Tensor, i int, tr Transform) (Image, error) {
	p, err := p.withDefaults()
	if err != nil {
		return Image{}, err
	}
	data, shape, err := item(out, i)
	if err != nil {
		return Image{}, err
	}
	var h, w, c int
	switch {
	case len(shape) == 2:
		h, w, c = int(shape[0]), int(shape[1]), 1
	case len(shape) == 3 && p.Layout == "NCHW":
		c, h, w = int(shape[0]), int(shape[1]), int(shape[2])
	case len(shape) == 3:
		h, w, c = int(shape[0]), int(shape[1]), int(shape[2])
	}
	if (c != 1 && c != 3) || h < 1 || w < 1 {
		return Image{}, fmt.Errorf("onnxrt: output shape %v is not an image with 1 or 3 channels in %s layout", out.Shape, p.Layout)
	}
	lo, hi := float32(0), float32(1)
	switch p.Scaling {
	case "symmetric":
		lo = -1
	case "raw":
		hi = 255
	case "minmax":
		lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
		for _, v := range data {
			v = p.activate(v)
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	k := float32(0)
	if hi > lo {
		k = 255 / (hi - lo)
	}
	im := Image{Width: w, Height: h, Channels: c, Pix: make([]uint8, w*h*c)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for ch := 0; ch < c; ch++ {
				sc := ch
				if c == 3 && p.ChannelOrder == "BGR" {
					sc = 2 - ch
				}
				var v float32
				if p.Layout == "NCHW" {
					v = data[(sc*h+y)*w+x]
				} else {
					v = data[(y*w+x)*c+sc]
				}
				im.Pix[(y*w+x)*c+ch] = toByte((p.activate(v) - lo) * k)
			}
		}
	}
	if p.RestoreSize && tr.SrcWidth > 0 {
		im = restore(im, tr)
	}
	return im, nil
}

func (p Postprocess) activate(v float32) float32 {
	if p.Activation == "sigmoid" {
		return float32(1 / (1 + math.Exp(-float64(v))))
	}
	return v
}

func toByte(v float32) uint8 {
	switch {
	case v != v || v <= 0: // NaN too
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// restore crops the image part of a letterboxed output (scaled to the output's
// own size, which may differ from the input's) and resizes it to the source
// size.
func restore(im Image, tr Transform) Image {
	sx, sy := float64(im.Width)/float64(tr.Width), float64(im.Height)/float64(tr.Height)
	x0, y0 := int(math.Round(float64(tr.X)*sx)), int(math.Round(float64(tr.Y)*sy))
	cw := max(1, min(im.Width-x0, int(math.Round(float64(tr.W)*sx))))
	ch := max(1, min(im.Height-y0, int(math.Round(float64(tr.H)*sy))))
	W, H, C := tr.SrcWidth, tr.SrcHeight, im.Channels
	out := Image{Width: W, Height: H, Channels: C, Pix: make([]uint8, W*H*C)}
	xs, ys := resampleAxis(cw, W), resampleAxis(ch, H)
	for y := 0; y < H; y++ {
		r0 := im.Pix[(y0+ys[y].i0)*im.Width*C:]
		r1 := im.Pix[(y0+ys[y].i1)*im.Width*C:]
		fy := ys[y].f
		for x := 0; x < W; x++ {
			i0, i1, fx := (x0+xs[x].i0)*C, (x0+xs[x].i1)*C, xs[x].f
			for c := 0; c < C; c++ {
				top := float32(r0[i0+c])*(1-fx) + float32(r0[i1+c])*fx
				bot := float32(r1[i0+c])*(1-fx) + float32(r1[i1+c])*fx
				out.Pix[(y*W+x)*C+c] = toByte(top*(1-fy) + bot*fy)
			}
		}
	}
	return out
}

// JSONOutput writes batch item i of the selected outputs as one JSON object:
// {"<output name>": nested arrays (the item's shape, without the batch)}, or,
// with TopK, {"<output name>": [{"index", "label", "score"}, ...]}. names are
// the model's output names, in outs' order; labels may be nil. NaN and
// infinities are written as null.
func (p Postprocess) JSONOutput(names []string, outs []Tensor, i int, labels []string) ([]byte, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, err
	}
	want := p.Outputs
	if len(want) == 0 {
		want = names
	}
	buf := []byte{'{'}
	for k, name := range want {
		j := slices.Index(names, name)
		if j < 0 || j >= len(outs) {
			return nil, fmt.Errorf("onnxrt: postprocess output %q: the model's outputs are %v", name, names)
		}
		data, shape, err := item(outs[j], i)
		if err != nil {
			return nil, err
		}
		if p.Softmax && len(shape) > 0 {
			data = softmax(data, int(shape[len(shape)-1]))
		}
		if k > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendQuote(buf, name)
		buf = append(buf, ':')
		if p.TopK > 0 {
			if len(shape) != 1 {
				return nil, fmt.Errorf("onnxrt: postprocess top_k needs output %q to be a vector per item, it is %v", name, shape)
			}
			buf = appendTopK(buf, data, p.TopK, labels)
			continue
		}
		buf = appendArray(buf, data, shape)
	}
	return append(buf, '}'), nil
}

// softmax applies a numerically stable softmax over each run of n values.
func softmax(data []float32, n int) []float32 {
	out := make([]float32, len(data))
	for s := 0; n > 0 && s+n <= len(data); s += n {
		m := float32(math.Inf(-1))
		for _, v := range data[s : s+n] {
			m = max(m, v)
		}
		var sum float64
		for j, v := range data[s : s+n] {
			e := math.Exp(float64(v - m))
			out[s+j] = float32(e)
			sum += e
		}
		for j := s; j < s+n; j++ {
			out[j] = float32(float64(out[j]) / sum)
		}
	}
	return out
}

func appendTopK(buf []byte, data []float32, k int, labels []string) []byte {
	idx := make([]int, len(data))
	for j := range idx {
		idx[j] = j
	}
	sort.SliceStable(idx, func(a, b int) bool { return data[idx[a]] > data[idx[b]] })
	buf = append(buf, '[')
	for r, j := range idx[:min(k, len(idx))] {
		if r > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"index":`...)
		buf = strconv.AppendInt(buf, int64(j), 10)
		if j < len(labels) {
			buf = append(buf, `,"label":`...)
			buf = strconv.AppendQuote(buf, labels[j])
		}
		buf = append(buf, `,"score":`...)
		buf = appendFloat(buf, data[j])
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// appendArray writes data with shape as nested JSON arrays (a scalar for an
// empty shape).
func appendArray(buf []byte, data []float32, shape []int64) []byte {
	if len(shape) == 0 {
		return appendFloat(buf, data[0])
	}
	n := int(shape[0])
	per := 0
	if n > 0 {
		per = len(data) / n
	}
	buf = append(buf, '[')
	for j := 0; j < n; j++ {
		if j > 0 {
			buf = append(buf, ',')
		}
		if len(shape) == 1 {
			buf = appendFloat(buf, data[j])
		} else {
			buf = appendArray(buf, data[j*per:(j+1)*per], shape[1:])
		}
	}
	return append(buf, ']')
}

// appendFloat writes the shortest decimal that reads back as the same float32.
func appendFloat(buf []byte, v float32) []byte {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return append(buf, "null"...)
	}
	return strconv.AppendFloat(buf, float64(v), 'g', -1, 32)
}
