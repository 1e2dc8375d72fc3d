//! A test run on a warm runner ([`crate::warm`]), under the same limits as
//! a cold step: the runner's sandbox is made here (bubblewrap and the
//! Landlock helper, as for any step), and each run gets the step's own
//! pids cgroup, its build's memory group, the step's rlimits and wall clock.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::{allowed_env, cgroup, ChildSetup, Mounts, Sandbox};
use crate::process::{CancelToken, Cmd, Exit, Output};
use crate::warm::{Ended, Request, Runner, RunnerKey, ViewMount, WarmError, WarmPool, HASH_SEED, RUNNER_PY};

/// How long a runner may take to import pytest and say it is ready.
const STARTUP: Duration = Duration::from_secs(30);

/// How long a run's output is still read after the runner said it ended.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Where a warm run's stdout and stderr go, in its run directory: a FIFO.
pub const OUTPUT_FILE: &str = ".wheelwright-output";

/// An empty folder of a runner's sandbox, where each child mounts the root
/// of its own view (in a mount namespace of its own) before it moves into it.
pub const VIEW_ROOT: &str = "/run/wheelwright/view";

/// How much of what a failed warm run printed (why its child could not
/// isolate itself, or its tests' output before its runner failed) goes
/// into the error, and so the log of the cold run that follows.
const FAILED_RUN_TEXT: usize = 2 << 10;

/// `text` cut to at most `max` bytes (at a character's start), marked so.
fn capped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!("{}… [cut after {max} bytes]", &text[..text.floor_char_boundary(max)])
}

/// One pytest run on a warm runner.
#[derive(Debug)]
pub struct WarmRun<'a> {
    /// The python of the environment holding pytest.
    pub python: &'a Path,
    /// What the runner's sandbox shows read-only (the interpreter's prefix,
    /// the environment): runners are shared between runs that agree.
    pub runner_read_only: Vec<PathBuf>,
    /// The folder the runner's sandbox shows writable, holding `dir`
    /// (the builds' work directories: a runner serves many builds).
    pub visible: &'a Path,
    /// The run's fresh directory, made by the host: the child's working
    /// directory and the only place it may write.
    pub dir: &'a Path,
    /// What the child may read besides the runner's read-only paths (the
    /// harness of the ABI model).
    pub read_only: Vec<PathBuf>,
    /// The runner's copy of the ABI harness, which it imports before it
    /// forks; inside one of `runner_read_only`.
    pub runner_harness: Option<PathBuf>,
    /// Whether this run uses the harness (its own copy on `PYTHONPATH`).
    pub harness: bool,
    /// pytest's arguments, as after `python -m pytest`.
    pub args: &'a [String],
    /// The variables a cold run would set (allow-listed as for a cold one).
    pub env: &'a [(String, String)],
}

impl Sandbox {
    /// This sandbox with test runs on warm runners kept in `pool`.
    pub fn with_warm(mut self, pool: Arc<WarmPool>) -> Sandbox {
        self.warm = Some(pool);
        self
    }

    /// This sandbox with every test run cold.
    pub fn without_warm(mut self) -> Sandbox {
        self.warm = None;
        self
    }

    /// Lets runners serve every build whose work directory lies in `root`
    /// (a folder of work directories and nothing else: a runner's sandbox
    /// shows it whole, and each run's Landlock domain narrows that to the
    /// run's own directory). Without it a runner serves one build only.
    pub fn with_warm_root(mut self, root: impl Into<PathBuf>) -> Sandbox {
        self.warm_root = Some(root.into());
        self
    }

    /// What a runner serving the build in `work_dir` shows writable: the
    /// warm root when it holds `work_dir`, else `work_dir` itself.
    pub fn warm_view<'p>(&'p self, work_dir: &'p Path) -> &'p Path {
        match &self.warm_root {
            Some(root) if work_dir.starts_with(root) && work_dir != root => root,
            _ => work_dir,
        }
    }

    /// The pool of warm runners, when test runs go warm.
    pub fn warm_pool(&self) -> Option<&Arc<WarmPool>> {
        self.warm.as_ref()
    }

