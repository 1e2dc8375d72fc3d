#!/usr/bin/env bash
# Times `wheelwright build examples/pymult --target all` (with the smoke test),
# sandboxed and with --sandbox=none, against the same nasm / lld / llvm-dlltool
# / pytest commands run bare from this script, alternating in one run on one
# machine, and prints the medians and their ratios. The bare pytest gets the
# same flags wheelwright uses (-X faulthandler -X dev, JUnit XML), so the
# ratios measure wheelwright's own cost: orchestration, verification,
# packaging and the sandbox. Targets: <= 1.15x unsandboxed, <= 1.2x sandboxed.
#
#   benches/build_vs_bare.sh [RUNS]      (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}

scripts/setup.sh >/dev/null
cargo build --release --quiet
ww=target/release/wheelwright
python=$(.venv/bin/python -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. benches/bare_toolchain.sh

wheelwright() {
  WHEELWRIGHT_PYTHONS="$python" "$ww" build examples/pymult --target all --out "$work/dist" "$@" 2>/dev/null
}


# Warm up both (caches, page cache, the smoke environment).
bare "$work/bare"; wheelwright; wheelwright --sandbox=none; bare "$work/bare"
: >"$work/bare.times"; : >"$work/ww.times"; : >"$work/none.times"
for _ in $(seq "$runs"); do
  t0=$(now); bare "$work/bare"; t1=$(now); wheelwright; t2=$(now); wheelwright --sandbox=none; t3=$(now)
  echo $(( (t1 - t0) / 1000 )) >>"$work/bare.times"
  echo $(( (t2 - t1) / 1000 )) >>"$work/ww.times"
  echo $(( (t3 - t2) / 1000 )) >>"$work/none.times"
done
b=$(median <"$work/bare.times"); w=$(median <"$work/ww.times"); u=$(median <"$work/none.times")
awk -v b="$b" -v w="$w" -v u="$u" -v n="$runs" 'BEGIN {
  printf "pymult, all three targets + pytest, %d runs each, medians\n", n
  printf "  bare toolchain script           : %7.1f ms\n", b / 1000
  printf "  wheelwright build --sandbox=none: %7.1f ms  ratio %.2fx (target <= 1.15x)\n", u / 1000, u / b
  printf "  wheelwright build (sandboxed)   : %7.1f ms  ratio %.2fx (target <= 1.20x)\n", w / 1000, w / b
  printf "  sandbox cost                    : %7.1f ms  (%.2fx of unsandboxed)\n", (w - u) / 1000, w / u
}'
