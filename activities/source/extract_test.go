package source

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// entry is one archive member; link is a symlink or hard-link target.
type entry struct {
	name string
	body string
	mode int64
	kind byte // tar type flag; 0 means a regular file
	link string
}

func writeZip(t *testing.T, entries []entry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		switch {
		case e.kind == tar.TypeSymlink:
			h.SetMode(fs.ModeSymlink | 0o777)
			e.body = e.link
		case strings.HasSuffix(e.name, "/"):
			h.SetMode(fs.ModeDir | 0o755)
		case e.mode != 0:
			h.SetMode(fs.FileMode(e.mode))
		default:
			h.SetMode(0o644)
		}
		w, err := zw.CreateHeader(h)
		require.NoError(t, err)
		_, err = w.Write([]byte(e.body))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return writeTemp(t, "upload.zip", buf.Bytes())
}

func tarBytes(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.body)), Linkname: e.link, Format: tar.FormatPAX}
		if e.mode != 0 {
			h.Mode = e.mode
		}
		if e.kind == 0 && strings.HasSuffix(e.name, "/") {
			e.kind = tar.TypeDir
		}
		if e.kind != 0 {
			h.Typeflag = e.kind
			h.Size = 0
		}
		if e.kind == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "abc123"}, Format: tar.FormatPAX}
		}
		require.NoError(t, tw.WriteHeader(h))
		if h.Size > 0 {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	_, err := gw.Write(b)
	require.NoError(t, err)
	require.NoError(t, gw.Close())
	return buf.Bytes()
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

// sandbox returns dest inside a fresh folder; the folder must hold nothing
// but dest afterwards (no escapes, no leftovers).
func sandbox(t *testing.T) (root, dest string) {
	root = t.TempDir()
	return root, filepath.Join(root, "code")
}

func requireOnly(t *testing.T, root string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	require.ElementsMatch(t, names, got)
}

func TestExtract_FormatsAndStrip(t *testing.T) {
	files := []entry{
		{name: "repo-main/"},
		{name: "repo-main/aai_main.py", body: "print('hi')\n"},
		{name: "repo-main/models/model.bin", body: "weights"},
		{name: "repo-main/run.sh", body: "#!/bin/sh\n", mode: 0o755},
	}
	archives := map[string]string{
		"zip":    writeZip(t, append(files, entry{name: "__MACOSX/._aai_main.py", body: "junk"})),
		"tar":    writeTemp(t, "upload.bin", tarBytes(t, files)),
		"tar.gz": writeTemp(t, "upload.zip", gzipBytes(t, tarBytes(t, append([]entry{{kind: tar.TypeXGlobalHeader}}, files...)))), // misleading name
	}
	for kind, path := range archives {
		t.Run(kind, func(t *testing.T) {
			root, dest := sandbox(t)
			require.NoError(t, Extract(path, dest, Limits{}))
			require.Equal(t, "print('hi')\n", readFile(t, filepath.Join(dest, "aai_main.py")))
			require.Equal(t, "weights", readFile(t, filepath.Join(dest, "models", "model.bin")))
			st, err := os.Stat(filepath.Join(dest, "run.sh"))
			require.NoError(t, err)
			require.NotZero(t, st.Mode().Perm()&0o100, "exec bit kept")
			requireOnly(t, root, "code")
			requireOnly(t, dest, "aai_main.py", "models", "run.sh")
		})
	}
}

func TestExtract_NoStripWithSeveralTopLevelEntries(t *testing.T) {
	root, dest := sandbox(t)
	path := writeTemp(t, "u.tgz", gzipBytes(t, tarBytes(t, []entry{
		{name: "./"}, // tar -C dir -czf u.tgz .
		{name: "./aai_main.py", body: "a"},
		{name: "./lib/util.py", body: "b"},
	})))
	require.NoError(t, Extract(path, dest, Limits{}))
	require.Equal(t, "a", readFile(t, filepath.Join(dest, "aai_main.py")))
	require.Equal(t, "b", readFile(t, filepath.Join(dest, "lib", "util.py")))
	requireOnly(t, root, "code")
}

func TestExtract_MergesIntoExistingDest(t *testing.T) {
	root, dest := sandbox(t)
	outside := filepath.Join(root, "outside")
	require.NoError(t, os.MkdirAll(outside, 0o755))
	require.NoError(t, os.MkdirAll(dest, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dest, "aai_main.py"), []byte("old"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dest, "model.onnx"), []byte("kept"), 0o644))
	// A symlink where the archive has a folder is replaced, never followed.
	require.NoError(t, os.Symlink(outside, filepath.Join(dest, "lib")))

	path := writeZip(t, []entry{{name: "aai_main.py", body: "new"}, {name: "lib/x.py", body: "x"}})
	require.NoError(t, Extract(path, dest, Limits{}))
	require.Equal(t, "new", readFile(t, filepath.Join(dest, "aai_main.py")))
	require.Equal(t, "kept", readFile(t, filepath.Join(dest, "model.onnx")))
	require.Equal(t, "x", readFile(t, filepath.Join(dest, "lib", "x.py")))
	requireOnly(t, outside)
	requireOnly(t, root, "code", "outside")
}

