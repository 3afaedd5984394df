package ec2

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/template"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
	"github.com/algocloud/algocloud/agent/protocol"
)

// The server agent on an instance (issue 10): with Options.Agent, a spec
// that asks for an agent (compute.ServerSpec.Agent) launches with user data
// that installs `algocloud-infer agent` as the systemd unit
// algocloud-agent.service instead of fetch.sh's inference server. The agent
// long-polls the platform's API with the server's credential, and runs
// every Install, Test Code and serve there, fetching each code revision
// (sealed with the deployment's bundle keys) from the bundle store.
//
// The credential is derived (AgentCredential) and registered with the hub
// just before RunInstances, and is written into the user data: whoever can
// read the instance's user data (the account's
// ec2:DescribeInstanceAttribute, and root on the instance) holds it, as
// they hold the bundle keys. It is derived from the platform's key, the
// deployment and RunInstances' idempotency token, not drawn at random: a
// Provision retry that launches again (its first attempt's answer lost, the
// instance not yet visible to the lookup by tag) sends the same token, gets
// the instance the first attempt launched, with the first attempt's user
// data, and registers the very credential that user data holds, instead of
// voiding it. A new instance (after the last one was terminated) gets a new
// token, so a new credential. It is good for this server's commands only
// (agenthub scopes a credential to its server ID) and is revoked when the
// server is released; on the instance it is a 0600 root file outside every
// sandbox.

// TagAgent (value "1") marks an instance launched with the agent's user
// data: Provision reports its server as one with an agent.
const TagAgent = "algocloud:agent"

// AgentOptions give the instances their server agent.
type AgentOptions struct {
	// Register makes credential (AgentCredential's) the one of the agent
	// with this server ID, replacing an earlier one (the platform's
	// agenthub.Hub.RegisterCredential; registering the same one again
	// changes nothing).
	Register func(ctx context.Context, serverID, credential string) error
	// Revoke removes the credential of the agent with this server ID
	// (agenthub.Hub.RevokeCredential): Sweep calls it for an instance
	// that was launched but never recorded. Nil: Sweep revokes nothing.
	Revoke func(ctx context.Context, serverID string) error
	// PlatformURL is the platform API's base URL the agents long-poll; it
	// must be reachable from the instances.
	PlatformURL string
	// PlatformCAPEM is the PEM of the CA the API's certificate chains to;
	// empty: the system's roots.
	PlatformCAPEM []byte
}

// AgentID is the server ID of a deployment's agent on EC2, by which its
// commands are addressed and its credential scoped. The instance ID is
// not known before the user data carrying the credential is written, so it
// is named after the deployment (one server per deployment on EC2).
func AgentID(deploymentID string) string { return "ec2." + deploymentID }

// Where the agent's files go on the instance; agent-setup.sh takes its
// home from ALGOCLOUD_HOME, as fetch.sh does, so the tests run it elsewhere.
const (
	agentHome = "/opt/algocloud"
	agentDir  = agentHome + "/agent"
)

