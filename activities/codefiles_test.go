package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

// An edit makes a new revision from the base's folder with only the edited
// files replaced (models and every other file kept byte for byte), and each
// revision's listing lands in the blob store with the text of small text
// files only.
func TestFetchCodeEditKeepsFiles(t *testing.T) {
	ctx := context.Background()
	store, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
	require.NoError(t, err)
	a := &Activities{Blobs: store}
	sp := spec.Spec{Environment: spec.EnvPython, Input: spec.Image, Output: spec.Image}
	model := append([]byte{0, 1, 2, 0xff}, bytes.Repeat([]byte{7}, actdef.MaxShownFile)...)
	big := strings.Repeat("x", actdef.MaxShownFile+1)
	code := zipOf(t, map[string]string{MainFile: "class AlgoClass: pass\n", "lib/util.py": "X = 1\n", "big.txt": big})
	require.NoError(t, store.Put(ctx, "uploads/dep1/r1/code.zip", bytes.NewReader(code), int64(len(code))))
	require.NoError(t, store.Put(ctx, "uploads/dep1/r2/model.bin", bytes.NewReader(model), int64(len(model))))
	require.NoError(t, store.Put(ctx, "uploads/dep1/r3/aai_main.py", strings.NewReader("class AlgoClass:\n    edited = True\n"), -1))
	srv := compute.Server{Workdir: t.TempDir()}
	fetch := func(src actdef.CodeSource, rev int) (actdef.CodeInfo, error) {
		return a.FetchCode(ctx, actdef.FetchCodeInput{DeploymentID: "dep1", Server: srv, Spec: sp, Source: src, Revision: rev})
	}
	listing := func(key string) actdef.CodeFiles {
		t.Helper()
		rc, err := store.Get(ctx, key)
		require.NoError(t, err)
		defer rc.Close()
		var l actdef.CodeFiles
		require.NoError(t, json.NewDecoder(rc).Decode(&l))
		return l
	}

	base, err := fetch(actdef.CodeSource{
		Archive: &actdef.UploadedFile{Key: "uploads/dep1/r1/code.zip", Name: "code.zip"},
		Files:   []actdef.UploadedFile{{Key: "uploads/dep1/r2/model.bin", Name: "models/model.bin"}},
	}, 1)
	require.NoError(t, err)
	require.Equal(t, "code/dep1/1/files.json", base.FilesKey)
	l := listing(base.FilesKey)
	require.Equal(t, 1, l.Revision)
	paths := map[string]actdef.CodeFile{}
	for _, f := range l.Files {
		paths[f.Path] = f
	}
	require.Len(t, paths, 4)
	require.Equal(t, "class AlgoClass: pass\n", *paths[MainFile].Content)
	require.Equal(t, "X = 1\n", *paths["lib/util.py"].Content)
	require.False(t, paths["models/model.bin"].Text)
	require.Nil(t, paths["models/model.bin"].Content)
	require.Equal(t, int64(len(model)), paths["models/model.bin"].Size)
	require.True(t, paths["big.txt"].Text)
	require.Nil(t, paths["big.txt"].Content, "over MaxShownFile: listed only")

	edit, err := fetch(actdef.CodeSource{
		Edit:  &actdef.CodeEdit{Base: base},
		Files: []actdef.UploadedFile{{Key: "uploads/dep1/r3/aai_main.py", Name: MainFile}},
	}, 2)
	require.NoError(t, err)
	require.Equal(t, "edit", edit.Source)
	require.Equal(t, 1, edit.BaseRevision)
	require.Equal(t, []string{MainFile}, edit.Edited)
	require.Equal(t, []string{"models/model.bin"}, edit.Files)
	require.NotEqual(t, base.Dir, edit.Dir)
	for name, want := range map[string][]byte{
		MainFile: []byte("class AlgoClass:\n    edited = True\n"), "models/model.bin": model, "lib/util.py": []byte("X = 1\n"), "big.txt": []byte(big),
	} {
		got, err := os.ReadFile(filepath.Join(edit.Dir, name))
		require.NoError(t, err, name)
		require.Equal(t, want, got, name)
	}
	// The base revision is untouched.
	got, err := os.ReadFile(filepath.Join(base.Dir, MainFile))
	require.NoError(t, err)
	require.Equal(t, "class AlgoClass: pass\n", string(got))
	require.Equal(t, "code/dep1/2/files.json", edit.FilesKey)
	l = listing(edit.FilesKey)
	require.Len(t, l.Files, 4)

	// An edit of a revision no longer on the disk fails for good.
	_, err = fetch(actdef.CodeSource{Edit: &actdef.CodeEdit{Base: actdef.CodeInfo{Revision: 7}}}, 3)
	require.ErrorContains(t, err, "no longer on the server")

	// Delete removes the listings too.
	require.NoError(t, a.DeleteBlobs(ctx, "dep1"))
	_, err = store.Get(ctx, edit.FilesKey)
	require.ErrorIs(t, err, blobs.ErrNotFound)
}

