package revisions

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAgentLinksNoPlatform: the agent runs on every server, beside author
// code; it must not carry Temporal, a cloud SDK or the platform's store,
// API, activities or workflows. algocloud-infer, which runs it, may not
// either, except activities/python (its install mode's pip runner, which
// links none of them) and activities/compute/ec2/bundlelayout (the sealed
// objects' format a remote agent opens: the standard library only).
func TestAgentLinksNoPlatform(t *testing.T) {
	banned := []string{"go.temporal.io/", "github.com/aws/", "github.com/algocloud/algocloud/store",
		"github.com/algocloud/algocloud/api", "github.com/algocloud/algocloud/activities", "github.com/algocloud/algocloud/workflows",
		"github.com/algocloud/algocloud/agenthub", "github.com/algocloud/algocloud/internal/platform"}
	for _, pkg := range []string{"github.com/algocloud/algocloud/agent/...", "github.com/algocloud/algocloud/cmd/algocloud-infer"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		require.NoError(t, err, string(out))
		deps := strings.Fields(string(out))
		require.Contains(t, deps, "github.com/algocloud/algocloud/agent/revisions")
		for _, d := range deps {
			if strings.HasSuffix(pkg, "algocloud-infer") && (d == "github.com/algocloud/algocloud/activities/python" ||
				d == "github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout") {
				continue
			}
			for _, b := range banned {
				require.False(t, strings.HasPrefix(d, b), "%s links %s", pkg, d)
			}
		}
	}
}
