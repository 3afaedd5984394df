package inference

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// Kind is how a value crosses the Go<->Python pipes.
type Kind string

// The wire kinds. A codec asks the runner for the kind it can encode (want).
const (
	KindNone   Kind = "none"
	KindTensor Kind = "tensor" // raw little-endian C-order array bytes, with dtype and shape
	KindJSON   Kind = "json"   // UTF-8 JSON text
	KindBytes  Kind = "bytes"  // opaque bytes
	KindFile   Kind = "file"   // a file's bytes, with name and content_type in the header
	// KindImage is an encoded image file (format "jpeg") that the runner
	// decodes with Pillow into the uint8 (h, w, 3) RGB array predict gets,
	// so that JPEG pixels equal the author's own Image.open(f).convert("RGB")
	// (Go's decoder differs from libjpeg-turbo by up to 36 levels). Its
	// header carries format and the decoded dtype and shape. Requests only.
	KindImage Kind = "image"
)

// stageDecode is the runner's error stage for an encoded image (KindImage)
// Pillow could not decode: the client's mistake, a 400.
const stageDecode = "decode"

// Value is one value on the wire: the input handed to predict, or what predict
// (or testing_input_data) returned.
type Value struct {
	Kind  Kind
	DType string // numpy dtype name for tensors: uint8, float32, bool...
	Shape []int
	Data  []byte
	// Name and ContentType describe a file value (KindFile).
	Name        string
	ContentType string
	// Format is an encoded image's format (KindImage): "jpeg".
	Format string
	// Logs is what the algorithm printed while it computed this value
	// (replies to a call with Logs set; empty otherwise).
	Logs string
}

// dtypeSizes are the numpy dtypes a tensor may have, with their item sizes.
var dtypeSizes = map[string]int{
	"bool": 1, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "uint32": 4, "int32": 4,
	"uint64": 8, "int64": 8, "float16": 2, "float32": 4, "float64": 8,
}

// tensorLen checks v's dtype and shape and returns the number of elements.
func (v Value) tensorLen() (int, error) {
	size, ok := dtypeSizes[v.DType]
	if !ok {
		return 0, fmt.Errorf("unsupported dtype %q", v.DType)
	}
	n := 1
	for _, d := range v.Shape {
		if d < 0 {
			return 0, fmt.Errorf("bad shape %v", v.Shape)
		}
		if d == 0 {
			n = 0
		}
	}
	for _, d := range v.Shape {
		if n == 0 {
			break // an empty array: its other dimensions may be anything
		}
		if n > len(v.Data)/d { // n*d > len(Data): too few bytes, and no overflow below
			return 0, fmt.Errorf("shape %v of %s needs more than the %d bytes sent", v.Shape, v.DType, len(v.Data))
		}
		n *= d
	}
	if n*size != len(v.Data) {
		return 0, fmt.Errorf("shape %v of %s needs %d bytes, got %d", v.Shape, v.DType, n*size, len(v.Data))
	}
	return n, nil
}

// Ops and reply ops of the protocol.
const (
	opPredict   = "predict"
	opTestInput = "test_input"
	opReady     = "ready"
	opResult    = "result"
	opError     = "error"
)

// frameHeader is the JSON header of a frame, in both directions.
type frameHeader struct {
	ID    uint64 `json:"id"`
	Op    string `json:"op"`
	Kind  Kind   `json:"kind,omitempty"`
	DType string `json:"dtype,omitempty"`
	Shape []int  `json:"shape,omitempty"`
	Want  Kind   `json:"want,omitempty"`  // requests: the kind the reply must have
	Class string `json:"class,omitempty"` // ready: the class the runner serves
	// PredictBatch (ready) says the class defines predict_batch.
	PredictBatch bool `json:"predict_batch,omitempty"`
	// Batch (the first request of a batch for predict_batch) is how many
	// request frames the batch holds, this one included; absent on a call
	// for predict.
	Batch int `json:"batch,omitempty"`
	// Name and ContentType go with file values.
	Name        string `json:"name,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	// Format goes with encoded images (KindImage): "jpeg".
	Format string `json:"format,omitempty"`
	// CaptureLogs (requests) asks the runner for what the algorithm wrote
	// to sys.stdout and sys.stderr while it served the request.
	CaptureLogs bool `json:"capture_logs,omitempty"`
	// Logs (replies to a request with CaptureLogs) is that output: its last
	// 64 KiB, shared by the requests of one predict_batch call.
	Logs *string `json:"logs,omitempty"`
}

// pythonError is the payload of an error reply.
type pythonError struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback"`
	// Stage: import, class, init, predict, test_input, output (of
	// predict), test_input_output, or decode (the client's encoded image).
	Stage string `json:"stage"`
	// Hint is what to do about it, when the runner knows (a module to add
	// to aai_pip-requirements.txt).
	Hint string `json:"hint,omitempty"`
}

const (
	framePrefixLen = 12      // uint32 header length + uint64 payload length, big-endian
	maxHeaderLen   = 1 << 20 // a header is a small JSON object
	maxPayloadLen  = 2 << 30 // bounds what a runaway worker can make the server allocate
)

// writeFrame writes one frame: prefix, header JSON, payload.
func writeFrame(w io.Writer, h frameHeader, payload []byte) error {
	hb, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encode frame header: %w", err)
	}
	buf := make([]byte, framePrefixLen, framePrefixLen+len(hb))
	binary.BigEndian.PutUint32(buf[0:4], uint32(len(hb)))
	binary.BigEndian.PutUint64(buf[4:12], uint64(len(payload)))
	if _, err := w.Write(append(buf, hb...)); err != nil {
		return fmt.Errorf("write frame header: %w", err)
	}
	if len(payload) > 0 {
		if _, err := w.Write(payload); err != nil {
			return fmt.Errorf("write frame payload: %w", err)
		}
	}
	return nil
}

// readFrame reads one frame. io.EOF means the peer closed the pipe between frames.
func readFrame(r *bufio.Reader) (frameHeader, []byte, error) {
	var prefix [framePrefixLen]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return frameHeader{}, nil, err
	}
	hlen := binary.BigEndian.Uint32(prefix[0:4])
	plen := binary.BigEndian.Uint64(prefix[4:12])
	if hlen > maxHeaderLen || plen > maxPayloadLen {
		return frameHeader{}, nil, fmt.Errorf("frame too large: header %d bytes, payload %d bytes", hlen, plen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return frameHeader{}, nil, fmt.Errorf("read frame header: %w", noEOF(err))
	}
	var h frameHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return frameHeader{}, nil, fmt.Errorf("decode frame header: %w", err)
	}
	payload := make([]byte, plen)
	if _, err := io.ReadFull(r, payload); err != nil {
		return frameHeader{}, nil, fmt.Errorf("read frame payload: %w", noEOF(err))
	}
	return h, payload, nil
}

// noEOF turns an EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
