//! The static ABI check (wheelwright_workers::lint) on objects real nasm
//! assembles: for each rule a minimal failing case and its fixed twin, and
//! no finding at all on the examples and the suite's good fixtures.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use wheelwright_workers::lines::{ObjectLines, SourceDirs};
use wheelwright_workers::lint::{self, Input, Level, LintConfig, Rule, RuleLevel};
use wheelwright_workers::platform::Target;
use wheelwright_workers::report::Step;
use wheelwright_workers::report::{Finding, Severity};
use wheelwright_workers::toolchain::Tool;

fn include_dir() -> PathBuf {
    common::repo().join("workers/include")
}

/// Assembles `source` (project-relative) of the project at `root` for
/// `target` with its listing, and checks the object.
fn check_file(root: &Path, source: &str, target: Target, config: &LintConfig) -> Vec<Finding> {
    let out = tempfile::tempdir().unwrap();
    let object = out.path().join(format!("m.{}", target.object_extension()));
    let listing = out.path().join("m.lst");
    let source_dir = Path::new(source).parent().unwrap();
    let status = Command::new(common::toolchain().path(Tool::Nasm).expect("nasm is installed"))
        .current_dir(root)
        .args(target.nasm_args(false))
        .arg(format!("-I{}/", source_dir.display()))
        .arg(format!("-I{}/", include_dir().display()))
        .arg("-l")
        .arg(&listing)
        .arg("-o")
        .arg(&object)
        .arg(source)
        .status()
        .unwrap();
    assert!(status.success(), "nasm failed on {source} for {target}");
    let dirs = SourceDirs {
        project_root: root.to_path_buf(),
        main: PathBuf::from(source),
        include_dirs: vec![source_dir.to_path_buf(), include_dir()],
        engine_include: Some(include_dir()),
    };
    let bytes = std::fs::read(&object).unwrap();
    let listing = std::fs::read_to_string(&listing).unwrap();
    let lines = ObjectLines::from_listing(&listing, &bytes, &dirs).unwrap();
    assert_eq!(lines.unplaced(), 0, "{source} on {target}: every listed line finds its section");
    let input = Input { target, object: &bytes, listing: Some(&listing), dirs: &dirs };
    lint::check(&input, config).unwrap()
}

/// Checks a one-file project `src/m.asm`.
fn check(source: &str, target: Target) -> Vec<Finding> {
    let dir = common::project(&[("src/m.asm", source)]);
    check_file(dir.path(), "src/m.asm", target, &LintConfig::default())
}

/// `(line, column, severity, rule)` of each finding.
fn brief(findings: &[Finding]) -> Vec<(u32, u32, &'static str, String)> {
    findings
        .iter()
        .map(|f| (f.line, f.column, if f.severity == Severity::Error { "error" } else { "warning" }, f.rule.clone()))
        .collect()
}

/// The 1-based line of the first line of `source` that, trimmed, starts with `text`.
fn line_of(source: &str, text: &str) -> u32 {
    source.lines().position(|l| l.trim_start().starts_with(text)).unwrap_or_else(|| panic!("no line `{text}`")) as u32
        + 1
}

/// A module around `code` (in `.text`), with a method table naming `method`.
fn module(imports: &str, code: &str) -> String {
    format!(
        "%include \"wheelwright.inc\"\nPYIMPORT PyModule_Create2, {imports}\n\
         section .data\nalign 8\nmethods:\n    PYMETHOD s_f, method, METH_NOARGS, 0\n    PYMETHOD_END\n\
         moduledef:\n    PYMODULEDEF s_f, 0, methods\ns_f: db \"f\", 0\nbig: dq 1 << 40\n\
         section .text\n{code}\nPYINIT m\n    FUNCTION_BEGIN 0\n    lea ARG1, [rel moduledef]\n\
         \x20   mov ARG2d, PYTHON_ABI_VERSION\n    PYCALL PyModule_Create2\n    FUNCTION_END\n"
    )
}

#[test]
fn the_examples_and_the_good_fixtures_have_no_finding_on_any_target() {
    let repo = common::repo();
    for (root, source) in [
        (repo.join("examples/pymult"), "src/pymult.asm"),
        (repo.join("examples/vecstats"), "src/vecstats/_native.asm"),
        (repo.join("workers/tests/fixtures/win64_long"), "src/win64long.asm"),
        (repo.join("workers/tests/fixtures/segfault"), "src/segfault.asm"),
    ] {
        for target in Target::ALL {
            let findings = check_file(&root, source, target, &LintConfig::default());
            assert_eq!(findings, [], "{source} on {target}");
        }
    }
}

