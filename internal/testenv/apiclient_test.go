package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAPIClient runs the client against a real HTTP server that echoes what
// it got: the token, JSON bodies, multipart uploads and step paths arrive as
// the platform's API expects them, and answers come back whatever their
// status.
func TestAPIClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := map[string]any{"method": r.Method, "path": r.URL.Path, "auth": r.Header.Get("Authorization"),
			"ctype": r.Header.Get("Content-Type")}
		if r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/json" {
			var body any
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				body = "undecodable: " + err.Error()
			}
			got["body"] = body
		}
		if f, h, err := r.FormFile("archive"); err == nil {
			b, _ := io.ReadAll(f)
			got["file"] = h.Filename + ":" + string(b)
		}
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusOK
		if r.URL.Path == "/missing" {
			status = http.StatusNotFound
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"got": got})
	}))
	t.Cleanup(srv.Close)

	c := NewAPIClient(t, srv.URL, "ac_secret")
	r := c.Step("d1", "fetch_code", map[string]any{"git_url": "https://example.invalid/r.git"})
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "/api/v1/deployments/d1/steps/fetch_code", r.Str("got", "path"))
	require.Equal(t, "Bearer ac_secret", r.Str("got", "auth"))
	require.Equal(t, "application/json", r.Str("got", "ctype"))
	require.Equal(t, map[string]any{"git_url": "https://example.invalid/r.git"}, r.Body["got"].(map[string]any)["body"])
	require.Empty(t, r.Str("got", "path", "deeper"), "a path through a string is empty, not a panic")

	r = c.Do(http.MethodGet, "/missing", nil)
	require.Equal(t, http.StatusNotFound, r.Status)
	require.Empty(t, r.Str("got", "ctype"), "no body, no Content-Type")

	archive := filepath.Join(t.TempDir(), "code.zip")
	require.NoError(t, os.WriteFile(archive, []byte("zip bytes"), 0o600))
	r = c.Upload("/up", map[string][]string{"archive": {archive}})
	require.Equal(t, "code.zip:zip bytes", r.Str("got", "file"))

	anonymous := NewAPIClient(t, srv.URL, "")
	require.Empty(t, anonymous.Do(http.MethodGet, "/", nil).Str("got", "auth"))

	status, raw, err := TryAPI(srv.URL, "ac_secret", http.MethodDelete, "/api/v1/deployments/d1", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(raw), `"method":"DELETE"`)
	_, _, err = TryAPI("http://127.0.0.1:"+strconv.Itoa(FreePort(t)), "x", http.MethodGet, "/", nil)
	require.Error(t, err, "nobody listens: an error, not a failed test")
}