    /// Runs pytest on a warm runner (see [`crate::warm`]); the output is
    /// what the child wrote to its stdout and stderr, cut at the step's
    /// output cap. `Err`: no warm run happened, run it cold.
    pub fn run_warm(&self, run: &WarmRun<'_>, cancel: &CancelToken) -> Result<Output, WarmError> {
        let Some(pool) = &self.warm else {
            return Err(WarmError::Unavailable("warm runs are off for this sandbox".into()));
        };
        match &self.build {
            Some(build) => build.bounded(|| self.run_warm_step(pool, run, cancel)),
            None => self.run_warm_step(pool, run, cancel),
        }
    }

    fn run_warm_step(&self, pool: &WarmPool, run: &WarmRun<'_>, cancel: &CancelToken) -> Result<Output, WarmError> {
        if !self.has_helper() {
            return Err(WarmError::Unavailable("no Landlock helper".into()));
        }
        if let Some(harness) = run.runner_harness.as_deref() {
            if !run.runner_read_only.iter().any(|p| harness.starts_with(p)) {
                return Err(WarmError::Unavailable(format!("{} is not shown read-only", harness.display())));
            }
        }
        if !run.dir.starts_with(run.visible) {
            return Err(WarmError::Unavailable(format!("{} is outside {}", run.dir.display(), run.visible.display())));
        }
        let key = RunnerKey {
            python: run.python.to_path_buf(),
            read_only: run.runner_read_only.clone(),
            writable: run.visible.to_path_buf(),
            harness: run.runner_harness.clone(),
        };
        let mut runner = match pool.take(&key) {
            Some(runner) => runner,
            None => self.start_runner(&key)?,
        };
        let build_group = self.build.as_ref().and_then(|b| b.memory.as_ref());
        let group = match &self.cgroups {
            Some(h) => cgroup::StepGroup::create(h, self.limits.processes, build_group).ok(),
            None => None,
        };
        let mut rlimits = self.limits.rlimits();
        if group.is_some() {
            rlimits.retain(|(r, _)| *r != libc::RLIMIT_NPROC);
        }
        let mut cgroups: Vec<PathBuf> = build_group
            .filter(|b| group.is_none() || !b.holds_step_groups())
            .map(|b| b.join_file())
            .into_iter()
            .collect();
        cgroups.extend(group.as_ref().map(|g| g.join_file()));

        // A FIFO made by the host before the child exists, opened for
        // reading here first: the child's stdout and stderr are a pipe, as
        // in a cold run, and whatever the child later does to the name, the
        // host reads the pipe it holds, and no more than the cap.
        let output_path = run.dir.join(OUTPUT_FILE);
        let output = Collector::start(&output_path, self.limits.max_output)
            .map_err(|e| WarmError::Unavailable(format!("{}: {e}", output_path.display())))?;
        let show = |p: &Path| p.display().to_string();
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
        env.insert("HOME".into(), "/tmp".into());
        env.insert("TMPDIR".into(), "/tmp".into());
        env.insert("LANG".into(), "C.UTF-8".into());
        let cmd = Cmd {
            program: run.python.to_path_buf(),
            args: Vec::new(),
            cwd: None,
            env: run.env.to_vec(),
            clear_env: false,
        };
        env.extend(allowed_env(&cmd).cloned());
        env.insert("PYTHONHASHSEED".into(), HASH_SEED.into());
        let read_only = run
            .runner_read_only
            .iter()
            .chain(&run.read_only)
            .map(|p| show(p))
            .chain(super::CONFINED_READ_ONLY.iter().map(|p| p.to_string()))
            .collect();
        let writable = std::iter::once(show(run.dir))
            .chain(
                super::CONFINED_DEVICES
                    .iter()
                    .chain(&["/dev/tty", "/dev/pts", "/tmp", "/dev/shm"])
                    .map(|d| d.to_string()),
            )
            .collect();
        let request = Request {
            dir: show(run.dir),
            output: show(&output_path),
            args: run.args.to_vec(),
            env,
            read_only,
            writable,
            cgroups: cgroups.iter().map(|p| show(p)).collect(),
            rlimits: rlimits.iter().map(|(r, v)| (*r, *v)).collect(),
            view: self.child_view(run),
            harness: run.harness,
            seccomp: super::seccomp::step_program_hex(),
        };
        let started = Instant::now();
        let stop = self.build.as_ref().map(|b| &b.stop);
        let ended = runner.run(&request, self.limits.timeout(), cancel, stop);
        let duration = started.elapsed();
        let mut note = String::new();
        if let Some(group) = &group {
            if group.hit_pids_limit() {
                note = format!("\n[wheelwright: the step reached its limit of {} processes]\n", self.limits.processes);
            }
            group.kill_all();
        }
        let ended = match ended {
            Ok(ended) => ended,
            Err(e) => {
                // What the run printed: why its child could not isolate
                // itself, or, after a protocol error, its tests' output
                // before the runner failed. Capped: the cold run's own
                // output follows it in the log.
                let (text, _) = output.finish();
                let _ = std::fs::remove_file(&output_path);
                return Err(match (e, text.trim()) {
                    (e, "") => e,
                    (WarmError::Unavailable(why), said) => {
                        WarmError::Unavailable(format!("{why}: {}", capped(said, FAILED_RUN_TEXT)))
                    }
                    (WarmError::Protocol(why), said) => WarmError::Protocol(format!(
                        "{why}; the run had printed: {}\n{}",
                        capped(said, FAILED_RUN_TEXT),
                        note.trim()
                    )),
                });
            }
        };
        let exit = match ended {
            Ended::Status(status) if libc::WIFEXITED(status) => Exit::Code(libc::WEXITSTATUS(status)),
            Ended::Status(status) if libc::WIFSIGNALED(status) => Exit::Signal(libc::WTERMSIG(status)),
            Ended::Status(status) => return Err(WarmError::Protocol(format!("a waitpid status of {status:#x}"))),
            Ended::TimedOut => Exit::TimedOut,
            Ended::Cancelled => Exit::Cancelled,
        };
        // Kept only after a clean exit, and only where a cgroup killed
        // whatever the child left behind: otherwise the runner is in doubt.
        if matches!(exit, Exit::Code(_)) && group.is_some() {
            pool.give_back(key, runner);
        }
        if let Some(group) = group {
            // Removing a v1 cgroup can take a few milliseconds; nothing waits.
            std::thread::spawn(move || drop(group));
        }
        let (mut text, truncated) = output.finish();
        text.push_str(&note);
        Ok(Output { exit, text, truncated, duration })
    }

