//! The `wheelwright` binary end to end: exit codes, progress lines, the summary
//! and the JSON report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn wheelwright(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wheelwright")).args(args).current_dir(repo()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn build_prints_steps_and_a_summary_and_reports_json() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_str().unwrap();
    let result = wheelwright(&["build", "examples/pymult", "--target", "all", "--out", out, "--json"]);
    let stderr = text(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    for line in [
        "building pymult 1.0.0",
        "linux-x86_64    assemble  ok",
        "windows-x86_64  package   ok",
        "macos-x86_64    smoke     ok",
        "windows-x86_64  smoke     ok",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in\n{stderr}");
    }
    assert!(
        stderr.contains(
            "linux-x86_64    succeeded  yes   pymult-1.0.0-cp38-abi3-manylinux_2_5_x86_64.manylinux1_x86_64.whl"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("tests on cpython-"), "{stderr}");
    assert!(stderr.contains("tests run on the Linux host under the Windows x64 ABI model, on cpython-"), "{stderr}");

    let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let targets = report["targets"].as_array().unwrap();
    let names: Vec<&str> = targets.iter().map(|t| t["target"].as_str().unwrap()).collect();
    assert_eq!(names, ["linux-x86_64", "macos-x86_64", "windows-x86_64"]);
    assert!(targets.iter().all(|t| t["status"] == "succeeded"));
    let steps: Vec<&str> =
        targets[0]["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["assemble", "check", "abi", "link", "verify", "package", "smoke"]);
    assert_eq!(report["sdist"]["filename"], "pymult-1.0.0.tar.gz");
    for t in targets {
        for a in t["artifacts"].as_array().unwrap() {
            assert!(Path::new(out).join(a["filename"].as_str().unwrap()).is_file());
        }
    }
}

#[test]
fn a_failed_target_makes_the_exit_status_non_zero() {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join("src")).unwrap();
    std::fs::write(project.path().join("src/broken.asm"), "mov rax,\n").unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let result = wheelwright(&[
        "build",
        project.path().to_str().unwrap(),
        "--target",
        "linux-x86_64",
        "--out",
        out_dir.path().to_str().unwrap(),
    ]);
    assert_eq!(result.status.code(), Some(1));
    let stderr = text(&result.stderr);
    assert!(stderr.contains("linux-x86_64    assemble  FAILED"), "{stderr}");
    assert!(stderr.contains("src/broken.asm:1: error:"), "{stderr}");
}

#[test]
fn bad_arguments_and_bad_projects_exit_with_status_2() {
    let result = wheelwright(&["build", "examples/pymult", "--target", "linux-arm64"]);
    assert_eq!(result.status.code(), Some(2));
    assert!(text(&result.stderr).contains("unknown target `linux-arm64`"), "{}", text(&result.stderr));

    let empty = tempfile::tempdir().unwrap();
    let result = wheelwright(&["build", empty.path().to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(2));
    assert_eq!(
        text(&result.stderr).trim(),
        "error: no assembly sources: expected src/**/*.asm (or *.asm at the project root when there is no src/)"
    );
}

#[test]
fn no_smoke_skips_the_smoke_test() {
    let out_dir = tempfile::tempdir().unwrap();
    let result = wheelwright(&[
        "build",
        "examples/vecstats",
        "--target",
        "linux-x86_64",
        "--no-smoke",
        "--out",
        out_dir.path().to_str().unwrap(),
    ]);
    let stderr = text(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("linux-x86_64    smoke     skipped") && stderr.contains("smoke test disabled"), "{stderr}");
}

#[test]
fn doctor_lists_every_tool_with_version_and_path() {
    let result = wheelwright(&["doctor"]);
    let stdout = text(&result.stdout);
    assert!(result.status.success(), "{stdout}");
    for tool in ["nasm", "ld.lld", "ld64.lld", "lld-link", "llvm-dlltool", "bwrap"] {
        assert!(stdout.contains(&format!("  ok       {tool:<13} ")), "{tool} missing in\n{stdout}");
    }
    assert!(stdout.contains("NASM version 2."), "{stdout}");
    assert!(stdout.contains("  ok       linux-x86_64"), "{stdout}");
    assert!(stdout.contains("  ok       cpython-3."), "{stdout}");
}

#[test]
fn building_without_the_sandbox_warns_every_time() {
    let out_dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let result = wheelwright(&[
            "build",
            "examples/pymult",
            "--target",
            "linux-x86_64",
            "--no-smoke",
            "--sandbox",
            "none",
            "--out",
            out_dir.path().to_str().unwrap(),
        ]);
        let stderr = text(&result.stderr);
        assert!(result.status.success(), "{stderr}");
        assert!(
            stderr.contains(
                "warning: --sandbox=none: the sources, their tests and the modules they build run unconfined"
            ),
            "{stderr}"
        );
    }
}

#[test]
fn doctor_describes_the_sandbox_layers() {
    let stdout = text(&wheelwright(&["doctor"]).stdout);
    let line = stdout.lines().find(|l| l.contains("bubblewrap +")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.starts_with("  ok       bubblewrap + landlock ABI "), "{line}");
}

/// The guards' fixture with its static check on: mistakes `check` must find.
fn abibad_checked() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("workers/tests/fixtures/abibad");
    for rel in ["src/abibad.asm", "pyproject.toml"] {
        let dest = dir.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(fixture.join(rel)).unwrap();
        std::fs::write(dest, text.replace("lint = \"off\"", "")).unwrap();
    }
    dir
}

#[test]
fn check_prints_findings_editors_parse_and_fails_on_an_error() {
    let clean = wheelwright(&["check", "examples/pymult", "--target", "all"]);
    assert!(clean.status.success(), "{}", text(&clean.stderr));
    assert_eq!(text(&clean.stdout), "");
    assert_eq!(text(&clean.stderr).trim(), "0 error(s), 0 warning(s)");

    let bad = abibad_checked();
    let out_dir = bad.path().join("out");
    let out =
        wheelwright(&["check", bad.path().to_str().unwrap(), "--target", "all", "--out", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let misaligned = stdout.lines().find(|l| l.contains("[misaligned-call]") && l.contains("PyFloat_FromDouble"));
    let misaligned = misaligned.unwrap_or_else(|| panic!("{stdout}"));
    assert!(misaligned.starts_with("src/abibad.asm:") && misaligned.contains(":5: error: "), "{misaligned}");
    assert!(misaligned.ends_with("(linux-x86_64, macos-x86_64, windows-x86_64)"), "{misaligned}");
    assert!(stdout.lines().any(|l| l.contains("rsi is callee-saved on windows-x86_64")), "{stdout}");
    assert!(text(&out.stderr).contains(" error(s), 0 warning(s)"));
    // Nothing was linked or packaged.
    assert!(std::fs::read_dir(&out_dir).map_or(true, |mut d| d.next().is_none()), "check wrote files");
}
