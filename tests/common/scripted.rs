//! A stand-in for the engine: builds nothing, and answers each build as its
//! script says (a wheel of made-up bytes, a failed step, a host failure, a
//! build that runs until cancelled), so the daemon's own behaviour is tested
//! in milliseconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wheelwright::dispatch::executor::{BuildExecutor, BuildJob};
use wheelwright_workers::pipeline::Event;
use wheelwright_workers::project::{Project, ProjectError};
use wheelwright_workers::report::{
    Artifact, BuildReport, Finding, ProjectInfo, Severity, Status, Step, StepReport, TargetReport,
};
use wheelwright_workers::wheel::sha256_hex;

/// What a scripted build does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Every target succeeds with a wheel whose bytes name the build.
    Succeed,
    /// The link step fails (the project's fault).
    FailLink,
    /// The toolchain step fails as the host's fault (retried).
    HostFailure,
    /// Runs until cancelled (or 60 s), then reports nothing more.
    UntilCancelled,
    /// Succeeds, with one warning of the static check on every target.
    SucceedWithWarning,
}

/// Runs builds by script; counts the builds it ran and the cancels it saw.
pub struct Scripted {
    script: Mutex<Script>,
    /// Builds started.
    pub runs: AtomicUsize,
    /// Builds that saw their cancel token.
    pub cancels: AtomicUsize,
}

impl Scripted {
    /// Every build runs `script`.
    pub fn new(script: Script) -> Scripted {
        Scripted { script: Mutex::new(script), runs: AtomicUsize::new(0), cancels: AtomicUsize::new(0) }
    }

    /// Builds from now on run `script`.
    pub fn set(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }
}

fn step(name: Step, status: Status, reason: Option<&str>, infrastructure: bool) -> StepReport {
    StepReport { name, status, duration_ms: 1, reason: reason.map(str::to_string), infrastructure }
}

/// A wheel that holds its METADATA and `built.txt` with `note`, the same
/// bytes for the same arguments.
pub fn wheel(name: &str, version: &str, note: &str) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().last_modified_time(zip::DateTime::default());
    zip.start_file(format!("{name}-{version}.dist-info/METADATA"), options).unwrap();
    write!(zip, "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").unwrap();
    zip.start_file("built.txt", options).unwrap();
    zip.write_all(note.as_bytes()).unwrap();
    zip.finish().unwrap().into_inner()
}

/// The `built.txt` of a wheel made by [`wheel`].
pub fn note_of(wheel: &[u8]) -> String {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel)).unwrap();
    let mut note = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("built.txt").unwrap(), &mut note).unwrap();
    note
}

impl BuildExecutor for Scripted {
    fn execute(&self, job: &BuildJob, events: &(dyn Fn(Event) + Sync)) -> Result<BuildReport, ProjectError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let script = *self.script.lock().unwrap();
        events(Event::Log { target: None, text: format!("scripted: {script:?}") });
        let project = Project::load(&job.source, &job.overrides)?;
        let (name, version) = (project.metadata.name.clone(), project.metadata.version.clone());
        if script == Script::UntilCancelled {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !job.cancel.is_cancelled() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if job.cancel.is_cancelled() {
                self.cancels.fetch_add(1, Ordering::SeqCst);
            }
        }
        std::fs::create_dir_all(&job.out_dir).unwrap();
        let targets = job
            .targets
            .iter()
            .map(|&target| {
                let (status, steps, artifacts) = match script {
                    Script::Succeed | Script::UntilCancelled | Script::SucceedWithWarning => {
                        let filename = format!("{name}-{version}-{}.whl", target.name().replace('-', "_"));
                        // The same source gives the same bytes, as the engine's do.
                        let bytes = wheel(&name, &version, &format!("wheel of {name} {version} for {target}"));
                        let path = job.out_dir.join(&filename);
                        std::fs::write(&path, &bytes).unwrap();
                        let artifact =
                            Artifact { filename, path, size: bytes.len() as u64, sha256: sha256_hex(&bytes) };
                        let steps = vec![step(Step::Assemble, Status::Succeeded, None, false)];
                        (Status::Succeeded, steps, vec![artifact])
                    }
                    Script::FailLink => {
                        let steps = vec![
                            step(Step::Assemble, Status::Succeeded, None, false),
                            step(Step::Link, Status::Failed, Some("undefined symbol: PyLong_FromLongg"), false),
                        ];
                        (Status::Failed, steps, Vec::new())
                    }
                    Script::HostFailure => {
                        let steps = vec![step(Step::Toolchain, Status::Failed, Some("missing tools: nasm"), true)];
                        (Status::Failed, steps, Vec::new())
                    }
                };
                for s in &steps {
                    events(Event::StepFinished { target, report: s.clone() });
                }
                TargetReport {
                    target,
                    status,
                    reason: steps.iter().find_map(|s| s.reason.clone()),
                    abi3: true,
                    steps,
                    tests: Vec::new(),
                    artifacts,
                    findings: if script == Script::SucceedWithWarning {
                        vec![Finding {
                            rule: "truncated-argument".into(),
                            severity: Severity::Warning,
                            file: "src/pymult.asm".into(),
                            line: 31,
                            column: 5,
                            instruction: "mov edi, [value]".into(),
                            message: "a 32-bit load into a 64-bit argument".into(),
                        }]
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        Ok(BuildReport { project: ProjectInfo { name, version }, targets, sdist: None })
    }
}
