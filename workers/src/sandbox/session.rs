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
//!
//! A daemon's sessions serve many builds, one after the other
//! ([`SessionPool`]): such a session shows every build's work directory and
//! sources, and each run is confined ([`Confine`]) by a Landlock domain of
//! its own to what a session of its build alone would show, and joins its
//! build's memory group. So the sandbox's start and the warm linker's
//! (~45 ms of CPU together) are paid once per pooled session, not per build.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
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
    /// In a session shared by many builds: what the tool may reach.
    #[serde(default)]
    pub confine: Option<Confine>,
}

/// What one run in a shared session may reach: its build's paths, and the
/// build's memory group to join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confine {
    /// Readable (with the system's folders).
    pub read_only: Vec<PathBuf>,
    /// Writable.
    pub writable: Vec<PathBuf>,
    /// Join files (`tasks`, `cgroup.procs`) relative to the session's view
    /// of the builds' groups ([`GROUPS_PATH`]).
    pub cgroups: Vec<PathBuf>,
}

impl Confine {
    /// A run of a build whose steps see `mounts`, joining `cgroups`.
    fn of(mounts: &Mounts, cgroups: &[PathBuf]) -> Confine {
        Confine { read_only: mounts.read_only.clone(), writable: mounts.writable.clone(), cgroups: cgroups.to_vec() }
    }
}

/// Where a shared session shows the folder of the builds' memory groups
/// (writable by the server only: no run's domain holds it).
pub const GROUPS_PATH: &str = "/run/wheelwright/build-groups";

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

/// A build's session: a server of its own, or one of a [`SessionPool`]'s
/// for the time of the build (handed back when dropped, while it serves).
#[derive(Debug)]
pub struct Session {
    core: Option<Arc<Core>>,
    /// The build whose limits bound the session's runs.
    build: Option<Arc<BuildState>>,
    /// In a pooled session: the build's own view and memory group.
    shared: Option<Shared>,
    /// Runs served by a warm linker.
    zygote_runs: AtomicU64,
}

/// A pooled session's use by one build.
#[derive(Debug)]
struct Shared {
    mounts: Mounts,
    cgroups: Vec<PathBuf>,
    pool: Arc<SessionPool>,
    key: PoolKey,
}

