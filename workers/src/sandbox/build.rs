//! The limits of one build as a whole, beside each step's own: a memory
//! cgroup every sandbox of the build is born into (its processes and the
//! tmpfs pages they write, together), and a disk budget for the job
//! directory, watched by a thread that stops the build when it is passed.
//!
//! [`Sandbox::for_build`](super::Sandbox::for_build) makes a [`BuildSandbox`]
//! at the start of a build; its [`BuildSandbox::sandbox`] runs the build's
//! steps, and a step that a build limit ended reports
//! [`Exit::Limit`](crate::process::Exit::Limit) with the reason.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use super::cgroup::BuildGroup;
use super::{Limits, Sandbox};
use crate::process::{CancelToken, Exit, Output};

/// How often the job directory's size is measured. A build can write some
/// hundred megabytes between two looks: the budget is a bound on what it
/// keeps, RLIMIT_FSIZE bounds each file.
const DISK_POLL: Duration = Duration::from_millis(200);

/// What each file, directory and link costs at least, so that a build of
/// millions of empty files is stopped as well as one big file.
const INODE_COST: u64 = 4096;

/// The state of one build that its steps share.
#[derive(Debug)]
pub(super) struct BuildState {
    limits: Limits,
    /// The build's memory cgroup; `None` when the host has no memory
    /// controller for us (the build is then bounded per process only).
    pub(super) memory: Option<BuildGroup>,
    /// Why the build was stopped, once a limit stopped it.
    over: OnceLock<String>,
    /// Cancelled when a limit stopped the build: every run watches it.
    pub(super) stop: CancelToken,
}

impl BuildState {
    /// The reason that stopped the build, if one did.
    pub(super) fn stopped(&self) -> Option<&str> {
        self.over.get().map(String::as_str)
    }

    /// The OOM killer's count so far, to compare after a run.
    pub(super) fn oom_kills(&self) -> u64 {
        self.memory.as_ref().map_or(0, BuildGroup::oom_kills)
    }

    /// Stops the build for `reason`: every running step is killed, and
    /// every later one fails at once with the reason.
    fn stop_for(&self, reason: String) {
        if self.over.set(reason).is_ok() {
            self.stop.cancel();
            if let Some(group) = &self.memory {
                group.kill_all();
            }
        }
    }

    /// Turns a run that a build limit ended into [`Exit::Limit`]: the build
    /// was stopped, or the OOM killer killed one of its processes during
    /// the run (`oom_before` is the count from before it) and the run failed.
    pub(super) fn explain(&self, output: &mut Output, oom_before: u64) {
        if output.success() {
            return;
        }
        if let Some(reason) = self.stopped() {
            output.exit = Exit::Limit(reason.to_string());
        } else if self.oom_kills() > oom_before {
            output.exit =
                Exit::Limit(format!("the build used more than {} of memory", bytes(self.limits.build_memory)));
        }
    }

    /// A run refused because the build was already stopped.
    pub(super) fn refused(&self) -> Option<Output> {
        let reason = self.stopped()?;
        Some(Output {
            exit: Exit::Limit(reason.to_string()),
            text: String::new(),
            truncated: false,
            duration: Duration::ZERO,
        })
    }
}

/// One build's sandbox: owns its memory cgroup and disk watcher, released
/// when dropped (at the end of the build).
#[derive(Debug)]
pub struct BuildSandbox {
    sandbox: Sandbox,
    state: Arc<BuildState>,
    watcher: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl BuildSandbox {
    /// Starts the build-wide limits of `sandbox` for the job directory `work_dir`.
    pub(super) fn start(sandbox: &Sandbox, work_dir: &Path) -> BuildSandbox {
        let limits = sandbox.limits.clone();
        let memory = sandbox.memory.as_ref().and_then(|h| match BuildGroup::create(h, limits.build_memory) {
            Ok(group) => Some(group),
            Err(e) => {
                tracing::warn!("no memory cgroup for this build ({e}): its memory is bounded per process only");
                None
            }
        });
        let state = Arc::new(BuildState { limits, memory, over: OnceLock::new(), stop: CancelToken::new() });
        let (stop_tx, stop_rx) = mpsc::channel();
        let watched = state.clone();
        let dir = work_dir.to_path_buf();
        let thread = std::thread::spawn(move || watch_disk(&watched, &dir, &stop_rx));
        let mut sandbox = sandbox.clone();
        sandbox.build = Some(state.clone());
        BuildSandbox { sandbox, state, watcher: Some((stop_tx, thread)) }
    }

    /// The sandbox that runs the build's steps under the build's limits.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The reason a build limit stopped the build, if one did.
    pub fn stopped(&self) -> Option<String> {
        self.state.stopped().map(String::from)
    }
}

impl Drop for BuildSandbox {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.watcher.take() {
            drop(stop);
            let _ = thread.join();
        }
        // Nothing of the build outlives it (the group itself goes with the
        // last clone of the sandbox).
        if let Some(group) = &self.state.memory {
            group.kill_all();
        }
    }
}

