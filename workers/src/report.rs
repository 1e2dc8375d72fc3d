//! What a build reports: per target its steps, tests and artifacts. These
//! types are the engine's output; the daemon maps them to its own stored
//! and API types (so they can change without changing old rows or the API).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::platform::Target;

/// A file the build produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// File name (a wheel or the sdist).
    pub filename: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
}

/// How a step or target ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Worked.
    Succeeded,
    /// Did not work; `reason` says why.
    Failed,
    /// Not run; `reason` says why.
    Skipped,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 3] = [Status::Succeeded, Status::Failed, Status::Skipped];

    /// The name reports, logs and pages use: the serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: tables align it with `{:<9}`.
        f.pad(self.as_str())
    }
}

/// A step of a target's build, named as reports, logs and pages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The work directory and the C API tables could not be made ready:
    /// reported (as failed) only then, before any other step.
    Setup,
    /// The target's tools are missing: reported (as failed) only then.
    Toolchain,
    /// nasm turns each module into an object file.
    Assemble,
    /// The static ABI check of the objects (crate::lint).
    Check,
    /// The objects' imports decide abi3 or one wheel per Python version.
    Abi,
    /// The linker makes the extension module.
    Link,
    /// The module's format, exports and imports are checked.
    Verify,
    /// The wheel is written.
    Package,
    /// The Linux wheel is installed and the project's tests run.
    Smoke,
}

impl Step {
    /// Every step, in pipeline order.
    pub const ALL: [Step; 9] = [
        Step::Setup,
        Step::Toolchain,
        Step::Assemble,
        Step::Check,
        Step::Abi,
        Step::Link,
        Step::Verify,
        Step::Package,
        Step::Smoke,
    ];

    /// The name reports, logs and pages use: the serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Setup => "setup",
            Step::Toolchain => "toolchain",
            Step::Assemble => "assemble",
            Step::Check => "check",
            Step::Abi => "abi",
            Step::Link => "link",
            Step::Verify => "verify",
            Step::Package => "package",
            Step::Smoke => "smoke",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: tables align it with `{:<8}`.
        f.pad(self.as_str())
    }
}

/// One step of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// Which step.
    pub name: Step,
    /// Outcome.
    pub status: Status,
    /// Wall-clock time.
    pub duration_ms: u64,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure is the host's (a missing tool, a full disk), not the
    /// project's: the build is worth retrying.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub infrastructure: bool,
}

/// One failed or erroring test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFailure {
    /// `tests/test_x.py::test_y`.
    pub test: String,
    /// The failure message and traceback text.
    pub message: String,
}

/// Test results on one interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRun {
    /// e.g. `cpython-3.11`.
    pub interpreter: String,
    /// Path of the interpreter.
    pub executable: PathBuf,
    /// The wheel that was installed.
    pub wheel: String,
    /// Passed tests.
    pub passed: u32,
    /// Failed tests.
    pub failed: u32,
    /// Tests that errored (setup/collection).
    pub errors: u32,
    /// Skipped tests.
    pub skipped: u32,
    /// Details of every failure and error.
    pub failures: Vec<TestFailure>,
    /// Set when the run itself did not complete (crash, timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What is known about a crash of native code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash: Option<CrashReport>,
    /// Set when the module ran under an ABI model rather than natively:
    /// what the run was, e.g. "tests run on the Linux host under the
    /// Windows x64 ABI model". `None` for a native (Linux) run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Which path ran the tests: a warm runner or a cold pytest.
    #[serde(default)]
    pub runner: TestPath,
}

/// How a test run was carried out ([`crate::warm`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestPath {
    /// A child forked from a warm runner that had imported pytest.
    Warm,
    /// `python -m pytest` started in a sandbox of its own (and every run
    /// recorded before the warm runner existed).
    #[default]
    Cold,
}

impl TestPath {
    /// `warm`, `cold`.
    pub fn as_str(self) -> &'static str {
        match self {
            TestPath::Warm => "warm",
            TestPath::Cold => "cold",
        }
    }
}

impl TestRun {
    /// An empty result for `wheel` on `interpreter`.
    pub fn new(interpreter: &str, executable: PathBuf, wheel: &str) -> Self {
        TestRun {
            interpreter: interpreter.to_string(),
            executable,
            wheel: wheel.to_string(),
            passed: 0,
            failed: 0,
            errors: 0,
            skipped: 0,
            failures: Vec::new(),
            problem: None,
            crash: None,
            model: None,
            runner: TestPath::Cold,
        }
    }
}

