package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/workflows"

	"github.com/algocloud/algocloud/activities/actdef"
)

// setCode puts code revision rev (its listing under key, when set) in the
// fake workflow's state.
func (e *env) setCode(id string, code *actdef.CodeInfo) {
	e.wf.mu.Lock()
	defer e.wf.mu.Unlock()
	st := e.wf.states[id]
	st.Code = code
	st.Step = workflows.StepCodeFetched
	e.wf.states[id] = st
}

// The listing and files come from the blob store; revisions from before it,
// a vanished copy, binaries and unknown paths each get their own 4xx.
// (TestCodeFilesAndEditKeepFetchedFiles walks the same over a real worker.)
func TestCodeListingAndFiles(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	base := "/api/v1/deployments/" + id + "/code"
	requireError(t, e.do(http.MethodGet, base, "tokA", nil), http.StatusNotFound, "no_code")

	e.setCode(id, &actdef.CodeInfo{Revision: 1, Source: "git"})
	m := requireError(t, e.do(http.MethodGet, base, "tokA", nil), http.StatusConflict, "code_not_kept")
	require.Contains(t, m["message"], "fetch the code again")

	e.setCode(id, &actdef.CodeInfo{Revision: 2, Source: "git", FilesKey: "code/" + id + "/2/files.json"})
	requireError(t, e.do(http.MethodGet, base, "tokA", nil), http.StatusConflict, "code_not_kept")

	main := "class AAI: pass\n"
	l, err := json.Marshal(actdef.CodeFiles{Revision: 2, Files: []actdef.CodeFile{
		{Path: "aai_main.py", Size: int64(len(main)), Text: true, Content: &main},
		{Path: "big.txt", Size: 300 << 10, Text: true},
		{Path: "models/w.bin", Size: 3},
	}})
	require.NoError(t, err)
	require.NoError(t, e.blobs.Put(context.Background(), "code/"+id+"/2/files.json", strings.NewReader(string(l)), -1))
	w := e.do(http.MethodGet, base, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.JSONEq(t, `{"revision":2,"source":"git","generated_main":false,"files":[
		{"path":"aai_main.py","size":16,"text":true,"viewable":true},
		{"path":"big.txt","size":307200,"text":true,"viewable":false},
		{"path":"models/w.bin","size":3,"text":false,"viewable":false}]}`, w.Body.String())

	w = e.do(http.MethodGet, base+"/file?path=aai_main.py", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, main, w.Body.String())
	require.Equal(t, "2", w.Header().Get("X-Code-Revision"))
	require.True(t, strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain"))
	m = requireError(t, e.do(http.MethodGet, base+"/file?path=big.txt", "tokA", nil), http.StatusUnprocessableEntity, "file_not_viewable")
	require.Contains(t, m["message"], "over")
	m = requireError(t, e.do(http.MethodGet, base+"/file?path=models/w.bin", "tokA", nil), http.StatusUnprocessableEntity, "file_not_viewable")
	require.Contains(t, m["message"], "not text")
	requireError(t, e.do(http.MethodGet, base+"/file?path=nope.py", "tokA", nil), http.StatusNotFound, "file_not_found")
	requireError(t, e.do(http.MethodGet, base+"/file", "tokA", nil), http.StatusBadRequest, "invalid_path")
	requireError(t, e.do(http.MethodGet, base+"/file?path=../x", "tokA", nil), http.StatusBadRequest, "invalid_path")
	// Another user's deployment does not exist for them.
	require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, base, "tokB", nil).Code)
	require.Equal(t, http.StatusNotFound, e.do(http.MethodGet, base+"/file?path=aai_main.py", "tokB", nil).Code)
}

// An edit names the revision it was made from; the API sends the state's
// CodeInfo of it as the base, refuses a stale one with 409 code_changed, and
// names the field of a malformed edit.
func TestFetchCodeEdit(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	post := func(parts ...part) map[string]any {
		body, ct := multipartBody(t, parts...)
		w := e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/fetch_code", "tokA", body, "Content-Type", ct)
		if w.Code == http.StatusOK {
			return nil
		}
		m := jsonOf(t, w)
		m["status"] = w.Code
		return m
	}
	m := post(part{field: "base_revision", body: "1"}, part{"files", "aai_main.py", "x = 1\n"})
	require.Equal(t, http.StatusConflict, m["status"])
	require.Equal(t, "no_code", m["code"])

	current := &actdef.CodeInfo{Revision: 3, Source: "git", GitURL: "https://example.com/a.git", Commit: "abc", Files: []string{"m.bin"}}
	e.setCode(id, current)
	m = post(part{field: "base_revision", body: "2"}, part{"files", "aai_main.py", "x = 1\n"})
	require.Equal(t, http.StatusConflict, m["status"])
	require.Equal(t, "code_changed", m["code"])
	require.EqualValues(t, 3, m["current_revision"])
	for _, bad := range [][]part{
		{{field: "base_revision", body: "zero"}, {"files", "aai_main.py", "x"}},
		{{field: "base_revision", body: "3"}},
		{{field: "base_revision", body: "3"}, {field: "git_url", body: "https://example.com/a.git"}, {"files", "aai_main.py", "x"}},
	} {
		m = post(bad...)
		require.Equal(t, http.StatusBadRequest, m["status"], "%v", m)
		require.Equal(t, "invalid_code_source", m["code"])
		require.NotEmpty(t, m["fields"])
	}
	require.Zero(t, e.wf.callCount(), "no refused edit reached the workflow")

	var seen string
	e.wf.onUpdate = func(_, _ string, arg any, st workflows.State) (workflows.State, error) {
		r := arg.(workflows.FetchCodeRequest)
		require.Empty(t, r.GitURL)
		require.Nil(t, r.Archive)
		require.Len(t, r.Files, 1)
		rc, err := e.blobs.Get(context.Background(), r.Files[0].Key)
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		seen = r.Files[0].Name + ":" + string(b)
		return st, nil
	}
	require.Nil(t, post(part{field: "base_revision", body: "3"}, part{"files", "aai_main.py", "x = 2\n"}))
	r := e.wf.lastCall(t).Arg.(workflows.FetchCodeRequest)
	require.Equal(t, *current, r.Edit.Base, "the base is the state's revision 3, Git metadata included")
	require.Equal(t, "aai_main.py:x = 2\n", seen)
}
