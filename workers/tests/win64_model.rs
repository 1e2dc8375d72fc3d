//! The Windows model made faithful where Windows differs: a C `long` is 32
//! bits (LLP64), variadic calls are placed by their format string, and the
//! fixture `win64_long` shows it through the smoke step and the harness.

mod common;

use std::path::PathBuf;
use std::process::Command;

use wheelwright_workers::abimodel::{self, Model};
use wheelwright_workers::platform::Target;
use wheelwright_workers::report::Status;

fn fixture() -> PathBuf {
    common::repo().join("workers/tests/fixtures/win64_long")
}

#[test]
fn from_long_of_2_pow_40_passes_on_linux_and_macos_and_arrives_as_0_on_windows() {
    for target in [Target::Linux, Target::Macos] {
        let report = common::smoked(&fixture(), target);
        assert_eq!(report.status, Status::Succeeded, "{target}: {report:#?}");
        let run = &report.tests[0];
        assert_eq!((run.passed, run.failed, run.errors), (3, 0, 0), "{target}: {run:#?}");
    }
    let windows = common::smoked(&fixture(), Target::Windows);
    assert_eq!(windows.status, Status::Failed, "{windows:#?}");
    let run = &windows.tests[0];
    assert_eq!((run.passed, run.failed, run.errors), (2, 1, 0), "{run:#?}");
    assert_eq!(run.model.as_deref(), Some(Model::Windows.label()));
    assert_eq!(run.failures.len(), 1, "{run:#?}");
    let failure = &run.failures[0];
    assert!(failure.test.ends_with("test_from_long_keeps_a_64_bit_value"), "{failure:#?}");
    assert!(
        failure.message.contains("assert 0 == (2 ** 40)")
            && failure.message.contains("where 0 = <built-in function big>()"),
        "{failure:#?}"
    );
}

/// Builds the fixture for `target`, unpacks its wheel beside the harness and
/// runs `code` in the host's python3 with the model's finder installed
/// (none for Linux); returns its output.
fn run_under(target: Target, code: &str) -> String {
    let (report, _dirs) = common::build(&fixture(), &[target], false);
    assert!(report.succeeded(), "{report:#?}");
    let wheel = &common::target(&report, target).artifacts[0].path;
    let scratch = tempfile::tempdir().unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    zip.extract(scratch.path().join("site")).unwrap();
    abimodel::install_harness(&scratch.path().join("harness")).unwrap();
    let prelude = match Model::for_target(target) {
        Some(model) => format!("from _wheelwright_abimodel import finder\nfinder.install({:?})\n", model.name()),
        None => String::new(),
    };
    let path = format!("{}:{}", scratch.path().join("harness").display(), scratch.path().join("site").display());
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}{code}"))
        .current_dir(scratch.path())
        .env("PYTHONPATH", path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python failed:\n{text}");
    text
}

/// Calls that differ with the size of a C long, one line each.
const LONG_CALLS: &str = "import win64long as m\n\
    def show(f, *a):\n    try:\n        print(repr(f(*a)))\n    except Exception as e:\n        print(type(e).__name__, e)\n\
    show(m.big)\n\
    show(m.as_long, -2**31)\n\
    show(m.as_long, 2**31)\n\
    show(m.as_long, 2**40)\n\
    show(m.as_long, 'x')\n\
    show(m.roundtrip, 0.5, -7)\n\
    show(m.roundtrip, 1e300, 2**31 - 1)\n\
    show(m.roundtrip, 0.5, 2**40)\n";

#[test]
fn c_long_results_and_l_units_overflow_on_windows_as_windows_cpython_raises() {
    let windows = run_under(Target::Windows, LONG_CALLS);
    assert_eq!(
        windows,
        "0\n-2147483648\n\
         OverflowError Python int too large to convert to C long\n\
         OverflowError Python int too large to convert to C long\n\
         TypeError 'str' object cannot be interpreted as an integer\n\
         (0.5, -7)\n(1e+300, 2147483647)\n\
         OverflowError Python int too large to convert to C long\n"
    );
    let linux = run_under(Target::Linux, LONG_CALLS);
    assert_eq!(
        linux,
        "1099511627776\n-2147483648\n2147483648\n1099511627776\n\
         TypeError 'str' object cannot be interpreted as an integer\n\
         (0.5, -7)\n(1e+300, 2147483647)\n(0.5, 1099511627776)\n"
    );
}

