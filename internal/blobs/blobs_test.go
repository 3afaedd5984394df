package blobs_test

import (
	"context"
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
