package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/protocol"
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
