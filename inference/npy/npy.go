// Package npy reads and writes NumPy's .npy files, the numpy input and
// output type of the inference server (package inference adapts Array to
// its tensor Value and Error's kinds to its API error codes). Decode
// accepts what numpy.save writes for the dtypes in Supported: any format
// version (1.0, 2.0, 3.0), either byte order, C or Fortran order; it
// parses the header's Python literal itself (never evaluating it) and
// bounds the header, the dimensions and the size. Encode writes byte for
// byte what numpy.save writes for the same C-contiguous array.
package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Array is an n-dimensional array as a .npy file holds it, decoded:
// DType is one of Supported's names, Shape the dimensions (empty for a
// scalar), Data the elements' bytes, little-endian, in C (row-major) order.
type Array struct {
	DType string
	Shape []int
	Data  []byte
}

// ErrorKind says what is wrong with a .npy file Decode refuses.
type ErrorKind int

// The kinds of Error.
const (
	KindEmpty            ErrorKind = iota + 1 // no bytes at all
	KindNotNPY                                // no \x93NUMPY magic: not a .npy file
	KindBadHeader                             // truncated, an unknown version, or a header that is not the expected dict
	KindHeaderTooLarge                        // a header over 64 KiB
	KindBadShape                              // negative, too many or absurdly large dimensions
	KindSizeMismatch                          // the data is not the size the header promises
	KindUnsupportedDType                      // a dtype outside Supported, or one without its byte order
)

// Error is a .npy file Decode refuses; Message says why, for people.
type Error struct {
	Kind    ErrorKind
	Message string
}

// Error returns Message.
func (e *Error) Error() string { return e.Message }

// The .npy format (numpy.lib.format): the magic "\x93NUMPY", a major and a
// minor version byte, the header length (uint16 little-endian in version 1.0,
// uint32 in 2.0 and 3.0), then the header: a Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
// spaces and a newline, then the array's bytes.

// Magic starts every .npy file.
const Magic = "\x93NUMPY"

// MaxDims bounds an array's rank: numpy 1.x's NPY_MAXDIMS (numpy 2 allows
// 64). Decode refuses more.
const MaxDims = 32

