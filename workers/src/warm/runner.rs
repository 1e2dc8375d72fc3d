//! One warm runner as the engine sees it: a sandboxed Python process
//! (`runner.py`) spoken to in length-prefixed JSON frames on its stdin and
//! stdout. Its answers are read on a thread of their own, so that a step
//! can wait for them with a deadline and its cancel token.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::WarmError;
use crate::process::{CancelToken, Cmd};

/// The runner's program, given to the interpreter with `-c`.
pub const RUNNER_PY: &str = include_str!("runner.py");

/// The largest frame either side accepts: requests are paths and names.
const FRAME_MAX: u32 = 1 << 20;

/// How often a waiting step looks at its cancel tokens.
const POLL: Duration = Duration::from_millis(20);

/// One test run, as sent to the runner.
#[derive(Debug, Serialize)]
pub struct Request {
    /// The run's directory: its working directory, and the only place it
    /// may write.
    pub dir: String,
    /// The file (made by the host) its stdout and stderr go to.
    pub output: String,
    /// pytest's arguments (after `-m pytest`).
    pub args: Vec<String>,
    /// Its whole environment.
    pub env: std::collections::BTreeMap<String, String>,
    /// Paths it may read (and execute) besides its directory.
    pub read_only: Vec<String>,
    /// Paths it may write: its directory and a few devices.
    pub writable: Vec<String>,
    /// `cgroup.procs` files the child joins before anything else.
    pub cgroups: Vec<String>,
    /// rlimits the child sets on itself.
    pub rlimits: Vec<(u32, u64)>,
    /// What the child's own view shows, in order: it makes it in a mount
    /// namespace of its own before anything else of the run.
    pub view: Vec<ViewMount>,
    /// Whether the run uses the ABI harness: if not, the copy the runner
    /// imported (see [`super::RunnerKey::harness`]) leaves `sys.modules`
    /// first, as a cold run never has it.
    pub harness: bool,
    /// A seccomp filter (the bytes of its `struct sock_filter` array, in
    /// hex) the child installs once isolated: the calls every step is
    /// refused ([`crate::sandbox::seccomp::step_program_hex`]).
    pub seccomp: &'static str,
}

/// One entry of a child's view (see `Sandbox::child_view`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ViewMount {
    /// A fresh tmpfs of `size` bytes whose root has `mode`.
    Tmpfs {
        /// Where.
        path: String,
        /// Its size in bytes.
        size: u64,
        /// Its root's permission bits.
        mode: u32,
    },
    /// A symbolic link to `target`.
    Symlink {
        /// Where.
        path: String,
        /// What it points to.
        target: String,
    },
    /// What the runner sees at `path`, bound at the same place (with what
    /// is mounted below it), read-only unless `writable`, never allowing
    /// devices or set-user-ID; `nofollow`: `path` is resolved without
    /// following symbolic links (a runner's run may have written there).
    Bind {
        /// The path, the same in the runner's sandbox and in the view.
        path: String,
        /// Whether the child may write there (its Landlock rules decide
        /// what it may write in the end).
        writable: bool,
        /// Whether to resolve `path` without following links.
        nofollow: bool,
    },
    /// A device node of the runner's (the host's), bound read-only: read
    /// and written through, its metadata unchangeable. Left out where the
    /// runner has none.
    Device {
        /// The device's path.
        path: String,
    },
    /// A new instance of devpts (pseudo-terminals of the child's own), as
    /// bubblewrap's `--dev` mounts for a cold run.
    Devpts {
        /// Where (`/dev/pts`).
        path: String,
        /// Its mount options (bubblewrap's for `--dev`, and the cap on
        /// terminals the helper gives a cold run).
        options: String,
    },
}

impl ViewMount {
    /// Where in the view it goes.
    pub fn path(&self) -> &str {
        match self {
            ViewMount::Tmpfs { path, .. }
            | ViewMount::Symlink { path, .. }
            | ViewMount::Bind { path, .. }
            | ViewMount::Device { path }
            | ViewMount::Devpts { path, .. } => path,
        }
    }
}

