package testenv

import (
	"os"
	"testing"

	"github.com/algocloud/algocloud/internal/sandbox"
)

// RequireSandbox skips a test where bubblewrap cannot build a sandbox,
// unless ALGOCLOUD_REQUIRE_SANDBOX is set (scripts/test.sh sets it): there a
// missing sandbox fails the test instead.
func RequireSandbox(t testing.TB) {
	t.Helper()
	if err := sandbox.Available(); err != nil {
		if os.Getenv("ALGOCLOUD_REQUIRE_SANDBOX") != "" {
			t.Fatalf("sandbox unavailable: %v", err)
		}
		t.Skipf("sandbox unavailable: %v", err)
	}
}
