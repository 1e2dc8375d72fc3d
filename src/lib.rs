//! wheelwright: a build service for CPython extension modules written in
//! x86-64 assembly. This crate is the daemon and the CLI; the build engine
//! is the `wheelwright-workers` crate.
//!
//! [`run`] serves the API and runs the worker pool side by side on an
//! already-bound listener, so tests get a real server on `127.0.0.1:0`.

pub mod api;
pub mod auth;
pub mod builds;
pub mod cli;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod dto;
pub mod error;
pub mod github;
pub mod logs;
pub mod metrics;
pub mod migrate;
pub mod model;
pub mod routes;
pub mod state;
pub mod store;
pub mod upload;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};
use wheelwright_workers::sandbox::Sandbox;
use wheelwright_workers::smoke::Interpreter;
use wheelwright_workers::toolchain::Toolchain;

use builds::{BuildEvents, BuildService, RunningBuilds, ServiceSettings};
use config::{Config, SandboxKind};
use dispatch::executor::{BuildExecutor, EngineExecutor};
use state::{App, AppState};

/// Installs the TLS crypto provider (ring) for this process; safe to call
/// more than once. Every HTTPS client of the process needs it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves `config` on `listener` until `shutdown` resolves; then stops
/// claiming jobs, gives running builds their grace period and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, listener, shutdown, None).await
}

/// [`run`], with `executor` running the claimed builds instead of the
/// engine (tests whose subject is not the engine).
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    executor: Option<Arc<dyn BuildExecutor>>,
) -> anyhow::Result<()> {
    let mut config = config;
    // The address really bound (port 0 picks one): the Host allow-list
    // derives from it.
    config.bind = listener.local_addr()?;
    let state = start(config, executor).await?;
    info!("listening on http://{}", listener.local_addr()?);
    let router = routes::router(state.clone()).layer(TraceLayer::new_for_http());
    let workers = tokio::spawn(dispatch::run_pool(state.clone()));
    match github::resume_pending(&state).await {
        Ok(0) => {}
        Ok(n) => info!("fetching {n} push(es) accepted before the restart"),
        Err(e) => warn!("could not read the pending pushes: {e}"),
    }
    let token = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down: no new builds are claimed");
        token.cancel();
    });
    // The client's address: tokenless uploads are counted per address.
    let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, router).with_graceful_shutdown(state.shutdown.clone().cancelled_owned()).await?;
    workers.await.context("the worker pool failed")?;
    state.db.close().await;
    Ok(())
}

/// This daemon's own binary, which the build backend's wheel ships: the
/// sandbox helper's program when one is set (it is this binary, even when
/// the daemon runs inside a test), else the running executable.
fn daemon_binary(config: &Config) -> anyhow::Result<std::path::PathBuf> {
    match &config.helper {
        Some(helper) => Ok(helper.program.clone()),
        None => std::env::current_exe().context("cannot find this daemon's binary"),
    }
}

/// The folder of the builds' work directories (`--work-dir`), made if it is
/// missing, as its absolute path without links; refused unless this user's
/// alone ([`wheelwright_workers::sandbox::private_dir`]): the sandboxes bind
/// what lies in it, and the host writes and removes there.
fn work_dir(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    wheelwright_workers::sandbox::private_dir(dir, 0)
        .with_context(|| format!("the work directory {}", dir.display()))?;
    std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))
}

