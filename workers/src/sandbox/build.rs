//! The limits of one build as a whole, beside each step's own: a memory
//! cgroup every sandbox of the build is born into (its processes and the
//! tmpfs pages they write, together), and a disk budget for the job
//! directory, watched by a thread that stops the build when it is passed.
//!
//! [`Sandbox::for_build`](super::Sandbox::for_build) makes a [`BuildSandbox`]
//! at the start of a build; its [`BuildSandbox::sandbox`] runs the build's
//! steps, and a step that a build limit ended reports
//! [`Exit::Limit`](crate::process::Exit::Limit) with the reason.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use super::cgroup::BuildGroup;
use super::{Limits, Sandbox};
use crate::process::{CancelToken, Exit, Output};
use crate::readback::human_size;

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
    fn oom_kills(&self) -> u64 {
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

    /// Runs a step of the build: refused at once when the build was
    /// stopped, its end explained when a build limit caused it.
    pub(super) fn bounded<E>(&self, run: impl FnOnce() -> Result<Output, E>) -> Result<Output, E> {
        if let Some(refused) = self.refused() {
            return Ok(refused);
        }
        let oom_before = self.oom_kills();
        let mut output = run()?;
        self.explain(&mut output, oom_before);
        Ok(output)
    }

    /// Turns a run that a build limit ended into [`Exit::Limit`]: the build
    /// was stopped, or the OOM killer killed one of its processes during
    /// the run (`oom_before` is the count from before it) and the run failed.
    fn explain(&self, output: &mut Output, oom_before: u64) {
        if output.success() {
            return;
        }
        if let Some(reason) = self.stopped() {
            output.exit = Exit::Limit(reason.to_string());
        } else if self.oom_kills() > oom_before {
            output.exit =
                Exit::Limit(format!("the build used more than {} of memory", human_size(self.limits.build_memory)));
        }
    }

    /// A run refused because the build was already stopped.
    fn refused(&self) -> Option<Output> {
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
    /// The job directory, whose own warm runners go with the build.
    work_dir: std::path::PathBuf,
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
        BuildSandbox { sandbox, state, watcher: Some((stop_tx, thread)), work_dir: work_dir.to_path_buf() }
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
        // Runners that showed only this build's directory serve no other.
        if let Some(pool) = self.sandbox.warm_pool() {
            pool.forget(&self.work_dir);
        }
    }
}

/// How deep the disk watcher descends into the job directory. It holds one
/// descriptor per level (the chain from the job directory down), so this
/// bounds the descriptors a scan holds (`MAX_DEPTH + 1`), whatever the
/// build made; a build nesting directories deeper is stopped for it.
const MAX_DEPTH: usize = 64;

/// How many entries one scan looks at. Past it the build is stopped: the
/// entries not looked at cannot be counted, and leaving them out would let
/// a build hide data behind many small files. (At [`INODE_COST`] each, the
/// default budget of 1 GiB is passed at 262,144 entries anyway.)
const MAX_ENTRIES: u64 = 100_000;

/// Measures `dir` every [`DISK_POLL`] until told to stop (the channel
/// closes); stops the build when it holds more than the budget.
fn watch_disk(state: &BuildState, dir: &Path, stop: &mpsc::Receiver<()>) {
    let budget = state.limits.build_disk;
    let bounds = Bounds { bytes: budget, entries: MAX_ENTRIES, depth: MAX_DEPTH };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(DISK_POLL) {
        if let Some(over) = disk_usage(dir, &bounds).over {
            state.stop_for(over.reason(&bounds));
            return;
        }
    }
}

/// Where a scan of the job directory stops.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// The disk budget.
    bytes: u64,
    /// At most this many entries are looked at.
    entries: u64,
    /// Directories nested at most this deep are looked into: at most
    /// `depth + 1` are open at once (the job directory and the chain below).
    depth: usize,
}

/// Which bound a scan passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    Bytes,
    Entries,
    Depth,
}

impl Over {
    /// Why the build is stopped, for the failed step.
    fn reason(self, bounds: &Bounds) -> String {
        match self {
            Over::Bytes => format!("the build used more than {} of disk", human_size(bounds.bytes)),
            Over::Entries => {
                format!("the build made more than {} files and directories in its job directory", bounds.entries)
            }
            Over::Depth => {
                format!("the build nested directories more than {} deep in its job directory", bounds.depth)
            }
        }
    }
}

