package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/store"
)

// Input packs (docs/batches.md, "Staging"): an archive's small members are
// staged back to back in pack blobs, up to packItems items or packBytes
// bytes a pack, each item's input kept as a range of its pack (rangeKey,
// as outputs recorded from the agent's parts are). A 2,000-image archive
// is then four blobs, not 2,000: staging writes four files, the worker's
// path opens a pack per item (a seek on the local store), and a chunk run
// by the server's agent reads each pack once instead of opening 2,000
// inputs with the endpoint idle before its first predict. The byte bound
// keeps a range read cheap on a blob store that cannot seek (S3: the bytes
// before the range are read and dropped).
const (
	packItems = 500
	packBytes = 8 << 20
)

// packKey names pack n of a batch's inputs.
func packKey(batchID string, n int) string {
	return fmt.Sprintf("batches/%s/in/pack-%d", batchID, n)
}

// inputPacker stages members into packs; a member over packBytes gets a
// blob of its own (inputKey), streamed.
type inputPacker struct {
	ctx     context.Context
	blobs   blobs.Store
	batchID string

	n    int // the pack being filled
	buf  bytes.Buffer
	held int // items in buf
}

// add stages item idx's bytes from r and returns its input key.
func (p *inputPacker) add(idx int, r io.Reader) (string, error) {
	var head bytes.Buffer
	n, err := io.CopyN(&head, r, packBytes+1)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if n > packBytes { // large: its own blob, the rest streamed after the head
		key := inputKey(p.batchID, idx)
		if err := p.blobs.Put(p.ctx, key, io.MultiReader(&head, r), -1); err != nil {
			return "", err
		}
		return key, nil
	}
	if p.held == packItems || p.buf.Len()+int(n) > packBytes {
		if err := p.flush(); err != nil {
			return "", err
		}
	}
	off := p.buf.Len()
	p.buf.Write(head.Bytes())
	p.held++
	return rangeKey(packKey(p.batchID, p.n), int64(off), n), nil
}

// flush stores the pack being filled, if it holds anything, and starts the
// next.
func (p *inputPacker) flush() error {
	if p.held == 0 {
		return nil
	}
	if err := p.blobs.Put(p.ctx, packKey(p.batchID, p.n), bytes.NewReader(p.buf.Bytes()), int64(p.buf.Len())); err != nil {
		return err
	}
	p.n++
	p.buf.Reset()
	p.held = 0
	return nil
}

// splitRange splits a range key into its blob key and bounds; ok is false
// for a whole-blob key.
func splitRange(k string) (key string, off, n int64, ok bool, err error) {
	key, rng, ok := strings.Cut(k, "#")
	if !ok {
		return k, 0, 0, false, nil
	}
	o, l, found := strings.Cut(rng, "+")
	off, err1 := strconv.ParseInt(o, 10, 64)
	n, err2 := strconv.ParseInt(l, 10, 64)
	if !found || err1 != nil || err2 != nil || off < 0 || n < 0 {
		return "", 0, 0, true, fmt.Errorf("key %q: bad range", k)
	}
	return key, off, n, true, nil
}

// errOutsidePack is a range past its pack's end: a damaged key or pack,
// the item's failure.
var errOutsidePack = errors.New("the range is outside its pack")

// packCache holds the packs one chunk's inputs are ranges of, each read
// once (issueOnAgent): a chunk of 2,000 staged images reads 4 blobs.
type packCache struct {
	blobs blobs.Store

	mu    sync.Mutex
	packs map[string]*packEntry
}

// keepOnly forgets the packs that items (the next window) do not use, so
// the cache holds about a window's bytes, not a whole chunk's.
func (c *packCache) keepOnly(items []store.BatchItem) {
	used := map[string]bool{}
	for _, it := range items {
		if key, _, _, ok, err := splitRange(it.Input); ok && err == nil {
			used[key] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.packs {
		if !used[k] {
			delete(c.packs, k)
		}
	}
}

type packEntry struct {
	once sync.Once
	b    []byte
	err  error
}

// rangeOf returns bytes [off, off+n) of pack key, reading the pack on its
// first use; blobs.ErrNotFound when the pack is gone.
func (c *packCache) rangeOf(ctx context.Context, key string, off, n int64) ([]byte, error) {
	c.mu.Lock()
	if c.packs == nil {
		c.packs = map[string]*packEntry{}
	}
	e, ok := c.packs[key]
	if !ok {
		e = &packEntry{}
		c.packs[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		rc, err := c.blobs.Get(ctx, key)
		if err != nil {
			e.err = err
			return
		}
		defer rc.Close()
		e.b, e.err = io.ReadAll(rc)
	})
	if e.err != nil {
		return nil, e.err
	}
	if off+n > int64(len(e.b)) {
		return nil, fmt.Errorf("%w: range %d+%d of %s, which has %d bytes", errOutsidePack, off, n, key, len(e.b))
	}
	return e.b[off : off+n], nil
}
