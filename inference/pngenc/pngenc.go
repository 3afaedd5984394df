// Package pngenc is the inference server's PNG encoder for 8-bit gray, RGB
// and RGBA pixels: one filter for every row and one IDAT chunk, which is
// many times faster than image/png on the images predict returns (see
// Choose). The server writes every image output with it
// (inference.encodeTensorPNG); what it writes is a standard PNG that
// image/png and Pillow read back pixel for pixel.
package pngenc

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"runtime"
	"sync"
)

// Filter is a PNG row filter type (RFC 2083 §6).
type Filter byte

// The five row filters, numbered as in the PNG format.
const (
	FilterNone Filter = iota
	FilterSub
	FilterUp
	FilterAverage
	FilterPaeth
)

// Options choose the encoder's trade-off between speed and size.
type Options struct {
	Filter Filter // one filter for every row
	Level  int    // zlib level: zlib.HuffmanOnly, zlib.BestSpeed...
}

// YieldEvery is how many bytes of rows Encode compresses between
// runtime.Gosched calls: about a millisecond of work. Encoding is a tight
// loop that Go preempts only every 10 ms; the inference server's decoders
// yield as often (inference's yieldingReader), so that the goroutine that
// feeds a Python worker its next batch never waits that long.
const YieldEvery = 64 << 10

// Choose picks how image outputs are encoded. inference's BenchmarkEncodePNG (512x512,
// this 2-core machine) shows why: the standard encoder, even at BestSpeed,
// spends most of its time trying all five filters on every row and then
// looking for matches a noisy photo does not have. The Up filter with
// Huffman-only coding is over 10x faster on a photo and about as small as
// zlib's default level; but it cannot code long runs in less than a bit per
// byte, so images with many repeated bytes (masks, flat graphics: many zeros
// once filtered, found on a sample of rows) get the Up filter with
// BestSpeed, which is fast there and a hundred times smaller.
func Choose(pix []byte, stride int) Options {
	h := len(pix) / stride
	var zeros, n int
	for y := 1; y < h; y += max(1, h/32) {
		cur, prev := pix[y*stride:(y+1)*stride], pix[(y-1)*stride:y*stride]
		for i := range cur {
			if cur[i] == prev[i] {
				zeros++
			}
		}
		n += stride
	}
	if n > 0 && zeros*4 >= n { // a quarter or more of the Up-filtered bytes are 0
		return Options{Filter: FilterUp, Level: zlib.BestSpeed}
	}
	return Options{Filter: FilterUp, Level: zlib.HuffmanOnly}
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// zlibWriters are reused across encodes: a zlib.Writer holds about 1 MiB of
// deflate state.
var zlibWriters sync.Map // level -> *sync.Pool of *zlib.Writer

func zlibWriter(w *bytes.Buffer, level int) (*zlib.Writer, func(), error) {
	pv, _ := zlibWriters.LoadOrStore(level, &sync.Pool{})
	pool := pv.(*sync.Pool)
	if z, ok := pool.Get().(*zlib.Writer); ok {
		z.Reset(w)
		return z, func() { pool.Put(z) }, nil
	}
	z, err := zlib.NewWriterLevel(w, level)
	if err != nil {
		return nil, nil, err
	}
	return z, func() { pool.Put(z) }, nil
}

// Encode writes 8-bit pixels (rows of w*channels bytes, channels 1 =
// gray, 3 = RGB, 4 = RGBA with straight alpha) as a PNG with one IDAT chunk.
func Encode(pix []byte, w, h, channels int, o Options) ([]byte, error) {
	colorType := map[int]byte{1: 0, 3: 2, 4: 6}[channels]
	if (channels != 1 && channels != 3 && channels != 4) || w <= 0 || h <= 0 || len(pix) != w*h*channels {
		return nil, fmt.Errorf("encode PNG: %d bytes are not %dx%dx%d pixels", len(pix), h, w, channels)
	}
	stride := w * channels
	out := bytes.NewBuffer(make([]byte, 0, len(pix)/2+h+1024))
	out.Write(pngSignature)
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, colorType // bit depth, colour type; compression, filter, interlace: 0
	writeChunk(out, "IHDR", ihdr[:])

	start := out.Len()
	out.Write([]byte{0, 0, 0, 0, 'I', 'D', 'A', 'T'}) // the length is filled in below
	z, done, err := zlibWriter(out, o.Level)
	if err != nil {
		return nil, err
	}
	defer done()
	row := make([]byte, 1+stride)
	row[0] = byte(o.Filter)
	written := 0
	for y := range h {
		if written += stride; written >= YieldEvery {
			written = 0
			runtime.Gosched()
		}
		cur := pix[y*stride : (y+1)*stride]
		var prev []byte
		if y > 0 {
			prev = pix[(y-1)*stride : y*stride]
		}
		filterRow(row[1:], cur, prev, channels, o.Filter)
		if _, err := z.Write(row); err != nil {
			return nil, fmt.Errorf("encode PNG: %w", err)
		}
	}
	if err := z.Close(); err != nil {
		return nil, fmt.Errorf("encode PNG: %w", err)
	}
	b := out.Bytes()
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-8))
	var crc [4]byte
	binary.BigEndian.PutUint32(crc[:], crc32.ChecksumIEEE(b[start+4:]))
	out.Write(crc[:])
	writeChunk(out, "IEND", nil)
	return out.Bytes(), nil
}

func writeChunk(out *bytes.Buffer, typ string, data []byte) {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)))
	copy(hdr[4:], typ)
	out.Write(hdr[:])
	out.Write(data)
	c := crc32.NewIEEE()
	c.Write(hdr[4:])
	c.Write(data)
	var crc [4]byte
	binary.BigEndian.PutUint32(crc[:], c.Sum32())
	out.Write(crc[:])
}

// filterRow writes cur filtered against prev (nil for the first row) into
// dst; bpp is the bytes per pixel.
func filterRow(dst, cur, prev []byte, bpp int, f Filter) {
	if prev == nil { // above the first row every byte counts as 0
		switch f {
		case FilterUp:
			f = FilterNone
		case FilterPaeth:
			f = FilterSub // paeth(a, 0, 0) = a
		}
	}
	switch f {
	case FilterNone:
		copy(dst, cur)
	case FilterSub:
		copy(dst[:bpp], cur[:bpp])
		for i := bpp; i < len(cur); i++ {
			dst[i] = cur[i] - cur[i-bpp]
		}
	case FilterUp:
		for i := range cur {
			dst[i] = cur[i] - prev[i]
		}
	case FilterAverage:
		for i := range cur {
			var left int
			if i >= bpp {
				left = int(cur[i-bpp])
			}
			up := 0
			if prev != nil {
				up = int(prev[i])
			}
			dst[i] = cur[i] - byte((left+up)/2)
		}
	case FilterPaeth:
		for i := range bpp {
			dst[i] = cur[i] - prev[i]
		}
		for i := bpp; i < len(cur); i++ {
			dst[i] = cur[i] - paethPredict(cur[i-bpp], prev[i], prev[i-bpp])
		}
	}
}

// paethPredict is the Paeth predictor of RFC 2083 §6.6.
func paethPredict(a, b, c byte) byte {
	p := int(a) + int(b) - int(c)
	pa, pb, pc := p-int(a), p-int(b), p-int(c)
	if pa < 0 {
		pa = -pa
	}
	if pb < 0 {
		pb = -pb
	}
	if pc < 0 {
		pc = -pc
	}
	if pa <= pb && pa <= pc {
		return a
	}
	if pb <= pc {
		return b
	}
	return c
}
