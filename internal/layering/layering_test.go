package layering

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const mod = "github.com/algocloud/algocloud/"

// platformRule is what the workflows and the API may not link: the
// providers' SDKs, the concrete implementations below compute/, certs/,
// dns/ and blobs/ (their interfaces are in the parents), the activities
// and the inference server themselves (they link all of it), and cgo.
var platformRule = Rule{
	Roots: []string{mod + "workflows", mod + "api"},
	Forbidden: []string{
		"github.com/aws/",
		"github.com/go-acme/lego/",
		"github.com/yalue/onnxruntime_go",
		mod + "activities",
		mod + "activities/compute/",
		mod + "activities/certs/",
		mod + "activities/dns/",
		mod + "inference",
		mod + "inference/onnxrt",
		mod + "internal/blobs/s3store",
		mod + "predictions/batch/batchs3",
	},
	NoCgo: true,
}

// TestWorkflowsAndAPILinkNoProvider keeps the layering of
// docs/architecture.md: a failure names the package and the import chain
// that brought it in.
func TestWorkflowsAndAPILinkNoProvider(t *testing.T) {
	graph, err := List(context.Background(), ".", platformRule.Roots...)
	require.NoError(t, err)
	require.Contains(t, graph, mod+"workflows")
	for _, v := range Check(graph, platformRule) {
		t.Errorf("%s", v)
	}
}

// workerRule is what the worker and the activities may not link: the
// inference server and ONNX Runtime's cgo binding (they write the server's
// config and call it through inference/inferapi), nor any other cgo package.
// inferapi itself, the server's cgo-free side, is held to it too.
var workerRule = Rule{
	Roots: []string{mod + "worker", mod + "activities", mod + "inference/inferapi"},
	Forbidden: []string{
		"github.com/yalue/onnxruntime_go",
		mod + "inference",
		mod + "inference/onnxrt",
	},
	NoCgo: true,
}

// TestWorkerLinksNoCgo keeps the worker side of docs/architecture.md's
// layering: a failure names the package and the import chain.
func TestWorkerLinksNoCgo(t *testing.T) {
	graph, err := List(context.Background(), ".", workerRule.Roots...)
	require.NoError(t, err)
	require.Contains(t, graph, mod+"worker")
	require.Contains(t, graph, mod+"inference/inferapi")
	for _, v := range Check(graph, workerRule) {
		t.Errorf("%s", v)
	}
}

// TestCheckNamesTheChain runs Check on a made-up graph, so a failure of the
// real test is known to say what and through which imports.
func TestCheckNamesTheChain(t *testing.T) {
	g := map[string]Package{
		"w":     {ImportPath: "w", Imports: []string{"fmt", "a", "b"}},
		"fmt":   {ImportPath: "fmt", Standard: true, CgoFiles: []string{"x.go"}},
		"a":     {ImportPath: "a", Imports: []string{"b"}},
		"b":     {ImportPath: "b", Imports: []string{"p/sdk"}},
		"p/sdk": {ImportPath: "p/sdk", Imports: []string{"p/sdk/deep"}},
		"c":     {ImportPath: "c", CgoFiles: []string{"c.go"}},
		"api":   {ImportPath: "api", Imports: []string{"a", "c", "p"}},
		"p":     {ImportPath: "p"},
	}
	vs := Check(g, Rule{Roots: []string{"w", "api"}, Forbidden: []string{"p/"}, NoCgo: true})
	var got []string
	for _, v := range vs {
		got = append(got, v.String())
	}
	require.Equal(t, []string{
		"w links p/sdk (forbidden: p/): w -> b -> p/sdk",
		"api links c (cgo): api -> c",
		"api links p/sdk (forbidden: p/): api -> a -> b -> p/sdk",
	}, got, strings.Join(got, "\n"))
}