#[test]
fn each_mistake_of_the_abibad_fixture_is_found_at_its_line_and_its_good_method_is_not() {
    let root = common::repo().join("workers/tests/fixtures/abibad");
    let source = std::fs::read_to_string(root.join("src/abibad.asm")).unwrap();
    let at = |text: &str| line_of(&source, text);
    let float_call = at("PYCALL PyFloat_FromDouble");
    let varargs_call = at("PYCALL_VARARGS Py_BuildValue");
    let common = vec![
        (at("xor ebx, ebx"), 5, "error", "callee-saved-not-restored".to_string()),
        (float_call, 5, "error", "misaligned-call".to_string()),
        (varargs_call, 5, "error", "misaligned-call".to_string()),
    ];
    for target in [Target::Linux, Target::Macos] {
        let findings = check_file(&root, "src/abibad.asm", target, &LintConfig::default());
        assert_eq!(brief(&findings), common, "{target}");
    }
    let findings = check_file(&root, "src/abibad.asm", Target::Windows, &LintConfig::default());
    let shadow: Vec<u32> = source
        .lines()
        .enumerate()
        .skip(at("no_shadow_space:") as usize)
        .filter(|(_, l)| l.trim_start().starts_with("PYCALL"))
        .map(|(i, _)| i as u32 + 1)
        .take(3)
        .collect();
    let mut expected = common.clone();
    expected.insert(1, (at("mov esi, 2"), 5, "error", "callee-saved-not-restored".to_string()));
    expected.insert(2, (at("mov edi, 3"), 5, "error", "callee-saved-not-restored".to_string()));
    expected.extend(shadow.iter().map(|l| (*l, 5, "error", "missing-shadow-space".to_string())));
    assert_eq!(brief(&findings), expected);
    let first = &findings[0];
    assert_eq!(first.file, "src/abibad.asm");
    assert_eq!(first.instruction, "xor ebx, ebx");
    assert_eq!(
        first.compiler_style(),
        format!(
            "src/abibad.asm:{}:5: error: rbx is callee-saved on windows-x86_64 and this changes it, but on some \
             path the function returns without restoring it: save it first (push/pop, or a store and a load) or \
             use a scratch register [callee-saved-not-restored]",
            at("xor ebx, ebx")
        )
    );
}

const SAVES_RBX: &str = "\
method:
    push rbx
    mov ebx, 1
    test edi, edi
    jz .other
    xor eax, eax
    pop rbx
    ret
.other:
    mov eax, ebx
    pop rbx
    ret
";

#[test]
fn a_callee_saved_register_restored_on_one_return_but_not_the_other_is_found() {
    let broken = SAVES_RBX.replacen("    mov eax, ebx\n    pop rbx\n", "    mov eax, ebx\n    add rsp, 8\n", 1);
    for target in Target::ALL {
        assert_eq!(check(&module("PyLong_FromLong", SAVES_RBX), target), [], "{target}");
        let source = module("PyLong_FromLong", &broken);
        assert_eq!(
            brief(&check(&source, target)),
            [(line_of(&source, "mov ebx, 1"), 5, "error", "callee-saved-not-restored".into())],
            "{target}"
        );
    }
}

#[test]
fn a_hand_written_frame_with_leave_and_a_tail_call_is_fine_and_a_tail_call_with_rbx_pushed_is_not() {
    let fine = "\
method:
    push rbp
    mov rbp, rsp
    sub rsp, 16 + SHADOW_SPACE
    mov [rbp-8], rbx
    mov ebx, 5
    mov ARG1, rbx
    PYCALL PyLong_FromLongLong
    mov rbx, [rbp-8]
    leave
    mov ARG1, 7
%ifdef WW_ELF64
    jmp PyLong_FromLongLong wrt ..plt
%elifdef WW_MACHO64
    jmp PyLong_FromLongLong
%else
    jmp [rel __imp_PyLong_FromLongLong]
%endif
";
    let broken = fine.replace("    mov rbx, [rbp-8]\n", "");
    for target in Target::ALL {
        assert_eq!(check(&module("PyLong_FromLongLong", fine), target), [], "{target}");
        let source = module("PyLong_FromLongLong", &broken);
        assert_eq!(
            brief(&check(&source, target)),
            [(line_of(&source, "mov ebx, 5"), 5, "error", "callee-saved-not-restored".into())],
            "{target}"
        );
    }
}

