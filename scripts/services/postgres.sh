#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: `start` initialises a cluster
# in a fresh data directory owned by the `postgres` user (the server refuses
# to run as root), listening only on 127.0.0.1 on a free port, and prints its
# admin URL; `url` prints it again; `stop` stops the server and removes its
# data. Debian's `postgresql` package provides the binaries (scripts/setup.sh).
#
# WHEELWRIGHT_PG_DIR chooses where the cluster lives (default
# /tmp/wheelwright-pg-<uid>); one cluster per directory.
set -euo pipefail

dir="${WHEELWRIGHT_PG_DIR:-/tmp/wheelwright-pg-$(id -u)}"
data="$dir/data"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -n "$bin" ] && [ -x "$bin/pg_ctl" ] || { echo "postgres.sh: no PostgreSQL server installed (scripts/setup.sh)" >&2; exit 1; }

# As the `postgres` user when we are root (initdb and the server refuse root).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

url() {
  [ -f "$dir/port" ] || { echo "postgres.sh: no server started in $dir" >&2; exit 1; }
  echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
}

# A port nobody listens on now (the server binds it itself, and start fails
# loudly if another process took it in between).
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

start() {
  if [ -f "$dir/port" ] && as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    url
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
  # Trust on loopback only: a throwaway cluster with throwaway data, and the
  # server listens nowhere else (no Unix socket either).
  as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  local port
  port="$(free_port)"
  # Durability off: nothing here outlives the run, and fsync costs the suite.
  as_postgres "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "$port" >"$dir/port"
  url
}

stop() {
  if [ -d "$data" ]; then
    as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
