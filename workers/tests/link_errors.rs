//! Link errors in the author's terms (crate::linkerr), with real nasm and the
//! real linkers on all three targets: each refused site becomes one finding
//! at its `.asm` line with the fix, and the failed step's reason says the
//! same sentences; lld's own words stay in the log, no host path anywhere.

mod common;

use std::sync::Mutex;

use common::*;
use wheelwright_workers::pipeline::{self, Event};
use wheelwright_workers::platform::Target;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{BuildReport, Finding, Severity, Status, TargetReport};

const PYMULT: &str = include_str!("../../examples/pymult/src/pymult.asm");

/// A module in the style of the 2018 article: absolute addresses in code.
/// On Windows the variable is reached through its import pointer, by an
/// absolute address too (which a PE DLL may hold).
const OLD_STYLE: &str = "\
%include \"wheelwright.inc\"
PYIMPORT PyModule_Create2
PYIMPORT_DATA _Py_NoneStruct

section .data
align 8
methods:
    PYMETHOD s_none, none, METH_NOARGS, 0
    PYMETHOD_END
moduledef:
    PYMODULEDEF s_name, 0, methods
s_name: db \"old\", 0
s_none: db \"none\", 0

section .text
none:
%ifdef WINDOWS
    mov rax, __imp__Py_NoneStruct
    mov rax, [rax]
%else
    mov rax, _Py_NoneStruct
%endif
    ret

PYINIT old
    FUNCTION_BEGIN 0
    mov rdi, moduledef      ; the module definition
%ifdef WINDOWS
    mov rcx, rdi
%endif
    mov ARG2d, PYTHON_ABI_VERSION
    PYCALL PyModule_Create2
    FUNCTION_END
";

/// The 1-based number of the (only) line of `source` that contains `text`.
fn line_of(source: &str, text: &str) -> u32 {
    let found: Vec<usize> = source.lines().enumerate().filter(|(_, l)| l.contains(text)).map(|(i, _)| i + 1).collect();
    assert_eq!(found.len(), 1, "`{text}` is on one line");
    found[0] as u32
}

/// Builds `files` for `targets` (no smoke test), with the build log.
fn build_logged(files: &[(&str, &str)], targets: &[Target]) -> (BuildReport, String, Dirs, tempfile::TempDir) {
    let dir = project(files);
    let project = Project::load(dir.path(), &Overrides::default()).expect("project loads");
    let (options, dirs) = options(targets, false);
    let log = Mutex::new(String::new());
    let report = pipeline::build(&project, &options, &|event| {
        if let Event::Log { text, .. } = event {
            let mut log = log.lock().unwrap();
            log.push_str(&text);
            log.push('\n');
        }
    });
    (report, log.into_inner().unwrap(), dirs, dir)
}

fn error(rule: &str, file: &str, line: u32, column: u32, instruction: &str, message: &str) -> Finding {
    Finding {
        rule: rule.to_string(),
        severity: Severity::Error,
        file: file.to_string(),
        line,
        column,
        instruction: instruction.to_string(),
        message: message.to_string(),
    }
}

/// The reason a failed step gives: one `file:line: message` per finding.
fn reason_of(findings: &[Finding]) -> String {
    findings.iter().map(|f| format!("{}:{}: {}", f.file, f.line, f.message)).collect::<Vec<_>>().join("\n")
}

/// Neither the report (reasons, findings) nor anything else a user sees
/// names the host's scratch folders.
fn assert_no_host_path(report: &TargetReport, dirs: &Dirs, project: &tempfile::TempDir) {
    let json = serde_json::to_string(report).unwrap();
    for dir in [dirs.work.path(), dirs.out.path(), project.path()] {
        assert!(!json.contains(&dir.display().to_string()), "{} in {json}", dir.display());
    }
    assert!(!json.contains("/tmp/"), "{json}");
}

fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by_key(|f| f.line);
    findings
}

#[test]
fn absolute_addresses_in_code_are_explained_at_their_lines_on_linux_and_macos_and_link_on_windows() {
    let (report, log, dirs, project) = build_logged(&[("src/old.asm", OLD_STYLE)], &Target::ALL);
    let none = line_of(OLD_STYLE, "mov rax, _Py_NoneStruct");
    let def = line_of(OLD_STYLE, "mov rdi, moduledef");
    for (t, got) in [(Target::Linux, "..got"), (Target::Macos, "..gotpcrel")] {
        let built = target(&report, t);
        let expected = vec![
            error(
                "absolute-address-in-text",
                "src/old.asm",
                none,
                5,
                "mov rax, _Py_NoneStruct",
                &format!("mov rax, _Py_NoneStruct loads the absolute address of `_Py_NoneStruct`, which is in the interpreter; in a shared library write mov rax, [rel _Py_NoneStruct wrt {got}] (PYDATA rax, _Py_NoneStruct)"),
            ),
            error(
                "absolute-address-in-text",
                "src/old.asm",
                def,
                5,
                "mov rdi, moduledef",
                "mov rdi, moduledef loads an absolute address; in a shared library write lea rdi, [rel moduledef]",
            ),
        ];
        assert_eq!(sorted(built.findings.clone()), expected, "{t}");
        let (step, reason) = failed_step(built);
        assert_eq!(step, "link", "{t}");
        assert_eq!(reason, reason_of(&built.findings), "{t}");
        assert_eq!(built.reason.as_deref(), Some(reason.as_str()), "{t}");
        assert_eq!(
            built.findings.iter().map(Finding::compiler_style).find(|s| s.contains("moduledef")).unwrap(),
            format!("src/old.asm:{def}:5: error: mov rdi, moduledef loads an absolute address; in a shared library write lea rdi, [rel moduledef] [absolute-address-in-text]")
        );
        assert_no_host_path(built, &dirs, &project);
    }
    // lld's own words are in the log, not in the reason.
    let linux = target(&report, Target::Linux);
    assert!(log.contains("relocation R_X86_64_64 cannot be used against local symbol; recompile with -fPIC"), "{log}");
    assert!(!linux.reason.as_deref().unwrap().contains("-fPIC"));
    // PE holds absolute addresses through base relocations: no false link
    // error. (The static check still fails the module on Windows, for what
    // is really wrong there: System V's rdi is callee-saved under Win64.)
    let windows = target(&report, Target::Windows);
    let link_rules = ["absolute-address-in-text", "undefined-symbol", "missing-wrt-plt", "missing-wrt-got"];
    assert!(windows.findings.iter().all(|f| !link_rules.contains(&f.rule.as_str())), "{windows:#?}");
    let rules: Vec<(&str, u32)> = windows.findings.iter().map(|f| (f.rule.as_str(), f.line)).collect();
    assert_eq!(rules, [("callee-saved-not-restored", def)], "{windows:#?}");
    assert_eq!(windows.reason.as_deref(), Some("the static ABI check found 1 error"));
}

