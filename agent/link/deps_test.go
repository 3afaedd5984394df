package link_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentLinksNoPlatform: the agent's packages (what algocloud-infer's
// agent mode links, on every server) import nothing of the platform: no
// Temporal SDK, no AWS SDK, no store, API, activities, workflows or hub.
// Credentials for those never belong on a server, nor the code that uses them.
func TestAgentLinksNoPlatform(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/algocloud/algocloud/agent/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	forbidden := []string{
		"go.temporal.io/", "github.com/aws/", "google.golang.org/grpc",
		"github.com/algocloud/algocloud/store", "github.com/algocloud/algocloud/api",
		"github.com/algocloud/algocloud/activities", "github.com/algocloud/algocloud/workflows",
		"github.com/algocloud/algocloud/agenthub", "github.com/algocloud/algocloud/internal/platform",
	}
	n := 0
	for _, pkg := range strings.Fields(string(out)) {
		n++
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("agent/... links %s", pkg)
			}
		}
	}
	if n == 0 {
		t.Fatal("go list named no packages")
	}
}
