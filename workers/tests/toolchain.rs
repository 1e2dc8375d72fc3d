//! A build uses the tools its options carry, and looks for no others.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use wheelwright_workers::pipeline::{self, Event};
use wheelwright_workers::platform::Target;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{BuildReport, Status, Step, StepReport};
use wheelwright_workers::toolchain::{self, Found, Tool, Toolchain};

/// Builds pymult for Linux (no smoke test) with `tools`; the report and every log line.
fn build_with_tools(tools: Toolchain) -> (BuildReport, Vec<String>) {
    let project = Project::load(&example("pymult"), &Overrides::default()).expect("project loads");
    let (options, _dirs) = options(&[Target::Linux], false);
    let options = pipeline::BuildOptions { toolchain: Arc::new(tools), ..options };
    let log = Mutex::new(Vec::new());
    let report = pipeline::build(&project, &options, &|event| {
        if let Event::Log { text, .. } = event {
            log.lock().unwrap().push(text);
        }
    });
    (report, log.into_inner().unwrap())
}

/// The host's tools with `tool` taken out, as if it were not installed.
fn without(tool: Tool) -> Toolchain {
    let mut tools = (*toolchain()).clone();
    tools.found.retain(|f| f.tool != tool);
    tools.missing.push(tool);
    tools
}

#[test]
fn a_toolchain_without_nasm_fails_the_toolchain_step_though_nasm_is_installed() {
    assert!(toolchain::find(Tool::Nasm).is_some(), "nasm is installed here (scripts/setup.sh)");
    let (report, log) = build_with_tools(without(Tool::Nasm));

    let linux = target(&report, Target::Linux);
    assert_eq!(linux.status, Status::Failed);
    assert_eq!(
        linux.steps,
        [StepReport {
            name: Step::Toolchain,
            status: Status::Failed,
            duration_ms: linux.steps[0].duration_ms,
            reason: Some("missing tools: nasm (Debian package nasm)".into()),
            infrastructure: true,
        }]
    );
    assert_eq!(
        report.infrastructure_failure().as_deref(),
        Some("linux-x86_64 toolchain: missing tools: nasm (Debian package nasm)")
    );
    assert!(!log.iter().any(|l| l.contains("nasm -f")), "nasm ran: {log:#?}");
}

#[test]
fn the_same_options_with_the_discovered_toolchain_succeed() {
    let (report, log) = build_with_tools((*toolchain()).clone());

    assert!(report.succeeded(), "{report:#?}");
    let steps: Vec<(Step, Status)> = target(&report, Target::Linux).steps.iter().map(|s| (s.name, s.status)).collect();
    assert_eq!(
        steps,
        [
            (Step::Assemble, Status::Succeeded),
            (Step::Check, Status::Succeeded),
            (Step::Abi, Status::Succeeded),
            (Step::Link, Status::Succeeded),
            (Step::Verify, Status::Succeeded),
            (Step::Package, Status::Succeeded),
            (Step::Smoke, Status::Skipped),
        ],
        "{log:#?}"
    );
}

#[test]
fn the_assembler_runs_from_the_path_the_toolchain_names() {
    // Another name for the host's nasm, in a folder of its own: only the
    // toolchain says where it is.
    let real = toolchain::find(Tool::Nasm).expect("nasm is installed here (scripts/setup.sh)");
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("nasm-given");
    std::os::unix::fs::symlink(&real, &elsewhere).unwrap();
    let mut tools = without(Tool::Nasm);
    tools.missing.retain(|t| *t != Tool::Nasm);
    tools.found.push(Found { tool: Tool::Nasm, path: elsewhere.clone(), version: String::new() });

    let (report, log) = build_with_tools(tools);

    assert!(report.succeeded(), "{report:#?}\n{log:#?}");
    let runs: Vec<&String> = log.iter().filter(|l| l.contains(" -f elf64 ")).collect();
    assert!(!runs.is_empty(), "no nasm run in {log:#?}");
    let given = format!("$ {} ", elsewhere.display());
    assert!(runs.iter().all(|l| l.starts_with(&given)), "{runs:#?}");
}
