//! Verification against binaries made wrong on purpose with the real
//! assembler and linkers: each problem is named precisely.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use wheelwright_workers::capi::CApi;
use wheelwright_workers::platform::Target;
use wheelwright_workers::pyversion::PyVersion;
use wheelwright_workers::toolchain::{self, Tool};
use wheelwright_workers::verify::{self, Expect};
use wheelwright_workers::wheel::tags;

fn tool(t: Tool) -> PathBuf {
    toolchain::find(t).unwrap_or_else(|| panic!("{} is installed", t.name()))
}

fn run(program: &Path, args: &[&str], dir: &Path) {
    let out = Command::new(program).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{} {args:?}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
}

/// Assembles `source` for `format` in `dir` and returns the object's name.
fn assemble(dir: &Path, source: &str, format: &str) -> String {
    std::fs::write(dir.join("m.asm"), source).unwrap();
    let object = format!("m-{format}.o");
    run(&tool(Tool::Nasm), &["-f", format, "-o", &object, "m.asm"], dir);
    object
}

fn capi() -> std::sync::Arc<CApi> {
    CApi::load(&wheelwright_workers::default_cache_dir()).unwrap()
}

fn expect(python: Option<PyVersion>) -> Expect<'static> {
    Expect { init_symbol: "PyInit_m", python, macos_min: "10.9" }
}

fn verify_file(target: Target, path: &Path, python: Option<PyVersion>) -> Result<verify::Verified, String> {
    verify::verify(target, &std::fs::read(path).unwrap(), &expect(python), &capi()).map_err(|e| e.to_string())
}

const NOTE: &str = "section .note.GNU-stack noalloc noexec nowrite progbits\n";
const INIT: &str = "section .text\nglobal PyInit_m:function\nPyInit_m:\n    xor eax, eax\n    ret\n";

#[test]
fn an_executable_stack_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let object = assemble(dir.path(), INIT, "elf64");
    run(&tool(Tool::LdLld), &["-shared", "-z", "execstack", "-o", "m.so", &object], dir.path());
    assert_eq!(
        verify_file(Target::Linux, &dir.path().join("m.so"), None).unwrap_err(),
        "has an executable stack (PT_GNU_STACK is RWX); glibc 2.41 and newer refuse to load it"
    );
}

#[test]
fn linking_libpython_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let object = assemble(dir.path(), &format!("{NOTE}{INIT}"), "elf64");
    run(
        &tool(Tool::LdLld),
        &["-shared", "-soname", "libpython3.11.so.1.0", "-o", "libpython3.11.so", &object],
        dir.path(),
    );
    run(&tool(Tool::LdLld), &["-shared", "--no-as-needed", "-o", "m.so", &object, "libpython3.11.so"], dir.path());
    assert_eq!(
        verify_file(Target::Linux, &dir.path().join("m.so"), None).unwrap_err(),
        "links `libpython3.11.so.1.0`; extension modules must not link libpython (manylinux policy)"
    );
}

#[test]
fn text_relocations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("{NOTE}extern PyExc_ValueError\n{INIT}    mov rax, PyExc_ValueError\n");
    let object = assemble(dir.path(), &source, "elf64");
    run(&tool(Tool::LdLld), &["-shared", "-z", "notext", "-o", "m.so", &object], dir.path());
    assert_eq!(
        verify_file(Target::Linux, &dir.path().join("m.so"), None).unwrap_err(),
        "has text relocations (DT_TEXTREL); use `wrt ..plt` and `wrt ..got` for Python symbols"
    );
}

#[test]
fn imports_outside_the_c_api_are_named_and_glibc_versions_give_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let source =
        format!("{NOTE}extern memcpy\nextern printf\n{INIT}    call memcpy wrt ..plt\n    call printf wrt ..plt\n");
    let object = assemble(dir.path(), &source, "elf64");
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    run(&tool(Tool::LdLld), &["-shared", "-o", "m.so", &object, libc], dir.path());
    let bytes = std::fs::read(dir.path().join("m.so")).unwrap();
    assert_eq!(
        verify_file(Target::Linux, &dir.path().join("m.so"), None).unwrap_err(),
        "imports `memcpy` and `printf`, which are not part of the Python C API"
    );
    // memcpy@GLIBC_2.14 on x86-64: the lowest policy that covers it is manylinux2014.
    let glibc = verify::glibc_requirement(&bytes).unwrap();
    assert_eq!(glibc, Some((2, 14)));
    assert_eq!(tags::manylinux_tag(glibc), "manylinux_2_17_x86_64.manylinux2014_x86_64");
}

