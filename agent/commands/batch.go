package commands

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// KindBatch runs one chunk of a batch job (predictions/batch) on the server:
// the agent sends each item of the chunk's input object to its live
// revision's /predict on loopback, Concurrency at a time, journals each
// answer once, and uploads the answers as artifacts in parts.
const KindBatch = "batch"

// Batch is KindBatch's payload: references and settings only. The items'
// bytes are in the command's input object (the platform stored it before it
// issued the command; the agent downloads it over its authenticated channel,
// protocol.InputPath), packed back to back in the order of Items. No token:
// the agent calls its own revision with a credential of its own.
type Batch struct {
	// Items are the chunk's pending items, in the input object's order.
	// A platform sends them packed instead (PackItems); UnpackItems sets
	// them back.
	Items []BatchItem `json:"items,omitempty"`
	// PackedItems are Items in a compact binary form (PackItems): a chunk
	// of 2,000 items is 100 KB of JSON, read and written four times on its
	// way to the agent (the store, the poll's answer, the link, the
	// payload) with the endpoint idle, and about 8 KB packed. Each item is
	// three uvarints: its index's step from the previous item's (the first
	// from -1), its content type's position in ContentTypes, its length.
	PackedItems []byte `json:"packed_items,omitempty"`
	// ContentTypes are the packed items' distinct content types.
	ContentTypes []string `json:"content_types,omitempty"`
	// InputBytes is the input object's size (the sum of the items'
	// lengths), checked after the download.
	InputBytes int64 `json:"input_bytes"`
	// Concurrency is how many predicts are in flight at most (1 to 64).
	Concurrency int `json:"concurrency"`
	// RetryForSeconds bounds how long an item is retried while the live
	// revision cannot be reached (a swap, a restart); 0 is 300. 429 and
	// 503 answers are waited out whatever it is.
	RetryForSeconds int `json:"retry_for_seconds,omitempty"`
	// PartItems and PartBytes bound one result part (0: 500 items, 8 MiB;
	// a part never exceeds protocol.MaxArtifact).
	PartItems int   `json:"part_items,omitempty"`
	PartBytes int64 `json:"part_bytes,omitempty"`
}

// BatchItem is one item of a Batch.
type BatchItem struct {
	// Index is the item's index in its batch.
	Index int `json:"index"`
	// ContentType is what /predict is told the body is.
	ContentType string `json:"content_type"`
	// Length is the body's size in the input object; the body starts where
	// the previous item's ended.
	Length int64 `json:"length"`
}

// maxContentTypes bounds ContentTypes: a packed item names its type by a
// position in it.
const maxContentTypes = 1 << 16

// PackItems moves in.Items into PackedItems and ContentTypes. Items must
// be in increasing index order (a chunk's pending items are).
func (in *Batch) PackItems() error {
	types := map[string]uint64{}
	in.ContentTypes = in.ContentTypes[:0]
	b := make([]byte, 0, 4*len(in.Items))
	prev := -1
	for i, it := range in.Items {
		if it.Index <= prev || it.Length < 0 {
			return fmt.Errorf("items[%d]: index %d after %d, length %d: indexes must increase, lengths not be negative", i, it.Index, prev, it.Length)
		}
		t, ok := types[it.ContentType]
		if !ok {
			if len(in.ContentTypes) == maxContentTypes {
				return fmt.Errorf("items[%d]: over %d content types", i, maxContentTypes)
			}
			t = uint64(len(in.ContentTypes))
			types[it.ContentType] = t
			in.ContentTypes = append(in.ContentTypes, it.ContentType)
		}
		b = binary.AppendUvarint(b, uint64(it.Index-prev))
		b = binary.AppendUvarint(b, t)
		b = binary.AppendUvarint(b, uint64(it.Length))
		prev = it.Index
	}
	in.PackedItems, in.Items = b, nil
	return nil
}

// UnpackItems sets Items from PackedItems and ContentTypes (a payload
// that came packed); a payload with Items as such is left as it is. Both
// at once, or a packed form that does not decode, is an error.
func (in *Batch) UnpackItems() error {
	if len(in.PackedItems) == 0 {
		if len(in.ContentTypes) > 0 {
			return errors.New("content_types without packed_items")
		}
		return nil
	}
	if len(in.Items) > 0 {
		return errors.New("both items and packed_items")
	}
	b := in.PackedItems
	prev := -1
	for len(b) > 0 {
		var v [3]uint64
		for k := range v {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				return fmt.Errorf("packed_items: item %d: a bad or cut varint", len(in.Items))
			}
			v[k], b = x, b[n:]
		}
		if v[0] == 0 || v[0] > 1<<40 || v[1] >= uint64(len(in.ContentTypes)) || v[2] > 1<<40 {
			return fmt.Errorf("packed_items: item %d: index step %d, content type %d of %d, length %d", len(in.Items), v[0], v[1], len(in.ContentTypes), v[2])
		}
		prev += int(v[0])
		in.Items = append(in.Items, BatchItem{Index: prev, ContentType: in.ContentTypes[v[1]], Length: int64(v[2])})
	}
	in.PackedItems, in.ContentTypes = nil, nil
	return nil
}

