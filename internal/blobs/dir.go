package blobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Dir is a Store in a local folder: the key a/b/c is the file Root/a/b/c.
// Files are private to this user (0600 in 0700 folders).
type Dir struct {
	Root string

	// made remembers folders Put made or found, so a Put into a known
	// folder costs no MkdirAll (a stat per blob, measurable when a batch
	// stores thousands of small outputs). A folder removed behind its back
	// (Delete of a prefix) is made again when CreateTemp finds it gone.
	made sync.Map // folder path -> struct{}
}

// NewDir makes the folder and returns a store in it.
func NewDir(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("blob folder: %w", err)
	}
	return &Dir{Root: abs}, nil
}

func (d *Dir) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.Root, filepath.FromSlash(key)), nil
}

// Put writes r to a temporary file beside the key's and renames it into
// place, so a reader never sees half a blob.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	f, err := d.createTemp(dir)
	if err != nil {
		return fmt.Errorf("put blob: %w", err)
	}
	tmp := f.Name()
	var n int64
	if b, ok := r.(*bytes.Reader); ok && size >= 0 && size <= smallBlob {
		// Bytes already in memory: one write, no copy buffer (a batch
		// stores each output this way).
		if err = ctx.Err(); err == nil {
			n, err = b.WriteTo(f)
		}
	} else {
		n, err = io.Copy(f, readerCtx{ctx, r})
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("got %d bytes, want %d", n, size)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	return nil
}

// smallBlob is the largest in-memory blob Put writes in one call.
const smallBlob = 16 << 20

// createTemp makes a temporary file in dir, making dir first when it is not
// known to exist.
func (d *Dir) createTemp(dir string) (*os.File, error) {
	if _, ok := d.made.Load(dir); ok {
		f, err := os.CreateTemp(dir, ".put-*")
		if !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		d.made.Delete(dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob folder: %w", err)
	}
	f, err := os.CreateTemp(dir, ".put-*")
	if err == nil {
		d.made.Store(dir, struct{}{})
	}
	return f, err
}

// Get opens the key's file.
func (d *Dir) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return f, nil
}

// Delete removes the prefix's file or folder.
func (d *Dir) Delete(_ context.Context, prefix string) error {
	p, err := d.path(prefix)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("delete blobs %s: %w", prefix, err)
	}
	// Drop the emptied parents up to the root (fails while others remain: fine).
	for dir := filepath.Dir(p); dir != d.Root && len(dir) > len(d.Root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// readerCtx stops a copy when its context ends.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

var _ Store = (*Dir)(nil)

// ReaderWithContext is r stopping at ctx's end: the stores' copies (the
// folder here, S3's spooling in s3store) use it.
func ReaderWithContext(ctx context.Context, r io.Reader) io.Reader { return readerCtx{ctx, r} }
