//! The job queue's records: one job per build, claimed with a lease and an
//! attempt number. Heartbeats and results from a stale attempt are refused
//! (fencing); a job whose lease ran out is taken again, with backoff, up to
//! its attempt limit, then discarded with its error history. No transaction
//! stays open while a build runs. (The SQL is the backend's: `db::shared::jobs`.)

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::index::{Publish, Refusal};
use super::{ArtifactRecord, BuildStatus, StoredReport};

/// A job this worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The job.
    pub job_id: String,
    /// Its build.
    pub build_id: String,
    /// The attempt this claim is; every write is fenced on it.
    pub attempt: i64,
}

/// One entry of a job's error history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// Which attempt.
    pub attempt: i64,
    /// When (ms since 1970).
    pub at: i64,
    /// What went wrong.
    pub error: String,
}

/// Backoff before attempt `attempt + 1`: 2 s, 4 s, 8 s ... capped at 5 minutes.
pub fn backoff(attempt: i64) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.clamp(1, 20) as u32).min(300))
}

/// What became of a job after an infrastructure failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Queued again for later.
    Scheduled,
    /// Out of attempts: the build failed with its error history.
    Discarded,
    /// The claim was stale; nothing changed.
    Stale,
}

/// A claimed build's outcome, recorded with its job's completion in one
/// transaction fenced on the claim.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The build's final status.
    pub status: BuildStatus,
    /// Its report, when the engine gave one.
    pub report: Option<StoredReport>,
    /// Why it failed outside any target.
    pub error: Option<String>,
    /// Its stored artifacts.
    pub artifacts: Vec<ArtifactRecord>,
    /// Publish its files to the index (a successful release build).
    pub publish: Option<Publish>,
}

/// What recording a [`Completion`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// Recorded, and published when asked.
    Recorded,
    /// Nothing was recorded: the files cannot be published, for these
    /// reasons. The caller records the build again, failed and unpublished.
    Refused(Vec<Refusal>),
    /// Nothing was recorded: the claim is stale (another attempt owns the
    /// job, or it was cancelled or discarded).
    Stale,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
