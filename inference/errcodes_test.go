package inference

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/api/errcode"
)

// declaredCodes returns every error code the package declares: the values of
// its Code* string constants, read from the source so none is left out.
func declaredCodes(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	codes := map[string]string{} // value -> constant
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					require.NotContains(t, codes, v, "%s and %s are one code", codes[v], id.Name)
					codes[v] = id.Name
				}
			}
		}
	}
	require.Greater(t, len(codes), 30)
	return codes
}

// TestCodesSpeltAsPlatform checks that an endpoint's error and the platform
// API's error for the same thing have the same name: a code here that is a
// platform code with bad_ for invalid_ (or the reverse) is the same error
// spelt twice, which clients of both would have to know (bad_json was).
func TestCodesSpeltAsPlatform(t *testing.T) {
	stem := func(code string) string {
		for _, p := range []string{"bad_", "invalid_"} {
			if s, ok := strings.CutPrefix(code, p); ok {
				return s
			}
		}
		return code
	}
	platform := map[string]string{}
	for _, n := range errcode.Names() {
		platform[stem(n)] = n
	}
	var shared []string
	for code, constant := range declaredCodes(t) {
		p, ok := platform[stem(code)]
		if !ok {
			continue
		}
		require.Equal(t, p, code, "%s: the platform API calls this error %s", constant, p)
		shared = append(shared, code)
	}
	sort.Strings(shared)
	require.Equal(t, []string{"body_too_large", "internal", "invalid_json", "invalid_multipart", "method_not_allowed", "not_found", "unauthorized"}, shared)
}
