#!/usr/bin/env bash
# Helpers the set-up scripts source (not run on its own).

# apt_install PKG...: installs the Debian packages that are not installed yet
# (sudo when not root); nothing, not even `apt-get update`, when all are.
apt_install() {
  local p missing=() sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing Debian packages: ${missing[*]}"
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# go_install NAME MODULE@VERSION [DIR]: `go install`s a pinned tool into DIR
# (default GOPATH/bin) when DIR/NAME is missing. GOFLAGS is cleared so a
# project's -mod or -tags never apply to a tool's own module.
go_install() {
  local name=$1 mod=$2 dir=${3:-$(go env GOPATH)/bin}
  [ -x "$dir/$name" ] && return 0
  echo "setup: installing $name (${mod##*@}) into $dir"
  GOFLAGS='' GOBIN="$dir" go install "$mod"
}