#[test]
fn a_misspelled_c_api_name_is_named_with_the_nearest_stable_name_on_every_target() {
    let source = PYMULT.replace("PyLong_FromLongLong", "PyLong_FromLongg");
    let line = line_of(&source, "PYCALL PyLong_FromLongg");
    let (report, _log, dirs, project) = build_logged(&[("src/pymult.asm", &source)], &Target::ALL);
    let expected = error(
        "undefined-symbol",
        "src/pymult.asm",
        line,
        5,
        "PYCALL PyLong_FromLongg",
        "PYCALL PyLong_FromLongg names `PyLong_FromLongg`, which is not in the Python C API; did you mean `PyLong_FromLong`?",
    );
    for t in Target::ALL {
        let built = target(&report, t);
        assert_eq!(built.findings, std::slice::from_ref(&expected), "{t}");
        let (step, reason) = failed_step(built);
        assert_eq!((step.as_str(), reason), ("abi", reason_of(&built.findings)), "{t}");
        assert_no_host_path(built, &dirs, &project);
    }
}

#[test]
fn an_elf_call_without_plt_and_data_without_got_get_the_right_fix() {
    let source = PYMULT
        .replace("PYCALL PyLong_FromLongLong", "call PyLong_FromLongLong")
        .replace("PYDATA rax, PyExc_OverflowError", "lea rax, [rel PyExc_OverflowError]");
    let call = line_of(&source, "call PyLong_FromLongLong");
    let data = line_of(&source, "lea rax, [rel PyExc_OverflowError]");
    let (report, log, dirs, project) = build_logged(&[("src/pymult.asm", &source)], &[Target::Linux]);
    let linux = target(&report, Target::Linux);
    assert_eq!(
        sorted(linux.findings.clone()),
        [
            error(
                "missing-wrt-plt",
                "src/pymult.asm",
                call,
                5,
                "call PyLong_FromLongLong",
                "call PyLong_FromLongLong calls `PyLong_FromLongLong` directly; in a shared library a call to the interpreter goes through the PLT: write call PyLong_FromLongLong wrt ..plt (PYCALL PyLong_FromLongLong)",
            ),
            error(
                "missing-wrt-got",
                "src/pymult.asm",
                data,
                5,
                "lea rax, [rel PyExc_OverflowError]",
                "lea rax, [rel PyExc_OverflowError] reaches `PyExc_OverflowError` as if it were inside the module; the interpreter's variables are reached through the GOT: write mov rax, [rel PyExc_OverflowError wrt ..got] for its address (PYDATA rax, PyExc_OverflowError)",
            ),
        ]
    );
    let (step, reason) = failed_step(linux);
    assert_eq!((step.as_str(), reason), ("link", reason_of(&linux.findings)));
    assert!(log.contains("relocation R_X86_64_PC32 cannot be used against symbol 'PyLong_FromLongLong'"), "{log}");
    assert_no_host_path(linux, &dirs, &project);
}

#[test]
fn a_windows_data_import_without_imp_is_explained() {
    let source = PYMULT
        .replace("PYIMPORT_DATA PyExc_OverflowError", "PYIMPORT_DATA PyExc_OverflowError\nextern PyExc_OverflowError")
        .replace("PYDATA rax, PyExc_OverflowError", "lea rax, [rel PyExc_OverflowError]");
    let line = line_of(&source, "lea rax, [rel PyExc_OverflowError]");
    let (report, log, dirs, project) = build_logged(&[("src/pymult.asm", &source)], &[Target::Windows]);
    let windows = target(&report, Target::Windows);
    assert_eq!(
        windows.findings,
        [error(
            "missing-imp-prefix",
            "src/pymult.asm",
            line,
            5,
            "lea rax, [rel PyExc_OverflowError]",
            "lea rax, [rel PyExc_OverflowError] uses `PyExc_OverflowError`, a variable of the Python DLL, which a Windows module reaches only through its import pointer: write mov rax, [rel __imp_PyExc_OverflowError] for its address (PYDATA rax, PyExc_OverflowError)",
        )]
    );
    let (step, reason) = failed_step(windows);
    assert_eq!((step.as_str(), reason), ("link", reason_of(&windows.findings)));
    assert!(log.contains("undefined symbol: PyExc_OverflowError"), "{log}");
    assert_no_host_path(windows, &dirs, &project);
}

#[test]
fn the_examples_link_without_findings() {
    for name in ["pymult", "vecstats"] {
        let (report, _dirs) = build(&example(name), &Target::ALL, false);
        for t in &report.targets {
            assert_eq!((t.status, t.findings.len()), (Status::Succeeded, 0), "{name}: {t:#?}");
        }
    }
}
