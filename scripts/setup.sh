#!/usr/bin/env bash
# Installs everything algocloud needs on a Debian machine with Go, idempotently:
# Debian packages (Python with numpy/Pillow/venv, PostgreSQL for the store tests,
# git) and Go tools. Safe to run again; it only installs what is missing.
set -euo pipefail

pkgs=(python3 python3-numpy python3-pil python3-venv python3-pip python3-wheel postgresql git ca-certificates curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: Debian packages present"
