package inference

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// The .npy format (numpy.lib.format): the magic "\x93NUMPY", a major and a
// minor version byte, the header length (uint16 little-endian in version 1.0,
// uint32 in 2.0 and 3.0), then the header: a Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
// spaces and a newline, then the array's bytes.

const (
	npyMagic = "\x93NUMPY"
	// maxNPYHeader bounds the header: numpy itself refuses headers over 10000
	// bytes by default; a few dozen bytes are typical.
	maxNPYHeader = 64 << 10
	// maxNPYDims is numpy 1.x's NPY_MAXDIMS (numpy 2 allows 64).
	maxNPYDims = 32
	// maxNPYNominal bounds the product of the non-zero dimensions times the
	// item size: numpy refuses an array whose size overflows even when
	// another dimension is zero, so such a shape would fail in Python.
	maxNPYNominal = 1 << 62
)

// npyTypes maps a descr's type code (without byte order) to the dtype name.
var npyTypes = map[string]string{
	"b1": "bool", "u1": "uint8", "i1": "int8", "u2": "uint16", "i2": "int16", "u4": "uint32", "i4": "int32",
	"u8": "uint64", "i8": "int64", "f2": "float16", "f4": "float32", "f8": "float64",
}

// npyDescr is the descr numpy writes for each dtype name.
var npyDescr = map[string]string{
	"bool": "|b1", "uint8": "|u1", "int8": "|i1", "uint16": "<u2", "int16": "<i2", "uint32": "<u4", "int32": "<i4",
	"uint64": "<u8", "int64": "<i8", "float16": "<f2", "float32": "<f4", "float64": "<f8",
}

const npySupported = "bool, uint8, int8, uint16, int16, uint32, int32, uint64, int64, float16, float32, float64"

func npyErr(code, format string, args ...any) *APIError {
	return apiErr(http.StatusBadRequest, code, format, args...)
}

// decodeNPY parses a .npy file into a tensor value: little-endian, C order.
// Big-endian data is byte-swapped and Fortran-order data transposed. data is
// reused for the tensor's bytes when no conversion is needed. Every failure is
// an *APIError (400) with a code that names the problem.
func decodeNPY(data []byte) (Value, error) {
	if len(data) == 0 {
		return Value{}, npyErr(CodeEmptyBody, "the request holds no .npy bytes")
	}
	if len(data) < len(npyMagic) || string(data[:len(npyMagic)]) != npyMagic {
		if len(data) < len(npyMagic) && npyMagic[:len(data)] == string(data) {
			return Value{}, npyErr(CodeBadNPYHeader, "the .npy file is truncated inside its magic string")
		}
		return Value{}, npyErr(CodeNotNPY, "the bytes are not a .npy file (no \\x93NUMPY magic): save the array with numpy.save")
	}
	rest := data[len(npyMagic):]
	if len(rest) < 2 {
		return Value{}, npyErr(CodeBadNPYHeader, "the .npy file is truncated before its version")
	}
	major, minor := rest[0], rest[1]
	rest = rest[2:]
	var hlen uint64
	switch {
	case major == 1 && minor == 0:
		if len(rest) < 2 {
			return Value{}, npyErr(CodeBadNPYHeader, "the .npy file is truncated before its header length")
		}
		hlen, rest = uint64(binary.LittleEndian.Uint16(rest)), rest[2:]
	case (major == 2 || major == 3) && minor == 0:
		if len(rest) < 4 {
			return Value{}, npyErr(CodeBadNPYHeader, "the .npy file is truncated before its header length")
		}
		hlen, rest = uint64(binary.LittleEndian.Uint32(rest)), rest[4:]
	default:
		return Value{}, npyErr(CodeBadNPYHeader, ".npy format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", major, minor)
	}
	if hlen > maxNPYHeader {
		return Value{}, npyErr(CodeNPYHeaderTooLarge, "the .npy header is %d bytes; at most %d are accepted", hlen, maxNPYHeader)
	}
	if uint64(len(rest)) < hlen {
		return Value{}, npyErr(CodeBadNPYHeader, "the .npy file is truncated inside its %d-byte header", hlen)
	}
	hdr, body := rest[:hlen], rest[hlen:]
	dtype, swap, fortran, shape, err := parseNPYHeader(hdr)
	if err != nil {
		return Value{}, err
	}
	size := dtypeSizes[dtype]
	nominal := uint64(size)
	n := uint64(1)
	for _, d := range shape {
		n *= uint64(d) // cannot overflow: bounded by nominal below
		if d > 0 {
			if nominal > maxNPYNominal/uint64(d) {
				return Value{}, npyErr(CodeBadNPYShape, "shape %v of %s is absurdly large", shapeRepr(shape), dtype)
			}
			nominal *= uint64(d)
		}
	}
	want := n * uint64(size)
	if uint64(len(body)) != want {
		what := "truncated"
		if uint64(len(body)) > want {
			what = "followed by extra bytes"
		}
		return Value{}, npyErr(CodeNPYSizeMismatch, "the .npy header promises shape %s of %s (%d bytes of data) but the file holds %d bytes after the header: it is %s",
			shapeRepr(shape), dtype, want, len(body), what)
	}
	if swap && size > 1 {
		swapped := make([]byte, len(body))
		for i := 0; i < len(body); i += size {
			for j := 0; j < size; j++ {
				swapped[i+j] = body[i+size-1-j]
			}
		}
		body = swapped
	}
	if fortran && len(shape) > 1 && n > 1 {
		body = fortranToC(body, shape, size)
	}
	return Value{Kind: KindTensor, DType: dtype, Shape: shape, Data: body}, nil
}

