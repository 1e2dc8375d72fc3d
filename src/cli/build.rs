//! `wheelwright build`: one project, the requested targets, a progress line per
//! step and a summary table; non-zero exit when a requested target failed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use wheelwright_workers::pipeline::{self, BuildOptions, Event};
use wheelwright_workers::platform::Target;
use wheelwright_workers::process::CancelToken;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{BuildReport, Severity, Status, TestRun};
use wheelwright_workers::sandbox::Limits;
use wheelwright_workers::toolchain::Toolchain;

use super::{make_sandbox, PythonArgs, SandboxKind};

/// Arguments of `wheelwright build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The project directory.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Targets: a comma-separated list of linux-x86_64, macos-x86_64, windows-x86_64, or `all`.
    #[arg(long = "target", value_parser = parse_targets)]
    targets: Option<TargetList>,
    /// Where to write the wheels and the sdist.
    #[arg(long, default_value = "dist")]
    out: PathBuf,
    /// Skip the smoke test.
    #[arg(long)]
    no_smoke: bool,
    /// Assemble with debug information.
    #[arg(long)]
    debug: bool,
    /// Print the build report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Print every tool's command line and output.
    #[arg(long, short)]
    verbose: bool,
    /// Seconds each tool run may take.
    #[arg(long, default_value_t = 60)]
    step_timeout: u64,
    /// Isolation for the steps; `none` is for trusted local sources only.
    #[arg(long, value_enum, default_value = "bwrap")]
    sandbox: SandboxKind,
    #[command(flatten)]
    python: PythonArgs,
}

/// A parsed `--target` value (clap treats a bare `Vec` as repeated values).
#[derive(Debug, Clone)]
struct TargetList(Vec<Target>);

fn parse_targets(s: &str) -> Result<TargetList, String> {
    Target::parse_list(s).map(TargetList).map_err(|e| e.to_string())
}

/// Builds (or, when `check_only`, assembles and checks) the project.
pub fn run(args: BuildArgs, check_only: bool) -> ExitCode {
    let overrides = Overrides { debug: args.debug, ..Overrides::default() };
    let project = match Project::load(&args.path, &overrides) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let limits = Limits { timeout_secs: args.step_timeout, cpu_secs: args.step_timeout, ..Limits::default() };
    let sandbox = match make_sandbox(args.sandbox, limits) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !sandbox.is_isolated() {
        eprintln!("warning: --sandbox=none: the sources, their tests and the modules they build run unconfined");
    }
    let smoke = !args.no_smoke && !check_only;
    let interpreters = if smoke { args.python.interpreters() } else { Vec::new() };
    let work = match tempfile::Builder::new().prefix("wheelwright-").tempdir() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: cannot create a work directory: {e}");
            return ExitCode::from(2);
        }
    };
    let options = BuildOptions {
        targets: args.targets.clone().map(|t| t.0),
        out_dir: args.out.clone(),
        work_dir: work.path().to_path_buf(),
        smoke,
        interpreters,
        cache_dir: wheelwright_workers::default_cache_dir(),
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse().ok()),
        sandbox,
        cancel: CancelToken::new(),
        parallel_targets: true,
        check_only,
        // Once for the run; the build looks for no tools itself.
        toolchain: Arc::new(Toolchain::discover()),
    };
    let verbose = args.verbose;
    if check_only {
        let report = pipeline::build(&project, &options, &|event| {
            if verbose {
                print_event(&event, verbose)
            }
        });
        return print_check(&report);
    }
    eprintln!("building {} {}", project.metadata.name, project.metadata.version);
    let report = pipeline::build(&project, &options, &|event| print_event(&event, verbose));
    print_summary(&report);
    if args.json {
        let mut stdout = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut stdout, &report);
        let _ = writeln!(stdout);
    }
    if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_event(event: &Event, verbose: bool) {
    match event {
        Event::StepFinished { target, report } => {
            let status = match report.status {
                Status::Succeeded => "ok",
                Status::Failed => "FAILED",
                Status::Skipped => "skipped",
            };
            eprintln!("  {:<15} {:<9} {:<8} {:>6} ms", target.name(), report.name, status, report.duration_ms);
            if let Some(reason) = &report.reason {
                for line in reason.lines() {
                    eprintln!("      {line}");
                }
            }
        }
        Event::Log { text, .. } if verbose => {
            for line in text.lines() {
                eprintln!("    | {line}");
            }
        }
        _ => {}
    }
}

fn print_summary(report: &BuildReport) {
    print_findings(report);
    eprintln!();
    eprintln!("{:<15} {:<10} {:<5} artifacts", "target", "status", "abi3");
    for target in &report.targets {
        let status = target.status.as_str();
        let files: Vec<&str> = target.artifacts.iter().map(|a| a.filename.as_str()).collect();
        let abi3 = if target.abi3 { "yes" } else { "no" };
        eprintln!("{:<15} {:<10} {:<5} {}", target.target.name(), status, abi3, files.join(" "));
        for run in &target.tests {
            eprintln!("{:<15}   {}", "", test_run_line(run));
        }
        if target.tests.iter().any(|run| run.model.is_some()) {
            eprintln!("{:<15}   {MODEL_CAVEAT}", "");
        }
    }
    if let Some(sdist) = &report.sdist {
        eprintln!("{:<15} {:<10} {:<5} {}", "sdist", "succeeded", "", sdist.filename);
    }
}

