//! The state every handler and worker shares.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::builds::{BuildEvents, BuildService, RunningBuilds};
use crate::config::Config;
use crate::db::Database;
use crate::dispatch::executor::BuildExecutor;
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::store::{ArtifactStore, SourceTrees};

/// Cheap to clone; everything lives in [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The daemon.
pub struct App {
    /// The effective configuration.
    pub config: Config,
    /// What the doors ask of builds.
    pub builds: BuildService,
    /// The stores, for the workers (the doors go through [`App::builds`]).
    pub db: Database,
    /// Where artifacts are kept.
    pub store: Arc<dyn ArtifactStore>,
    /// `<data>/sources/<build id>/`: each build's project files, kept for rebuilds.
    pub sources: SourceTrees,
    /// `<data>/jobs/<build id>/`: scratch space of running builds.
    pub jobs_dir: PathBuf,
    /// What runs a claimed build: the engine, or a stand-in in tests.
    pub executor: Arc<dyn BuildExecutor>,
    /// Step isolation and limits, for the git fetches of pushed commits.
    pub sandbox: wheelwright_workers::sandbox::Sandbox,
    /// Live log channels.
    pub logs: Arc<LogHub>,
    /// Build events (started, finished), published by the workers and the service.
    pub events: Arc<BuildEvents>,
    /// In-memory metrics.
    pub metrics: Metrics,
    /// Woken when a job is enqueued, so idle workers claim it at once.
    pub wake: Arc<Notify>,
    /// Cancel tokens of the builds this daemon is running.
    pub running: Arc<RunningBuilds>,
    /// Set when the daemon is shutting down.
    pub shutdown: CancellationToken,
    /// The daemon's host places, named instead of shown in public logs.
    pub host_paths: crate::dispatch::scrub::HostPaths,
    /// Posts commit statuses for pushed builds, when a GitHub token is set.
    pub statuses: Option<crate::github::statuses::StatusNotifier>,
}
