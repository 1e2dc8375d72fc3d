#!/usr/bin/env bash
# Times the full `examples/pymult` build on all three targets with the tests
# run on every target (macOS and Windows under their ABI models) against the
# same three-target build with tests on Linux only, alternating in one run on
# one machine with the same interpreters, and prints the medians and their
# ratio (target <= 1.6x).
#
# "Tests on Linux only" is the same work split in two concurrent commands:
# `--target linux-x86_64` (with its smoke test) and
# `--target macos-x86_64,windows-x86_64 --no-smoke`, started together as the
# engine runs targets side by side. The engine has no option for "smoke on
# some targets only"; the split adds one process start (~ms) to the baseline.
#
#   benches/all_targets.sh [RUNS]      (default 9)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-9}

cargo build --release --quiet
ww=target/release/wheelwright
python=$(.venv/bin/python -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

build() {
  WHEELWRIGHT_PYTHONS="$python" "$ww" build examples/pymult --out "$work/dist" "$@" 2>>"$work/log"
}
all_tested() { build --target all; }
linux_tested() {
  build --target linux-x86_64 & local a=$!
  build --target macos-x86_64,windows-x86_64 --no-smoke & local b=$!
  wait "$a"; wait "$b"
}

all_tested; linux_tested   # warm up: caches, page cache, the smoke environment
: >"$work/all.times"; : >"$work/linux.times"
for _ in $(seq "$runs"); do
  t0=$(now); all_tested; t1=$(now); linux_tested; t2=$(now)
  echo $(( (t1 - t0) / 1000 )) >>"$work/all.times"
  echo $(( (t2 - t1) / 1000 )) >>"$work/linux.times"
done
a=$(median <"$work/all.times"); l=$(median <"$work/linux.times")
# Where the time goes: the smoke step of each target, from one JSON report.
WHEELWRIGHT_PYTHONS="$python" "$ww" build examples/pymult --target all --out "$work/dist" --json 2>/dev/null \
  | .venv/bin/python -c '
import json, sys
report = json.load(sys.stdin)
for t in report["targets"]:
    steps = ", ".join("%s %d ms" % (s["name"], s["duration_ms"]) for s in t["steps"])
    print("  %-15s %s" % (t["target"], steps))'
awk -v a="$a" -v l="$l" -v n="$runs" 'BEGIN {
  printf "pymult, three targets, %d runs each, medians\n", n
  printf "  tests on all three targets : %7.1f ms\n", a / 1000
  printf "  tests on Linux only        : %7.1f ms\n", l / 1000
  printf "  ratio                      : %7.2fx (target <= 1.6x)\n", a / l
}'
