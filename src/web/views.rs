//! What the templates show, prepared from the service's records.

use askama::Template;
use wheelwright_workers::platform::Target;

use crate::builds::ProjectSummary;
use crate::model::report::{Status, Step, StoredTarget};
use crate::model::{rfc3339, BuildDetails};

/// The version shown in every footer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `/`.
#[derive(Template)]
#[template(path = "upload.html")]
pub struct UploadPage {
    pub version: &'static str,
    pub error: Option<String>,
    pub targets: Vec<&'static str>,
    pub max_upload: u64,
    pub needs_token: bool,
}

/// One row of `/builds`.
pub struct BuildRow {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub normalized: String,
    pub version: String,
    pub status: String,
    pub targets: String,
    pub created: String,
}

/// `/builds`.
#[derive(Template)]
#[template(path = "builds.html")]
pub struct BuildsPage {
    pub version: &'static str,
    pub rows: Vec<BuildRow>,
    pub project: String,
    pub status: String,
    pub statuses: Vec<&'static str>,
    pub next: Option<String>,
    pub api_url: String,
}

/// One step of one target.
pub struct Cell {
    pub status: String,
    pub symbol: &'static str,
    pub label: String,
    pub reason: Option<String>,
}

/// One target row of the grid.
pub struct TargetRow {
    pub target: String,
    pub status: String,
    pub reason: Option<String>,
    pub failed_step: Option<Step>,
    pub cells: Vec<Cell>,
    /// What the static checks found, compiler-style lines with their severity.
    pub findings: Vec<FindingRow>,
}

/// One finding of the "Checks" list: where, how bad, why.
pub struct FindingRow {
    pub severity: &'static str,
    /// `src/x.asm:33:5`.
    pub place: String,
    pub instruction: String,
    pub message: String,
    pub rule: String,
}

/// A crash, readable.
pub struct CrashView {
    pub signal: String,
    pub instruction: Option<String>,
    pub location: Option<String>,
    pub source_line: Option<String>,
    pub traceback: Option<String>,
    pub registers: Vec<(String, String)>,
}

/// Tests on one interpreter.
pub struct TestBlock {
    pub interpreter: String,
    pub wheel: String,
    pub passed: u32,
    pub failed: u32,
    pub errors: u32,
    pub skipped: u32,
    pub problem: Option<String>,
    /// The ABI model label, when not a native run.
    pub model: Option<String>,
    /// Whether a warm runner ran the tests.
    pub warm: bool,
    pub failures: Vec<(String, String)>,
    pub crash: Option<CrashView>,
}

/// One download.
pub struct ArtifactRow {
    pub filename: String,
    pub url: String,
    pub size: String,
    pub sha256: String,
}

/// `/builds/{id}`.
#[derive(Template)]
#[template(path = "build.html")]
pub struct BuildPage {
    pub version: &'static str,
    pub id: String,
    pub short_id: String,
    pub status: String,
    pub is_final: bool,
    pub project_name: String,
    pub project_version: String,
    pub normalized: String,
    pub created: String,
    pub finished: Option<String>,
    pub debug: bool,
    pub cached_from: Option<String>,
    pub error: Option<String>,
    /// `owner/name refs/heads/main @ 0123abc` for pushed builds.
    pub source: Option<String>,
    pub steps: Vec<Step>,
    pub rows: Vec<TargetRow>,
    /// Whether any target has a finding (the "Checks" section).
    pub has_findings: bool,
    pub tests: Vec<TestBlock>,
    pub artifacts: Vec<ArtifactRow>,
    pub pip_line: String,
    pub log: String,
    pub needs_token: bool,
    pub api_url: String,
    /// Whether the index serves this build's files (they can be yanked).
    pub published: bool,
    /// Yanked (PEP 592), with the reason given (possibly empty).
    pub yanked: Option<String>,
}

/// The columns of the build grid, in pipeline order: every step but
/// `setup`, which only ever fails before the others and shows as the
/// row's reason and failed step.
fn grid_steps() -> impl Iterator<Item = Step> {
    Step::ALL.into_iter().filter(|s| *s != Step::Setup)
}

/// `1.2 KiB`.
pub fn human_size(bytes: i64) -> String {
    let bytes = bytes as f64;
    if bytes < 1024.0 {
        format!("{bytes} B")
    } else if bytes < 1024.0 * 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    }
}

fn symbol(status: &str) -> &'static str {
    match status {
        "succeeded" => "✓",
        "failed" => "✗",
        "skipped" => "–",
        "running" => "…",
        _ => "·",
    }
}

/// The first 8 characters of an id (its time part).
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// One row of the grid for a target with a report.
fn target_row(t: &StoredTarget, used: &[Step]) -> TargetRow {
    let cells = used
        .iter()
        .map(|name| match t.steps.iter().find(|s| s.name == *name) {
            Some(step) => {
                let status = step.status.as_str().to_string();
                Cell {
                    symbol: symbol(&status),
                    label: if step.status == Status::Skipped {
                        "skipped".into()
                    } else {
                        format!("{} ms", step.duration_ms)
                    },
                    status,
                    reason: step.reason.clone(),
                }
            }
            None => Cell { status: "none".into(), symbol: symbol(""), label: String::new(), reason: None },
        })
        .collect();
    TargetRow {
        target: t.target.name().to_string(),
        status: t.status.as_str().to_string(),
        reason: t.reason.clone(),
        failed_step: t.steps.iter().find(|s| s.status == Status::Failed).map(|s| s.name),
        cells,
        findings: t
            .findings
            .iter()
            .map(|f| FindingRow {
                severity: f.severity.as_str(),
                place: format!("{}:{}:{}", f.file, f.line, f.column),
                instruction: f.instruction.clone(),
                message: f.message.clone(),
                rule: f.rule.clone(),
            })
            .collect(),
    }
}

