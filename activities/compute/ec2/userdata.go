package ec2

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/sandbox"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
)

// userDataTemplate installs Python and the inference server and runs it
// under systemd. The unit runs fetch.sh before every start: it fetches the
// binary and the deployment's bundle (live.json.in, code, requirements,
// certificate and key), opens the bundle (encrypted: see SealBundle), fetches
// the ONNX Runtime library the bundle names (bundlelayout.ONNXRuntimeSumFile, checking its
// SHA-256), makes the venv and installs the requirements when live.json runs
// Python from it (through algocloud-infer install: in the config's sandbox,
// as an unprivileged uid, in a transient unit of its own under systemd), so
// a stop/start of the instance
// (compute.Provider Stop/Start of the live service) picks up what the worker
// last published. fetch.sh takes ALGOCLOUD_HOME and ALGOCLOUD_LISTEN from its
// environment (defaults /opt/algocloud and 0.0.0.0:<port>), so the same
// script can run elsewhere (the integration test runs it on 127.0.0.1).
// Encrypted user data also installs certfetch.sh and the systemd timer
// algocloud-cert.timer that runs it every minute (CertFetchScript): a renewed
// certificate reaches the running server without a restart. Both scripts
// take the lock <home>/.swap.lock around replacing files in <home>/bundle.
//
// The unit is hardened (unitHardening): the server and the author's Python
// workers it starts cannot reach the instance metadata service, write
// outside /opt/algocloud, or exceed the instance type's memory and tasks.
var userDataTemplate = template.Must(template.New("user-data").Funcs(template.FuncMap{"shq": shellQuote}).Parse(`#!/bin/bash
# algocloud deployment {{.DeploymentID}} ({{.APIName}}): written by the EC2 provider.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-numpy python3-pil python3-venv python3-pip curl ca-certificates openssl bubblewrap slirp4netns
# Ubuntu 24.04 lets unprivileged processes make user namespaces only under an AppArmor profile that allows it: bwrap gets one.
if [ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]; then
  printf 'abi <abi/4.0>,\ninclude <tunables/global>\nprofile algocloud-bwrap /usr/bin/bwrap flags=(unconfined) {\n  userns,\n}\n' >/etc/apparmor.d/algocloud-bwrap
  apparmor_parser -r /etc/apparmor.d/algocloud-bwrap || echo "algocloud: bwrap's AppArmor profile did not load; sandboxes may not start" >&2
fi
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
# algocloud-infer install makes it and runs pip in the config's sandbox (an unprivileged uid), never as root.
if grep -qF '@ALGOCLOUD_HOME@/venv/' bundle.new/live.json.in; then
  inst=("$home/bin/algocloud-infer" install --config "$home/bundle.new/live.json" --python /usr/bin/python3)
  if grep -q '^[^#[:space:]]' bundle.new/requirements.txt 2>/dev/null; then
    inst+=(--requirements "$home/bundle.new/requirements.txt")
  fi
  if [ "${ALGOCLOUD_INSTALL_UNIT:-}" = 1 ]; then
    # Its own unit: its sandbox cgroups go in a delegated cgroup of its own, not in algocloud-infer.service's.
    systemd-run --quiet --wait --pipe --collect --service-type=exec --working-directory="$home"{{range .Hardening}} -p {{shq .}}{{end}} "${inst[@]}"
  else
    "${inst[@]}"
  fi
fi
if [ "$(id -u)" = 0 ] && id algocloud >/dev/null 2>&1; then chown -R algocloud: bundle.new; fi
{{- if .Encrypted}}
exec 9>"$home/.swap.lock" && flock -w 60 9
{{- end}}
rm -rf bundle && mv bundle.new bundle
FETCH
{{- if .Encrypted}}
install -m 0700 /dev/null /opt/algocloud/certfetch.sh
cat >/opt/algocloud/certfetch.sh <<'CERTFETCH'
#!/bin/bash
# {{.CertPickupMarker}}: installs a renewed certificate and key in place (the timer runs it every minute).
set -euo pipefail
home="${ALGOCLOUD_HOME:-/opt/algocloud}"
artifacts={{.Artifacts}}
[ -d "$home/bundle/tls" ] || exit 0
work=$(mktemp -d "$home/.cert.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
curl -fsS --max-time 60 -o cert.enc "$artifacts/{{.DeploymentID}}/cert.enc" || { echo "certfetch: download failed; keeping the current certificate" >&2; exit 1; }
hex() { od -An -v -tx1 | tr -d ' \n'; }
size=$(stat -c %s cert.enc)
[ "$size" -gt 48 ] || { echo "certfetch: object too short; keeping the current certificate" >&2; exit 1; }
head -c $((size - 32)) cert.enc >body
want=$(tail -c 32 cert.enc | hex)
got=$(openssl dgst -sha256 -mac HMAC -macopt hexkey:{{.MACKey}} -binary body | hex)
[ "$want" = "$got" ] || { echo "certfetch: MAC mismatch; keeping the current certificate" >&2; exit 1; }
iv=$(head -c 16 body | hex)
mkdir -m 0700 new
tail -c +17 body | openssl enc -d -aes-256-ctr -K {{.EncKey}} -iv "$iv" | tar -xz -C new
ver=$(tr -d ' \n' <new/version)
[[ "$ver" =~ ^[0-9]{1,18}$ ]] || { echo "certfetch: bad version" >&2; exit 1; }
have=0
if [ -f "$home/cert.version" ]; then have=$(tr -d ' \n' <"$home/cert.version"); fi
[[ "$have" =~ ^[0-9]{1,18}$ ]] || have=0
[ "$ver" -gt "$have" ] || exit 0
[ -s new/cert.pem ] && [ -s new/key.pem ] || { echo "certfetch: empty certificate or key" >&2; exit 1; }
exec 9>"$home/.swap.lock" && flock -w 60 9
tls="$home/bundle/tls"
install -m 0644 new/cert.pem "$tls/cert.pem.new"
install -m 0600 new/key.pem "$tls/key.pem.new"
if [ "$(id -u)" = 0 ] && id algocloud >/dev/null 2>&1; then chown algocloud: "$tls/cert.pem.new" "$tls/key.pem.new"; fi
mv -f "$tls/key.pem.new" "$tls/key.pem"
mv -f "$tls/cert.pem.new" "$tls/cert.pem"
echo "$ver" >"$home/cert.version"
echo "certfetch: installed certificate version $ver"
CERTFETCH
{{- end}}
cat >/etc/systemd/system/algocloud-infer.service <<'UNIT'
[Unit]
Description=algocloud inference server ({{.APIName}})
Wants=network-online.target
After=network-online.target

[Service]
User=algocloud
WorkingDirectory=/opt/algocloud
# Root ("+"): fetch.sh holds the bundle keys and chowns the bundle; author code it runs only through algocloud-infer install.
ExecStartPre=+/opt/algocloud/fetch.sh
Environment=ALGOCLOUD_INSTALL_UNIT=1
ExecStart=/opt/algocloud/bin/algocloud-infer --config /opt/algocloud/bundle/live.json
AmbientCapabilities=CAP_NET_BIND_SERVICE
Restart=always
RestartSec=2
# Hardening (docs/cloud.md). No ProtectControlGroups, ProtectKernelTunables or RestrictNamespaces: bwrap and the delegated cgroups need them off.
{{range .Hardening}}{{.}}
{{end}}
[Install]
WantedBy=multi-user.target
UNIT
{{- if .Encrypted}}
cat >/etc/systemd/system/algocloud-cert.service <<'UNIT'
[Unit]
Description=algocloud certificate pick-up ({{.APIName}})
After=network-online.target

[Service]
Type=oneshot
ExecStart=/opt/algocloud/certfetch.sh
UNIT
cat >/etc/systemd/system/algocloud-cert.timer <<'UNIT'
[Unit]
Description=algocloud certificate pick-up, every minute

[Timer]
OnBootSec=1min
OnUnitActiveSec=1min
AccuracySec=5s

[Install]
WantedBy=timers.target
UNIT
{{- end}}
systemctl daemon-reload
systemctl enable --now algocloud-infer.service
{{- if .Encrypted}}
systemctl enable --now algocloud-cert.timer
{{- end}}
# Serving on port {{.Port}}.
`))

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
	hardening, err := unitHardening(s.InstanceType)
	if err != nil {
		return "", err
	}
	data := map[string]any{
		"Hardening":        hardening,
		"DeploymentID":     s.DeploymentID,
		"APIName":          oneLine(s.APIName),
		"Artifacts":        shellQuote(strings.TrimRight(artifactsURL, "/")),
		"Port":             port,
		"Encrypted":        keys != nil,
		"ONNXSumFile":      bundlelayout.ONNXRuntimeSumFile,
		"ONNXPath":         bundlelayout.ONNXRuntimePath,
		"CertPickupMarker": CertPickupMarker,
	}
	if keys != nil {
		data["EncKey"], data["MACKey"] = hex.EncodeToString(keys.Enc[:]), hex.EncodeToString(keys.MAC[:])
	}
	var b bytes.Buffer
	err = userDataTemplate.Execute(&b, data)
	return b.String(), err
}

