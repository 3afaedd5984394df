// Package blobstest is the contract every blobs.Store passes, for the tests
// of the stores (a folder, S3) in their own packages.
package blobstest

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/blobs"
)

// Exercise runs the same contract against any blobs.Store.
func Exercise(t *testing.T, s blobs.Store) {
	ctx := context.Background()
	// Unknown size (a request part) and known size.
	require.NoError(t, s.Put(ctx, "uploads/d1/r1/code.zip", io.MultiReader(strings.NewReader("hello "), strings.NewReader("world")), -1))
	require.NoError(t, s.Put(ctx, "uploads/d1/r2/model.onnx", bytes.NewReader([]byte{0, 1, 2, 3}), 4))
	require.NoError(t, s.Put(ctx, "uploads/d10/r1/other", strings.NewReader("keep"), 4))
	require.NoError(t, s.Put(ctx, "tests/d1/1/out.json", strings.NewReader(`{"a":1}`), 7))
	// A wrong size is refused.
	require.Error(t, s.Put(ctx, "uploads/d1/r3/short", strings.NewReader("abc"), 10))

	get := func(key string) string {
		t.Helper()
		rc, err := s.Get(ctx, key)
		require.NoError(t, err, key)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, "hello world", get("uploads/d1/r1/code.zip"))
	require.Equal(t, "\x00\x01\x02\x03", get("uploads/d1/r2/model.onnx"))
	require.Equal(t, `{"a":1}`, get("tests/d1/1/out.json"))
	// Replacing a blob.
	require.NoError(t, s.Put(ctx, "tests/d1/1/out.json", strings.NewReader(`{"a":2}`), -1))
	require.Equal(t, `{"a":2}`, get("tests/d1/1/out.json"))

	_, err := s.Get(ctx, "uploads/d1/r3/short")
	require.ErrorIs(t, err, blobs.ErrNotFound)
	_, err = s.Get(ctx, "uploads/nope")
	require.ErrorIs(t, err, blobs.ErrNotFound)
	for _, bad := range []string{"../escape", "/abs/path", "a/../../b"} {
		require.Error(t, s.Put(ctx, bad, strings.NewReader("x"), 1), bad)
		_, err := s.Get(ctx, bad)
		require.Error(t, err, bad)
		require.NotErrorIs(t, err, blobs.ErrNotFound, bad)
		require.Error(t, s.Delete(ctx, bad), bad)
	}

	// Delete takes a whole prefix (segment-wise: d10 stays), idempotently.
	require.NoError(t, s.Delete(ctx, "uploads/d1"))
	require.NoError(t, s.Delete(ctx, "uploads/d1"))
	require.NoError(t, s.Delete(ctx, "never/was"))
	_, err = s.Get(ctx, "uploads/d1/r1/code.zip")
	require.ErrorIs(t, err, blobs.ErrNotFound)
	_, err = s.Get(ctx, "uploads/d1/r2/model.onnx")
	require.ErrorIs(t, err, blobs.ErrNotFound)
	require.Equal(t, "keep", get("uploads/d10/r1/other"))
	require.Equal(t, `{"a":2}`, get("tests/d1/1/out.json"))
	// One key is a prefix too.
	require.NoError(t, s.Delete(ctx, "tests/d1/1/out.json"))
	_, err = s.Get(ctx, "tests/d1/1/out.json")
	require.ErrorIs(t, err, blobs.ErrNotFound)
}
