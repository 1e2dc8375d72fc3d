//! What the HTTP doors answer in JSON (the API, and the webhook that
//! answers with the build it made): types of their own, mapped from the
//! daemon's records (and the stored report) here and nowhere else. The JSON
//! is the one the OpenAPI document describes.

use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use crate::builds::ProjectSummary;
use crate::error::ApiError;
use crate::model::report::{StoredCrash, StoredStep, StoredTestRun};
use crate::model::{artifact_url, ArtifactRecord, BuildDetails, BuildStatus, GitOrigin};

/// An artifact as the API shows it.
#[derive(Debug, Serialize)]
pub struct ArtifactView {
    /// File name.
    pub filename: String,
    /// Size in bytes.
    pub size: i64,
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Download URL (path).
    pub url: String,
    /// Target of a wheel; absent for the sdist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl ArtifactView {
    /// `artifact` of build `build_id`.
    pub fn new(build_id: &str, artifact: &ArtifactRecord) -> ArtifactView {
        ArtifactView {
            filename: artifact.filename.clone(),
            size: artifact.size,
            sha256: artifact.sha256.clone(),
            url: artifact_url(build_id, &artifact.filename),
            target: artifact.target.clone(),
        }
    }
}

/// One step of one target.
#[derive(Debug, Serialize)]
pub struct StepView {
    /// `assemble`, `link`, ...
    pub name: String,
    /// succeeded, failed or skipped.
    pub status: String,
    /// Wall-clock time.
    pub duration_ms: u64,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure was the host's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub infrastructure: bool,
}

/// One failed test.
#[derive(Debug, Serialize)]
pub struct FailureView {
    /// Test id.
    pub test: String,
    /// Message and traceback.
    pub message: String,
}

/// A crash of native code.
#[derive(Debug, Serialize)]
pub struct CrashView {
    /// The signal.
    pub signal: String,
    /// Python's traceback.
    pub python_traceback: Option<String>,
    /// The faulting instruction.
    pub instruction: Option<String>,
    /// Symbol + offset and module.
    pub location: Option<String>,
    /// The `.asm` line.
    pub source_line: Option<String>,
    /// Register values.
    pub registers: Vec<(String, String)>,
}

/// Test results on one interpreter.
#[derive(Debug, Serialize)]
pub struct TestRunView {
    /// e.g. `cpython-3.11`.
    pub interpreter: String,
    /// The interpreter's path.
    pub executable: String,
    /// The wheel installed.
    pub wheel: String,
    /// Passed.
    pub passed: u32,
    /// Failed.
    pub failed: u32,
    /// Errors.
    pub errors: u32,
    /// Skipped.
    pub skipped: u32,
    /// Every failure and error.
    pub failures: Vec<FailureView>,
    /// Why the run did not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The ABI model it ran under, when not a native run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `warm` (a child forked from a warm runner) or `cold` (a pytest of its own).
    pub runner: String,
    /// A crash of native code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash: Option<CrashView>,
}

/// One target of a build.
#[derive(Debug, Serialize)]
pub struct TargetView {
    /// Target name.
    pub target: String,
    /// queued, running, succeeded, failed, skipped or cancelled.
    pub status: String,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether its wheel is abi3.
    pub abi3: bool,
    /// Steps in order.
    pub steps: Vec<StepView>,
    /// Test results per interpreter.
    pub tests: Vec<TestRunView>,
    /// Its wheels.
    pub artifacts: Vec<ArtifactView>,
    /// What the static checks found, at the `.asm` line.
    pub findings: Vec<FindingView>,
}

/// One finding of a static check.
#[derive(Debug, Serialize)]
pub struct FindingView {
    /// Rule id.
    pub rule: String,
    /// `error` or `warning`.
    pub severity: String,
    /// Source file, relative to the project.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The source line's text.
    pub instruction: String,
    /// Why, and the fix.
    pub message: String,
}

/// A build as the API shows it.
#[derive(Debug, Serialize)]
pub struct BuildView {
    /// Id.
    pub id: String,
    /// Status.
    pub status: BuildStatus,
    /// RFC 3339 timestamps.
    pub created_at: String,
    /// Started.
    pub started_at: Option<String>,
    /// Finished.
    pub finished_at: Option<String>,
    /// Name and version.
    pub project: Value,
    /// Debug build.
    pub debug: bool,
    /// The build whose results were reused, when served from the cache.
    pub cached_from: Option<String>,
    /// Why the build failed outside its targets, or was cancelled.
    pub error: Option<String>,
    /// The git push it came from: repository, ref and commit.
    pub source: Option<GitOrigin>,
    /// Per target.
    pub targets: Vec<TargetView>,
    /// Every artifact, the sdist included.
    pub artifacts: Vec<ArtifactView>,
    /// Related URLs.
    pub links: Value,
}

fn step(s: &StoredStep) -> StepView {
    StepView {
        name: s.name.as_str().to_string(),
        status: s.status.as_str().to_string(),
        duration_ms: s.duration_ms,
        reason: s.reason.clone(),
        infrastructure: s.infrastructure,
    }
}

fn crash(c: &StoredCrash) -> CrashView {
    CrashView {
        signal: c.signal.clone(),
        python_traceback: c.python_traceback.clone(),
        instruction: c.instruction.clone(),
        location: c.location.clone(),
        source_line: c.source_line.clone(),
        registers: c.registers.clone(),
    }
}

