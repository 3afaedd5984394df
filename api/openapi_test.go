package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/actdef"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/source"
	"github.com/algocloud/algocloud/workflows"
)

// pathParam is a gin route parameter (:id); OpenAPI writes it {id}.
var pathParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// TestOpenAPIMatchesRoutes fails when a route is missing from the document or
// the document describes a route the router does not have.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	var routes []string
	for _, r := range e.h.Routes() {
		routes = append(routes, r.Method+" "+pathParam.ReplaceAllString(r.Path, "{$1}"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3.0."), doc.OpenAPI)
	var documented []string
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}
	for path, item := range doc.Paths {
		for method := range item {
			if methods[method] {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	sort.Strings(routes)
	sort.Strings(documented)
	require.Equal(t, routes, documented)
}

// TestOpenAPIRefsResolve checks every $ref points at something, every
// operation has responses and an operationId, and path parameters are declared.
func TestOpenAPIRefsResolve(t *testing.T) {
	var doc map[string]any
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	var walk func(v any)
	n := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				n++
				require.True(t, strings.HasPrefix(ref, "#/"), ref)
				var cur any = doc
				for _, seg := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, ok := cur.(map[string]any)
					require.True(t, ok, ref)
					cur, ok = m[seg]
					require.True(t, ok, "unresolved %s", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	require.Greater(t, n, 20)

	ops := map[string]bool{}
	for path, item := range doc["paths"].(map[string]any) {
		declared := map[string]bool{}
		collect := func(params any) {
			list, _ := params.([]any)
			for _, p := range list {
				pm := p.(map[string]any)
				if ref, ok := pm["$ref"].(string); ok && ref == "#/components/parameters/DeploymentID" {
					declared["id"] = true
				} else if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
				}
			}
		}
		collect(item.(map[string]any)["parameters"])
		for method, op := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			om := op.(map[string]any)
			collect(om["parameters"])
			require.NotEmpty(t, om["responses"], "%s %s", method, path)
			id, _ := om["operationId"].(string)
			require.NotEmpty(t, id, "%s %s", method, path)
			require.False(t, ops[id], "duplicate operationId %s", id)
			ops[id] = true
		}
		for _, m := range regexp.MustCompile(`\{([a-z_]+)\}`).FindAllStringSubmatch(path, -1) {
			require.True(t, declared[m[1]], "%s: path parameter %s is not declared", path, m[1])
		}
	}
}

func TestOpenAPIServedAsIs(t *testing.T) {
	e := newEnv(t)
	w := e.do(http.MethodGet, "/api/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.JSONEq(t, string(OpenAPI()), w.Body.String())
}

// The document's GitAuth has exactly the fields fetch_code's git_auth
// decodes (source.GitCredentials), so a client built from it can send
// credentials and is not told of fields the API refuses.
func TestOpenAPIGitAuthMatchesDecoder(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	var documented []string
	for name := range doc.Components.Schemas["GitAuth"].Properties {
		documented = append(documented, name)
	}
	sort.Strings(documented)
	raw, err := json.Marshal(source.GitCredentials{Username: "u", Password: "p", SSHPrivateKey: "k", KnownHosts: "h"})
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(raw, &fields))
	var decoded []string
	for name := range fields {
		decoded = append(decoded, name)
	}
	sort.Strings(decoded)
	require.Equal(t, decoded, documented)
	require.Contains(t, doc.Components.Schemas["GitSource"].Properties, "git_auth")
	require.Contains(t, doc.Components.Schemas["CodeUpload"].Properties, "git_auth")
}

// The document's ServingRevision and StagedRevision have exactly the JSON
// fields of the types the API answers, and Deployment refers to both.
func TestOpenAPIRevisionsMatchTypes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	for name, v := range map[string]any{
		"ServingRevision": actdef.ServingRevision{Commit: "c", Source: "git"},
		"StagedRevision":  actdef.StagedRevision{Commit: "c", InstallRevision: 1},
	} {
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		var fields map[string]any
		require.NoError(t, json.Unmarshal(raw, &fields))
		var want, got []string
		for f := range fields {
			want = append(want, f)
		}
		for f := range doc.Components.Schemas[name].Properties {
			got = append(got, f)
		}
		sort.Strings(want)
		sort.Strings(got)
		require.Equal(t, want, got, name)
	}
	require.Contains(t, doc.Components.Schemas["Deployment"].Properties, "serving")
	require.Contains(t, doc.Components.Schemas["Deployment"].Properties, "staged")
}

// jsonFields is the JSON names of struct type t's exported fields.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// The document's State (the deployment detail's "state": the workflow's
// state less its token hash), its "live" and Server have exactly the JSON
// fields of the types the API answers, so a field the agent path adds to
// the state (servers, agent_commands, serving, server.agent) cannot go
// undocumented.
func TestOpenAPIStateMatchesTypes(t *testing.T) {
	type schema struct {
		Properties map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"properties"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	keys := func(m map[string]json.RawMessage) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	names := func(s schema) []string {
		var out []string
		for k := range s.Properties {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	state := slices.DeleteFunc(jsonFields(reflect.TypeFor[workflows.State]()), func(f string) bool { return f == "token_sha256" })
	require.Equal(t, state, names(doc.Components.Schemas["State"]), "State")
	require.Equal(t, jsonFields(reflect.TypeFor[compute.Server]()), names(doc.Components.Schemas["Server"]), "Server")
	require.Equal(t, jsonFields(reflect.TypeFor[actdef.ServiceInfo]()), keys(doc.Components.Schemas["State"].Properties["live"].Properties), "State.live")
}
