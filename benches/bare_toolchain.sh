# Sourced by the benchmarks: `bare DIR` builds examples/pymult for all three
# targets with the raw toolchain commands into DIR and runs its pytest tests
# on the Linux module with the flags wheelwright uses. Needs $python (an
# interpreter with pytest) and the repository root as the working directory.

find_tool() { command -v "$1" || command -v "$1-19" || echo "/usr/lib/llvm-19/bin/$1"; }
nasm=$(find_tool nasm); ldlld=$(find_tool ld.lld); ld64=$(find_tool ld64.lld)
lldlink=$(find_tool lld-link); dlltool=$(find_tool llvm-dlltool)
bare_src=examples/pymult/src/pymult.asm
bare_inc=workers/include/
# The .def python3-dll-a carries, as a person would download it.
bare_def=$(ls ~/.cargo/registry/src/*/python3-dll-a-*/src/python3.def | tail -n 1)

bare() {
  local d="$1"
  rm -rf "$d" && mkdir -p "$d/linux" "$d/macos" "$d/windows"
  "$nasm" -f elf64 -DPIE -I"$bare_inc" -o "$d/l.o" "$bare_src"
  "$ldlld" -shared -z noexecstack -o "$d/linux/pymult.abi3.so" "$d/l.o"
  "$nasm" -f macho64 -DNOPIE -DMACOS --prefix _ -I"$bare_inc" -o "$d/m.o" "$bare_src"
  "$ld64" -arch x86_64 -platform_version macos 10.9 10.9 -bundle -undefined dynamic_lookup -o "$d/macos/pymult.so" "$d/m.o"
  "$nasm" -f win64 -DNOPIE -DWINDOWS -I"$bare_inc" -o "$d/w.obj" "$bare_src"
  "$dlltool" -m i386:x86-64 -d "$bare_def" -l "$d/python3.lib"
  "$lldlink" /DLL /NOENTRY /MACHINE:X64 /EXPORT:PyInit_pymult "/OUT:$d/windows/pymult.pyd" "$d/w.obj" "$d/python3.lib" >/dev/null
  (cd "$d" && PYTHONPATH="$d/linux" "$python" -X faulthandler -X dev -m pytest -q -p no:cacheprovider \
      --junitxml="$d/junit.xml" "$OLDPWD/examples/pymult/tests" >"$d/pytest.log" 2>&1) || { cat "$d/pytest.log"; return 1; }
}

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
