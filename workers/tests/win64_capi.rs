//! The Windows C-API model (`_wheelwright_abimodel/win64_capi.py`) passes its
//! own pytest tests under the real interpreter, checked against the very
//! `python3.def` the engine makes Windows import libraries from.

mod common;

use std::process::Command;

use common::*;
use wheelwright_workers::capi::CApi;

/// The harness's source folder (the package and its tests).
fn harness() -> std::path::PathBuf {
    repo().join("workers/src/abimodel/harness")
}

#[test]
fn win64_capi_model_passes_its_tests_against_the_engines_python3_def() {
    let api = CApi::load(&wheelwright_workers::default_cache_dir()).expect("import libraries are generated");
    let def = api.library_dir().join("python3.def");
    assert!(def.is_file(), "{} is missing", def.display());
    let out = Command::new(venv_python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"])
        .arg(harness().join("tests/test_win64_capi.py"))
        .env("WHEELWRIGHT_PYTHON3_DEF", &def)
        // The tests run from the source tree: leave no __pycache__ in it.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(harness())
        .output()
        .expect("the venv's python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pytest failed:\n{text}");
    let summary = text.lines().rev().find(|l| l.contains(" passed")).unwrap_or_else(|| panic!("no summary:\n{text}"));
    let passed: usize = summary
        .split_whitespace()
        .zip(summary.split_whitespace().skip(1))
        .find(|(_, word)| *word == "passed" || word.starts_with("passed"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable summary {summary:?}"));
    assert!(passed >= 100, "only {passed} tests ran:\n{text}");
    assert!(!summary.contains("failed") && !summary.contains("error") && !summary.contains("skipped"), "{summary}");
}