var agentUserDataTemplate = template.Must(template.New("agent-user-data").Funcs(template.FuncMap{"shq": shellQuote}).Parse(`#!/bin/bash
# algocloud deployment {{.DeploymentID}} ({{.APIName}}): written by the EC2 provider; the instance runs the server agent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-numpy python3-pil python3-venv python3-pip curl ca-certificates openssl bubblewrap slirp4netns
# Ubuntu 24.04 lets unprivileged processes make user namespaces only under an AppArmor profile that allows it: bwrap gets one.
if [ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]; then
  printf 'abi <abi/4.0>,\ninclude <tunables/global>\nprofile algocloud-bwrap /usr/bin/bwrap flags=(unconfined) {\n  userns,\n}\n' >/etc/apparmor.d/algocloud-bwrap
  apparmor_parser -r /etc/apparmor.d/algocloud-bwrap || echo "algocloud: bwrap's AppArmor profile did not load; sandboxes may not start" >&2
fi
install -d -m 0755 {{.Home}}
install -m 0700 /dev/null {{.Home}}/agent-setup.sh
cat >{{.Home}}/agent-setup.sh <<'AGENTSETUP'
#!/bin/bash
# Fetches algocloud-infer and writes the agent's credential, bundle keys and platform CA (0600, root's); runs before every start of the agent.
set -euo pipefail
home="${ALGOCLOUD_HOME:-{{.Home}}}"
artifacts={{.Artifacts}}
umask 077
mkdir -p "$home/bin" "$home/agent"
chmod 0755 "$home" "$home/bin" && chmod 0700 "$home/agent"
curl -fsSL --retry 5 -o "$home/bin/algocloud-infer.new" "$artifacts/algocloud-infer"
chmod 0755 "$home/bin/algocloud-infer.new" && mv "$home/bin/algocloud-infer.new" "$home/bin/algocloud-infer"
printf '%s\n' {{shq .Credential}} >"$home/agent/credential.new" && mv "$home/agent/credential.new" "$home/agent/credential"
printf '%s' {{shq .Keys}} >"$home/agent/bundle.keys.new" && mv "$home/agent/bundle.keys.new" "$home/agent/bundle.keys"
{{- if .CAPEM}}
printf '%s' {{shq .CAPEM}} >"$home/agent/platform-ca.pem"
{{- end}}
AGENTSETUP
cat >/etc/systemd/system/algocloud-agent.service <<'UNIT'
[Unit]
Description=algocloud server agent ({{.APIName}})
Wants=network-online.target
After=network-online.target

[Service]
# Root: it holds the credential and the bundle keys (0600) and runs author code only through the sandbox (bwrap, as a uid of its own).
WorkingDirectory={{.Home}}
ExecStartPre={{.Home}}/agent-setup.sh
ExecStart={{.ExecStart}}
# SIGTERM stops the agent only: its revisions keep serving, and the agent started again adopts them.
KillMode=process
AmbientCapabilities=CAP_NET_BIND_SERVICE
Restart=always
RestartSec=2
# Hardening (docs/cloud.md). No MemoryMax or TasksMax: each install, test and revision has its sandbox's own limits, and a swap runs two revisions.
{{range .Hardening}}{{.}}
{{end}}
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now algocloud-agent.service
# The agent serves on port {{.Port}}.
`))

