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
find_tool() { command -v "$1" || command -v "$1-19" || echo "/usr/lib/llvm-19/bin/$1"; }
nasm=$(find_tool nasm); ldlld=$(find_tool ld.lld); ld64=$(find_tool ld64.lld)
lldlink=$(find_tool lld-link); dlltool=$(find_tool llvm-dlltool)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=examples/pymult/src/pymult.asm
inc=workers/include/
# The .def python3-dll-a carries, as a person would download it.
def=$(ls ~/.cargo/registry/src/*/python3-dll-a-*/src/python3.def | tail -n 1)

bare() {
  local d="$work/bare"
  rm -rf "$d" && mkdir -p "$d/linux" "$d/macos" "$d/windows"
  "$nasm" -f elf64 -DPIE -I"$inc" -o "$d/l.o" "$src"
  "$ldlld" -shared -z noexecstack -o "$d/linux/pymult.abi3.so" "$d/l.o"
  "$nasm" -f macho64 -DNOPIE -DMACOS --prefix _ -I"$inc" -o "$d/m.o" "$src"
  "$ld64" -arch x86_64 -platform_version macos 10.9 10.9 -bundle -undefined dynamic_lookup -o "$d/macos/pymult.so" "$d/m.o"
  "$nasm" -f win64 -DNOPIE -DWINDOWS -I"$inc" -o "$d/w.obj" "$src"
  "$dlltool" -m i386:x86-64 -d "$def" -l "$d/python3.lib"
  "$lldlink" /DLL /NOENTRY /MACHINE:X64 /EXPORT:PyInit_pymult "/OUT:$d/windows/pymult.pyd" "$d/w.obj" "$d/python3.lib" >/dev/null
  (cd "$d" && PYTHONPATH="$d/linux" "$python" -X faulthandler -X dev -m pytest -q -p no:cacheprovider --junitxml="$d/junit.xml" "$OLDPWD/examples/pymult/tests" >"$work/pytest.log" 2>&1) || { cat "$work/pytest.log"; return 1; }
}

wheelwright() {
  WHEELWRIGHT_PYTHONS="$python" "$ww" build examples/pymult --target all --out "$work/dist" "$@" 2>/dev/null
}

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Warm up both (caches, page cache, the smoke environment).
bare; wheelwright; wheelwright --sandbox=none; bare
: >"$work/bare.times"; : >"$work/ww.times"; : >"$work/none.times"
for _ in $(seq "$runs"); do
  t0=$(now); bare; t1=$(now); wheelwright; t2=$(now); wheelwright --sandbox=none; t3=$(now)
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
