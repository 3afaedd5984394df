// Package testenv is the one toolkit that tests use to stand up and reach
// the real things they run against: free ports on 127.0.0.1 (FreePort), a
// client of the platform's REST API (APIClient, TryAPI), headless Chromium
// (NewChromium), long-lived child processes such as `algocloud dev`
// (StartChild) and a throwaway certificate authority for TLS on 127.0.0.1
// (CA). The packages under it start servers: PostgreSQL (testpg), moto,
// with the credentials that go with it (testmoto), a pebble ACME server and
// a DNS server for its challenges (testpebble), and a proxy that injects
// EC2 API faults (faultproxy).
//
// It exists so that each of these is written once: before it, packages had
// their own copies of a free port, a test CA or a Chromium setup, and the
// copies drifted. Only test code imports it (*_test.go files and the test
// helpers under internal/testenv); production code never does, so nothing
// here is held to the production code's compatibility rules.
package testenv

import (
	"fmt"
	"net"
	"testing"
)

// FreePort returns a TCP port that is free on 127.0.0.1 now, failing t when
// the kernel has none. The port is released before it returns, so whoever
// listens on it next (usually a child process told the port on its command
// line) may race another process for it; tests accept that small risk for
// the chance to give a child a fixed address.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := FindFreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FindFreePort is FreePort for helpers that run outside a test (a TestMain,
// a server shared by a package's tests): it returns the error instead.
func FindFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
