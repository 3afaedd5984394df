package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agent/revisions"
)

// The agent mode: one per endpoint on a server. It owns the endpoint's
// listening socket and runs its revisions (agent/revisions). Until the
// platform's command channel (agent/link) drives it, it takes its commands
// on a unix socket in its folder (agent.sock, mode 0600, outside what the
// sandboxed author code can see), which the client forms of this mode use:
//
//	algocloud-infer agent --dir D --listen HOST:PORT     run the agent
//	algocloud-infer agent status --dir D                 print its Status (JSON)
//	algocloud-infer agent start --dir D --id R --config C
//	algocloud-infer agent swap  --dir D --id R --config C
//	algocloud-infer agent stop  --dir D
//
// With --platform (and --server, --credential-file) it also takes the
// platform's commands over the command channel (agent/link, agent_link.go):
// with --listen too, every kind of agent/commands (install, test, serve,
// stop, status: agent_commands.go); without, agent.info only. Either
// --listen or --platform is required.
//
// SIGTERM or SIGINT stops the agent and leaves the revisions serving: a
// restarted agent adopts them (stop stops them).
func agentMain(args []string) error {
	if len(args) > 0 && !isFlag(args[0]) {
		return agentClient(args[0], args[1:])
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	dir := fs.String("dir", "", "the agent's folder (state, revision logs, control socket)")
	listen := fs.String("listen", "", "the endpoint's host:port")
	readyTimeout := fs.Duration("ready-timeout", 5*time.Minute, "how long a revision may take to load its workers")
	stopGrace := fs.Duration("stop-grace", 2*time.Minute, "how long a replaced revision may drain before it is killed")
	lf := addLinkFlags(fs)
	rf := addRemoteFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen == "" && lf.platform == "" {
		return errors.New("--dir and --listen are required (or --platform to take the platform's commands)")
	}
	if *listen != "" && *dir == "" {
		return errors.New("--dir and --listen are required")
	}
	if lf.stateDir == "" && *dir != "" {
		lf.stateDir = filepath.Join(*dir, "link")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "agent")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var linkDone <-chan error
	startLink := func(rt *agentRuntime) error {
		l, err := lf.newLink(log, rt)
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		linkDone = done
		go func() { done <- l.Run(ctx) }()
		log.Info("agent taking the platform's commands", "platform", lf.platform, "server", lf.server, "protocol", protocol.Version, "author_code", rt != nil)
		return nil
	}
	if *listen == "" {
		if err := startLink(nil); err != nil {
			return err
		}
		<-linkDone
		log.Info("agent stopped")
		return nil
	}
	sup, err := revisions.Open(ctx, revisions.Options{Dir: *dir, Listen: *listen, ReadyTimeout: *readyTimeout, StopGrace: *stopGrace, Log: log})
	if err != nil {
		return err
	}
	defer sup.Close()
	if lf.platform != "" {
		// After the supervisor: it holds the folder's lock, so a second
		// agent on the same folder stops before it could reap the first's
		// test servers.
		rt, err := newAgentRuntime(*dir, sup)
		if err != nil {
			return err
		}
		if rt.remote, err = rf.newRemote(rt.dir); err != nil {
			return err
		}
		if err := startLink(rt); err != nil {
			return err
		}
	}
	// A deep folder's path may not fit a socket address: then it is named
	// through a descriptor of the folder (agent_sock.go).
	sock, closeDir, err := controlSocket(*dir)
	if err != nil {
		return err
	}
	defer closeDir()
	_ = os.Remove(sock) // a previous agent's
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	srv := &http.Server{Handler: controlHandler(sup), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("agent running", "dir", *dir, "listen", *listen, "control", sock)
	<-ctx.Done()
	if linkDone != nil {
		<-linkDone
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	log.Info("agent stopped; revisions keep serving")
	return nil
}

func isFlag(s string) bool { return len(s) > 0 && s[0] == '-' }

// controlError is the control socket's error body.
type controlError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeControl(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// controlHandler serves the agent's commands: GET /v1/status, POST
// /v1/start, /v1/swap ({"id","config"}) and /v1/stop.
func controlHandler(sup *revisions.Supervisor) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeControl(w, http.StatusOK, sup.Status())
	})
	revCmd := func(do func(context.Context, revisions.Revision) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var rev revisions.Revision
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&rev); err != nil {
				writeControl(w, http.StatusBadRequest, controlError{"invalid_json", "the body must be {\"id\":..., \"config\":...}: " + err.Error()})
				return
			}
			if err := rev.Check(); err != nil {
				writeControl(w, http.StatusBadRequest, controlError{"invalid_revision", err.Error()})
				return
			}
			switch err := do(r.Context(), rev); {
			case errors.Is(err, revisions.ErrServing), errors.Is(err, revisions.ErrNotServing):
				writeControl(w, http.StatusConflict, controlError{"conflict", err.Error()})
			case err != nil:
				writeControl(w, http.StatusUnprocessableEntity, controlError{"revision_failed", err.Error()})
			default:
				writeControl(w, http.StatusOK, sup.Status())
			}
		}
	}
	mux.HandleFunc("POST /v1/start", revCmd(sup.Start))
	mux.HandleFunc("POST /v1/swap", revCmd(sup.Swap))
	mux.HandleFunc("POST /v1/stop", func(w http.ResponseWriter, r *http.Request) {
		if err := sup.Stop(r.Context()); err != nil {
			writeControl(w, http.StatusInternalServerError, controlError{"stop_failed", err.Error()})
			return
		}
		writeControl(w, http.StatusOK, sup.Status())
	})
	return mux
}

// agentClient sends one command to a running agent and prints its answer.
func agentClient(cmd string, args []string) error {
	fs := flag.NewFlagSet("agent "+cmd, flag.ContinueOnError)
	dir := fs.String("dir", "", "the agent's folder")
	id := fs.String("id", "", "the revision's id (start, swap)")
	config := fs.String("config", "", "the revision's inference config (start, swap)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	var method, path string
	var body io.Reader
	switch cmd {
	case "status":
		method, path = http.MethodGet, "/v1/status"
	case "start", "swap":
		abs, err := filepath.Abs(*config)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(revisions.Revision{ID: *id, Config: abs})
		method, path, body = http.MethodPost, "/v1/"+cmd, bytesReader(b)
	case "stop":
		method, path = http.MethodPost, "/v1/stop"
	default:
		return fmt.Errorf("unknown agent command %q (status, start, swap, stop)", cmd)
	}
	status, out, err := controlCall(context.Background(), *dir, method, path, body)
	if err != nil {
		return err
	}
	os.Stdout.Write(out)
	if status != http.StatusOK {
		return fmt.Errorf("%s answered %d", cmd, status)
	}
	return nil
}

// controlCall sends one request to the agent's control socket in dir.
func controlCall(ctx context.Context, dir, method, path string, body io.Reader) (int, []byte, error) {
	sock, closeDir, err := controlSocket(dir)
	if err != nil {
		return 0, nil, err
	}
	defer closeDir()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("agent at %s: %w", sock, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
