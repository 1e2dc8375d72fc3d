//! A build from start to end: for each target, assemble → link → verify →
//! package → smoke test, each step timed and reported; a failing target does
//! not stop the others.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info_span, warn};

use crate::abimodel;
use crate::capi::CApi;
use crate::linkerr;
use crate::platform::{LinkJob, Target};
use crate::process::{CancelToken, Cmd, Exit};
use crate::project::{Module, Project};
use crate::pyversion::PyVersion;
use crate::readback::Root;
use crate::report::{Artifact, BuildReport, ProjectInfo, Status, Step, StepReport, TargetReport, TestRun};
use crate::sandbox::{Mounts, Sandbox, Session};
use crate::smoke::{self, ImportFailure, Interpreter, SmokeEnv, Sources};
use crate::toolchain::{self, Toolchain};
use crate::verify::{self, Expect};
use crate::wheel::{self, WheelInput};

/// The portable include shipped on nasm's include path.
pub const WHEELWRIGHT_INC: &str = include_str!("../include/wheelwright.inc");

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Targets; `None` takes the project's `[tool.wheelwright] targets`.
    pub targets: Option<Vec<Target>>,
    /// Where wheels and the sdist go.
    pub out_dir: PathBuf,
    /// Scratch space for objects, modules and smoke tests (the job directory).
    pub work_dir: PathBuf,
    /// Run the smoke test on Linux wheels.
    pub smoke: bool,
    /// Interpreters for the smoke test.
    pub interpreters: Vec<Interpreter>,
    /// Cache for import libraries and smoke environments.
    pub cache_dir: PathBuf,
    /// Timestamp for archive entries (`SOURCE_DATE_EPOCH`); 1980-01-01 when unset.
    pub source_date_epoch: Option<u64>,
    /// Limits for every tool run.
    pub sandbox: Sandbox,
    /// Stops the build when cancelled.
    pub cancel: CancelToken,
    /// Build the targets on threads of their own, side by side.
    pub parallel_targets: bool,
    /// Stop each target after its static check (`wheelwright check`): no
    /// link, no wheel, no sdist.
    pub check_only: bool,
    /// The tools to build with, discovered once by the caller (whose cache
    /// key describes them): the build uses these and looks for no others.
    /// Shared, so options stay cheap to clone.
    pub toolchain: Arc<Toolchain>,
}

/// What the engine tells its caller while it works.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step began.
    StepStarted {
        /// The target.
        target: Target,
        /// The step.
        step: Step,
    },
    /// A step ended.
    StepFinished {
        /// The target.
        target: Target,
        /// Its report.
        report: StepReport,
    },
    /// A line for the build log.
    Log {
        /// The target, if the line belongs to one.
        target: Option<Target>,
        /// The text (may span lines).
        text: String,
    },
}

