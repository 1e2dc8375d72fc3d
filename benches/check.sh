#!/usr/bin/env bash
# What the static ABI check costs: the `check` step's share of a whole build
# (all three targets, no smoke test) of every example, read from the build's
# own step durations (`--json`), medians of RUNS builds; and `wheelwright
# check` (assemble + check only) against the same build's wall time.
# Target: the check <= 5 % of the build.
#
#   benches/check.sh [RUNS]      (default 9)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-9}

cargo build --release --quiet
ww=target/release/wheelwright
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for example in examples/*/; do
  name=$(basename "$example")
  : >"$work/share"; : >"$work/build"; : >"$work/check"
  "$ww" build "$example" --target all --no-smoke --out "$work/dist" --json >/dev/null 2>&1   # warm up
  for _ in $(seq "$runs"); do
    t0=$(now)
    "$ww" build "$example" --target all --no-smoke --out "$work/dist" --json >"$work/report.json" 2>/dev/null
    t1=$(now)
    "$ww" check "$example" --target all >/dev/null 2>&1 || true
    t2=$(now)
    echo $(( (t1 - t0) / 1000 )) >>"$work/build"
    echo $(( (t2 - t1) / 1000 )) >>"$work/check"
    python3 - "$work/report.json" >>"$work/share" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
steps = [s for t in report["targets"] for s in t["steps"]]
total = sum(s["duration_ms"] for s in steps)
check = sum(s["duration_ms"] for s in steps if s["name"] == "check")
print(f"{100.0 * check / total if total else 0:.2f}")
PY
  done
  build_ms=$(median <"$work/build" | awk '{printf "%.1f", $1/1000}')
  check_ms=$(median <"$work/check" | awk '{printf "%.1f", $1/1000}')
  share=$(median <"$work/share")
  printf '%-10s check step: %5s %% of all steps   wheelwright check: %6s ms   build: %6s ms\n' \
    "$name" "$share" "$check_ms" "$build_ms"
done
echo "(target: the check step <= 5 % of the build)"
