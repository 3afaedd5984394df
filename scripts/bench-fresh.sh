#!/usr/bin/env bash
# Measures a fresh start (docs/benchmarks.md, "Fresh start"): `git clone` of
# this repository's HEAD into a temporary folder, then, with an EMPTY Go build
# cache, install (scripts/setup.sh), download (go mod download), build
# (scripts/build.sh), start (`algocloud dev` answering /healthz) and the first
# prediction of examples/segmentation (algocloud deploy + algocloud predict).
# GOMODCACHE stays the machine's unless the caller sets it. Each step's time is
# printed as soon as it ends. Loads the machine for many minutes: run it alone.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
root=$(mktemp -d /tmp/algocloud-fresh.XXXXXX)
export GOCACHE="$root/gocache"
mkdir -p "$GOCACHE"
echo "fresh: $root, GOCACHE empty, GOMODCACHE $(go env GOMODCACHE), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
now() { date +%s.%N; }
t=$(now)
lap() {
  local n
  n=$(now)
  printf 'fresh: %-16s %7.1f s\n' "$1" "$(echo "$n - $t" | bc)"
  t=$n
}
dev=""
trap '[ -n "$dev" ] && kill -INT "$dev" 2>/dev/null; true' EXIT

git clone -q "$src" "$root/algocloud"
cd "$root/algocloud"
git checkout -q "$(git -C "$src" rev-parse HEAD)"
lap clone
./scripts/setup.sh >"$root/setup.log" 2>&1
lap install
go mod download >"$root/download.log" 2>&1
lap download
./scripts/build.sh >"$root/build.log" 2>&1
lap build
port=$((20000 + RANDOM % 20000))
./bin/algocloud dev --data "$root/data" --addr "127.0.0.1:$port" --temporal-port $((port + 1)) --ui-port $((port + 2)) >"$root/dev.log" 2>&1 &
dev=$!
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && grep -q "algocloud dev is running" "$root/dev.log"; do
  kill -0 "$dev" 2>/dev/null || { cat "$root/dev.log" >&2; exit 1; }
  sleep 0.1
done
lap start
ALGOCLOUD_TOKEN=$(sed -n 's/^  export ALGOCLOUD_TOKEN=//p' "$root/dev.log")
export ALGOCLOUD_TOKEN ALGOCLOUD_API="http://127.0.0.1:$port"
./bin/algocloud deploy examples/segmentation >"$root/deploy.log" 2>&1
lap deploy
endpoint=$(sed -n 's/^  endpoint  //p' "$root/deploy.log")
ALGOCLOUD_ENDPOINT_TOKEN=$(sed -n 's/^  export ALGOCLOUD_ENDPOINT_TOKEN=//p' "$root/deploy.log")
export ALGOCLOUD_ENDPOINT_TOKEN
/usr/bin/python3 -c "from PIL import Image; Image.new('RGB', (64, 64), (200, 30, 30)).save('$root/in.png')"
./bin/algocloud predict --endpoint "$endpoint" --ca "$root/data/ca/root.pem" "$root/in.png" -o "$root/mask.png" >"$root/predict.log" 2>&1
lap first-prediction
echo "fresh: logs in $root (rm -rf it when done)"
