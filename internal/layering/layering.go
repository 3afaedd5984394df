// Package layering checks which packages the workflows and the API link:
// they depend on interfaces and small data packages only, never on the AWS
// SDK, lego, ONNX Runtime, a concrete provider or any package with cgo
// (docs/architecture.md, Layering). It has no code but this check, which
// its test runs on `go list -deps`.
package layering

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Package is one package of a `go list -deps -json` listing.
type Package struct {
	ImportPath string
	Standard   bool
	CgoFiles   []string
	Imports    []string
}

// Rule forbids packages to what Roots links.
type Rule struct {
	// Roots are the packages checked (import paths).
	Roots []string
	// Forbidden are import paths, or prefixes ending in "/", no root may link.
	Forbidden []string
	// NoCgo forbids any non-standard package with cgo files.
	NoCgo bool
}

// Violation is a forbidden package a root links, with the import chain
// from the root to it.
type Violation struct {
	Root, Package, Why string
	Chain              []string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s links %s (%s): %s", v.Root, v.Package, v.Why, strings.Join(v.Chain, " -> "))
}

// List runs `go list -deps -json` on pkgs (in dir, with cgo enabled so cgo
// files show) and returns every package it lists by import path.
func List(ctx context.Context, dir string, pkgs ...string) (map[string]Package, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"list", "-deps", "-json=ImportPath,Standard,CgoFiles,Imports"}, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps %s: %w: %s", strings.Join(pkgs, " "), err, stderr.String())
	}
	graph := map[string]Package{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode go list's output: %w", err)
		}
		graph[p.ImportPath] = p
	}
	return graph, nil
}

// Check returns what r forbids that graph shows its roots linking, each
// with the shortest import chain that brings it in.
func Check(graph map[string]Package, r Rule) []Violation {
	var vs []Violation
	for _, root := range r.Roots {
		// Breadth first from root, so each chain is a shortest one.
		prev := map[string]string{root: ""}
		queue := []string{root}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if why := forbidden(graph[p], r); why != "" && p != root {
				vs = append(vs, Violation{Root: root, Package: p, Why: why, Chain: chain(prev, p)})
				continue // what it imports is reported through it
			}
			for _, imp := range graph[p].Imports {
				if _, seen := prev[imp]; !seen {
					prev[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	return vs
}

// forbidden says why r forbids p, or "".
func forbidden(p Package, r Rule) string {
	for _, f := range r.Forbidden {
		if p.ImportPath == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(p.ImportPath, f)) {
			return "forbidden: " + f
		}
	}
	if r.NoCgo && !p.Standard && len(p.CgoFiles) > 0 {
		return "cgo"
	}
	return ""
}

func chain(prev map[string]string, p string) []string {
	var c []string
	for ; p != ""; p = prev[p] {
		c = append([]string{p}, c...)
	}
	return c
}
