package source

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSafeJoin(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "real"), 0o755))
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "link")))

	ok := map[string]string{
		"a.py":           filepath.Join(root, "a.py"),
		"real/b.py":      filepath.Join(root, "real", "b.py"),
		"new/deep/c.bin": filepath.Join(root, "new", "deep", "c.bin"),
		"a/../b":         filepath.Join(root, "b"),
		".":              root,
		"":               root,
	}
	for rel, want := range ok {
		got, err := SafeJoin(root, rel)
		require.NoError(t, err, rel)
		require.Equal(t, want, got, rel)
	}
	for _, rel := range []string{"../x", "..", "a/../../x", "/etc/passwd", "link/x", "link", "a\x00b"} {
		_, err := SafeJoin(root, rel)
		require.ErrorIs(t, err, ErrUnsafePath, rel)
	}
}

func TestAddFile(t *testing.T) {
	root, dest := sandbox(t)
	require.NoError(t, AddFile(dest, "models/resnet/weights.bin", strings.NewReader("v1"), 100))
	require.Equal(t, "v1", readFile(t, filepath.Join(dest, "models", "resnet", "weights.bin")))

	// Replacing is whole-file.
	require.NoError(t, AddFile(dest, `models\resnet\weights.bin`, strings.NewReader("v2"), 100))
	require.Equal(t, "v2", readFile(t, filepath.Join(dest, "models", "resnet", "weights.bin")))

	// Over the limit: error, the old file stays, no temporary file left.
	err := AddFile(dest, "models/resnet/weights.bin", bytes.NewReader(make([]byte, 101)), 100)
	require.ErrorIs(t, err, ErrTooLarge)
	require.Equal(t, "v2", readFile(t, filepath.Join(dest, "models", "resnet", "weights.bin")))
	requireOnly(t, filepath.Join(dest, "models", "resnet"), "weights.bin")
	// Exactly the limit is fine.
	require.NoError(t, AddFile(dest, "exact.bin", bytes.NewReader(make([]byte, 100)), 100))

	outside := filepath.Join(root, "outside")
	require.NoError(t, os.MkdirAll(outside, 0o755))
	require.NoError(t, os.Symlink(outside, filepath.Join(dest, "link")))
	for _, name := range []string{"../evil", "/abs/evil", "a/../../evil", ".hidden", "a/.git/config", ".git/hooks/pre-commit", "", "dir/", "link/evil", "bad\nname", "C:/x"} {
		err := AddFile(dest, name, strings.NewReader("x"), 100)
		require.ErrorIs(t, err, ErrUnsafePath, "%q", name)
	}
	requireOnly(t, outside)
	requireOnly(t, root, "code", "outside")
}
