package templates

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// UpdateGolden reports -update to the external tests (clients_live_test.go),
// which cannot see this package's flag.
func UpdateGolden() bool { return *update }

// jqueryMarker replaces the inlined jQuery in the golden pages: 87 KB of
// minified code twice would drown every review of the page's own diff.
const jqueryMarker = "/* jquery-3.7.1.min.js inlined here */"

// goldenData is the deployment the golden files are rendered for.
func goldenData(in, out spec.IOType) ClientData {
	return ClientData{
		Name: "Otsu segmentation", APIName: "otsu-segmentation", Endpoint: "https://127.0.0.1:9443",
		Input: in, Output: out, CAURL: "http://127.0.0.1:8080/api/ca.pem", PlatformURL: "http://127.0.0.1:8080",
	}
}

// TestClientsGolden compares the clients with the files under
// clients/testdata: <in>_<out> for endpoints the platform's CA certifies, and
// <in>_<out>_acme for publicly trusted ones (no CA URL: the system's roots).
func TestClientsGolden(t *testing.T) {
	type variant struct {
		pair spec.Pair
		acme bool
	}
	var variants []variant
	for _, pair := range []spec.Pair{{In: spec.Image, Out: spec.Image}, {In: spec.Image, Out: spec.JSON}} {
		variants = append(variants, variant{pair, false}, variant{pair, true})
	}
	for _, vr := range variants {
		pair, name := vr.pair, vr.pair.String()
		if vr.acme {
			name += "/acme"
		}
		t.Run(name, func(t *testing.T) {
			d := goldenData(pair.In, pair.Out)
			dir := filepath.Join("clients", "testdata", string(pair.In)+"_"+string(pair.Out))
			if vr.acme {
				d.Endpoint, d.CAURL, d.PlatformURL = "https://otsu-segmentation.api.example.com", "", "https://algocloud.example.com"
				dir += "_acme"
			}
			got, err := Clients(d)
			require.NoError(t, err)
			require.ElementsMatch(t, ClientNames, keys(got))
			for _, name := range ClientNames {
				c := got[name]
				content := c.Content
				if name == ClientJQuery {
					require.Equal(t, 1, strings.Count(content, jqueryJS), "the page inlines jQuery once")
					content = strings.Replace(content, jqueryJS, jqueryMarker, 1)
				}
				golden := filepath.Join(dir, c.Filename)
				if *update {
					require.NoError(t, os.MkdirAll(dir, 0o755))
					require.NoError(t, os.WriteFile(golden, []byte(content), 0o644))
				}
				want, err := os.ReadFile(golden)
				require.NoError(t, err, "run go test ./templates -run TestClients -update to create the golden files")
				require.Equal(t, string(want), content, "%s changed: run go test ./templates -run TestClients -update and review the diff", golden)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestClientsEveryPair renders every API type, with and without a CA, and
// checks what holds for all of them: the Python parses, the shell script
// parses, the page loads nothing from elsewhere, no token is baked in.
func TestClientsEveryPair(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3: run scripts/setup.sh")
	}
	dir := t.TempDir()
	var pyFiles, shFiles []string
	for pair := range spec.SupportedPairs {
		for _, ca := range []string{"", "https://platform.example/api/ca.pem"} {
			d := goldenData(pair.In, pair.Out)
			d.CAURL = ca
			got, err := Clients(d)
			require.NoError(t, err, pair.String())
			prefix := filepath.Join(dir, string(pair.In)+"_"+string(pair.Out)+map[bool]string{true: "_ca", false: ""}[ca != ""])
			for _, name := range []string{ClientPython, ClientPythonExample} {
				f := prefix + "_" + got[name].Filename
				require.NoError(t, os.WriteFile(f, []byte(got[name].Content), 0o644))
				pyFiles = append(pyFiles, f)
			}
			f := prefix + "_predict.sh"
			require.NoError(t, os.WriteFile(f, []byte(got[ClientCurl].Content), 0o644))
			shFiles = append(shFiles, f)

			for name, c := range got {
				require.NotRegexp(t, `ep_[A-Za-z0-9_-]{8}`, c.Content, "%s %s: a token-like value is baked in", pair, name)
				require.Contains(t, c.Content, "127.0.0.1:9443", "%s %s: the endpoint is missing", pair, name)
				if ca == "" {
					require.NotContains(t, c.Content, "cacert", "%s %s", pair, name)
				} else if name != ClientJQuery && name != ClientOpenAPI { // openapi.json is the endpoint's own bytes: the listing's ca_url names the CA
					require.Contains(t, c.Content, ca, "%s %s: the CA URL is missing", pair, name)
				}
			}
			page := strings.Replace(got[ClientJQuery].Content, jqueryJS, "", 1)
			require.NotRegexp(t, regexp.MustCompile(`(?i)<(script|link|iframe|img)[^>]+(src|href)=`), page, "%s: the page loads something", pair)
			require.NotContains(t, page, "cdn", pair.String())
		}
	}
	code := "import ast, sys\nfor f in sys.argv[1:]:\n    ast.parse(open(f).read(), f)\n"
	out, err := exec.Command(py, append([]string{"-c", code}, pyFiles...)...).CombinedOutput()
	require.NoError(t, err, strings.TrimSpace(string(out)))
	for _, f := range shFiles {
		out, err := exec.Command("/bin/sh", "-n", f).CombinedOutput()
		require.NoError(t, err, "%s: %s", f, out)
	}
}

func TestClientsRefuseBadData(t *testing.T) {
	for name, mod := range map[string]func(*ClientData){
		"no endpoint":        func(d *ClientData) { d.Endpoint = "" },
		"not http":           func(d *ClientData) { d.Endpoint = "ftp://x.example" },
		"credentials":        func(d *ClientData) { d.Endpoint = "https://u:p@x.example" },
		"query":              func(d *ClientData) { d.Endpoint = "https://x.example/?a=1" },
		"bad type":           func(d *ClientData) { d.Input = "video" },
		"bad ca url":         func(d *ClientData) { d.CAURL = "file:///etc/passwd" },
		"ca file with slash": func(d *ClientData) { d.CAFile = "../ca.pem" },
		"ca file with space": func(d *ClientData) { d.CAFile = "my ca.pem" },
	} {
		t.Run(name, func(t *testing.T) {
			d := goldenData(spec.Image, spec.Image)
			mod(&d)
			_, err := Clients(d)
			require.ErrorIs(t, err, ErrBadClientData)
		})
	}
}

// TestClientsQuoteValues feeds hostile values through every client: each one
// must stay data in its language.
func TestClientsQuoteValues(t *testing.T) {
	d := goldenData(spec.Image, spec.JSON)
	d.Name = "Evil </script><script>alert(1)</script> \"\"\"' \\\n$(rm -rf /)\"\"\""
	d.Endpoint = "https://x.example/a'b\"c"
	got, err := Clients(d)
	require.NoError(t, err)
	require.NotContains(t, got[ClientJQuery].Content, "<script>alert(1)")
	require.NotContains(t, got[ClientCurl].Content, "\n$(rm")
	require.Contains(t, got[ClientCurl].Content, `'https://x.example/a%27b%22c/predict'`)
	require.Contains(t, got[ClientPython].Content, `ENDPOINT = "https://x.example/a%27b%22c"`)
	require.Equal(t, `'a'\''b'`, shQuote("a'b"))

	dir := t.TempDir()
	for _, name := range []string{ClientPython, ClientPythonExample, ClientCurl} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, got[name].Filename), []byte(got[name].Content), 0o644))
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		code := "import ast, sys\nfor f in sys.argv[1:]:\n    doc = ast.get_docstring(ast.parse(open(f).read(), f))\n    assert 'Evil' in doc and '$(rm' in doc, doc\n"
		out, err := exec.Command("/usr/bin/python3", "-c", code, filepath.Join(dir, "algocloud_client.py"), filepath.Join(dir, "example.py")).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	out, err := exec.Command("/bin/sh", "-n", filepath.Join(dir, "predict.sh")).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestClientPageScript has node check the syntax of the page's own script,
// where node is installed (the page itself runs in Chromium: not here).
func TestClientPageScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node")
	}
	for _, in := range []spec.IOType{spec.Image, spec.Numpy, spec.JSON, spec.File} {
		got, err := Clients(goldenData(in, spec.Image))
		require.NoError(t, err)
		page := got[ClientJQuery].Content
		i := strings.LastIndex(page, "<script>")
		j := strings.LastIndex(page, "</script>")
		require.Less(t, i, j)
		f := filepath.Join(t.TempDir(), "page.js")
		require.NoError(t, os.WriteFile(f, []byte(page[i+len("<script>"):j]), 0o644))
		out, err := exec.Command(node, "--check", f).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
}

func TestVendoredJQuery(t *testing.T) {
	sum := sha256.Sum256([]byte(jqueryJS))
	require.Equal(t, "fc9a93dd241f6b045cbff0481cf4e1901becd0e12fb45166a8f17f95823f0b1a", hex.EncodeToString(sum[:]),
		"clients/vendor/jquery-3.7.1.min.js is not npm's jquery@3.7.1 dist/jquery.min.js (see clients/vendor/README.md)")
	require.NotContains(t, strings.ToLower(jqueryJS), "</script", "inlining needs no </script in the code")
}

// TestClientOpenAPINamesItsModel checks that the clients listing's OpenAPI
// document names the deployment's own model (its API name) in its title and
// in the Open Inference Protocol's name parameter, enum and example, and
// never the model its template was once captured from.
func TestClientOpenAPINamesItsModel(t *testing.T) {
	for pair := range spec.SupportedPairs {
		d := goldenData(pair.In, pair.Out)
		d.Name, d.APIName = "Edge detector", "edges"
		got, err := Clients(d)
		require.NoError(t, err, pair.String())
		doc := got[ClientOpenAPI].Content
		require.NotContains(t, doc, "otsu", pair.String())
		var parsed struct {
			Info  struct{ Title string }
			Paths map[string]map[string]struct {
				Parameters []struct {
					Name    string
					Example string
					Schema  struct{ Enum []string }
				}
			}
		}
		require.NoError(t, json.Unmarshal([]byte(doc), &parsed))
		require.Equal(t, "edges", parsed.Info.Title)
		for _, path := range []string{"/v2/models/{name}", "/v2/models/{name}/ready", "/v2/models/{name}/config", "/v2/models/{name}/infer"} {
			ops := parsed.Paths[path]
			require.NotEmpty(t, ops, path)
			for method, op := range ops {
				require.Equal(t, "name", op.Parameters[0].Name, "%s %s", method, path)
				require.Equal(t, "edges", op.Parameters[0].Example, "%s %s", method, path)
				require.Equal(t, []string{"edges"}, op.Parameters[0].Schema.Enum, "%s %s", method, path)
			}
		}
	}
}
