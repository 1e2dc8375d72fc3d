//! The one place where the engine starts a tool: a process group of its own, a
//! wall-clock timeout that kills the whole group, a cap on captured output, and
//! cancellation. The sandbox wraps the command before it reaches [`run`].

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long to wait between checks of the cancellation flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// How long output is still read after the step's process group is gone.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// A command to run: program, arguments, working directory and environment.
#[derive(Debug, Clone)]
pub struct Cmd {
    /// The program, as a path.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The working directory.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment (plus `env`) instead of the daemon's.
    pub clear_env: bool,
}

impl Cmd {
    /// A command for `program` with no arguments.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), args: Vec::new(), cwd: None, env: Vec::new(), clear_env: false }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line as a person would type it (for logs).
    pub fn display(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            line.push(' ');
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"') {
                line.push_str(&format!("{arg:?}"));
            } else {
                line.push_str(arg);
            }
        }
        line
    }
}

/// Limits applied to one run.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Wall-clock limit; the whole process group is killed when it passes.
    pub timeout: Duration,
    /// Bytes of combined stdout/stderr kept; the rest is counted and dropped.
    pub max_output: usize,
    /// setrlimit calls made in the child before it executes.
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    /// Cgroups' join files (`tasks` on v1: the child is single-threaded
    /// between fork and exec) the child writes `0` into, in order, before it
    /// executes (its build's, its step's).
    pub cgroup_procs: Vec<PathBuf>,
    /// A Landlock ruleset (file descriptor) the child restricts itself with
    /// before it executes.
    pub landlock_ruleset: Option<std::os::fd::RawFd>,
    /// A second token that ends the run like [`CancelToken::cancel`]: the
    /// build's, cancelled when the build passes one of its limits.
    pub stop: Option<CancelToken>,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_output: 1 << 20,
            rlimits: Vec::new(),
            cgroup_procs: Vec::new(),
            landlock_ruleset: None,
            stop: None,
        }
    }
}

/// A shared flag that asks running steps to stop.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every run that watches this token to kill its process group.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Exit {
    /// The process exited with this code.
    Code(i32),
    /// The process was killed by this signal (not by us).
    Signal(i32),
    /// The wall-clock limit passed; the group was killed.
    TimedOut,
    /// The run was cancelled; the group was killed.
    Cancelled,
    /// The build the run belongs to passed one of its limits (memory, disk);
    /// the run's processes were killed. The text says which, for people.
    Limit(String),
}

/// The outcome of [`run`].
#[derive(Debug, Clone)]
pub struct Output {
    /// How it ended.
    pub exit: Exit,
    /// Combined stdout and stderr, lossily decoded, cut at the output cap.
    pub text: String,
    /// Whether output was dropped because of the cap.
    pub truncated: bool,
    /// Wall-clock time.
    pub duration: Duration,
}

impl Output {
    /// Whether the process exited with status 0.
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }
}

/// Failure to start a process at all (as opposed to a process that failed).
#[derive(Debug, thiserror::Error)]
#[error("could not start `{program}`: {source}")]
pub struct SpawnError {
    /// The program that did not start.
    pub program: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Runs `cmd` to completion under `limits`, killing its whole process group on
/// timeout or cancellation.
pub fn run(cmd: &Cmd, limits: &RunLimits, cancel: &CancelToken) -> Result<Output, SpawnError> {
    let spawn_error = |source| SpawnError { program: cmd.program.display().to_string(), source };
    let (reader, writer) = std::io::pipe().map_err(spawn_error)?;
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(writer.try_clone().map_err(spawn_error)?)
        .stderr(writer)
        // A group of its own, so that a timeout reaches grandchildren too.
        .process_group(0);
    if cmd.clear_env {
        command.env_clear();
    }
    command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    let cgroup_procs = limits
        .cgroup_procs
        .iter()
        .map(|path| std::ffi::CString::new(path.as_os_str().as_encoded_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| spawn_error(std::io::Error::other(e)))?;
    let rlimits = limits.rlimits.clone();
    let ruleset = limits.landlock_ruleset;
    // Without a hook std can spawn (posix_spawn) instead of forking: much
    // cheaper from a large, many-threaded process such as the daemon.
    if !rlimits.is_empty() || !cgroup_procs.is_empty() || ruleset.is_some() {
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls on memory prepared before the fork.
        unsafe {
            command.pre_exec(move || child_setup(&rlimits, &cgroup_procs, ruleset));
        }
    }
    let started = Instant::now();
    let mut child = command.spawn().map_err(spawn_error)?;
    // The parent's copies of the pipe's write end went with `command`.
    drop(command);
    let pgid = child.id() as libc::pid_t;
    supervise(pgid, reader, move || child.wait(), limits, cancel, started).map_err(spawn_error)
}

/// Watches a started run: collects the output of `reader` under the cap,
/// waits with `wait` (on another thread) for its end, and kills the process
/// group `pgid` on timeout or cancellation, and after any end. An error of
/// `wait` comes back as it is (the group is killed all the same).
pub(crate) fn supervise(
    pgid: libc::pid_t,
    reader: std::io::PipeReader,
    wait: impl FnOnce() -> std::io::Result<std::process::ExitStatus> + Send + 'static,
    limits: &RunLimits,
    cancel: &CancelToken,
    started: Instant,
) -> std::io::Result<Output> {
    let max_output = limits.max_output;
    let collected = Arc::new(Mutex::new(Collected::default()));
    let (collected_tx, collected_rx) = mpsc::channel();
    let sink = collected.clone();
    std::thread::spawn(move || {
        collect(reader, max_output, &sink);
        let _ = collected_tx.send(());
    });
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = wait();
        let _ = done_tx.send(());
        status
    });

