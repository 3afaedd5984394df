// Package web is the web wizard: static pages (HTML, CSS and vanilla
// JavaScript as native ES modules: no framework, no bundler, no build step,
// nothing loaded from another origin) embedded in the binary and served by
// the API's router (api.Config.Web). index.html loads assets/app.js with
// <script type="module">; the browser fetches the modules it imports from
// /ui/assets/ (served as text/javascript, which module scripts require, and
// allowed by the policy's script-src 'self'). The pages talk to the REST API
// under /api/v1 with the token the author signs in with.
//
// URLs: / and every path under /ui/ answer the single page (index.html),
// which routes on the path (/ui/home, /ui/new, /ui/deployments/{id}/test, ...);
// /ui/assets/ holds the scripts, styles and icons; /ui/options.json is what the
// pages offer (API types, instance types, regions), taken from package spec so
// the pages never disagree with the API's validation.
package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/algocloud/algocloud/spec"
)

//go:embed static
var static embed.FS

// DefaultDomain is the domain under which an endpoint's host name is shown
// while its API name is typed (<api-name>.<domain>) when Handler is given no
// WithDomain; it is platform.Options.Domain's default.
const DefaultDomain = "algocloud.test"

// Option configures Handler.
type Option func(*PageOptions)

// WithDomain names the domain endpoints are named under (the platform's
// --domain); empty keeps DefaultDomain.
func WithDomain(domain string) Option {
	return func(o *PageOptions) {
		if domain != "" {
			o.Domain = domain
		}
	}
}

// Assets are the embedded files, rooted at the folder served as /ui/assets/
// (index.html sits beside them and is served for every page).
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the folder is embedded: it exists
	}
	return sub
}

// contentSecurityPolicy allows only this origin: no inline script, no other
// host. Test outputs are shown from blob: URLs made from fetched bytes.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// startTime stands in for the files' modification time (embedded files have
// none), so conditional requests work within one run.
var startTime = time.Now()

// Handler serves the wizard. It answers GET and HEAD only.
func Handler(opts ...Option) http.Handler {
	assets := Assets()
	index, err := fs.ReadFile(assets, "index.html")
	if err != nil {
		panic(err)
	}
	o := Options()
	for _, opt := range opts {
		opt(&o)
	}
	options, err := json.Marshal(o)
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		switch {
		case p == "/favicon.ico":
			serveAsset(w, r, assets, "assets/favicon.svg")
		case p == "/ui/options.json":
			h.Set("Cache-Control", "no-cache")
			serveBytes(w, r, "options.json", options)
		case strings.HasPrefix(p, "/ui/assets/"):
			serveAsset(w, r, assets, "assets/"+strings.TrimPrefix(p, "/ui/assets/"))
		case p == "/" || p == "/ui" || strings.HasPrefix(p, "/ui/"):
			// Every page is the one document; the script routes on the path.
			h.Set("Cache-Control", "no-cache")
			serveBytes(w, r, "index.html", index)
		default:
			http.NotFound(w, r)
		}
	})
}

func serveAsset(w http.ResponseWriter, r *http.Request, assets fs.FS, name string) {
	clean := path.Clean(name)
	if clean != name || !fs.ValidPath(clean) {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(assets, clean)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	// Assets are not fingerprinted: revalidate so a new binary's pages load.
	w.Header().Set("Cache-Control", "no-cache")
	serveBytes(w, r, clean, b)
}

func serveBytes(w http.ResponseWriter, r *http.Request, name string, b []byte) {
	if ct := ContentType(name); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	http.ServeContent(w, r, name, startTime, bytes.NewReader(b))
}

// ContentType is the media type served for an asset's file name.
func ContentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	}
	return mime.TypeByExtension(path.Ext(name))
}

// PageOptions is /ui/options.json: what the wizard's first pages offer.
type PageOptions struct {
	Environments  []string            `json:"environments"`
	Computes      []string            `json:"computes"`
	InstanceTypes map[string][]string `json:"instance_types"`
	Regions       []Region            `json:"regions"`
	Pairs         []Pair              `json:"pairs"`
	// EnvironmentPairs lists, for an environment that serves only some of
	// Pairs (onnx: image->image and image->json, spec.ServesPair), those it
	// serves; an environment not listed serves every pair.
	EnvironmentPairs map[string][]Pair `json:"environment_pairs"`
	MaxThreads       int               `json:"max_threads"`
	Domain           string            `json:"domain"`
}

// Region is a region's code and the name people know it by.
type Region struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// Pair is an API type the inference server serves.
type Pair struct {
	In  spec.IOType `json:"input"`
	Out spec.IOType `json:"output"`
}

// ioOrder orders the API types as the walkthrough shows them: image first.
var ioOrder = map[spec.IOType]int{spec.Image: 0, spec.Numpy: 1, spec.JSON: 2, spec.File: 3}

// Options lists the choices package spec accepts, in display order.
func Options() PageOptions {
	o := PageOptions{
		Computes:      []string{spec.CPU, spec.GPU},
		InstanceTypes: spec.InstanceTypes,
		MaxThreads:    spec.MaxThreads,
		Domain:        DefaultDomain,
	}
	for env, ok := range spec.SupportedEnvironments {
		if ok {
			o.Environments = append(o.Environments, env)
		}
	}
	sort.Slice(o.Environments, func(i, j int) bool { // python, the wizard's default, first
		a, b := o.Environments[i], o.Environments[j]
		if (a == spec.EnvPython) != (b == spec.EnvPython) {
			return a == spec.EnvPython
		}
		return a < b
	})
	for code, name := range spec.Regions {
		o.Regions = append(o.Regions, Region{Code: code, Name: name})
	}
	sort.Slice(o.Regions, func(i, j int) bool { return o.Regions[i].Code < o.Regions[j].Code })
	for p, ok := range spec.SupportedPairs {
		if ok {
			o.Pairs = append(o.Pairs, Pair{In: p.In, Out: p.Out})
		}
	}
	sort.Slice(o.Pairs, func(i, j int) bool {
		a, b := o.Pairs[i], o.Pairs[j]
		if a.In != b.In {
			return ioOrder[a.In] < ioOrder[b.In]
		}
		return ioOrder[a.Out] < ioOrder[b.Out]
	})
	o.EnvironmentPairs = map[string][]Pair{}
	for _, env := range o.Environments {
		var served []Pair
		for _, p := range o.Pairs {
			if spec.ServesPair(env, spec.Pair{In: p.In, Out: p.Out}) {
				served = append(served, p)
			}
		}
		if len(served) < len(o.Pairs) {
			o.EnvironmentPairs[env] = served
		}
	}
	return o
}
