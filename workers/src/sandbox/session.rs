//! One sandbox for many steps: a bubblewrap session whose Landlock helper
//! serves run requests instead of executing one tool, so that a build's
//! assembler and linker runs share one namespace setup instead of paying for
//! a bubblewrap start each (the sandbox's largest cost in throughput).
//!
//! Inside, every request is run through [`process::run`] as before: a
//! process group of its own, the step's rlimits, output cap and wall-clock
//! timeout. Outside, a step waits for its answer, watching its cancel token;
//! cancelling (or a server that stops answering) kills the whole session.
//!
//! Protocol: one JSON [`Request`] per line on the helper's stdin, one JSON
//! [`Response`] per line on its stdout, matched by `id`; requests run
//! concurrently. The server ends when its stdin closes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::build::BuildState;
use super::zygote::{self, Zygote};
use super::{allowed_env, Limits, Mounts};
use crate::process::{self, CancelToken, Cmd, Exit, Output, RunLimits, SpawnError};

/// How often a waiting step looks at its cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// How long past its own timeout a step waits for the server before the
/// session is given up as stuck.
const SERVER_GRACE: Duration = Duration::from_secs(10);

/// Bytes of the session's own stderr kept to explain an unexpected end.
const STDERR_KEPT: usize = 4096;

/// One tool run, as sent to the server.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// Matches the response.
    pub id: u64,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory.
    pub cwd: Option<PathBuf>,
    /// Variables added to the session's environment (already allow-listed).
    pub env: Vec<(String, String)>,
    /// Wall-clock limit, milliseconds.
    pub timeout_ms: u64,
    /// Output cap, bytes.
    pub max_output: usize,
    /// rlimits for the tool.
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
}

/// What the server answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The run, or why it could not start.
    pub result: Result<Reply, String>,
}

/// A finished run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    /// How it ended.
    pub exit: Exit,
    /// Its output.
    pub text: String,
    /// Whether output was dropped.
    pub truncated: bool,
    /// Wall-clock time, milliseconds.
    pub duration_ms: u64,
    /// Whether a warm linker ([`super::zygote`]) ran it.
    #[serde(default)]
    pub zygote: bool,
}

type Pending = Arc<Mutex<HashMap<u64, mpsc::Sender<Result<Reply, String>>>>>;

/// A running session; killed (with everything in it) when dropped.
#[derive(Debug)]
pub struct Session {
    mounts: Mounts,
    limits: Limits,
    /// The build whose limits bound the session (its server is in the
    /// build's memory group).
    build: Option<Arc<BuildState>>,
    pgid: libc::pid_t,
    child: Mutex<Option<Child>>,
    input: Mutex<Option<ChildStdin>>,
    pending: Pending,
    next_id: AtomicU64,
    ended: Arc<AtomicBool>,
    stderr: Arc<Mutex<Vec<u8>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Runs served by a warm linker.
    zygote_runs: AtomicU64,
}