    /// What a child of a runner sees: what a cold run's sandbox shows
    /// (`wrap_program`), made by the child in a mount namespace of its own
    /// from the runner's: the system's folders read-only, `/proc`, a `/dev`
    /// of the host's devices bound read-only, fresh `/tmp` and `/dev/shm`,
    /// the runner's read-only paths and the run's, and its own directory;
    /// nothing else of the folder of work directories, no cgroup folder.
    /// Parents before children; paths the runs may write are resolved
    /// without following links.
    fn child_view(&self, run: &WarmRun<'_>) -> Vec<ViewMount> {
        let show = |p: &Path| p.display().to_string();
        let tmpfs = |path: &str, size: u64| ViewMount::Tmpfs { path: path.into(), size, mode: 0o755 };
        let bind = |path: &Path, writable: bool| ViewMount::Bind {
            path: show(path),
            writable,
            nofollow: path.starts_with(run.visible),
        };
        let mut view = vec![bind(Path::new("/usr"), false)];
        for dir in ["/bin", "/sbin", "/lib", "/lib64", "/lib32"] {
            match std::fs::read_link(dir) {
                Ok(target) => view.push(ViewMount::Symlink { path: dir.into(), target: show(&target) }),
                Err(_) if Path::new(dir).is_dir() => view.push(bind(Path::new(dir), false)),
                Err(_) => {}
            }
        }
        if Path::new("/etc/ld.so.cache").exists() {
            view.push(bind(Path::new("/etc/ld.so.cache"), false));
        }
        view.push(bind(Path::new("/proc"), true));
        view.push(tmpfs("/dev", super::caps::DEV_SIZE));
        view.extend(super::caps::DEVICES.iter().map(|d| ViewMount::Device { path: d.to_string() }));
        view.push(ViewMount::Devpts { path: "/dev/pts".into(), options: super::caps::devpts_options() });
        view.extend(
            super::caps::DEV_LINKS
                .iter()
                .map(|(path, target)| ViewMount::Symlink { path: path.to_string(), target: target.to_string() }),
        );
        view.push(tmpfs("/dev/shm", self.limits.tmp_size));
        view.push(tmpfs("/tmp", self.limits.tmp_size));
        let mut binds: Vec<ViewMount> =
            run.runner_read_only.iter().chain(&run.read_only).map(|p| bind(p, false)).collect();
        binds.push(bind(run.dir, true));
        view.extend(binds);
        // A path bound twice (the interpreter's prefix is /usr) once.
        let mut seen = std::collections::HashSet::new();
        view.retain(|m| seen.insert(m.path().to_string()));
        view.sort_by_key(|m| Path::new(m.path()).components().count());
        view
    }

