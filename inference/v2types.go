package inference

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/algocloud/algocloud/spec"
)

// Tensors of the Open Inference Protocol <-> the deployment's input and
// output types, with the same decoders and checks as /predict:
//
//	image input   UINT8 [H, W, 3] (one image) or [N, H, W, 3] (N images), or
//	              BYTES of PNG/JPEG/GIF files, one image per element
//	numpy input   any numeric datatype and shape (one array), or BYTES [1] of a .npy file
//	json input    BYTES, one JSON text per element
//	file input    BYTES, one file per element; parameters "filename", "content_type"
//	image output  UINT8 [H, W, C] (C 1, 3 or 4), [N, H, W, C] for a batch
//	numpy output  the array's datatype and shape, [N, ...] for a batch
//	json output   BYTES [N]: the JSON text
//	file output   BYTES [N]: the file; parameters "filename", "content_type" for one
//
// Every element (every image of a UINT8 batch) is one call to predict: N
// elements enter the batcher as N calls, at most max_batch_size of them.

// v2Items turns the input tensor into the values predict receives, one per
// batch item; batched says the tensor had a batch dimension, which tensor
// outputs then get too.
func (s *Server) v2Items(t v2Tensor) ([]Value, bool, error) {
	field := fmt.Sprintf("input %q", t.Name)
	if t.Datatype == v2Bytes {
		n := len(t.Elems)
		if err := s.v2CheckBatch(n, field); err != nil {
			return nil, false, err
		}
		batched := !(len(t.Shape) == 1 && t.Shape[0] == 1)
		items := make([]Value, n)
		for i, e := range t.Elems {
			v, err := s.v2BytesItem(t, e)
			if err != nil {
				var ae *APIError
				if n > 1 && errors.As(err, &ae) {
					ae.Message = fmt.Sprintf("%s element %d: %s", field, i, ae.Message)
				}
				return nil, false, err
			}
			items[i] = v
		}
		return items, batched, nil
	}
	dtype := v2DTypes[t.Datatype]
	switch s.cfg.Input {
	case spec.Image:
		if t.Datatype != "UINT8" {
			return nil, false, v2BadRequest(CodeBadDatatype, "%s is %s: an image input takes UINT8 [H, W, 3] (RGB pixels) or BYTES (PNG/JPEG files)", field, t.Datatype)
		}
		shape, n, batched := t.Shape, 1, false
		if len(shape) == 4 {
			n, shape, batched = shape[0], shape[1:], true
		}
		if len(shape) != 3 || shape[2] != 3 {
			return nil, false, v2BadRequest(CodeShapeMismatch, "%s has shape %v: an image input takes [H, W, 3] or [N, H, W, 3] (RGB)", field, t.Shape)
		}
		if shape[0] == 0 || shape[1] == 0 {
			return nil, false, v2BadRequest(CodeShapeMismatch, "%s has shape %v: an empty image", field, t.Shape)
		}
		if px := int64(shape[0]) * int64(shape[1]); px > s.cfg.MaxPixels {
			return nil, false, apiErr(http.StatusRequestEntityTooLarge, CodeImageTooLarge, "%s is %dx%d (%d pixels); the limit is %d pixels",
				field, shape[1], shape[0], px, s.cfg.MaxPixels)
		}
		if err := s.v2CheckBatch(n, field); err != nil {
			return nil, false, err
		}
		per := shape[0] * shape[1] * 3
		items := make([]Value, n)
		for i := range items {
			items[i] = Value{Kind: KindTensor, DType: "uint8", Shape: slices.Clone(shape), Data: t.Data[i*per : (i+1)*per]}
		}
		return items, batched, nil
	case spec.Numpy:
		v := Value{Kind: KindTensor, DType: dtype, Shape: t.Shape, Data: t.Data}
		if _, err := v.tensorLen(); err != nil { // parseV2Infer checked it; a cheap second look
			return nil, false, v2BadRequest(CodeShapeMismatch, "%s: %v", field, err)
		}
		return []Value{v}, false, nil
	}
	return nil, false, v2BadRequest(CodeBadDatatype, "%s is %s: a %s input takes BYTES", field, t.Datatype, s.cfg.Input)
}

// v2CheckBatch bounds the items one request puts in the queue by max_batch_size.
func (s *Server) v2CheckBatch(n int, field string) error {
	if n < 1 {
		return v2BadRequest(CodeShapeMismatch, "%s holds no item", field)
	}
	if n > s.cfg.MaxBatchSize {
		return v2BadRequest(CodeBatchTooLarge, "%s holds a batch of %d; this endpoint's max_batch_size is %d", field, n, s.cfg.MaxBatchSize)
	}
	return nil
}

