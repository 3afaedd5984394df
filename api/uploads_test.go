package api

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/workflows"
)

// part is one multipart part; a file part when filename is set.
type part struct {
	field, filename, body string
}

// multipartBody builds a form the way curl -F does, keeping filenames raw.
func multipartBody(t *testing.T, parts ...part) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := fmt.Sprintf(`form-data; name=%q`, p.field)
		if p.filename != "" {
			cd += fmt.Sprintf(`; filename=%q`, p.filename)
			h.Set("Content-Type", "application/octet-stream")
		}
		h.Set("Content-Disposition", cd)
		w, err := mw.CreatePart(h)
		require.NoError(t, err)
		_, err = io.WriteString(w, p.body)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return &b, mw.FormDataContentType()
}

func zipBytes(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create("aai_main.py")
	require.NoError(t, err)
	_, err = io.WriteString(w, "class AlgoClass: pass\n")
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.String()
}

// filesUnder lists the regular files below dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	}))
	return out
}

func TestFetchCodeMultipartStagesUploads(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	archive := zipBytes(t)
	seen := map[string]string{} // name -> staged content, read while the step runs
	e.wf.onUpdate = func(_, update string, arg any, st workflows.State) (workflows.State, error) {
		require.Equal(t, workflows.UpdateFetchCode, update)
		r := arg.(workflows.FetchCodeRequest)
		require.Empty(t, r.GitURL)
		require.NotNil(t, r.Archive)
		for _, f := range append(r.Files, *r.Archive) {
			// A key, not a path: the worker need not share the API's disk.
			require.Empty(t, f.Path)
			parts := strings.Split(f.Key, "/")
			require.Len(t, parts, 4, "uploads/<id>/<random>/<name>: %s", f.Key)
			require.Equal(t, []string{"uploads", id}, parts[:2], f.Key)
			require.Regexp(t, `^[0-9a-f]{32}$`, parts[2])
			rc, err := e.blobs.Get(context.Background(), f.Key)
			require.NoError(t, err)
			b, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			seen[f.Name] = string(b)
		}
		st.Step = workflows.StepCodeFetched
		return st, nil
	}
	body, ct := multipartBody(t,
		part{"archive", "my code.zip", archive},
		part{"files", "models/net.onnx", "ONNX weights"},
		part{"files", "labels.txt", "cat\ndog\n"},
	)
	w := e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/fetch_code", "tokA", body, "Content-Type", ct)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, map[string]string{"my_code.zip": archive, "models/net.onnx": "ONNX weights", "labels.txt": "cat\ndog\n"}, seen)
	r := e.wf.lastCall(t).Arg.(workflows.FetchCodeRequest)
	require.Equal(t, "net.onnx", path.Base(r.Files[0].Key), "the key's name is the sanitised base name")
	require.Equal(t, "my_code.zip", path.Base(r.Archive.Key))
	require.Empty(t, filesUnder(t, e.uploads), "a finished step's uploads are removed")
}

func TestFetchCodeGitWithExtraFiles(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	body, ct := multipartBody(t, part{field: "git_url", body: "https://example.com/algo.git"}, part{field: "ref", body: "main"},
		part{"files", "model.pt", "weights"})
	e.wf.onUpdate = func(_, _ string, arg any, st workflows.State) (workflows.State, error) { return st, nil }
	w := e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/fetch_code", "tokA", body, "Content-Type", ct)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	r := e.wf.lastCall(t).Arg.(workflows.FetchCodeRequest)
	require.Equal(t, "https://example.com/algo.git", r.GitURL)
	require.Equal(t, "main", r.Ref)
	require.Nil(t, r.Archive)
	require.Len(t, r.Files, 1)
}

func TestFetchCodeJSON(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	path := "/api/v1/deployments/" + id + "/steps/fetch_code"
	w := e.do(http.MethodPost, path, "tokA", map[string]any{"git_url": "https://example.com/a.git", "ref": "v1"})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, workflows.FetchCodeRequest{GitURL: "https://example.com/a.git", Ref: "v1"}, e.wf.lastCall(t).Arg)

	m := requireError(t, e.do(http.MethodPost, path, "tokA", map[string]any{"ref": "v1"}), http.StatusBadRequest, "invalid_code_source")
	require.Equal(t, []string{"git_url"}, fieldNames(m))
	m = requireError(t, e.do(http.MethodPost, path, "tokA", map[string]any{"git_url": "x", "archive": "/etc/passwd"}), http.StatusBadRequest, "unknown_field")
	require.Equal(t, []string{"archive"}, fieldNames(m))
}

