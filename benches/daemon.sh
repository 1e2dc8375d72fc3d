#!/usr/bin/env bash
# Measures the daemon against the bare toolchain in the same run:
#   latency    upload -> all three targets done for examples/pymult (with the
#              smoke test), vs one run of the bare toolchain commands; target <= 1.25x
#   throughput 100 distinct builds through the daemon (2 workers) vs the bare
#              script run 100 times with the same parallelism; target >= 0.9x
#   cache hit  an identical upload answered from earlier results; target < 20 ms
#   API        GET /api/v1/builds/{id} under wrk (2 threads, 32 connections)
#   memory     resident set of an idle daemon; target < 40 MiB
#
#   benches/daemon.sh [RUNS]      (default 9)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-9}

scripts/setup.sh >/dev/null
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
python=$(.venv/bin/python -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
. benches/bare_toolchain.sh
. benches/measure.sh

# shellcheck disable=SC2086 # DAEMON_ARGS is a list of flags
start_daemon target/release/wheelwright --pythons "$python" --workers ${WORKERS:-2} ${DAEMON_ARGS:-}
sleep 2
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")

files=(-F "files=@examples/pymult/src/pymult.asm;filename=src/pymult.asm"
       -F "files=@examples/pymult/pyproject.toml;filename=pyproject.toml"
       -F "files=@examples/pymult/README.md;filename=README.md"
       -F "files=@examples/pymult/tests/test_pymult.py;filename=tests/test_pymult.py")

# One build, upload to the end of its live log (the stream ends with the build).
daemon_build() {
  local id
  id=$(submit -F targets=all -F rebuild=true)
  curl -sfN -H 'Accept: text/event-stream' "$base/api/v1/builds/$id/log" | grep -q '^event: end' || true
  echo "$id"
}

# Latency.
bare "$work/bare"; daemon_build >/dev/null
latency_rounds "$runs"

# Throughput: 100 distinct builds, 2 at a time on both sides.
n=100
throughput "$n" 2.0

# Cache hits: the same upload again, answered from earlier results.
: >"$work/cache.t"
for _ in $(seq 20); do
  curl -sf -o "$work/cached.json" -w '%{time_total}\n' "${files[@]}" -F targets=all "$base/api/v1/builds" >>"$work/cache.t"
done
[ "$(json_field status <"$work/cached.json")" = succeeded ] || { echo "not a cache hit"; exit 1; }
cache_ms=$(median <"$work/cache.t" | awk '{print $1 * 1000}')

# API under load.
wrk -t2 -c32 -d10s --latency "$base/api/v1/builds/$last" >"$work/wrk.txt"
rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")

awk -v lb="$lat_bare" -v ld="$lat_daemon" -v tb="$thr_bare" -v td="$thr_daemon" -v n="$n" -v c="$cache_ms" \
    -v rps="$rps" -v p99="$p99" -v ri="$rss_idle" -v ra="$rss_after" -v runs="$runs" 'BEGIN {
  printf "latency, examples/pymult, all targets + smoke test (%d runs, medians)\n", runs
  printf "  bare toolchain script : %8.1f ms\n", lb / 1000
  printf "  daemon, upload to end : %8.1f ms  ratio %.2fx (target <= 1.25x)\n", ld / 1000, ld / lb
  printf "throughput, %d distinct builds, parallelism 2\n", n
  printf "  bare toolchain script : %8.1f s   %.2f builds/s\n", tb / 1e6, n / (tb / 1e6)
  printf "  daemon                : %8.1f s   %.2f builds/s  ratio %.2fx (target >= 0.9x)\n", td / 1e6, n / (td / 1e6), tb / td
  printf "cache hit, identical upload (median of 20): %.1f ms (target < 20 ms)\n", c
  printf "API, GET /api/v1/builds/{id}, wrk -t2 -c32 -d10s: %s requests/s, p99 %s\n", rps, p99
  printf "memory: idle RSS %.1f MiB (target < 40 MiB); after the runs %.1f MiB\n", ri / 1024, ra / 1024
}'