// v2BytesItem decodes one BYTES element for the input type, as /predict's
// codecs decode a body.
func (s *Server) v2BytesItem(t v2Tensor, e []byte) (Value, error) {
	switch s.cfg.Input {
	case spec.Image:
		return decodeImageFor(e, s.cfg.MaxPixels, s.cfg.Environment != spec.EnvONNX)
	case spec.Numpy:
		return decodeNPY(e)
	case spec.JSON:
		e = bytes.TrimPrefix(e, []byte("\xef\xbb\xbf"))
		if err := checkJSON(e); err != nil {
			return Value{}, err
		}
		return Value{Kind: KindJSON, Data: e}, nil
	case spec.File:
		if len(e) == 0 {
			return Value{}, v2BadRequest(CodeEmptyBody, "input %q holds an empty file", t.Name)
		}
		var name, ct string
		for k, dst := range map[string]*string{"filename": &name, "content_type": &ct} {
			if raw, ok := t.Params[k]; ok {
				if err := json.Unmarshal(raw, dst); err != nil {
					return Value{}, v2BadRequest(CodeBadInferRequest, "input %q: parameters.%s must be a string", t.Name, k)
				}
			}
		}
		ct = fileContentType(name, ct, e)
		if name != "" {
			if name = sanitizeFileName(name); name == "" {
				return Value{}, v2BadRequest(CodeBadFilename, "input %q: parameters.filename has no usable characters", t.Name)
			}
		} else {
			name = "input" + extensionFor(ct)
		}
		return Value{Kind: KindFile, Name: name, ContentType: ct, Data: e}, nil
	}
	return Value{}, fmt.Errorf("input type %q is not served", s.cfg.Input)
}

// v2OutTensor is the output tensor of a response.
type v2OutTensor struct {
	Name     string
	Datatype string
	Shape    []int
	Data     []byte   // numeric: little-endian, C order
	Elems    [][]byte // BYTES
	Params   map[string]any
	binary   bool // send as binary data
}

// v2Output turns what predict returned for each item into the output tensor.
func (s *Server) v2Output(vals []Value, batched bool) (v2OutTensor, error) {
	out := v2OutTensor{Name: v2OutputName}
	switch s.cfg.Output {
	case spec.Image, spec.Numpy:
		parts := make([]Value, len(vals))
		for i, v := range vals {
			p, err := s.v2TensorOf(v)
			if err != nil {
				return out, err
			}
			if i > 0 && (p.DType != parts[0].DType || !slices.Equal(p.Shape, parts[0].Shape)) {
				return out, badOutput("the batch's outputs differ: %s %v and %s %v cannot form one tensor", parts[0].DType, parts[0].Shape, p.DType, p.Shape)
			}
			parts[i] = p
		}
		out.Datatype, out.Shape = v2DatatypeOf(parts[0].DType), parts[0].Shape
		if !batched {
			out.Data = parts[0].Data
			return out, nil
		}
		out.Shape = append([]int{len(parts)}, out.Shape...)
		for _, p := range parts {
			out.Data = append(out.Data, p.Data...)
		}
		return out, nil
	case spec.JSON:
		out.Datatype, out.Shape = v2Bytes, []int{len(vals)}
		for _, v := range vals {
			if v.Kind != KindJSON || !json.Valid(v.Data) {
				return out, badOutput("expected JSON from the worker, got a %s value", v.Kind)
			}
			out.Elems = append(out.Elems, v.Data)
		}
		return out, nil
	case spec.File:
		out.Datatype, out.Shape = v2Bytes, []int{len(vals)}
		for _, v := range vals {
			if v.Kind != KindFile && v.Kind != KindBytes {
				return out, badOutput("expected a file (name, bytes) from the worker, got a %s value", v.Kind)
			}
			out.Elems = append(out.Elems, v.Data)
		}
		if len(vals) == 1 {
			ct := fileContentType(vals[0].Name, vals[0].ContentType, vals[0].Data)
			name := sanitizeFileName(vals[0].Name)
			if name == "" {
				name = "output" + extensionFor(ct)
			}
			out.Params = map[string]any{"filename": name, "content_type": ct}
		}
		return out, nil
	}
	return out, fmt.Errorf("output type %q is not served", s.cfg.Output)
}

// v2TensorOf is the tensor an image or numpy output sends for one value:
// an image's 8-bit pixels [H, W, C] (by the rules of the PNG output), or
// the array itself (.npy bytes decoded).
func (s *Server) v2TensorOf(v Value) (Value, error) {
	if s.cfg.Output == spec.Image {
		pix, w, h, c, err := tensorPixels(v)
		if err != nil {
			return Value{}, badOutput("%v", err)
		}
		return Value{Kind: KindTensor, DType: "uint8", Shape: []int{h, w, c}, Data: pix}, nil
	}
	if v.Kind == KindBytes { // predict returned .npy bytes itself
		t, err := decodeNPY(v.Data)
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) {
				err = errors.New(ae.Message)
			}
			return Value{}, badOutput("predict returned bytes that are not a usable .npy file: %v", err)
		}
		v = t
	}
	if v.Kind != KindTensor || v2DatatypeOf(v.DType) == "" {
		return Value{}, badOutput("expected an array from the worker, got a %s value", v.Kind)
	}
	if _, err := v.tensorLen(); err != nil {
		return Value{}, badOutput("%v", err)
	}
	return v, nil
}

