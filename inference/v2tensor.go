package inference

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/algocloud/algocloud/inference/npy"
)

// The Open Inference Protocol's (KServe v2, Triton) request side: the JSON
// inference request, its tensors as JSON data or as Triton's binary tensor
// data extension, parsed into raw little-endian tensors. v2.go serves it;
// docs/inference-protocol.md describes it.

// Error codes of the /v2 routes beyond those of errors.go. The body of a /v2
// error is {"error": message, "code": code}: "error" is what KServe and Triton
// clients read, "code" the stable code the rest of the API uses.
const (
	CodeBadInferRequest    = "bad_infer_request"    // 400: malformed v2 request JSON, missing or unknown tensor, bad parameter
	CodeBadDatatype        = "bad_datatype"         // 400: a datatype the protocol or the deployment's input type does not take
	CodeShapeMismatch      = "shape_mismatch"       // 400: shape and data disagree (element count, image channels)
	CodeBinarySizeMismatch = "binary_size_mismatch" // 400: binary_data_size or Inference-Header-Content-Length disagree with the body
	CodeBatchTooLarge      = "batch_too_large"      // 400: more batch items than max_batch_size
	CodeUnsupportedFeature = "unsupported_feature"  // 400: shared memory, classification, raw binary requests
)

// v2ErrorCodes lists the codes above; with errorCodes, the enum of the
// V2Error schema in the endpoint's OpenAPI document.
var v2ErrorCodes = []string{CodeBadInferRequest, CodeBadDatatype, CodeShapeMismatch, CodeBinarySizeMismatch, CodeBatchTooLarge, CodeUnsupportedFeature}

// v2DTypes maps the protocol's datatypes to the numpy dtype names of the
// tensors the server carries (BYTES is handled apart; BF16 has no numpy dtype).
var v2DTypes = map[string]string{
	"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
	"INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
	"FP16": "float16", "FP32": "float32", "FP64": "float64",
}

// v2DatatypeOf is the protocol datatype of a numpy dtype name.
func v2DatatypeOf(dtype string) string {
	for k, v := range v2DTypes {
		if v == dtype {
			return k
		}
	}
	return ""
}

const (
	v2Bytes = "BYTES"
	// maxV2Dims bounds a tensor's rank, as the .npy parser does.
	maxV2Dims = npy.MaxDims
)

// v2InferRequestJSON is the inference request object ($inference_request).
type v2InferRequestJSON struct {
	ID         string                     `json:"id,omitempty"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
	Inputs     []v2InputJSON              `json:"inputs"`
	Outputs    []v2RequestOutput          `json:"outputs,omitempty"`
}

// v2InputJSON is one $request_input.
type v2InputJSON struct {
	Name       string                     `json:"name"`
	Shape      []int64                    `json:"shape"`
	Datatype   string                     `json:"datatype"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
	Data       json.RawMessage            `json:"data,omitempty"`
}

