package platform

import (
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/internal/sandbox"
)

// TestNoSilentDowngrade: where bubblewrap cannot run (here: not on PATH),
// a worker refuses to start, naming the way out; --sandbox=none starts it.
func TestNoSilentDowngrade(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	o := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err := checkSandbox(o)
	require.Error(t, err)
	require.Contains(t, err.Error(), "bubblewrap")
	require.Contains(t, err.Error(), "--sandbox=none")

	o.Sandbox = activities.SandboxSettings{Mode: sandbox.ModeNone}
	require.NoError(t, checkSandbox(o))
}
