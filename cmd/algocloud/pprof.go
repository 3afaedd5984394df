package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// pprofEnv names a loopback address (127.0.0.1:PORT) on which `algocloud
// dev` serves Go's profiles (/debug/pprof/), for measuring where the
// platform's CPU goes (docs/benchmarks.md, batches). Only dev reads it, and
// only a loopback address is accepted: the profiles show the process's
// internals and need no token.
const pprofEnv = "ALGOCLOUD_DEV_PPROF"

// servePprof starts the profile listener when pprofEnv is set.
func servePprof() error {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s=%q: want a loopback address such as 127.0.0.1:6060", pprofEnv, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for profiles on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() { _ = http.Serve(ln, mux) }() //nolint:gosec // loopback only, dev only, for the length of the process
	fmt.Printf("  profiles        http://%s/debug/pprof/\n", addr)
	return nil
}
