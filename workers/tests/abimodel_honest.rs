//! What a run under an ABI model refuses and how it reports: modules that
//! make raw system calls are not run under the macOS or Windows model (they
//! run natively on Linux), with the instruction's `.asm` line as the reason.

mod common;

use wheelwright_workers::abimodel::Model;
use wheelwright_workers::platform::Target;
use wheelwright_workers::report::Status;

/// The smoke step's run of one target's wheel.
/// A module whose `PyInit` asks the kernel for its process id with a raw
/// `syscall` (Linux's number 39) before creating the module.
const RAW_SYSCALL: &str = r#"%include "wheelwright.inc"
PYIMPORT PyModule_Create2
section .data
align 8
methods:
    PYMETHOD_END
moduledef:
    PYMODULEDEF s_module, 0, methods
s_module: db "rawsys", 0
section .text
PYINIT rawsys
    FUNCTION_BEGIN 0
    mov eax, 39
    syscall
    lea ARG1, [rel moduledef]
    mov ARG2d, PYTHON_ABI_VERSION
    PYCALL PyModule_Create2
    FUNCTION_END
"#;

#[test]
fn a_module_making_raw_syscalls_is_refused_under_both_models_and_runs_on_linux() {
    let project = common::project(&[
        ("pyproject.toml", "[project]\nname = \"rawsys\"\nversion = \"0.1.0\"\n"),
        ("src/rawsys.asm", RAW_SYSCALL),
        ("tests/test_rawsys.py", "import rawsys\n\n\ndef test_imports():\n    assert rawsys.__name__ == \"rawsys\"\n"),
    ]);
    let linux = common::smoked(project.path(), Target::Linux);
    assert_eq!(linux.status, Status::Succeeded, "{linux:#?}");
    assert_eq!((linux.tests[0].passed, linux.tests[0].model.as_deref()), (1, None));
    for (target, model, module, kernel) in [
        (Target::Macos, Model::Macos, "rawsys.abi3.so", "macOS x86-64 ABI model cannot give macOS"),
        (Target::Windows, Model::Windows, "rawsys.pyd", "Windows x64 ABI model cannot give Windows"),
    ] {
        let report = common::smoked(project.path(), target);
        assert_eq!(report.status, Status::Failed, "{target}: {report:#?}");
        let reason = format!(
            "not run: {module} makes raw system calls, which the {kernel} kernel semantics: \
             `syscall` at src/rawsys.asm:14: syscall"
        );
        assert_eq!(report.tests.len(), 1, "{report:#?}");
        let run = &report.tests[0];
        assert_eq!(run.problem.as_deref(), Some(reason.as_str()), "{target}");
        assert_eq!((run.passed, run.failed, run.model.as_deref()), (0, 0, Some(model.label())));
        assert_eq!(report.reason.as_deref(), Some(format!("{}: {reason}", run.interpreter).as_str()));
    }
}

/// A method that reads through a NULL pointer.
const NULL_DEREF: &str = r#"%include "wheelwright.inc"
PYIMPORT PyModule_Create2
section .data
align 8
methods:
    PYMETHOD s_boom, boom, METH_NOARGS, 0
    PYMETHOD_END
moduledef:
    PYMODULEDEF s_module, 0, methods
s_module: db "crashy", 0
s_boom: db "boom", 0
section .text
boom:
    xor eax, eax
    mov rax, [rax]
    ret
PYINIT crashy
    FUNCTION_BEGIN 0
    lea ARG1, [rel moduledef]
    mov ARG2d, PYTHON_ABI_VERSION
    PYCALL PyModule_Create2
    FUNCTION_END
"#;

/// The project's test crashes in the module; the finder has recorded where
/// it mapped it (`images.record`).
const NULL_DEREF_TEST: &str = r#"import crashy


def test_boom():
    crashy.boom()
"#;

#[test]
fn a_crash_under_either_model_is_reported_at_its_asm_line_from_the_hosts_tables() {
    let project = common::project(&[
        ("pyproject.toml", "[project]\nname = \"crashy\"\nversion = \"0.1.0\"\n"),
        ("src/crashy.asm", NULL_DEREF),
        ("tests/test_crashy.py", NULL_DEREF_TEST),
    ]);
    for (target, module) in [(Target::Macos, "crashy.abi3.so"), (Target::Windows, "crashy.pyd")] {
        let report = common::smoked(project.path(), target);
        assert_eq!(report.status, Status::Failed, "{target}: {report:#?}");
        let run = &report.tests[0];
        assert_eq!(run.problem.as_deref(), Some("the test process crashed with SIGSEGV"), "{target}: {run:#?}");
        let crash = run.crash.as_ref().unwrap_or_else(|| panic!("{target}: no crash report: {run:#?}"));
        assert_eq!(crash.signal, "SIGSEGV");
        assert_eq!(crash.location.as_deref(), Some(format!("boom + 2 in {module}").as_str()), "{target}: {crash:#?}");
        assert_eq!(crash.source_line.as_deref(), Some("src/crashy.asm:15: mov rax, [rax]"), "{target}: {crash:#?}");
        let instruction = crash.instruction.as_deref().unwrap_or_default();
        assert!(instruction.ends_with("mov rax,QWORD PTR [rax]"), "{target}: {instruction}");
    }
}

#[test]
fn the_image_record_passes_its_own_tests() {
    let harness = common::repo().join("workers/src/abimodel/harness");
    let out = std::process::Command::new(common::venv_python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"])
        .arg(harness.join("tests/test_images.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&harness)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 passed"), "{text}");
}
