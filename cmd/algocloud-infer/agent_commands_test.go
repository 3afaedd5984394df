package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/sandbox"
)

// Without --listen the agent runs no endpoint: it answers agent.info, and
// every author-code kind is refused with an error saying why, not run.
func TestAgentHandlersWithoutEndpoint(t *testing.T) {
	h := agentHandlers("srv", nil)
	_, err := h[KindInfo].Run(context.Background(), protocol.Command{ID: "i", Kind: KindInfo}, func(...string) {})
	require.NoError(t, err)
	for _, k := range []string{commands.KindInstall, commands.KindTest, commands.KindServe, commands.KindStop, commands.KindStatus} {
		_, err := h[k].Run(context.Background(), protocol.Command{ID: "c", Kind: k}, func(...string) {})
		require.ErrorContains(t, err, "runs without --listen", k)
		require.ErrorContains(t, err, `"`+k+`"`, k)
	}
}

// A traceback is found in a JSON log line's field and in plain text.
func TestTracebackIn(t *testing.T) {
	tb := "Traceback (most recent call last):\n  File \"aai_main.py\", line 3\nRuntimeError: boom"
	jsonLine := `{"level":"ERROR","msg":"algocloud-infer failed","error":"the workers did not start (init_failed): boom\n` +
		strings.ReplaceAll(strings.ReplaceAll(tb, "\"", `\"`), "\n", `\n`) + `"}`
	require.Equal(t, tb, tracebackIn("revision r did not start\n--- the last lines ---\n"+jsonLine))
	require.Equal(t, tb, tracebackIn("plain\n"+tb))
	require.Empty(t, tracebackIn("no traceback here"))
}

// within says whether a path is a folder or inside it, not a sibling
// sharing its prefix.
func TestWithin(t *testing.T) {
	require.True(t, within("/srv/a/agent", "/srv/a/agent"))
	require.True(t, within("/srv/a/agent/x", "/srv/a/agent"))
	require.False(t, within("/srv/a/agent2", "/srv/a/agent"))
	require.False(t, within("/srv/a", "/srv/a/agent"))
}

// Nothing a payload names may put the agent's folder into a sandbox: a
// venv, a find-links folder, a run_dir or a sandbox state_dir inside it is
// refused before anything runs, as is a payload with no sandbox.
func TestAgentFolderStaysOutOfSandboxes(t *testing.T) {
	root := t.TempDir()
	a := &agentRuntime{dir: filepath.Join(root, "agent"), runRoot: filepath.Join(root, "run"), exe: "/bin/false", systemPython: "/usr/bin/python3"}
	box := json.RawMessage(`{"mode":"bwrap","group":"g.install"}`)
	run := func(kind string, payload any) error {
		b, err := json.Marshal(payload)
		require.NoError(t, err)
		h := agentHandlers("srv", a)[kind]
		_, err = h.Run(context.Background(), protocol.Command{ID: "c", Kind: kind, Payload: b}, func(...string) {})
		return err
	}
	cfg := func(c inferapi.Config) json.RawMessage {
		b, err := json.Marshal(c)
		require.NoError(t, err)
		return b
	}
	inside := filepath.Join(a.dir, "x")
	sum := strings.Repeat("ab", 32)
	for _, c := range []struct {
		kind    string
		payload any
		want    string
	}{
		{commands.KindInstall, commands.Install{Venv: inside, Sandbox: box}, "overlaps the agent's folder"},
		{commands.KindInstall, commands.Install{Venv: filepath.Join(root, "venv"), Sandbox: box, FindLinks: []string{inside}}, "find-links"},
		{commands.KindInstall, commands.Install{Venv: filepath.Join(root, "venv"), Sandbox: json.RawMessage(`{"group":"g","state_dir":"` + inside + `"}`)}, "state_dir"},
		{commands.KindInstall, commands.Install{Venv: filepath.Join(root, "venv")}, "no sandbox"},
		{commands.KindTest, commands.Test{Revision: "r1", Config: cfg(inferapi.Config{RunDir: inside, Sandbox: &sandbox.Config{Group: "g.test"}})}, "run_dir"},
		{commands.KindTest, commands.Test{Revision: "r1", Config: cfg(inferapi.Config{Sandbox: &sandbox.Config{Group: "g.test", StateDir: inside}})}, "state_dir"},
		{commands.KindTest, commands.Test{Revision: "r1", Config: cfg(inferapi.Config{})}, "no sandbox"},
		{commands.KindTest, commands.Test{Revision: "../x", Config: cfg(inferapi.Config{})}, "revision"},
		{commands.KindServe, commands.Serve{Revision: "r1", TokenSHA256: sum, Config: cfg(inferapi.Config{RunDir: inside, Sandbox: &sandbox.Config{Group: "g.live.r1"}})}, "run_dir"},
		{commands.KindServe, commands.Serve{Revision: "r1", TokenSHA256: sum, Config: cfg(inferapi.Config{Sandbox: &sandbox.Config{Group: "g.live.r1", StateDir: inside}})}, "state_dir"},
		{commands.KindServe, commands.Serve{Revision: "r1", TokenSHA256: "nothex", Config: cfg(inferapi.Config{})}, "token_sha256"},
	} {
		require.ErrorContains(t, run(c.kind, c.payload), c.want, "%s %+v", c.kind, c.payload)
	}
	require.NoDirExists(t, inside)
	require.NoDirExists(t, filepath.Join(root, "venv"))
}
