package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The agent mode's bad input is refused before anything starts, naming what
// is wrong: missing flags, an unreadable or malformed credential, a plain
// http platform that is not on loopback (the credential would travel in
// clear). Its answers, with the real API and Temporal, are tested in
// package agenthub (TestAgentBinary).
func TestAgentModeBadInput(t *testing.T) {
	require.ErrorContains(t, agentMain(nil), "--dir and --listen are required (or --platform")
	require.ErrorContains(t, agentMain([]string{"--platform", "https://127.0.0.1:1"}), "--server, --credential-file, --state-dir (or --dir) required")

	dir := t.TempDir()
	cred := filepath.Join(dir, "credential")
	args := func(platform, credFile string) []string {
		return []string{"--platform", platform, "--server", "s1", "--credential-file", credFile, "--state-dir", filepath.Join(dir, "state")}
	}
	require.ErrorContains(t, agentMain(args("https://127.0.0.1:1", cred)), "read credential")
	require.NoError(t, os.WriteFile(cred, []byte("ac_a-user-token"), 0o600))
	require.ErrorContains(t, agentMain(args("https://127.0.0.1:1", cred)), `does not start with "ag_"`)
	require.NoError(t, os.WriteFile(cred, []byte("ag_x"), 0o600))
	require.ErrorContains(t, agentMain(args("http://10.1.2.3:8080", cred)), "plain http only to a loopback address")
	require.ErrorContains(t, agentMain(append(args("https://127.0.0.1:1", cred), "--ca-file", filepath.Join(dir, "none.pem"))), "read CA file")
}