// BatchOutput is KindBatch's output: what the parts hold.
type BatchOutput struct {
	// Parts is how many result parts were uploaded, as the artifacts
	// BatchPartName(0) to BatchPartName(Parts-1).
	Parts int `json:"parts"`
	// Succeeded and Failed count the items answered 2xx and not; Items is
	// their sum (every item of the payload).
	Items     int `json:"items"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// BatchPartName is the artifact name of result part n.
func BatchPartName(n int) string { return fmt.Sprintf("part-%06d", n) }

// BatchResult is one item's final answer, as journaled on the server and
// carried in a result part.
type BatchResult struct {
	Index int
	// HTTPStatus is the revision's answer; 0 when none came (Error says
	// why: the revision stayed unreachable past RetryForSeconds).
	HTTPStatus  int
	ContentType string
	// Body is the answer's body (an output, or the endpoint's JSON error).
	Body []byte
	// Error is set when no answer came.
	Error string
}

// The record encoding of a BatchResult, shared by the agent's journal and
// the result parts: magic byte, uvarint length n, n bytes of fields
// (uvarint index, uvarint status, uvarint-prefixed content type, error and
// body), then the CRC-32C of those n bytes (4 bytes, big-endian). A torn
// record (a killed writer) is recognised by its length or CRC.
const recordMagic = 0xB7

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTornRecord is returned by ReadBatchRecord for a record cut short or
// damaged: the end of what a killed writer wrote completely.
var ErrTornRecord = errors.New("torn batch record")

// maxRecord bounds one record (an output of at most 64 MiB and its fields).
const maxRecord = 65<<20 + 1<<16

// AppendBatchRecord appends r's encoding to b.
func AppendBatchRecord(b []byte, r BatchResult) []byte {
	var f []byte
	f = binary.AppendUvarint(f, uint64(max(r.Index, 0)))
	f = binary.AppendUvarint(f, uint64(max(r.HTTPStatus, 0)))
	for _, s := range [][]byte{[]byte(r.ContentType), []byte(r.Error), r.Body} {
		f = binary.AppendUvarint(f, uint64(len(s)))
		f = append(f, s...)
	}
	b = append(b, recordMagic)
	b = binary.AppendUvarint(b, uint64(len(f)))
	b = append(b, f...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(f, castagnoli))
}

// ReadBatchRecord reads one record from r: io.EOF at a clean end,
// ErrTornRecord (wrapped) for a record cut short or damaged. n is the
// record's size in bytes, so a caller can keep the offset of the last whole
// record.
func ReadBatchRecord(r *bufio.Reader) (rec BatchResult, n int, err error) {
	m, err := r.ReadByte()
	if err == io.EOF {
		return rec, 0, io.EOF
	}
	if err != nil {
		return rec, 0, err
	}
	if m != recordMagic {
		return rec, 0, fmt.Errorf("%w: bad magic byte %#x", ErrTornRecord, m)
	}
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return rec, 0, fmt.Errorf("%w: length: %v", ErrTornRecord, err)
	}
	if size > maxRecord {
		return rec, 0, fmt.Errorf("%w: length %d over the limit", ErrTornRecord, size)
	}
	f := make([]byte, size+4)
	if _, err := io.ReadFull(r, f); err != nil {
		return rec, 0, fmt.Errorf("%w: %v", ErrTornRecord, err)
	}
	if crc32.Checksum(f[:size], castagnoli) != binary.BigEndian.Uint32(f[size:]) {
		return rec, 0, fmt.Errorf("%w: checksum", ErrTornRecord)
	}
	n = 1 + uvarintLen(size) + int(size) + 4
	rec, err = decodeFields(f[:size])
	if err != nil {
		return rec, 0, fmt.Errorf("%w: %v", ErrTornRecord, err)
	}
	return rec, n, nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

func decodeFields(f []byte) (BatchResult, error) {
	var r BatchResult
	next := func() (uint64, error) {
		v, k := binary.Uvarint(f)
		if k <= 0 {
			return 0, errors.New("bad varint")
		}
		f = f[k:]
		return v, nil
	}
	bytesField := func() ([]byte, error) {
		l, err := next()
		if err != nil {
			return nil, err
		}
		if l > uint64(len(f)) {
			return nil, errors.New("field longer than the record")
		}
		s := f[:l:l]
		f = f[l:]
		return s, nil
	}
	idx, err := next()
	if err != nil {
		return r, err
	}
	st, err := next()
	if err != nil {
		return r, err
	}
	ct, err := bytesField()
	if err != nil {
		return r, err
	}
	msg, err := bytesField()
	if err != nil {
		return r, err
	}
	body, err := bytesField()
	if err != nil {
		return r, err
	}
	if len(f) != 0 {
		return r, errors.New("trailing bytes")
	}
	r.Index, r.HTTPStatus, r.ContentType, r.Error = int(idx), int(st), string(ct), string(msg)
	if len(body) > 0 {
		r.Body = body
	}
	return r, nil
}

// ReadBatchPart decodes a whole result part: every record, or an error for
// a part that is damaged (a part is uploaded whole, so any torn record in it
// is an error, unlike a journal's tail).
func ReadBatchPart(b []byte) ([]BatchResult, error) {
	br := bufio.NewReader(bytes.NewReader(b))
	var out []BatchResult
	for {
		r, _, err := ReadBatchRecord(br)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("result part, record %d: %w", len(out), err)
		}
		out = append(out, r)
	}
}

// CheckBatch reports what is wrong with a KindBatch payload.
func CheckBatch(in Batch) error {
	if len(in.Items) == 0 {
		return errors.New("no items")
	}
	if in.Concurrency < 1 || in.Concurrency > 64 {
		return fmt.Errorf("concurrency %d: 1 to 64", in.Concurrency)
	}
	var sum int64
	seen := make(map[int]bool, len(in.Items))
	for i, it := range in.Items {
		if it.Index < 0 || it.Length < 0 {
			return fmt.Errorf("items[%d]: negative index or length", i)
		}
		if seen[it.Index] {
			return fmt.Errorf("items[%d]: index %d twice", i, it.Index)
		}
		seen[it.Index] = true
		sum += it.Length
	}
	if sum != in.InputBytes {
		return fmt.Errorf("input_bytes %d is not the items' lengths' sum %d", in.InputBytes, sum)
	}
	return nil
}