impl Session {
    /// Starts `wrapped` (bubblewrap running the helper in serve mode);
    /// `mounts` is what it was given to see; `build` the build it serves.
    pub(super) fn start(
        wrapped: &Cmd,
        mounts: Mounts,
        limits: Limits,
        build: Option<Arc<BuildState>>,
    ) -> Result<Session, SpawnError> {
        let spawn_error = |source| SpawnError { program: wrapped.program.display().to_string(), source };
        // No pre-exec hook (so std can use posix_spawn rather than fork the
        // whole daemon): the server is ours, and it sets the rlimits on
        // every tool it starts.
        let mut child = Command::new(&wrapped.program)
            .args(&wrapped.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(spawn_error)?;
        let pgid = child.id() as libc::pid_t;
        let input = child.stdin.take();
        let output = child.stdout.take().expect("stdout was piped");
        let errors = child.stderr.take().expect("stderr was piped");

        let pending: Pending = Arc::default();
        let ended = Arc::new(AtomicBool::new(false));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = stderr.clone();
        let stderr_thread = std::thread::spawn(move || keep_tail(errors, &kept));
        let (waiting, gone) = (pending.clone(), ended.clone());
        let reader_thread = std::thread::spawn(move || dispatch(output, &waiting, &gone));
        Ok(Session {
            mounts,
            limits,
            build,
            pgid,
            child: Mutex::new(Some(child)),
            input: Mutex::new(input),
            pending,
            next_id: AtomicU64::new(1),
            ended,
            stderr,
            threads: vec![reader_thread, stderr_thread],
            zygote_runs: AtomicU64::new(0),
        })
    }

    /// Whether a step with `mounts` running `cmd` may run in this session:
    /// it can write exactly where it could in a sandbox of its own, finds
    /// what it reads (read-only where it would be read-only), and needs
    /// neither a cgroup nor the network. It may see more read-only: the
    /// session shows the union of what the build's tool runs read.
    pub fn covers(&self, cmd: &Cmd, mounts: &Mounts) -> bool {
        let under = |path: &Path, roots: &[PathBuf]| roots.iter().any(|r| path.starts_with(r));
        let visible: Vec<PathBuf> = self.mounts.writable.iter().chain(&self.mounts.read_only).cloned().collect();
        // The deepest mount holding a path decides (bubblewrap binds parents
        // before children).
        let read_only_here = |path: &Path| {
            let writable = self.mounts.writable.iter().map(|m| (m, true));
            let deepest = writable
                .chain(self.mounts.read_only.iter().map(|m| (m, false)))
                .filter(|(m, _)| path.starts_with(m))
                .max_by_key(|(m, _)| m.components().count());
            matches!(deepest, Some((_, false)))
        };
        let program_dir = cmd.program.parent().unwrap_or(Path::new("/"));
        !mounts.runs_project_code
            && !self.mounts.runs_project_code
            && mounts.network.is_empty()
            && self.mounts.network.is_empty()
            && mounts.writable.iter().all(|p| under(p, &self.mounts.writable))
            && self.mounts.writable.iter().all(|p| under(p, &mounts.writable))
            && mounts.read_only.iter().all(|p| read_only_here(p))
            && cmd.program.is_absolute()
            && (program_dir.starts_with("/usr") || under(program_dir, &visible))
    }

    /// Whether the session still serves (it ends when cancelled, or when
    /// its server stops).
    pub fn is_alive(&self) -> bool {
        !self.ended.load(Ordering::SeqCst)
    }

    /// How many of the session's runs a warm linker ([`super::zygote`]) served.
    pub fn zygote_runs(&self) -> u64 {
        self.zygote_runs.load(Ordering::Relaxed)
    }

    /// Runs `cmd` in the session under the session's limits (and its build's).
    pub fn run(&self, cmd: &Cmd, cancel: &CancelToken) -> Result<Output, SpawnError> {
        match &self.build {
            Some(build) => build.bounded(|| self.run_request(cmd, cancel)),
            None => self.run_request(cmd, cancel),
        }
    }

    fn run_request(&self, cmd: &Cmd, cancel: &CancelToken) -> Result<Output, SpawnError> {
        let spawn_error = |message: String| SpawnError {
            program: cmd.program.display().to_string(),
            source: std::io::Error::other(message),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Request {
            id,
            program: cmd.program.clone(),
            args: cmd.args.clone(),
            cwd: cmd.cwd.clone(),
            env: allowed_env(cmd).cloned().collect(),
            timeout_ms: self.limits.timeout().as_millis() as u64,
            max_output: self.limits.max_output,
            rlimits: self.limits.rlimits(),
        };
        let (reply_tx, reply_rx) = mpsc::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, reply_tx);
        let started = Instant::now();
        let sent = self.send(&request);
        if sent.is_err() || self.ended.load(Ordering::SeqCst) {
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
        let deadline = started + self.limits.timeout() + SERVER_GRACE;
        let ended_by_us =
            |exit: Exit| Output { exit, text: String::new(), truncated: false, duration: started.elapsed() };
        let stopped = || self.build.as_ref().is_some_and(|b| b.stop.is_cancelled());
        loop {
            if cancel.is_cancelled() || stopped() {
                // A build limit's reason replaces this (see BuildState::explain).
                self.kill();
                return Ok(ended_by_us(Exit::Cancelled));
            }
            match reply_rx.recv_timeout(CANCEL_POLL) {
                Ok(Ok(reply)) => {
                    if reply.zygote {
                        self.zygote_runs.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(Output {
                        exit: reply.exit,
                        text: reply.text,
                        truncated: reply.truncated,
                        duration: Duration::from_millis(reply.duration_ms),
                    });
                }
                Ok(Err(message)) => return Err(spawn_error(message)),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                    self.kill();
                    return Ok(ended_by_us(Exit::TimedOut));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) if cancel.is_cancelled() => {
                    return Ok(ended_by_us(Exit::Cancelled))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let stderr = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
                    let why = String::from_utf8_lossy(&stderr).trim().to_string();
                    let why = if why.is_empty() { "no message".to_string() } else { why };
                    return Err(spawn_error(format!("the sandbox session ended unexpectedly ({why})")));
                }
            }
        }
    }

    fn send(&self, request: &Request) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut input = self.input.lock().unwrap_or_else(|e| e.into_inner());
        let pipe = input.as_mut().ok_or_else(|| std::io::Error::other("the session is closed"))?;
        pipe.write_all(&line)?;
        pipe.flush()
    }

    /// Kills everything in the session; waiting steps see it end.
    pub fn kill(&self) {
        self.ended.store(true, Ordering::SeqCst);
        // SAFETY: killpg has no memory-safety preconditions; the group is
        // the session's own (bubblewrap's children die with it).
        unsafe {
            libc::killpg(self.pgid, libc::SIGKILL);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.input.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.kill();
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.wait();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Hands each response line to the step waiting for it; at the end of the
/// output, drops every waiting step's channel so that it sees the end.
fn dispatch(output: impl Read, pending: &Pending, ended: &AtomicBool) {
    for line in BufReader::new(output).lines() {
        let Ok(line) = line else { break };
        let Ok(response) = serde_json::from_str::<Response>(&line) else { break };
        let waiting = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&response.id);
        if let Some(waiting) = waiting {
            let _ = waiting.send(response.result);
        }
    }
    ended.store(true, Ordering::SeqCst);
    pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Keeps the last bytes of the session's stderr.
fn keep_tail(mut errors: impl Read, kept: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = errors.read(&mut buf) {
        let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.extend_from_slice(&buf[..n]);
        let excess = kept.len().saturating_sub(STDERR_KEPT);
        kept.drain(..excess);
    }
}

/// The server, inside the sandbox (after Landlock): runs each request on a
/// thread of its own and answers when it ends; starts the warm linker of
/// `warm_lld` (see [`super::zygote`]) at once. Returns the exit status.
pub fn serve(input: impl BufRead, output: impl Write + Send + 'static, warm_lld: Option<PathBuf>) -> i32 {
    // Not dumpable: a tool the server started cannot ptrace it, nor read
    // its memory through /proc, to forge another step's answer.
    // SAFETY: prctl(PR_SET_DUMPABLE) takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // Each tool enters a Landlock domain of its own, nested in the server's:
    // it can neither signal nor trace the server or another step's tools.
    let scope = super::landlock::scope_ruleset();
    // Links run as forks of a warm lld where the session shows the shim and
    // each fork can be scoped as a cold tool is.
    let shim = Path::new(super::zygote::SHIM_PATH);
    let warm = Arc::new(WarmLinkers::new((scope.is_some() && shim.is_file()).then(|| shim.to_path_buf())));
    if let Some(lld) = warm_lld {
        // While the build assembles; a first link waits for it (the lock).
        let warm = warm.clone();
        std::thread::spawn(move || warm.zygote_for(&lld));
    }
    let output = Arc::new(Mutex::new(output));
    let mut runs = Vec::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        let request: Request = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(e) => {
                eprintln!("wheelwright-sandbox-exec: bad request: {e}");
                return 2;
            }
        };
        let output = output.clone();
        let warm = warm.clone();
        runs.push(std::thread::spawn(move || {
            let response = Response { id: request.id, result: run_request(&request, scope, &warm) };
            let mut line = serde_json::to_vec(&response).expect("a response serialises");
            line.push(b'\n');
            let mut output = output.lock().unwrap_or_else(|e| e.into_inner());
            let _ = output.write_all(&line).and_then(|_| output.flush());
        }));
        runs.retain(|run| !run.is_finished());
    }
    for run in runs {
        let _ = run.join();
    }
    0
}

/// How many times a session starts a zygote of one linker: one that keeps
/// ending is not worth more.
const ZYGOTE_STARTS: u32 = 3;

/// The session's warm linkers, one per lld binary, started at its first link.
struct WarmLinkers {
    shim: Option<PathBuf>,
    zygotes: Mutex<HashMap<PathBuf, Tried>>,
}

/// One lld binary's zygote (none after a failed start) and how many starts
/// were tried.
type Tried = (Option<Arc<Zygote>>, u32);

impl WarmLinkers {
    fn new(shim: Option<PathBuf>) -> Self {
        WarmLinkers { shim, zygotes: Mutex::default() }
    }

    /// The live zygote of `program` (started when there is none); `None`
    /// for a program that is not lld, or one whose zygote will not stay up.
    fn zygote_for(&self, program: &Path) -> Option<Arc<Zygote>> {
        let shim = self.shim.as_ref()?;
        let lld = zygote::lld_binary(program)?;
        let mut zygotes = self.zygotes.lock().unwrap_or_else(|e| e.into_inner());
        let starts = match zygotes.get(&lld) {
            Some((Some(zygote), _)) if zygote.is_alive() => return Some(zygote.clone()),
            Some((_, starts)) => *starts,
            None => 0,
        };
        if starts >= ZYGOTE_STARTS {
            return None;
        }
        // A failed start counts too: a zygote that cannot start is not
        // tried again at every link (each try may wait seconds, the lock held).
        let zygote = match Zygote::start(&lld, shim) {
            Ok(zygote) => Some(Arc::new(zygote)),
            Err(e) => {
                eprintln!("wheelwright-sandbox-exec: no warm linker: {e}");
                None
            }
        };
        zygotes.insert(lld, (zygote.clone(), starts + 1));
        zygote
    }
}

fn run_request(request: &Request, scope: Option<std::os::fd::RawFd>, warm: &WarmLinkers) -> Result<Reply, String> {
    let cmd = Cmd {
        program: request.program.clone(),
        args: request.args.clone(),
        cwd: request.cwd.clone(),
        env: request.env.clone(),
        clear_env: false,
    };
    let limits = RunLimits {
        timeout: Duration::from_millis(request.timeout_ms),
        max_output: request.max_output,
        rlimits: request.rlimits.clone(),
        cgroup_procs: Vec::new(),
        landlock_ruleset: scope,
        stop: None,
    };
    // What the zygote cannot serve (or not surely) runs cold, the same.
    let warm_out = warm.zygote_for(&cmd.program).and_then(|zygote| zygote.run(&cmd, &limits));
    let zygote = warm_out.is_some();
    let out = match warm_out {
        Some(out) => out,
        None => process::run(&cmd, &limits, &CancelToken::new()).map_err(|e| e.source.to_string())?,
    };
    Ok(Reply {
        exit: out.exit,
        text: out.text,
        truncated: out.truncated,
        duration_ms: out.duration.as_millis() as u64,
        zygote,
    })
}
