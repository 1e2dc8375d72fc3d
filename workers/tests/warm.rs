//! The warm test runner ([`wheelwright_workers::warm`]): results equal to
//! cold ones on every example and test project, and the isolation of each
//! run from every other run, from the runner, and from the next build.

mod common;

use std::path::Path;

use common::*;
use wheelwright_workers::pipeline;
use wheelwright_workers::platform::Target;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{BuildReport, TestPath, TestRun};
use wheelwright_workers::sandbox::Limits;

/// Builds `root` for `targets` with the tests run warm (or, `warm` false,
/// every run cold).
fn build_with(root: &Path, targets: &[Target], warm: bool) -> BuildReport {
    let project = Project::load(root, &Overrides::default()).expect("project loads");
    let (mut options, _dirs) = options(targets, true);
    if !warm {
        options.sandbox = options.sandbox.without_warm();
    }
    pipeline::build(&project, &options, &|_| {})
}

/// A run's results without the path that ran it (nor where it ran).
fn outcome(run: &TestRun) -> String {
    let mut run = run.clone();
    run.runner = TestPath::Cold;
    let mut json = serde_json::to_value(&run).unwrap();
    json.as_object_mut().unwrap().remove("executable");
    json.to_string()
}

fn runs(report: &BuildReport) -> Vec<&TestRun> {
    report.targets.iter().flat_map(|t| &t.tests).collect()
}

#[test]
fn pymult_on_every_target_runs_warm_with_the_results_of_a_cold_run() {
    let warm = build_with(&example("pymult"), &Target::ALL, true);
    let cold = build_with(&example("pymult"), &Target::ALL, false);
    let (warm, cold) = (runs(&warm), runs(&cold));
    assert_eq!(warm.len(), 3);
    assert!(warm.iter().all(|r| r.runner == TestPath::Warm), "{warm:#?}");
    assert!(cold.iter().all(|r| r.runner == TestPath::Cold), "{cold:#?}");
    let (warm, cold): (Vec<String>, Vec<String>) =
        (warm.iter().map(|r| outcome(r)).collect(), cold.iter().map(|r| outcome(r)).collect());
    assert_eq!(warm, cold);
}

#[test]
fn debug_segfault() {
    let project = Project::load(&repo().join("workers/tests/fixtures/segfault"), &Overrides::default()).unwrap();
    let (options, _dirs) = options(&[Target::Linux], true);
    let report = pipeline::build(&project, &options, &|e| eprintln!("{e:?}"));
    eprintln!("{:#?}", report.targets[0].tests);
}
