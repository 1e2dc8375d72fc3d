//! Every way a project or build can go wrong gives one precise message.

mod common;

use common::*;
use wheelwright_workers::platform::Target;
use wheelwright_workers::project::{Overrides, Project, ProjectError};
use wheelwright_workers::report::Status;

const PYMULT: &str = include_str!("../../examples/pymult/src/pymult.asm");

fn load_error(files: &[(&str, &str)]) -> String {
    let dir = project(files);
    Project::load(dir.path(), &Overrides::default()).unwrap_err().to_string()
}

#[test]
fn a_project_without_assembly_is_refused() {
    assert_eq!(
        load_error(&[("src/util.py", "")]),
        "no assembly sources: expected src/**/*.asm (or *.asm at the project root when there is no src/)"
    );
}

#[test]
fn module_names_must_be_python_identifiers() {
    assert_eq!(load_error(&[("src/my-mod.asm", "")]), "src/my-mod.asm: `my-mod` is not a valid Python module name");
    assert_eq!(load_error(&[("src/pkg.v2/m.asm", "")]), "src/pkg.v2/m.asm: `pkg.v2` is not a valid Python module name");
    assert_eq!(load_error(&[("src/class.asm", "")]), "src/class.asm: `class` is not a valid Python module name");
}

#[test]
fn two_sources_for_one_module_are_refused() {
    assert_eq!(
        load_error(&[("src/fast.asm", ""), ("src/fast.nasm", "")]),
        "src/fast.asm and src/fast.nasm both define the module `fast`"
    );
    assert_eq!(
        load_error(&[("src/fast.asm", ""), ("src/fast/__init__.py", "")]),
        "src/fast.asm and src/fast/__init__.py both define the module `fast`"
    );
}