func TestExtract_Malicious(t *testing.T) {
	bomb := strings.Repeat("\x00", 4<<20) // 4 MiB of zeros deflate to a few KiB
	cases := []struct {
		name    string
		archive func(t *testing.T) string
		lim     Limits
		want    error
	}{
		{"zip dot-dot", func(t *testing.T) string {
			return writeZip(t, []entry{{name: "ok.py", body: "x"}, {name: "../evil.py", body: "x"}})
		}, Limits{}, ErrUnsafePath},
		{"zip nested dot-dot", func(t *testing.T) string {
			return writeZip(t, []entry{{name: "a/../../evil.py", body: "x"}})
		}, Limits{}, ErrUnsafePath},
		{"zip backslash dot-dot", func(t *testing.T) string {
			return writeZip(t, []entry{{name: `..\evil.py`, body: "x"}})
		}, Limits{}, ErrUnsafePath},
		{"tar absolute", func(t *testing.T) string {
			return writeTemp(t, "a.tar", tarBytes(t, []entry{{name: "/tmp/evil.py", body: "x"}}))
		}, Limits{}, ErrUnsafePath},
		{"zip drive letter", func(t *testing.T) string {
			return writeZip(t, []entry{{name: "C:/evil.py", body: "x"}})
		}, Limits{}, ErrUnsafePath},
		{"tar symlink to /etc", func(t *testing.T) string {
			return writeTemp(t, "a.tar", tarBytes(t, []entry{{name: "etc", kind: tar.TypeSymlink, link: "/etc"}, {name: "etc/passwd", body: "x"}}))
		}, Limits{}, ErrUnsafePath},
		{"zip symlink", func(t *testing.T) string {
			return writeZip(t, []entry{{name: "etc", kind: tar.TypeSymlink, link: "/etc"}})
		}, Limits{}, ErrUnsafePath},
		{"tar hard link", func(t *testing.T) string {
			return writeTemp(t, "a.tar", tarBytes(t, []entry{{name: "passwd", kind: tar.TypeLink, link: "/etc/passwd"}}))
		}, Limits{}, ErrUnsafePath},
		{"tar device", func(t *testing.T) string {
			return writeTemp(t, "a.tar", tarBytes(t, []entry{{name: "null", kind: tar.TypeChar}}))
		}, Limits{}, ErrUnsafePath},
		{"tar fifo", func(t *testing.T) string {
			return writeTemp(t, "a.tar", tarBytes(t, []entry{{name: "pipe", kind: tar.TypeFifo}}))
		}, Limits{}, ErrUnsafePath},
		{"zip bomb over file limit", func(t *testing.T) string {
			return writeZip(t, []entry{{name: "bomb.bin", body: bomb}})
		}, Limits{MaxFileBytes: 1 << 20}, ErrTooLarge},
		{"tar.gz bomb over total limit", func(t *testing.T) string {
			return writeTemp(t, "b.tgz", gzipBytes(t, tarBytes(t, []entry{{name: "a", body: bomb}, {name: "b", body: bomb}})))
		}, Limits{MaxTotalBytes: 6 << 20}, ErrTooLarge},
		{"too many files", func(t *testing.T) string {
			var es []entry
			for i := range 20 {
				es = append(es, entry{name: strings.Repeat("f", i+1), body: "x"})
			}
			return writeZip(t, es)
		}, Limits{MaxFiles: 10}, ErrTooLarge},
		{"not an archive", func(t *testing.T) string {
			return writeTemp(t, "x.zip", []byte("just some text, not an archive at all"))
		}, Limits{}, ErrBadArchive},
		{"empty file", func(t *testing.T) string { return writeTemp(t, "x.zip", nil) }, Limits{}, ErrBadArchive},
		{"gzip of not-a-tar", func(t *testing.T) string {
			return writeTemp(t, "x.tgz", gzipBytes(t, bytes.Repeat([]byte("hello "), 200)))
		}, Limits{}, ErrBadArchive},
		{"truncated tar.gz", func(t *testing.T) string {
			b := gzipBytes(t, tarBytes(t, []entry{{name: "a.py", body: strings.Repeat("x", 10000)}}))
			return writeTemp(t, "x.tgz", b[:len(b)/2])
		}, Limits{}, ErrBadArchive},
		{"truncated zip", func(t *testing.T) string {
			p := writeZip(t, []entry{{name: "a.py", body: strings.Repeat("x", 10000)}})
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			return writeTemp(t, "x.zip", b[:len(b)-30])
		}, Limits{}, ErrBadArchive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, dest := sandbox(t)
			require.NoError(t, os.MkdirAll(dest, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dest, "before.txt"), []byte("untouched"), 0o644))
			err := Extract(tc.archive(t), dest, tc.lim)
			require.ErrorIs(t, err, tc.want)
			// Nothing escaped, nothing half-written into dest, no leftovers.
			requireOnly(t, root, "code")
			requireOnly(t, dest, "before.txt")
			_, err = os.Lstat("/tmp/evil.py")
			require.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

// v7Tar builds a pre-POSIX (V7) tar by hand: its regular files have the type
// flag NUL (tar.TypeRegA), which old tools wrote and tar.Writer no longer does.
func v7Tar(t *testing.T, name, body string) []byte {
	t.Helper()
	h := make([]byte, 512)
	copy(h[0:], name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", len(body)))
	copy(h[136:], "00000000000\x00")
	copy(h[148:], "        ") // the checksum counts its own field as spaces
	// The type flag: NUL, the deprecated tar.TypeRegA (written as 0 since
	// staticcheck flags the name; the old value is the point of the test).
	h[156] = 0
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	data := make([]byte, (len(body)+511)/512*512)
	copy(data, body)
	out := append(h, data...)
	return append(out, make([]byte, 1024)...) // two zero blocks end the archive
}

// Old archives' NUL-typed regular files (a gzipped V7 tar has no "ustar"
// magic to sniff, so the test gzips it) extract like any file (archive/tar
// reads them as tar.TypeReg, so the extractor need not name the deprecated flag).
func TestExtract_OldTypeRegAFiles(t *testing.T) {
	root, dest := sandbox(t)
	require.NoError(t, Extract(writeTemp(t, "old.tar.gz", gzipBytes(t, v7Tar(t, "aai_main.py", "print('old')\n"))), dest, Limits{}))
	require.Equal(t, "print('old')\n", readFile(t, filepath.Join(dest, "aai_main.py")))
	requireOnly(t, root, "code")
}