fn test_run(run: &StoredTestRun) -> TestRunView {
    TestRunView {
        interpreter: run.interpreter.clone(),
        executable: run.executable.clone(),
        wheel: run.wheel.clone(),
        passed: run.passed,
        failed: run.failed,
        errors: run.errors,
        skipped: run.skipped,
        failures: run
            .failures
            .iter()
            .map(|f| FailureView { test: f.test.clone(), message: f.message.clone() })
            .collect(),
        problem: run.problem.clone(),
        model: run.model.clone(),
        runner: run.runner.clone(),
        crash: run.crash.as_ref().map(crash),
    }
}

impl From<&BuildDetails> for BuildView {
    fn from(details: &BuildDetails) -> BuildView {
        let BuildDetails { build, artifacts } = details;
        let id = &build.id;
        let view = |a: &ArtifactRecord| ArtifactView::new(id, a);
        let targets = match &build.report {
            Some(report) => report
                .targets
                .iter()
                .map(|t| TargetView {
                    target: t.target.name().to_string(),
                    status: t.status.as_str().to_string(),
                    reason: t.reason.clone(),
                    abi3: t.abi3,
                    steps: t.steps.iter().map(step).collect(),
                    tests: t.tests.iter().map(test_run).collect(),
                    artifacts: artifacts
                        .iter()
                        .filter(|a| a.target.as_deref() == Some(t.target.name()))
                        .map(view)
                        .collect(),
                    findings: t
                        .findings
                        .iter()
                        .map(|f| FindingView {
                            rule: f.rule.clone(),
                            severity: f.severity.as_str().to_string(),
                            file: f.file.clone(),
                            line: f.line,
                            column: f.column,
                            instruction: f.instruction.clone(),
                            message: f.message.clone(),
                        })
                        .collect(),
                })
                .collect(),
            None => build
                .targets
                .iter()
                .map(|t| TargetView {
                    target: t.name().to_string(),
                    status: build.status.as_str().to_string(),
                    reason: None,
                    abi3: false,
                    steps: Vec::new(),
                    tests: Vec::new(),
                    artifacts: Vec::new(),
                    findings: Vec::new(),
                })
                .collect(),
        };
        BuildView {
            id: id.clone(),
            status: build.status,
            created_at: crate::model::rfc3339(build.created_at),
            started_at: build.started_at.map(crate::model::rfc3339),
            finished_at: build.finished_at.map(crate::model::rfc3339),
            project: serde_json::json!({ "name": build.project_name, "version": build.project_version }),
            debug: build.debug,
            cached_from: build.cached_from.clone(),
            error: build.error.clone(),
            source: build.origin.clone(),
            targets,
            artifacts: artifacts.iter().map(view).collect(),
            links: serde_json::json!({
                "self": format!("/api/v1/builds/{id}"),
                "log": format!("/api/v1/builds/{id}/log"),
                "cancel": format!("/api/v1/builds/{id}/cancel"),
                "index": format!("/simple/{}/", build.normalized_name),
            }),
        }
    }
}

/// The newest outcome of one target of one version.
#[derive(Debug, Serialize)]
pub struct CellView {
    /// Target name.
    pub target: String,
    /// The target's status in that build (or the build's, while it runs).
    pub status: String,
    /// The build.
    pub build_id: String,
    /// Its wheels for this target.
    pub artifacts: Vec<ArtifactView>,
}

/// One version row.
#[derive(Debug, Serialize)]
pub struct VersionView {
    /// Version.
    pub version: String,
    /// One cell per target that was ever built for it.
    pub targets: Vec<CellView>,
}

/// A project.
#[derive(Debug, Serialize)]
pub struct ProjectView {
    /// Normalised name.
    pub name: String,
    /// The name as its newest build spells it.
    pub display_name: String,
    /// Newest version first.
    pub versions: Vec<VersionView>,
    /// Builds looked at.
    pub builds: usize,
}

impl From<&ProjectSummary> for ProjectView {
    fn from(summary: &ProjectSummary) -> ProjectView {
        ProjectView {
            name: summary.name.clone(),
            display_name: summary.display_name.clone(),
            versions: summary
                .versions
                .iter()
                .map(|row| VersionView {
                    version: row.version.clone(),
                    targets: row
                        .cells
                        .iter()
                        .map(|cell| CellView {
                            target: cell.target.name().to_string(),
                            status: cell.status.clone(),
                            build_id: cell.build_id.clone(),
                            artifacts: cell.artifacts.iter().map(|a| ArtifactView::new(&cell.build_id, a)).collect(),
                        })
                        .collect(),
                })
                .collect(),
            builds: summary.builds,
        }
    }
}

/// How long a client refused for having too many builds queued is asked to
/// wait before trying again.
pub const RETRY_AFTER_SECS: u64 = 30;

/// `202 Accepted` with the build and its `Location`: the answer to a
/// submission, from the API and from the form's route asked for JSON.
pub fn accepted(details: &BuildDetails) -> Result<Response, ApiError> {
    let view = BuildView::from(details);
    let location = HeaderValue::from_str(&format!("/api/v1/builds/{}", view.id)).map_err(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// A refused submission as JSON, with `Retry-After` when it is the queue limit.
pub fn refusal(error: ApiError) -> Response {
    let retry = error.status == StatusCode::TOO_MANY_REQUESTS;
    let mut response = error.into_response();
    if retry {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}
