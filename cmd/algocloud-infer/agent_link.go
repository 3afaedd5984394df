package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
)

// linkFlags are the agent mode's flags for the command channel (package
// agent/link): where the platform is, who this server is and how it proves
// it. The revisions side of the agent mode (agent.go) has its own.
type linkFlags struct {
	platform, server, credentialFile, caFile, stateDir string
}

func addLinkFlags(fs *flag.FlagSet) *linkFlags {
	f := &linkFlags{}
	fs.StringVar(&f.platform, "platform", "", "the platform API's base URL, https://... (required)")
	fs.StringVar(&f.server, "server", "", "this server's ID, as the platform provisioned it (required)")
	fs.StringVar(&f.credentialFile, "credential-file", "", "file holding this server's credential (ag_...; required; keep it 0600, outside what author code sees; read again when the platform refuses the credential, so a rotated one is written here)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM roots to verify the platform's certificate (default: the system's)")
	fs.StringVar(&f.stateDir, "state-dir", "", "the command channel's state folder: kept command results (default: <dir>/link; required without --dir)")
	return f
}

// config builds the link's configuration from the flags.
func (f *linkFlags) config(handlers map[string]link.Handler, log *slog.Logger) (link.Config, error) {
	var missing []string
	for _, fl := range []struct{ name, v string }{
		{"--platform", f.platform}, {"--server", f.server}, {"--credential-file", f.credentialFile}, {"--state-dir (or --dir)", f.stateDir},
	} {
		if fl.v == "" {
			missing = append(missing, fl.name)
		}
	}
	if len(missing) > 0 {
		return link.Config{}, fmt.Errorf("agent: %s required", strings.Join(missing, ", "))
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return link.Config{}, fmt.Errorf("agent: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return link.Config{}, fmt.Errorf("agent: %s holds no PEM certificate", f.caFile)
		}
		tlsConf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.Proxy = nil // the credential goes to the platform only, never through an environment's proxy
	return link.Config{
		Platform: f.platform, Server: f.server, CredentialFile: f.credentialFile,
		HTTPClient: &http.Client{Transport: tr}, StateDir: f.stateDir, Handlers: handlers, Logger: log,
	}, nil
}

// newLink makes the command channel's client with the handlers this binary
// has: agent.info, and agent/commands' kinds when rt is not nil (the agent
// runs an endpoint's revisions).
func (f *linkFlags) newLink(log *slog.Logger, rt *agentRuntime) (*link.Link, error) {
	cfg, err := f.config(agentHandlers(f.server, rt), log)
	if err != nil {
		return nil, err
	}
	return link.New(cfg)
}

// KindInfo is the command kind every agent answers: who and what it is (the
// platform's check that a server's agent is up and speaks its protocol).
const KindInfo = "agent.info"

// agentInfo is KindInfo's output.
type agentInfo struct {
	Server   string    `json:"server"`
	Protocol string    `json:"protocol"`
	OS       string    `json:"os"`
	Arch     string    `json:"arch"`
	PID      int       `json:"pid"`
	At       time.Time `json:"at"`
}

func infoHandler(server string) func(context.Context, protocol.Command, func(...string)) (json.RawMessage, error) {
	return func(_ context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
		progress(fmt.Sprintf("agent of server %s answering %s (attempt %d)", server, cmd.ID, cmd.Attempt))
		return json.Marshal(agentInfo{Server: server, Protocol: protocol.Version, OS: runtime.GOOS, Arch: runtime.GOARCH, PID: os.Getpid(), At: time.Now().UTC()})
	}
}
