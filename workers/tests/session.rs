//! Sandbox sessions: many steps in one bubblewrap, each still with its own
//! limits, timeout and output, and the session's confinement intact.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wheelwright_workers::process::{CancelToken, Cmd, Exit};
use wheelwright_workers::sandbox::{landlock, Helper, Limits, Mounts, Sandbox, Session};

fn sh(script: &str) -> Cmd {
    Cmd::new("/usr/bin/sh").arg("-c").arg(script)
}

fn session(limits: Limits, mounts: Mounts) -> Session {
    sandbox(limits).session(mounts).expect("bubblewrap with the helper serves sessions").expect("the session starts")
}

#[test]
fn steps_run_side_by_side_confined_to_the_session() {
    let job = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("input.asm"), "x").unwrap();
    let limits = Limits { file_size: 1 << 20, ..Limits::default() };
    let session = session(limits, Mounts::job(job.path()).read_only(source.path()));

    let started = Instant::now();
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..3)
            .map(|n| {
                let session = &session;
                let script = format!("sleep 1; echo step {n} > {}/out-{n}; echo done {n}", job.path().display());
                scope.spawn(move || session.run(&sh(&script), &CancelToken::new()).unwrap())
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(started.elapsed() < Duration::from_millis(2500), "the steps ran one after another");
    for (n, out) in outputs.iter().enumerate() {
        assert_eq!(out.exit, Exit::Code(0), "{}", out.text);
        assert_eq!(out.text, format!("done {n}\n"));
        assert_eq!(std::fs::read_to_string(job.path().join(format!("out-{n}"))).unwrap(), format!("step {n}\n"));
    }

    let script = format!(
        "hostname; cat {src}/input.asm; echo; (echo no > {src}/input.asm) 2>&1; (cat /etc/hostname) 2>&1; \
         ulimit -v; ulimit -n; head -c 2000000 /dev/zero > {job}/big; echo status=$?",
        src = source.path().display(),
        job = job.path().display()
    );
    let out = session.run(&sh(&script), &CancelToken::new()).unwrap();
    let lines: Vec<&str> = out.text.lines().collect();
    assert_eq!(lines[..2], ["wheelwright", "x"], "{}", out.text);
    assert!(lines[2].contains("Read-only file system"), "{}", out.text);
    assert!(lines[3].contains("No such file or directory") || lines[3].ends_with("Permission denied"), "{}", out.text);
    assert_eq!(lines[4..6], ["1048576", "256"], "{}", out.text);
    assert!(out.text.contains("File size limit exceeded") || out.text.contains("status=153"), "{}", out.text);
    assert_eq!(std::fs::read_to_string(source.path().join("input.asm")).unwrap(), "x");
}

#[test]
fn a_step_past_its_timeout_is_killed_and_the_session_goes_on() {
    let job = tempfile::tempdir().unwrap();
    let marker = job.path().join("still-running");
    let session = session(Limits { timeout_secs: 1, ..Limits::default() }, Mounts::job(job.path()));
    let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
    let out = session.run(&sh(&script), &CancelToken::new()).unwrap();
    assert_eq!(out.exit, Exit::TimedOut);
    let out = session.run(&sh("echo after; exit 3"), &CancelToken::new()).unwrap();
    assert_eq!((out.exit, out.text.as_str()), (Exit::Code(3), "after\n"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!marker.exists(), "a background process of the timed-out step survived it");
}

#[test]
fn cancelling_a_step_ends_the_whole_session() {
    let job = tempfile::tempdir().unwrap();
    let session = session(Limits::default(), Mounts::job(job.path()));
    let cancel = CancelToken::new();
    let flag = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        flag.cancel();
    });
    let started = Instant::now();
    let out = session.run(&sh("sleep 30"), &cancel).unwrap();
    assert_eq!(out.exit, Exit::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!session.is_alive());
    let err = session.run(&sh("echo later"), &CancelToken::new()).unwrap_err();
    assert!(err.to_string().contains("the sandbox session ended unexpectedly"), "{err}");
}

