//! What runs a claimed build: the engine ([`EngineExecutor`]) in the daemon,
//! or a stand-in in tests whose subject is the daemon and not the engine
//! (crates.io's `TestApp` idea: the real thing everywhere but the one seam).

use std::path::PathBuf;
use std::sync::Arc;

use wheelwright_workers::pipeline::{self, BuildOptions, Event};
use wheelwright_workers::platform::Target;
use wheelwright_workers::process::CancelToken;
use wheelwright_workers::project::{Overrides, Project, ProjectError};
use wheelwright_workers::report::BuildReport;
use wheelwright_workers::sandbox::Sandbox;
use wheelwright_workers::smoke::Interpreter;
use wheelwright_workers::toolchain::Toolchain;

/// One claimed build, as its executor sees it.
#[derive(Debug, Clone)]
pub struct BuildJob {
    /// The build's id.
    pub build_id: String,
    /// Its stored project files.
    pub source: PathBuf,
    /// Upload overrides and the debug flag.
    pub overrides: Overrides,
    /// Targets to build.
    pub targets: Vec<Target>,
    /// Where wheels and the sdist go (created by the executor).
    pub out_dir: PathBuf,
    /// Scratch space (exists, empty).
    pub work_dir: PathBuf,
    /// Stops the build when cancelled.
    pub cancel: CancelToken,
}

/// Runs builds. Called on a blocking thread; `events` streams log lines and
/// step results as they come.
pub trait BuildExecutor: Send + Sync + 'static {
    /// Builds `job`: a report (a failed build is a report too), or the
    /// project error that stopped it before any target ran.
    fn execute(&self, job: &BuildJob, events: &(dyn Fn(Event) + Sync)) -> Result<BuildReport, ProjectError>;
}

/// The engine, with the daemon's sandbox, interpreters and tools (found
/// once at start; the cache key describes these very tools).
pub struct EngineExecutor {
    /// Step isolation and limits.
    pub sandbox: Sandbox,
    /// Smoke-test interpreters.
    pub interpreters: Vec<Interpreter>,
    /// The tools every build uses.
    pub toolchain: Arc<Toolchain>,
    /// Run the smoke test.
    pub smoke: bool,
    /// Cache for import libraries and smoke environments.
    pub cache_dir: PathBuf,
}

impl BuildExecutor for EngineExecutor {
    fn execute(&self, job: &BuildJob, events: &(dyn Fn(Event) + Sync)) -> Result<BuildReport, ProjectError> {
        let project = Project::load(&job.source, &job.overrides)?;
        let options = BuildOptions {
            targets: Some(job.targets.clone()),
            out_dir: job.out_dir.clone(),
            work_dir: job.work_dir.clone(),
            smoke: self.smoke,
            interpreters: self.interpreters.clone(),
            cache_dir: self.cache_dir.clone(),
            // Fixed timestamps: the same source gives the same bytes, whenever built.
            source_date_epoch: None,
            sandbox: self.sandbox.clone(),
            cancel: job.cancel.clone(),
            // Side by side: when one target waits (a cgroup move, a disk
            // write), another one uses the core.
            parallel_targets: true,
            check_only: false,
            toolchain: self.toolchain.clone(),
        };
        Ok(pipeline::build(&project, &options, events))
    }
}