/// Builds `project` and writes its artifacts; the report says what happened.
/// Tools come from `options.toolchain` only: a target whose tools are not in
/// it fails its `toolchain` step, whatever else is installed.
pub fn build(project: &Project, options: &BuildOptions, on_event: &(dyn Fn(Event) + Sync)) -> BuildReport {
    let _span = info_span!("build", project = %project.metadata.name, version = %project.metadata.version).entered();
    let mut options = options.clone();
    // Absolute and free of links: the sandbox binds it by this name.
    if let Ok(dir) = std::fs::canonicalize(&options.work_dir) {
        options.work_dir = dir;
    }
    // The build's memory cgroup and disk budget, for every step below;
    // released when the build ends.
    let build_sandbox = options.sandbox.for_build(&options.work_dir);
    options.sandbox = build_sandbox.sandbox().clone();
    let options = &options;
    if !options.sandbox.is_isolated() {
        on_event(Event::Log {
            target: None,
            text: "warning: the sandbox is off (--sandbox=none): untrusted code runs unconfined".into(),
        });
    }
    // The build's wall-clock budget: every step's timeout is cut to what is
    // left of it, and what cannot start in time is reported as not run.
    let budget = Budget::starting_now(options.sandbox.limits.build_timeout());
    let toolchain: &Toolchain = &options.toolchain;
    let epoch = options.source_date_epoch.unwrap_or(0);
    let targets = options.targets.clone().unwrap_or_else(|| project.settings.targets.clone());
    let include_dir = options.work_dir.join("include");
    let include_ready = std::fs::create_dir_all(&include_dir)
        .and_then(|_| std::fs::write(include_dir.join("wheelwright.inc"), WHEELWRIGHT_INC));

    let capi = if targets.is_empty() { None } else { Some(CApi::load(&options.cache_dir)) };
    let session = start_session(project, options, toolchain, &targets, &capi, on_event);
    let build_target = |target: Target| {
        let _span = info_span!("target", target = %target).entered();
        let mut ctx = TargetBuild::new(target, project, options, toolchain, on_event, &include_dir, budget);
        ctx.session = session.as_ref();
        if options.cancel.is_cancelled() {
            return ctx.finish_skipped("cancelled");
        }
        let result = match (&include_ready, &capi) {
            (Err(e), _) => ctx.step(Step::Setup, |_| Err(infra(format!("cannot write to the work directory: {e}")))),
            (_, Some(Err(e))) => ctx.step(Step::Setup, |_| Err(infra(e))),
            (Ok(()), Some(Ok(capi))) => ctx.run(capi, epoch),
            (_, None) => unreachable!("targets were requested"),
        };
        ctx.finish(result)
    };
    let reports: Vec<TargetReport> = if options.parallel_targets {
        // Targets share nothing but read-only inputs: run them side by side.
        let parent = tracing::Span::current();
        std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .iter()
                .map(|&t| {
                    let parent = parent.clone();
                    let build_target = &build_target;
                    scope.spawn(move || parent.in_scope(|| build_target(t)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("target thread panicked")).collect()
        })
    } else {
        targets.iter().map(|&t| build_target(t)).collect()
    };
    if let Some(warm) = session.as_ref().map(Session::zygote_runs).filter(|n| *n > 0) {
        on_event(Event::Log { target: None, text: format!("note: {warm} links ran on a warm linker") });
    }
    drop(session);
    let sdist = match options.check_only {
        true => None,
        false => match wheel::write_sdist(project, &options.out_dir, epoch) {
            Ok(artifact) => Some(artifact),
            Err(e) => {
                on_event(Event::Log { target: None, text: format!("sdist: {e}") });
                None
            }
        },
    };
    BuildReport {
        project: ProjectInfo { name: project.metadata.name.clone(), version: project.metadata.version.clone() },
        targets: reports,
        sdist,
    }
}

/// One sandbox session for the build's assembler and linker runs (see
/// [`Session`]): it sees the work directory writable, and the project, the
/// import libraries and the tools' folders read-only. `None` when steps are
/// not isolated, or the session cannot start (each step then gets a sandbox
/// of its own).
fn start_session(
    project: &Project,
    options: &BuildOptions,
    toolchain: &Toolchain,
    targets: &[Target],
    capi: &Option<Result<std::sync::Arc<CApi>, crate::capi::CApiError>>,
    on_event: &(dyn Fn(Event) + Sync),
) -> Option<Session> {
    let mut mounts = Mounts::job(&options.work_dir).read_only(&project.root);
    if let Some(Ok(capi)) = capi {
        mounts = mounts.read_only(capi.library_dir());
    }
    let mut tool_dirs: Vec<&Path> = targets
        .iter()
        .flat_map(|t| toolchain::required_for(*t))
        .filter_map(|tool| toolchain.path(*tool)?.parent())
        .filter(|dir| !dir.starts_with("/usr") && dir.is_absolute())
        .collect();
    tool_dirs.sort();
    tool_dirs.dedup();
    for dir in tool_dirs {
        mounts = mounts.read_only(dir);
    }
    // The linkers are one lld: its warm linker starts with the session.
    let lld = targets.iter().find_map(|t| toolchain::linker_for(*t, toolchain)).map(|tools| tools.linker.clone());
    match options.sandbox.session_warming(mounts, lld.as_deref())? {
        Ok(session) => Some(session),
        Err(e) => {
            warn!("no sandbox session, one sandbox per step: {e}");
            on_event(Event::Log { target: None, text: format!("note: one sandbox per step ({e})") });
            None
        }
    }
}

/// A build's wall-clock budget ([`crate::sandbox::Limits::build_timeout_secs`]).
#[derive(Debug, Clone, Copy)]
struct Budget {
    deadline: Instant,
    secs: u64,
}

impl Budget {
    fn starting_now(budget: Duration) -> Budget {
        Budget { deadline: Instant::now() + budget, secs: budget.as_secs() }
    }

    /// What is left, `None` once it is used up.
    fn left(&self) -> Option<Duration> {
        Some(self.deadline.checked_duration_since(Instant::now())?).filter(|d| !d.is_zero())
    }

    /// Why a step did not start, or was stopped.
    fn used_up(&self) -> String {
        format!("the build used its {} s budget", self.secs)
    }

    /// `sandbox` with its step timeout cut to what is left of the budget,
    /// and then the reason a timeout is to be reported with; `None` when
    /// the budget is used up.
    fn limit<'s>(&self, sandbox: &'s Sandbox) -> Option<(Cow<'s, Sandbox>, Option<String>)> {
        let left = self.left()?;
        if left >= sandbox.limits.timeout() {
            return Some((Cow::Borrowed(sandbox), None));
        }
        // Whole seconds, rounded up: a step may end up to a second after
        // the budget, never starts after it.
        let mut limited = sandbox.clone();
        limited.limits.timeout_secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some((Cow::Owned(limited), Some(format!("stopped: {}", self.used_up()))))
    }
}

