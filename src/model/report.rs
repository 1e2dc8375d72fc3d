//! A build's report as the database stores it: the daemon's own type,
//! mapped from the engine's [`BuildReport`] in one place ([`StoredReport::from`]),
//! so the engine's types can change without changing what old rows hold.
//! The JSON is the same as the engine's report of wave 1 (rows written then
//! decode as they are); a value that does not decode is an error, never a
//! silent default.

use serde::{Deserialize, Serialize};
use wheelwright_workers::platform::Target;
use wheelwright_workers::report::{self as engine, BuildReport};

pub use engine::{Severity, Status, Step};

/// A whole build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReport {
    /// Name and version.
    pub project: StoredProject,
    /// One entry per requested target.
    pub targets: Vec<StoredTarget>,
    /// The source distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdist: Option<StoredArtifact>,
}

/// The project a build was for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProject {
    /// Distribution name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// A file a build produced (its bytes are in the store, by sha256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredArtifact {
    /// File name.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// One target's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTarget {
    /// The target.
    pub target: Target,
    /// Overall outcome.
    pub status: Status,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the modules use only the stable ABI.
    pub abi3: bool,
    /// Steps in the order they ran.
    pub steps: Vec<StoredStep>,
    /// Test results per interpreter.
    pub tests: Vec<StoredTestRun>,
    /// Wheels.
    pub artifacts: Vec<StoredArtifact>,
    /// What the static checks found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<StoredFinding>,
}

/// One finding of a static check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// Rule id.
    pub rule: String,
    /// `error` or `warning`.
    pub severity: Severity,
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

/// One step of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStep {
    /// Which step.
    pub name: Step,
    /// Outcome.
    pub status: Status,
    /// Wall-clock time.
    pub duration_ms: u64,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure was the host's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub infrastructure: bool,
}

/// Test results on one interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTestRun {
    /// e.g. `cpython-3.11`.
    pub interpreter: String,
    /// Path of the interpreter.
    pub executable: String,
    /// The wheel installed.
    pub wheel: String,
    /// Passed tests.
    pub passed: u32,
    /// Failed tests.
    pub failed: u32,
    /// Tests that errored.
    pub errors: u32,
    /// Skipped tests.
    pub skipped: u32,
    /// Every failure and error.
    pub failures: Vec<StoredFailure>,
    /// Why the run did not complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The ABI model the tests ran under (a macOS or Windows module on the
    /// Linux host); `None` for a native run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Which path ran the tests: `warm` (a child of a warm runner) or
    /// `cold` (a pytest of its own; every run stored before warm runners).
    #[serde(default = "cold")]
    pub runner: String,
    /// A crash of native code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<StoredCrash>,
}

fn cold() -> String {
    "cold".into()
}

/// One failed or erroring test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFailure {
    /// `tests/test_x.py::test_y`.
    pub test: String,
    /// Message and traceback.
    pub message: String,
}

/// Native code that died on a signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCrash {
    /// `SIGSEGV`, ...
    pub signal: String,
    /// Python's faulthandler traceback.
    #[serde(default)]
    pub python_traceback: Option<String>,
    /// The faulting instruction.
    #[serde(default)]
    pub instruction: Option<String>,
    /// Symbol + offset and module.
    #[serde(default)]
    pub location: Option<String>,
    /// The `.asm` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_line: Option<String>,
    /// Register values.
    #[serde(default)]
    pub registers: Vec<(String, String)>,
}

impl From<&engine::Artifact> for StoredArtifact {
    fn from(a: &engine::Artifact) -> Self {
        // The engine's path is inside a job directory that is gone once the
        // build ends: only the name, size and hash are kept.
        StoredArtifact { filename: a.filename.clone(), size: a.size, sha256: a.sha256.clone() }
    }
}

impl From<&BuildReport> for StoredReport {
    fn from(report: &BuildReport) -> Self {
        StoredReport {
            project: StoredProject { name: report.project.name.clone(), version: report.project.version.clone() },
            targets: report
                .targets
                .iter()
                .map(|t| StoredTarget {
                    target: t.target,
                    status: t.status,
                    reason: t.reason.clone(),
                    abi3: t.abi3,
                    steps: t
                        .steps
                        .iter()
                        .map(|s| StoredStep {
                            name: s.name,
                            status: s.status,
                            duration_ms: s.duration_ms,
                            reason: s.reason.clone(),
                            infrastructure: s.infrastructure,
                        })
                        .collect(),
                    tests: t.tests.iter().map(StoredTestRun::from).collect(),
                    artifacts: t.artifacts.iter().map(StoredArtifact::from).collect(),
                    findings: t
                        .findings
                        .iter()
                        .map(|f| StoredFinding {
                            rule: f.rule.clone(),
                            severity: f.severity,
                            file: f.file.clone(),
                            line: f.line,
                            column: f.column,
                            instruction: f.instruction.clone(),
                            message: f.message.clone(),
                        })
                        .collect(),
                })
                .collect(),
            sdist: report.sdist.as_ref().map(StoredArtifact::from),
        }
    }
}

impl From<&engine::TestRun> for StoredTestRun {
    fn from(run: &engine::TestRun) -> Self {
        StoredTestRun {
            interpreter: run.interpreter.clone(),
            executable: run.executable.to_string_lossy().into_owned(),
            wheel: run.wheel.clone(),
            passed: run.passed,
            failed: run.failed,
            errors: run.errors,
            skipped: run.skipped,
            failures: run
                .failures
                .iter()
                .map(|f| StoredFailure { test: f.test.clone(), message: f.message.clone() })
                .collect(),
            problem: run.problem.clone(),
            model: run.model.clone(),
            runner: run.runner.as_str().to_string(),
            crash: run.crash.as_ref().map(|c| StoredCrash {
                signal: c.signal.clone(),
                python_traceback: c.python_traceback.clone(),
                instruction: c.instruction.clone(),
                location: c.location.clone(),
                source_line: c.source_line.clone(),
                registers: c.registers.clone(),
            }),
        }
    }
}

impl StoredReport {
    /// Decodes a stored report; an error names what does not fit.
    pub fn decode(json: &str) -> Result<StoredReport, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The JSON stored.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a report always serialises")
    }
}
