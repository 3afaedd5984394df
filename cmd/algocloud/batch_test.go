package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// A batch's INPUTS: files at the archive's root, a folder's files by their
// path in it, hidden files left out, links refused, clashes named.
func TestZipInputs(t *testing.T) {
	dir := t.TempDir()
	imgs := filepath.Join(dir, "imgs")
	require.NoError(t, os.MkdirAll(filepath.Join(imgs, "sub"), 0o755))
	for name, content := range map[string]string{"imgs/a.png": "A", "imgs/sub/b.png": "B", "imgs/.DS_Store": "x", "c.png": "C"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	var buf bytes.Buffer
	n, err := zipInputs([]string{imgs, filepath.Join(dir, "c.png")}, &buf)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	require.Equal(t, []string{"a.png", "c.png", "sub/b.png"}, names)

	_, err = zipInputs([]string{filepath.Join(imgs, "a.png"), imgs}, &bytes.Buffer{})
	require.ErrorContains(t, err, "would both be a.png")

	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(imgs, "link.png")))
	_, err = zipInputs([]string{imgs}, &bytes.Buffer{})
	require.ErrorContains(t, err, "links are refused")

	_, err = zipInputs([]string{t.TempDir()}, &bytes.Buffer{})
	require.ErrorContains(t, err, "no file")

	// One archive goes as it is.
	zipPath := filepath.Join(dir, "in.zip")
	require.NoError(t, os.WriteFile(zipPath, buf.Bytes(), 0o644))
	p, name, cleanup, err := batchArchive([]string{zipPath})
	require.NoError(t, err)
	cleanup()
	require.Equal(t, zipPath, p)
	require.Equal(t, "in.zip", name)
}

func TestReadURLs(t *testing.T) {
	f := filepath.Join(t.TempDir(), "urls.txt")
	require.NoError(t, os.WriteFile(f, []byte("# inputs\nhttps://a/1.png\n\n  http://b/2.png  \n"), 0o644))
	urls, err := readURLs(f)
	require.NoError(t, err)
	require.Equal(t, []string{"https://a/1.png", "http://b/2.png"}, urls)
	require.NoError(t, os.WriteFile(f, []byte("https://a/1.png\nftp://x\n"), 0o644))
	_, err = readURLs(f)
	require.ErrorContains(t, err, "line 2")
}

// The progress line: bar, counts, rate, ETA; off a terminal it is written
// when it changes, at most every 10 s, and always at the end.
func TestBatchProgress(t *testing.T) {
	eta := 8.0
	b := apiclient.Batch{Status: "running", Rate: 12.5, ETASeconds: &eta}
	b.Counts.Total, b.Counts.Done, b.Counts.Failed, b.Counts.Left = 200, 90, 10, 100
	line := progressLine(b)
	require.Contains(t, line, "[###############...............]  50%")
	require.Contains(t, line, "90 done, 10 failed, 100 left")
	require.Contains(t, line, "12.5/s")
	require.Contains(t, line, "ETA 8s")

	var out bytes.Buffer
	now := time.Unix(0, 0)
	p := &batchProgress{w: &out, now: func() time.Time { return now }}
	p.show(b)
	b.Counts.Done = 95
	p.show(b) // within 10 s: not written
	now = now.Add(11 * time.Second)
	p.show(b)
	b.Status, b.Counts.Done, b.Counts.Left = "succeeded", 190, 0
	p.show(b)
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	require.Len(t, lines, 3, out.String())
	require.NotContains(t, string(lines[2]), "ETA", "no ETA once it is over")
}
