//! The state every handler and worker shares.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sqlx::SqlitePool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wheelwright_workers::process::CancelToken;
use wheelwright_workers::sandbox::Sandbox;
use wheelwright_workers::smoke::Interpreter;
use wheelwright_workers::toolchain::Toolchain;

use crate::config::Config;
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::store::ArtifactStore;

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
    /// The database pool.
    pub db: SqlitePool,
    /// Where artifacts are kept.
    pub store: Arc<dyn ArtifactStore>,
    /// `<data>/sources/<build id>/`: each build's project files, kept for rebuilds.
    pub sources_dir: PathBuf,
    /// `<data>/jobs/<build id>/`: scratch space of running builds.
    pub jobs_dir: PathBuf,
    /// How the engine runs.
    pub engine: Engine,
    /// Live log channels.
    pub logs: LogHub,
    /// In-memory metrics.
    pub metrics: Metrics,
    /// Woken when a job is enqueued, so idle workers claim it at once.
    pub wake: Notify,
    /// Cancel tokens of the builds this daemon is running.
    pub running: Mutex<HashMap<String, CancelToken>>,
    /// Set when the daemon is shutting down.
    pub shutdown: CancellationToken,
    /// The daemon's host places, named instead of shown in public logs.
    pub host_paths: crate::dispatch::scrub::HostPaths,
    /// Posts commit statuses for pushed builds, when a GitHub token is set.
    pub statuses: Option<crate::github::statuses::StatusNotifier>,
}

/// What the engine needs from the daemon, fixed at start.
pub struct Engine {
    /// Step isolation and limits.
    pub sandbox: Sandbox,
    /// Smoke-test interpreters.
    pub interpreters: Vec<Interpreter>,
    /// The tools every build uses, discovered once at start (with versions).
    pub toolchain: Arc<Toolchain>,
    /// Tool versions (of `toolchain`), interpreters and settings that
    /// change results: part of every cache key.
    pub fingerprint: String,
}
