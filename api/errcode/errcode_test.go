package errcode

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var snakeCase = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)

// TestRegistry checks every Code has a snake_case name, an error status and a
// meaning, and that a name two Codes share is answered with two statuses
// (else the two Codes would be one).
func TestRegistry(t *testing.T) {
	all := All()
	require.Len(t, all, int(numCodes)-1)
	statuses := map[string]map[int]bool{}
	for _, c := range all {
		name := c.String()
		require.Regexp(t, snakeCase, name, "code %d", c)
		require.GreaterOrEqual(t, c.Status(), 400, name)
		require.Less(t, c.Status(), 600, name)
		require.NotEmpty(t, c.Meaning(), name)
		require.False(t, strings.HasSuffix(c.Meaning(), "."), "%s: a meaning is one line without a full stop, like the docs table's cells", name)
		if statuses[name] == nil {
			statuses[name] = map[int]bool{}
		}
		require.False(t, statuses[name][c.Status()], "%s %d is registered twice", name, c.Status())
		statuses[name][c.Status()] = true
		text, err := c.MarshalText()
		require.NoError(t, err)
		require.Equal(t, name, string(text))
	}
	require.Len(t, Names(), len(statuses))
	require.Equal(t, map[int]bool{404: true, 409: true}, statuses["no_code"])

	require.Equal(t, 500, invalidCode.Status(), "the zero Code is a bug")
	require.Equal(t, 500, numCodes.Status())
	require.Empty(t, numCodes.String())
}

// TestConstantComments checks each constant's comment names its code, so the
// list reads as the table it stands for.
func TestConstantComments(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "errcode.go", nil, parser.ParseComments)
	require.NoError(t, err)
	byName := map[string]Code{}
	for _, c := range All() {
		byName[constName(t, f, c)] = c
	}
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for _, id := range vs.Names {
				c, ok := byName[id.Name]
				if !ok {
					continue
				}
				n++
				require.NotNil(t, vs.Comment, id.Name)
				require.True(t, strings.HasPrefix(strings.TrimSpace(vs.Comment.Text()), c.String()), "%s's comment %q does not name %s", id.Name, vs.Comment.Text(), c)
			}
		}
	}
	require.Equal(t, len(All()), n)
}

// constName finds the identifier declared for c, by its position in the
// const block (iota order).
func constName(t *testing.T, f *ast.File, c Code) string {
	t.Helper()
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		i := 0
		for _, s := range g.Specs {
			for _, id := range s.(*ast.ValueSpec).Names {
				if Code(i) == c {
					return id.Name
				}
				i++
			}
		}
	}
	t.Fatalf("no constant for code %d", c)
	return ""
}
