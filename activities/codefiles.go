package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/algocloud/algocloud/activities/source"

	"github.com/algocloud/algocloud/activities/actdef"
)

// Bounds of a revision's listing: the API and the web page show the text of
// small text files only; larger or binary files (models) are listed.
const (
	// maxShownTotal bounds all the kept contents together.
	maxShownTotal = 8 << 20
	// maxListed bounds the files listed.
	maxListed = 10000
)

// codeFilesKey is where revision rev's listing goes.
func codeFilesKey(deploymentID string, rev int) string {
	return actdef.CodePrefix + "/" + deploymentID + "/" + strconv.Itoa(rev) + "/files.json"
}

// listCode walks a code folder (without .git; links and special files are
// skipped) and keeps the text of its small text files.
func listCode(dir string, rev int) (actdef.CodeFiles, error) {
	out := actdef.CodeFiles{Revision: rev, Files: []actdef.CodeFile{}}
	var kept int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" && p != dir {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if len(out.Files) >= maxListed {
			out.Truncated = true
			return filepath.SkipAll
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f := actdef.CodeFile{Path: filepath.ToSlash(rel), Size: fi.Size()}
		if fi.Size() <= actdef.MaxShownFile {
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("read %s: %w", rel, err)
			}
			f.Text = isText(b)
			if f.Text && kept+int64(len(b)) <= maxShownTotal {
				s := string(b)
				f.Content = &s
				kept += int64(len(b))
			}
		} else {
			f.Text = sniffText(p)
		}
		out.Files = append(out.Files, f)
		return nil
	})
	if err != nil {
		return actdef.CodeFiles{}, fmt.Errorf("list code folder: %w", err)
	}
	sort.Slice(out.Files, func(i, j int) bool { return out.Files[i].Path < out.Files[j].Path })
	return out, nil
}

// sniffText tells a large text file from a binary by its first 8 KiB.
func sniffText(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 8<<10)
	n, _ := io.ReadFull(f, b)
	b = b[:n]
	// A multi-byte rune cut at the end is still text.
	for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	return isText(b)
}

// isText is true for UTF-8 without the control bytes text files do not
// hold (tab, newlines, form feed and escape are text).
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	return !bytes.ContainsFunc(b, func(r rune) bool {
		return r < 0x20 && r != '\t' && r != '\n' && r != '\r' && r != '\f' && r != '\v' && r != 0x1b
	})
}

// putCodeFiles stores a revision's listing in the blob store; it returns the
// key, or "" when this worker has no blob store (the API then has nothing to
// show, and says so).
func (a *Activities) putCodeFiles(ctx context.Context, deploymentID, dir string, rev int) (string, error) {
	if a.Blobs == nil {
		return "", nil
	}
	files, err := listCode(dir, rev)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(files)
	if err != nil {
		return "", fmt.Errorf("encode code listing: %w", err)
	}
	key := codeFilesKey(deploymentID, rev)
	if err := a.Blobs.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return "", fmt.Errorf("store code listing: %w", err)
	}
	return key, nil
}

// copyCode copies revision folder src to dst (which must not exist) for an
// edit: every file, models included, with its mode; symlinks as links (the
// fetch that made src allowed them). .git is left out: the new revision is
// no checkout, and CodeInfo keeps the commit it came from.
func copyCode(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if d.Name() == ".git" && p != src {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(p, target)
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// editBase is the folder of the revision an edit starts from, which must
// still be on this worker's disk.
func editBase(workdir string, e *actdef.CodeEdit) (string, error) {
	if e.Base.Revision < 1 {
		return "", nonRetryable(actdef.BadInputErrorType, errors.New("an edit needs the revision it starts from"))
	}
	base := filepath.Join(workdir, "code", strconv.Itoa(e.Base.Revision))
	if _, err := source.SafeJoin(workdir, filepath.Join("code", strconv.Itoa(e.Base.Revision))); err != nil {
		return "", nonRetryable(actdef.BadInputErrorType, err)
	}
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		return "", nonRetryable(actdef.SourceFailedErrorType, fmt.Errorf("code revision %d is no longer on the server: fetch the code again", e.Base.Revision))
	}
	return base, nil
}
