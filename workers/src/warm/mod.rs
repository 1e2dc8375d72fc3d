//! The warm test runner: per interpreter (and per place it may see), a pool
//! of long-lived Python processes, each in a sandbox of its own, that have
//! imported pytest once and fork a child per test run. The child isolates
//! itself before it touches the project (a view of its own: a mount
//! namespace showing what a cold run's sandbox shows, with fresh `/tmp` and
//! `/dev/shm`, and no capability left; a fresh Landlock domain over only its
//! run directory, its own session and process group, the step's cgroup and
//! rlimits, the allow-listed environment), then
//! runs pytest in-process. The engine reads the results from the run
//! directory exactly as after a cold run; the runner only reports the
//! child's waitpid status, so no child can answer for another.
//!
//! A runner is replaced whenever it is in doubt: after a run that did not
//! exit normally (a crash, a timeout, a cancel), after any protocol error,
//! after [`MAX_RUNS`] runs. The cold path ([`crate::smoke`] running `python
//! -m pytest` in a sandbox of its own) stays the fallback. See
//! docs/warm-runner.md.

mod runner;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub use runner::{Ended, Request, Runner, ViewMount, RUNNER_PY};

/// The hash seed every test run gets, warm or cold: a forked child
/// inherits its runner's hash secret, so both paths use this one.
pub const HASH_SEED: &str = "0";

/// Runs a runner serves before it is replaced.
pub const MAX_RUNS: u32 = 200;

/// Idle runners kept per key: as many as run at once for one key (a
/// daemon's workers times the targets each builds side by side), so that
/// no build pays for a start.
const IDLE_PER_KEY: usize = 8;

/// Keys (interpreter and view) kept with idle runners.
const KEYS_KEPT: usize = 8;

/// Why a warm run did not happen (the caller runs the tests cold).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WarmError {
    /// No runner could serve here (no Landlock signal scoping, no helper,
    /// the runner did not start).
    #[error("the warm runner is unavailable: {0}")]
    Unavailable(String),
    /// The runner broke the protocol or ended mid-run; it was killed.
    #[error("the warm runner failed: {0}")]
    Protocol(String),
}

/// What a runner is started for: runners are shared only between runs with
/// the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunnerKey {
    /// The environment's python.
    pub python: PathBuf,
    /// Read-only binds of its sandbox (the interpreter's prefix, the
    /// environment).
    pub read_only: Vec<PathBuf>,
    /// The writable bind: the folder holding the builds' work directories.
    pub writable: PathBuf,
    /// The runner's own copy of the ABI harness
    /// ([`crate::abimodel::shared_harness`], inside a read-only bind), which
    /// it imports before it forks, so that no child compiles it again.
    pub harness: Option<PathBuf>,
}

/// Idle runners by key.
#[derive(Debug, Default)]
pub struct WarmPool {
    idle: Mutex<Vec<(RunnerKey, Vec<Runner>)>>,
}

impl WarmPool {
    /// An empty pool.
    pub fn new() -> WarmPool {
        WarmPool::default()
    }

    /// The process's pool, shared by every sandbox that runs tests warm.
    pub fn shared() -> Arc<WarmPool> {
        static POOL: OnceLock<Arc<WarmPool>> = OnceLock::new();
        POOL.get_or_init(|| Arc::new(WarmPool::new())).clone()
    }

    /// An idle runner for `key`, if one is kept.
    pub fn take(&self, key: &RunnerKey) -> Option<Runner> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter_mut().find(|(k, _)| k == key).and_then(|(_, runners)| runners.pop())
    }

    /// Keeps `runner` for the next run with `key` (or drops it when enough
    /// are kept, or it has served [`MAX_RUNS`]).
    pub fn give_back(&self, key: RunnerKey, runner: Runner) {
        if runner.runs >= MAX_RUNS {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let at = match idle.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                if idle.len() >= KEYS_KEPT {
                    idle.remove(0);
                }
                idle.push((key, Vec::new()));
                idle.len() - 1
            }
        };
        // Most recently used last: the oldest key is the one let go.
        let mut entry = idle.remove(at);
        if entry.1.len() < IDLE_PER_KEY {
            entry.1.push(runner);
        }
        idle.push(entry);
    }

    /// How many runners are idle, for tests and `doctor`.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, r)| r.len()).sum()
    }

    /// Lets the idle runners go whose sandbox shows `writable` (a build's
    /// own directory, when the build ends).
    pub fn forget(&self, writable: &std::path::Path) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).retain(|(k, _)| k.writable != writable);
    }

    /// Lets every idle runner go.
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_pool_has_nothing_to_give() {
        let pool = WarmPool::new();
        let key = RunnerKey { python: "/p".into(), read_only: vec![], writable: "/w".into(), harness: None };
        assert!(pool.take(&key).is_none());
        assert_eq!(pool.idle_count(), 0);
    }
}
