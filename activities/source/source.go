// Package source fetches an algorithm's code into a server's folder: a Git
// clone (go-git) or an uploaded archive, plus extra files such as trained
// models. Everything that reaches the disk goes through SafeJoin, so a
// repository URL, an archive or a file name cannot write outside its folder
// or reach addresses the caller did not allow.
package source

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Errors callers branch on with errors.Is. Each is wrapped with what failed.
var (
	// ErrUnreachable: the repository does not exist, needs credentials, or its
	// host cannot be resolved or reached.
	ErrUnreachable = errors.New("repository unreachable")
	// ErrRefNotFound: the branch, tag or commit is not in the repository.
	ErrRefNotFound = errors.New("ref not found")
	// ErrForbiddenURL: the URL's scheme or address is not allowed.
	ErrForbiddenURL = errors.New("URL not allowed")
	// ErrBadArchive: the upload is corrupt or not a zip, tar or tar.gz archive.
	ErrBadArchive = errors.New("bad archive")
	// ErrUnsafePath: a name would escape its folder (absolute, "..", through a
	// symlink) or is a link, device or hidden name where none is allowed.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrTooLarge: a file, an archive's total size or its file count is over
	// the limit.
	ErrTooLarge = errors.New("too large")
)

// SafeJoin joins rel onto root and refuses a result outside root: rel must be
// relative, must not climb out with "..", must not hold a NUL byte, and no
// component of it that already exists under root may be a symlink (which
// could point anywhere). It returns the joined path; rel "." or "" gives root.
func SafeJoin(root, rel string) (string, error) {
	if strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("%w: %q holds a NUL byte", ErrUnsafePath, rel)
	}
	if filepath.IsAbs(rel) {
		return "", fmt.Errorf("%w: %q is absolute", ErrUnsafePath, rel)
	}
	clean := filepath.Clean(rel)
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%w: %q leaves its folder", ErrUnsafePath, rel)
	}
	if clean == "." {
		return root, nil
	}
	cur := root
	for _, part := range strings.Split(clean, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("check %q: %w", rel, err)
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return "", fmt.Errorf("%w: %q goes through a symlink", ErrUnsafePath, rel)
		}
	}
	return filepath.Join(root, clean), nil
}

// cleanName turns an archive entry or upload name into a clean relative
// slash-free path ("" for the root itself). Backslashes count as separators
// (zips made on Windows); absolute names, drive letters, ".." components and
// control characters are refused rather than silently rewritten.
func cleanName(name string) (string, error) {
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: %q holds a control character", ErrUnsafePath, name)
		}
	}
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || (len(n) >= 2 && n[1] == ':') {
		return "", fmt.Errorf("%w: %q is absolute", ErrUnsafePath, name)
	}
	var parts []string
	for _, p := range strings.Split(n, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: %q leaves its folder", ErrUnsafePath, name)
		}
		if len(p) > 255 {
			return "", fmt.Errorf("%w: a component of %q is longer than 255 bytes", ErrUnsafePath, name)
		}
		parts = append(parts, p)
	}
	if len(n) > 4096 {
		return "", fmt.Errorf("%w: name longer than 4096 bytes", ErrUnsafePath)
	}
	return filepath.Join(parts...), nil
}

// writeFileAtomic copies at most max bytes of r into a temporary file next to
// path and renames it over path, so readers never see half a file. More than
// max bytes is ErrTooLarge and leaves path untouched.
func writeFileAtomic(path string, r io.Reader, max int64, perm os.FileMode) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".upload-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	n, err := copyMax(f, r, max)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	return n, os.Rename(tmp, path)
}
