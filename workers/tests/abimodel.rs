//! The ABI models: the macOS and Windows wheels the engine builds, mapped
//! into the host's CPython by the embedded harness and driven by the
//! project's own pytest tests (here without the sandbox; the smoke step's
//! runs are in the tests at the end).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use wheelwright_workers::abimodel::{self, Model};
use wheelwright_workers::platform::Target;

/// A built wheel of one target, unpacked, with the harness beside it.
struct Unpacked {
    _dirs: common::Dirs,
    scratch: tempfile::TempDir,
}

impl Unpacked {
    fn site(&self) -> PathBuf {
        self.scratch.path().join("site")
    }
    fn harness(&self) -> PathBuf {
        self.scratch.path().join("harness")
    }
}

/// Builds `project` for `target` (no smoke test), unpacks its wheel and
/// writes the harness.
fn unpack(project: &Path, target: Target) -> Unpacked {
    let (report, dirs) = common::build(project, &[target], false);
    assert!(report.succeeded(), "{report:#?}");
    let wheel = &common::target(&report, target).artifacts[0].path;
    let scratch = tempfile::tempdir().unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    zip.extract(scratch.path().join("site")).unwrap();
    abimodel::install_harness(&scratch.path().join("harness")).unwrap();
    Unpacked { _dirs: dirs, scratch }
}