// IMDS is the instance metadata service's addresses (IPv4 and the Nitro
// IPv6 one), which the unit's processes may not reach: the instance has no
// instance profile, and this keeps it so even if an operator attaches one.
const IMDS = "169.254.169.254 fd00:ec2::254"

// Headroom the unit's limits leave above the sandbox's, for the Go server,
// bwrap and slirp4netns: a worker's out-of-memory kill or fork bomb then
// hits the sandbox's own cgroup (the server sees it, says 422
// out_of_memory and restarts the worker) and not the whole unit.
const (
	unitMemoryHeadroom = 256 << 20
	unitTasksHeadroom  = 256
)

// unitHardening is the [Service] settings that confine algocloud-infer
// (and, passed to systemd-run, the install unit fetch.sh starts); what each
// one stops is in docs/cloud.md. ProtectControlGroups, ProtectKernelTunables
// and RestrictNamespaces stay off on purpose: the server creates the
// sandboxes' cgroups in its delegated cgroup (Delegate=yes) and bwrap
// creates user, mount, PID and network namespaces. NoNewPrivileges does not
// hinder bwrap, which needs no setuid bit with unprivileged user namespaces.
// MemoryMax and TasksMax are the instance type's sandbox limits
// (sandbox.ForInstanceType, scale 1) plus the headroom above.
func unitHardening(instanceType string) ([]string, error) {
	lim, err := sandbox.ForInstanceType(instanceType, 1)
	if err != nil {
		return nil, fmt.Errorf("unit limits: %w", err)
	}
	return []string{
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ReadWritePaths=/opt/algocloud",
		"PrivateTmp=yes",
		"ProtectHome=yes",
		"ProtectKernelModules=yes",
		"ProtectKernelLogs=yes",
		"ProtectClock=yes",
		"RestrictSUIDSGID=yes",
		"LockPersonality=yes",
		"Delegate=yes",
		fmt.Sprintf("MemoryMax=%d", lim.MemoryBytes+unitMemoryHeadroom),
		"MemorySwapMax=0",
		fmt.Sprintf("TasksMax=%d", lim.Pids+unitTasksHeadroom),
		"IPAddressDeny=" + IMDS,
	}, nil
}

