//! The run-time ABI guards (checkasm-style) through the smoke step: real
//! modules built by the engine for every target, run by the project's own
//! pytest tests on the host's CPython.

mod common;

use wheelwright_workers::platform::Target;
use wheelwright_workers::report::{Status, TargetReport};

fn fixture() -> std::path::PathBuf {
    common::repo().join("workers/tests/fixtures/abibad")
}

/// The failure message of one test of the run.
fn failure<'a>(report: &'a TargetReport, test: &str) -> Option<&'a str> {
    report.tests[0].failures.iter().find(|f| f.test.ends_with(test)).map(|f| f.message.as_str())
}

/// The guard's message for a C-API call made with a misaligned stack.
fn misaligned(function: &str, line: usize, text: &str, method: &str) -> String {
    format!(
        "SystemError: wheelwright ABI guard: {function} was called with a misaligned stack (rsp must be 16-byte \
         aligned at every call) from src/abibad.asm:{line}: {text}, in {method}"
    )
}

/// `(line of the misaligned PyFloat_FromDouble call, line of the misaligned
/// Py_BuildValue call)` in the fixture's source.
fn misaligned_lines() -> (usize, usize) {
    let source = std::fs::read_to_string(fixture().join("src/abibad.asm")).unwrap();
    let line_of = |text: &str| source.lines().position(|l| l.trim_start().starts_with(text)).unwrap() + 1;
    (line_of("PYCALL PyFloat_FromDouble"), line_of("PYCALL_VARARGS Py_BuildValue"))
}

/// Both misaligned calls (a fixed-argument one and a variadic one) fail
/// the run naming function, rule and line.
fn assert_both_misaligned_calls_named(report: &TargetReport) {
    let (call_line, varargs_line) = misaligned_lines();
    let target = report.target;
    let run = &report.tests[0];
    let fixed = failure(report, "test_misaligned_call").unwrap_or_else(|| panic!("{target}: {run:#?}"));
    let expected =
        misaligned("PyFloat_FromDouble", call_line, "PYCALL PyFloat_FromDouble (in macro PYCALL)", "misaligned_call");
    assert!(fixed.contains(&expected), "{target}: {fixed}");
    let variadic = failure(report, "test_misaligned_varargs").unwrap_or_else(|| panic!("{target}: {run:#?}"));
    let expected = misaligned(
        "Py_BuildValue",
        varargs_line,
        "PYCALL_VARARGS Py_BuildValue (in macro PYCALL_VARARGS)",
        "misaligned_varargs",
    );
    assert!(variadic.contains(&expected), "{target}: {variadic}");
}

#[test]
fn examples_pass_on_linux_with_the_guards_on_and_the_run_stays_native() {
    for (name, passed) in [("pymult", 7), ("vecstats", 8)] {
        let (report, _dirs) = common::build(&common::example(name), &[Target::Linux], true);
        let linux = common::target(&report, Target::Linux);
        assert_eq!(linux.status, Status::Succeeded, "{name}: {linux:#?}");
        let run = &linux.tests[0];
        assert_eq!((run.passed, run.failed, run.errors, run.model.as_deref()), (passed, 0, 0, None), "{name}");
    }
}

#[test]
fn rbx_not_restored_and_misaligned_calls_fail_on_linux_and_macos_naming_register_function_and_line() {
    let source = std::fs::read_to_string(fixture().join("src/abibad.asm")).unwrap();
    let line_of = |text: &str| source.lines().position(|l| l.trim_start().starts_with(text)).unwrap() + 1;
    // The function's first instruction.
    let rbx_line = line_of("rbx_not_restored:") + 1;
    for target in [Target::Linux, Target::Macos] {
        let report = common::smoked(&fixture(), target);
        assert_eq!(report.status, Status::Failed, "{target}: {report:#?}");
        let run = &report.tests[0];
        assert_eq!((run.passed, run.failed), (3, 3), "{target}: {run:#?}");
        let rbx = failure(&report, "test_rbx_not_restored").unwrap_or_else(|| panic!("{target}: {run:#?}"));
        assert!(
            rbx.contains(&format!(
                "SystemError: wheelwright ABI guard: rbx_not_restored (src/abibad.asm:{rbx_line}: push rbp) returned \
                 with rbx changed: it is callee-saved under the System V ABI"
            )),
            "{target}: {rbx}"
        );
        assert_both_misaligned_calls_named(&report);
        // rsi and rdi are scratch under System V: that test passes here.
        assert!(failure(&report, "test_rsi_as_scratch").is_none(), "{target}: {run:#?}");
        assert!(failure(&report, "test_good").is_none(), "{target}: {run:#?}");
        // No shadow space is needed under System V.
        assert!(failure(&report, "test_no_shadow_space").is_none(), "{target}: {run:#?}");
    }
}

#[test]
fn the_bridge_guard_names_each_win64_callee_saved_register_a_function_changes() {
    let harness = common::repo().join("workers/src/abimodel/harness");
    let out = std::process::Command::new(common::venv_python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "tests/test_guards.py"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&harness)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("4 passed"), "{text}");
}

#[test]
fn on_windows_rsi_as_scratch_rbx_not_restored_misaligned_calls_and_no_shadow_space_each_fail() {
    let source = std::fs::read_to_string(fixture().join("src/abibad.asm")).unwrap();
    let line_of = |text: &str| source.lines().position(|l| l.trim_start().starts_with(text)).unwrap() + 1;
    let rbx_line = line_of("rbx_not_restored:") + 1;
    let rsi_line = line_of("rsi_as_scratch:") + 1;
    let report = common::smoked(&fixture(), Target::Windows);
    assert_eq!(report.status, Status::Failed, "{report:#?}");
    let run = &report.tests[0];
    assert_eq!((run.passed, run.failed, run.errors), (1, 5, 0), "{run:#?}");
    assert_eq!(run.model.as_deref(), Some(wheelwright_workers::abimodel::Model::Windows.label()));
    assert!(failure(&report, "test_good").is_none(), "{run:#?}");
    // Legal under System V, but rdi and rsi are callee-saved under Win64.
    let rsi = failure(&report, "test_rsi_as_scratch").unwrap_or_else(|| panic!("{run:#?}"));
    assert!(
        rsi.contains(&format!(
            "SystemError: wheelwright ABI guard: rsi_as_scratch (src/abibad.asm:{rsi_line}: FUNCTION_BEGIN 0 (in macro FUNCTION_BEGIN)) \
             returned \
             with rdi, rsi changed: they are callee-saved under the Win64 ABI, so a function must restore them"
        )),
        "{rsi}"
    );
    let rbx = failure(&report, "test_rbx_not_restored").unwrap_or_else(|| panic!("{run:#?}"));
    assert!(
        rbx.contains(&format!(
            "SystemError: wheelwright ABI guard: rbx_not_restored (src/abibad.asm:{rbx_line}: push rbp) returned \
             with rbx changed: it is callee-saved under the Win64 ABI"
        )),
        "{rbx}"
    );
    assert_both_misaligned_calls_named(&report);
    // The callee wrote its home space, where the module kept its local: the
    // value read back is the model's "noshadow", as on Windows it is whatever
    // the C API spilled there.
    let shadow = failure(&report, "test_no_shadow_space").unwrap_or_else(|| panic!("{run:#?}"));
    let poison = u64::from_le_bytes(*b"noshadow");
    assert!(shadow.contains(&format!("assert {poison} == 6")), "{shadow}");
}
