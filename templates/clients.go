package templates

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"unicode"

	"github.com/algocloud/algocloud/spec"
)

// The generated clients of a deployed endpoint: the keys of Clients' map, in
// the order a page shows them (ClientNames).
const (
	ClientPython        = "python"         // algocloud_client.py: the client module
	ClientPythonExample = "python_example" // example.py: the snippet that uses it
	ClientCurl          = "curl"           // predict.sh: the curl command
	ClientJQuery        = "jquery"         // <api-name>.html: one self-contained page
	ClientOpenAPI       = "openapi"        // openapi.json: the endpoint's OpenAPI 3 document
)

// ClientNames lists the generated clients in display order.
var ClientNames = []string{ClientPython, ClientPythonExample, ClientCurl, ClientJQuery, ClientOpenAPI}

// TokenEnv is the environment variable the generated clients read the
// endpoint token from. The token itself never appears in a generated file: it
// is shown once by Complete Deployment.
const TokenEnv = "ALGOCLOUD_ENDPOINT_TOKEN"

// DefaultCAFile is the file name the generated clients read the CA root from.
const DefaultCAFile = "algocloud-ca.pem"

// ErrBadClientData is returned by Clients for data it cannot render.
var ErrBadClientData = errors.New("invalid client data")

// ClientData describes one deployed endpoint for its generated clients.
type ClientData struct {
	// Name is the algorithm's reference name, shown in titles and comments.
	Name string
	// APIName is the endpoint's API name: the OpenAPI title and file names.
	APIName string
	// Endpoint is the endpoint's base URL (https://host:port, maybe with a
	// path prefix); /predict is appended to it.
	Endpoint string
	// Input and Output are the API type.
	Input, Output spec.IOType
	// CAURL is where the root certificate that signs the endpoint's
	// certificate is downloaded (the platform's /api/ca.pem); empty when the
	// endpoint's certificate is publicly trusted: the clients then use the
	// system's roots.
	CAURL string
	// CAFile is the local file name the clients read that root from;
	// DefaultCAFile when empty. Unused without CAURL.
	CAFile string
	// Environment (python or onnx) and MaxBatchSize are the deployment's, as
	// the endpoint's config has them: its OpenAPI document depends on them.
	Environment  string
	MaxBatchSize int
}

// Client is one generated client file.
type Client struct {
	// Filename is the name to save it under.
	Filename string `json:"filename"`
	// ContentType is its media type, with charset for text.
	ContentType string `json:"content_type"`
	// Title names it for people ("Python", "curl"...).
	Title string `json:"title"`
	// Content is the file itself.
	Content string `json:"content"`
}

//go:embed clients/*.tmpl
var clientTemplateFS embed.FS

//go:embed clients/vendor/jquery-3.7.1.min.js
var jqueryJS string

// clientFuncs quote values for the language they land in.
var clientFuncs = template.FuncMap{
	"py":      pyString,
	"sh":      shQuote,
	"comment": oneLine,
	"pydoc":   pyDoc,
}

var (
	clientText = template.Must(template.New("").Option("missingkey=error").Funcs(clientFuncs).
			ParseFS(clientTemplateFS, "clients/*.py.tmpl", "clients/*.sh.tmpl"))
	clientHTML = htmltemplate.Must(htmltemplate.New("").Option("missingkey=error").
			ParseFS(clientTemplateFS, "clients/*.html.tmpl"))
)

// clientView is what the templates see: ClientData checked and normalised.
type clientView struct {
	ClientData
	Title      string // Name, or APIName when there is no name, on one line
	TokenEnv   string
	PredictURL string
	InputFile  string // the sample input file the snippets read
	OutputFile string // the file the snippets write ("" for JSON: stdout)
	// JQuery is jQuery's source, inlined into the HTML page.
	JQuery htmltemplate.JS
}

// Clients renders every generated client of d, keyed by the Client* names.
// It fails with ErrBadClientData when d is unusable (no endpoint, an API type
// with no clients, a URL that is not http(s)).
func Clients(d ClientData) (map[string]Client, error) {
	v, err := newClientView(d)
	if err != nil {
		return nil, err
	}
	text := func(name string) (string, error) {
		var b bytes.Buffer
		if err := clientText.ExecuteTemplate(&b, name, v); err != nil {
			return "", fmt.Errorf("render %s: %w", name, err)
		}
		return b.String(), nil
	}
	out := map[string]Client{}
	for _, c := range []struct{ name, tmpl, file, ctype, title string }{
		{ClientPython, "algocloud_client.py.tmpl", "algocloud_client.py", "text/x-python; charset=utf-8", "Python client module"},
		{ClientPythonExample, "example.py.tmpl", "example.py", "text/x-python; charset=utf-8", "Python"},
		{ClientCurl, "predict.sh.tmpl", "predict.sh", "text/x-shellscript; charset=utf-8", "curl"},
	} {
		s, err := text(c.tmpl)
		if err != nil {
			return nil, err
		}
		out[c.name] = Client{Filename: c.file, ContentType: c.ctype, Title: c.title, Content: s}
	}
	var page bytes.Buffer
	if err := clientHTML.ExecuteTemplate(&page, "jquery.html.tmpl", v); err != nil {
		return nil, fmt.Errorf("render jquery.html.tmpl: %w", err)
	}
	out[ClientJQuery] = Client{Filename: v.APIName + ".html", ContentType: "text/html; charset=utf-8", Title: "jQuery web page", Content: page.String()}
	doc, err := endpointOpenAPI(v)
	if err != nil {
		return nil, err
	}
	out[ClientOpenAPI] = Client{Filename: "openapi.json", ContentType: "application/json", Title: "OpenAPI (Swagger)", Content: string(doc)}
	return out, nil
}

