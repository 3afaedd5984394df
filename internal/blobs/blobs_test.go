package blobs_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/blobs/blobstest"
)

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a", "uploads/d1/abc/model.onnx", "tests/d/1/out.png"} {
		require.NoError(t, blobs.CheckKey(k), k)
	}
	for _, k := range []string{"", "/etc/passwd", "../x", "a/../../b", "a//b", "a/./b", "a/", `a\b`, "a\x00b", strings.Repeat("x", 901)} {
		require.Error(t, blobs.CheckKey(k), "%q", k)
	}
}

func TestDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "blobs")
	d, err := blobs.NewDir(root)
	require.NoError(t, err)
	// A file outside the root that an escaping key would reach.
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(root), "secret"), []byte("s"), 0o600))
	blobstest.Exercise(t, d)
	_, err = d.Get(context.Background(), "../secret")
	require.Error(t, err)
	// Blobs are private files, and no temporary files are left.
	require.NoError(t, d.Put(context.Background(), "x/y", strings.NewReader("z"), 1))
	fi, err := os.Stat(filepath.Join(root, "x", "y"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	ents, err := os.ReadDir(filepath.Join(root, "x"))
	require.NoError(t, err)
	require.Len(t, ents, 1)
	// Deleting the last blob of a deployment drops its emptied folders.
	require.NoError(t, d.Delete(context.Background(), "x/y"))
	_, err = os.Stat(filepath.Join(root, "x"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(filepath.Join(root, "uploads", "d1"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestDirPutAfterDelete: Put remembers the folders it made; a folder
// removed since (Delete of the prefix) is made again, and in-memory bytes
// (the one-write path) and readers store the same blob.
func TestDirPutAfterDelete(t *testing.T) {
	ctx := context.Background()
	d, err := blobs.NewDir(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, d.Put(ctx, "batches/b1/out/0", bytes.NewReader([]byte("first")), 5))
	require.NoError(t, d.Delete(ctx, "batches/b1"))
	require.NoError(t, d.Put(ctx, "batches/b1/out/1", bytes.NewReader([]byte("second")), 6))
	require.NoError(t, d.Put(ctx, "batches/b1/out/2", strings.NewReader("third"), -1))
	for key, want := range map[string]string{"batches/b1/out/1": "second", "batches/b1/out/2": "third"} {
		rc, err := d.Get(ctx, key)
		require.NoError(t, err, key)
		b, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		require.Equal(t, want, string(b))
	}
	_, err = d.Get(ctx, "batches/b1/out/0")
	require.ErrorIs(t, err, blobs.ErrNotFound)
	// A size that does not match the bytes fails, and leaves no blob.
	require.Error(t, d.Put(ctx, "batches/b1/out/3", bytes.NewReader([]byte("four")), 5))
	_, err = d.Get(ctx, "batches/b1/out/3")
	require.ErrorIs(t, err, blobs.ErrNotFound)
}