#[test]
fn a_tool_cannot_signal_the_server_nor_hold_its_answer() {
    if landlock::kernel_abi() < 6 {
        eprintln!("this kernel has no Landlock scoping; a tool can signal the server here");
        return;
    }
    let job = tempfile::tempdir().unwrap();
    let session = session(Limits::default(), Mounts::job(job.path()));
    let out = session
        .run(&sh("kill -STOP $PPID 2>&1 || echo refused; kill -9 $PPID 2>&1 || echo refused"), &CancelToken::new())
        .unwrap();
    assert_eq!(out.text.matches("refused").count(), 2, "{}", out.text);
    // A process that escapes the tool's group and keeps the output open.
    let started = Instant::now();
    let out = session.run(&sh("setsid -f sleep 30; sleep 0.3; echo hi"), &CancelToken::new()).unwrap();
    assert_eq!(out.exit, Exit::Code(0));
    assert!(out.text.starts_with("hi\n") && out.text.contains("kept its output open"), "{}", out.text);
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = session.run(&sh("echo still serving"), &CancelToken::new()).unwrap();
    assert_eq!(out.text, "still serving\n");
}

#[test]
fn without_landlock_a_tool_can_trace_change_or_read_neither_the_sessions_init_nor_its_server_nor_their_group() {
    // Where Landlock does not keep a tool to its own domain, what does:
    // pid 1 (the helper) and the server are not dumpable, and the step
    // filter refuses changes to another process's limits and scheduling.
    let job = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let helper = Helper { program: env!("CARGO_BIN_EXE_wheelwright-sandbox-exec").into(), args: Vec::new() };
    let sandbox =
        Sandbox::with_bwrap(Some(bwrap_without_landlock(tools.path())), Limits::default(), Some(helper)).unwrap();
    let session = sandbox.session(Mounts::job(job.path())).expect("a helper serves sessions").expect("it starts");
    let script = r#"
import ctypes, os, resource
libc = ctypes.CDLL(None, use_errno=True)
abi = libc.syscall(444, None, 0, 1)
print("landlock", abi if abi >= 0 else os.strerror(ctypes.get_errno()))
for pid, name in ((1, "init"), (os.getppid(), "server")):
    print(name, open("/proc/%d/comm" % pid).read().strip())
    for path in ("/proc/%d/mem" % pid, "/proc/%d/environ" % pid, "/proc/%d/root/dev" % pid):
        try:
            os.listdir(path) if path.endswith("dev") else open(path).close()
            print(" opened", path)
        except OSError as e:
            print(" ", e.strerror)
    print(" trace", libc.ptrace(0x4206, pid, None, None), os.strerror(ctypes.get_errno()))
    for what, change in (
        ("limits", lambda: resource.prlimit(pid, resource.RLIMIT_STACK, resource.prlimit(pid, resource.RLIMIT_STACK))),
        ("priority", lambda: os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, pid))),
        ("affinity", lambda: os.sched_setaffinity(pid, os.sched_getaffinity(pid))),
    ):
        try:
            change()
            print(" changed", what)
        except OSError as e:
            print(" ", what, e.strerror)
# Into the server's process group (which the kernel allows: the same
# session), and every process of it reniced at once. Set to what it is.
os.setpgid(0, os.getpgid(os.getppid()))
def group_io_priority():
    # ioprio_set(IOPRIO_WHO_PGRP, 0, ioprio_get(IOPRIO_WHO_PROCESS, self))
    if libc.syscall(251, 2, 0, libc.syscall(252, 1, 0)) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
for what, change in (
    ("group priority", lambda: os.setpriority(os.PRIO_PGRP, 0, os.getpriority(os.PRIO_PROCESS, 0))),
    ("group io priority", group_io_priority),
):
    try:
        change()
        print(" changed", what)
    except OSError as e:
        print(" ", what, e.strerror)
