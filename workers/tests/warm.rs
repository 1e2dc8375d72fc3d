//! The warm test runner ([`wheelwright_workers::warm`]): results equal to
//! cold ones on every example and test project, and the isolation of each
//! run from every other run, from the runner, and from the next build.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use wheelwright_workers::pipeline;
use wheelwright_workers::platform::Target;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{BuildReport, Status, TestPath, TestRun};
use wheelwright_workers::sandbox::{Limits, Sandbox};
use wheelwright_workers::warm::WarmPool;

const PYMULT: &str = include_str!("../../examples/pymult/src/pymult.asm");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A sandbox whose warm runners live in `pool` and may serve every build
/// whose work directory is in `root`.
fn pooled(pool: &Arc<WarmPool>, root: &Path, timeout_secs: u64) -> Sandbox {
    sandbox(Limits { timeout_secs, ..Limits::default() }).with_warm(pool.clone()).with_warm_root(root)
}

/// Builds `project` for Linux in `work_dir` with `sandbox`.
fn build_in(project: &Path, work_dir: &Path, sandbox: Sandbox) -> BuildReport {
    std::fs::create_dir_all(work_dir).unwrap();
    let project = Project::load(project, &Overrides::default()).expect("project loads");
    let (mut options, _dirs) = options(&[Target::Linux], true);
    options.work_dir = work_dir.to_path_buf();
    options.sandbox = sandbox;
    pipeline::build(&project, &options, &|_| {})
}

/// The only test run of a Linux build.
fn only_run(report: &BuildReport) -> &TestRun {
    let tests = &target(report, Target::Linux).tests;
    assert_eq!(tests.len(), 1, "{report:#?}");
    &tests[0]
}

/// The folder a Linux build in `work_dir` ran its tests in.
fn run_dir(work_dir: &Path) -> PathBuf {
    let smoke = work_dir.join("linux-x86_64/smoke");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&smoke)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.to_string_lossy().ends_with(".abimodel"))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

/// Builds `root` for `targets` with the tests run warm (or, `warm` false,
/// every run cold); the report and the work directory it ran in.
fn build_with(root: &Path, targets: &[Target], warm: bool, timeout_secs: u64) -> (BuildReport, Dirs) {
    let project = Project::load(root, &Overrides::default()).expect("project loads");
    let (mut options, dirs) = options(targets, true);
    options.sandbox = sandbox(Limits { timeout_secs, ..Limits::default() });
    if !warm {
        options.sandbox = options.sandbox.without_warm();
    }
    options.work_dir = std::fs::canonicalize(&options.work_dir).unwrap();
    (pipeline::build(&project, &options, &|_| {}), dirs)
}

/// A run's results without the path that ran it, with its work directory
/// named `<work>`. Of a crash's Python stack only the frames above pytest's
/// own are kept: below them a warm child shows the runner's frames where a
/// cold run shows `python -m`'s.
fn outcome(run: &TestRun, work_dir: &Path) -> String {
    let mut run = run.clone();
    run.runner = TestPath::Cold;
    if let Some(crash) = run.crash.as_mut() {
        // Random in every run, cold or warm: the guards' register values.
        crash.registers.retain(|(name, _)| name == "rip");
        crash.python_traceback = crash.python_traceback.as_deref().map(above_pytest);
    }
    run.problem = run.problem.as_deref().map(above_pytest);
    let json = serde_json::to_value(&run).unwrap();
    let text = json.to_string();
    text.replace(&work_dir.display().to_string(), "<work>")
}

/// A Python stack (faulthandler's) down to pytest's first frame, without
/// the thread's address (random in every run).
fn above_pytest(stack: &str) -> String {
    let kept: Vec<&str> = stack
        .lines()
        .filter(|l| !l.starts_with("Current thread 0x") && !l.starts_with("Thread 0x"))
        .take_while(|l| !l.contains("/_pytest/"))
        .collect();
    kept.join("\n")
}

fn runs(report: &BuildReport) -> Vec<&TestRun> {
    report.targets.iter().flat_map(|t| &t.tests).collect()
}

/// Every example and every test project of the suite that builds, on
/// every target: the warm results are the cold ones.
#[test]
fn every_example_and_test_project_gives_the_same_results_warm_and_cold() {
    let mut projects: Vec<PathBuf> = ["pymult", "vecstats"].iter().map(|e| example(e)).collect();
    projects.extend(["abibad", "segfault", "win64_long", "hang"].iter().map(|f| fixture(f)));
    for project in projects {
        let (warm, warm_dirs) = build_with(&project, &Target::ALL, true, 5);
        let (cold, cold_dirs) = build_with(&project, &Target::ALL, false, 5);
        let (warm_runs, cold_runs) = (runs(&warm), runs(&cold));
        assert!(!warm_runs.is_empty(), "{}: no test ran", project.display());
        // A run that was not run (a refused module) has no path.
        let ran = |r: &&&TestRun| !r.problem.as_deref().is_some_and(|p| p.starts_with("not run"));
        assert!(warm_runs.iter().filter(ran).all(|r| r.runner == TestPath::Warm), "{warm_runs:#?}");
        assert!(cold_runs.iter().all(|r| r.runner == TestPath::Cold), "{cold_runs:#?}");
        let warm: Vec<String> = warm_runs.iter().map(|r| outcome(r, warm_dirs.work.path())).collect();
        let cold: Vec<String> = cold_runs.iter().map(|r| outcome(r, cold_dirs.work.path())).collect();
        assert_eq!(warm, cold, "{}", project.display());
    }
}