// v2RequestOutput is one $request_output: an output the client wants, and how.
type v2RequestOutput struct {
	Name       string                     `json:"name"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
}

// v2Tensor is a decoded input tensor: numeric data as little-endian C-order
// bytes (BOOL as 0/1 bytes), BYTES as its elements.
type v2Tensor struct {
	Name     string
	Datatype string
	Shape    []int
	Data     []byte
	Elems    [][]byte
	Params   map[string]json.RawMessage
}

// count is the number of elements the shape holds.
func (t v2Tensor) count() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// v2Request is a parsed inference request.
type v2Request struct {
	ID      string
	Inputs  []v2Tensor
	Outputs []v2RequestOutput
	// BinaryOutput is the request's binary_data_output parameter: outputs
	// go as binary data unless an output's binary_data says otherwise.
	BinaryOutput bool
}

func v2BadRequest(code, format string, args ...any) *APIError {
	return apiErr(http.StatusBadRequest, code, format, args...)
}

// parseV2Infer parses an infer request body. headerLen is the
// Inference-Header-Content-Length header ("" when absent): the length of the
// JSON object that starts the body, the rest being the inputs' binary data in
// the order of the inputs that have a binary_data_size. Every failure is an
// *APIError (4xx) that names the field.
func parseV2Infer(headerLen string, body []byte) (*v2Request, error) {
	head, bin := body, []byte(nil)
	if headerLen != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(headerLen), 10, 64)
		switch {
		case err != nil || n < 0:
			return nil, v2BadRequest(CodeBinarySizeMismatch, "Inference-Header-Content-Length %q is not a byte count", truncate([]byte(headerLen), 40))
		case n == 0:
			return nil, v2BadRequest(CodeUnsupportedFeature, "raw binary requests (Inference-Header-Content-Length: 0) are not supported: send the JSON inference header first")
		case n > int64(len(body)):
			return nil, v2BadRequest(CodeBinarySizeMismatch, "Inference-Header-Content-Length is %d but the body holds %d bytes", n, len(body))
		}
		head, bin = body[:n], body[n:]
	}
	if len(bytes.TrimSpace(head)) == 0 {
		return nil, v2BadRequest(CodeEmptyBody, "the request body is empty: send a JSON inference request {\"inputs\": [...]}")
	}
	var req v2InferRequestJSON
	if err := json.Unmarshal(head, &req); err != nil {
		return nil, v2BadRequest(CodeBadInferRequest, "the inference request is not valid JSON of the protocol's form: %v", err)
	}
	out := &v2Request{ID: req.ID, Outputs: req.Outputs}
	if raw, ok := req.Parameters["binary_data_output"]; ok {
		if err := json.Unmarshal(raw, &out.BinaryOutput); err != nil {
			return nil, v2BadRequest(CodeBadInferRequest, "parameters.binary_data_output must be true or false")
		}
	}
	if len(req.Inputs) == 0 {
		return nil, v2BadRequest(CodeBadInferRequest, "inputs is missing or empty")
	}
	off := 0
	for i, in := range req.Inputs {
		t, used, err := parseV2Input(i, in, bin[off:], headerLen != "", len(body))
		if err != nil {
			return nil, err
		}
		off += used
		out.Inputs = append(out.Inputs, t)
	}
	if off != len(bin) {
		return nil, v2BadRequest(CodeBinarySizeMismatch, "the body holds %d bytes after the %d-byte JSON header but the inputs' binary_data_size add up to %d",
			len(bin), len(head), off)
	}
	for i, o := range req.Outputs {
		if o.Name == "" {
			return nil, v2BadRequest(CodeBadInferRequest, "outputs[%d].name is missing", i)
		}
		for k, raw := range o.Parameters {
			switch k {
			case "binary_data":
				var b bool
				if err := json.Unmarshal(raw, &b); err != nil {
					return nil, v2BadRequest(CodeBadInferRequest, "outputs[%d].parameters.binary_data must be true or false", i)
				}
			case "classification", "shared_memory_region", "shared_memory_byte_size", "shared_memory_offset":
				return nil, v2BadRequest(CodeUnsupportedFeature, "outputs[%d].parameters.%s is not supported by this server", i, k)
			}
		}
	}
	return out, nil
}

// parseV2Input checks one input's name, datatype and shape and reads its data
// from "data" or from bin (its binary_data_size bytes); used is how many bytes
// of bin it took. bodyLen bounds the element count before anything is allocated.
func parseV2Input(i int, in v2InputJSON, bin []byte, haveHeader bool, bodyLen int) (t v2Tensor, used int, err error) {
	field := fmt.Sprintf("inputs[%d]", i)
	if in.Name == "" {
		return t, 0, v2BadRequest(CodeBadInferRequest, "%s.name is missing", field)
	}
	field = fmt.Sprintf("inputs[%d] (%q)", i, truncate([]byte(in.Name), 64))
	dtype, numeric := v2DTypes[in.Datatype]
	if !numeric && in.Datatype != v2Bytes {
		if in.Datatype == "" {
			return t, 0, v2BadRequest(CodeBadDatatype, "%s.datatype is missing", field)
		}
		return t, 0, v2BadRequest(CodeBadDatatype, "%s.datatype %q is not supported: use BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES",
			field, truncate([]byte(in.Datatype), 32))
	}
	if in.Shape == nil {
		return t, 0, v2BadRequest(CodeBadInferRequest, "%s.shape is missing", field)
	}
	if len(in.Shape) > maxV2Dims {
		return t, 0, v2BadRequest(CodeShapeMismatch, "%s.shape has %d dimensions; at most %d are supported", field, len(in.Shape), maxV2Dims)
	}
	t = v2Tensor{Name: in.Name, Datatype: in.Datatype, Shape: make([]int, len(in.Shape)), Params: in.Parameters}
	// Every element takes at least one byte of the body in any encoding, so
	// a count beyond the body's length is a lie; checking it as the product
	// grows keeps it from overflowing.
	n, limit := int64(1), int64(bodyLen)+1
	for k, d := range in.Shape {
		if d < 0 {
			return t, 0, v2BadRequest(CodeShapeMismatch, "%s.shape %v holds a negative dimension", field, in.Shape)
		}
		t.Shape[k] = int(d)
	}
	for _, d := range in.Shape {
		if d == 0 {
			n = 0
			break
		}
		if n > limit/d {
			return t, 0, v2BadRequest(CodeShapeMismatch, "%s.shape %v holds more elements than the body has bytes", field, in.Shape)
		}
		n *= d
	}
	count := int(n)
	for k := range in.Parameters {
		if strings.HasPrefix(k, "shared_memory_") {
			return t, 0, v2BadRequest(CodeUnsupportedFeature, "%s.parameters.%s: shared memory is not supported by this server", field, k)
		}
	}
	rawSize, binary := in.Parameters["binary_data_size"]
	if !binary {
		if len(in.Data) == 0 {
			return t, 0, v2BadRequest(CodeBadInferRequest, "%s has neither data nor parameters.binary_data_size", field)
		}
		err = parseV2JSONData(&t, dtype, count, in.Data, field)
		return t, 0, err
	}
	if len(in.Data) != 0 {
		return t, 0, v2BadRequest(CodeBadInferRequest, "%s has both data and parameters.binary_data_size: give one", field)
	}
	if !haveHeader {
		return t, 0, v2BadRequest(CodeBinarySizeMismatch, "%s.parameters.binary_data_size is given but the Inference-Header-Content-Length header is missing", field)
	}
	var size int64
	if err := json.Unmarshal(rawSize, &size); err != nil || size < 0 {
		return t, 0, v2BadRequest(CodeBinarySizeMismatch, "%s.parameters.binary_data_size must be a byte count", field)
	}
	if size > int64(len(bin)) {
		return t, 0, v2BadRequest(CodeBinarySizeMismatch, "%s.parameters.binary_data_size is %d but only %d bytes of binary data are left in the body", field, size, len(bin))
	}
	data := bin[:size]
	if in.Datatype == v2Bytes {
		t.Elems, err = splitV2Bytes(data, count, field)
		return t, int(size), err
	}
	if want := int64(count) * int64(dtypeSizes[dtype]); want != size {
		return t, 0, v2BadRequest(CodeBinarySizeMismatch, "%s: shape %v of %s needs %d bytes but parameters.binary_data_size is %d", field, in.Shape, in.Datatype, want, size)
	}
	t.Data = data
	if in.Datatype == "BOOL" {
		t.Data = make([]byte, len(data)) // numpy bools must be 0 or 1
		for k, b := range data {
			if b != 0 {
				t.Data[k] = 1
			}
		}
	}
	return t, int(size), nil
}

// splitV2Bytes splits binary BYTES data: per element a uint32 little-endian
// length, then that many bytes; exactly count elements filling data.
func splitV2Bytes(data []byte, count int, field string) ([][]byte, error) {
	elems := make([][]byte, 0, min(count, len(data)/4+1))
	for len(data) > 0 {
		if len(elems) == count {
			return nil, v2BadRequest(CodeBinarySizeMismatch, "%s: binary BYTES data holds more than the %d elements its shape says", field, count)
		}
		if len(data) < 4 {
			return nil, v2BadRequest(CodeBinarySizeMismatch, "%s: binary BYTES data ends inside an element's 4-byte length", field)
		}
		n := binary.LittleEndian.Uint32(data)
		if uint64(n) > uint64(len(data)-4) {
			return nil, v2BadRequest(CodeBinarySizeMismatch, "%s: a BYTES element claims %d bytes but %d are left", field, n, len(data)-4)
		}
		elems = append(elems, data[4:4+n])
		data = data[4+n:]
	}
	if len(elems) != count {
		return nil, v2BadRequest(CodeShapeMismatch, "%s: the shape says %d BYTES elements but the binary data holds %d", field, count, len(elems))
	}
	return elems, nil
}

// parseV2JSONData reads a tensor's JSON data, flat or nested arrays in row-major
// order (a lone scalar for one element), into t.Data or t.Elems. raw is valid
// JSON (json.Unmarshal checked the whole request), so a byte scanner finds
// the scalars: ten times faster than json.Decoder.Token, which allocates one
// interface per element, on an image's worth of numbers.
func parseV2JSONData(t *v2Tensor, dtype string, count int, raw json.RawMessage, field string) error {
	size := dtypeSizes[dtype]
	capacity := min(count, len(raw)/2+1) // an element takes two bytes of JSON at least ("0,")
	if t.Datatype != v2Bytes {
		t.Data = make([]byte, 0, capacity*size)
	} else {
		t.Elems = make([][]byte, 0, capacity)
	}
	n := 0
	for i := 0; i < len(raw); {
		c := raw[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '[' || c == ']' || c == ',' {
			i++ // nesting is not checked against the shape, only the count
			continue
		}
		j := i + 1
		kind := c
		switch {
		case c == '"':
			for j < len(raw) && raw[j] != '"' {
				if raw[j] == '\\' {
					j++
				}
				j++
			}
			j++ // the closing quote
		case c == 't' || c == 'f' || c == 'n':
			for j < len(raw) && raw[j] >= 'a' && raw[j] <= 'z' {
				j++
			}
		case c == '-' || c >= '0' && c <= '9':
			kind = '0'
			for j < len(raw) && strings.IndexByte("+-.eE0123456789", raw[j]) >= 0 {
				j++
			}
		default: // an object
			return v2BadRequest(CodeBadDatatype, "%s.data[%d] is not a scalar: data holds numbers, booleans or strings in arrays", field, n)
		}
		if j > len(raw) {
			return v2BadRequest(CodeBadInferRequest, "%s.data is not valid JSON", field)
		}
		if n == count {
			return v2BadRequest(CodeShapeMismatch, "%s.data holds more than the %d elements its shape %v says", field, count, t.Shape)
		}
		if err := appendV2Element(t, dtype, kind, raw[i:j]); err != nil {
			return v2BadRequest(CodeBadDatatype, "%s.data[%d]: %v", field, n, err)
		}
		n++
		i = j
	}
	if n != count {
		return v2BadRequest(CodeShapeMismatch, "%s.data holds %d elements but its shape %v says %d", field, n, t.Shape, count)
	}
	return nil
}

// appendV2Element converts one JSON scalar to the tensor's datatype: kind
// is '"' for a string, '0' for a number, 't', 'f' or 'n' for true, false, null.
func appendV2Element(t *v2Tensor, dtype string, kind byte, text []byte) error {
	if t.Datatype == v2Bytes {
		var s string
		if kind != '"' || json.Unmarshal(text, &s) != nil {
			return fmt.Errorf("%.40s is not a string (BYTES elements are JSON strings)", text)
		}
		t.Elems = append(t.Elems, []byte(s))
		return nil
	}
	if dtype == "bool" {
		switch kind {
		case 't':
			t.Data = append(t.Data, 1)
		case 'f':
			t.Data = append(t.Data, 0)
		default:
			return fmt.Errorf("%.40s is not true or false", text)
		}
		return nil
	}
	if kind != '0' {
		return fmt.Errorf("%.40s is not a number", text)
	}
	s := string(text)
	size := dtypeSizes[dtype]
	switch dtype[0] {
	case 'f':
		bits := 64
		if size < 8 {
			bits = 32
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return fmt.Errorf("%.40s does not fit %s", s, t.Datatype)
		}
		switch size {
		case 2:
			h, ok := floatToHalf(float32(f))
			if !ok {
				return fmt.Errorf("%.40s does not fit FP16", s)
			}
			t.Data = binary.LittleEndian.AppendUint16(t.Data, h)
		case 4:
			t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(float32(f)))
		default:
			t.Data = binary.LittleEndian.AppendUint64(t.Data, math.Float64bits(f))
		}
		return nil
	case 'u':
		u, err := strconv.ParseUint(s, 10, 8*size)
		if err != nil {
			return fmt.Errorf("%.40s is not a %s", s, t.Datatype)
		}
		t.Data = appendLE(t.Data, u, size)
	default:
		v, err := strconv.ParseInt(s, 10, 8*size)
		if err != nil {
			return fmt.Errorf("%.40s is not an %s", s, t.Datatype)
		}
		t.Data = appendLE(t.Data, uint64(v), size)
	}
	return nil
}

// appendLE appends the low size bytes of u, little-endian.
func appendLE(b []byte, u uint64, size int) []byte {
	for k := 0; k < size; k++ {
		b = append(b, byte(u>>(8*k)))
	}
	return b
}

// floatToHalf rounds f to the nearest IEEE 754 binary16 (ties to even); ok is
// false when f is finite but beyond the half range.
func floatToHalf(f float32) (uint16, bool) {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff
	switch {
	case exp == 0xff: // inf, NaN
		if mant != 0 {
			return sign | 0x7e00, true
		}
		return sign | 0x7c00, true
	case exp == 0 && mant == 0:
		return sign, true
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return 0, false
	}
	if e <= 0 { // subnormal half (or zero)
		if e < -10 {
			return sign, true
		}
		m := mant | 0x800000 // the implicit bit
		shift := uint(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && h&1 == 1 {
			h++
		}
		return sign | uint16(h), true
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // may carry into the exponent, which is right
	}
	if h >= 0x7c00 {
		return 0, false
	}
	return sign | uint16(h), true
}