/// Runs pytest on `tests` with the model's plugin; returns (success, output).
fn pytest(unpacked: &Unpacked, model: Model, tests: &Path) -> (bool, String) {
    let path = format!("{}:{}", unpacked.harness().display(), unpacked.site().display());
    let out = Command::new(common::venv_python())
        .args(["-X", "faulthandler", "-m", "pytest", "-p", "no:cacheprovider", "-p", abimodel::PLUGIN])
        .arg(tests)
        .current_dir(unpacked.scratch.path())
        .env("PYTHONPATH", path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(abimodel::MODEL_ENV, model.name())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Runs a Python snippet under the model (finder installed first).
fn python(unpacked: &Unpacked, model: Model, code: &str) -> String {
    let path = format!("{}:{}", unpacked.harness().display(), unpacked.site().display());
    let prelude = format!("from _wheelwright_abimodel import finder\nfinder.install({:?})\n", model.name());
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}{code}"))
        .current_dir(unpacked.scratch.path())
        .env("PYTHONPATH", path)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python failed:\n{text}");
    text
}

#[test]
fn macos_pymult_imports_from_its_mach_o_bundle_and_multiplies() {
    let unpacked = unpack(&common::example("pymult"), Target::Macos);
    let out = python(
        &unpacked,
        Model::Macos,
        "import pymult\n\
         print(type(pymult.__loader__).__module__, pymult.__file__.rsplit('/', 1)[1])\n\
         print(pymult.multiply(2**40, 3))\n\
         try:\n    pymult.multiply(2**62, 4)\nexcept OverflowError as e:\n    print('OverflowError', e)\n",
    );
    assert_eq!(
        out,
        "_wheelwright_abimodel.finder pymult.abi3.so\n3298534883328\n\
         OverflowError multiply: result does not fit in a signed 64-bit integer\n"
    );
}

#[test]
fn windows_pymult_imports_from_its_pe_dll_through_win64_thunks() {
    let unpacked = unpack(&common::example("pymult"), Target::Windows);
    let out = python(
        &unpacked,
        Model::Windows,
        "import pymult\n\
         print(pymult.__file__.rsplit('/', 1)[1], pymult.__doc__)\n\
         print(pymult.multiply(2**40, 3), pymult.multiply(-6, 7))\n\
         for bad in ((2**62, 4), ('2', 3)):\n    try:\n        pymult.multiply(*bad)\n    except (OverflowError, TypeError) as e:\n        print(type(e).__name__, e)\n",
    );
    assert_eq!(
        out,
        "pymult.pyd Integer multiplication written in x86-64 assembly.\n3298534883328 -42\n\
         OverflowError multiply: result does not fit in a signed 64-bit integer\n\
         TypeError 'str' object cannot be interpreted as an integer\n"
    );
}

fn every_example_passes_under(target: Target, model: Model) {
    for (name, passed) in [("pymult", 7), ("vecstats", 8)] {
        let unpacked = unpack(&common::example(name), target);
        let (ok, out) = pytest(&unpacked, model, &common::example(name).join("tests"));
        assert!(ok, "{name}:\n{out}");
        assert!(out.contains(&format!("{passed} passed")), "{name}:\n{out}");
        assert!(out.contains(&format!("wheelwright ABI model: {}", model.name())), "{name}:\n{out}");
    }
}

#[test]
fn macos_wheels_of_every_example_pass_their_tests_under_the_model() {
    every_example_passes_under(Target::Macos, Model::Macos);
}

#[test]
fn windows_wheels_of_every_example_pass_their_tests_under_the_model() {
    every_example_passes_under(Target::Windows, Model::Windows);
}

/// The smoke step's run of one target's wheel.
fn smoked(project: &Path, target: Target) -> wheelwright_workers::report::TargetReport {
    let (report, _dirs) = common::build(project, &[target], true);
    common::target(&report, target).clone()
}

#[test]
fn the_smoke_step_runs_every_example_on_macos_and_windows_under_their_model() {
    for name in ["pymult", "vecstats"] {
        let passed = if name == "pymult" { 7 } else { 8 };
        for target in [Target::Macos, Target::Windows] {
            let report = smoked(&common::example(name), target);
            let label = Model::for_target(target).unwrap().label();
            assert_eq!(report.status, wheelwright_workers::report::Status::Succeeded, "{name} {target}: {report:#?}");
            assert_eq!(report.reason.as_deref(), Some(label));
            assert_eq!(report.tests.len(), 1, "{report:#?}");
            let run = &report.tests[0];
            assert_eq!((run.passed, run.failed, run.errors, run.model.as_deref()), (passed, 0, 0, Some(label)));
        }
    }
}

/// The tutorial's mistake: System V argument registers before
/// `PyModule_Create2` in a Windows module (rcx, the Win64 first argument,
/// holds whatever the caller left there; rdi is what Linux reads).
const SYSV_REGISTERS_ON_WIN64: &str = r#"%include "wheelwright.inc"
PYIMPORT PyModule_Create2
section .data
align 8
methods:
    PYMETHOD_END
moduledef:
    PYMODULEDEF s_module, 0, methods
s_module: db "sysvwin", 0
section .text
PYINIT sysvwin
    sub rsp, 40
    lea rdi, [rel moduledef]          ; System V's first argument register
    mov esi, 3
    PYCALL PyModule_Create2
    add rsp, 40
    ret
"#;

#[test]
fn a_windows_module_passing_system_v_registers_fails_and_never_passes() {
    let project = common::project(&[
        (
            "pyproject.toml",
            "[project]\nname = \"sysvwin\"\nversion = \"0.1.0\"\n\n[tool.wheelwright]\nlint = \"off\"\n",
        ),
        ("src/sysvwin.asm", SYSV_REGISTERS_ON_WIN64),
        (
            "tests/test_sysvwin.py",
            "import sysvwin\n\n\ndef test_imports():\n    assert sysvwin.__name__ == \"sysvwin\"\n",
        ),
    ]);
    let linux = smoked(project.path(), Target::Linux);
    assert_eq!(linux.status, wheelwright_workers::report::Status::Succeeded, "{linux:#?}");
    let windows = smoked(project.path(), Target::Windows);
    assert_eq!(windows.status, wheelwright_workers::report::Status::Failed, "{windows:#?}");
    let run = &windows.tests[0];
    assert_eq!(run.passed, 0, "{run:#?}");
    let problem = run.problem.clone().unwrap_or_default();
    assert!(problem.starts_with("the test process crashed with SIG"), "{run:#?}");
}
