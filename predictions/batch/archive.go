package batch

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Limits bound a batch's inputs.
type Limits struct {
	MaxItems     int   // members (files) of an archive, or URLs
	MaxItemBytes int64 // one member's bytes
	MaxTotal     int64 // all members' bytes together (what they unpack to)
}

// DefaultLimits are the limits when a field of Limits is zero.
var DefaultLimits = Limits{MaxItems: 10_000, MaxItemBytes: 64 << 20, MaxTotal: 2 << 30}

func (l Limits) withDefaults() Limits {
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultLimits.MaxItems
	}
	if l.MaxItemBytes <= 0 {
		l.MaxItemBytes = DefaultLimits.MaxItemBytes
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = DefaultLimits.MaxTotal
	}
	return l
}

// MemberError is an archive member the batch refuses: a link, a device, an
// absolute name or one with "..", or one over a limit (TooLarge). Member is
// the name as the archive has it, for the client's error message.
type MemberError struct {
	Member   string
	Reason   string
	TooLarge bool
}

func (e *MemberError) Error() string {
	if e.Member == "" {
		return "archive: " + e.Reason
	}
	return fmt.Sprintf("archive member %q: %s", e.Member, e.Reason)
}

// ErrNotArchive is an upload that is neither zip, tar nor tar.gz, or is
// corrupt.
var ErrNotArchive = errors.New("not a readable zip, tar or tar.gz archive")

// Member is one file of an archive, handed to ReadArchive's callback; R
// reads at most Limits.MaxItemBytes (more is a *MemberError).
type Member struct {
	Name string // the cleaned relative path
	R    io.Reader
}

// ReadArchive reads every file of the zip, tar or tar.gz in f (recognised by
// its first bytes) in archive order and calls each for it. Folders,
// macOS "__MACOSX/" entries and ".DS_Store" files are skipped. It refuses,
// like fetch_code's uploads, symlinks, hard links, devices, FIFOs, absolute
// names and names with ".." (a *MemberError naming the member), and stops at
// the limits, counting bytes read rather than what headers claim.
func ReadArchive(f *os.File, lim Limits, each func(Member) error) error {
	lim = lim.withDefaults()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read archive: %w", err)
	}
	head = head[:n]
	r := &reader{lim: lim, each: each}
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return r.zip(f, st.Size())
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		// Read from the start whatever f's offset (the API has just written it).
		gz, err := gzip.NewReader(bufio.NewReader(io.NewSectionReader(f, 0, st.Size())))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotArchive, err)
		}
		defer gz.Close()
		return r.tar(gz)
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return r.tar(bufio.NewReader(io.NewSectionReader(f, 0, st.Size())))
	}
	return ErrNotArchive
}

type reader struct {
	lim   Limits
	each  func(Member) error
	count int
	total int64
}

func (r *reader) zip(f io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotArchive, err)
	}
	for _, zf := range zr.File {
		mode := zf.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			return &MemberError{Member: zf.Name, Reason: "is a symlink; a batch takes files only"}
		case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
			return &MemberError{Member: zf.Name, Reason: "is not a regular file"}
		}
		name, skip, err := cleanMember(zf.Name)
		if err != nil {
			return err
		}
		if skip || mode.IsDir() || strings.HasSuffix(zf.Name, "/") {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNotArchive, zf.Name, err)
		}
		err = r.member(zf.Name, name, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) tar(in io.Reader) error {
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotArchive, err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
		case tar.TypeDir, tar.TypeXGlobalHeader:
			if _, _, err := cleanMember(h.Name); err != nil {
				return err
			}
			continue
		case tar.TypeSymlink, tar.TypeLink:
			return &MemberError{Member: h.Name, Reason: fmt.Sprintf("is a link (to %q); a batch takes files only", h.Linkname)}
		default:
			return &MemberError{Member: h.Name, Reason: "is not a regular file"}
		}
		name, skip, err := cleanMember(h.Name)
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		if err := r.member(h.Name, name, tr); err != nil {
			return err
		}
	}
}

// member counts one file and hands it over, cutting it at the limits.
func (r *reader) member(raw, name string, body io.Reader) error {
	r.count++
	if r.count > r.lim.MaxItems {
		return &MemberError{Member: raw, Reason: fmt.Sprintf("is one file more than the %d a batch may have", r.lim.MaxItems), TooLarge: true}
	}
	lr := &limited{r: body, left: min(r.lim.MaxItemBytes, r.lim.MaxTotal-r.total), raw: raw, lim: r.lim}
	if err := r.each(Member{Name: name, R: lr}); err != nil {
		return err
	}
	// Drain what the callback left, so the limits count every byte.
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return err
	}
	r.total += lr.read
	return nil
}

// limited reads at most left bytes and fails with a *MemberError past them.
type limited struct {
	r    io.Reader
	left int64
	read int64
	raw  string
	lim  Limits
}

func (l *limited) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells "exactly at the limit" from "over it".
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, &MemberError{Member: l.raw, TooLarge: true,
				Reason: fmt.Sprintf("is over the limit (%d bytes a file, %d in all)", l.lim.MaxItemBytes, l.lim.MaxTotal)}
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	l.read += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("%w: %s: %v", ErrNotArchive, l.raw, err)
	}
	return n, err
}

// cleanMember turns a member's name into a clean relative path, refusing
// absolute names, drive letters, ".." and control characters (never
// rewriting them silently); skip is true for entries a batch ignores.
func cleanMember(raw string) (name string, skip bool, err error) {
	bad := func(reason string) (string, bool, error) { return "", false, &MemberError{Member: raw, Reason: reason} }
	if strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return bad("has a control character in its name")
	}
	n := strings.ReplaceAll(raw, `\`, "/")
	if strings.HasPrefix(n, "/") || (len(n) >= 2 && n[1] == ':') {
		return bad("has an absolute name")
	}
	if len(n) > 1024 {
		return bad("has a name over 1024 bytes")
	}
	var parts []string
	for _, p := range strings.Split(n, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return bad(`has ".." in its name`)
		}
		parts = append(parts, p)
	}
	name = path.Join(parts...)
	if name == "" || parts[0] == "__MACOSX" || path.Base(name) == ".DS_Store" {
		return name, true, nil
	}
	return name, false, nil
}