const (
	// maxNPYHeader bounds the header: numpy itself refuses headers over 10000
	// bytes by default; a few dozen bytes are typical.
	maxNPYHeader = 64 << 10
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

// Supported lists the dtypes Decode and Encode know, for messages and docs.
const Supported = "bool, uint8, int8, uint16, int16, uint32, int32, uint64, int64, float16, float32, float64"

// ItemSize is the bytes per element of dtype (one of Supported's names), 0
// for any other.
func ItemSize(dtype string) int {
	d, ok := npyDescr[dtype]
	if !ok {
		return 0
	}
	return int(d[len(d)-1] - '0')
}

func npyErr(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Decode parses a .npy file into an array: little-endian, C order.
// Big-endian data is byte-swapped and Fortran-order data transposed. data is
// reused for the array's bytes when no conversion is needed. Every failure is
// an *Error whose Kind names the problem.
func Decode(data []byte) (Array, error) {
	if len(data) == 0 {
		return Array{}, npyErr(KindEmpty, "the request holds no .npy bytes")
	}
	if len(data) < len(Magic) || string(data[:len(Magic)]) != Magic {
		if len(data) < len(Magic) && Magic[:len(data)] == string(data) {
			return Array{}, npyErr(KindBadHeader, "the .npy file is truncated inside its magic string")
		}
		return Array{}, npyErr(KindNotNPY, "the bytes are not a .npy file (no \\x93NUMPY magic): save the array with numpy.save")
	}
	rest := data[len(Magic):]
	if len(rest) < 2 {
		return Array{}, npyErr(KindBadHeader, "the .npy file is truncated before its version")
	}
	major, minor := rest[0], rest[1]
	rest = rest[2:]
	var hlen uint64
	switch {
	case major == 1 && minor == 0:
		if len(rest) < 2 {
			return Array{}, npyErr(KindBadHeader, "the .npy file is truncated before its header length")
		}
		hlen, rest = uint64(binary.LittleEndian.Uint16(rest)), rest[2:]
	case (major == 2 || major == 3) && minor == 0:
		if len(rest) < 4 {
			return Array{}, npyErr(KindBadHeader, "the .npy file is truncated before its header length")
		}
		hlen, rest = uint64(binary.LittleEndian.Uint32(rest)), rest[4:]
	default:
		return Array{}, npyErr(KindBadHeader, ".npy format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", major, minor)
	}
	if hlen > maxNPYHeader {
		return Array{}, npyErr(KindHeaderTooLarge, "the .npy header is %d bytes; at most %d are accepted", hlen, maxNPYHeader)
	}
	if uint64(len(rest)) < hlen {
		return Array{}, npyErr(KindBadHeader, "the .npy file is truncated inside its %d-byte header", hlen)
	}
	hdr, body := rest[:hlen], rest[hlen:]
	dtype, swap, fortran, shape, err := parseNPYHeader(hdr)
	if err != nil {
		return Array{}, err
	}
	size := ItemSize(dtype)
	nominal := uint64(size)
	n := uint64(1)
	for _, d := range shape {
		n *= uint64(d) // cannot overflow: bounded by nominal below
		if d > 0 {
			if nominal > maxNPYNominal/uint64(d) {
				return Array{}, npyErr(KindBadShape, "shape %v of %s is absurdly large", FormatShape(shape), dtype)
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
		return Array{}, npyErr(KindSizeMismatch, "the .npy header promises shape %s of %s (%d bytes of data) but the file holds %d bytes after the header: it is %s",
			FormatShape(shape), dtype, want, len(body), what)
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
	return Array{DType: dtype, Shape: shape, Data: body}, nil
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
		return "", false, false, nil, npyErr(KindBadHeader, "the .npy header is not a Python dict literal: %v", perr)
	}
	d, ok := v.(pyDict)
	if !ok {
		return "", false, false, nil, npyErr(KindBadHeader, "the .npy header is not a dict")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if _, ok := d[k]; !ok {
			return "", false, false, nil, npyErr(KindBadHeader, "the .npy header has no %q key", k)
		}
	}
	if len(d) != 3 {
		return "", false, false, nil, npyErr(KindBadHeader, "the .npy header has keys other than descr, fortran_order and shape")
	}
	descr, ok := d["descr"].(string)
	if !ok {
		return "", false, false, nil, npyErr(KindUnsupportedDType, "structured dtypes are not supported: send an array of one of %s", Supported)
	}
	dtype, swap, err = npyDType(descr)
	if err != nil {
		return "", false, false, nil, err
	}
	fortran, ok = d["fortran_order"].(bool)
	if !ok {
		return "", false, false, nil, npyErr(KindBadHeader, "fortran_order in the .npy header is not True or False")
	}
	t, ok := d["shape"].(pyTuple)
	if !ok {
		return "", false, false, nil, npyErr(KindBadHeader, "shape in the .npy header is not a tuple")
	}
	if len(t) > MaxDims {
		return "", false, false, nil, npyErr(KindBadShape, "the array has %d dimensions; at most %d are supported", len(t), MaxDims)
	}
	shape = make([]int, len(t))
	for i, e := range t {
		n, ok := e.(int64)
		if !ok {
			return "", false, false, nil, npyErr(KindBadHeader, "shape in the .npy header holds %v, not an integer", e)
		}
		if n < 0 {
			return "", false, false, nil, npyErr(KindBadShape, "shape in the .npy header holds the dimension %d", n)
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
		return "", false, npyErr(KindUnsupportedDType, "%s are not supported: send an array of one of %s", what, Supported)
	}
	if ItemSize(name) == 1 {
		return name, false, nil
	}
	switch order {
	case '<':
		return name, false, nil
	case '>':
		return name, true, nil
	}
	return "", false, npyErr(KindUnsupportedDType, "dtype %q does not say its byte order: use '<' (little-endian) or '>' (big-endian)", descr)
}

// Encode writes a as a .npy file, byte for byte what numpy.save writes for
// the same C-contiguous array (version 1.0, 64-byte alignment; 2.0 when the
// header needs it).
func Encode(a Array) ([]byte, error) {
	descr, ok := npyDescr[a.DType]
	if !ok {
		return nil, fmt.Errorf("unsupported dtype %q", a.DType)
	}
	if err := checkLen(a); err != nil {
		return nil, err
	}
	var h strings.Builder
	h.WriteString("{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + FormatShape(a.Shape) + ", }")
	if len(a.Shape) > 0 { // numpy leaves room to grow the first axis in place
		h.WriteString(strings.Repeat(" ", max(0, 21-len(strconv.Itoa(a.Shape[0])))))
	}
	header := h.String()
	prefix := len(Magic) + 2 + 2
	major := byte(1)
	if (prefix+len(header)+1+63)/64*64 > math.MaxUint16 {
		major, prefix = 2, prefix+2
	}
	total := (prefix + len(header) + 1 + 63) / 64 * 64 // the newline included
	out := make([]byte, 0, total+len(a.Data))
	out = append(out, Magic...)
	out = append(out, major, 0)
	if major == 1 {
		out = binary.LittleEndian.AppendUint16(out, uint16(total-prefix))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(total-prefix))
	}
	out = append(out, header...)
	out = append(out, bytes.Repeat([]byte{' '}, total-prefix-len(header)-1)...)
	out = append(out, '\n')
	return append(out, a.Data...), nil
}

// checkLen checks that a's bytes are its shape's elements: no negative
// dimension, len(Data) = elements × item size (without overflowing).
func checkLen(a Array) error {
	n := 1
	for _, d := range a.Shape {
		if d < 0 {
			return fmt.Errorf("bad shape %v", a.Shape)
		}
		if d == 0 {
			n = 0
		}
	}
	for _, d := range a.Shape {
		if n == 0 {
			break // an empty array: its other dimensions may be anything
		}
		if n > len(a.Data)/d { // n*d > len(Data): too few bytes, and no overflow below
			return fmt.Errorf("shape %v of %s needs more than the %d bytes given", a.Shape, a.DType, len(a.Data))
		}
		n *= d
	}
	if size := ItemSize(a.DType); n*size != len(a.Data) {
		return fmt.Errorf("shape %v of %s needs %d bytes, got %d", a.Shape, a.DType, n*size, len(a.Data))
	}
	return nil
}

// FormatShape writes a shape as Python writes a tuple: (), (3,), (2, 3).
func FormatShape(shape []int) string {
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
