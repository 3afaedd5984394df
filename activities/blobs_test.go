package activities

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = w.Write([]byte(content))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// FetchCode reads uploads from the blob store by key (the API's disk is not
// needed), and still reads a legacy path under UploadDir from old histories.
func TestFetchCodeFromBlobs(t *testing.T) {
	ctx := context.Background()
	// Private copies go to the temporary folder: watch it.
	tmp := filepath.Join(t.TempDir(), "tmp")
	require.NoError(t, os.Mkdir(tmp, 0o700))
	t.Setenv("TMPDIR", tmp)
	store, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
	require.NoError(t, err)
	legacyDir := t.TempDir()
	a := &Activities{Blobs: store, UploadDir: legacyDir}
	sp := spec.Spec{Environment: spec.EnvPython, Input: spec.Image, Output: spec.Image}
	code := zipOf(t, map[string]string{MainFile: "class AlgoClass: pass\n", RequirementsFile: "numpy\n"})
	require.NoError(t, store.Put(ctx, "uploads/dep1/r1/code.zip", bytes.NewReader(code), int64(len(code))))
	require.NoError(t, store.Put(ctx, "uploads/dep1/r2/net.onnx", strings.NewReader("weights"), -1))
	fetch := func(dep string, src actdef.CodeSource, rev int) (actdef.CodeInfo, error) {
		return a.FetchCode(ctx, actdef.FetchCodeInput{DeploymentID: dep, Server: compute.Server{Workdir: t.TempDir()}, Spec: sp, Source: src, Revision: rev})
	}

	info, err := fetch("dep1", actdef.CodeSource{
		Archive: &actdef.UploadedFile{Key: "uploads/dep1/r1/code.zip", Name: "code.zip"},
		Files:   []actdef.UploadedFile{{Key: "uploads/dep1/r2/net.onnx", Name: "models/net.onnx"}},
	}, 1)
	require.NoError(t, err)
	require.Equal(t, "upload", info.Source)
	require.Equal(t, []string{"models/net.onnx"}, info.Files)
	require.False(t, info.GeneratedMain)
	b, err := os.ReadFile(filepath.Join(info.Dir, "models", "net.onnx"))
	require.NoError(t, err)
	require.Equal(t, "weights", string(b))
	b, err = os.ReadFile(filepath.Join(info.Dir, MainFile))
	require.NoError(t, err)
	require.Equal(t, "class AlgoClass: pass\n", string(b))
	// The private copies are gone.
	ents, err := os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, ents)

	// A legacy path (histories from before the blob store).
	legacy := filepath.Join(legacyDir, "dep1", "abc", "code.zip")
	require.NoError(t, os.MkdirAll(filepath.Dir(legacy), 0o750))
	require.NoError(t, os.WriteFile(legacy, code, 0o640))
	info, err = fetch("dep1", actdef.CodeSource{Archive: &actdef.UploadedFile{Path: legacy, Name: "code.zip"}}, 2)
	require.NoError(t, err)
	require.Equal(t, "upload", info.Source)

	nonRetryableErr := func(err error) {
		t.Helper()
		require.Error(t, err)
		var ae *temporal.ApplicationError
		require.True(t, errors.As(err, &ae), "%v", err)
		require.True(t, ae.NonRetryable(), "%v", err)
	}
	// Another deployment's key, an escaping key and a missing blob are refused for good.
	_, err = fetch("dep2", actdef.CodeSource{Archive: &actdef.UploadedFile{Key: "uploads/dep1/r1/code.zip", Name: "code.zip"}}, 3)
	nonRetryableErr(err)
	require.Contains(t, err.Error(), "not this deployment's")
	_, err = fetch("dep1", actdef.CodeSource{Archive: &actdef.UploadedFile{Key: "uploads/dep1/../dep2/x.zip", Name: "x.zip"}}, 4)
	nonRetryableErr(err)
	_, err = fetch("dep1", actdef.CodeSource{Archive: &actdef.UploadedFile{Key: "uploads/dep1/r9/gone.zip", Name: "gone.zip"}}, 5)
	nonRetryableErr(err)
	require.Contains(t, err.Error(), "upload missing")
	// A legacy path outside UploadDir too.
	_, err = fetch("dep1", actdef.CodeSource{Archive: &actdef.UploadedFile{Path: "/etc/passwd", Name: "p"}}, 6)
	nonRetryableErr(err)

	// DeleteBlobs removes the deployment's uploads and test outputs, only
	// them, and succeeds again.
	key, err := a.putTestOutput(ctx, "dep1", 1, "image/png", []byte("\x89PNG"))
	require.NoError(t, err)
	require.Equal(t, "tests/dep1/1/output.png", key)
	require.NoError(t, store.Put(ctx, "uploads/dep10/r/x", strings.NewReader("x"), 1))
	require.NoError(t, a.DeleteBlobs(ctx, "dep1"))
	require.NoError(t, a.DeleteBlobs(ctx, "dep1"))
	for _, k := range []string{"uploads/dep1/r1/code.zip", "uploads/dep1/r2/net.onnx", key} {
		_, err := store.Get(ctx, k)
		require.ErrorIs(t, err, blobs.ErrNotFound, k)
	}
	rc, err := store.Get(ctx, "uploads/dep10/r/x")
	require.NoError(t, err)
	rc.Close()
}

// slowBlobs is a real blob store whose Delete takes a while, as an S3 prefix
// with many test outputs does.
type slowBlobs struct {
	blobs.Store
	delay time.Duration
}

func (s slowBlobs) Delete(ctx context.Context, prefix string) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Delete(ctx, prefix)
}

// DeleteBlobs heartbeats while it works: Delete's workflow gives it a
// heartbeat timeout, so a worker killed mid-way is noticed in seconds (it had
// none, and a lost attempt held the deployment `deleting` for 5 minutes).
func TestDeleteBlobsHeartbeats(t *testing.T) {
	defer func(p time.Duration) { heartbeatPeriod = p }(heartbeatPeriod)
	heartbeatPeriod = 10 * time.Millisecond
	dir, err := blobs.NewDir(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, dir.Put(ctx, "uploads/dep1/r1/code.zip", strings.NewReader("zip"), 3))
	a := &Activities{Blobs: slowBlobs{Store: dir, delay: 100 * time.Millisecond}}

	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	var beats atomic.Int32
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) { beats.Add(1) })
	env.RegisterActivity(a)
	_, err = env.ExecuteActivity(a.DeleteBlobs, "dep1")
	require.NoError(t, err)
	require.Positive(t, beats.Load(), "DeleteBlobs did not heartbeat")
	_, err = dir.Get(ctx, "uploads/dep1/r1/code.zip")
	require.ErrorIs(t, err, blobs.ErrNotFound)
}
