package web

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestPagesAndAssetsAreServed(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="/ui/assets/app.js"`},
		{"/ui", "text/html; charset=utf-8", "<main"},
		{"/ui/home", "text/html; charset=utf-8", "<main"},
		{"/ui/deployments/abc/test", "text/html; charset=utf-8", "<main"},
		{"/ui/assets/app.js", "text/javascript; charset=utf-8", "Integrate Algorithm into API"},
		{"/ui/assets/zip.js", "text/javascript; charset=utf-8", "crc32"},
		{"/ui/assets/style.css", "text/css; charset=utf-8", ":root"},
		{"/ui/assets/favicon.svg", "image/svg+xml", "<svg"},
		{"/favicon.ico", "image/svg+xml", "<svg"},
		{"/ui/options.json", "application/json", `"pairs"`},
	} {
		w := get(t, h, http.MethodGet, tc.path)
		require.Equal(t, http.StatusOK, w.Code, tc.path)
		require.Equal(t, tc.ctype, w.Header().Get("Content-Type"), tc.path)
		require.Contains(t, w.Body.String(), tc.contains, tc.path)
		require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"), tc.path)
		require.Contains(t, w.Header().Get("Content-Security-Policy"), "default-src 'self'", tc.path)
	}
	head := get(t, h, http.MethodHead, "/ui/assets/app.js")
	require.Equal(t, http.StatusOK, head.Code)
	require.Empty(t, head.Body.String())
}

func TestUnknownAndUnsafePathsAreRefused(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/ui/assets/nope.js", "/ui/assets/../index.html", "/ui/assets/", "/elsewhere", "/ui/assets//app.js"} {
		require.Equal(t, http.StatusNotFound, get(t, h, http.MethodGet, p).Code, p)
	}
	w := get(t, h, http.MethodPost, "/ui/home")
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
	require.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
}

// TestNothingLoadsFromElsewhere fails when an embedded file names another
// host: no CDN, no web fonts, no remote images. The SVG namespace is the one
// URL allowed: it is a name that nothing fetches.
func TestNothingLoadsFromElsewhere(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s'"` + "`" + `)]*`)
	allowed := map[string]bool{"http://www.w3.org/2000/svg": true}
	n := 0
	require.NoError(t, fs.WalkDir(Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(Assets(), p)
		require.NoError(t, err)
		for _, m := range url.FindAllString(string(b), -1) {
			if allowed[m] {
				continue
			}
			t.Errorf("%s names another host: %s", p, m)
		}
		for _, bad := range []string{"@import", "url(http", "<link rel=\"preconnect\"", "fonts.googleapis"} {
			require.NotContains(t, string(b), bad, p)
		}
		return nil
	}))
	require.GreaterOrEqual(t, n, 5)
}

// TestScriptsAreNotInline: the policy forbids inline scripts and styles, so
// the document must not have any.
func TestScriptsAreNotInline(t *testing.T) {
	b, err := fs.ReadFile(Assets(), "index.html")
	require.NoError(t, err)
	html := string(b)
	require.Regexp(t, `<script src="/ui/assets/app.js" defer></script>`, html)
	require.NotRegexp(t, `<script>|<script [^>]*>[^<]`, html)
	require.NotContains(t, html, "<style")
	require.NotContains(t, html, " style=")
	require.NotContains(t, html, " onclick=")
}

func TestOptionsFollowSpec(t *testing.T) {
	var o PageOptions
	w := get(t, Handler(), http.MethodGet, "/ui/options.json")
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &o))
	require.Len(t, o.Pairs, len(spec.SupportedPairs))
	for _, p := range o.Pairs {
		require.True(t, spec.SupportedPairs[spec.Pair{In: p.In, Out: p.Out}], "%v", p)
	}
	require.Equal(t, Pair{spec.Image, spec.Image}, o.Pairs[0], "image APIs first")
	require.Equal(t, spec.InstanceTypes, o.InstanceTypes)
	require.Len(t, o.Regions, len(spec.Regions))
	for _, r := range o.Regions {
		require.Equal(t, spec.Regions[r.Code], r.Name)
	}
	require.Equal(t, []string{spec.EnvPython, spec.EnvONNX}, o.Environments)
	// onnx serves two of the pairs; python every one (not listed).
	require.Equal(t, map[string][]Pair{spec.EnvONNX: {{spec.Image, spec.Image}, {spec.Image, spec.JSON}}}, o.EnvironmentPairs)
	require.Equal(t, spec.MaxThreads, o.MaxThreads)
	// The defaults the pages pick are offered.
	require.Contains(t, o.InstanceTypes[spec.CPU], "t3.small")
	require.Contains(t, o.InstanceTypes[spec.GPU], "g4dn.xlarge")
	require.Contains(t, spec.Regions, "us-east-1")
}

// TestPageTitlesFollowTheWalkthrough: the names users know.
func TestPageTitlesFollowTheWalkthrough(t *testing.T) {
	b, err := fs.ReadFile(Assets(), "assets/app.js")
	require.NoError(t, err)
	for _, title := range []string{
		"Select Data Type, Environment Type", "Select Server, Naming, Dependencies", "Code Repo Integration",
		"Integrate Algorithm into API", "Test Your Code", "Add More Dependencies", "Using the Algorithm",
		"Complete Deployment", "Home", "Deploy a new algorithm", "To Server Configuration", "Interface Your Algorithm",
		"Update Requirements", "Test Code",
	} {
		require.True(t, strings.Contains(string(b), "'"+title+"'"), "missing %q", title)
	}
}

func TestDomainOption(t *testing.T) {
	var o PageOptions
	require.NoError(t, json.Unmarshal(get(t, Handler(), http.MethodGet, "/ui/options.json").Body.Bytes(), &o))
	require.Equal(t, DefaultDomain, o.Domain)
	require.NoError(t, json.Unmarshal(get(t, Handler(WithDomain("example.org")), http.MethodGet, "/ui/options.json").Body.Bytes(), &o))
	require.Equal(t, "example.org", o.Domain)
}
