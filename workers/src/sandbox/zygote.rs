//! A warm linker: inside a build's sandbox session, lld is started once and
//! stopped after the dynamic loader has mapped and relocated it and
//! libLLVM (about 17 ms of CPU per start), but before its `main`; each link
//! is then a fork of that process which becomes exactly what an `execve`
//! of lld with the link's argv and environment would have been (`argv[0]`
//! picks the flavour: `ld.lld`, `ld64.lld`, `lld-link`).
//!
//! The stopping is done by a small C shim (`workers/zygote/lld_zygote.c`,
//! built by `build.rs` and embedded here) that lld loads with `LD_PRELOAD`:
//! it takes over `__libc_start_main` and serves fork requests there (the
//! idea of AFL's fork server). Each child, before lld's own code runs, gets
//! what [`process::run`] gives a tool: its own process group, the request's
//! rlimits, its cgroups, a nested Landlock domain made from the request's
//! ruleset (the same one a cold run restricts itself with), the working
//! directory, the environment, stdin from `/dev/null` and stdout/stderr into
//! the pipe the server reads under its output cap; every descriptor of the
//! zygote is closed.
//!
//! The channel: a `SOCK_SEQPACKET` socket only the server and the zygote
//! hold, and per request a reply socket, the output pipe, the Landlock
//! ruleset and the cgroup files to join passed over it.
//! The zygote answers only pids and `waitpid` statuses; anything malformed,
//! late or missing ends the zygote, and the run falls back to a plain
//! [`process::run`] of the tool (cold), with the same result. Timeouts kill
//! the child's process group, as for any tool.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::process::{self, CancelToken, Cmd, Output, RunLimits};

/// The shim, compiled for this host by `build.rs`.
static SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lld-zygote.so"));

/// Where a session shows the shim (read-only), for its server to preload.
pub const SHIM_PATH: &str = "/run/wheelwright/lld-zygote.so";

/// The largest request sent (the zygote's buffer holds twice as much): a
/// longer command line runs cold.
const MAX_REQUEST: usize = 64 * 1024;

/// How long the zygote may take to say it is ready, or that a child started.
const REPLY_WAIT: Duration = Duration::from_secs(5);

/// How long past a run's timeout its exit status may take to arrive.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The most cgroups a child joins (the shim's `MAX_CGROUPS`).
const MAX_CGROUPS: usize = 4;

/// Signals a crash ends a fork with: the zygote that forked it is ended.
const CRASHES: [i32; 6] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGABRT, libc::SIGSYS];

// Reply kinds (see the shim).
const READY: i32 = 1;
const STARTED: i32 = 2;
const EXITED: i32 = 3;
const NOT_STARTED: i32 = 4;

/// The lld multicall binary `program` names (through any of its names),
/// as its real path; `None` for any other program.
pub fn lld_binary(program: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(program).ok().filter(|real| real.file_name().is_some_and(|n| n == "lld"))
}

/// Writes the shim once to a content-addressed file in a directory of this
/// user's own under `under` (mode 0700, checked: another user must not be
/// able to put a library of theirs there), and returns its path.
pub fn shared_shim(under: &Path) -> std::io::Result<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let dir = under.join(format!("wheelwright-{uid}"));
    // Not even readable by others: what is preloaded into every link.
    super::private_dir(&dir, 0o077)?;
    static DIGEST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let digest = DIGEST.get_or_init(|| crate::wheel::sha256_hex(SHIM)[..16].to_string());
    let path = dir.join(format!("lld-zygote-{digest}.so"));
    if std::fs::read(&path).is_ok_and(|bytes| bytes == SHIM) {
        return Ok(path);
    }
    let mut scratch = tempfile::NamedTempFile::new_in(&dir)?;
    scratch.write_all(SHIM)?;
    scratch.as_file().set_permissions(std::fs::Permissions::from_mode(0o444))?;
    scratch.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

/// A running zygote of one lld binary; ended when dropped.
#[derive(Debug)]
pub struct Zygote {
    control: OwnedFd,
    pid: libc::pid_t,
    child: Child,
    /// Set when the zygote is in doubt: it serves nothing more.
    broken: Arc<AtomicBool>,
}

impl Zygote {
    /// Starts `lld` with `shim` preloaded and waits until it is ready.
    pub fn start(lld: &Path, shim: &Path) -> std::io::Result<Zygote> {
        let (ours, theirs) = seqpacket_pair()?;
        let theirs_fd = theirs.as_raw_fd();
        let mut command = Command::new(lld);
        command
            .env("LD_PRELOAD", shim)
            .env("WHEELWRIGHT_ZYGOTE_FD", theirs_fd.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: only fcntl, async-signal-safe, on a descriptor open before the fork.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(theirs_fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        drop(theirs);
        let pid = child.id() as libc::pid_t;
        match read_reply(&ours, Instant::now() + REPLY_WAIT) {
            Some((READY, ready)) if ready == pid => {}
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::other(format!(
                    "{} did not start as a zygote (is the shim loadable?)",
                    lld.display()
                )));
            }
        }
        Ok(Zygote { control: ours, pid, child, broken: Arc::default() })
    }

    /// Whether the zygote still serves.
    pub fn is_alive(&self) -> bool {
        !self.broken.load(Ordering::SeqCst)
    }

