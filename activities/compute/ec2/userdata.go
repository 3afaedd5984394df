package ec2

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"text/template"

	"github.com/algocloud/algocloud/activities/compute"
)

// userDataTemplate installs Python and the inference server and runs it
// under systemd. The unit runs fetch.sh before every start: it fetches the
// binary and the deployment's bundle (live.json.in, code, requirements,
// certificate and key), opens the bundle (encrypted: see SealBundle), fetches
// the ONNX Runtime library the bundle names (ONNXRuntimeSumFile, checking its
// SHA-256), makes the venv and installs the requirements when live.json runs
// Python from it, so a stop/start of the instance
// (compute.Provider Stop/Start of the live service) picks up what the worker
// last published. fetch.sh takes ALGOCLOUD_HOME and ALGOCLOUD_LISTEN from its
// environment (defaults /opt/algocloud and 0.0.0.0:<port>), so the same
// script can run elsewhere (the integration test runs it on 127.0.0.1).
var userDataTemplate = template.Must(template.New("user-data").Parse(`#!/bin/bash
# algocloud deployment {{.DeploymentID}} ({{.APIName}}): written by the EC2 provider.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-numpy python3-pil python3-venv python3-pip curl ca-certificates openssl
id algocloud >/dev/null 2>&1 || useradd --system --home /opt/algocloud --shell /usr/sbin/nologin algocloud
install -d -o algocloud -g algocloud /opt/algocloud /opt/algocloud/bin
install -m 0700 /dev/null /opt/algocloud/fetch.sh
cat >/opt/algocloud/fetch.sh <<'FETCH'
#!/bin/bash
# Fetches the inference server and this deployment's bundle; runs before every start.
set -euo pipefail
home="${ALGOCLOUD_HOME:-/opt/algocloud}"
listen="${ALGOCLOUD_LISTEN:-0.0.0.0:{{.Port}}}"
artifacts={{.Artifacts}}
cd "$home"
mkdir -p bin
curl -fsSL --retry 5 -o bin/algocloud-infer.new "$artifacts/algocloud-infer"
chmod 0755 bin/algocloud-infer.new && mv bin/algocloud-infer.new bin/algocloud-infer
rm -rf bundle.new && mkdir -m 0700 bundle.new
{{- if .Encrypted}}
curl -fsSL --retry 5 -o bundle.enc "$artifacts/{{.DeploymentID}}/bundle.enc"
hex() { od -An -v -tx1 | tr -d ' \n'; }
size=$(stat -c %s bundle.enc)
[ "$size" -gt 48 ] || { echo "fetch: bundle too short" >&2; exit 1; }
head -c $((size - 32)) bundle.enc >bundle.body
want=$(tail -c 32 bundle.enc | hex)
got=$(openssl dgst -sha256 -mac HMAC -macopt hexkey:{{.MACKey}} -binary bundle.body | hex)
[ "$want" = "$got" ] || { echo "fetch: bundle MAC mismatch (not published for this deployment)" >&2; exit 1; }
iv=$(head -c 16 bundle.body | hex)
tail -c +17 bundle.body | openssl enc -d -aes-256-ctr -K {{.EncKey}} -iv "$iv" | tar -xz -C bundle.new
rm -f bundle.body bundle.enc
{{- else}}
curl -fsSL --retry 5 -o bundle.tar.gz "$artifacts/{{.DeploymentID}}/bundle.tar.gz"
tar -xzf bundle.tar.gz -C bundle.new
{{- end}}
if [ -f bundle.new/{{.ONNXSumFile}} ]; then
  # Environment onnx: the ONNX Runtime library the bundle names by SHA-256.
  ort=$(tr -d ' \n' <bundle.new/{{.ONNXSumFile}})
  [[ "$ort" =~ ^[0-9a-f]{64}$ ]] || { echo "fetch: {{.ONNXSumFile}} is not a SHA-256" >&2; exit 1; }
  mkdir -p "$(dirname {{.ONNXPath}})"
  if [ "$(sha256sum {{.ONNXPath}} 2>/dev/null | cut -c1-64)" != "$ort" ]; then
    curl -fsSL --retry 5 -o {{.ONNXPath}}.new "$artifacts/onnxruntime/$ort/libonnxruntime.so.1"
    [ "$(sha256sum {{.ONNXPath}}.new | cut -c1-64)" = "$ort" ] || { rm -f {{.ONNXPath}}.new; echo "fetch: ONNX Runtime SHA-256 mismatch" >&2; exit 1; }
    chmod 0755 {{.ONNXPath}}.new && mv {{.ONNXPath}}.new {{.ONNXPath}}
  fi
fi
sed -e "s#@ALGOCLOUD_HOME@#$home#g" -e "s#@ALGOCLOUD_LISTEN@#$listen#g" bundle.new/live.json.in >bundle.new/live.json
# The venv, only when the config runs Python from it (not environment onnx without requirements).
if grep -qF '@ALGOCLOUD_HOME@/venv/' bundle.new/live.json.in; then
  [ -x venv/bin/python ] || /usr/bin/python3 -m venv --without-pip --system-site-packages venv
  if grep -q '^[^#[:space:]]' bundle.new/requirements.txt 2>/dev/null; then
    venv/bin/python -m pip install --disable-pip-version-check --no-input -r bundle.new/requirements.txt
  fi
fi
if [ "$(id -u)" = 0 ] && id algocloud >/dev/null 2>&1; then chown -R algocloud: bundle.new; fi
rm -rf bundle && mv bundle.new bundle
FETCH
cat >/etc/systemd/system/algocloud-infer.service <<'UNIT'
[Unit]
Description=algocloud inference server ({{.APIName}})
Wants=network-online.target
After=network-online.target

[Service]
User=algocloud
WorkingDirectory=/opt/algocloud
ExecStartPre=+/opt/algocloud/fetch.sh
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

// Placeholders in a bundle's live.json.in that fetch.sh fills in.
const (
	HomePlaceholder   = "@ALGOCLOUD_HOME@"
	ListenPlaceholder = "@ALGOCLOUD_LISTEN@"
)

// DefaultUserData is the cloud-init script of a deployment's instance: it
// installs Debian's Python with numpy and Pillow, then runs algocloud-infer
// under systemd, fetching before every start artifacts/algocloud-infer and
// artifacts/<deployment-id>/bundle.tar.gz (live.json.in and what it names),
// unencrypted. The artifacts URL must then be a store that is itself
// private to the instance (credentials in the URL); the platform uses
// EncryptedUserData instead. It is never executed under moto.
func DefaultUserData(s compute.ServerSpec, artifactsURL string, port int) (string, error) {
	return userData(s, artifactsURL, port, nil)
}

// EncryptedUserData is DefaultUserData for an encrypted bundle,
// artifacts/<deployment-id>/bundle.enc, opened with keys (see SealBundle),
// which the script holds: fetch.sh is mode 0700, root's.
func EncryptedUserData(s compute.ServerSpec, artifactsURL string, port int, keys BundleKeys) (string, error) {
	return userData(s, artifactsURL, port, &keys)
}

func userData(s compute.ServerSpec, artifactsURL string, port int, keys *BundleKeys) (string, error) {
	if artifactsURL == "" {
		return "", errors.New("no artifacts URL for the default user data (Options.ArtifactsURL)")
	}
	if !deploymentIDRe.MatchString(s.DeploymentID) {
		return "", errors.New("deployment id is not valid")
	}
	data := map[string]any{
		"DeploymentID": s.DeploymentID,
		"APIName":      oneLine(s.APIName),
		"Artifacts":    shellQuote(strings.TrimRight(artifactsURL, "/")),
		"Port":         port,
		"Encrypted":    keys != nil,
		"ONNXSumFile":  ONNXRuntimeSumFile,
		"ONNXPath":     ONNXRuntimePath,
	}
	if keys != nil {
		data["EncKey"], data["MACKey"] = hex.EncodeToString(keys.Enc[:]), hex.EncodeToString(keys.MAC[:])
	}
	var b bytes.Buffer
	err := userDataTemplate.Execute(&b, data)
	return b.String(), err
}

// FetchScript returns the fetch.sh that user data installs, for running it
// elsewhere (tests run it on 127.0.0.1 as the instance would).
func FetchScript(userData string) (string, error) {
	_, rest, ok := strings.Cut(userData, "<<'FETCH'\n")
	if !ok {
		return "", errors.New("user data has no fetch script")
	}
	script, _, ok := strings.Cut(rest, "\nFETCH\n")
	if !ok {
		return "", errors.New("user data's fetch script has no end")
	}
	return script + "\n", nil
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
