//! What a run under an ABI model refuses and how it reports: modules that
//! make raw system calls are not run under the macOS or Windows model (they
//! run natively on Linux), with the instruction's `.asm` line as the reason.

mod common;

use std::path::Path;

use wheelwright_workers::abimodel::Model;
use wheelwright_workers::platform::Target;
use wheelwright_workers::report::{Status, TargetReport};

/// The smoke step's run of one target's wheel.
fn smoked(project: &Path, target: Target) -> TargetReport {
    let (report, _dirs) = common::build(project, &[target], true);
    common::target(&report, target).clone()
}

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
    let linux = smoked(project.path(), Target::Linux);
    assert_eq!(linux.status, Status::Succeeded, "{linux:#?}");
    assert_eq!((linux.tests[0].passed, linux.tests[0].model.as_deref()), (1, None));
    for (target, model, module, kernel) in [
        (Target::Macos, Model::Macos, "rawsys.abi3.so", "macOS x86-64 ABI model cannot give macOS"),
        (Target::Windows, Model::Windows, "rawsys.pyd", "Windows x64 ABI model cannot give Windows"),
    ] {
        let report = smoked(project.path(), target);
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
