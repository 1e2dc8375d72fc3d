//! Feeds this daemon from the database's [`Change`]s: lines appended to a
//! build's log reach the build's live followers here (read back from the
//! table: a change carries sequence numbers, never text), a build's end
//! ends them, and a cancel request stops the build if it runs here. Every
//! change goes this way, this daemon's own too, on SQLite (in-process) and
//! PostgreSQL (`LISTEN/NOTIFY`) alike.

use tokio::sync::broadcast::error::RecvError;
use tracing::warn;

use crate::db::Change;
use crate::logs::LogEvent;
use crate::state::AppState;

/// Relays changes until shutdown.
pub async fn run(state: AppState) {
    let mut changes = state.db.changes.subscribe();
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            _ = state.shutdown.cancelled() => return,
        };
        match change {
            Ok(change) => apply(&state, change).await,
            // Followers read the table every few seconds, and workers look
            // at the cancel flag on every tick: a gap costs latency only.
            Err(RecvError::Lagged(missed)) => warn!("{missed} database change(s) were missed"),
            Err(RecvError::Closed) => return,
        }
    }
}

async fn apply(state: &AppState, change: Change) {
    match change {
        Change::LogAppended { build_id, first_seq, last_seq } => {
            if !state.logs.is_followed(&build_id) {
                return;
            }
            match state.db.logs.after(&build_id, first_seq - 1).await {
                Ok(lines) => {
                    for (seq, line) in lines.into_iter().take_while(|(seq, _)| *seq <= last_seq) {
                        state.logs.publish(&build_id, LogEvent::Line(seq, line));
                    }
                }
                Err(e) => warn!(build.id = %build_id, "reading appended log lines failed: {e}"),
            }
        }
        Change::Finished { build_id, status } => state.logs.finish(&build_id, status.as_str()),
        Change::CancelRequested { build_id } => state.running.cancel(&build_id),
    }
}
