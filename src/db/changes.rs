//! What every daemon on a database must hear at once: log lines were
//! appended to a build, a build finished, a cancel was asked for. Each
//! backend implements [`Changes`]: SQLite in-process ([`LocalChanges`], one
//! daemon), PostgreSQL with `LISTEN/NOTIFY`. A change names a build and a
//! sequence range or a status, never a log line's text: followers read the
//! lines from the table, so a notification can neither be too large nor
//! carry what the table does not.

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::DbResult;
use crate::model::BuildStatus;

/// How many changes a slow subscriber may fall behind before it misses
/// some (it is told so, and followers look at the table every few seconds).
pub const CHANGES_BUFFER: usize = 4096;

/// Something another daemon must hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Lines `first_seq..=last_seq` of a build's log were written.
    LogAppended {
        /// The build.
        build_id: String,
        /// The first line's sequence number.
        first_seq: i64,
        /// The last line's sequence number.
        last_seq: i64,
    },
    /// The build reached a final status.
    Finished {
        /// The build.
        build_id: String,
        /// Its status.
        status: BuildStatus,
    },
    /// A cancel was asked for a running build: whoever runs it stops it.
    CancelRequested {
        /// The build.
        build_id: String,
    },
}

impl Change {
    /// The notification payload: `log <id> <first> <last>`, `finished <id>
    /// <status>` or `cancel <id>` (build ids are UUIDs: no spaces).
    pub fn encode(&self) -> String {
        match self {
            Change::LogAppended { build_id, first_seq, last_seq } => format!("log {build_id} {first_seq} {last_seq}"),
            Change::Finished { build_id, status } => format!("finished {build_id} {}", status.as_str()),
            Change::CancelRequested { build_id } => format!("cancel {build_id}"),
        }
    }

    /// A payload back as a change; `None` for anything else (another
    /// version's payload, or a stranger's NOTIFY on our channel).
    pub fn decode(payload: &str) -> Option<Change> {
        let parts: Vec<&str> = payload.split(' ').collect();
        match parts.as_slice() {
            ["log", id, first, last] => Some(Change::LogAppended {
                build_id: id.to_string(),
                first_seq: first.parse().ok()?,
                last_seq: last.parse().ok()?,
            }),
            ["finished", id, status] => {
                Some(Change::Finished { build_id: id.to_string(), status: BuildStatus::parse(status)? })
            }
            ["cancel", id] => Some(Change::CancelRequested { build_id: id.to_string() }),
            _ => None,
        }
    }
}

/// The changes of one database, as every daemon on it sees them.
#[async_trait]
pub trait Changes: Send + Sync {
    /// Every change from now on (this daemon's own included).
    fn subscribe(&self) -> broadcast::Receiver<Change>;

    /// Tells every daemon about `change` (the backend announces the changes
    /// it makes itself in the transaction that makes them; this is for
    /// the ones the daemon knows of, such as a build's end once its last
    /// lines are written).
    async fn announce(&self, change: &Change) -> DbResult<()>;
}

/// In-process changes, for a database only this daemon uses.
#[derive(Debug, Clone)]
pub struct LocalChanges {
    sender: broadcast::Sender<Change>,
}

impl Default for LocalChanges {
    fn default() -> Self {
        LocalChanges { sender: broadcast::channel(CHANGES_BUFFER).0 }
    }
}

impl LocalChanges {
    /// Sends `change` to current subscribers (none is fine).
    pub fn send(&self, change: Change) {
        let _ = self.sender.send(change);
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_strangers_are_ignored() {
        let changes = [
            Change::LogAppended { build_id: "0190-ab".into(), first_seq: 3, last_seq: 9 },
            Change::Finished { build_id: "0190-ab".into(), status: BuildStatus::Cancelled },
            Change::CancelRequested { build_id: "0190-ab".into() },
        ];
        for change in changes {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        for stranger in ["", "log x 1", "finished x done", "hello", "cancel"] {
            assert_eq!(Change::decode(stranger), None, "{stranger}");
        }
    }
}