    /// A new runner for `key`, in a sandbox that shows the builds' folder
    /// writable (each run's child narrows that to its own directory) and
    /// the cgroup folders its runs' children join.
    fn start_runner(&self, key: &RunnerKey) -> Result<Runner, WarmError> {
        let mut mounts = Mounts::job(&key.writable);
        for path in &key.read_only {
            mounts = mounts.read_only(path);
        }
        for hierarchy in self.cgroups.iter().chain(&self.memory) {
            mounts.writable.push(hierarchy.base().to_path_buf());
        }
        // The runner's harness copy, if any, is its one argument.
        let harness = key.harness.iter().map(|p| p.display().to_string());
        let cmd = Cmd::new(&key.python)
            .args(["-X", "faulthandler", "-X", "dev", "-B", "-c", RUNNER_PY])
            .args(harness)
            // Not the folder of work directories: nothing is looked up there.
            .cwd("/")
            .env("PYTHONNOUSERSITE", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONHASHSEED", HASH_SEED);
        let setup = ChildSetup { runner_views: true, ..ChildSetup::default() };
        let wrapped = self.wrap_program(Some(&cmd), &mounts, &setup);
        Runner::start(&wrapped, STARTUP)
    }
}

/// Reads a run's output from the FIFO the child writes, on a thread of its
/// own, keeping the first `cap` bytes.
struct Collector {
    kept: Arc<Mutex<(Vec<u8>, bool)>>,
    done: mpsc::Receiver<()>,
    /// The host's own write end, held until the run has ended: without a
    /// writer a read would see the end before the child opened the FIFO.
    writer: Option<std::fs::File>,
}

impl Collector {
    /// Makes the FIFO at `path` (which must not exist) and starts reading it.
    fn start(path: &Path, cap: usize) -> std::io::Result<Collector> {
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        // SAFETY: `name` is a valid C string.
        if unsafe { libc::mkfifo(name.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Non-blocking, so the open does not wait for a writer; then
        // blocking, so the reads wait for the child's output.
        let mut fifo =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path)?;
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
        unsafe {
            let fd = fifo.as_raw_fd();
            libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) & !libc::O_NONBLOCK);
        }
        let writer = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
        let kept = Arc::new(Mutex::new((Vec::new(), false)));
        let (finished, done) = mpsc::channel();
        let into = kept.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // Until every writer is gone (the child and all it started).
            while let Ok(n @ 1..) = fifo.read(&mut buf) {
                let mut kept = into.lock().unwrap_or_else(|e| e.into_inner());
                let room = cap.saturating_sub(kept.0.len());
                kept.0.extend_from_slice(&buf[..n.min(room)]);
                kept.1 |= n > room;
            }
            let _ = finished.send(());
        });
        Ok(Collector { kept, done, writer: Some(writer) })
    }

    /// The output (lossily decoded) and whether some was dropped; waits a
    /// little for the last writer to go (the run's processes are dead or
    /// being killed by now).
    fn finish(mut self) -> (String, bool) {
        self.writer.take();
        let _ = self.done.recv_timeout(OUTPUT_GRACE);
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        (String::from_utf8_lossy(&kept.0).into_owned(), kept.1)
    }
}

#[cfg(test)]
mod tests {
    use super::capped;

    #[test]
    fn what_a_child_said_is_cut_at_a_character_and_marked() {
        assert_eq!(capped("short", 10), "short");
        let long = "é".repeat(10); // 20 bytes
        assert_eq!(capped(&long, 5), "éé… [cut after 5 bytes]");
    }
}