// FetchScript returns the fetch.sh that user data installs, for running it
// elsewhere (tests run it on 127.0.0.1 as the instance would).
func FetchScript(userData string) (string, error) {
	return heredoc(userData, "FETCH")
}

// heredoc returns the body of the quoted here-document delimited by word.
func heredoc(userData, word string) (string, error) {
	_, rest, ok := strings.Cut(userData, "<<'"+word+"'\n")
	if !ok {
		return "", fmt.Errorf("user data has no %s script", word)
	}
	script, _, ok := strings.Cut(rest, "\n"+word+"\n")
	if !ok {
		return "", fmt.Errorf("user data's %s script has no end", word)
	}
	return script + "\n", nil
}

// CertPickupMarker is in user data that installs the certificate pick-up
// (certfetch.sh and its systemd timer, encrypted user data only); the
// provider tags instances launched with such user data TagCertPickup.
const CertPickupMarker = "algocloud certificate pick-up v1"

// HasCertPickup reports whether user data installs the certificate pick-up.
func HasCertPickup(userData string) bool { return strings.Contains(userData, CertPickupMarker) }

// CertFetchScript returns the certfetch.sh that encrypted user data
// installs (run by its timer every minute): it downloads
// artifacts/<deployment-id>/cert.enc (see BundleStore.PublishCert), checks
// its MAC, and, when its version is newer than the one installed, renames the
// new key and certificate over <home>/bundle/tls/{key,cert}.pem, which the
// running algocloud-infer reloads by itself. A download failure, a bad MAC
// or an old version keeps the current files. Tests run it elsewhere with
// ALGOCLOUD_HOME set, as FetchScript's.
func CertFetchScript(userData string) (string, error) {
	return heredoc(userData, "CERTFETCH")
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
