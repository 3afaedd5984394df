package onnxrt

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
)

// Pipeline serves one ONNX deployment: preprocess a batch of images, one Run per
// input shape, postprocess each item. Safe for concurrent use.
type Pipeline struct {
	config Config
	model  *Model
	labels []string
	names  []string
	batch  int
	bufs   sync.Pool // *[]float32 input buffers, reused across batches
}

// Result is one item's answer: Image for an "image" postprocess, JSON for a
// "json" one, or Err when that item failed alone (a bad image); the other items
// of the batch are still served.
type Result struct {
	Image *Image
	JSON  []byte
	Err   error
}

// Load reads dir/aai_onnx.json and opens its model (see NewPipeline).
func Load(dir string, opts Options) (*Pipeline, error) {
	c, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	return NewPipeline(c, opts)
}

// NewPipeline opens c's model and checks the configuration against it: the input
// is an image tensor ([N,3,H,W] for NCHW, [N,H,W,3] for NHWC) whose fixed size
// becomes the resize target when the configuration leaves it out, the named
// outputs exist, an image output has 1 or 3 channels, and labels match the
// classes.
func NewPipeline(c Config, opts Options) (*Pipeline, error) {
	c, err := c.WithDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pipeline{config: c}
	if c.Postprocess.Labels != "" {
		if p.labels, err = readLabels(filepath.Join(c.Dir, c.Postprocess.Labels)); err != nil {
			return nil, err
		}
	}
	m, err := Open(c.ModelPath(), opts)
	if err != nil {
		return nil, err
	}
	if err := p.bind(m); err != nil {
		m.Close()
		return nil, err
	}
	return p, nil
}

// bind checks the configuration against the model and resolves the input size
// and batch limit.
func (p *Pipeline) bind(m *Model) error {
	c := &p.config
	in := m.Input()
	name := filepath.Base(m.Path())
	cAxis, hAxis, wAxis := 1, 2, 3
	if c.Preprocess.Layout == "NHWC" {
		cAxis, hAxis, wAxis = 3, 1, 2
	}
	if len(in.Shape) != 4 || (in.Shape[cAxis] != 3 && in.Shape[cAxis] > 0) {
		return fmt.Errorf("onnxrt: %s input %s is not an %s image with 3 channels (check preprocess.layout)", name, in, c.Preprocess.Layout)
	}
	h, w := int(in.Shape[hAxis]), int(in.Shape[wAxis])
	switch pre := &c.Preprocess; {
	case pre.Width == 0 && h > 0 && w > 0:
		pre.Width, pre.Height = w, h
	case pre.Width > 0 && ((h > 0 && pre.Height != h) || (w > 0 && pre.Width != w)):
		return fmt.Errorf("onnxrt: preprocess size %dx%d, but %s input %s fixes it", pre.Width, pre.Height, name, in)
	case pre.Width == 0 && (h > 0 || w > 0):
		return fmt.Errorf("onnxrt: %s input %s fixes only one side: set preprocess width and height", name, in)
	}
	for _, o := range m.Outputs() {
		p.names = append(p.names, o.Name)
	}
	post := c.Postprocess
	check := []string{post.Output}
	if post.Kind == "json" {
		check = post.Outputs
	}
	for _, o := range check {
		if o != "" && !slices.Contains(p.names, o) {
			return fmt.Errorf("onnxrt: postprocess names output %q; %s has %v", o, name, p.names)
		}
	}
	if post.Kind == "image" {
		out := m.Outputs()[0]
		if post.Output != "" {
			out = m.Outputs()[slices.Index(p.names, post.Output)]
		}
		ch := int64(1)
		switch {
		case len(out.Shape) == 4 && post.Layout == "NCHW":
			ch = out.Shape[1]
		case len(out.Shape) == 4:
			ch = out.Shape[3]
		case len(out.Shape) != 3:
			ch = 0
		}
		if ch != 1 && ch != 3 && ch != -1 {
			return fmt.Errorf("onnxrt: %s output %s is not a 1- or 3-channel %s image (check postprocess.layout)", name, out, post.Layout)
		}
	}
	if post.Kind == "json" && post.TopK > 0 && len(p.labels) > 0 {
		for _, o := range m.Outputs() {
			if (len(post.Outputs) == 0 || slices.Contains(post.Outputs, o.Name)) &&
				len(o.Shape) == 2 && o.Shape[1] > 0 && int(o.Shape[1]) != len(p.labels) {
				return fmt.Errorf("onnxrt: %s output %s has %d classes, labels file %s has %d lines",
					name, o, o.Shape[1], post.Labels, len(p.labels))
			}
		}
	}
	p.batch = c.MaxBatchSize
	if p.batch == 0 {
		p.batch = DefaultMaxBatchSize
		if b := m.FixedBatch(); b > 0 {
			p.batch = b
		}
	}
	p.model = m
	return nil
}