/// Measures `dir` every [`DISK_POLL`] until told to stop (the channel
/// closes); stops the build when it holds more than the budget.
fn watch_disk(state: &BuildState, dir: &Path, stop: &mpsc::Receiver<()>) {
    let budget = state.limits.build_disk;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(DISK_POLL) {
        if disk_usage(dir, budget) > budget {
            state.stop_for(format!("the build used more than {} of disk", bytes(budget)));
            return;
        }
    }
}

/// The space the files under `dir` take (allocated blocks, each entry at
/// least [`INODE_COST`]), counted until it passes `cap`. Never follows a
/// link: each directory is opened by name relative to its parent with
/// `O_NOFOLLOW`, so that a build that swaps a directory for a link while it
/// is being measured leads the count nowhere else.
fn disk_usage(dir: &Path, cap: u64) -> u64 {
    let Ok(root) = open_dir(None, dir.as_os_str()) else { return 0 };
    let mut total = 0u64;
    let mut pending = vec![root];
    while let Some(fd) = pending.pop() {
        // Reading the directory through its descriptor, not its path.
        let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd())) else { continue };
        for entry in entries.flatten() {
            // lstat relative to the directory read (std uses its descriptor).
            let Ok(meta) = entry.metadata() else { continue };
            total += (std::os::unix::fs::MetadataExt::blocks(&meta) * 512).max(INODE_COST);
            if total > cap {
                return total;
            }
            if meta.file_type().is_dir() {
                if let Ok(child) = open_dir(Some(&fd), &entry.file_name()) {
                    pending.push(child);
                }
            }
        }
    }
    total
}

/// Opens a directory (relative to `parent` when given) without following a
/// link in its last component.
fn open_dir(parent: Option<&OwnedFd>, name: &std::ffi::OsStr) -> std::io::Result<OwnedFd> {
    let name = std::ffi::CString::new(name.as_encoded_bytes()).map_err(std::io::Error::other)?;
    let at = parent.map_or(libc::AT_FDCWD, |p| p.as_raw_fd());
    // SAFETY: `name` is a valid C string; the descriptor returned is ours.
    let fd = unsafe {
        libc::openat(at, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bytes` as people say it: `2 GiB`, `64 MiB`, `1536 KiB`, `1000 bytes`.
pub(super) fn bytes(bytes: u64) -> String {
    match bytes {
        0 => "0 bytes".into(),
        b if b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_in_the_largest_whole_unit() {
        assert_eq!(bytes(2 << 30), "2 GiB");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(1536 << 10), "1536 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }

    #[test]
    fn disk_usage_counts_every_entry_and_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        for n in 0..10 {
            std::fs::write(sub.join(format!("empty-{n}")), "").unwrap();
        }
        std::fs::write(dir.path().join("data"), vec![1u8; 100_000]).unwrap();
        // A link to a large tree is one entry, not the tree.
        std::os::unix::fs::symlink("/usr", dir.path().join("usr")).unwrap();
        let data_blocks = std::fs::symlink_metadata(dir.path().join("data")).unwrap();
        let data = (std::os::unix::fs::MetadataExt::blocks(&data_blocks) * 512).max(INODE_COST);
        // a, a/b, ten empty files, the link: 13 entries of at least 4 KiB each
        // (directories on some file systems take more).
        let usage = disk_usage(dir.path(), u64::MAX);
        assert!(usage >= data + 13 * INODE_COST && usage < data + 13 * INODE_COST + (64 << 10), "{usage}");
        assert!(disk_usage(dir.path(), 10_000) > 10_000, "the count stops past the cap");
        assert_eq!(disk_usage(&dir.path().join("usr"), u64::MAX), 0, "a link given as the directory is not followed");
    }
}