os.setpgid(0, 0)
"#;
    let out = session.run(&Cmd::new("/usr/bin/python3").arg("-c").arg(script), &CancelToken::new()).unwrap();
    assert_eq!(out.exit, Exit::Code(0), "{}", out.text);
    let denied = "  Permission denied\n  Permission denied\n  Permission denied\n trace -1 Operation not permitted\n  \
                  limits Operation not permitted\n  priority Operation not permitted\n  affinity Operation not permitted\n";
    assert_eq!(
        out.text,
        format!(
            "landlock Function not implemented\ninit sandbox-exec\n{denied}server sandbox-exec\n{denied}  group \
             priority Operation not permitted\n  group io priority Operation not permitted\n"
        )
    );
    let out = session.run(&sh("echo still serving"), &CancelToken::new()).unwrap();
    assert_eq!(out.text, "still serving\n");
}

#[test]
fn a_session_covers_only_steps_it_confines_as_their_own_sandbox_would() {
    let job = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let session = session(Limits::default(), Mounts::job(job.path()).read_only(source.path()));
    let tool = Cmd::new("/usr/bin/nasm");
    let inside = job.path().join("linux");

    assert!(session.covers(&tool, &Mounts::job(job.path()).read_only(source.path())));
    assert!(session.covers(&tool, &Mounts::job(job.path())));
    assert!(session.covers(&tool, &Mounts::job(job.path()).read_only(source.path().join("src"))));
    // The session would let the step write more than its own sandbox.
    assert!(!session.covers(&tool, &Mounts::job(&inside)));
    assert!(!session.covers(&tool, &Mounts::job(elsewhere.path())));
    assert!(!session.covers(&tool, &Mounts::job(job.path()).read_only(elsewhere.path())));
    // Read-only inside the writable directory: not in this session.
    assert!(!session.covers(&tool, &Mounts::job(job.path()).read_only(job.path().join("include"))));
    // Project code gets its own sandbox and cgroup; the network its own too.
    assert!(!session.covers(&tool, &Mounts::job(job.path()).running_project_code()));
    assert!(!session.covers(&tool, &Mounts::job(job.path()).with_network(&[443])));
    // A program the session cannot see.
    assert!(!session.covers(&Cmd::new(elsewhere.path().join("nasm")), &Mounts::job(job.path())));
    assert!(!session.covers(&Cmd::new("nasm"), &Mounts::job(job.path())));
    assert!(session.covers(&Cmd::new(source.path().join("bin/tool")), &Mounts::job(job.path())));
}

