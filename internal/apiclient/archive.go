package apiclient

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// SkippedDirs are folders ZipDir leaves out wherever they are.
var SkippedDirs = map[string]bool{".git": true, "__pycache__": true}

// ZipStats says what ZipDir packed.
type ZipStats struct {
	Files int
	Bytes int64
	// Skipped lists what was left out besides SkippedDirs: symbolic links and
	// other files that are not regular (the platform refuses links).
	Skipped []string
}

// ZipDir writes a .zip of dir's files to w, with paths relative to dir (so
// aai_main.py sits at the archive's root), leaving out SkippedDirs and
// anything that is not a regular file or folder.
func ZipDir(dir string, w io.Writer) (ZipStats, error) {
	var st ZipStats
	zw := zip.NewWriter(w)
	root, err := filepath.Abs(dir)
	if err != nil {
		return st, err
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir() && SkippedDirs[d.Name()]:
			return fs.SkipDir
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			st.Skipped = append(st.Skipped, name)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		h.Name, h.Method = name, zip.Deflate
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		n, err := io.Copy(fw, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("zip %s: %w", name, err)
		}
		st.Files++
		st.Bytes += n
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("zip %s: %w", dir, err)
	}
	if st.Files == 0 {
		return st, errors.New("zip " + dir + ": no files")
	}
	return st, zw.Close()
}
