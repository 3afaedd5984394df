package web

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"sort"
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
		{"/", "text/html; charset=utf-8", `<script type="module" src="/ui/assets/app.js"`},
		{"/ui", "text/html; charset=utf-8", "<main"},
		{"/ui/home", "text/html; charset=utf-8", "<main"},
		{"/ui/deployments/abc/test", "text/html; charset=utf-8", "<main"},
		{"/ui/assets/app.js", "text/javascript; charset=utf-8", "setPages"},
		{"/ui/assets/catalog.js", "text/javascript; charset=utf-8", "Integrate Algorithm into API"},
		{"/ui/assets/pages/integrate.js", "text/javascript; charset=utf-8", "export async function pageIntegrate"},
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
	require.Regexp(t, `<script type="module" src="/ui/assets/app.js"></script>`, html)
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

// TestPageTitlesFollowTheWalkthrough: the names users know, somewhere in
// the wizard's modules.
func TestPageTitlesFollowTheWalkthrough(t *testing.T) {
	var b []byte
	for _, src := range scripts(t) {
		b = append(b, src...)
	}
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

// scripts reads every .js file of the assets, by its path under Assets().
func scripts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, fs.WalkDir(Assets(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".js" {
			return err
		}
		b, err := fs.ReadFile(Assets(), p)
		require.NoError(t, err)
		out[p] = string(b)
		return nil
	}))
	return out
}

// moduleImport finds the specifiers of static imports and re-exports
// (import ... from '...', import '...', export ... from '...') and of
// dynamic import('...').
var moduleImport = regexp.MustCompile(`(?m)(?:^\s*(?:import|export)\b[^'"]*?\bfrom\s*|^\s*import\s*|\bimport\s*\(\s*)['"]([^'"]+)['"]`)

// TestModulesResolve: the wizard is native ES modules loaded from this
// origin, with no build step, so a module that names a file that is not
// embedded (a typo, a file renamed) only fails in the browser. Every
// specifier must be a relative path to an embedded .js file, every module
// must be reached from index.html's entry (nothing dead is shipped), and no
// script comes from another host or a bare package name (nothing resolves
// those without a bundler).
func TestModulesResolve(t *testing.T) {
	all := scripts(t)
	require.Contains(t, all, "assets/app.js")
	index, err := fs.ReadFile(Assets(), "index.html")
	require.NoError(t, err)
	tags := regexp.MustCompile(`<script\b[^>]*>`).FindAllString(string(index), -1)
	require.Equal(t, []string{`<script type="module" src="/ui/assets/app.js">`}, tags, "one module entry")

	reached := map[string]bool{}
	queue := []string{"assets/app.js"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if reached[p] {
			continue
		}
		reached[p] = true
		src, ok := all[p]
		require.True(t, ok, "%s is imported but not embedded", p)
		matches := moduleImport.FindAllStringSubmatch(src, -1)
		for _, m := range matches {
			spec := m[1]
			require.False(t, strings.Contains(spec, "://") || strings.HasPrefix(spec, "//"), "%s imports %q from another host", p, spec)
			require.True(t, strings.HasPrefix(spec, "./") || strings.HasPrefix(spec, "../"),
				"%s imports %q: only relative paths resolve without a bundler", p, spec)
			require.Equal(t, ".js", path.Ext(spec), "%s imports %q: the browser needs the file's own name", p, spec)
			target := path.Join(path.Dir(p), spec)
			require.True(t, strings.HasPrefix(target, "assets/"), "%s imports %q outside /ui/assets/", p, spec)
			_, ok := all[target]
			require.True(t, ok, "%s imports %q: %s is not embedded", p, spec, target)
			queue = append(queue, target)
		}
	}
	for p := range all {
		require.True(t, reached[p], "%s is embedded but no module imports it", p)
	}
	require.GreaterOrEqual(t, len(reached), 10, "the wizard is split into modules")

	// No script of any kind from elsewhere: not a module, not a classic
	// script, not a worker.
	remote := regexp.MustCompile(`(?i)(<script[^>]*\bsrc\s*=\s*["']?(https?:)?//|\bimport\s*\(\s*["'](https?:)?//|\bfrom\s*["'](https?:)?//|new\s+(Shared)?Worker\s*\(\s*["'](https?:)?//|importScripts\s*\()`)
	files := map[string]string{"index.html": string(index)}
	for p, src := range all {
		files[p] = src
	}
	for p, src := range files {
		require.Empty(t, remote.FindAllString(src, -1), "%s loads a script from another host", p)
	}
}

// TestOneEditor: the line-gutter editor is one component (editor.js) that
// both Integrate pages use; a second copy of it in a page fails here.
func TestOneEditor(t *testing.T) {
	var withGutter, users []string
	for p, src := range scripts(t) {
		if strings.Contains(src, "class: 'gutter'") {
			withGutter = append(withGutter, p)
		}
		if strings.Contains(src, "lineEditor(") && p != "assets/editor.js" {
			users = append(users, p)
		}
	}
	require.Equal(t, []string{"assets/editor.js"}, withGutter, "the gutter is drawn in editor.js only")
	sort.Strings(users)
	require.Equal(t, []string{"assets/pages/integrate-onnx.js", "assets/pages/integrate.js"}, users)
}

// maxFunctionLines is the longest a top-level function of the wizard may
// be: a page longer than a screen is a page nobody reviews.
const maxFunctionLines = 80

// TestFunctionsStayShort fails when a top-level function of a module (one
// that starts at the line's start and ends at the first line that is only
// "}") grows past maxFunctionLines; the pages are made of small named
// functions. Classes are not functions here: their methods are.
func TestFunctionsStayShort(t *testing.T) {
	start := regexp.MustCompile(`^(?:export )?(?:async )?function\*? ?([\w$]+)`)
	n := 0
	for p, src := range scripts(t) {
		name, from := "", 0
		for i, line := range strings.Split(src, "\n") {
			if m := start.FindStringSubmatch(line); m != nil {
				name, from = m[1], i
				n++
				continue
			}
			if name != "" && line == "}" {
				require.LessOrEqual(t, i-from+1, maxFunctionLines, "%s: %s is %d lines", p, name, i-from+1)
				name = ""
			}
		}
		require.Empty(t, name, "%s: %s has no closing line", p, name)
	}
	require.Greater(t, n, 100, "the functions were found")
}
