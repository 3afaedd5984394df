#!/usr/bin/env bash
# The static checks scripts/test.sh runs before the tests (also `task lint`).
# Each failing check prints its findings and fails the run; the tools come
# from scripts/setup-test.sh (staticcheck, workflowcheck, shellcheck).
set -euo pipefail
cd "$(dirname "$0")/.."
gobin="$(go env GOPATH)/bin"
status=0
fail() { echo "lint: $*" >&2; status=1; }

mapfile -t gofiles < <(git ls-files '*.go')
# gofmt: a file it cannot parse is an error, shown, not hidden.
if ! unformatted=$(gofmt -l "${gofiles[@]}"); then
  fail "gofmt could not parse the files above${unformatted:+; gofmt needed too: $unformatted}"
elif [ -n "$unformatted" ]; then
  fail "gofmt needed (run task fmt): $unformatted"
fi

# go.mod and go.sum say exactly what the code imports.
go mod tidy -diff || fail "go.mod/go.sum are not tidy (the diff above; run go mod tidy)"
go vet ./... || fail "go vet"
"$gobin/staticcheck" ./... || fail "staticcheck"
# Workflows must stay deterministic (no time.Now, goroutines, map ranging, I/O).
"$gobin/workflowcheck" ./workflows/... ./predictions/... || fail "workflowcheck"
shellcheck -x scripts/*.sh .ci/run || fail "shellcheck"

# The README's layout table names every top-level folder and every package
# folder (by its path's last part), so a new one gets its line.
layout=$(sed -n '/^## Layout/,/^## /p' README.md)
mapfile -t dirs < <(git ls-files | sed -n 's|^\([^/]*\)/.*|\1|p' | sort -u)
mapfile -t pkgs < <(go list -f '{{.Dir}}' ./... | sed "s|^$PWD/||" | grep /)
for d in "${dirs[@]}" third_party; do
  grep -qF "\`$d" <<<"$layout" || fail "README.md's layout table does not list the folder $d/"
done
for p in "${pkgs[@]}"; do
  grep -qE "\`(${p%/*}/)?${p##*/}[/\`]" <<<"$layout" || fail "README.md's layout table does not list the package folder $p"
done
exit $status