    /// Runs `cmd` as a fork of the zygote under `limits`, which must hold
    /// the Landlock ruleset the child restricts itself with (as a cold run
    /// would) and at most four cgroup files to join. `None`: the
    /// zygote could not serve it and nothing of it ran past its setup: run
    /// it cold. A zygote in doubt is ended.
    pub fn run(&self, cmd: &Cmd, limits: &RunLimits) -> Option<Output> {
        let ruleset = limits.landlock_ruleset?;
        if !self.is_alive() || limits.cgroup_procs.len() > MAX_CGROUPS {
            return None;
        }
        let payload = encode(cmd, &limits.rlimits)?;
        // Opened here, written by the child: it sees no cgroup file system.
        let cgroups: Vec<std::fs::File> = limits
            .cgroup_procs
            .iter()
            .map(|procs| std::fs::OpenOptions::new().write(true).open(procs))
            .collect::<std::io::Result<_>>()
            .ok()?;
        let started = Instant::now();
        let (reply, reply_theirs) = seqpacket_pair().ok()?;
        let (reader, writer) = std::io::pipe().ok()?;
        let mut passed = vec![reply_theirs.as_raw_fd(), writer.as_raw_fd(), ruleset];
        passed.extend(cgroups.iter().map(AsRawFd::as_raw_fd));
        if send_with_fds(&self.control, &payload, &passed).is_err() {
            self.end();
            return None;
        }
        drop((reply_theirs, writer, cgroups));
        let pid = match read_reply(&reply, Instant::now() + REPLY_WAIT) {
            // A pid that cannot be a child of the zygote's is a lie.
            Some((STARTED, pid)) if pid > 1 && pid != self.pid => pid,
            // Fork failed or the table is full: the zygote is fine.
            Some((NOT_STARTED, _)) => return None,
            _ => {
                self.end();
                return None;
            }
        };
        let deadline = started + limits.timeout + EXIT_GRACE;
        let broken = self.broken.clone();
        let wait = move || match read_reply(&reply, deadline) {
            Some((EXITED, status)) => {
                let status = std::process::ExitStatus::from_raw(status);
                // A fork that crashed may have been probing the address
                // layout every fork shares: the next link gets a fresh one.
                if status.signal().is_some_and(|s| CRASHES.contains(&s)) {
                    broken.store(true, Ordering::SeqCst);
                }
                Ok(status)
            }
            // The child's setup failed before lld's code ran.
            Some((NOT_STARTED, errno)) => Err(std::io::Error::from_raw_os_error(errno)),
            _ => {
                broken.store(true, Ordering::SeqCst);
                Err(std::io::Error::other("the lld zygote stopped answering"))
            }
        };
        let out = process::supervise(pid, reader, wait, limits, &CancelToken::new(), started);
        if !self.is_alive() {
            self.end();
        }
        out.ok()
    }

    /// Ends the zygote (its children, in groups of their own, are killed by
    /// their runs).
    fn end(&self) {
        self.broken.store(true, Ordering::SeqCst);
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // unreaped child's, so it cannot have been reused.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        self.end();
        let _ = self.child.wait();
    }
}

/// The request's fields (see the shim): `None` when they cannot be sent
/// (a NUL byte, or too long).
fn encode(cmd: &Cmd, rlimits: &[(libc::__rlimit_resource_t, u64)]) -> Option<Vec<u8>> {
    // The environment std would give the tool: ours (unless cleared) with
    // the command's variables over it, in std's (sorted) order.
    let mut env: BTreeMap<OsString, OsString> =
        if cmd.clear_env { BTreeMap::new() } else { std::env::vars_os().collect() };
    for (k, v) in &cmd.env {
        env.insert(k.into(), v.into());
    }
    let mut fields: Vec<Vec<u8>> = vec![
        b"Z1".to_vec(),
        (cmd.args.len() + 1).to_string().into_bytes(),
        env.len().to_string().into_bytes(),
        rlimits.len().to_string().into_bytes(),
    ];
    fields.extend(rlimits.iter().map(|(r, v)| format!("{r}={v}").into_bytes()));
    fields.push(cmd.cwd.as_ref().map(|d| d.as_os_str().as_bytes().to_vec()).unwrap_or_default());
    if cmd.cwd.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        return None;
    }
    fields.push(cmd.program.as_os_str().as_bytes().to_vec());
    fields.extend(cmd.args.iter().map(|a| a.as_bytes().to_vec()));
    for (k, v) in &env {
        let mut pair = k.as_bytes().to_vec();
        pair.push(b'=');
        pair.extend_from_slice(v.as_bytes());
        fields.push(pair);
    }
    let mut payload = Vec::new();
    for field in fields {
        if field.contains(&0) {
            return None;
        }
        payload.extend_from_slice(&field);
        payload.push(0);
    }
    (payload.len() <= MAX_REQUEST).then_some(payload)
}

fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message carrying `fds` (at most 3 + [`MAX_CGROUPS`]).
fn send_with_fds(socket: &OwnedFd, payload: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let fds_len = std::mem::size_of_val(fds);
    // u64s, so that the control buffer is aligned for a cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(fds_len as u32) } as usize;
    assert!(fds.len() <= 3 + MAX_CGROUPS && space <= std::mem::size_of_val(&control));
    let mut iov = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: the control buffer holds one cmsghdr with room for the fds.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fds_len as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), fds_len);
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    if sent != payload.len() as isize {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One reply (kind, value) by `deadline`; `None` on anything else: the
/// end of the socket, a message of another size, an error, no answer.
fn read_reply(socket: &OwnedFd, deadline: Instant) -> Option<(i32, i32)> {
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let mut poll = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut poll, 1, ms) } {
            0 => continue,
            n if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            n if n < 0 => return None,
            _ => {}
        }
        let mut buf = [0i32; 3];
        // SAFETY: `buf` is writable for its size. MSG_TRUNC: the real
        // length comes back, so a longer message is seen.
        let n = unsafe {
            libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), std::mem::size_of_val(&buf), libc::MSG_TRUNC)
        };
        if n == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return (n == 8).then_some((buf[0], buf[1]));
    }
}
