#!/usr/bin/env bash
# Measures several daemons on PostgreSQL + S3 against the embedded default,
# both in the same run, on the same binary and the same machine:
#   throughput N distinct builds (examples/pymult, all targets, smoke test)
#              through two daemons with one worker each on one PostgreSQL and
#              one S3 prefix (uploads alternate between them, every live log
#              followed through the first), vs one daemon with two workers on
#              SQLite + the local store; target >= 0.9x
#   latency    one build, upload to the end of its live log, on a daemon of
#              the cluster vs on the SQLite daemon; target <= 1.1x
# Each of RUNS rounds measures both sides back to back; medians are printed.
# PostgreSQL and SeaweedFS are the throwaway servers of scripts/services/,
# in this run's own temporary directory.
#
#   benches/cluster.sh [RUNS] [N]      (defaults 3 and 60)
#   WHEELWRIGHT_BIN=target/debug/wheelwright benches/cluster.sh   (skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
n=${2:-60}

scripts/setup.sh >/dev/null
if [ -z "${WHEELWRIGHT_BIN:-}" ]; then
  cargo build --release --quiet --bin wheelwright
  WHEELWRIGHT_BIN=target/release/wheelwright
fi
bin=$WHEELWRIGHT_BIN
python=$(.venv/bin/python -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
chmod 755 "$work" # the postgres user owns its data directory below
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

export WHEELWRIGHT_PG_DIR="$work/pg" WHEELWRIGHT_S3_DIR="$work/s3"
daemons=()
cleanup() {
  for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${daemons[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/services/s3.sh stop >/dev/null 2>&1 || true
  scripts/services/postgres.sh stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
admin_url=$(scripts/services/postgres.sh start)
eval "$(scripts/services/s3.sh start)"
export AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
s3_base=$WHEELWRIGHT_TEST_S3
unset WHEELWRIGHT_TEST_S3

# start NAME ARGS...: a daemon on its own data directory; sets $base_NAME.
start() {
  local name=$1 base=
  shift
  "$bin" serve --data-dir "$work/data-$name" --bind 127.0.0.1:0 --pythons "$python" "$@" 2>"$work/$name.log" &
  daemons+=($!)
  for _ in $(seq 400); do
    base=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/$name.log" | head -n 1)
    [ -n "$base" ] && break
    sleep 0.05
  done
  [ -n "$base" ] || { cat "$work/$name.log"; exit 1; }
  printf -v "base_$name" '%s' "$base"
}

start sqlite --workers 2
psql -q "$admin_url" -c 'CREATE DATABASE bench'
db_url=${admin_url%/*}/bench
store="$s3_base/$(date +%s)"
start a --workers 1 --database-url "$db_url" --store "$store"
start b --workers 1 --database-url "$db_url" --store "$store"
sleep 2

files=(-F "files=@examples/pymult/src/pymult.asm;filename=src/pymult.asm"
       -F "files=@examples/pymult/pyproject.toml;filename=pyproject.toml"
       -F "files=@examples/pymult/README.md;filename=README.md"
       -F "files=@examples/pymult/tests/test_pymult.py;filename=tests/test_pymult.py")
# latency BASE: one build through BASE, upload to the end of its live log.
# The build's address comes from the Location header and its status from
# the log's end event: no interpreter starts inside the measured time.
latency() {
  local location
  location=$(curl -sf "${files[@]}" -F targets=all -F rebuild=true -o /dev/null -w '%header{location}' "$1/api/v1/builds")
  [ -n "$location" ] || { echo "upload to $1 failed"; exit 1; }
  curl -sfN -H 'Accept: text/event-stream' "$1$location/log" >"$work/latency.stream"
  grep -A1 '^event: end' "$work/latency.stream" | grep -q '^data: succeeded' || { echo "build $location failed"; exit 1; }
}

# throughput ROUND FOLLOW BASE...: N distinct builds uploaded by one curl
# process round-robin over the BASEs, then every live log followed through
# FOLLOW by one more (a client per build would spend the cores the builds need).
throughput() {
  local round=$1 follow=$2 i=0
  shift 2
  local bases=("$@") uploads=()
  for i in $(seq "$n"); do
    [ "$i" -gt 1 ] && uploads+=(--next)
    uploads+=(-sf "${files[@]}" -F targets=all -F "version=$round.0.$i" -o /dev/null -w '%header{location}\n'
              "${bases[$(( i % ${#bases[@]} ))]}/api/v1/builds")
  done
  curl "${uploads[@]}" >"$work/locations"
  [ "$(grep -c /api/v1/builds/ "$work/locations")" -eq "$n" ] || { echo "uploads failed"; exit 1; }
  curl -sfN -H 'Accept: text/event-stream' $(sed "s|^|$follow|; s|$|/log|" "$work/locations") >"$work/streams"
  local succeeded
  succeeded=$(grep -A1 '^event: end' "$work/streams" | grep -c '^data: succeeded' || true)
  [ "$succeeded" -eq "$n" ] || { echo "$((n - succeeded)) of $n builds did not succeed"; exit 1; }
}

# Warm both sides (caches, connections, the first S3 objects).
latency "$base_sqlite"; latency "$base_a"; latency "$base_b"
: >"$work/lat-sqlite.t"; : >"$work/lat-cluster.t"; : >"$work/thr-sqlite.t"; : >"$work/thr-cluster.t"
for round in $(seq "$runs"); do
  for _ in 1 2 3; do
    t0=$(now); latency "$base_sqlite"; t1=$(now); latency "$base_a"; t2=$(now)
    echo $(( (t1 - t0) / 1000 )) >>"$work/lat-sqlite.t"; echo $(( (t2 - t1) / 1000 )) >>"$work/lat-cluster.t"
  done
  t0=$(now); throughput "$((10 + round))" "$base_sqlite" "$base_sqlite"; t1=$(now)
  throughput "$((20 + round))" "$base_a" "$base_a" "$base_b"; t2=$(now)
  echo $(( (t1 - t0) / 1000 )) >>"$work/thr-sqlite.t"; echo $(( (t2 - t1) / 1000 )) >>"$work/thr-cluster.t"
  echo "round $round: throughput sqlite $(( (t1 - t0) / 1000000 )) ms, cluster $(( (t2 - t1) / 1000000 )) ms" >&2
done
# Both cluster daemons built (the queue is shared, not one daemon's).
for name in a b; do
  base_var=base_$name
  built=$(curl -sf "${!base_var}/metrics" | awk -F' ' '/^wheelwright_step_duration_seconds_count\{step="assemble"\}/ {print $2}')
  echo "daemon $name ran the assemble step ${built:-0} times" >&2
done

ls_=$(median <"$work/lat-sqlite.t"); lc=$(median <"$work/lat-cluster.t")
ts=$(median <"$work/thr-sqlite.t"); tc=$(median <"$work/thr-cluster.t")
awk -v ls="$ls_" -v lc="$lc" -v ts="$ts" -v tc="$tc" -v n="$n" -v runs="$runs" -v bin="$bin" \
    -v rounds="$(paste "$work/thr-sqlite.t" "$work/thr-cluster.t" | awk '{printf "%.2fx ", $1 / $2}')" 'BEGIN {
  printf "binary: %s; %d rounds, medians\n", bin, runs
  printf "throughput, %d distinct builds (examples/pymult, all targets, smoke test)\n", n
  printf "  1 daemon x 2 workers, SQLite + local : %7.2f s  %.2f builds/s\n", ts / 1e6, n / (ts / 1e6)
  printf "  2 daemons x 1 worker, PostgreSQL + S3: %7.2f s  %.2f builds/s  ratio %.2fx (target >= 0.9x)\n", tc / 1e6, n / (tc / 1e6), ts / tc
  printf "  per round: %s\n", rounds
  printf "latency, one build, upload to the end of its live log (%d each)\n", runs * 3
  printf "  SQLite + local store : %8.1f ms\n", ls / 1000
  printf "  PostgreSQL + S3      : %8.1f ms  ratio %.2fx (target <= 1.1x)\n", lc / 1000, lc / ls
}'