// AgentUserData is the cloud-init script of an instance that runs the
// server agent (see AgentOptions): Debian's Python with numpy and Pillow,
// bubblewrap, then algocloud-agent.service, whose agent-setup.sh fetches
// artifacts/algocloud-infer and writes the credential, the deployment's
// bundle keys and the platform's CA before every start.
func AgentUserData(s compute.ServerSpec, artifactsURL string, port int, keys BundleKeys, agent AgentOptions, credential string) (string, error) {
	if artifactsURL == "" {
		return "", errors.New("agent user data: no artifacts URL")
	}
	if !deploymentIDRe.MatchString(s.DeploymentID) {
		return "", errors.New("agent user data: deployment id is not valid")
	}
	u, err := url.Parse(agent.PlatformURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(agent.PlatformURL, " \t\n\"'\\%") {
		return "", fmt.Errorf("agent user data: platform URL %q is not an http(s) URL", agent.PlatformURL)
	}
	if !strings.HasPrefix(credential, "ag_") || strings.ContainsAny(credential, " \t\n'") {
		return "", errors.New("agent user data: the credential is not an agent credential")
	}
	artifacts := strings.TrimRight(artifactsURL, "/")
	if strings.ContainsAny(artifacts, " \t\n\"'\\%") {
		return "", fmt.Errorf("agent user data: artifacts URL %q cannot go on a unit's command line", artifacts)
	}
	hardening, err := unitHardening(s.InstanceType)
	if err != nil {
		return "", err
	}
	var kept []string
	for _, h := range hardening {
		if !strings.HasPrefix(h, "MemoryMax=") && !strings.HasPrefix(h, "MemorySwapMax=") && !strings.HasPrefix(h, "TasksMax=") {
			kept = append(kept, h)
		}
	}
	exec := []string{agentHome + "/bin/algocloud-infer", "agent", "--dir", agentDir,
		"--listen", fmt.Sprintf("0.0.0.0:%d", port), "--platform", agent.PlatformURL, "--server", AgentID(s.DeploymentID),
		"--credential-file", agentDir + "/credential"}
	if len(agent.PlatformCAPEM) > 0 {
		exec = append(exec, "--ca-file", agentDir+"/platform-ca.pem")
	}
	exec = append(exec, "--home", agentHome, "--bundle-url", artifacts+"/"+s.DeploymentID, "--bundle-keys-file", agentDir+"/bundle.keys",
		"--artifacts-url", artifacts)
	data := map[string]any{
		"DeploymentID": s.DeploymentID, "APIName": oneLine(s.APIName), "Home": agentHome,
		"Artifacts": shellQuote(artifacts), "Credential": credential, "Keys": bundlelayout.FormatKeys(keys),
		"CAPEM": string(agent.PlatformCAPEM), "ExecStart": strings.Join(exec, " "), "Hardening": kept, "Port": port,
	}
	var b bytes.Buffer
	err = agentUserDataTemplate.Execute(&b, data)
	return b.String(), err
}

// AgentSetupScript returns the agent-setup.sh that the agent's user data
// installs, for running it elsewhere (tests run it with ALGOCLOUD_HOME set).
func AgentSetupScript(userData string) (string, error) {
	return heredoc(userData, "AGENTSETUP")
}

// AgentExecStart returns the command line of the agent's unit
// (algocloud-agent.service's ExecStart), split into words: tests run that
// very agent with its paths moved to their home.
func AgentExecStart(userData string) ([]string, error) {
	unit, err := heredoc(userData, "UNIT")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(unit, "\n") {
		if cmd, ok := strings.CutPrefix(line, "ExecStart="); ok {
			return strings.Fields(cmd), nil
		}
	}
	return nil, errors.New("user data's agent unit has no ExecStart")
}

// AgentCredential derives the credential of the agent that the instance
// launched for deploymentID under RunInstances' idempotency token
// launchToken holds: "ag_" and HMAC-SHA256 of both under a key derived
// from the platform's 32-byte key master, in unpadded base64url (the form
// agenthub mints). The same launch gives the same credential (see the
// package's note on the agent).
func AgentCredential(master []byte, deploymentID, launchToken string) (string, error) {
	if len(master) != 32 {
		return "", fmt.Errorf("agent credential: encryption key has %d bytes, want 32", len(master))
	}
	k := hmac.New(sha256.New, master)
	k.Write([]byte("algocloud agent credential v1"))
	h := hmac.New(sha256.New, k.Sum(nil))
	h.Write([]byte(deploymentID + "\x00" + launchToken))
	return protocol.CredentialPrefix + base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

// agentUserData registers the agent's credential of the launch under
// launchToken and makes the user data of s (Options.Agent set, s asking for
// an agent).
func (p *Provider) agentUserData(ctx context.Context, s compute.ServerSpec, launchToken string) (string, error) {
	if len(p.opts.BundleEncryptionKey) == 0 {
		return "", errors.New("the agent's user data needs the bundle encryption key")
	}
	keys, err := DeriveBundleKeys(p.opts.BundleEncryptionKey, s.DeploymentID)
	if err != nil {
		return "", err
	}
	cred, err := AgentCredential(p.opts.BundleEncryptionKey, s.DeploymentID, launchToken)
	if err != nil {
		return "", err
	}
	if err := p.opts.Agent.Register(ctx, AgentID(s.DeploymentID), cred); err != nil {
		return "", fmt.Errorf("register the agent's credential: %w", err)
	}
	return AgentUserData(s, p.opts.ArtifactsURL, p.opts.Port, keys, *p.opts.Agent, cred)
}