// v2Body is an infer response: headerLen is the JSON header's length when
// binary data follows it, else -1.
type v2Body struct {
	httpBody
	headerLen int
}

// v2OutputJSON is one $response_output.
type v2OutputJSON struct {
	Name       string         `json:"name"`
	Datatype   string         `json:"datatype"`
	Shape      []int          `json:"shape"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// encodeV2Response writes the inference response: JSON data, or binary data
// after the JSON header for the outputs that asked for it and for those JSON
// cannot carry (NaN or infinite floats, BYTES that are not UTF-8). The data
// arrays are spliced in as written: json.Marshal would scan them again.
func encodeV2Response(model, id string, outs []v2OutTensor) (v2Body, error) {
	head, err := json.Marshal(struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		ID           string `json:"id,omitempty"`
	}{ModelName: model, ModelVersion: v2ModelVersion, ID: id})
	if err != nil {
		return v2Body{}, fmt.Errorf("encode the inference response: %w", err)
	}
	head = append(head[:len(head)-1], `,"outputs":[`...)
	var bin [][]byte
	for i, o := range outs {
		j := v2OutputJSON{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape, Parameters: map[string]any{}}
		if j.Shape == nil {
			j.Shape = []int{} // a 0-d array: [], never null
		}
		for k, v := range o.Params {
			j.Parameters[k] = v
		}
		var data []byte
		if !o.binary {
			data = v2JSONData(o)
		}
		if data == nil {
			raw := v2BinaryData(o)
			j.Parameters["binary_data_size"] = len(raw)
			bin = append(bin, raw)
		}
		if len(j.Parameters) == 0 {
			j.Parameters = nil
		}
		obj, err := json.Marshal(j)
		if err != nil {
			return v2Body{}, fmt.Errorf("encode the inference response: %w", err)
		}
		if i > 0 {
			head = append(head, ',')
		}
		if data != nil {
			obj = append(append(append(obj[:len(obj)-1], `,"data":`...), data...), '}')
		}
		head = append(head, obj...)
	}
	head = append(head, "]}"...)
	if len(bin) == 0 {
		return v2Body{httpBody: httpBody{ContentType: "application/json", Data: head}, headerLen: -1}, nil
	}
	body := head
	for _, b := range bin {
		body = append(body, b...)
	}
	return v2Body{httpBody: httpBody{ContentType: "application/octet-stream", Data: body}, headerLen: len(head)}, nil
}

// v2BinaryData is a tensor's binary data: numeric bytes as they are; BYTES
// as a 4-byte little-endian length then the bytes, per element.
func v2BinaryData(o v2OutTensor) []byte {
	if o.Datatype != v2Bytes {
		return o.Data
	}
	n := 0
	for _, e := range o.Elems {
		n += 4 + len(e)
	}
	b := make([]byte, 0, n)
	for _, e := range o.Elems {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

// v2JSONData is a tensor's data as a flat JSON array in row-major order, or
// nil when JSON cannot carry it (NaN, infinities, BYTES that are not UTF-8).
func v2JSONData(o v2OutTensor) []byte {
	b := []byte{'['}
	if o.Datatype == v2Bytes {
		for i, e := range o.Elems {
			if !utf8.Valid(e) {
				return nil
			}
			if i > 0 {
				b = append(b, ',')
			}
			s, _ := json.Marshal(string(e))
			b = append(b, s...)
		}
		return append(b, ']')
	}
	dtype := v2DTypes[o.Datatype]
	size := dtypeSizes[dtype]
	d := o.Data
	for i := 0; i+size <= len(d); i += size {
		if i > 0 {
			b = append(b, ',')
		}
		switch dtype {
		case "bool":
			b = strconv.AppendBool(b, d[i] != 0)
		case "float16", "float32", "float64":
			var f float64
			bits := 32
			switch size {
			case 2:
				f = halfToFloat(binary.LittleEndian.Uint16(d[i:]))
			case 4:
				f = float64(math.Float32frombits(binary.LittleEndian.Uint32(d[i:])))
			default:
				f, bits = math.Float64frombits(binary.LittleEndian.Uint64(d[i:])), 64
			}
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil
			}
			b = strconv.AppendFloat(b, f, 'g', -1, bits)
		default:
			u := uint64(0)
			for k := size - 1; k >= 0; k-- {
				u = u<<8 | uint64(d[i+k])
			}
			if dtype[0] == 'u' {
				b = strconv.AppendUint(b, u, 10)
			} else {
				shift := 64 - 8*size
				b = strconv.AppendInt(b, int64(u<<shift)>>shift, 10)
			}
		}
	}
	return append(b, ']')
}
