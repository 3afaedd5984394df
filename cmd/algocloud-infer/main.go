// Command algocloud-infer is the inference server of one deployed algorithm:
// it serves aai_main.py's predict (or, for environment onnx, the model that
// aai_onnx.json names) over HTTPS with a bearer token, as /predict and as the
// Open Inference Protocol's /v2/models/<name>/infer.
//
//	algocloud-infer --config /path/to/inference.json
//	algocloud-infer install --config /path/to/inference.json --requirements requirements.txt
//	algocloud-infer agent --platform https://... --server ID --credential-file F --state-dir D [--ca-file CA]
//
// The config is an inference.Config written by the platform. SIGTERM or SIGINT
// drains: the server stops accepting, finishes in-flight requests and stops
// its Python workers. SIGHUP reloads the TLS certificate and key files (the
// server also notices changed files by itself within a few seconds; a pair
// that does not load keeps the current one) and the token file (token_file:
// also re-read by itself at the next request after it changes). Logs are
// JSON lines on stderr.
//
// The install mode makes the venv the config's python names and
// pip-installs the requirements into it, both in the config's sandbox (group
// "<server>.install"), streaming pip's output to stdout: the EC2 instance's
// fetch.sh runs it, as root, so that no author-chosen build script runs as
// root there (see runInstall).
//
// The agent mode is the server agent: it long-polls the platform for this
// server's commands with the server's credential and answers them (package
// agent/link; agent_link.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/algocloud/algocloud/inference"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "install" {
		if err := installMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "algocloud-infer:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		if err := agentMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "algocloud-infer agent:", err)
			os.Exit(1)
		}
		return
	}
	configPath := flag.String("config", "", "inference server config (JSON, see inference.Config)")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(*configPath, log); err != nil {
		log.Error("algocloud-infer failed", "error", err)
		os.Exit(1)
	}
}

func run(configPath string, log *slog.Logger) error {
	if configPath == "" {
		return fmt.Errorf("--config is required")
	}
	cfg, err := inference.LoadConfig(configPath)
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
	return srv.Run(ctx)
}