// fortranToC reorders column-major elements into row-major order.
func fortranToC(src []byte, shape []int, size int) []byte {
	nd := len(shape)
	strides := make([]int, nd) // byte strides of the Fortran layout
	s := size
	for k := 0; k < nd; k++ {
		strides[k] = s
		s *= shape[k]
	}
	out := make([]byte, len(src))
	idx := make([]int, nd)
	off := 0
	for o := 0; o < len(out); o += size {
		copy(out[o:o+size], src[off:off+size])
		for k := nd - 1; k >= 0; k-- { // advance the C-order index, last axis fastest
			idx[k]++
			off += strides[k]
			if idx[k] < shape[k] {
				break
			}
			off -= strides[k] * idx[k]
			idx[k] = 0
		}
	}
	return out
}

// parseNPYHeader reads the header dict: its descr (as a dtype name and
// whether it is big-endian), fortran_order and shape.
func parseNPYHeader(hdr []byte) (dtype string, swap, fortran bool, shape []int, err error) {
	p := &pyParser{s: hdr}
	v, perr := p.value(0)
	if perr == nil {
		p.space()
		if p.i < len(p.s) {
			perr = fmt.Errorf("unexpected %q after the dict", p.s[p.i])
		}
	}
	if perr != nil {
		return "", false, false, nil, npyErr(CodeBadNPYHeader, "the .npy header is not a Python dict literal: %v", perr)
	}
	d, ok := v.(pyDict)
	if !ok {
		return "", false, false, nil, npyErr(CodeBadNPYHeader, "the .npy header is not a dict")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if _, ok := d[k]; !ok {
			return "", false, false, nil, npyErr(CodeBadNPYHeader, "the .npy header has no %q key", k)
		}
	}
	if len(d) != 3 {
		return "", false, false, nil, npyErr(CodeBadNPYHeader, "the .npy header has keys other than descr, fortran_order and shape")
	}
	descr, ok := d["descr"].(string)
	if !ok {
		return "", false, false, nil, npyErr(CodeUnsupportedDType, "structured dtypes are not supported: send an array of one of %s", npySupported)
	}
	dtype, swap, err = npyDType(descr)
	if err != nil {
		return "", false, false, nil, err
	}
	fortran, ok = d["fortran_order"].(bool)
	if !ok {
		return "", false, false, nil, npyErr(CodeBadNPYHeader, "fortran_order in the .npy header is not True or False")
	}
	t, ok := d["shape"].(pyTuple)
	if !ok {
		return "", false, false, nil, npyErr(CodeBadNPYHeader, "shape in the .npy header is not a tuple")
	}
	if len(t) > maxNPYDims {
		return "", false, false, nil, npyErr(CodeBadNPYShape, "the array has %d dimensions; at most %d are supported", len(t), maxNPYDims)
	}
	shape = make([]int, len(t))
	for i, e := range t {
		n, ok := e.(int64)
		if !ok {
			return "", false, false, nil, npyErr(CodeBadNPYHeader, "shape in the .npy header holds %v, not an integer", e)
		}
		if n < 0 {
			return "", false, false, nil, npyErr(CodeBadNPYShape, "shape in the .npy header holds the dimension %d", n)
		}
		shape[i] = int(n)
	}
	return dtype, swap, fortran, shape, nil
}

// npyDType maps a descr string to a dtype name; swap is true for big-endian data.
func npyDType(descr string) (string, bool, error) {
	order, code := byte('|'), descr
	if descr != "" && strings.IndexByte("<>|=", descr[0]) >= 0 {
		order, code = descr[0], descr[1:]
	}
	name, ok := npyTypes[code]
	if !ok {
		what := "dtype " + strconv.Quote(descr)
		switch {
		case strings.HasPrefix(code, "O"):
			what = "object arrays (dtype " + strconv.Quote(descr) + ")"
		case strings.HasPrefix(code, "c"):
			what = "complex arrays (dtype " + strconv.Quote(descr) + ")"
		case strings.HasPrefix(code, "U"), strings.HasPrefix(code, "S"):
			what = "string arrays (dtype " + strconv.Quote(descr) + ")"
		}
		return "", false, npyErr(CodeUnsupportedDType, "%s are not supported: send an array of one of %s", what, npySupported)
	}
	if dtypeSizes[name] == 1 {
		return name, false, nil
	}
	switch order {
	case '<':
		return name, false, nil
	case '>':
		return name, true, nil
	}
	return "", false, npyErr(CodeUnsupportedDType, "dtype %q does not say its byte order: use '<' (little-endian) or '>' (big-endian)", descr)
}

