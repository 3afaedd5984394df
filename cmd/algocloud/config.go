package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// config is the one typed configuration of the algocloud binary, built from
// flags (and ALGOCLOUD_* environment variables as their defaults).
type config struct {
	DataDir         string
	APIAddr         string
	TemporalAddress string // empty in dev: run the embedded server
	TemporalPort    int
	UIPort          int
	Namespace       string
	DatabaseURL     string
	InferBinary     string
	Host            string
	Domain          string
	PipIndexURL     string
	PipFindLinks    string
	PipNoIndex      bool
	AllowLocalGit   bool
	AllowPrivateGit bool
	AllowPrivateURL bool
	PredictTimeout  time.Duration
	LogLevel        string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("ALGOCLOUD_" + name); ok {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	v, ok := os.LookupEnv("ALGOCLOUD_" + name)
	if !ok {
		return def
	}
	return v == "1" || strings.EqualFold(v, "true")
}

// flags registers the flags a subcommand uses; dev gets local-friendly defaults.
func (c *config) flags(fs *flag.FlagSet, dev bool) {
	fs.StringVar(&c.DataDir, "data", env("DATA", ".algocloud"), "data folder (databases, CA, servers, uploads)")
	fs.StringVar(&c.APIAddr, "addr", env("ADDR", "127.0.0.1:8080"), "API and wizard listen address")
	fs.StringVar(&c.Namespace, "namespace", env("NAMESPACE", "default"), "Temporal namespace")
	fs.StringVar(&c.DatabaseURL, "database-url", env("DATABASE_URL", ""), "metadata database: sqlite:///path or postgres://... (default: SQLite in the data folder)")
	fs.StringVar(&c.InferBinary, "infer-bin", env("INFER_BIN", ""), "path of the algocloud-infer binary (default: beside this binary, then PATH)")
	fs.StringVar(&c.Host, "host", env("HOST", "127.0.0.1"), "address endpoints listen on and clients dial (local provider)")
	fs.StringVar(&c.Domain, "domain", env("DOMAIN", "algocloud.test"), "endpoints are named <api-name>.<domain> in their certificates")
	fs.StringVar(&c.PipIndexURL, "pip-index-url", env("PIP_INDEX_URL", ""), "pip index URL for requirement installs")
	fs.StringVar(&c.PipFindLinks, "pip-find-links", env("PIP_FIND_LINKS", ""), "comma-separated pip --find-links folders or URLs")
	fs.BoolVar(&c.PipNoIndex, "pip-no-index", envBool("PIP_NO_INDEX", false), "install only from --pip-find-links")
	fs.BoolVar(&c.AllowLocalGit, "allow-local-git", envBool("ALLOW_LOCAL_GIT", dev), "allow code from local paths and file:// Git URLs")
	fs.BoolVar(&c.AllowPrivateGit, "allow-private-git", envBool("ALLOW_PRIVATE_GIT", dev), "allow Git URLs on loopback and private addresses")
	fs.BoolVar(&c.AllowPrivateURL, "allow-private-urls", envBool("ALLOW_PRIVATE_URLS", false), "let endpoints download image URLs from loopback and private addresses")
	fs.DurationVar(&c.PredictTimeout, "predict-timeout", 60*time.Second, "time limit of one prediction")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error")
	if dev {
		fs.IntVar(&c.TemporalPort, "temporal-port", 7233, "embedded Temporal frontend port")
		fs.IntVar(&c.UIPort, "ui-port", 8233, "Temporal UI port (0 disables it)")
	} else {
		fs.StringVar(&c.TemporalAddress, "temporal-address", env("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port")
	}
}

// finish resolves derived defaults after flags are parsed.
func (c *config) finish() error {
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite://" + filepath.Join(c.DataDir, "algocloud.db")
	}
	return nil
}

func (c *config) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// inferBinary finds algocloud-infer beside this executable or on PATH.
func (c *config) inferBinary() (string, error) {
	if c.InferBinary != "" {
		return c.InferBinary, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "algocloud-infer")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := execLookPath("algocloud-infer"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("algocloud-infer not found beside this binary or on PATH: build it with `task build` (or go build -o bin/ ./cmd/...) or pass --infer-bin")
}
