package ec2

import (
	"bytes"
	"errors"
	"strings"
	"text/template"

	"github.com/algocloud/algocloud/activities/compute"
)

// userDataTemplate installs Python and the inference server and runs it
// under systemd. The unit fetches the binary and the deployment's bundle
// (live.json, code, venv requirements, certificate) before every start, so a
// stop/start of the instance (compute.Provider Stop/Start of the live
// service) picks up what the worker last published.
var userDataTemplate = template.Must(template.New("user-data").Parse(`#!/bin/bash
# algocloud deployment {{.DeploymentID}} ({{.APIName}}): written by the EC2 provider.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-numpy python3-pil python3-venv python3-pip curl ca-certificates
id algocloud >/dev/null 2>&1 || useradd --system --home /opt/algocloud --shell /usr/sbin/nologin algocloud
install -d -o algocloud -g algocloud /opt/algocloud /opt/algocloud/bin
cat >/opt/algocloud/fetch.sh <<'FETCH'
#!/bin/bash
# Fetches the inference server and this deployment's bundle; runs before every start.
set -euo pipefail
cd /opt/algocloud
curl -fsSL --retry 5 -o bin/algocloud-infer.new {{.Artifacts}}/algocloud-infer
chmod 0755 bin/algocloud-infer.new && mv bin/algocloud-infer.new bin/algocloud-infer
curl -fsSL --retry 5 -o bundle.tar.gz {{.Artifacts}}/{{.DeploymentID}}/bundle.tar.gz
rm -rf bundle.new && mkdir bundle.new && tar -xzf bundle.tar.gz -C bundle.new
rm -rf bundle && mv bundle.new bundle
FETCH
chmod 0755 /opt/algocloud/fetch.sh
cat >/etc/systemd/system/algocloud-infer.service <<'UNIT'
[Unit]
Description=algocloud inference server ({{.APIName}})
Wants=network-online.target
After=network-online.target

[Service]
User=algocloud
WorkingDirectory=/opt/algocloud
PermissionsStartOnly=true
ExecStartPre=/opt/algocloud/fetch.sh
ExecStart=/opt/algocloud/bin/algocloud-infer --config /opt/algocloud/bundle/live.json
AmbientCapabilities=CAP_NET_BIND_SERVICE
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now algocloud-infer.service
# Serving on port {{.Port}}.
`))

// DefaultUserData is the cloud-init script of a deployment's instance: it
// installs Debian's Python with numpy and Pillow, then runs algocloud-infer
// under systemd, fetching before every start artifacts/algocloud-infer and
// artifacts/<deployment-id>/bundle.tar.gz (live.json and what it names). The
// artifacts URL is a store the worker publishes to (S3 or another HTTPS
// server); it must not need credentials beyond what the URL carries. It is
// never executed under moto.
func DefaultUserData(s compute.ServerSpec, artifactsURL string, port int) (string, error) {
	if artifactsURL == "" {
		return "", errors.New("no artifacts URL for the default user data (Options.ArtifactsURL)")
	}
	if !deploymentIDRe.MatchString(s.DeploymentID) {
		return "", errors.New("deployment id is not valid")
	}
	var b bytes.Buffer
	err := userDataTemplate.Execute(&b, map[string]any{
		"DeploymentID": s.DeploymentID,
		"APIName":      oneLine(s.APIName),
		"Artifacts":    shellQuote(strings.TrimRight(artifactsURL, "/")),
		"Port":         port,
	})
	return b.String(), err
}

// shellQuote quotes s for a POSIX shell, as one word.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// oneLine keeps text for a comment or unit description on its line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