// encodeNPY writes a tensor as a .npy file, byte for byte what numpy.save
// writes for the same C-contiguous array (version 1.0, 64-byte alignment).
func encodeNPY(v Value) ([]byte, error) {
	if v.Kind != KindTensor {
		return nil, fmt.Errorf("expected a numpy array, got a %s value", v.Kind)
	}
	if _, err := v.tensorLen(); err != nil {
		return nil, err
	}
	descr, ok := npyDescr[v.DType]
	if !ok {
		return nil, fmt.Errorf("unsupported dtype %q", v.DType)
	}
	var h strings.Builder
	h.WriteString("{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shapeRepr(v.Shape) + ", }")
	if len(v.Shape) > 0 { // numpy leaves room to grow the first axis in place
		h.WriteString(strings.Repeat(" ", max(0, 21-len(strconv.Itoa(v.Shape[0])))))
	}
	header := h.String()
	prefix := len(npyMagic) + 2 + 2
	major := byte(1)
	if (prefix+len(header)+1+63)/64*64 > math.MaxUint16 {
		major, prefix = 2, prefix+2
	}
	total := (prefix + len(header) + 1 + 63) / 64 * 64 // the newline included
	out := make([]byte, 0, total+len(v.Data))
	out = append(out, npyMagic...)
	out = append(out, major, 0)
	if major == 1 {
		out = binary.LittleEndian.AppendUint16(out, uint16(total-prefix))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(total-prefix))
	}
	out = append(out, header...)
	out = append(out, bytes.Repeat([]byte{' '}, total-prefix-len(header)-1)...)
	out = append(out, '\n')
	return append(out, v.Data...), nil
}

// shapeRepr writes a shape as Python writes a tuple: (), (3,), (2, 3).
func shapeRepr(shape []int) string {
	switch len(shape) {
	case 0:
		return "()"
	case 1:
		return "(" + strconv.Itoa(shape[0]) + ",)"
	}
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.Itoa(d)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// The Python literal subset .npy headers use: dicts with string keys,
// strings, True, False, None, integers, tuples and lists.
type (
	pyDict  map[string]any
	pyTuple []any
	pyList  []any
)

type pyParser struct {
	s []byte
	i int
}

const maxPyDepth = 8

func (p *pyParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *pyParser) value(depth int) (any, error) {
	if depth > maxPyDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxPyDepth)
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.dict(depth)
	case c == '(' || c == '[':
		return p.sequence(depth, c)
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		return p.integer()
	case c >= 'A' && c <= 'Z':
		start := p.i
		for p.i < len(p.s) && (p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z') {
			p.i++
		}
		switch word := string(p.s[start:p.i]); word {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		default:
			return nil, fmt.Errorf("unknown name %q", word)
		}
	default:
		return nil, fmt.Errorf("unexpected %q", c)
	}
}

func (p *pyParser) dict(depth int) (any, error) {
	p.i++ // {
	d := pyDict{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return d, nil
		}
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("a dict key is not a string")
		}
		if _, dup := d[key]; dup {
			return nil, fmt.Errorf("the key %q appears twice", key)
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, fmt.Errorf("expected ':' after %q", key)
		}
		p.i++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		d[key] = v
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return d, nil
		}
		return nil, fmt.Errorf("expected ',' or '}' in the dict")
	}
}

func (p *pyParser) sequence(depth int, open byte) (any, error) {
	closeCh := byte(')')
	if open == '[' {
		closeCh = ']'
	}
	p.i++
	var items []any
	comma := false // a tuple of one item needs its trailing comma
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == closeCh {
			p.i++
			break
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		p.space()
		comma = false
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			comma = true
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == closeCh {
			p.i++
			break
		}
		return nil, fmt.Errorf("expected ',' or %q", closeCh)
	}
	if open == '[' {
		return pyList(items), nil
	}
	if len(items) == 1 && !comma {
		return items[0], nil // (x) is x
	}
	return pyTuple(items), nil
}

func (p *pyParser) str() (any, error) {
	quote := p.s[p.i]
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == quote:
			return b.String(), nil
		case c == '\\':
			if p.i >= len(p.s) {
				return nil, fmt.Errorf("unterminated string")
			}
			b.WriteByte(p.s[p.i]) // descr strings hold no escapes that matter
			p.i++
		case c == '\n':
			return nil, fmt.Errorf("unterminated string")
		default:
			b.WriteByte(c)
		}
	}
	return nil, fmt.Errorf("unterminated string")
}

func (p *pyParser) integer() (any, error) {
	start := p.i
	if p.s[p.i] == '-' || p.s[p.i] == '+' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == digits {
		return nil, fmt.Errorf("a sign without digits")
	}
	text := string(p.s[start:p.i])
	if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') { // Python 2 longs
		p.i++
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("integer %s is out of range", text)
	}
	return n, nil
}
