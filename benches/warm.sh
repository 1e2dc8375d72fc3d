#!/usr/bin/env bash
# The warm test runner (issue 16) measured in the daemon, against the bare
# toolchain script as it is (three targets built, tests on Linux only), same
# interpreter, same run:
#   latency    upload -> end of one examples/pymult build, all three targets
#              tested (macOS and Windows under their ABI models), warm runners
#              already started; target <= 0.6x the bare script
#   throughput N distinct builds, all three targets tested, 2 workers, vs the
#              bare script N times 2 at a time; target >= 2x
# and where a warm build's time goes (its steps, from the build's record).
# Every build's log is checked for a cold fallback: the numbers are warm ones.
# COLD=1 measures the same daemon with the project opting out
# (`warm-tests = false`), for the comparison in the same conditions.
#
#   benches/warm.sh [RUNS] [N]      (default 9, 40)
#   COLD=1 benches/warm.sh [RUNS] [N]
#   BIN=path/to/wheelwright benches/warm.sh ...   (another build of the
#       daemon, e.g. one kept from before a change, for before/after rounds)
#   WORK_DIR=/dev/shm/ww benches/warm.sh ...      (the daemon's --work-dir;
#       TMPDIR=/dev/shm puts the bare script's files and all the daemon's
#       data on the tmpfs as well)
#   TEST_FILE=benches/one_test.py benches/warm.sh ...   (the floor: the
#       daemon's builds upload this file as pymult's tests, one test that
#       imports the module, while the bare script runs pymult's own; no work
#       on the test runner's side can give more than the ratios printed)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-9}
n=${2:-40}

scripts/setup.sh >/dev/null
bin=${BIN:-target/release/wheelwright}
[ -n "${BIN:-}" ] || cargo build --release --quiet
python=$(.venv/bin/python -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
. benches/bare_toolchain.sh
. benches/measure.sh

# WORK_DIR=dir: the daemon's build work directories there (--work-dir).
start_daemon "$bin" --pythons "$python" --workers 2 ${WORK_DIR:+--work-dir "$WORK_DIR"}

pyproject=examples/pymult/pyproject.toml
if [ "${COLD:-}" = 1 ]; then
  pyproject="$work/pyproject.toml"
  # Into [tool.wheelwright] itself: appended at the end it would land in
  # [build-system], which ignores it, and the "cold" runs would be warm.
  sed '/^\[tool\.wheelwright\]$/a warm-tests = false' examples/pymult/pyproject.toml >"$pyproject"
  grep -A1 '^\[tool\.wheelwright\]$' "$pyproject" | grep -qx 'warm-tests = false' || { echo "no opt-out in $pyproject"; exit 1; }
fi
mode=$([ "${COLD:-}" = 1 ] && echo cold || echo warm)
files=(-F "files=@examples/pymult/src/pymult.asm;filename=src/pymult.asm"
       -F "files=@$pyproject;filename=pyproject.toml"
       -F "files=@examples/pymult/README.md;filename=README.md"
       -F "files=@${TEST_FILE:-examples/pymult/tests/test_pymult.py};filename=tests/test_pymult.py")

# One build, upload to the end of its live log; fails on a cold fallback.
daemon_build() {
  local id
  id=$(submit -F targets=all -F rebuild=true)
  curl -sfN -H 'Accept: text/event-stream' "$base/api/v1/builds/$id/log" >"$work/stream"
  if [ "$mode" = warm ] && grep -q 'the tests run cold' "$work/stream"; then
    grep 'warm runner' "$work/stream" | head -n 1 >&2
    echo "build $id ran its tests cold" >&2
    return 1
  fi
  echo "$id"
}

# Latency. Two builds first: each worker's runners start, then serve.
bare "$work/bare"; daemon_build >/dev/null; daemon_build >/dev/null
latency_rounds "$runs"
# Where the time goes, from the last build's record.
curl -sf "$base/api/v1/builds/$last" >"$work/last.json"

# Throughput: n distinct builds, 2 at a time on both sides.
throughput "$n" 3.0
cold=$(grep -c 'the tests run cold' "$work/streams" || true)

.venv/bin/python - "$work/last.json" "$mode" <<'PY'
import json, sys
build = json.load(open(sys.argv[1]))
report = build.get("report") or build
print("where the last latency build's time went (engine steps, ms):")
for t in report.get("targets", []):
    steps = ", ".join("%s %d" % (s["name"], s["duration_ms"]) for s in t.get("steps", []))
    print("  %-15s %s" % (t.get("target"), steps))
# The path each test run took, as the build's record says: all of the mode
# measured, or the numbers are not what they claim.
runners = [r.get("runner") for t in report.get("targets", []) for r in t.get("tests", [])]
print("test runs of the last latency build: %s" % ", ".join(map(str, runners)))
if not runners or any(r != sys.argv[2] for r in runners):
    sys.exit("the last latency build's tests did not all run %s" % sys.argv[2])
PY
awk -v lb="$lat_bare" -v ld="$lat_daemon" -v tb="$thr_bare" -v td="$thr_daemon" -v n="$n" -v runs="$runs" -v cold="$cold" -v mode="$mode" \
    -v cb="$cpu_bare" -v cd="$cpu_daemon" -v tests="${TEST_FILE:-}" 'BEGIN {
  if (tests != "")
    printf "FLOOR: the daemon tests %s in place of the tests of pymult (the bare script runs those)\n", tests
  printf "latency, examples/pymult, all three targets tested, %s (%d runs, medians)\n", mode, runs
  printf "  bare toolchain script (tests on Linux) : %8.1f ms\n", lb / 1000
  printf "  daemon, upload to end                  : %8.1f ms  ratio %.2fx (target <= 0.6x)\n", ld / 1000, ld / lb
  printf "throughput, %d distinct builds, parallelism 2 (warm runs fallen back to cold: %d)\n", n, cold
  printf "  bare toolchain script : %8.1f s   %.2f builds/s\n", tb / 1e6, n / (tb / 1e6)
  printf "  daemon, %-4s          : %8.1f s   %.2f builds/s  ratio %.2fx (target >= 2x)\n", mode, td / 1e6, n / (td / 1e6), tb / td
  if (cb != "" && cd != "")
    printf "  CPU per build (all processes of each side): bare script %d ms, daemon %d ms (%.2fx)\n", cb, cd, cd / cb
}'