func TestFetchCodeRefusesUnsafeNames(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	outside := filepath.Dir(e.uploads)
	before := filesUnder(t, outside)
	for _, name := range []string{"../../x", "../x", "a/../../x", "/etc/passwd", `..\..\x`, "a//b", "./a", ".git/hooks/post-checkout", "C:/x"} {
		body, ct := multipartBody(t, part{"archive", "code.zip", zipBytes(t)}, part{"files", "ok.bin", "fine"}, part{"files", name, "evil"})
		w := e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/fetch_code", "tokA", body, "Content-Type", ct)
		m := requireError(t, w, http.StatusBadRequest, "invalid_file_name")
		require.Equal(t, []string{"files"}, fieldNames(m), name)
	}
	require.Equal(t, 0, e.wf.callCount())
	require.Empty(t, filesUnder(t, e.uploads), "refused uploads leave nothing staged")
	require.Equal(t, before, filesUnder(t, outside), "nothing was written outside the upload folder")
}

func TestFetchCodeMultipartErrors(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	path := "/api/v1/deployments/" + id + "/steps/fetch_code"
	send := func(parts ...part) map[string]any {
		body, ct := multipartBody(t, parts...)
		w := e.do(http.MethodPost, path, "tokA", body, "Content-Type", ct)
		require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
		return jsonOf(t, w)
	}
	require.Equal(t, "invalid_archive", send(part{"archive", "code.zip", "not a zip at all"})["code"])
	require.Equal(t, "invalid_code_source", send(part{"files", "a.bin", "x"})["code"])
	require.Equal(t, "invalid_code_source", send(part{"archive", "c.zip", zipBytes(t)}, part{field: "git_url", body: "https://x/y.git"})["code"])
	require.Equal(t, "invalid_code_source", send(part{"archive", "c.zip", zipBytes(t)}, part{"archive", "d.zip", zipBytes(t)})["code"])
	m := send(part{"archive", "c.zip", zipBytes(t)}, part{"model", "m.bin", "x"})
	require.Equal(t, "unknown_field", m["code"])
	require.Equal(t, []string{"model"}, fieldNames(m))
	require.Equal(t, 0, e.wf.callCount())
	require.Empty(t, filesUnder(t, e.uploads))
}

func TestFetchCodeUploadTooLarge(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxUploadBytes = 4 << 10 })
	id := e.create("tokA", "edges")
	body, ct := multipartBody(t, part{"archive", "code.zip", zipBytes(t)}, part{"files", "big.bin", strings.Repeat("x", 16<<10)})
	raw, err := io.ReadAll(body)
	require.NoError(t, err)
	path := "/api/v1/deployments/" + id + "/steps/fetch_code"

	// Declared too large: refused before reading.
	requireError(t, e.do(http.MethodPost, path, "tokA", raw, "Content-Type", ct), http.StatusRequestEntityTooLarge, "body_too_large")
	// Not declared (chunked): refused when the limit is crossed.
	requireError(t, e.do(http.MethodPost, path, "tokA", io.MultiReader(bytes.NewReader(raw)), "Content-Type", ct), http.StatusRequestEntityTooLarge, "body_too_large")
	require.Equal(t, 0, e.wf.callCount())
	require.Empty(t, filesUnder(t, e.uploads))
}

func TestFetchCodeRejectedRemovesUploads(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.wf.onUpdate = func(_, _ string, _ any, st workflows.State) (workflows.State, error) {
		return st, rejected("provision the server before fetching code", "configured", "draft")
	}
	body, ct := multipartBody(t, part{"archive", "code.zip", zipBytes(t)})
	w := e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/fetch_code", "tokA", body, "Content-Type", ct)
	requireError(t, w, http.StatusConflict, "step_rejected")
	require.Empty(t, filesUnder(t, e.uploads))
}

func TestValidRelPath(t *testing.T) {
	for _, ok := range []string{"a", "models/net.onnx", "a/b/c.txt", ".env", "aai_main.py", "x..y"} {
		require.NoError(t, validRelPath(ok), ok)
	}
	for _, bad := range []string{"", "/a", "..", "../a", "a/..", "a/./b", "a//b", "a/", ".git", "sub/.GIT/x", `a\b`, "a\nb", strings.Repeat("a", 300)} {
		require.Error(t, validRelPath(bad), bad)
	}
	require.Equal(t, "my_code.zip", safeDiskName("my code.zip"))
	require.Equal(t, "upload", safeDiskName(".."))
	require.Equal(t, "x", safeDiskName("..x"))
	require.Len(t, safeDiskName(strings.Repeat("a", 500)), 100)
}