#[test]
fn bad_pyproject_values_name_their_key() {
    let cases = [
        ("[tool.wheelwright]\ntargets = [\"linux-arm64\"]\n", "pyproject.toml: tool.wheelwright.targets: unknown target `linux-arm64` (expected linux-x86_64, macos-x86_64, windows-x86_64 or all)"),
        ("[tool.wheelwright]\ntargets = []\n", "pyproject.toml: tool.wheelwright.targets: must name at least one target"),
        ("[project]\nname = \"m\"\nversion = \"1.0-beta\"\n", "pyproject.toml: project.version: `1.0-beta` is not a PEP 440 version such as 1.0.2"),
        ("[project]\nname = \"-m\"\n", "pyproject.toml: project.name: `-m` is not a valid distribution name"),
        ("[project]\nrequires-python = \"3.8+\"\n", "pyproject.toml: project.requires-python: `3.8+` is not a version clause such as >=3.8"),
        ("[project]\ndynamic = [\"version\"]\n", "pyproject.toml: project.dynamic: wheelwright does not compute dynamic metadata (`version`)"),
        ("[tool.wheelwright]\nmacos-deployment-target = \"10\"\n", "pyproject.toml: tool.wheelwright.macos-deployment-target: `10` is not a version such as 10.9 or 11.0"),
        ("[tool.wheelwright]\nabi3 = true\npython-versions = [\"3.11\"]\n", "pyproject.toml: tool.wheelwright.python-versions: contradicts `abi3 = true`: an abi3 wheel serves every version"),
        ("[project]\nrequires-python = \">=3.10\"\n[tool.wheelwright]\npython-versions = [\"3.9\"]\n", "pyproject.toml: tool.wheelwright.python-versions: 3.9 is excluded by requires-python `>=3.10`"),
        ("[tool.wheelwright]\ndefines = [\"2X=1\"]\n", "pyproject.toml: tool.wheelwright.defines: `2X=1` is not NAME or NAME=VALUE"),
    ];
    for (toml, expected) in cases {
        assert_eq!(load_error(&[("pyproject.toml", toml), ("src/m.asm", "")]), expected, "{toml}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_errors_with_their_location() {
    let message = load_error(&[("pyproject.toml", "[tool.wheelwright]\ntarget = [\"all\"]\n"), ("src/m.asm", "")]);
    assert!(message.starts_with("pyproject.toml: TOML parse error at line 2, column 1"), "{message}");
    assert!(message.contains("unknown field `target`, expected one of `targets`"), "{message}");
    let message = load_error(&[("pyproject.toml", "[project]\nname = 3\n"), ("src/m.asm", "")]);
    assert!(
        message.contains("line 2") && message.contains("invalid type: integer `3`, expected a string"),
        "{message}"
    );
}

#[test]
fn a_project_needs_a_name_when_it_has_several_modules() {
    assert_eq!(
        load_error(&[("src/a.asm", ""), ("src/b.asm", "")]),
        "no project name: add [project] name to pyproject.toml (there are several modules to name it after)"
    );
}

#[test]
fn symbolic_links_inside_a_project_are_refused() {
    let dir = project(&[("src/m.asm", "")]);
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("src/secret.py")).unwrap();
    let err = Project::load(dir.path(), &Overrides::default()).unwrap_err();
    assert_eq!(err, ProjectError::Symlink("src/secret.py".into()));
}

#[test]
fn a_root_level_source_without_pyproject_is_a_project() {
    let dir = project(&[("pymult.asm", PYMULT), ("conftest.py", ""), ("helpers.py", "X = 1\n")]);
    let project = Project::load(dir.path(), &Overrides::default()).unwrap();
    assert_eq!((project.metadata.name.as_str(), project.metadata.version.as_str()), ("pymult", "0.1.0"));
    assert_eq!(project.python_files, [std::path::PathBuf::from("helpers.py")]);
    let (report, _dirs) = build(dir.path(), &[Target::Linux], true);
    let linux = target(&report, Target::Linux);
    assert_eq!(linux.status, Status::Succeeded, "{linux:#?}");
    // No tests: the generated import test ran.
    assert_eq!((linux.tests[0].passed, linux.tests[0].failed), (1, 0));
}

#[test]
fn nasm_errors_reach_the_user_unchanged() {
    let dir = project(&[("src/bad.asm", "section .text\nglobal PyInit_bad\nPyInit_bad:\n    mov rax, [rbx+\n")]);
    let (report, _dirs) = build(dir.path(), &Target::ALL, false);
    for t in &report.targets {
        assert_eq!(t.status, Status::Failed);
        let (step, reason) = failed_step(t);
        assert_eq!(step, "assemble");
        assert_eq!(reason, "src/bad.asm:4: error: expression syntax error");
    }
}

#[test]
fn including_a_missing_file_is_an_assemble_error() {
    let dir = project(&[("src/inc.asm", "%include \"nothere.inc\"\n")]);
    let (report, _dirs) = build(dir.path(), &[Target::Linux], false);
    let (step, reason) = failed_step(&report.targets[0]);
    assert_eq!(step, "assemble");
    assert_eq!(reason, "src/inc.asm:1: error: unable to open include file `nothere.inc': No such file or directory");
}

#[test]
fn one_failing_target_does_not_stop_the_others() {
    // `%error` only on Windows: the other two targets still build.
    let source = PYMULT.replace(
        "%include \"wheelwright.inc\"",
        "%include \"wheelwright.inc\"\n%ifdef WINDOWS\n%error no Windows today\n%endif",
    );
    let dir = project(&[("src/pymult.asm", &source)]);
    let (report, _dirs) = build(dir.path(), &Target::ALL, false);
    assert_eq!(target(&report, Target::Linux).status, Status::Succeeded);
    assert_eq!(target(&report, Target::Macos).status, Status::Succeeded);
    let windows = target(&report, Target::Windows);
    assert_eq!(windows.status, Status::Failed);
    assert_eq!(windows.reason.as_deref(), Some("src/pymult.asm:10: error: no Windows today"));
    assert!(!report.succeeded());
}

#[test]
fn importing_something_outside_the_c_api_fails_verification() {
    let source = PYMULT.replace("PYIMPORT PyArg_ParseTuple,", "PYIMPORT printf, malloc, PyArg_ParseTuple,").replace(
        "    PYCALL PyLong_FromLongLong",
        "    PYCALL printf\n    PYCALL malloc\n    PYCALL PyLong_FromLongLong",
    );
    let dir = project(&[("src/pymult.asm", &source)]);
    let (report, _dirs) = build(dir.path(), &Target::ALL, false);
    for t in &report.targets {
        let (step, reason) = failed_step(t);
        assert_eq!(step, "abi");
        // One sentence per site (crate::linkerr), in line order.
        let line = |text: &str| source.lines().position(|l| l.trim() == text).unwrap() + 1;
        let not_capi =
            "which is not in the Python C API; an extension module can use only what the interpreter exports";
        assert_eq!(
            reason,
            format!(
                "src/pymult.asm:{}: PYCALL printf names `printf`, {not_capi}\nsrc/pymult.asm:{}: PYCALL malloc names `malloc`, {not_capi}",
                line("PYCALL printf"),
                line("PYCALL malloc")
            )
        );
    }
}

#[test]
fn a_wrong_init_name_is_reported_with_what_was_exported() {
    let dir = project(&[("src/mult.asm", PYMULT)]);
    let (report, _dirs) = build(dir.path(), &Target::ALL, false);
    for (t, file) in [(Target::Linux, "mult.abi3.so"), (Target::Macos, "mult.abi3.so"), (Target::Windows, "mult.pyd")] {
        let (step, reason) = failed_step(target(&report, t));
        assert_eq!(step, if t == Target::Windows { "link" } else { "verify" }, "{t}: {reason}");
        if t != Target::Windows {
            assert_eq!(
                reason,
                format!("{file} does not export `PyInit_mult` (it exports `PyInit_pymult`; the name must match the module's file name)")
            );
        }
    }
}

#[test]
fn failing_tests_fail_the_smoke_step_with_their_text() {
    let dir = project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/test_wrong.py", "import pymult\n\ndef test_wrong():\n    assert pymult.multiply(2, 2) == 5\n\ndef test_right():\n    assert pymult.multiply(2, 2) == 4\n"),
    ]);
    let (report, _dirs) = build(dir.path(), &[Target::Linux], true);
    let linux = target(&report, Target::Linux);
    let (step, reason) = failed_step(linux);
    assert_eq!(step, "smoke");
    assert_eq!(reason, "cpython-3.11: 1 failed, 0 errors, 1 passed".replace("3.11", &python3().version.to_string()));
    let run = &linux.tests[0];
    assert_eq!(run.failures.len(), 1);
    assert_eq!(run.failures[0].test, "tests.test_wrong::test_wrong");
    assert!(run.failures[0].message.contains("assert 4 == 5"), "{}", run.failures[0].message);
}