// Model is the pipeline's model (for Run on prepared tensors).
func (p *Pipeline) Model() *Model { return p.model }

// Config is the configuration with defaults and the model's input size filled in.
func (p *Pipeline) Config() Config { return p.config }

// MaxBatchSize is the largest batch one Run gets; Predict splits larger ones.
func (p *Pipeline) MaxBatchSize() int { return p.batch }

// Close closes the model.
func (p *Pipeline) Close() error { return p.model.Close() }

// Predict answers a batch of RGB images, one Result per image in order. Images
// are preprocessed into one input per shape (all one shape when the input size
// is set), run at most MaxBatchSize at a time (padded to a multiple of the
// model's batch when the model fixes it). An image that cannot be
// preprocessed fails alone (its Result.Err); the error return is for a failed
// Run, which fails the whole batch.
func (p *Pipeline) Predict(imgs []Image) ([]Result, error) {
	res := make([]Result, len(imgs))
	pre := p.config.Preprocess
	type group struct {
		w, h int
		idx  []int
	}
	var groups []group
	for i, im := range imgs {
		if err := im.Validate(); err != nil {
			res[i].Err = err
			continue
		}
		if im.Channels != 3 {
			res[i].Err = fmt.Errorf("onnxrt: want an RGB image, got %d channels", im.Channels)
			continue
		}
		w, h := pre.Size(im)
		g := slices.IndexFunc(groups, func(g group) bool { return g.w == w && g.h == h })
		if g < 0 {
			groups = append(groups, group{w: w, h: h})
			g = len(groups) - 1
		}
		groups[g].idx = append(groups[g].idx, i)
	}
	for _, g := range groups {
		for s := 0; s < len(g.idx); s += p.batch {
			if err := p.runGroup(imgs, g.idx[s:min(s+p.batch, len(g.idx))], g.w, g.h, res); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// runGroup preprocesses the images idx (all w×h as input), runs them as one
// batch and postprocesses each into res.
func (p *Pipeline) runGroup(imgs []Image, idx []int, w, h int, res []Result) error {
	per := 3 * w * h
	buf, _ := p.bufs.Get().(*[]float32)
	if buf == nil || cap(*buf) < len(idx)*per {
		b := make([]float32, 0, len(idx)*per)
		buf = &b
	}
	defer p.bufs.Put(buf)
	data := (*buf)[:0]
	var ok []int
	var trs []Transform
	for _, i := range idx {
		data = data[:len(data)+per]
		tr, err := p.config.Preprocess.Apply(imgs[i], data[len(data)-per:])
		if err != nil {
			res[i].Err = err
			data = data[:len(data)-per]
			continue
		}
		ok, trs = append(ok, i), append(trs, tr)
	}
	if len(ok) == 0 {
		return nil
	}
	n := len(ok)
	if b := p.model.FixedBatch(); b > 1 && n%b != 0 {
		// A model that fixes its batch at B runs multiples of B: pad with zero
		// items, whose outputs are dropped.
		n += b - n%b
		data = append(data, make([]float32, (n-len(ok))*per)...)
	}
	shape := []int64{int64(n), 3, int64(h), int64(w)}
	if p.config.Preprocess.Layout == "NHWC" {
		shape = []int64{int64(n), int64(h), int64(w), 3}
	}
	outs, err := p.model.Run(Tensor{Shape: shape, Data: data})
	if err != nil {
		return err
	}
	post := p.config.Postprocess
	for k, i := range ok {
		if post.Kind == "json" {
			res[i].JSON, res[i].Err = post.JSONOutput(p.names, outs, k, p.labels)
			continue
		}
		j := 0
		if post.Output != "" {
			j = slices.Index(p.names, post.Output)
		}
		im, err := post.ImageOutput(outs[j], k, trs[k])
		if err != nil {
			res[i].Err = err
			continue
		}
		res[i].Image = &im
	}
	return nil
}
