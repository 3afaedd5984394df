#!/usr/bin/env bash
# Installs moto_server (moto's implementation of the AWS APIs, which the EC2
# provider's tests run against), idempotently (scripts/setup-test.sh runs it).
#
# internal/testmoto looks for moto_server in this order, and so does this
# script, so that the one it installs is the one the tests run:
#   1. on PATH (a Debian python3-moto that ships it, or any other install)
#   2. the venv this script makes: ${XDG_DATA_HOME:-~/.local/share}/algocloud/moto
#   3. pyenv's shims (${PYENV_ROOT:-~/.pyenv}/shims), for shells without pyenv's init
# Debian bookworm has no python3-moto and npm has no moto, so on bookworm it
# comes from PyPI into that venv; with no PyPI reachable it only says so (the
# EC2 tests then fail, naming what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh

moto_version=5.2.1 # what the EC2 tests were written against (moto 5.x with its server extra)
venv="${XDG_DATA_HOME:-$HOME/.local/share}/algocloud/moto"
shim="${PYENV_ROOT:-$HOME/.pyenv}/shims/moto_server"

found() {
  local bin
  for bin in "$(command -v moto_server || true)" "$venv/bin/moto_server" "$shim"; do
    if [ -n "$bin" ] && [ -x "$bin" ]; then
      echo "moto: moto_server at $bin"
      return 0
    fi
  done
  return 1
}

found && exit 0
# Debian's package where the release has one (newer than bookworm), with the
# Flask pieces its server needs.
if apt-cache show python3-moto >/dev/null 2>&1; then
  apt_install python3-moto python3-flask python3-flask-cors
  found && exit 0
fi
echo "moto: installing moto[server]==$moto_version into $venv"
if python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"; then
  found && exit 0
fi
echo "moto: ERROR: could not install moto_server (no Debian package, PyPI unreachable?): the EC2 provider tests (activities/compute/ec2) will fail." >&2
echo "moto:        install moto with its server extra into a Python on PATH: pip install 'moto[server]' (moto 5.x)" >&2
