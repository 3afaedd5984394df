package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
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
}

// serverFlagNames are the flags of the server command o, sorted.
func serverFlagNames(o serveOptions) []string {
	var c config
	return flagNames(serverFlags(&c, o, flag.ContinueOnError))
}

// minus is a without the names in b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// The API takes what it reads (listen address, codec CORS, the async
// predictions' caps, and what it
// shares with the worker: Temporal, store, keys, blobs, domain, --certs and
// --sandbox for what it tells users); the worker adds how it runs endpoints
// and author code and the cloud; dev takes both and the embedded server's.
func TestServerCommandsTakeOnlyTheirFlags(t *testing.T) {
	shared := []string{"aws-endpoint", "aws-region", "blob-bucket", "blob-prefix", "certs", "data", "database-url",
		"domain", "encryption-key-file", "log-level", "namespace", "prediction-retention", "previous-encryption-key-file", "sandbox",
		"webhook-allow-loopback"}
	api := serverFlagNames(apiCommand)
	worker := serverFlagNames(workerCommand)
	dev := serverFlagNames(devCommand)

	apiOwn := []string{"addr", "codec-cors-origins", "max-prediction-input", "max-running-predictions"}
	require.Equal(t, apiOwn, minus(api, append(shared, "temporal-address")), "api's own flags")
	workerOnly := minus(worker, api)
	require.Equal(t, []string{"acme-ca-root", "acme-directory", "acme-dns-resolvers", "acme-email", "agents", "allow-local-git",
		"allow-private-git", "allow-private-urls", "artifacts-url", "bundle-bucket", "bundle-prefix", "cert-renew-every",
		"compute", "dns", "dns-zone-id", "ec2-agents", "ec2-ami", "ec2-health-url", "ec2-port", "ec2-subnet", "endpoint-ca-root",
		"host", "infer-bin", "pip-find-links", "pip-index-url", "pip-no-index", "platform-ca-file", "platform-url", "predict-timeout", "sandbox-scale"}, workerOnly)
	require.Equal(t, apiOwn, minus(api, worker), "the worker takes no API-only flag")
	for _, f := range append(shared, "temporal-address") {
		require.Contains(t, api, f)
		require.Contains(t, worker, f)
	}

	// dev: the union, with the embedded server's flags for --temporal-address.
	// The agents' --platform-url and --platform-ca-file are not dev's: its
	// agents reach its own API.
	union := append(minus(api, []string{"temporal-address"}), minus(workerOnly, []string{"platform-ca-file", "platform-url"})...)
	union = append(union, "codec-endpoint", "temporal-port", "ui-port")
	sort.Strings(union)
	require.Equal(t, union, dev)
}

// usageNames are the flag names a flag set's -h prints.
func usageNames(t *testing.T, o serveOptions) []string {
	t.Helper()
	var c config
	fs := serverFlags(&c, o, flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	require.ErrorIs(t, fs.Parse([]string{"-h"}), flag.ErrHelp)
	var names []string
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "  -"); ok {
			names = append(names, strings.Fields(rest)[0])
		}
	}
	require.NotEmpty(t, names, "-h printed no flag:\n%s", out.String())
	return names
}

// `algocloud api -h` lists no worker-only flag and `worker -h` no API-only
// one; passing one to the other command is an error that names it.
func TestServerHelpAndUnknownFlags(t *testing.T) {
	api, worker := usageNames(t, apiCommand), usageNames(t, workerCommand)
	workerOnly, apiOnly := minus(worker, api), minus(api, worker)
	require.NotEmpty(t, workerOnly)
	require.NotEmpty(t, apiOnly)
	for _, f := range []string{"compute", "aws-region", "acme-directory", "ec2-ami", "temporal-address"} {
		require.Equal(t, f != "compute" && f != "acme-directory" && f != "ec2-ami", slices.Contains(api, f), "api -h lists --%s", f)
	}

	for _, tc := range []struct {
		o     serveOptions
		flags []string
	}{{apiCommand, workerOnly}, {workerCommand, apiOnly}} {
		for _, f := range tc.flags {
			var c config
			fs := serverFlags(&c, tc.o, flag.ContinueOnError)
			fs.SetOutput(&bytes.Buffer{})
			err := fs.Parse([]string{"--" + f + "=1"})
			require.EqualError(t, err, "flag provided but not defined: -"+f, "algocloud %s --%s", tc.o.name, f)
		}
	}
}

// The same through main, as a user runs it: `algocloud api -h` exits 0
// listing no worker flag, `algocloud api --compute ec2` exits 2 naming the
// flag, `algocloud worker --addr ...` likewise; nothing starts.
func TestServerFlagsThroughMain(t *testing.T) {
	if args := os.Getenv("ALGOCLOUD_TEST_MAIN_ARGS"); args != "" {
		os.Args = append([]string{"algocloud"}, strings.Fields(args)...)
		main()
		return
	}
	runMain := func(args string) (string, int) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestServerFlagsThroughMain$")
		cmd.Env = append(os.Environ(), "ALGOCLOUD_TEST_MAIN_ARGS="+args)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out), exit.ExitCode()
		}
		require.NoError(t, err, string(out))
		return string(out), 0
	}
	out, code := runMain("api -h")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "\n  -addr string")
	require.Contains(t, out, "\n  -temporal-address string")
	for _, f := range []string{"-compute", "-acme-", "-ec2-", "-bundle-", "-infer-bin", "-pip-", "-dns "} {
		require.NotContains(t, out, f)
	}
	out, code = runMain("worker -h")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "\n  -compute string")
	require.NotContains(t, out, "\n  -addr ")
	require.NotContains(t, out, "-codec-cors-origins")

	out, code = runMain("api --compute ec2")
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "flag provided but not defined: -compute")
	out, code = runMain("worker --addr 127.0.0.1:1")
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "flag provided but not defined: -addr")
}