/// Native code that died on a signal, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashReport {
    /// `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, ...
    pub signal: String,
    /// Python's faulthandler traceback.
    pub python_traceback: Option<String>,
    /// The faulting instruction, from gdb.
    pub instruction: Option<String>,
    /// Symbol + offset and the module, from gdb.
    pub location: Option<String>,
    /// `src/x.asm:25: mov rax, [rax]` when the module carries line information.
    pub source_line: Option<String>,
    /// Register values at the fault.
    pub registers: Vec<(String, String)>,
}

/// One target's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetReport {
    /// The target.
    pub target: Target,
    /// Overall outcome.
    pub status: Status,
    /// Why it failed or was skipped (the failing step's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the modules use only the stable ABI.
    pub abi3: bool,
    /// Steps in the order they ran.
    pub steps: Vec<StepReport>,
    /// Smoke-test results.
    pub tests: Vec<TestRun>,
    /// Wheels.
    pub artifacts: Vec<Artifact>,
    /// What the static checks found in the target's objects (ABI rules,
    /// link errors explained), at the `.asm` line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Always wrong: the target fails.
    Error,
    /// Probably wrong (a heuristic): reported, the target does not fail
    /// unless the project asks for `lint = "strict"`.
    Warning,
}

impl Severity {
    /// `error`, `warning`: the word compilers print.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding of a static check, at a place in the project's sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule id, e.g. `callee-saved-not-restored`.
    pub rule: String,
    /// Error or warning.
    pub severity: Severity,
    /// The source file, relative to the project (`src/x.asm`).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column of the instruction on that line.
    pub column: u32,
    /// The source line's text (the instruction as written).
    pub instruction: String,
    /// One sentence of why, and the fix.
    pub message: String,
}

impl Finding {
    /// `src/x.asm:33:5: error: <message> [rule]`, the form editors parse.
    pub fn compiler_style(&self) -> String {
        format!(
            "{}:{}:{}: {}: {} [{}]",
            self.file,
            self.line,
            self.column,
            self.severity.as_str(),
            self.message,
            self.rule
        )
    }
}

/// The project a build was for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    /// Distribution name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// A whole build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildReport {
    /// Name and version.
    pub project: ProjectInfo,
    /// One entry per requested target.
    pub targets: Vec<TargetReport>,
    /// The source distribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdist: Option<Artifact>,
}

impl BuildReport {
    /// The first failure that is the host's fault, if any.
    pub fn infrastructure_failure(&self) -> Option<String> {
        self.targets
            .iter()
            .flat_map(|t| t.steps.iter().map(move |s| (t.target, s)))
            .find(|(_, s)| s.infrastructure)
            .map(|(t, s)| format!("{t} {}: {}", s.name, s.reason.as_deref().unwrap_or("failed")))
    }

    /// Whether every requested target succeeded or was skipped with reason.
    pub fn succeeded(&self) -> bool {
        self.targets.iter().all(|t| t.status != Status::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON string serde writes for `value`.
    fn serde_name(value: impl Serialize) -> String {
        match serde_json::to_value(value).unwrap() {
            serde_json::Value::String(name) => name,
            other => panic!("not a string: {other}"),
        }
    }

    #[test]
    fn status_as_str_is_its_serde_name() {
        for status in Status::ALL {
            assert_eq!(status.as_str(), serde_name(status));
            assert_eq!(status.to_string(), status.as_str());
        }
    }

    #[test]
    fn step_as_str_is_its_serde_name_and_reads_back() {
        for step in Step::ALL {
            assert_eq!(step.as_str(), serde_name(step));
            assert_eq!(step.to_string(), step.as_str());
            let back: Step = serde_json::from_value(serde_json::Value::String(step.as_str().into())).unwrap();
            assert_eq!(back, step);
        }
    }

    #[test]
    fn steps_are_listed_once_in_pipeline_order() {
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["setup", "toolchain", "assemble", "check", "abi", "link", "verify", "package", "smoke"]);
    }

    #[test]
    fn an_unknown_step_name_does_not_decode() {
        let err = serde_json::from_str::<Step>("\"compile\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant `compile`"), "{err}");
    }

    #[test]
    fn display_pads_like_a_str() {
        assert_eq!(format!("[{:<9}]", Status::Failed), "[failed   ]");
        assert_eq!(format!("[{:<8}]", Step::Abi), "[abi     ]");
    }
}
