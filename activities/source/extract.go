package source

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Limits bound what an upload may write. A zero field takes DefaultLimits'
// value. They count bytes actually written, not what headers claim, so a zip
// bomb stops at the limit.
type Limits struct {
	MaxFiles      int   // entries (files and folders)
	MaxTotalBytes int64 // bytes of all files together
	MaxFileBytes  int64 // bytes of one file
}

// DefaultLimits are used for Limits fields left zero.
var DefaultLimits = Limits{MaxFiles: 10_000, MaxTotalBytes: 2 << 30, MaxFileBytes: 1 << 30}

func (l Limits) withDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultLimits.MaxTotalBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultLimits.MaxFileBytes
	}
	return l
}

// Extract unpacks a .zip, .tar.gz/.tgz or .tar archive (recognised by its
// first bytes, not its name) into dest, creating dest when missing.
//
// Entries with absolute names or ".." are ErrUnsafePath, as are symlinks, hard
// links, devices and FIFOs: code needs none of them and each can reach outside
// dest. Exceeding lim is ErrTooLarge; anything unreadable is ErrBadArchive.
// When every entry sits under one top-level folder (GitHub's "repo-main/"),
// that folder is stripped. macOS "__MACOSX/" entries are skipped.
//
// The archive is unpacked into a temporary sibling of dest first, so a bad
// archive leaves dest untouched. Its files are then moved into dest, replacing
// files of the same name; other files already in dest are kept (remove dest
// first for a fresh tree).
func Extract(archivePath, dest string, lim Limits) error {
	lim = lim.withDefaults()
	f, err := os.Open(archivePath)
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read archive: %w", err)
	}
	head = head[:n]

	dest, err = filepath.Abs(dest)
	if err != nil {
		return fmt.Errorf("extract archive: %w", err)
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("extract archive: %w", err)
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".extract-*")
	if err != nil {
		return fmt.Errorf("extract archive: %w", err)
	}
	defer os.RemoveAll(stage)

	w := &stager{root: stage, lim: lim}
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		err = extractZip(f, st.Size(), w)
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		var gz *gzip.Reader
		if gz, err = gzip.NewReader(f); err == nil {
			err = extractTar(gz, w)
			gz.Close()
		} else {
			err = fmt.Errorf("%w: %v", ErrBadArchive, err)
		}
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		err = extractTar(f, w)
	default:
		err = fmt.Errorf("%w: not a zip, tar or tar.gz file", ErrBadArchive)
	}
	if err != nil {
		return fmt.Errorf("extract archive: %w", err)
	}

	root := stage
	if entries, err := os.ReadDir(stage); err == nil && len(entries) == 1 && entries[0].IsDir() {
		root = filepath.Join(stage, entries[0].Name())
	}
	if err := moveInto(root, dest); err != nil {
		return fmt.Errorf("extract archive into %s: %w", dest, err)
	}
	return nil
}

func extractZip(r io.ReaderAt, size int64, w *stager) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadArchive, err)
	}
	for _, zf := range zr.File {
		mode := zf.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %q is a symlink", ErrUnsafePath, zf.Name)
		case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
			return fmt.Errorf("%w: %q is not a regular file", ErrUnsafePath, zf.Name)
		case mode.IsDir() || strings.HasSuffix(zf.Name, "/"):
			if err := w.dir(zf.Name); err != nil {
				return err
			}
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrBadArchive, zf.Name, err)
		}
		err = w.file(zf.Name, rc, mode&0o111 != 0)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func extractTar(r io.Reader, w *stager) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadArchive, err)
		}
		switch h.Typeflag {
		case tar.TypeReg: // archive/tar reads old archives' TypeRegA (NUL) entries as TypeReg
			if err := w.file(h.Name, tr, h.Mode&0o111 != 0); err != nil {
				return err
			}
		case tar.TypeDir:
			if err := w.dir(h.Name); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader: // GitHub's pax_global_header: metadata only
		case tar.TypeSymlink, tar.TypeLink:
			return fmt.Errorf("%w: %q is a link to %q", ErrUnsafePath, h.Name, h.Linkname)
		default:
			return fmt.Errorf("%w: %q has type %q, only files and folders are allowed", ErrUnsafePath, h.Name, h.Typeflag)
		}
	}
}

// stager writes archive entries under root, enforcing the limits.
type stager struct {
	root  string
	lim   Limits
	count int
	total int64
}

func (w *stager) path(name string) (string, bool, error) {
	rel, err := cleanName(name)
	if err != nil {
		return "", false, err
	}
	if rel == "" {
		return "", false, nil
	}
	if strings.SplitN(filepath.ToSlash(rel), "/", 2)[0] == "__MACOSX" {
		return "", false, nil
	}
	w.count++
	if w.count > w.lim.MaxFiles {
		return "", false, fmt.Errorf("%w: more than %d entries", ErrTooLarge, w.lim.MaxFiles)
	}
	p, err := SafeJoin(w.root, rel)
	return p, err == nil, err
}

func (w *stager) dir(name string) error {
	p, ok, err := w.path(name)
	if !ok {
		return err
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadArchive, name, err)
	}
	return nil
}

func (w *stager) file(name string, r io.Reader, exec bool) error {
	p, ok, err := w.path(name)
	if !ok {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadArchive, name, err)
	}
	max := min(w.lim.MaxFileBytes, w.lim.MaxTotalBytes-w.total)
	perm := os.FileMode(0o644)
	if exec {
		perm = 0o755
	}
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadArchive, name, err)
	}
	n, err := copyMax(out, r, max)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	w.total += n
	switch {
	case errors.Is(err, ErrTooLarge) && max == w.lim.MaxFileBytes:
		return fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, name, w.lim.MaxFileBytes)
	case errors.Is(err, ErrTooLarge):
		return fmt.Errorf("%w: archive holds more than %d bytes", ErrTooLarge, w.lim.MaxTotalBytes)
	case err != nil:
		return fmt.Errorf("%w: %s: %v", ErrBadArchive, name, err)
	}
	return nil
}

// copyMax copies r to w and fails with ErrTooLarge once more than max bytes
// arrive; it never writes more than max bytes.
func copyMax(w io.Writer, r io.Reader, max int64) (int64, error) {
	n, err := io.Copy(w, io.LimitReader(r, max))
	if err != nil {
		return n, err
	}
	var one [1]byte
	if m, _ := io.ReadFull(r, one[:]); m > 0 {
		return n, ErrTooLarge
	}
	return n, nil
}

// moveInto moves the tree under src into dest, replacing what is in the way.
// It walks top-down, so a symlink where a folder must go is removed (not
// followed) before anything is moved beneath it.
func moveInto(src, dest string) error {
	if err := ensureDir(dest); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dest, rel)
		if d.IsDir() {
			return ensureDir(target)
		}
		if st, err := os.Lstat(target); err == nil && st.IsDir() {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		return os.Rename(p, target)
	})
}

// ensureDir makes p a real folder: a file or symlink in its place is removed.
func ensureDir(p string) error {
	st, err := os.Lstat(p)
	if err == nil && st.IsDir() {
		return nil
	}
	if err == nil {
		if err := os.Remove(p); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Mkdir(p, 0o755)
}