// A generated skeleton stays marked as generated through an edit of other
// files, and stops being so once the edit changes it.
func TestFetchCodeEditGeneratedMain(t *testing.T) {
	ctx := context.Background()
	store, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
	require.NoError(t, err)
	a := &Activities{Blobs: store}
	sp := spec.Spec{Environment: spec.EnvPython, Input: spec.Image, Output: spec.Image}
	code := zipOf(t, map[string]string{"README.md": "hi\n"})
	require.NoError(t, store.Put(ctx, "uploads/d/r1/code.zip", bytes.NewReader(code), int64(len(code))))
	require.NoError(t, store.Put(ctx, "uploads/d/r2/README.md", strings.NewReader("new\n"), -1))
	require.NoError(t, store.Put(ctx, "uploads/d/r3/aai_main.py", strings.NewReader("class AlgoClass: pass\n"), -1))
	srv := compute.Server{Workdir: t.TempDir()}
	fetch := func(src actdef.CodeSource, rev int) actdef.CodeInfo {
		info, err := a.FetchCode(ctx, actdef.FetchCodeInput{DeploymentID: "d", Server: srv, Spec: sp, Source: src, Revision: rev})
		require.NoError(t, err)
		return info
	}
	r1 := fetch(actdef.CodeSource{Archive: &actdef.UploadedFile{Key: "uploads/d/r1/code.zip", Name: "code.zip"}}, 1)
	require.True(t, r1.GeneratedMain)
	r2 := fetch(actdef.CodeSource{Edit: &actdef.CodeEdit{Base: r1}, Files: []actdef.UploadedFile{{Key: "uploads/d/r2/README.md", Name: "README.md"}}}, 2)
	require.True(t, r2.GeneratedMain)
	r3 := fetch(actdef.CodeSource{Edit: &actdef.CodeEdit{Base: r2}, Files: []actdef.UploadedFile{{Key: "uploads/d/r3/aai_main.py", Name: MainFile}}}, 3)
	require.False(t, r3.GeneratedMain)
	rc, err := store.Get(ctx, r3.FilesKey)
	require.NoError(t, err)
	b, _ := io.ReadAll(rc)
	rc.Close()
	require.Contains(t, string(b), "class AlgoClass: pass")
}

// Files of control bytes (a tiny model) are binary, not text to show.
func TestIsText(t *testing.T) {
	require.False(t, isText([]byte{1, 2, 3}))
	require.False(t, isText([]byte{0xff, 'a'}))
	require.False(t, isText([]byte("a\x00b")))
	require.True(t, isText([]byte("def f():\n\treturn 'é'\r\n\f\x1b[0m")))
}

// Item 9: a local server is called a local process, with the EC2 instance it
// stands in for; an EC2 server is called by its instance.
func TestProvisionedText(t *testing.T) {
	sp := spec.Spec{Compute: spec.GPU, InstanceType: "g4dn.xlarge", Region: "us-east-1"}
	got := ProvisionedText(compute.Server{Provider: "local", ID: "d1", Host: "127.0.0.1"}, sp)
	require.Equal(t, "server d1 ready: a local process on this machine at 127.0.0.1 (on EC2 it would be a gpu g4dn.xlarge in us-east-1)", got)
	got = ProvisionedText(compute.Server{Provider: "ec2", ID: "i-1", Host: "203.0.113.7"}, sp)
	require.Equal(t, "server i-1 ready: gpu g4dn.xlarge in us-east-1 at 203.0.113.7", got)
}