/// What one scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    /// The space counted (up to the point the scan stopped).
    bytes: u64,
    /// The bound passed, if one was.
    over: Option<Over>,
    /// The most directories the scan held open at once.
    max_open: usize,
}

/// The space the files under `dir` take (allocated blocks, each entry at
/// least [`INODE_COST`]), counted until a bound is passed.
///
/// Depth first, holding open only the directories from `dir` down to the
/// one being read (one descriptor each, at most `bounds.depth + 1`): a build's
/// thousands of directories never become thousands of descriptors in the
/// daemon. Never follows a link: each directory is opened relative to its
/// parent's descriptor with `O_NOFOLLOW`, and entries are `lstat`ed
/// relative to it, so a build that swaps a directory for a link while it
/// is being measured leads the count nowhere else.
fn disk_usage(dir: &Path, bounds: &Bounds) -> Usage {
    let mut usage = Usage { bytes: 0, over: None, max_open: 0 };
    let Ok(root) = Dir::open(None, dir.as_os_str()) else { return usage };
    let mut chain = vec![root];
    usage.max_open = 1;
    let mut entries = 0u64;
    while let Some(top) = chain.last_mut() {
        let Some(name) = top.next_name() else {
            chain.pop();
            continue;
        };
        let Some(stat) = top.lstat(&name) else { continue };
        entries += 1;
        if entries > bounds.entries {
            usage.over = Some(Over::Entries);
            return usage;
        }
        usage.bytes += (stat.st_blocks as u64 * 512).max(INODE_COST);
        if usage.bytes > bounds.bytes {
            usage.over = Some(Over::Bytes);
            return usage;
        }
        if stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
            // The chain holds the job directory and `len - 1` levels below it.
            if chain.len() > bounds.depth {
                usage.over = Some(Over::Depth);
                return usage;
            }
            let parent = chain.last().expect("the chain holds the directory just read");
            if let Ok(child) = Dir::open(Some(parent), std::ffi::OsStr::from_bytes(name.to_bytes())) {
                chain.push(child);
                usage.max_open = usage.max_open.max(chain.len());
            }
        }
    }
    usage
}

/// An open directory being read (one descriptor), closed on drop.
struct Dir(std::ptr::NonNull<libc::DIR>);

impl Dir {
    /// Opens a directory (relative to `parent` when given) without
    /// following a link in its last component.
    fn open(parent: Option<&Dir>, name: &std::ffi::OsStr) -> std::io::Result<Dir> {
        let name = std::ffi::CString::new(name.as_encoded_bytes()).map_err(std::io::Error::other)?;
        let at = parent.map_or(libc::AT_FDCWD, Dir::fd);
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: `name` is a valid C string; the descriptor returned is ours.
        let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is an open directory that nothing else owns; on
        // success the stream owns it (closedir closes it).
        match std::ptr::NonNull::new(unsafe { libc::fdopendir(fd) }) {
            Some(dir) => Ok(Dir(dir)),
            None => {
                let err = std::io::Error::last_os_error();
                // SAFETY: the stream was not made: `fd` is still ours alone.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
                Err(err)
            }
        }
    }

    fn fd(&self) -> std::os::fd::RawFd {
        // SAFETY: the stream is open for as long as `self` lives.
        unsafe { libc::dirfd(self.0.as_ptr()) }
    }

    /// The next entry's name, `.` and `..` left out; `None` at the end (or
    /// on an error reading, which ends this directory's count).
    fn next_name(&mut self) -> Option<std::ffi::CString> {
        loop {
            // SAFETY: the stream is open; the entry returned stays valid
            // until the next readdir on it, and its name is copied first.
            let entry = unsafe { libc::readdir64(self.0.as_ptr()) };
            if entry.is_null() {
                return None;
            }
            // SAFETY: readdir returned an entry whose d_name is NUL-terminated.
            let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
            if name.to_bytes() != b"." && name.to_bytes() != b".." {
                return Some(name.to_owned());
            }
        }
    }