/// A running server; killed (with everything in it) when dropped.
#[derive(Debug)]
pub struct Core {
    mounts: Mounts,
    limits: Limits,
    pgid: libc::pid_t,
    child: Mutex<Option<Child>>,
    input: Mutex<Option<ChildStdin>>,
    pending: Pending,
    next_id: AtomicU64,
    ended: Arc<AtomicBool>,
    stderr: Arc<Mutex<Vec<u8>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Core {
    /// Starts `wrapped` (bubblewrap running the helper in serve mode);
    /// `mounts` is what it was given to see.
    pub(super) fn start(wrapped: &Cmd, mounts: Mounts, limits: Limits) -> Result<Core, SpawnError> {
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
        Ok(Core {
            mounts,
            limits,
            pgid,
            child: Mutex::new(Some(child)),
            input: Mutex::new(input),
            pending,
            next_id: AtomicU64::new(1),
            ended,
            stderr,
            threads: vec![reader_thread, stderr_thread],
        })
    }

    /// Whether the server still serves (it ends when killed, or when it stops).
    pub fn is_alive(&self) -> bool {
        !self.ended.load(Ordering::SeqCst)
    }

    /// One run of `/usr/bin/true` as a run of a build seeing `mounts` would
    /// be made (confined, joining `cgroups`): `Err` says why it failed.
    pub(super) fn probe(&self, mounts: &Mounts, cgroups: &[PathBuf]) -> Result<(), String> {
        let confine = Confine::of(mounts, cgroups);
        let reply = self
            .run_request(&Cmd::new("/usr/bin/true"), Some(confine), &CancelToken::new(), &|| false)
            .map_err(|e| e.source.to_string())?;
        match reply.exit {
            Exit::Code(0) => Ok(()),
            other => Err(format!("{other:?}: {}", reply.text.trim())),
        }
    }

    /// Whether no run waits for an answer.
    fn is_idle(&self) -> bool {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Sends `cmd` (confined by `confine`) and waits for its answer,
    /// watching `cancel` and `stopped`; any doubt kills the server.
    fn run_request(
        &self,
        cmd: &Cmd,
        confine: Option<Confine>,
        cancel: &CancelToken,
        stopped: &dyn Fn() -> bool,
    ) -> Result<Reply, SpawnError> {
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
            confine,
        };
        let (reply_tx, reply_rx) = mpsc::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, reply_tx);
        let started = Instant::now();
        let sent = self.send(&request);
        if sent.is_err() || self.ended.load(Ordering::SeqCst) {
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
        let deadline = started + self.limits.timeout() + SERVER_GRACE;
        let ended_by_us = |exit: Exit| Reply {
            exit,
            text: String::new(),
            truncated: false,
            duration_ms: started.elapsed().as_millis() as u64,
            zygote: false,
        };
        loop {
            if cancel.is_cancelled() || stopped() {
                // A build limit's reason replaces this (see BuildState::explain).
                self.kill();
                return Ok(ended_by_us(Exit::Cancelled));
            }
            match reply_rx.recv_timeout(CANCEL_POLL) {
                Ok(Ok(reply)) => return Ok(reply),
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

impl Drop for Core {
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

impl Session {
    /// A session of one build's own.
    pub(super) fn own(core: Core, build: Option<Arc<BuildState>>) -> Session {
        Session { core: Some(Arc::new(core)), build, shared: None, zygote_runs: AtomicU64::new(0) }
    }

    /// `core` of `pool` for one build: its runs see only `mounts` (what a
    /// session of the build's own would show) and join `cgroups`.
    pub(super) fn pooled(
        core: Arc<Core>,
        build: Option<Arc<BuildState>>,
        pool: Arc<SessionPool>,
        key: PoolKey,
        mounts: Mounts,
        cgroups: Vec<PathBuf>,
    ) -> Session {
        let shared = Shared { mounts, cgroups, pool, key };
        Session { core: Some(core), build, shared: Some(shared), zygote_runs: AtomicU64::new(0) }
    }

    fn core(&self) -> &Core {
        self.core.as_deref().expect("a session holds its server until dropped")
    }

    /// Whether a step with `mounts` running `cmd` may run in this session:
    /// it can write exactly where it could in a sandbox of its own, finds
    /// what it reads (read-only where it would be read-only), and needs
    /// neither a cgroup nor the network. It may see more read-only: the
    /// session shows the union of what the build's tool runs read.
    pub fn covers(&self, cmd: &Cmd, mounts: &Mounts) -> bool {
        let view = self.shared.as_ref().map_or(&self.core().mounts, |s| &s.mounts);
        covers(view, cmd, mounts)
    }

    /// Whether the session still serves (it ends when cancelled, or when
    /// its server stops).
    pub fn is_alive(&self) -> bool {
        self.core().is_alive()
    }

    /// Whether the session's server is one of a pool's, shared with other builds.
    pub fn is_pooled(&self) -> bool {
        self.shared.is_some()
    }

    /// How many of the session's runs a warm linker ([`super::zygote`]) served.
    pub fn zygote_runs(&self) -> u64 {
        self.zygote_runs.load(Ordering::Relaxed)
    }

    /// Runs `cmd` in the session under the session's limits (and its build's).
    pub fn run(&self, cmd: &Cmd, cancel: &CancelToken) -> Result<Output, SpawnError> {
        match &self.build {
            Some(build) => build.bounded(|| self.run_once(cmd, cancel)),
            None => self.run_once(cmd, cancel),
        }
    }

    fn run_once(&self, cmd: &Cmd, cancel: &CancelToken) -> Result<Output, SpawnError> {
        let confine = self.shared.as_ref().map(|s| Confine::of(&s.mounts, &s.cgroups));
        let stopped = || self.build.as_ref().is_some_and(|b| b.stop.is_cancelled());
        let reply = self.core().run_request(cmd, confine, cancel, &stopped)?;
        if reply.zygote {
            self.zygote_runs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Output {
            exit: reply.exit,
            text: reply.text,
            truncated: reply.truncated,
            duration: Duration::from_millis(reply.duration_ms),
        })
    }

    /// Kills everything in the session; waiting steps see it end.
    pub fn kill(&self) {
        self.core().kill();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let core = self.core.take().expect("dropped once");
        // A pooled server goes back while it serves, nothing waits on it and
        // nothing the build started is left (a tool that left the process
        // group its run killed would otherwise live on beside the next
        // build's); anything else ends with the build.
        let left = self.build.as_ref().and_then(|b| b.memory.as_ref()).is_none_or(|group| group.is_populated());
        if let Some(shared) = self.shared.take() {
            if core.is_alive() && core.is_idle() && !left {
                shared.pool.put(shared.key, core);
            }
        }
    }
}

/// [`Session::covers`] for a session showing `view`.
fn covers(view: &Mounts, cmd: &Cmd, mounts: &Mounts) -> bool {
    let under = |path: &Path, roots: &[PathBuf]| roots.iter().any(|r| path.starts_with(r));
    let visible: Vec<PathBuf> = view.writable.iter().chain(&view.read_only).cloned().collect();
    // The deepest mount holding a path decides (bubblewrap binds parents
    // before children).
    let read_only_here = |path: &Path| {
        let writable = view.writable.iter().map(|m| (m, true));
        let deepest = writable
            .chain(view.read_only.iter().map(|m| (m, false)))
            .filter(|(m, _)| path.starts_with(m))
            .max_by_key(|(m, _)| m.components().count());
        matches!(deepest, Some((_, false)))
    };
    let program_dir = cmd.program.parent().unwrap_or(Path::new("/"));
    !mounts.runs_project_code
        && !view.runs_project_code
        && mounts.network.is_empty()
        && view.network.is_empty()
        && mounts.writable.iter().all(|p| under(p, &view.writable))
        && view.writable.iter().all(|p| under(p, &mounts.writable))
        && mounts.read_only.iter().all(|p| read_only_here(p))
        && cmd.program.is_absolute()
        && (program_dir.starts_with("/usr") || under(program_dir, &visible))
}

/// How many idle servers a pool keeps.
const MAX_IDLE: usize = 4;

/// Sessions kept between builds (see the module's documentation): idle
/// servers, by what they show.
#[derive(Debug)]
pub struct SessionPool {
    idle: Mutex<Vec<(PoolKey, Arc<Core>)>>,
    /// Folders shown whole, read-only, that hold each build's own (the
    /// source store's trees): a build's read-only path inside one is shown
    /// through it.
    pub(super) roots: Vec<PathBuf>,
    starts: AtomicU64,
    /// How many pooled servers failed their first run: past
    /// [`PROBE_FAILURES`], builds get sessions of their own.
    failures: AtomicU64,
}

/// How many failed first runs turn a pool off.
const PROBE_FAILURES: u64 = 3;

/// What a pooled server shows, the lld it keeps warm and the limits it
/// runs every tool under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    /// Its mounts (writable, then read-only), sorted.
    pub(super) writable: Vec<PathBuf>,
    pub(super) read_only: Vec<PathBuf>,
    pub(super) lld: Option<PathBuf>,
    pub(super) limits: Limits,
}

impl SessionPool {
    /// A pool whose servers show each of `read_only_roots` whole.
    pub fn new(read_only_roots: Vec<PathBuf>) -> SessionPool {
        SessionPool {
            idle: Mutex::default(),
            roots: read_only_roots,
            starts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether builds still get pooled sessions.
    pub(super) fn is_on(&self) -> bool {
        self.failures.load(Ordering::SeqCst) < PROBE_FAILURES
    }

    /// Counts a pooled server whose first run failed.
    pub(super) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::SeqCst);
    }

    /// How many servers the pool has started.
    pub fn starts(&self) -> u64 {
        self.starts.load(Ordering::Relaxed)
    }

    /// Counts a start.
    pub(super) fn started(&self) {
        self.starts.fetch_add(1, Ordering::Relaxed);
    }

    /// An idle server showing `key`, if one still serves.
    pub(super) fn take(&self, key: &PoolKey) -> Option<Arc<Core>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(_, core)| core.is_alive());
        let at = idle.iter().position(|(k, _)| k == key)?;
        Some(idle.remove(at).1)
    }

    fn put(&self, key: PoolKey, core: Arc<Core>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push((key, core));
        // The longest idle goes first, ended outside the lock.
        let excess = idle.len().saturating_sub(MAX_IDLE);
        let ended: Vec<_> = idle.drain(..excess).collect();
        drop(idle);
        drop(ended);
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
/// `warm_lld` (see [`super::zygote`]) at once. A `shared` server (of a
/// [`SessionPool`]) runs only confined requests, and keeps only `warm_lld`
/// warm. Returns the exit status.
pub fn serve(input: impl BufRead, output: impl Write + Send + 'static, warm_lld: Option<PathBuf>, shared: bool) -> i32 {
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
    let shim = (scope.is_some() && shim.is_file()).then(|| shim.to_path_buf());
    // A shared server starts no other lld: its zygote lives across builds,
    // outside any run's domain, so it is the one the host named.
    let only = if shared { Some(warm_lld.as_deref().and_then(zygote::lld_binary)) } else { None };
    let warm = Arc::new(WarmLinkers::new(shim, only));
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
            let result = match request.confine.is_none() && shared {
                // Its own domain holds every build's folders.
                true => Err("a shared session runs only confined requests".to_string()),
                false => run_request(&request, scope, &warm),
            };
            let response = Response { id: request.id, result };
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
    /// `Some`: the only lld (real path) a zygote may be started of, if any.
    only: Option<Option<PathBuf>>,
    zygotes: Mutex<HashMap<PathBuf, Tried>>,
}

/// One lld binary's zygote (none after a failed start) and how many starts
/// were tried.
type Tried = (Option<Arc<Zygote>>, u32);

impl WarmLinkers {
    fn new(shim: Option<PathBuf>, only: Option<Option<PathBuf>>) -> Self {
        WarmLinkers { shim, only, zygotes: Mutex::default() }
    }

    /// The live zygote of `program` (started when there is none); `None`
    /// for a program that is not lld, or one whose zygote will not stay up.
    fn zygote_for(&self, program: &Path) -> Option<Arc<Zygote>> {
        let shim = self.shim.as_ref()?;
        let lld = zygote::lld_binary(program)?;
        if self.only.as_ref().is_some_and(|only| only.as_ref() != Some(&lld)) {
            return None;
        }
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

/// The ruleset and the join files of a confined run.
fn confinement(confine: &Confine) -> Result<(std::os::fd::OwnedFd, Vec<PathBuf>), String> {
    let mut read_only = confine.read_only.clone();
    read_only.extend(super::CONFINED_READ_ONLY.iter().map(PathBuf::from));
    let mut writable = confine.writable.clone();
    // No `/tmp`: a shared session's is shared.
    writable.extend(super::CONFINED_DEVICES.iter().map(PathBuf::from));
    let ruleset = super::landlock::confine_ruleset(&read_only, &writable)
        .map_err(|e| format!("cannot make the run's Landlock ruleset: {e}"))?
        .ok_or("this kernel cannot confine a run of a shared session")?;
    let mut groups = Vec::new();
    for relative in &confine.cgroups {
        // Only below the groups' folder: no `..`, no root.
        if relative.as_os_str().is_empty()
            || !relative.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!("not a build group's file: {}", relative.display()));
        }
        groups.push(Path::new(GROUPS_PATH).join(relative));
    }
    Ok((ruleset, groups))
}

fn run_request(request: &Request, scope: Option<std::os::fd::RawFd>, warm: &WarmLinkers) -> Result<Reply, String> {
    let cmd = Cmd {
        program: request.program.clone(),
        args: request.args.clone(),
        cwd: request.cwd.clone(),
        env: request.env.clone(),
        clear_env: false,
    };
    // A run of a shared session: a domain of its build's paths only, and
    // its build's memory group.
    let confined = match &request.confine {
        Some(confine) => Some(confinement(confine)?),
        None => None,
    };
    let limits = RunLimits {
        timeout: Duration::from_millis(request.timeout_ms),
        max_output: request.max_output,
        rlimits: request.rlimits.clone(),
        cgroup_procs: confined.as_ref().map(|(_, groups)| groups.clone()).unwrap_or_default(),
        landlock_ruleset: match &confined {
            Some((ruleset, _)) => Some(ruleset.as_raw_fd()),
            None => scope,
        },
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
