package inference

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

func TestCORSPreflightAndHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodOptions, "/predict", nil)
	req.Header.Set("Origin", "null") // a page opened from disk
	req.Header.Set("Access-Control-Request-Method", "POST")
	require.True(t, cors(rec, req, http.MethodPost))
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))
	require.Contains(t, rec.Header().Get("Access-Control-Allow-Headers"), "Authorization")
	require.Contains(t, rec.Header().Get("Access-Control-Allow-Methods"), "POST")

	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodPost, "/predict", nil)
	req.Header.Set("Origin", "https://example.org")
	require.False(t, cors(rec, req, http.MethodPost), "the real request goes on to auth and predict")
	require.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))

	rec = httptest.NewRecorder()
	require.False(t, cors(rec, httptest.NewRequest(http.MethodOptions, "/predict", nil), http.MethodPost),
		"without Origin it is not a CORS request: OPTIONS stays a 405")
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
}

// TestCORSThroughServer checks what a browser does for the jQuery client: a
// preflight, then the POST, both answered with CORS headers.
func TestCORSThroughServer(t *testing.T) {
	ts := startServer(t, codeDir(t, modesAlgorithm), spec.Image, spec.Image, nil)
	ts.waitReady(t)
	req, err := http.NewRequest(http.MethodOptions, ts.URL+"/predict", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "null")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	status, _, _ := ts.do(t, req)
	require.Equal(t, http.StatusNoContent, status)

	req, err = http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(pngBytes(t, testImage(8, 8, 3))))
	require.NoError(t, err)
	req.Header.Set("Origin", "null")
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := ts.Client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "*", res.Header.Get("Access-Control-Allow-Origin"))
}
