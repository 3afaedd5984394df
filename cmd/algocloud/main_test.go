package main

import (
	"flag"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	return names
}

// `algocloud token -h` and `algocloud codec-token -h` list only the flags
// those commands read, not the servers' ACME, AWS and EC2 flags.
func TestCommandsTakeOnlyTheirFlags(t *testing.T) {
	var c config
	require.Equal(t, []string{"data", "database-url"}, flagNames(tokenFlags(&c)))
	require.Equal(t, []string{"data", "encryption-key-file"}, flagNames(codecTokenFlags(&c)))

	// The server commands still share every platform flag.
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	c.flags(fs, false)
	names := flagNames(fs)
	for _, f := range []string{"data", "database-url", "encryption-key-file", "acme-directory", "aws-region", "ec2-ami", "temporal-address"} {
		require.Contains(t, names, f)
	}
}