#[test]
fn abi3_modules_may_only_use_the_stable_abi() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("{NOTE}extern PyCell_New\n{INIT}    call PyCell_New wrt ..plt\n");
    let object = assemble(dir.path(), &source, "elf64");
    run(&tool(Tool::LdLld), &["-shared", "-o", "m.so", &object], dir.path());
    let module = dir.path().join("m.so");
    assert_eq!(
        verify_file(Target::Linux, &module, None).unwrap_err(),
        "imports `PyCell_New`, which is not in the stable ABI (abi3)"
    );
    let verified = verify_file(Target::Linux, &module, Some(PyVersion::new(3, 11))).unwrap();
    assert_eq!(verified.imports, ["PyCell_New"]);
}

#[test]
fn a_macos_module_must_be_a_bundle_for_the_tagged_macos() {
    let dir = tempfile::tempdir().unwrap();
    let object =
        assemble(dir.path(), "section .text\nglobal _PyInit_m\n_PyInit_m:\n    xor eax, eax\n    ret\n", "macho64");
    let ld64 = tool(Tool::Ld64Lld);
    let base = ["-arch", "x86_64", "-undefined", "dynamic_lookup", "-platform_version", "macos"];
    let link = |extra: &[&str], out: &str| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", out, &object]);
        run(&ld64, &args, dir.path());
    };
    link(&["11.0", "11.0", "-bundle"], "new.so");
    assert_eq!(
        verify_file(Target::Macos, &dir.path().join("new.so"), None).unwrap_err(),
        "needs macOS 11.0 but the wheel is tagged for 10.9"
    );
    link(&["10.9", "10.9", "-dylib"], "lib.dylib");
    assert_eq!(
        verify_file(Target::Macos, &dir.path().join("lib.dylib"), None).unwrap_err(),
        "is not a Mach-O bundle (MH_BUNDLE)"
    );
    link(&["10.9", "10.9", "-bundle"], "good.so");
    assert!(verify_file(Target::Macos, &dir.path().join("good.so"), None).is_ok());
}

#[test]
fn a_windows_module_must_be_a_dll_importing_only_from_python() {
    let dir = tempfile::tempdir().unwrap();
    let source = "extern __imp_GetTickCount\nsection .text\nglobal PyInit_m\nPyInit_m:\n    call [rel __imp_GetTickCount]\n    xor eax, eax\n    ret\n";
    let object = assemble(dir.path(), source, "win64");
    std::fs::write(dir.path().join("kernel32.def"), "LIBRARY kernel32.dll\nEXPORTS\nGetTickCount\n").unwrap();
    run(&tool(Tool::LlvmDlltool), &["-m", "i386:x86-64", "-d", "kernel32.def", "-l", "kernel32.lib"], dir.path());
    let lld_link = tool(Tool::LldLink);
    run(
        &lld_link,
        &["/DLL", "/NOENTRY", "/MACHINE:X64", "/EXPORT:PyInit_m", "/OUT:m.pyd", &object, "kernel32.lib"],
        dir.path(),
    );
    assert_eq!(
        verify_file(Target::Windows, &dir.path().join("m.pyd"), None).unwrap_err(),
        "imports from `kernel32.dll`; only `python3.dll` is allowed; imports `GetTickCount`, which is not part of the Python C API"
    );
    run(
        &lld_link,
        &["/ENTRY:PyInit_m", "/SUBSYSTEM:CONSOLE", "/MACHINE:X64", "/OUT:m.exe", &object, "kernel32.lib"],
        dir.path(),
    );
    let err = verify_file(Target::Windows, &dir.path().join("m.exe"), None).unwrap_err();
    assert!(err.starts_with("does not export `PyInit_m`; is not a DLL (IMAGE_FILE_DLL is not set)"), "{err}");
}

#[test]
fn a_module_for_another_platform_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let object = assemble(dir.path(), &format!("{NOTE}{INIT}"), "elf64");
    run(&tool(Tool::LdLld), &["-shared", "-o", "m.so", &object], dir.path());
    assert_eq!(verify_file(Target::Windows, &dir.path().join("m.so"), None).unwrap_err(), "is Elf, expected a PE DLL");
    assert_eq!(verify_file(Target::Linux, &dir.path().join("m-elf64.o"), None).unwrap_err(), "does not export `PyInit_m`; is not a shared object (ET_DYN); has no PT_GNU_STACK header, so its stack is executable; glibc 2.41 and newer refuse to load it");
}