#[test]
fn forcing_abi3_with_unstable_imports_is_refused() {
    let source = PYMULT.replace("PYIMPORT PyArg_ParseTuple,", "PYIMPORT PyCell_New, PyArg_ParseTuple,").replace(
        "    PYCALL PyLong_FromLongLong",
        "    PYCALL PyLong_FromLongLong\n    FUNCTION_END\n    PYCALL PyCell_New",
    );
    let dir = project(&[("src/pymult.asm", &source), ("pyproject.toml", "[tool.wheelwright]\nabi3 = true\n")]);
    let (report, _dirs) = build(dir.path(), &[Target::Linux], false);
    let (step, reason) = failed_step(&report.targets[0]);
    assert_eq!(step, "abi");
    assert_eq!(reason, "abi3 = true, but the modules import `PyCell_New`, which is not in the stable ABI (abi3)");
}

#[test]
fn a_broken_host_is_an_infrastructure_failure_and_a_broken_project_is_not() {
    let project = Project::load(&example("pymult"), &Overrides::default()).unwrap();
    let (mut options, _dirs) = options(&[Target::Linux], false);
    options.cache_dir = "/proc/wheelwright-cannot-write-here".into();
    let report = wheelwright_workers::pipeline::build(&project, &options, &|_| {});
    let failure = report.infrastructure_failure().expect("an infrastructure failure");
    assert!(
        failure.starts_with("linux-x86_64 setup: import library cache /proc/wheelwright-cannot-write-here"),
        "{failure}"
    );

    let dir = project_dir_with_bad_source();
    let (report, _dirs) = build(dir.path(), &[Target::Linux], false);
    assert!(!report.succeeded());
    assert_eq!(report.infrastructure_failure(), None);
}

fn project_dir_with_bad_source() -> tempfile::TempDir {
    project(&[("src/bad.asm", "this is not assembly\n")])
}