/// What the runner says; one field set per frame.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    /// Once, after start: the Landlock ABI it found.
    ready: Option<i64>,
    /// The child exists.
    pid: Option<i64>,
    /// The child ended: waitpid's raw status.
    status: Option<i32>,
    /// The child died before it was isolated (in place of `pid` and
    /// `status`): waitpid's raw status.
    unisolated: Option<i32>,
}

/// How a run the runner carried out ended, from its point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// waitpid's raw status.
    Status(i32),
    /// The wall clock ran out: the runner (and the child) was killed.
    TimedOut,
    /// Cancelled: the runner (and the child) was killed.
    Cancelled,
}

/// A live runner; killed, with everything it started, when dropped.
#[derive(Debug)]
pub struct Runner {
    child: Child,
    input: Option<ChildStdin>,
    answers: mpsc::Receiver<Result<Answer, String>>,
    /// Runs served so far.
    pub runs: u32,
}

impl Runner {
    /// Starts `wrapped` (the sandbox around the interpreter running
    /// [`RUNNER_PY`]) and waits for it to say it is ready.
    pub fn start(wrapped: &Cmd, startup: Duration) -> Result<Runner, WarmError> {
        let mut command = Command::new(&wrapped.program);
        command
            .args(&wrapped.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = spawn_from_lasting_thread(command)
            .map_err(|e| WarmError::Unavailable(format!("cannot start the runner: {e}")))?;
        let input = child.stdin.take();
        let mut output = child.stdout.take().expect("stdout was piped");
        let mut errors = child.stderr.take().expect("stderr was piped");
        let (send, answers) = mpsc::channel();
        std::thread::spawn(move || loop {
            let frame = read_frame(&mut output)
                .and_then(|body| serde_json::from_slice::<Answer>(&body).map_err(|e| format!("a bad answer: {e}")));
            let end = frame.is_err();
            if send.send(frame).is_err() || end {
                break;
            }
        });
        // Kept short: only to explain a runner that did not start.
        let (tail_send, tail) = mpsc::channel();
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let _ = (&mut errors).take(4096).read_to_end(&mut kept);
            let _ = tail_send.send(kept);
            let _ = std::io::copy(&mut errors, &mut std::io::sink());
        });
        let mut runner = Runner { child, input, answers, runs: 0 };
        match runner.answers.recv_timeout(startup) {
            Ok(Ok(Answer { ready: Some(abi), .. })) if abi >= 6 => Ok(runner),
            Ok(Ok(Answer { ready: Some(abi), .. })) => {
                Err(WarmError::Unavailable(format!("Landlock ABI {abi} in the sandbox (6 needed)")))
            }
            other => {
                runner.kill();
                let why = tail.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
                let why = String::from_utf8_lossy(&why).trim().to_string();
                let what = match other {
                    Err(_) => "did not answer",
                    Ok(Err(_)) => "ended before it was ready",
                    Ok(Ok(_)) => "answered out of turn",
                };
                Err(WarmError::Unavailable(format!("the runner {what}: {why}")))
            }
        }
    }

    /// Sends `request` and waits for the child to end, at most `timeout`
    /// after it started; cancelling either token kills the runner.
    pub fn run(
        &mut self,
        request: &Request,
        timeout: Duration,
        cancel: &CancelToken,
        stop: Option<&CancelToken>,
    ) -> Result<Ended, WarmError> {
        self.runs += 1;
        let body = serde_json::to_vec(request).map_err(|e| WarmError::Protocol(e.to_string()))?;
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend(body);
        let input = self.input.as_mut().ok_or_else(|| WarmError::Protocol("the runner is closed".into()))?;
        input.write_all(&frame).and_then(|_| input.flush()).map_err(|e| WarmError::Protocol(e.to_string()))?;
        let started = Instant::now();
        let mut seen_pid = false;
        loop {
            if cancel.is_cancelled() || stop.is_some_and(CancelToken::is_cancelled) {
                self.kill();
                return Ok(Ended::Cancelled);
            }
            if started.elapsed() >= timeout {
                self.kill();
                return Ok(Ended::TimedOut);
            }
            match self.answers.recv_timeout(POLL) {
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(WarmError::Protocol("the runner ended mid-run".into()))
                }
                Ok(Err(why)) => return Err(WarmError::Protocol(why)),
                Ok(Ok(Answer { pid: Some(_), ready: None, status: None, unisolated: None })) if !seen_pid => {
                    seen_pid = true
                }
                Ok(Ok(Answer { status: Some(status), ready: None, pid: None, unisolated: None })) if seen_pid => {
                    return Ok(Ended::Status(status))
                }
                Ok(Ok(Answer { unisolated: Some(status), ready: None, pid: None, status: None })) if !seen_pid => {
                    return Err(WarmError::Unavailable(format!(
                        "the runner's child could not isolate itself (waitpid status {status:#x})"
                    )))
                }
                Ok(Ok(_)) => return Err(WarmError::Protocol("an answer out of turn".into())),
            }
        }
    }

    /// Kills the runner's sandbox and everything in it.
    pub fn kill(&mut self) {
        self.input.take();
        let outer = self.child.id();
        // bubblewrap's second process (the pid namespace's init) is in a
        // session of its own: killed by pid, and waited for below, so that
        // nothing of the runner is left when this returns.
        let inner: Vec<u32> = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        // SAFETY: killpg and kill take no pointers; the group is the
        // runner's own, the pids its sandbox's (not yet reaped: its parent
        // is alive until the wait below).
        unsafe {
            libc::killpg(outer as libc::pid_t, libc::SIGKILL);
            for pid in &inner {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(2);
        for pid in inner {
            // Gone, or a zombie waiting for whoever inherited it.
            while std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `command` from a thread that lives as long as the process.
/// bubblewrap's `--die-with-parent` is the kernel's parent-death signal,
/// which fires when the *thread* that forked it ends: a runner spawned from
/// a build's thread would die with that build.
fn spawn_from_lasting_thread(command: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (send, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("warm-runner-spawner".into())
            .spawn(move || {
                for (mut command, reply) in jobs {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("a thread starts");
        Mutex::new(send)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply))
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("the spawning thread is gone"))?
}

/// One frame: a big-endian length, then that many bytes.
fn read_frame(input: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut head = [0u8; 4];
    input.read_exact(&mut head).map_err(|e| format!("the runner's output ended: {e}"))?;
    let size = u32::from_be_bytes(head);
    if size > FRAME_MAX {
        return Err(format!("an answer of {size} bytes"));
    }
    let mut body = vec![0u8; size as usize];
    input.read_exact(&mut body).map_err(|e| format!("an answer cut short: {e}"))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in runner that says it is ready, reads one request and
    /// answers that its child died before it was isolated.
    const UNISOLATED: &str = r#"
import json, os, struct, sys
def answer(message):
    body = json.dumps(message).encode()
    os.write(1, struct.pack(">I", len(body)) + body)
answer({"ready": 6})
size = struct.unpack(">I", sys.stdin.buffer.read(4))[0]
sys.stdin.buffer.read(size)
answer({"unisolated": 17920})
sys.stdin.buffer.read()
"#;

    #[test]
    fn a_child_that_could_not_isolate_itself_is_no_run_and_sends_the_tests_cold() {
        let mut runner =
            Runner::start(&Cmd::new("python3").args(["-c", UNISOLATED]), Duration::from_secs(30)).expect("starts");
        let request = Request {
            dir: "/nowhere".into(),
            output: "/nowhere/out".into(),
            args: vec![],
            env: Default::default(),
            read_only: vec![],
            writable: vec![],
            cgroups: vec![],
            rlimits: vec![],
            view: vec![],
            harness: false,
            seccomp: "",
        };
        match runner.run(&request, Duration::from_secs(30), &CancelToken::new(), None) {
            Err(WarmError::Unavailable(why)) => assert!(why.contains("could not isolate itself"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
