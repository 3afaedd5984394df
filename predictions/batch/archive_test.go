package batch

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type entry struct {
	name, body, link string
	mode             fs.FileMode
}

func writeZip(t *testing.T, entries []entry) *os.File {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		require.NoError(t, err)
		body := e.body
		if e.link != "" {
			body = e.link
		}
		_, err = io.WriteString(w, body)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return tempFile(t, buf.Bytes())
}

func writeTarGz(t *testing.T, entries []entry) *os.File {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err := io.WriteString(tw, e.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return tempFile(t, buf.Bytes())
}

func tempFile(t *testing.T, b []byte) *os.File {
	p := filepath.Join(t.TempDir(), "a")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	f, err := os.Open(p)
	require.NoError(t, err)
	// Like the API's upload file: its offset is at the end.
	_, err = f.Seek(0, io.SeekEnd)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func readAll(f *os.File, lim Limits) (map[string]string, []string, error) {
	got := map[string]string{}
	var order []string
	err := ReadArchive(f, lim, func(m Member) error {
		b, err := io.ReadAll(m.R)
		if err != nil {
			return err
		}
		got[m.Name] = string(b)
		order = append(order, m.Name)
		return nil
	})
	return got, order, err
}

func TestReadArchiveFilesInOrder(t *testing.T) {
	entries := []entry{{name: "b.png", body: "B"}, {name: "dir/", mode: fs.ModeDir | 0o755}, {name: "dir/a.png", body: "AA"},
		{name: "__MACOSX/._a.png", body: "x"}, {name: "dir/.DS_Store", body: "x"}}
	for name, f := range map[string]*os.File{"zip": writeZip(t, entries), "tar.gz": writeTarGz(t, []entry{entries[0], entries[2], entries[3]})} {
		got, order, err := readAll(f, Limits{})
		require.NoError(t, err, name)
		require.Equal(t, map[string]string{"b.png": "B", "dir/a.png": "AA"}, got, name)
		require.Equal(t, []string{"b.png", "dir/a.png"}, order, name)
	}
}

func TestReadArchiveRefusesUnsafeMembers(t *testing.T) {
	cases := map[string]*os.File{
		"zip symlink":   writeZip(t, []entry{{name: "ok.png", body: "x"}, {name: "evil", link: "/etc/passwd", mode: fs.ModeSymlink | 0o777}}),
		"zip dotdot":    writeZip(t, []entry{{name: "../x", body: "x"}}),
		"zip absolute":  writeZip(t, []entry{{name: "/etc/x", body: "x"}}),
		"tar symlink":   writeTarGz(t, []entry{{name: "evil", link: "../../etc/passwd"}}),
		"tar dotdot":    writeTarGz(t, []entry{{name: "a/../../x", body: "x"}}),
		"tar backslash": writeTarGz(t, []entry{{name: `..\x`, body: "x"}}),
	}
	want := map[string]string{"zip symlink": "evil", "zip dotdot": "../x", "zip absolute": "/etc/x", "tar symlink": "evil",
		"tar dotdot": "a/../../x", "tar backslash": `..\x`}
	for name, f := range cases {
		_, _, err := readAll(f, Limits{})
		var me *MemberError
		require.True(t, errors.As(err, &me), "%s: %v", name, err)
		require.Equal(t, want[name], me.Member, name)
		require.False(t, me.TooLarge, name)
	}
}

func TestReadArchiveLimits(t *testing.T) {
	f := writeZip(t, []entry{{name: "a", body: "12345"}, {name: "b", body: "123456"}})
	_, _, err := readAll(f, Limits{MaxItemBytes: 5})
	var me *MemberError
	require.True(t, errors.As(err, &me), "%v", err)
	require.Equal(t, "b", me.Member)
	require.True(t, me.TooLarge)

	f = writeZip(t, []entry{{name: "a", body: "1"}, {name: "b", body: "2"}, {name: "c", body: "3"}})
	_, _, err = readAll(f, Limits{MaxItems: 2})
	require.True(t, errors.As(err, &me), "%v", err)
	require.Equal(t, "c", me.Member)
	require.True(t, me.TooLarge)

	f = writeTarGz(t, []entry{{name: "a", body: "1234"}, {name: "b", body: "1234"}})
	_, _, err = readAll(f, Limits{MaxTotal: 6})
	require.True(t, errors.As(err, &me), "%v", err)
	require.Equal(t, "b", me.Member)

	// A callback that reads nothing still has its member counted.
	f = writeZip(t, []entry{{name: "a", body: "123456"}})
	err = ReadArchive(f, Limits{MaxItemBytes: 5}, func(Member) error { return nil })
	require.True(t, errors.As(err, &me), "%v", err)

	_, _, err = readAll(tempFile(t, []byte("not an archive at all")), Limits{})
	require.ErrorIs(t, err, ErrNotArchive)
}

func zipReader(b []byte) (*zip.Reader, error) {
	return zip.NewReader(bytes.NewReader(b), int64(len(b)))
}