/// A step's failure: its reason, and whether the host (not the project) is
/// to blame, which makes the build worth retrying.
#[derive(Debug, Clone)]
struct StepError {
    reason: String,
    infrastructure: bool,
}

impl From<String> for StepError {
    /// A failure caused by the project: its sources, tests or settings.
    fn from(reason: String) -> Self {
        StepError { reason, infrastructure: false }
    }
}

impl From<&str> for StepError {
    fn from(reason: &str) -> Self {
        reason.to_string().into()
    }
}

/// A failure of the host: a missing tool, a full disk, a broken cache.
fn infra(e: impl std::fmt::Display) -> StepError {
    StepError { reason: e.to_string(), infrastructure: true }
}

type StepResult<T> = Result<T, StepError>;

struct TargetBuild<'a> {
    target: Target,
    project: &'a Project,
    options: &'a BuildOptions,
    toolchain: &'a Toolchain,
    on_event: &'a (dyn Fn(Event) + Sync),
    include_dir: &'a Path,
    session: Option<&'a Session>,
    dir: PathBuf,
    steps: Vec<StepReport>,
    tests: Vec<TestRun>,
    artifacts: Vec<Artifact>,
    /// What the static checks found.
    findings: Vec<crate::report::Finding>,
    abi3: bool,
    note: Option<String>,
    budget: Budget,
}

/// A built module waiting to be packaged.
struct Built {
    wheel_path: String,
    bytes: Vec<u8>,
}

impl<'a> TargetBuild<'a> {
    fn new(
        target: Target,
        project: &'a Project,
        options: &'a BuildOptions,
        toolchain: &'a Toolchain,
        on_event: &'a (dyn Fn(Event) + Sync),
        include_dir: &'a Path,
        budget: Budget,
    ) -> Self {
        let dir = options.work_dir.join(target.name());
        Self {
            target,
            project,
            options,
            toolchain,
            on_event,
            include_dir,
            session: None,
            dir,
            steps: Vec::new(),
            tests: Vec::new(),
            artifacts: Vec::new(),
            findings: Vec::new(),
            abi3: false,
            note: None,
            budget,
        }
    }

    fn log(&self, text: impl Into<String>) {
        (self.on_event)(Event::Log { target: Some(self.target), text: text.into() });
    }

    /// Runs one named step, timing it and reporting its outcome; a step
    /// that would start after the build's budget is reported as not run.
    fn step<T>(&mut self, name: Step, body: impl FnOnce(&mut Self) -> StepResult<T>) -> StepResult<T> {
        if self.budget.left().is_none() {
            let reason = self.budget.used_up();
            self.skip_step(name, &format!("not run: {reason}"));
            return Err(reason.into());
        }
        let _span = info_span!("step", step = name.as_str()).entered();
        (self.on_event)(Event::StepStarted { target: self.target, step: name });
        let started = Instant::now();
        let result = body(self);
        let report = StepReport {
            name,
            status: if result.is_ok() { Status::Succeeded } else { Status::Failed },
            duration_ms: started.elapsed().as_millis() as u64,
            reason: result.as_ref().err().map(|e| e.reason.clone()),
            infrastructure: result.as_ref().err().is_some_and(|e| e.infrastructure),
        };
        (self.on_event)(Event::StepFinished { target: self.target, report: report.clone() });
        self.steps.push(report);
        result
    }

    fn skip_step(&mut self, name: Step, reason: &str) {
        let report = StepReport {
            name,
            status: Status::Skipped,
            duration_ms: 0,
            reason: Some(reason.into()),
            infrastructure: false,
        };
        (self.on_event)(Event::StepFinished { target: self.target, report: report.clone() });
        self.steps.push(report);
    }

    /// The sandbox for the next run, its timeout cut to the build's budget,
    /// with the reason to give if that cut timeout stops it.
    fn sandbox(&self) -> StepResult<(Cow<'a, Sandbox>, Option<String>)> {
        self.budget.limit(&self.options.sandbox).ok_or_else(|| self.budget.used_up().into())
    }

    /// Reads back a file a sandboxed step wrote beneath the work directory
    /// (see [`crate::readback`]), at most [`crate::sandbox::Limits::file_size`] bytes.
    fn read_back(&self, path: &Path, what: &str) -> StepResult<Vec<u8>> {
        let root =
            Root::open(&self.options.work_dir).map_err(|e| infra(format!("cannot open the work directory: {e}")))?;
        root.read(path, self.options.sandbox.limits.file_size, what).map_err(|e| {
            if e.is_host_failure() {
                infra(e)
            } else {
                e.to_string().into()
            }
        })
    }