#[test]
fn generated_bridges_place_every_argument_where_an_independent_win64_caller_put_it() {
    let tools = common::toolchain();
    let nasm = tools.path(wheelwright_workers::toolchain::Tool::Nasm).expect("nasm");
    let ld = tools.path(wheelwright_workers::toolchain::Tool::LdLld).expect("ld.lld");
    let harness = common::repo().join("workers/src/abimodel/harness");
    let out = Command::new(common::venv_python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"])
        .arg(harness.join("tests/test_win64_bridges.py"))
        .env("WHEELWRIGHT_NASM", nasm)
        .env("WHEELWRIGHT_LD_LLD", ld)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&harness)
        .output()
        .expect("the venv's python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pytest failed:\n{text}");
    assert!(text.contains("12 passed") && !text.contains("skipped"), "{text}");
}

/// A multi-phase module whose `Py_mod_exec` slot uses rsi as scratch
/// (legal under System V, callee-saved under Win64): the slot is reached
/// only through the table `PyModuleDef_Init` receives.
const EXEC_SLOT_CLOBBERS_RSI: &str = r#"%include "wheelwright.inc"

PYIMPORT PyModuleDef_Init, PyModule_AddIntConstant

section .data
align 8
slots:
    dd 2, 0                   ; Py_mod_exec
    dq exec_module
    dd 0, 0
    dq 0
moduledef:
    istruc PyModuleDef
        at PyModuleDef.ob_refcnt,  dq 1
        at PyModuleDef.ob_type,    dq 0
        at PyModuleDef.m_init,     dq 0
        at PyModuleDef.m_index,    dq 0
        at PyModuleDef.m_copy,     dq 0
        at PyModuleDef.m_name,     dq s_module
        at PyModuleDef.m_doc,      dq 0
        at PyModuleDef.m_size,     dq 0
        at PyModuleDef.m_methods,  dq 0
        at PyModuleDef.m_slots,    dq slots
        at PyModuleDef.m_traverse, dq 0
        at PyModuleDef.m_clear,    dq 0
        at PyModuleDef.m_free,     dq 0
    iend
s_module: db "execslot", 0
s_value:  db "VALUE", 0

section .text
exec_module:
    FUNCTION_BEGIN 0
    mov esi, 1                ; scratch, never restored
    lea ARG2, [rel s_value]
    mov ARG3d, 7
    PYCALL PyModule_AddIntConstant
    FUNCTION_END

PYINIT execslot
    FUNCTION_BEGIN 0
    lea ARG1, [rel moduledef]
    PYCALL PyModuleDef_Init
    FUNCTION_END
"#;

#[test]
fn a_py_mod_exec_slot_using_rsi_as_scratch_fails_on_windows_naming_the_slot_and_passes_elsewhere() {
    let project = common::project(&[
        (
            "pyproject.toml",
            "[project]\nname = \"execslot\"\nversion = \"0.1.0\"\n\n[tool.wheelwright]\n\
             targets = [\"linux-x86_64\", \"macos-x86_64\", \"windows-x86_64\"]\n\
             lint = \"off\"\n",
        ),
        ("src/execslot.asm", EXEC_SLOT_CLOBBERS_RSI),
        (
            "tests/test_execslot.py",
            "def test_exec_adds_value():\n    import execslot\n    assert execslot.VALUE == 7\n",
        ),
    ]);
    for target in [Target::Linux, Target::Macos] {
        let report = common::smoked(project.path(), target);
        assert_eq!(report.status, Status::Succeeded, "{target}: {report:#?}");
        assert_eq!((report.tests[0].passed, report.tests[0].failed), (1, 0), "{target}");
    }
    let windows = common::smoked(project.path(), Target::Windows);
    assert_eq!(windows.status, Status::Failed, "{windows:#?}");
    let run = &windows.tests[0];
    assert_eq!((run.passed, run.failed, run.errors), (0, 1, 0), "{run:#?}");
    let line = EXEC_SLOT_CLOBBERS_RSI.lines().position(|l| l == "exec_module:").unwrap() + 2;
    assert!(
        run.failures[0].message.contains(&format!(
            "SystemError: wheelwright ABI guard: Py_mod_exec slot of execslot (src/execslot.asm:{line}: \
             FUNCTION_BEGIN 0 (in macro FUNCTION_BEGIN)) returned with rsi changed: it is callee-saved under the \
             Win64 ABI"
        )),
        "{run:#?}"
    );
}