#[test]
fn a_call_with_rsp_off_alignment_is_found_and_its_aligned_twin_is_not() {
    let code = |reserve: u32| {
        format!(
            "method:\n    push rbp\n    mov rbp, rsp\n    sub rsp, {reserve}\n    mov ARG1, 1\n    \
             PYCALL PyLong_FromLongLong\n    leave\n    ret\n"
        )
    };
    for target in Target::ALL {
        assert_eq!(check(&module("PyLong_FromLongLong", &code(32)), target), [], "{target}");
        let source = module("PyLong_FromLongLong", &code(40));
        assert_eq!(
            brief(&check(&source, target)),
            [(line_of(&source, "PYCALL PyLong_FromLongLong"), 5, "error", "misaligned-call".into())],
            "{target}"
        );
    }
}

#[test]
fn system_v_argument_registers_before_a_win64_c_api_call_are_found_only_on_windows() {
    let source = |first: &str, second: &str| {
        format!(
            "%include \"wheelwright.inc\"\nPYIMPORT PyModule_Create2\nsection .data\nalign 8\nmethods:\n    \
             PYMETHOD_END\nmoduledef:\n    PYMODULEDEF s_m, 0, methods\ns_m: db \"m\", 0\nsection .text\n\
             PYINIT m\n    push rdi\n    push rsi\n    sub rsp, 8 + SHADOW_SPACE\n    lea {first}, [rel moduledef]\n    \
             mov {second}, 3\n    PYCALL PyModule_Create2\n    add rsp, 8 + SHADOW_SPACE\n    pop rsi\n    pop rdi\n    \
             ret\n"
        )
    };
    let sysv = source("rdi", "esi");
    for target in [Target::Linux, Target::Macos] {
        assert_eq!(check(&sysv, target), [], "{target}");
    }
    assert_eq!(
        brief(&check(&sysv, Target::Windows)),
        [(line_of(&sysv, "PYCALL PyModule_Create2"), 5, "error", "sysv-arguments-on-win64".into())]
    );
    assert_eq!(check(&source("rcx", "edx"), Target::Windows), []);
}

#[test]
fn a_variadic_call_without_al_is_found_on_system_v_only() {
    let code = |call: &str| {
        format!("method:\n    FUNCTION_BEGIN 0\n    lea ARG1, [rel s_f]\n    {call} Py_BuildValue\n    FUNCTION_END\n")
    };
    let source = module("Py_BuildValue", &code("PYCALL"));
    for target in [Target::Linux, Target::Macos] {
        assert_eq!(
            brief(&check(&source, target)),
            [(line_of(&source, "PYCALL Py_BuildValue"), 5, "error", "variadic-al-not-set".into())],
            "{target}"
        );
        assert_eq!(check(&module("Py_BuildValue", &code("PYCALL_VARARGS")), target), [], "{target}");
    }
    assert_eq!(check(&source, Target::Windows), []);
}

#[test]
fn a_32_bit_load_of_a_64_bit_value_into_a_64_bit_argument_is_a_warning() {
    let code = |load: &str| {
        format!(
            "method:\n    FUNCTION_BEGIN 16\n    mov rax, [rel big]\n    mov [rbp-8], rax\n    {load}\n    \
             PYCALL PyLong_FromLongLong\n    FUNCTION_END\n"
        )
    };
    for target in Target::ALL {
        for truncating in ["mov ARG1d, [rel big]", "mov ARG1d, [rbp-8]"] {
            let source = module("PyLong_FromLongLong", &code(truncating));
            assert_eq!(
                brief(&check(&source, target)),
                [(line_of(&source, truncating), 5, "warning", "truncated-argument".into())],
                "{truncating} on {target}"
            );
        }
        for fine in ["mov ARG1, [rel big]", "mov ARG1, [rbp-8]", "mov ARG1d, 42"] {
            assert_eq!(check(&module("PyLong_FromLongLong", &code(fine)), target), [], "{fine} on {target}");
        }
    }
}

#[test]
fn a_32_bit_c_long_is_no_truncation_on_windows() {
    let code =
        "method:\n    FUNCTION_BEGIN 0\n    mov ARG1d, [rel big]\n    PYCALL PyLong_FromLong\n    FUNCTION_END\n";
    let source = module("PyLong_FromLong", code);
    assert_eq!(check(&source, Target::Windows), []);
    assert_eq!(
        brief(&check(&source, Target::Linux)),
        [(line_of(&source, "mov ARG1d, [rel big]"), 5, "warning", "truncated-argument".into())]
    );
}

/// A module whose method table is `table` and whose PyModuleDef is in `section`.
fn tables(table: &str, section: &str) -> String {
    format!(
        "%include \"wheelwright.inc\"\nPYIMPORT PyModule_Create2\n\
         section .data\nalign 8\nmethods:\n{table}\n\
         section {section}\nalign 8\nmoduledef:\n    PYMODULEDEF s_f, 0, methods\n\
         section .data\ns_f: db \"f\", 0\n\
         section .text\nmethod:\n    xor eax, eax\n    ret\n\
         PYINIT m\n    FUNCTION_BEGIN 0\n    lea ARG1, [rel moduledef]\n\
         \x20   mov ARG2d, PYTHON_ABI_VERSION\n    PYCALL PyModule_Create2\n    FUNCTION_END\n"
    )
}