    /// `path` relative to the work directory, to name it in messages.
    fn work_relative<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(&self.options.work_dir).unwrap_or(path)
    }

    /// Runs a tool; a failure's reason is the tool's own output.
    fn run_tool(&self, cmd: &Cmd, mounts: &Mounts) -> StepResult<String> {
        self.log(format!("$ {}", cmd.display()));
        let cancel = &self.options.cancel;
        let (sandbox, cut_short) = self.sandbox()?;
        // The session runs every tool under its own (full) step timeout: a
        // run cut short by the budget gets a sandbox of its own.
        let session = self.session.filter(|s| cut_short.is_none() && s.is_alive() && s.covers(cmd, mounts));
        let out = match session {
            Some(session) => match session.run(cmd, cancel) {
                // The session could not start, or ended under a hostile
                // tool: this step (and the next ones) get sandboxes of their own.
                Err(e) if !cancel.is_cancelled() => {
                    warn!("{e}; the step runs in a sandbox of its own");
                    self.log(format!("note: {e}; this step runs in a sandbox of its own"));
                    sandbox.run(cmd, mounts, cancel)
                }
                result => result,
            },
            None => sandbox.run(cmd, mounts, cancel),
        }
        .map_err(infra)?;
        if !out.text.trim().is_empty() {
            self.log(out.text.trim_end());
        }
        let tool = cmd.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match out.exit {
            Exit::Code(0) => Ok(out.text),
            Exit::Code(code) if out.text.trim().is_empty() => Err(format!("{tool} exited with status {code}").into()),
            Exit::Code(_) => Err(out.text.trim_end().to_string().into()),
            Exit::Signal(sig) => Err(format!("{tool} was killed by {}", smoke::signal_name(sig)).into()),
            Exit::TimedOut => match cut_short {
                Some(reason) => Err(format!("{tool} was {reason}").into()),
                None => Err(format!("{tool} timed out after {} s", sandbox.limits.timeout_secs).into()),
            },
            Exit::Cancelled => Err("cancelled".into()),
            Exit::Limit(why) => Err(why.into()),
        }
    }

    fn run(&mut self, capi: &CApi, epoch: u64) -> StepResult<()> {
        let missing: Vec<String> = toolchain::required_for(self.target)
            .iter()
            .filter(|t| self.toolchain.path(**t).is_none())
            .map(|t| format!("{} (Debian package {})", t.name(), t.package()))
            .collect();
        if !missing.is_empty() {
            return self.step(Step::Toolchain, |_| Err(infra(format!("missing tools: {}", missing.join(", ")))));
        }
        std::fs::create_dir_all(&self.dir).map_err(infra)?;
        let objects = self.step(Step::Assemble, |b| b.assemble())?;
        if self.project.settings.lint.level == crate::lint::Level::Off {
            self.skip_step(Step::Check, "lint = \"off\"");
        } else {
            self.step(Step::Check, |b| b.check(&objects))?;
        }
        if self.options.check_only {
            return Ok(());
        }
        let variants = self.step(Step::Abi, |b| b.choose_variants(capi, &objects))?;
        let mut wheels = Vec::new();
        for python in variants {
            let built = self.step(Step::Link, |b| b.link(capi, &objects, python))?;
            let glibc = self.step(Step::Verify, |b| b.verify(capi, &built, python))?;
            let artifact = self.step(Step::Package, |b| {
                let input = WheelInput {
                    project: b.project,
                    target: b.target,
                    python,
                    modules: built.into_iter().map(|m| (m.wheel_path, m.bytes)).collect(),
                    glibc,
                    epoch,
                };
                wheel::write_wheel(&input, &b.options.out_dir)
                    .map_err(|e| infra(format!("cannot write the wheel: {e}")))
            })?;
            self.log(format!("wrote {} ({} bytes, sha256 {})", artifact.filename, artifact.size, artifact.sha256));
            wheels.push((python, artifact.path.clone()));
            self.artifacts.push(artifact);
        }
        if !self.options.smoke {
            self.skip_step(Step::Smoke, "smoke test disabled");
        } else {
            // A macOS or Windows wheel runs on this host under its ABI
            // model: said so wherever its results are shown.
            if let Some(model) = abimodel::Model::for_target(self.target) {
                self.note = Some(model.label().to_string());
            }
            self.step(Step::Smoke, |b| b.smoke(&wheels))?;
        }
        Ok(())
    }

    fn object_path(&self, module: &Module) -> PathBuf {
        self.dir.join("obj").join(format!("{}.{}", module.name, self.target.object_extension()))
    }

    fn assemble(&mut self) -> StepResult<Vec<(Module, PathBuf)>> {
        let nasm = self.toolchain.path(toolchain::Tool::Nasm).expect("checked above").to_path_buf();
        std::fs::create_dir_all(self.dir.join("obj")).map_err(infra)?;
        let debug = self.project.settings.debug;
        let mut objects = Vec::new();
        for module in &self.project.modules {
            let object = self.object_path(module);
            let source_dir = module.source.parent().unwrap_or(Path::new(""));
            let mut cmd = Cmd::new(&nasm).args(self.target.nasm_args(debug)).cwd(&self.project.root);
            // nasm joins -I prefixes to names literally: each needs its slash.
            let mut dirs = vec![source_dir, self.project.source_dir.as_path()];
            dirs.dedup();
            for dir in dirs {
                let dir = if dir.as_os_str().is_empty() { "./".to_string() } else { format!("{}/", dir.display()) };
                cmd = cmd.arg(format!("-I{dir}"));
            }
            cmd = cmd.arg(format!("-I{}/", self.include_dir.display()));
            for define in &self.project.settings.defines {
                cmd = cmd.arg(format!("-D{define}"));
            }
            // The listing, for diagnostics (crate::lines): same run, same
            // object bytes; it stays in the work directory.
            cmd = cmd.arg("-l").arg(crate::lines::listing_path(&object).display().to_string());
            cmd = cmd.arg("-o").arg(object.display().to_string()).arg(module.source.display().to_string());
            // nasm reads the project (and, through %include and incbin, any
            // path it is given): it sees the project read-only and nothing else.
            let mounts = Mounts::job(&self.options.work_dir).read_only(&self.project.root);
            self.run_tool(&cmd, &mounts)?;
            objects.push((module.clone(), object));
        }
        Ok(objects)
    }

    /// The static ABI check of each object ([`crate::lint`]): its findings
    /// go into the report; an error fails the target.
    fn check(&mut self, objects: &[(Module, PathBuf)]) -> StepResult<()> {
        let started = Instant::now();
        let mut errors = 0;
        for (module, object) in objects {
            let bytes = self.read_back(object, &format!("the object {}", self.work_relative(object).display()))?;
            let dirs = self.source_dirs(module);
            let listing_path = crate::lines::listing_path(object);
            let listing = self.read_back(&listing_path, "the listing")?;
            let listing = String::from_utf8_lossy(&listing);
            let input =
                crate::lint::Input { target: self.target, object: &bytes, listing: Some(&listing), dirs: &dirs };
            let findings = crate::lint::check(&input, &self.project.settings.lint)
                .map_err(|e| format!("{}: {e}", module.source.display()))?;
            for finding in findings {
                self.log(format!("{}\n    {}", finding.compiler_style(), finding.instruction));
                errors += usize::from(finding.severity == crate::report::Severity::Error);
                self.findings.push(finding);
            }
        }
        self.log(format!("check: {} finding(s) in {} ms", self.findings.len(), started.elapsed().as_millis()));
        match errors {
            0 => Ok(()),
            1 => Err("the static ABI check found 1 error".into()),
            n => Err(format!("the static ABI check found {n} errors").into()),
        }
    }

    /// Where a module's sources are, as nasm was told (`-I`).
    fn source_dirs(&self, module: &Module) -> crate::lines::SourceDirs {
        crate::lines::SourceDirs::for_module(self.project, module, self.include_dir)
    }

    /// abi3 when every imported symbol is in the stable ABI (or as configured);
    /// otherwise one variant per configured Python version.
    fn choose_variants(&mut self, capi: &CApi, objects: &[(Module, PathBuf)]) -> StepResult<Vec<Option<PyVersion>>> {
        let mut unstable = Vec::new();
        let mut foreign = Vec::new();
        for (module, object) in objects {
            // nasm ran on hostile input in a directory the sandbox can write.
            let bytes = self.read_back(object, &format!("the object {}", self.work_relative(object).display()))?;
            let imports =
                verify::object_imports(self.target, &bytes).map_err(|e| format!("{}: {e}", object.display()))?;
            // Caught here, before linking, so every target says it the same way.
            let outside: Vec<String> = imports.iter().filter(|s| !capi.is_capi(s)).cloned().collect();
            if !outside.is_empty() {
                foreign.push(self.explain_unknown_imports(module, object, &bytes, outside, capi));
            }
            unstable.extend(imports.into_iter().filter(|s| capi.is_capi(s) && !capi.is_stable(s)));
        }
        if !foreign.is_empty() {
            return Err(foreign.join("\n").into());
        }
        unstable.sort();
        unstable.dedup();
        let settings = &self.project.settings;
        self.abi3 = match settings.abi3 {
            Some(true) if !unstable.is_empty() => {
                let message = format!(
                    "abi3 = true, but the modules import {}, {} not in the stable ABI (abi3)",
                    verify::list(&unstable),
                    verify::which(unstable.len())
                );
                return Err(message.into());
            }
            Some(forced) => forced,
            None => unstable.is_empty(),
        };
        if self.abi3 {
            self.log(format!(
                "abi3: every import is in the stable ABI; one wheel for Python {}+",
                wheel::abi3_minimum(self.project)
            ));
            Ok(vec![None])
        } else {
            let versions: Vec<String> = settings.python_versions.iter().map(|v| v.to_string()).collect();
            self.log(format!("not abi3; one wheel per Python version: {}", versions.join(", ")));
            Ok(settings.python_versions.iter().copied().map(Some).collect())
        }
    }

    fn link(
        &mut self,
        capi: &CApi,
        objects: &[(Module, PathBuf)],
        python: Option<PyVersion>,
    ) -> StepResult<Vec<Built>> {
        let tools = toolchain::linker_for(self.target, self.toolchain).ok_or("no linker found")?;
        let variant = python.map_or("abi3".to_string(), |v| format!("cp{}", v.nodot()));
        let import_library = (self.target == Target::Windows).then(|| capi.import_library(python));
        let mut built = Vec::new();
        for (module, object) in objects {
            let filename = self.target.module_filename(module.leaf(), python);
            let wheel_path = wheel::slash_path(&module.package_dir().join(&filename));
            let output = self.dir.join(&variant).join(&wheel_path);
            if let Some(parent) = output.parent() {
                std::fs::create_dir_all(parent).map_err(infra)?;
            }
            let init_symbol = module.init_symbol();
            // The map, for diagnostics (crate::lines), beside the objects,
            // never in the wheel.
            let map = crate::lines::map_path(&self.dir, &variant, &module.name);
            if let Some(parent) = map.parent() {
                std::fs::create_dir_all(parent).map_err(infra)?;
            }
            let job = LinkJob {
                object,
                output: &output,
                init_symbol: &init_symbol,
                import_library: import_library.as_deref(),
                macos_min: &self.project.settings.macos_deployment_target,
                debug: self.project.settings.debug,
                map: Some(&map),
            };
            let mut mounts = Mounts::job(&self.options.work_dir);
            if let Some(lib) = &import_library {
                mounts = mounts.read_only(lib);
            }
            // A refused link is explained at the source lines; lld's own
            // words stay in the log.
            if let Err(e) = self.run_tool(&self.target.link_command(&tools, &job), &mounts) {
                return Err(if e.infrastructure {
                    e
                } else {
                    self.explain_link(module, object, capi, &e.reason)?.into()
                });
            }
            // What ld64.lld links but dyld would not load.
            if let Some(reason) = self.check_linked_object(module, object)? {
                return Err(reason.into());
            }
            let bytes = self.read_back(&output, &format!("the module {}", self.work_relative(&output).display()))?;
            built.push(Built { wheel_path, bytes });
        }
        Ok(built)
    }

    /// The line tables of `module`'s object, read back from the work
    /// directory (nasm wrote them there); `None` when they cannot be read.
    fn object_lines(&self, module: &Module, object: &Path, bytes: &[u8]) -> Option<crate::lines::ObjectLines> {
        let listing_path = crate::lines::listing_path(object);
        let listing = self.read_back(&listing_path, "the listing").ok()?;
        let dirs = self.source_dirs(module);
        crate::lines::ObjectLines::from_listing(&String::from_utf8_lossy(&listing), bytes, &dirs).ok()
    }

    fn link_sources(&self) -> linkerr::Sources {
        linkerr::Sources { project_root: self.project.root.clone(), include_dir: self.include_dir.to_path_buf() }
    }

    /// A failed link's reason: one sentence per refused site (also kept as
    /// findings), else the linker's error lines without host paths.
    fn explain_link(&mut self, module: &Module, object: &Path, capi: &CApi, output: &str) -> StepResult<String> {
        let scrub = [self.options.work_dir.as_path(), capi.library_dir()];
        // Without the object the linker's words are all there is (scrubbed).
        let bytes = self.read_back(object, &format!("the object {}", self.work_relative(object).display())).ok();
        let explained = bytes.as_deref().and_then(|bytes| Some((bytes, self.object_lines(module, object, bytes)?)));
        let explained = explained.and_then(|(bytes, lines)| {
            let sources = self.link_sources();
            let cx = linkerr::Context { target: self.target, object: bytes, lines: &lines, sources: &sources };
            linkerr::explain(&cx, output, &|s| capi.is_capi(s), &capi.stable_names(), &scrub).ok()
        });
        let Some(explained) = explained.filter(|e| !e.findings.is_empty()) else {
            return Ok(linkerr::sanitise(output.trim_end(), &scrub));
        };
        let reason = explained.reason();
        self.findings.extend(explained.findings);
        Ok(reason)
    }

    /// Mach-O: the findings [`linkerr::check_object`] makes after a link
    /// that ld64.lld let through, as the step's reason.
    fn check_linked_object(&mut self, module: &Module, object: &Path) -> StepResult<Option<String>> {
        if self.target != Target::Macos {
            return Ok(None);
        }
        let bytes = self.read_back(object, &format!("the object {}", self.work_relative(object).display()))?;
        let Some(lines) = self.object_lines(module, object, &bytes) else { return Ok(None) };
        let sources = self.link_sources();
        let cx = linkerr::Context { target: self.target, object: &bytes, lines: &lines, sources: &sources };
        let findings = linkerr::check_object(&cx).map_err(|e| e.to_string())?;
        if findings.is_empty() {
            return Ok(None);
        }
        let reason = findings.iter().map(linkerr::site_line).collect::<Vec<_>>().join("\n");
        self.findings.extend(findings);
        Ok(Some(reason))
    }

    /// Imports outside the C API, one sentence per site with the nearest
    /// stable-ABI name (also kept as findings); names without a site are
    /// said as before.
    fn explain_unknown_imports(
        &mut self,
        module: &Module,
        object: &Path,
        bytes: &[u8],
        names: Vec<String>,
        capi: &CApi,
    ) -> String {
        let sources = self.link_sources();
        let found = self.object_lines(module, object, bytes).and_then(|lines| {
            let cx = linkerr::Context { target: self.target, object: bytes, lines: &lines, sources: &sources };
            linkerr::unknown_imports(&cx, &names, &capi.stable_names()).ok()
        });
        let (findings, rest) = found.unwrap_or((Vec::new(), names));
        let mut lines: Vec<String> = findings.iter().map(linkerr::site_line).collect();
        if !rest.is_empty() {
            lines.push(format!("{} {}", module.source.display(), verify::Problem::NotCApi(rest)));
        }
        self.findings.extend(findings);
        lines.join("\n")
    }

    fn verify(&mut self, capi: &CApi, built: &[Built], python: Option<PyVersion>) -> StepResult<Option<(u32, u32)>> {
        let mut glibc = None;
        let mut failures = Vec::new();
        for (module, built) in self.project.modules.iter().zip(built) {
            let init_symbol = module.init_symbol();
            let expect =
                Expect { init_symbol: &init_symbol, python, macos_min: &self.project.settings.macos_deployment_target };
            match verify::verify(self.target, &built.bytes, &expect, capi) {
                Ok(v) => {
                    self.log(format!("{}: ok, imports {}", built.wheel_path, v.imports.join(" ")));
                    glibc = glibc.max(v.glibc);
                }
                Err(e) => failures.push(format!("{} {e}", built.wheel_path)),
            }
        }
        if failures.is_empty() {
            Ok(glibc)
        } else {
            Err(failures.join("\n").into())
        }
    }

    /// The line tables of this variant's modules (by file name in the
    /// wheel), for the ABI guards' messages; a module whose listing or map
    /// cannot be read is left out, and its messages name no line.
    fn line_table(&mut self, python: Option<PyVersion>) -> Vec<crate::lines::ModuleTable> {
        let variant = python.map_or("abi3".to_string(), |v| format!("cp{}", v.nodot()));
        let mut out = Vec::new();
        let root = match Root::open(&self.options.work_dir) {
            Ok(root) => root,
            Err(e) => {
                self.log(format!("no line tables for the ABI guards: cannot open the work directory: {e}"));
                return out;
            }
        };
        for module in self.project.modules.clone() {
            let dirs = self.source_dirs(&module);
            let lines =
                crate::lines::ModuleLines::from_work_dir(&root, self.target, &self.dir, &variant, &module.name, &dirs);
            match lines {
                Ok((lines, _)) => out.push((self.target.module_filename(module.leaf(), python), lines.table())),
                Err(e) => self.log(format!("{}: no line table for the ABI guards: {e}", module.name)),
            }
        }
        out
    }

    fn smoke(&mut self, wheels: &[(Option<PyVersion>, PathBuf)]) -> StepResult<()> {
        let tests: Vec<(PathBuf, PathBuf)> = self
            .project
            .test_files
            .iter()
            .map(|p| (p.strip_prefix("tests").unwrap_or(p).to_path_buf(), self.project.root.join(p)))
            .collect();
        let modules: Vec<String> = self.project.modules.iter().map(|m| m.name.clone()).collect();
        let sources = Sources::load(self.project, self.options.sandbox.limits.file_size);
        let root =
            Root::open(&self.options.work_dir).map_err(|e| infra(format!("cannot open the work directory: {e}")))?;
        let requires = &self.project.metadata.requires_python;
        let mut problems = Vec::new();
        let mut ran = 0;
        for (python, wheel_path) in wheels {
            let wheel_name = wheel_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let line_table = self.line_table(*python);
            // Set once importing this wheel hung or crashed on one interpreter:
            // the same binary would do it again on the others.
            let mut failed_import: Option<(String, ImportFailure)> = None;
            // A module making raw system calls is not run under a model.
            let (refused, symbols) = self.examine_shipped(*python, wheel_path, &root)?;
            for interp in &self.options.interpreters {
                let admitted = match python {
                    None => requires.admits(interp.version) && interp.version >= wheel::abi3_minimum(self.project),
                    Some(v) => *v == interp.version,
                };
                if !admitted {
                    continue;
                }
                ran += 1;
                let not_run = refused.clone().or_else(|| match (&failed_import, self.budget.left()) {
                    (Some((label, failure)), _) => {
                        Some(format!("not run: the same wheel {} on {label}", failure.describe()))
                    }
                    (None, None) => Some(format!("not run: {}", self.budget.used_up())),
                    (None, Some(_)) => None,
                });
                if let Some(reason) = not_run {
                    let mut run = TestRun::new(&interp.label(), interp.executable.clone(), &wheel_name);
                    run.model = abimodel::Model::for_target(self.target).map(|m| m.label().to_string());
                    self.log(format!("pytest on {} ({}): {reason}", run.interpreter, run.wheel));
                    problems.push(format!("{}: {reason}", run.interpreter));
                    run.problem = Some(reason);
                    self.tests.push(run);
                    continue;
                }
                let env = SmokeEnv::ensure(interp, &self.options.cache_dir.join("smoke")).map_err(infra)?;
                // Numbered: two interpreters of one version must not share a
                // folder (the second run's host writes would follow the
                // first run's links).
                let dir = self.dir.join("smoke").join(format!(
                    "{}-{}-{ran}",
                    interp.label(),
                    python.map_or("abi3".into(), |v| v.nodot())
                ));
                // Measured after the environment is ready: making it is the host's work.
                let (sandbox, cut_short) = self.sandbox()?;
                let job = smoke::SmokeJob {
                    wheel: wheel_path,
                    dir: &dir,
                    tests: &tests,
                    modules: &modules,
                    interpreter: interp,
                    env: &env,
                    sources: &sources,
                    root: &root,
                    timeout_reason: cut_short.as_deref(),
                    gdb: self.toolchain.path(toolchain::Tool::Gdb),
                    model: abimodel::Model::for_target(self.target),
                    guards: true,
                    line_table: &line_table,
                    symbols: &symbols,
                    warm: self.project.settings.warm_tests,
                };
                let smoked = smoke::run(&job, &sandbox, &self.options.cancel).map_err(infra)?;
                let run = smoked.run;
                self.log(format!("pytest on {} ({}):\n{}", run.interpreter, run.wheel, smoked.log.trim_end()));
                if let Some(failure) = smoked.on_import {
                    failed_import = Some((run.interpreter.clone(), failure));
                }
                if let Some(problem) = &run.problem {
                    problems.push(format!("{}: {problem}", run.interpreter));
                } else if run.failed + run.errors > 0 {
                    problems.push(format!(
                        "{}: {} failed, {} errors, {} passed",
                        run.interpreter, run.failed, run.errors, run.passed
                    ));
                }
                self.tests.push(run);
            }
        }
        if ran == 0 {
            warn!("no interpreter admitted by the wheels");
            return Err(infra("no interpreter on this host can import these wheels"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; ").into())
        }
    }

    /// For a foreign wheel: the reason its tests are not run when its code
    /// makes raw system calls ([`abimodel::syscalls`]), and its modules'
    /// symbols for crash reports; nothing for Linux.
    fn examine_shipped(
        &self,
        python: Option<PyVersion>,
        wheel: &Path,
        root: &Root,
    ) -> StepResult<(Option<String>, Vec<smoke::ModuleSymbols>)> {
        let Some(model) = abimodel::Model::for_target(self.target) else { return Ok((None, Vec::new())) };
        let check = abimodel::syscalls::WheelCheck {
            target: self.target,
            model,
            wheel,
            python,
            project: self.project,
            target_dir: &self.dir,
            include_dir: self.include_dir,
            root,
        };
        let refused = check.refusal().map_err(|e| infra(e.to_string()))?;
        let symbols = check.module_symbols().map_err(|e| infra(e.to_string()))?;
        Ok((refused, symbols))
    }

    fn finish(self, result: StepResult<()>) -> TargetReport {
        match result {
            Ok(()) => {
                let note = self.note.clone();
                self.report(Status::Succeeded, note)
            }
            Err(e) => self.report(Status::Failed, Some(e.reason)),
        }
    }

    fn finish_skipped(self, reason: &str) -> TargetReport {
        self.report(Status::Skipped, Some(reason.into()))
    }

    fn report(self, status: Status, reason: Option<String>) -> TargetReport {
        TargetReport {
            target: self.target,
            status,
            reason,
            abi3: self.abi3,
            steps: self.steps,
            tests: self.tests,
            artifacts: self.artifacts,
            findings: self.findings,
        }
    }
}