/// Printed under a target whose tests ran under an ABI model: the tests
/// saw the host's platform, whatever they check (see docs/abi-model.md).
const MODEL_CAVEAT: &str =
    "(under the model sys.platform is still \"linux\": tests that branch on the platform took the Linux branch)";

/// One test run in the summary. A run under an ABI model says so first, so
/// that a macOS or Windows result is never read as a native run.
/// `wheelwright check`'s answer: every finding on stdout (once per place),
/// a count on stderr, status 1 when an error was found or a target could
/// not be checked (it did not assemble).
fn print_check(report: &BuildReport) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    for (line, targets) in findings_by_place(report) {
        let _ = writeln!(stdout, "{line} ({})", targets.join(", "));
    }
    let findings = report.targets.iter().flat_map(|t| &t.findings);
    let errors = findings.clone().filter(|f| f.severity == Severity::Error).count();
    let warnings = findings.filter(|f| f.severity == Severity::Warning).count();
    let unchecked: Vec<String> = report
        .targets
        .iter()
        .filter(|t| t.status == Status::Failed && t.findings.iter().all(|f| f.severity != Severity::Error))
        .map(|t| format!("{}: {}", t.target.name(), t.reason.as_deref().unwrap_or("failed")))
        .collect();
    for line in &unchecked {
        eprintln!("{line}");
    }
    eprintln!("{errors} error(s), {warnings} warning(s)");
    if errors > 0 || !unchecked.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The static checks' findings, one line each in the form editors parse
/// (`src/x.asm:33:5: error: … [rule]`), a finding shared by several
/// targets once, with the targets it holds for.
fn print_findings(report: &wheelwright_workers::report::BuildReport) {
    for (line, targets) in findings_by_place(report) {
        eprintln!("{line} ({})", targets.join(", "));
    }
}

fn findings_by_place(report: &wheelwright_workers::report::BuildReport) -> Vec<(String, Vec<&'static str>)> {
    let mut lines: Vec<(String, Vec<&'static str>)> = Vec::new();
    for target in &report.targets {
        for finding in &target.findings {
            let line = finding.compiler_style();
            match lines.iter_mut().find(|(l, _)| *l == line) {
                Some((_, targets)) => targets.push(target.target.name()),
                None => lines.push((line, vec![target.target.name()])),
            }
        }
    }
    lines
}

fn test_run_line(run: &TestRun) -> String {
    let counts = format!(
        "{} passed, {} failed, {} errors, {} skipped{}{}",
        run.passed,
        run.failed,
        run.errors,
        run.skipped,
        // Which path ran the tests (docs/warm-runner.md); cold says nothing.
        if run.runner == wheelwright_workers::report::TestPath::Warm { ", warm" } else { "" },
        run.problem.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
    );
    match &run.model {
        Some(label) => format!("{label}, on {}: {counts}", run.interpreter),
        None => format!("tests on {}: {counts}", run.interpreter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: Option<&str>) -> TestRun {
        let mut run = TestRun::new("cpython-3.11", "/usr/bin/python3".into(), "m-0.1-py3-none-any.whl");
        run.passed = 7;
        run.model = model.map(String::from);
        run
    }

    #[test]
    fn a_run_under_a_model_is_labelled_as_such() {
        let label = "tests run on the Linux host under the Windows x64 ABI model";
        assert_eq!(
            test_run_line(&run(Some(label))),
            "tests run on the Linux host under the Windows x64 ABI model, on cpython-3.11: \
             7 passed, 0 failed, 0 errors, 0 skipped"
        );
    }

    #[test]
    fn a_warm_run_says_so() {
        let mut warm = run(None);
        warm.runner = wheelwright_workers::report::TestPath::Warm;
        assert_eq!(test_run_line(&warm), "tests on cpython-3.11: 7 passed, 0 failed, 0 errors, 0 skipped, warm");
    }

    #[test]
    fn a_native_run_says_only_its_interpreter() {
        assert_eq!(test_run_line(&run(None)), "tests on cpython-3.11: 7 passed, 0 failed, 0 errors, 0 skipped");
    }

    #[test]
    fn a_finding_shared_by_targets_is_printed_once_in_compiler_style() {
        use wheelwright_workers::platform::Target;
        use wheelwright_workers::report::{BuildReport, Finding, ProjectInfo, Severity, Status, TargetReport};
        let finding = |rule: &str, line| Finding {
            rule: rule.into(),
            severity: Severity::Error,
            file: "src/m.asm".into(),
            line,
            column: 5,
            instruction: "push rbx".into(),
            message: "rbx is callee-saved and not restored on this path".into(),
        };
        let target = |target, findings| TargetReport {
            target,
            status: Status::Failed,
            reason: None,
            abi3: true,
            steps: Vec::new(),
            tests: Vec::new(),
            artifacts: Vec::new(),
            findings,
        };
        let report = BuildReport {
            project: ProjectInfo { name: "m".into(), version: "0.1".into() },
            targets: vec![
                target(Target::Linux, vec![finding("callee-saved", 12)]),
                target(Target::Windows, vec![finding("callee-saved", 12), finding("shadow-space", 20)]),
            ],
            sdist: None,
        };
        let lines = findings_by_place(&report);
        let shared = "src/m.asm:12:5: error: rbx is callee-saved and not restored on this path [callee-saved]";
        assert_eq!(lines[0], (shared.to_string(), vec!["linux-x86_64", "windows-x86_64"]));
        assert_eq!(lines[1].1, vec!["windows-x86_64"]);
        assert_eq!(lines.len(), 2);
    }
}