func newClientView(d ClientData) (clientView, error) {
	bad := func(format string, args ...any) (clientView, error) {
		return clientView{}, fmt.Errorf("%w: %s", ErrBadClientData, fmt.Sprintf(format, args...))
	}
	if !spec.SupportedPairs[spec.Pair{In: d.Input, Out: d.Output}] {
		return bad("API type %s has no clients", spec.Pair{In: d.Input, Out: d.Output})
	}
	ep, err := checkURL(d.Endpoint)
	if err != nil {
		return bad("endpoint: %v", err)
	}
	d.Endpoint = strings.TrimRight(ep, "/")
	if d.CAURL != "" {
		if d.CAURL, err = checkURL(d.CAURL); err != nil {
			return bad("ca_url: %v", err)
		}
		if d.CAFile == "" {
			d.CAFile = DefaultCAFile
		}
		if !plainFileName.MatchString(d.CAFile) {
			return bad("ca file %q must be a plain file name", d.CAFile)
		}
	} else {
		d.CAFile = ""
	}
	d.APIName = fileSafe(d.APIName)
	d.Name = oneLine(d.Name)
	v := clientView{ClientData: d, Title: d.Name, TokenEnv: TokenEnv, PredictURL: d.Endpoint + "/predict", JQuery: htmltemplate.JS(jqueryJS)}
	if v.Title == "" {
		v.Title = d.APIName
	}
	v.InputFile = map[spec.IOType]string{spec.Image: "input.png", spec.Numpy: "input.npy", spec.JSON: "input.json", spec.File: "input.csv"}[d.Input]
	v.OutputFile = map[spec.IOType]string{spec.Image: "output.png", spec.Numpy: "output.npy"}[d.Output]
	return v, nil
}

// plainFileName is a file name that needs no quoting in any client.
var plainFileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$`)

// checkURL accepts an absolute http(s) URL without credentials, query or
// fragment and returns it in its canonical form.
func checkURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("%q is not an http(s) URL", s)
	case u.Host == "":
		return "", fmt.Errorf("%q has no host", s)
	case u.User != nil, u.RawQuery != "", u.Fragment != "", u.Opaque != "":
		return "", fmt.Errorf("%q must be a plain URL (no credentials, query or fragment)", s)
	}
	return u.String(), nil
}

// fileSafe reduces an API name to characters safe in file names; spec
// already restricts it to these, so this only guards other callers.
func fileSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return unicode.ToLower(r)
		}
		return -1
	}, s)
	if s == "" {
		return "algorithm"
	}
	return s
}

// oneLine turns control characters (newlines included) into spaces, so a
// value can sit in a comment or a header line.
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s))
}

// pyString is s as a Python string literal. A JSON string is one: Python
// reads its escapes (\uXXXX for <, >, &, U+2028 and U+2029 too) the same way.
func pyString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// pyDoc is s on one line, safe inside a Python """docstring""".
func pyDoc(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(oneLine(s))
}

// shQuote is s as one POSIX shell word.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// openAPIGenerator makes an endpoint's OpenAPI document from its normalised
// ClientData. It is inference.OpenAPIDocument, which the endpoint serves at
// /openapi.json: one generator, the same bytes in both places. The inference
// package registers it (RegisterOpenAPIGenerator) in its init, since it
// imports this package (the Python runner) and so cannot be imported here.
var openAPIGenerator func(ClientData) ([]byte, error)

// RegisterOpenAPIGenerator sets the generator of the openapi client; the
// inference package calls it at init (the platform imports it for that; the
// api package does not, to stay free of cgo). Not for concurrent use with Clients.
func RegisterOpenAPIGenerator(f func(ClientData) ([]byte, error)) { openAPIGenerator = f }

// endpointOpenAPI is the endpoint's own OpenAPI document, for the endpoint's
// URL, API name and type, environment and batching.
func endpointOpenAPI(v clientView) ([]byte, error) {
	if openAPIGenerator == nil {
		return nil, errors.New("no OpenAPI generator: import github.com/algocloud/algocloud/inference, which registers it")
	}
	doc, err := openAPIGenerator(v.ClientData)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadClientData, err)
	}
	return doc, nil
}
