#!/usr/bin/env bash
# Runs a local PostgreSQL for development and for tests that should share one
# long-lived server (export the DSN it prints as ALGOCLOUD_TEST_POSTGRES).
#
#   scripts/postgres.sh start    initdb on first use, start on 127.0.0.1, print the DSN
#   scripts/postgres.sh stop     stop it (data kept)
#   scripts/postgres.sh status
#   scripts/postgres.sh destroy  stop it and delete its data
#
# ALGOCLOUD_PG_DIR (default /tmp/algocloud-pg) holds the data and the Unix socket;
# ALGOCLOUD_PG_PORT (default 55432) is the TCP port. Authentication is "trust" and
# only loopback listens: this is for one developer's machine, never a shared host.
set -euo pipefail

dir=${ALGOCLOUD_PG_DIR:-/tmp/algocloud-pg}
port=${ALGOCLOUD_PG_PORT:-55432}

bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "postgres.sh: no PostgreSQL under /usr/lib/postgresql: run scripts/setup.sh" >&2
  exit 1
fi

# PostgreSQL refuses to run as root: run its tools as the postgres OS user then.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dsn="postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable"

case "${1:-}" in
start)
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
      -o "-p $port -h 127.0.0.1 -k $dir" start >/dev/null
  fi
  echo "export ALGOCLOUD_TEST_POSTGRES='$dsn'"
  ;;
stop)
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop
  ;;
status)
  as_pg "$bin/pg_ctl" -D "$dir/data" status
  ;;
destroy)
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop 2>/dev/null || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop|status|destroy" >&2
  exit 2
  ;;
esac