impl BuildPage {
    /// The page for `details`, with its log and the host for the pip line.
    pub fn new(details: &BuildDetails, log: String, host: &str, needs_token: bool) -> BuildPage {
        let BuildDetails { build, artifacts } = details;
        let reported: &[StoredTarget] = build.report.as_ref().map_or(&[], |r| &r.targets);
        let mut used: Vec<Step> =
            grid_steps().filter(|s| reported.iter().any(|t| t.steps.iter().any(|x| x.name == *s))).collect();
        if used.is_empty() {
            // No step reported yet: the steps every build runs (`toolchain`
            // is reported only when tools are missing).
            used = grid_steps().filter(|s| *s != Step::Toolchain).collect();
        }
        let rows: Vec<TargetRow> = match &build.report {
            Some(report) => report.targets.iter().map(|t| target_row(t, &used)).collect(),
            // Not built yet: every requested target has the build's status.
            None => build
                .targets
                .iter()
                .map(|t| TargetRow {
                    target: t.name().to_string(),
                    status: build.status.as_str().to_string(),
                    reason: None,
                    failed_step: None,
                    findings: Vec::new(),
                    cells: used
                        .iter()
                        .map(|_| Cell { status: "none".into(), symbol: symbol(""), label: String::new(), reason: None })
                        .collect(),
                })
                .collect(),
        };
        let tests = reported
            .iter()
            .flat_map(|t| t.tests.iter())
            .map(|run| TestBlock {
                interpreter: run.interpreter.clone(),
                wheel: run.wheel.clone(),
                passed: run.passed,
                failed: run.failed,
                errors: run.errors,
                skipped: run.skipped,
                problem: run.problem.clone(),
                model: run.model.clone(),
                warm: run.runner == "warm",
                failures: run.failures.iter().map(|f| (f.test.clone(), f.message.clone())).collect(),
                crash: run.crash.as_ref().map(|c| CrashView {
                    signal: c.signal.clone(),
                    instruction: c.instruction.clone(),
                    location: c.location.clone(),
                    source_line: c.source_line.clone(),
                    traceback: c.python_traceback.clone(),
                    registers: c.registers.clone(),
                }),
            })
            .collect();
        let artifacts = artifacts
            .iter()
            .map(|a| ArtifactRow {
                filename: a.filename.clone(),
                url: crate::model::artifact_url(&build.id, &a.filename),
                size: human_size(a.size),
                sha256: a.sha256.clone(),
            })
            .collect();
        let pip_line =
            format!("pip install --index-url http://{host}/simple/ {}=={}", build.project_name, build.project_version);
        BuildPage {
            version: VERSION,
            short_id: short(&build.id),
            api_url: format!("/api/v1/builds/{}", build.id),
            published: false,
            yanked: None,
            id: build.id.clone(),
            status: build.status.as_str().to_string(),
            is_final: build.status.is_final(),
            project_name: build.project_name.clone(),
            project_version: build.project_version.clone(),
            normalized: build.normalized_name.clone(),
            created: rfc3339(build.created_at),
            finished: build.finished_at.map(rfc3339),
            debug: build.debug,
            cached_from: build.cached_from.clone(),
            error: build.error.clone(),
            source: build
                .origin
                .as_ref()
                .map(|s| format!("{} {} @ {}", s.repository, s.git_ref, s.commit.chars().take(12).collect::<String>())),
            steps: used,
            has_findings: rows.iter().any(|r| !r.findings.is_empty()),
            rows,
            tests,
            artifacts,
            pip_line,
            log,
            needs_token,
        }
    }
}

/// One cell of the project matrix.
pub struct MatrixCell {
    pub status: String,
    pub symbol: &'static str,
    pub build_id: Option<String>,
    pub wheels: Vec<(String, String)>,
}

/// One version of the project matrix.
pub struct MatrixRow {
    pub version: String,
    pub cells: Vec<MatrixCell>,
}

/// `/projects/{name}`.
#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    pub version: &'static str,
    pub name: String,
    pub normalized: String,
    pub builds: usize,
    pub targets: Vec<&'static str>,
    pub rows: Vec<MatrixRow>,
    pub pip_line: String,
    pub api_url: String,
}

impl ProjectPage {
    /// The page for `project`.
    pub fn new(project: &ProjectSummary, host: &str) -> ProjectPage {
        let targets: Vec<&'static str> = Target::ALL.iter().map(|t| t.name()).collect();
        let rows = project
            .versions
            .iter()
            .map(|row| MatrixRow {
                version: row.version.clone(),
                cells: Target::ALL
                    .iter()
                    .map(|t| match row.cells.iter().find(|c| c.target == *t) {
                        Some(cell) => MatrixCell {
                            symbol: symbol(&cell.status),
                            status: cell.status.clone(),
                            build_id: Some(cell.build_id.clone()),
                            wheels: cell
                                .artifacts
                                .iter()
                                .map(|a| (a.filename.clone(), crate::model::artifact_url(&cell.build_id, &a.filename)))
                                .collect(),
                        },
                        None => {
                            MatrixCell { status: "none".into(), symbol: symbol(""), build_id: None, wheels: vec![] }
                        }
                    })
                    .collect(),
            })
            .collect();
        ProjectPage {
            version: VERSION,
            pip_line: format!("pip install --index-url http://{host}/simple/ {}", project.name),
            api_url: format!("/api/v1/projects/{}", project.name),
            name: project.display_name.clone(),
            normalized: project.name.clone(),
            builds: project.builds,
            targets,
            rows,
        }
    }
}
