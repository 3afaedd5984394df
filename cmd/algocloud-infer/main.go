// Command algocloud-infer is the inference server of one deployed algorithm:
// it serves aai_main.py's predict (or, for environment onnx, the model that
// aai_onnx.json names) over HTTPS with a bearer token, as /predict and as the
// Open Inference Protocol's /v2/models/<name>/infer.
//
//	algocloud-infer --config /path/to/inference.json
//	algocloud-infer install --config /path/to/inference.json --requirements requirements.txt
//	algocloud-infer agent --dir /var/lib/algocloud/agent --listen :443
//	algocloud-infer agent status|start|swap|stop --dir ... [--id R --config inference.json]
//	algocloud-infer agent --platform https://... --server ID --credential-file F [--ca-file CA] [--state-dir D] [--dir ... --listen ...]
//
// The config is an inferapi.Config written by the platform. SIGTERM or SIGINT
// drains: the server stops accepting, finishes in-flight requests and stops
// its Python workers. SIGHUP reloads the TLS certificate and key files (the
// server also notices changed files by itself within a few seconds; a pair
// that does not load keeps the current one) and the token file (token_file:
// also re-read by itself at the next request after it changes). Logs are
// JSON lines on stderr.
//
// Under the agent (agent/revisions), a revision's server gets the endpoint's
// listening socket as an inherited descriptor (--listen-fd, instead of the
// config's listen) and a socket to the agent (--ready-fd): it writes
// "ready" once its workers are up and accepts only after the agent answers
// "serve"; if the agent goes away first, it stops without having accepted.
// It keeps the inherited descriptor open, so that a restarted agent can take
// the listening socket back from it (pidfd_getfd).
//
// The agent mode supervises the endpoint's revisions and swaps them without
// downtime (agent.go).
//
// The install mode makes the venv the config's python names and
// pip-installs the requirements into it, both in the config's sandbox (group
// "<server>.install"), streaming pip's output to stdout: the EC2 instance's
// fetch.sh runs it, as root, so that no author-chosen build script runs as
// root there (see runInstall).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/algocloud/algocloud/inference"
	"github.com/algocloud/algocloud/inference/inferapi"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		if err := agentMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "algocloud-infer agent:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "install" {
		if err := installMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "algocloud-infer:", err)
			os.Exit(1)
		}
		return
	}
	configPath := flag.String("config", "", "inference server config (JSON, see inferapi.Config)")
	listenFD := flag.Int("listen-fd", 0, "serve on this inherited listening socket instead of the config's listen (set by the agent)")
	readyFD := flag.Int("ready-fd", 0, "with --listen-fd: say \"ready\" on this inherited socket and accept once the agent answers \"serve\"")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := runServer(*configPath, *listenFD, *readyFD, log); err != nil {
		log.Error("algocloud-infer failed", "error", err)
		os.Exit(1)
	}
}

func run(configPath string, log *slog.Logger) error {
	return runServer(configPath, 0, 0, log)
}

func runServer(configPath string, listenFD, readyFD int, log *slog.Logger) error {
	if configPath == "" {
		return fmt.Errorf("--config is required")
	}
	cfg, err := inferapi.LoadConfig(configPath)
	if err != nil {
		return err
	}
	srv, err := inference.NewServer(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup { // a failed reload is logged and keeps the current certificate or token
			if cfg.TokenFile != "" && srv.ReloadToken() == nil {
				log.Info("SIGHUP: endpoint token file reloaded")
			}
			switch err := srv.ReloadCertificate(); {
			case cfg.CertFile == "":
				log.Info("SIGHUP ignored: no TLS certificate is configured")
			case err == nil:
				log.Info("SIGHUP: TLS certificate reloaded")
			}
		}
	}()
	if listenFD == 0 {
		return srv.Run(ctx)
	}
	// The descriptor stays open (os.NewFile's *File is kept reachable to the
	// end): a restarted agent takes the socket back from it.
	// Close-on-exec: the Python workers (author code) must not inherit the
	// endpoint's socket, nor the agent's socket pair.
	syscall.CloseOnExec(listenFD)
	if readyFD != 0 {
		syscall.CloseOnExec(readyFD)
	}
	lnFile := os.NewFile(uintptr(listenFD), "listener")
	defer runtime.KeepAlive(lnFile)
	ln, err := net.FileListener(lnFile)
	if err != nil {
		return fmt.Errorf("--listen-fd %d: %w", listenFD, err)
	}
	h := inference.Handover{Ready: func(context.Context) error { return nil }}
	if readyFD != 0 {
		h.Ready = agentGate(os.NewFile(uintptr(readyFD), "agent"), log)
	}
	return srv.ServeHandover(ctx, ln, h)
}

// agentGate says "ready" to the agent on c and waits for its "serve". The
// agent answers only once it has recorded this revision as the one serving,
// so a revision the agent never recorded (it died meanwhile: the read ends
// with EOF) never accepts.
func agentGate(c *os.File, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		defer c.Close()
		if _, err := c.WriteString("ready\n"); err != nil {
			return fmt.Errorf("tell the agent ready: %w", err)
		}
		got := make(chan error, 1)
		go func() {
			line, err := bufio.NewReader(c).ReadString('\n')
			switch {
			case err != nil:
				got <- fmt.Errorf("the agent went away before it said serve: %w", err)
			case strings.TrimSpace(line) != "serve":
				got <- fmt.Errorf("the agent said %q, not serve", strings.TrimSpace(line))
			default:
				got <- nil
			}
		}()
		select {
		case err := <-got:
			if err == nil {
				log.Info("the agent said serve: accepting")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