#[test]
fn method_tables_and_the_module_definition_are_checked_where_they_are_written() {
    let good = "    PYMETHOD s_f, method, METH_NOARGS, 0\n    PYMETHOD_END";
    let unpadded = "    dq s_f, method\n    dd METH_NOARGS\n    dq s_f\n    PYMETHOD_END";
    let no_sentinel = "    PYMETHOD s_f, method, METH_NOARGS, 0";
    let bad_flags = "    PYMETHOD s_f, method, METH_NOARGS | METH_O, 0\n    PYMETHOD_END";
    for target in Target::ALL {
        assert_eq!(check(&tables(good, ".data"), target), [], "{target}");
        for (table, rule) in
            [(unpadded, "methoddef-layout"), (no_sentinel, "methoddef-sentinel"), (bad_flags, "methoddef-flags")]
        {
            let source = tables(table, ".data");
            let first = table.lines().next().unwrap().trim();
            assert_eq!(
                brief(&check(&source, target)),
                [(line_of(&source, first), 5, "error", rule.to_string())],
                "{rule} on {target}"
            );
        }
        // macho64's `.rodata` is __DATA,__const, which dyld leaves writable.
        let read_only = if target == Target::Macos { ".text" } else { ".rodata" };
        let source = tables(good, read_only);
        assert_eq!(
            brief(&check(&source, target)),
            [(line_of(&source, "PYMODULEDEF"), 5, "error", "moduledef-read-only".into())],
            "{target}"
        );
    }
}

#[test]
fn an_allow_comment_silences_its_rule_on_its_line_and_strict_and_overrides_change_severities() {
    let code =
        "method:\n    FUNCTION_BEGIN 0\n    mov ARG1d, [rel big]\n    PYCALL PyLong_FromLongLong\n    FUNCTION_END\n";
    let allowed = code.replace("[rel big]\n", "[rel big] ; wheelwright: allow(truncated-argument)\n");
    let dir = common::project(&[("src/m.asm", &module("PyLong_FromLongLong", code))]);
    let strict = LintConfig { level: Level::Strict, ..LintConfig::default() };
    let findings = check_file(dir.path(), "src/m.asm", Target::Linux, &strict);
    assert_eq!(findings.iter().map(|f| f.severity).collect::<Vec<_>>(), [Severity::Error]);
    let mut off = LintConfig::default();
    off.rules.insert(Rule::TruncatedArgument, RuleLevel::Allow);
    assert_eq!(check_file(dir.path(), "src/m.asm", Target::Linux, &off), []);
    let none = LintConfig { level: Level::Off, ..LintConfig::default() };
    assert_eq!(check_file(dir.path(), "src/m.asm", Target::Linux, &none), []);
    assert_eq!(check(&module("PyLong_FromLongLong", &allowed), Target::Linux), []);
}

#[test]
fn the_build_fails_a_target_at_the_check_step_with_its_findings_and_passes_the_examples() {
    let source = module(
        "PyLong_FromLongLong",
        "method:\n    push rbp\n    mov rbp, rsp\n    sub rsp, 40\n    mov ARG1, 1\n    \
         PYCALL PyLong_FromLongLong\n    leave\n    ret\n",
    );
    let dir = common::project(&[
        ("pyproject.toml", "[project]\nname = \"m\"\nversion = \"0.1.0\"\n"),
        ("src/m.asm", &source),
    ]);
    let (report, _dirs) = common::build(dir.path(), &[Target::Linux], false);
    let linux = common::target(&report, Target::Linux);
    assert_eq!(common::failed_step(linux), ("check".to_string(), "the static ABI check found 1 error".to_string()));
    assert_eq!(brief(&linux.findings), [(line_of(&source, "PYCALL"), 5, "error", "misaligned-call".into())]);
    assert_eq!(linux.findings[0].file, "src/m.asm");

    // The examples build on every target with no finding. What the check costs is measured by
    // `benches/check.sh`, not here: a share of a few milliseconds is noise on a loaded machine.
    for example in ["pymult", "vecstats"] {
        let (report, _dirs) = common::build(&common::example(example), &Target::ALL, false);
        assert!(report.succeeded(), "{report:#?}");
        for t in &report.targets {
            assert_eq!(t.findings, [], "{example} {}", t.target);
            assert!(t.steps.iter().any(|s| s.name == Step::Check), "{example} {}: no check step", t.target);
        }
    }
}