    let deadline = started + limits.timeout;
    let mut killed = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            killed = Some(Exit::TimedOut);
            break;
        }
        match done_rx.recv_timeout((deadline - now).min(CANCEL_POLL)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout)
                if cancel.is_cancelled() || limits.stop.as_ref().is_some_and(CancelToken::is_cancelled) =>
            {
                killed = Some(Exit::Cancelled);
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    // Kill the group even after a normal exit: a daemonised grandchild must not
    // outlive its step, nor hold the output pipe open.
    // SAFETY: killpg has no memory-safety preconditions.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    let status = waiter.join().expect("waiter thread panicked")?;
    // A process that escaped the group (a new session) may hold the pipe
    // open for ever: its output is not waited for past a short grace.
    let abandoned = collected_rx.recv_timeout(OUTPUT_GRACE).is_err();
    let Collected { bytes, truncated } = std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()));
    let exit = killed.unwrap_or_else(|| match status.code() {
        Some(code) => Exit::Code(code),
        None => Exit::Signal(status.signal().unwrap_or(0)),
    });
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if truncated {
        text.push_str(&format!("\n[output truncated after {max_output} bytes]\n"));
    }
    if abandoned {
        text.push_str("\n[a process the step left behind kept its output open; it was not waited for]\n");
    }
    Ok(Output { exit, text, truncated, duration: started.elapsed() })
}

/// In the child, before exec: join the build's and the step's cgroups (so
/// that every descendant is counted and can be killed), then lower the rlimits.
fn child_setup(
    rlimits: &[(libc::__rlimit_resource_t, u64)],
    cgroup_procs: &[std::ffi::CString],
    landlock_ruleset: Option<std::os::fd::RawFd>,
) -> std::io::Result<()> {
    for path in cgroup_procs {
        // SAFETY: `path` is a valid C string; the buffer is a static byte string.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
        }
    }
    set_rlimits(rlimits)?;
    if let Some(fd) = landlock_ruleset {
        // SAFETY: plain system calls on a descriptor opened before the fork.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Lowers the calling process's rlimits (soft and hard). Only system calls:
/// safe between fork and exec.
pub fn set_rlimits(rlimits: &[(libc::__rlimit_resource_t, u64)]) -> std::io::Result<()> {
    for &(resource, value) in rlimits {
        let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
        // SAFETY: `limit` is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Output read so far.
#[derive(Debug, Default)]
struct Collected {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Reads the pipe to its end into `into`, keeping at most `max` bytes.
fn collect(mut reader: std::io::PipeReader, max: usize, into: &Mutex<Collected>) {
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut kept = into.lock().unwrap_or_else(|e| e.into_inner());
                let room = max.saturating_sub(kept.bytes.len());
                if n > room {
                    kept.truncated = true;
                }
                kept.bytes.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Cmd {
        Cmd::new("/bin/sh").arg("-c").arg(script)
    }

    #[test]
    fn captures_stdout_and_stderr_with_the_exit_code() {
        let out = run(&sh("echo out; echo err >&2; exit 3"), &RunLimits::default(), &CancelToken::new()).unwrap();
        assert_eq!(out.exit, Exit::Code(3));
        assert!(out.text.contains("out\n") && out.text.contains("err\n"), "{}", out.text);
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let limits = RunLimits { timeout: Duration::from_millis(300), ..RunLimits::default() };
        // The grandchild keeps the pipe open: only a group kill ends the run.
        let out = run(&sh("sleep 30 & sleep 30; echo never"), &limits, &CancelToken::new()).unwrap();
        assert_eq!(out.exit, Exit::TimedOut);
        assert!(out.duration < Duration::from_secs(5));
        assert!(!out.text.contains("never"));
    }

    #[test]
    fn output_is_capped_with_a_marker() {
        let limits = RunLimits { max_output: 1000, ..RunLimits::default() };
        let out = run(&sh("head -c 100000 /dev/zero | tr '\\0' x"), &limits, &CancelToken::new()).unwrap();
        assert!(out.truncated);
        assert!(out.text.starts_with(&"x".repeat(1000)));
        assert!(out.text.ends_with("[output truncated after 1000 bytes]\n"));
    }

    #[test]
    fn cancellation_kills_the_run() {
        let cancel = CancelToken::new();
        let flag = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.cancel();
        });
        let out = run(&sh("sleep 30"), &RunLimits::default(), &cancel).unwrap();
        assert_eq!(out.exit, Exit::Cancelled);
    }

    #[test]
    fn a_process_that_escapes_the_group_does_not_hold_the_run() {
        let started = Instant::now();
        let out =
            run(&sh("setsid sleep 3 & sleep 0.3; echo started; exit 4"), &RunLimits::default(), &CancelToken::new())
                .unwrap();
        assert_eq!(out.exit, Exit::Code(4));
        assert!(started.elapsed() < Duration::from_secs(10), "waited for the escaped process");
        assert!(out.text.starts_with("started\n"), "{}", out.text);
        assert!(out.text.contains("kept its output open"), "{}", out.text);
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run(&Cmd::new("/nonexistent/tool"), &RunLimits::default(), &CancelToken::new()).unwrap_err();
        assert!(err.to_string().starts_with("could not start `/nonexistent/tool`"));
    }
}
