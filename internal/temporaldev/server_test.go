package temporaldev

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
)

// A port taken before the server binds it is an error Start returns, not a
// panic that takes the test binary (or `algocloud dev`) down.
func TestStartReportsTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	srv, err := Start(Options{FrontendPort: port, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		srv.Stop()
		t.Fatalf("Start on taken port %d succeeded", port)
	}
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("Start on taken port: %v, want errPortTaken", err)
	}
}

// Free ports are picked again after a collision, so a plain Start works.
func TestStartPicksPorts(t *testing.T) {
	srv, err := Start(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
}