    /// `lstat` of the entry `name` of this directory.
    fn lstat(&self, name: &std::ffi::CStr) -> Option<libc::stat64> {
        let mut stat = std::mem::MaybeUninit::<libc::stat64>::uninit();
        // SAFETY: `name` is a valid C string and `stat` room for the result.
        let rc = unsafe { libc::fstatat64(self.fd(), name.as_ptr(), stat.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
        // SAFETY: fstatat filled `stat` when it returned 0.
        (rc == 0).then(|| unsafe { stat.assume_init() })
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: the stream is open and dropped once.
        unsafe {
            libc::closedir(self.0.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNBOUNDED: Bounds = Bounds { bytes: u64::MAX, entries: u64::MAX, depth: usize::MAX };

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
        let usage = disk_usage(dir.path(), &UNBOUNDED);
        assert!(
            usage.bytes >= data + 13 * INODE_COST && usage.bytes < data + 13 * INODE_COST + (64 << 10),
            "{usage:?}"
        );
        assert_eq!((usage.over, usage.max_open), (None, 3), "the job directory, a and a/b");
        let capped = disk_usage(dir.path(), &Bounds { bytes: 10_000, ..UNBOUNDED });
        assert!(capped.bytes > 10_000 && capped.over == Some(Over::Bytes), "the count stops past the cap: {capped:?}");
        let link = disk_usage(&dir.path().join("usr"), &UNBOUNDED);
        assert_eq!(link, Usage { bytes: 0, over: None, max_open: 0 }, "a link given as the directory is not followed");
    }

    #[test]
    fn five_thousand_folders_side_by_side_hold_two_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..5000 {
            std::fs::create_dir(dir.path().join(format!("d{n}"))).unwrap();
        }
        let usage = disk_usage(dir.path(), &UNBOUNDED);
        assert_eq!((usage.over, usage.max_open), (None, 2), "the job directory and one folder at a time");
        assert!(usage.bytes >= 5000 * INODE_COST, "{usage:?}");
        // Over a budget of 8 MiB (2048 empty folders' worth) with the same two.
        let over = disk_usage(dir.path(), &Bounds { bytes: 8 << 20, entries: MAX_ENTRIES, depth: MAX_DEPTH });
        assert_eq!((over.over, over.max_open), (Some(Over::Bytes), 2));
        assert_eq!(
            Over::Bytes.reason(&Bounds { bytes: 8 << 20, ..UNBOUNDED }),
            "the build used more than 8 MiB of disk"
        );
    }

    #[test]
    fn five_thousand_nested_folders_stop_at_the_depth_bound() {
        let dir = tempfile::tempdir().unwrap();
        // Made one level at a time relative to the last: the whole path is
        // longer than PATH_MAX.
        let mut at = Dir::open(None, dir.path().as_os_str()).unwrap();
        for _ in 0..5000 {
            // SAFETY: a valid directory descriptor and C string.
            assert_eq!(unsafe { libc::mkdirat(at.fd(), c"d".as_ptr(), 0o755) }, 0);
            at = Dir::open(Some(&at), std::ffi::OsStr::new("d")).unwrap();
        }
        drop(at);
        let bounds = Bounds { bytes: u64::MAX, entries: MAX_ENTRIES, depth: MAX_DEPTH };
        let usage = disk_usage(dir.path(), &bounds);
        assert_eq!((usage.over, usage.max_open), (Some(Over::Depth), MAX_DEPTH + 1));
        assert_eq!(usage.bytes, (MAX_DEPTH as u64 + 1) * INODE_COST, "levels 1 to 65 counted, each one empty folder");
        assert_eq!(Over::Depth.reason(&bounds), "the build nested directories more than 64 deep in its job directory");
        // With a deeper bound, the same tree is counted further down.
        let deeper = disk_usage(dir.path(), &Bounds { depth: 200, ..bounds });
        assert_eq!((deeper.over, deeper.max_open, deeper.bytes), (Some(Over::Depth), 201, 201 * INODE_COST));
    }

    #[test]
    fn a_scan_stops_after_its_number_of_entries() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..50 {
            std::fs::write(dir.path().join(format!("f{n}")), "").unwrap();
        }
        let bounds = Bounds { entries: 49, ..UNBOUNDED };
        let usage = disk_usage(dir.path(), &bounds);
        assert_eq!((usage.over, usage.bytes), (Some(Over::Entries), 49 * INODE_COST));
        assert_eq!(disk_usage(dir.path(), &Bounds { entries: 50, ..UNBOUNDED }).over, None);
        assert_eq!(
            Over::Entries.reason(&Bounds { entries: MAX_ENTRIES, ..UNBOUNDED }),
            "the build made more than 100000 files and directories in its job directory"
        );
    }
}
