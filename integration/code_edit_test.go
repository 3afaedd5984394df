package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/workflows"
)

// editMain is an aai_main.py whose answer proves which files it found: the
// model's SHA-256 and the notes file's text, read from its own folder.
const editMain = `import hashlib, os

HERE = os.path.dirname(os.path.abspath(__file__))


class AAI:
    def __init__(self):
        with open(os.path.join(HERE, "models", "weights.bin"), "rb") as f:
            self.sha = hashlib.sha256(f.read()).hexdigest()
        with open(os.path.join(HERE, "notes.txt")) as f:
            self.notes = f.read()

    def predict(self, x):
        return {"model_sha256": self.sha, "notes": self.notes, "version": VERSION}

    def testing_input_data(self):
        import numpy as np
        return np.zeros((4, 4, 3), dtype=np.uint8)
`

// codeRepo makes a Git repository holding its own aai_main.py (version v),
// a binary model and a notes file.
func codeRepo(t *testing.T, model []byte) (repo, main string) {
	t.Helper()
	src := t.TempDir()
	main = "VERSION = \"repo\"\n" + editMain
	require.NoError(t, os.MkdirAll(filepath.Join(src, "models"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "models", "weights.bin"), model, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "notes.txt"), []byte("the author's notes\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "aai_main.py"), []byte(main), 0o644))
	return gitRepo(t, src), main
}

// saveEdit posts an edit of base: the files given replace its own.
func saveEdit(c *client, id string, base int, files map[string]string) resp {
	c.T.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	require.NoError(c.T, w.WriteField("base_revision", strconv.Itoa(base)))
	for name, content := range files {
		fw, err := w.CreateFormFile("files", name)
		require.NoError(c.T, err)
		_, _ = fw.Write([]byte(content))
	}
	require.NoError(c.T, w.Close())
	req, err := http.NewRequest(http.MethodPost, c.Base+"/api/v1/deployments/"+id+"/steps/fetch_code", &buf)
	require.NoError(c.T, err)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return c.Send(req)
}

// testOutputJSON runs install and Test Code and decodes the test's output.
func testOutputJSON(t *testing.T, c *client, id string) map[string]any {
	t.Helper()
	for _, step := range []string{"install_requirements", "test"} {
		r := c.Step(id, step, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", step, r.Raw)
	}
	r := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/test/output", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	var out map[string]any
	require.NoError(t, json.Unmarshal(r.Raw, &out), string(r.Raw))
	return out
}

// Issue 8 item 7: the fetched repository's own aai_main.py and its other
// files can be read over REST, and saving an edit makes a new revision that
// keeps every other file (the model byte for byte: Test Code's predict reads
// it); an edit of a stale revision is 409, and another user sees 404.
func TestCodeFilesAndEditKeepFetchedFiles(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	model := append([]byte{0, 0xff, 0x10, 0x80}, bytes.Repeat([]byte("weights"), 50000)...)
	sum := sha256.Sum256(model)
	repo, main := codeRepo(t, model)

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Edit", "api_name": "edit", "input": "image", "output": "json"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	code := "/api/v1/deployments/" + id + "/code"
	r = c.Do(http.MethodGet, code, nil)
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Raw))
	require.Equal(t, "no_code", r.Str("code"))

	require.Equal(t, http.StatusOK, c.Step(id, "provision", nil).Status)
	r = c.Step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	out := testOutputJSON(t, c, id)
	require.Equal(t, "repo", out["version"])
	require.Equal(t, hex.EncodeToString(sum[:]), out["model_sha256"])

	// The listing: every file with its size; the model is listed, not shown.
	r = c.Do(http.MethodGet, code, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	var listing struct {
		Revision      int  `json:"revision"`
		GeneratedMain bool `json:"generated_main"`
		Files         []struct {
			Path     string `json:"path"`
			Size     int64  `json:"size"`
			Viewable bool   `json:"viewable"`
		} `json:"files"`
	}
	require.NoError(t, json.Unmarshal(r.Raw, &listing))
	require.Equal(t, 1, listing.Revision)
	require.False(t, listing.GeneratedMain)
	byPath := map[string]int64{}
	for _, f := range listing.Files {
		byPath[f.Path] = f.Size
		require.Equal(t, f.Path != "models/weights.bin", f.Viewable, f.Path)
	}
	require.Equal(t, map[string]int64{"aai_main.py": int64(len(main)), "models/weights.bin": int64(len(model)), "notes.txt": 19}, byPath)

	// aai_main.py is the repository's, not the skeleton.
	file := func(cl *client, p string) resp {
		return cl.Do(http.MethodGet, code+"/file?path="+url.QueryEscape(p), nil)
	}
	r = file(c, "aai_main.py")
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Equal(t, main, string(r.Raw))
	r = file(c, "models/weights.bin")
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Equal(t, "file_not_viewable", r.Str("code"))
	r = file(c, "missing.py")
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Raw))
	require.Equal(t, "file_not_found", r.Str("code"))
	r = file(c, "../etc/passwd")
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Raw))

	// Another user: 404, for the listing, a file and an edit alike.
	other, err := platform.CreateToken(t.Context(), "sqlite://"+filepath.Join(filepath.Dir(p.UploadDir()), "algocloud.db"), "mallory")
	require.NoError(t, err)
	m := newClient(t, p, other)
	require.Equal(t, http.StatusNotFound, m.Do(http.MethodGet, code, nil).Status)
	require.Equal(t, http.StatusNotFound, file(m, "aai_main.py").Status)
	require.Equal(t, http.StatusNotFound, saveEdit(m, id, 1, map[string]string{"aai_main.py": "x = 1\n"}).Status)

	// Save an edit: revision 2 keeps the model and the notes.
	edited := "VERSION = \"edited\"\n" + editMain
	r = saveEdit(c, id, 1, map[string]string{"aai_main.py": edited})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Equal(t, "edit", r.Str("state", "code", "source"))
	require.Equal(t, http.StatusOK, file(c, "aai_main.py").Status)
	require.Equal(t, edited, string(file(c, "aai_main.py").Raw))
	out = testOutputJSON(t, c, id)
	require.Equal(t, "edited", out["version"])
	require.Equal(t, hex.EncodeToString(sum[:]), out["model_sha256"], "the model is kept byte for byte")
	require.Equal(t, "the author's notes\n", out["notes"])

	// An edit of revision 1, now stale, is refused: it would undo revision 2.
	r = saveEdit(c, id, 1, map[string]string{"aai_main.py": "VERSION = 1\n"})
	require.Equal(t, http.StatusConflict, r.Status, string(r.Raw))
	require.Equal(t, "code_changed", r.Str("code"))
	// Bad edits name the field.
	r = saveEdit(c, id, 2, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), `"field":"files"`)
	r = saveEdit(c, id, 2, map[string]string{".git/config": "x"})
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Raw))
	r = c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Equal(t, float64(2), r.Body["state"].(map[string]any)["code"].(map[string]any)["revision"])

	// The history, with an edit in it, replays; ALGOCLOUD_UPDATE_HISTORY=1
	// keeps it in the workflows package's replay corpus.
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil).Status)
	// Decoded with the platform's key: the corpus is kept decoded.
	hist := decodedHistory(t, p, fetchHistory(t, p.Client, workflows.WorkflowID(id)))
	js, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	if os.Getenv("ALGOCLOUD_UPDATE_HISTORY") == "1" {
		path := filepath.Join(repoRoot(t), "workflows", "testdata", "histories", "code-edit-after.json")
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, js, 0o644))
	}
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflow(workflows.Deployment)
	h, err := sdkclient.HistoryFromJSON(bytes.NewReader(js), sdkclient.HistoryJSONOptions{})
	require.NoError(t, err)
	require.NoError(t, replayer.ReplayWorkflowHistory(nil, h))
}