/// Two builds one after the other through a daemon's pool of sessions (the
/// warm root holds their work directories, another folder their sources):
/// the second gets the first's server and warm linker, and every run of
/// each, cold or forked from the linker, reaches only its own build's
/// paths and is counted in its own build's memory group.
#[test]
fn a_pooled_session_serves_builds_in_turn_each_run_confined_to_its_own_build() {
    const LLD: &str = "/usr/lib/llvm-19/bin/ld.lld";
    let top = tempfile::tempdir().unwrap();
    let (jobs, sources) = (top.path().join("jobs"), top.path().join("sources"));
    for build in ["a", "b"] {
        std::fs::create_dir_all(jobs.join(build)).unwrap();
        std::fs::create_dir_all(sources.join(build)).unwrap();
        std::fs::write(sources.join(build).join("input.asm"), format!("source of {build}\n")).unwrap();
        std::fs::write(jobs.join(build).join("copy"), "made by the host\n").unwrap();
    }
    let sandbox = sandbox(Limits::default()).with_warm_root(&jobs).with_session_pool(vec![sources.clone()]);
    let pool = sandbox.session_pool().unwrap().clone();
    let path = |dir: &std::path::Path, name: &str| dir.join(name).display().to_string();
    let denied = |out: &wheelwright_workers::process::Output| out.text.matches("Permission denied").count();

    for (build, other) in [("a", "b"), ("b", "a")] {
        let (job, source) = (jobs.join(build), sources.join(build));
        let (other_job, other_source) = (jobs.join(other), sources.join(other));
        let limits = sandbox.for_build(&job);
        let mounts = Mounts::job(&job).read_only(&source);
        let session = limits.sandbox().session_warming(mounts, Some(std::path::Path::new(LLD))).unwrap().unwrap();
        assert!(session.is_pooled());
        assert_eq!(pool.starts(), 1, "build {build}: one server for both builds");

        let own = format!("cat {} > {}; cat {}", path(&source, "input.asm"), path(&job, "copy"), path(&job, "copy"));
        let out = session.run(&sh(&own), &CancelToken::new()).unwrap();
        assert_eq!((out.exit, out.text.as_str()), (Exit::Code(0), format!("source of {build}\n").as_str()));

        // Everything of the other build, and the session's shared /tmp.
        let script = format!(
            "cat {}; cat {}; echo x > {}; echo x > /tmp/left-by-{build}; ls /tmp; true",
            path(&other_source, "input.asm"),
            path(&other_job, "copy"),
            path(&other_job, &format!("written-by-{build}"))
        );
        let out = session.run(&sh(&script), &CancelToken::new()).unwrap();
        assert_eq!(denied(&out), 5, "build {build}: {}", out.text);
        assert!(!other_job.join(format!("written-by-{build}")).exists());

        // Nor, by path, the metadata Landlock leaves alone: modes, owners,
        // times (of the other build's files and of the folder of them all;
        // by path not even its own: seccomp sees no paths).
        let script = format!(
            "chmod 000 {other}; chmod 000 {jobs}; chown $(id -u) {other}; touch -c {other}; chmod 600 {own}; true",
            other = path(&other_job, "copy"),
            jobs = jobs.display(),
            own = path(&job, "copy"),
        );
        let out = session.run(&sh(&script), &CancelToken::new()).unwrap();
        assert_eq!(out.text.matches("Operation not permitted").count(), 5, "build {build}: {}", out.text);
        let mode =
            |p: &std::path::Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions());
        assert_ne!(mode(&other_job.join("copy")) & 0o777, 0);
        assert_ne!(mode(&jobs) & 0o777, 0);

        // A fork of the warm linker is confined the same.
        let link = Cmd::new(LLD).args(["-shared", "-o", &path(&job, "out.so"), &path(&other_job, "copy")]);
        let out = session.run(&link, &CancelToken::new()).unwrap();
        assert_ne!(out.exit, Exit::Code(0));
        assert!(out.text.contains("Permission denied"), "build {build}: {}", out.text);
        assert_eq!(session.zygote_runs(), 1, "build {build}: the link was a fork of the warm linker");

        // In the build's memory group (when the host gives us one).
        let group = session.run(&sh("grep memory /proc/self/cgroup"), &CancelToken::new()).unwrap();
        if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
            assert!(group.text.contains("/build-"), "build {build}: {}", group.text);
        }
        drop(session);
    }
    assert_eq!(pool.starts(), 1);
}

/// A build that leaves a process behind (out of its run's process group)
/// does not hand its pooled session back: the next build gets a server of
/// its own, and the leftover dies with its build.
#[test]
fn a_pooled_session_whose_build_left_a_process_is_not_handed_on() {
    let top = tempfile::tempdir().unwrap();
    let jobs = top.path().join("jobs");
    for build in ["a", "b"] {
        std::fs::create_dir_all(jobs.join(build)).unwrap();
    }
    let sandbox = sandbox(Limits::default()).with_warm_root(&jobs).with_session_pool(Vec::new());
    let pool = sandbox.session_pool().unwrap().clone();
    let run = |build: &str, script: &str| {
        let limits = sandbox.for_build(&jobs.join(build));
        let session = limits.sandbox().session(Mounts::job(&jobs.join(build))).unwrap().unwrap();
        assert!(session.is_pooled());
        let out = session.run(&sh(script), &CancelToken::new()).unwrap();
        assert_eq!(out.exit, Exit::Code(0), "{}", out.text);
        (session, limits)
    };
    let (session, limits) = run("a", "setsid sleep 30 </dev/null >/dev/null 2>&1 & sleep 0.3; echo started");
    drop(session);
    drop(limits);
    let (session, limits) = run("b", "true");
    assert_eq!(pool.starts(), 2, "the server that held a leftover served no other build");
    drop((session, limits));
    let (_session, _limits) = run("a", "true");
    assert_eq!(pool.starts(), 2, "a build that leaves nothing hands its server on");
}