/// Opens the data directory and the database, checks the sandbox and finds
/// the interpreters and tools: everything the API and the workers share.
/// `executor` runs claimed builds; `None` is the engine.
pub async fn start(config: Config, executor: Option<Arc<dyn BuildExecutor>>) -> anyhow::Result<AppState> {
    let data = &config.data_dir;
    let sources_dir = data.join("sources");
    for dir in [data, &sources_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let jobs_dir = work_dir(&config.work_dir)?;
    let db = db::Database::open(&config.database, &data.join("wheelwright.db"))
        .await
        .with_context(|| format!("cannot open the database ({})", config.database.url))?;
    let store = store::open(&config.store, data)?;
    let sources = store::SourceTrees::open(&sources_dir, store.clone()).context("cannot open the source store")?;
    let sandbox = match config.sandbox {
        // Warm test runners and sandbox sessions serve every build (each
        // job's work dir is in jobs/, its sources in sources/).
        SandboxKind::Bwrap => Sandbox::bubblewrap(config.limits.clone(), config.helper.clone())?
            .with_warm_root(jobs_dir.clone())
            .with_session_pool(vec![sources_dir.clone()]),
        SandboxKind::None => Sandbox::none(config.limits.clone()),
    };
    let interpreters = if config.pythons.is_empty() {
        Interpreter::discover()
    } else {
        config
            .pythons
            .iter()
            .map(|p| Interpreter::probe(p))
            .collect::<Result<Vec<_>, _>>()
            .context("a configured interpreter is not usable")?
    };
    // Once: every build uses these tools, and the cache key names their versions.
    let tools = Arc::new(tokio::task::spawn_blocking(|| Toolchain::discover().with_versions()).await?);
    let fingerprint = format!(
        "wheelwright {}; {}; smoke={}; pythons={}",
        env!("CARGO_PKG_VERSION"),
        tools.fingerprint(),
        config.smoke,
        interpreters.iter().map(|i| i.version.to_string()).collect::<Vec<_>>().join(",")
    );
    info!(config = %config.describe(), sandbox = %sandbox.describe(), "starting");
    // GitHub's API is HTTPS: one crypto provider for the process.
    install_crypto_provider();
    let statuses = config
        .github
        .token
        .clone()
        .map(|token| github::statuses::StatusNotifier::start(config.github.api.clone(), token));
    if !sandbox.is_isolated() {
        tracing::warn!("the sandbox is off (sandbox = none): uploaded code runs unconfined");
    }
    let prefixes: Vec<_> = interpreters.iter().map(|i| i.prefix.clone()).collect();
    let host_paths = dispatch::scrub::HostPaths::of_daemon(&config.data_dir, &config.cache_dir, &prefixes);
    let executor = executor.unwrap_or_else(|| {
        Arc::new(EngineExecutor {
            sandbox: sandbox.clone(),
            interpreters,
            toolchain: tools,
            smoke: config.smoke,
            cache_dir: config.cache_dir.clone(),
        })
    });
    let (wake, logs, running, events) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(logs::LogHub::default()),
        Arc::new(RunningBuilds::default()),
        Arc::new(BuildEvents::default()),
    );
    let settings = ServiceSettings {
        fingerprint,
        max_attempts: config.max_attempts,
        max_queued_per_client: config.max_queued_per_client,
        ownership: config.index_ownership,
    };
    let shared = builds::Shared {
        wake: wake.clone(),
        logs: logs.clone(),
        events: events.clone(),
        backend: Arc::new(store::BackendWheel::new(daemon_binary(&config)?, data.join("backend"))),
    };
    let builds = BuildService::new(db.clone(), sources.clone(), settings, shared);
    let state = AppState(Arc::new(App {
        config,
        builds,
        db,
        store,
        sources,
        jobs_dir,
        executor,
        sandbox,
        logs,
        events,
        metrics: metrics::Metrics::default(),
        wake,
        running,
        shutdown: tokio_util::sync::CancellationToken::new(),
        host_paths,
        statuses,
    }));
    if let Some(statuses) = &state.statuses {
        // Commit statuses follow the build events.
        github::statuses::follow_builds(&state, statuses.clone());
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_work_directory_others_may_write_is_refused_with_its_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let made = super::work_dir(&dir.path().join("a/b")).unwrap();
        assert_eq!(std::fs::metadata(&made).unwrap().permissions().mode() & 0o777, 0o700);
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let refused = format!("{:#}", super::work_dir(&open).unwrap_err());
        assert!(refused.starts_with("the work directory ") && refused.contains("mode 1777"), "{refused}");
        // Its own folder fine, but inside one others may write: they could swap it.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = format!("{:#}", super::work_dir(&open.join("jobs")).unwrap_err());
        assert!(refused.contains(&format!("lies in {}, which others may write", open.display())), "{refused}");
    }
}
