//! The worker pool: N tokio tasks that claim jobs and run them through the
//! [`executor::BuildExecutor`] (the engine), a task that takes back jobs
//! whose lease expired, and one that relays the database's changes (log
//! lines, ends, cancel requests from any daemon) to this one.

pub mod executor;
mod relay;
mod run;
pub mod scrub;

use std::time::Duration;

use tracing::{error, info, warn};

use crate::state::AppState;

/// How often idle workers look for due jobs without being woken (retries
/// become due by time, not by an enqueue).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Runs the workers and the rescuer until shutdown; running builds are given
/// `grace` to finish, then cancelled and handed back.
pub async fn run_pool(state: AppState) {
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..state.config.workers {
        let state = state.clone();
        tasks.spawn(async move { worker_loop(state, format!("{}-{n}", std::process::id())).await });
    }
    let rescuer = state.clone();
    tasks.spawn(async move { rescue_loop(rescuer).await });
    tasks.spawn(relay::run(state.clone()));
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result {
            error!("worker task ended abnormally: {e}");
        }
    }
}

async fn worker_loop(state: AppState, name: String) {
    while !state.shutdown.is_cancelled() {
        match state.db.jobs.claim(&name, state.config.lease).await {
            Ok(Some(claim)) => {
                // Another job may be waiting: let an idle worker look too.
                state.wake.notify_one();
                run::execute(&state, claim).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = state.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = state.shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                warn!("claiming a job failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    info!(worker = %name, "worker stopped");
}

async fn rescue_loop(state: AppState) {
    let every = (state.config.lease / 2).clamp(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match state.db.jobs.rescue_expired().await {
            Ok(0) => {}
            Ok(n) => {
                info!("took back {n} job(s) whose lease expired");
                state.wake.notify_waiters();
            }
            Err(e) => warn!("rescuing expired jobs failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}
