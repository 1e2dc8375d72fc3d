//! The warm linker (sandbox::zygote): links through a fork of a waiting lld
//! give the bytes, maps, exits and output a cold lld gives; what it cannot
//! serve runs cold; its children cannot reach it or the server.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use wheelwright_workers::pipeline::{self, Event};
use wheelwright_workers::platform::Target;
use wheelwright_workers::process::{CancelToken, Cmd, Exit, Output, RunLimits};
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::Status;
use wheelwright_workers::sandbox::{landlock, zygote, Limits, Mounts, Session};

const LLD: &str = "/usr/lib/llvm-19/bin/ld.lld";

fn session(limits: Limits, mounts: Mounts, warm: bool) -> Session {
    let sandbox = if warm { sandbox(limits) } else { sandbox(limits).without_lld_zygote() };
    sandbox.session(mounts).expect("bubblewrap with the helper serves sessions").expect("the session starts")
}

/// Every linked module and map under `dir`, by relative path.
fn linked_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "so" || e == "pyd" || e == "map") {
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn every_example_links_to_the_same_bytes_and_maps_with_and_without_the_zygote() {
    for name in ["pymult", "vecstats"] {
        let project = Project::load(&example(name), &Overrides::default()).unwrap();
        let (mut options, dirs) = options(&Target::ALL, false);
        let mut linked = Vec::new();
        for warm in [true, false] {
            if !warm {
                options.sandbox = options.sandbox.clone().without_lld_zygote();
            }
            let log = Mutex::new(Vec::new());
            let report = pipeline::build(&project, &options, &|event| {
                if let Event::Log { text, .. } = event {
                    log.lock().unwrap().push(text);
                }
            });
            for target in &report.targets {
                assert_eq!(target.status, Status::Succeeded, "{name} {}: {:?}", target.target, target.reason);
            }
            let notes: Vec<String> =
                log.into_inner().unwrap().into_iter().filter(|l| l.contains("warm linker")).collect();
            // Linux and macOS link once per module; Windows once per module too (abi3).
            let links = report.targets.len() * project.modules.len();
            let expected = if warm { vec![format!("note: {links} links ran on a warm linker")] } else { vec![] };
            assert_eq!(notes, expected, "{name}, warm: {warm}");
            linked.push(linked_files(dirs.work.path()));
            std::fs::remove_dir_all(dirs.work.path()).unwrap();
            std::fs::create_dir(dirs.work.path()).unwrap();
        }
        assert!(linked[0].keys().filter(|p| p.extension().unwrap() == "map").count() >= 3, "{:?}", linked[0].keys());
        assert_eq!(linked[0].keys().collect::<Vec<_>>(), linked[1].keys().collect::<Vec<_>>());
        for (path, bytes) in &linked[0] {
            assert!(bytes == &linked[1][path], "{name}: {} differs with the zygote", path.display());
        }
    }
}

#[test]
fn a_request_the_zygote_cannot_serve_runs_cold_with_the_same_result() {
    let job = tempfile::tempdir().unwrap();
    let session = session(Limits::default(), Mounts::job(job.path()), true);
    let version = session.run(&Cmd::new(LLD).arg("--version"), &CancelToken::new()).unwrap();
    assert_eq!(version.exit, Exit::Code(0), "{}", version.text);
    assert!(version.text.starts_with("Debian LLD 19"), "{}", version.text);
    assert_eq!(session.zygote_runs(), 1);

    // Longer than a request may be: a plain run, with lld's own answer.
    let long = format!("-L{}", "x".repeat(100_000));
    let cold = session.run(&Cmd::new(LLD).arg("--version").arg(&long), &CancelToken::new()).unwrap();
    assert_eq!((cold.exit, cold.text), (Exit::Code(0), version.text.clone()));
    assert_eq!(session.zygote_runs(), 1, "the long request went through the zygote");

    // Not lld: never the zygote.
    let sh = session.run(&Cmd::new("/usr/bin/sh").arg("-c").arg("echo $0"), &CancelToken::new()).unwrap();
    assert_eq!(sh.text, "/usr/bin/sh\n");
    assert_eq!(session.zygote_runs(), 1);

    // And the zygote still serves.
    let again = session.run(&Cmd::new("/usr/bin/ld64.lld-19").arg("--version"), &CancelToken::new()).unwrap();
    assert_eq!((again.exit, again.text.as_str()), (Exit::Code(0), "Debian LLD 19.1.7\n"));
    assert_eq!(session.zygote_runs(), 2);
}

/// A link that hangs (its input is a FIFO nobody writes) and one that
/// crashes on the file size limit (SIGXFSZ), in `session`.
fn hanging_and_killed_links(session: &Session, job: &Path) -> (Output, Output) {
    let fifo = job.join("hang.o");
    let _ = std::fs::remove_file(&fifo);
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = job.join("hang.so");
    let hang = session
        .run(&Cmd::new(LLD).args(["-shared", "-o", out.to_str().unwrap(), fifo.to_str().unwrap()]), &CancelToken::new())
        .unwrap();
    let big = job.join("big.o");
    let out = job.join("big.so");
    let killed = session
        .run(&Cmd::new(LLD).args(["-shared", "-o", out.to_str().unwrap(), big.to_str().unwrap()]), &CancelToken::new())
        .unwrap();
    (hang, killed)
}

#[test]
fn a_hanging_or_crashing_link_is_reported_as_a_cold_one_and_the_next_link_still_works() {
    let job = tempfile::tempdir().unwrap();
    // Three megabytes of data: an output over the file size limit.
    let source = job.path().join("big.asm");
    std::fs::write(&source, "section .data\n times 3000000 db 1\n").unwrap();
    let nasm = std::process::Command::new("nasm")
        .args(["-f", "elf64", "-o"])
        .arg(job.path().join("big.o"))
        .arg(&source)
        .status()
        .unwrap();
    assert!(nasm.success());
    let limits = Limits { timeout_secs: 1, file_size: 1 << 20, ..Limits::default() };

    let warm = session(limits.clone(), Mounts::job(job.path()), true);
    let (hang, killed) = hanging_and_killed_links(&warm, job.path());
    assert_eq!(warm.zygote_runs(), 2, "both links went through the zygote");
    let cold = session(limits, Mounts::job(job.path()), false);
    let (cold_hang, cold_killed) = hanging_and_killed_links(&cold, job.path());
    assert_eq!(cold.zygote_runs(), 0);

    assert_eq!(hang.exit, Exit::TimedOut, "{}", hang.text);
    assert!(hang.duration < Duration::from_secs(5), "{:?}", hang.duration);
    assert_eq!((&hang.exit, &hang.text), (&cold_hang.exit, &cold_hang.text));
    // SIGXFSZ: LLVM's handler prints its crash report and exits 1.
    assert!(killed.text.contains("Stack dump:"), "{:?} {}", killed.exit, killed.text);
    assert_ne!(killed.exit, Exit::Code(0));
    // lld's crash report prints addresses, which differ from run to run.
    assert_eq!(killed.exit, cold_killed.exit);
    let first_line = |out: &Output| out.text.lines().next().unwrap_or_default().to_string();
    assert_eq!(first_line(&killed), first_line(&cold_killed));

    let next = warm.run(&Cmd::new(LLD).arg("--version"), &CancelToken::new()).unwrap();
    assert_eq!(next.exit, Exit::Code(0), "{}", next.text);
    assert_eq!(warm.zygote_runs(), 3);
}

#[test]
fn a_forked_child_can_signal_neither_the_zygote_nor_the_server_and_holds_none_of_its_descriptors() {
    // The zygote works for any dynamically linked program: a shell stands
    // in for a hostile lld, started by this test as the server.
    let dir = tempfile::tempdir().unwrap();
    let shim = zygote::shared_shim(dir.path()).unwrap();
    let zygote = zygote::Zygote::start(Path::new("/usr/bin/sh"), &shim).unwrap();
    let scope = landlock::scope_ruleset().expect("Landlock ABI 6 on this kernel");
    let limits = RunLimits { landlock_ruleset: Some(scope), ..RunLimits::default() };
    let script = format!(
        "kill -0 $PPID 2>/dev/null; echo zygote=$?; kill -KILL $PPID 2>/dev/null; echo zygote=$?; \
         kill -0 {server} 2>/dev/null; echo server=$?; kill -0 $$; echo self=$?; ls /proc/self/fd",
        server = std::process::id()
    );
    let cmd = Cmd::new("/usr/bin/sh").arg("-c").arg(&script).cwd(dir.path());
    let out = zygote.run(&cmd, &limits).expect("the zygote serves");
    assert_eq!(out.exit, Exit::Code(0), "{}", out.text);
    // 0-2 and the directory ls reads (a cold run from this test process
    // would show the test harness's leaked descriptors too).
    assert_eq!(out.text, "zygote=1\nzygote=1\nserver=1\nself=0\n0\n1\n2\n3\n");
    let pwd = zygote.run(&Cmd::new("/usr/bin/sh").arg("-c").arg("pwd; echo $0").cwd(dir.path()), &limits).unwrap();
    assert_eq!(pwd.text, format!("{}\n/usr/bin/sh\n", dir.path().display()));
    assert!(zygote.is_alive());
}

#[test]
fn a_zygote_that_dies_mid_run_ends_the_run_kills_its_child_and_serves_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let shim = zygote::shared_shim(dir.path()).unwrap();
    let zygote = std::sync::Arc::new(zygote::Zygote::start(Path::new("/usr/bin/sh"), &shim).unwrap());
    let scope = landlock::scope_ruleset().expect("Landlock ABI 6 on this kernel");
    let limits = RunLimits { landlock_ruleset: Some(scope), timeout: Duration::from_secs(30), ..RunLimits::default() };
    // The child says who it and its zygote are, then waits.
    let pids = dir.path().join("pids");
    let cmd = Cmd::new("/usr/bin/sh").arg("-c").arg(format!("echo $$ $PPID > {}; sleep 30", pids.display()));
    let run = {
        let zygote = zygote.clone();
        std::thread::spawn(move || zygote.run(&cmd, &limits).map(|out| out.exit))
    };
    let started = std::time::Instant::now();
    let written = loop {
        match std::fs::read_to_string(&pids) {
            Ok(text) if text.ends_with('\n') => break text,
            _ if started.elapsed() > Duration::from_secs(10) => panic!("the child never wrote its pids"),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let [child, parent]: [i32; 2] =
        written.split_whitespace().map(|p| p.parse().unwrap()).collect::<Vec<_>>().try_into().unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(parent, libc::SIGKILL) }, 0);
    // Not served: the caller runs it cold. And the child went with its run.
    assert_eq!(run.join().unwrap(), None);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    // SIGKILL is delivered asynchronously: gone (or a zombie) within moments.
    let gone = || {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        stat.is_empty() || stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) == Some("Z")
    };
    let killed = std::time::Instant::now();
    while !gone() && killed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gone(), "the run's child outlived it");
    assert!(!zygote.is_alive());
    let again = zygote.run(
        &Cmd::new("/usr/bin/sh").arg("-c").arg("true"),
        &RunLimits { landlock_ruleset: Some(scope), ..RunLimits::default() },
    );
    assert!(again.is_none(), "a zygote in doubt serves nothing more");
}

#[test]
fn a_fork_joins_the_groups_and_domain_it_is_given_and_a_crashing_one_ends_its_zygote() {
    let dir = tempfile::tempdir().unwrap();
    let shim = zygote::shared_shim(dir.path()).unwrap();
    let zygote = zygote::Zygote::start(Path::new("/usr/bin/sh"), &shim).unwrap();
    // A plain file stands in for a cgroup's `tasks`: the fork writes 0 into
    // the descriptor the server opened, before its program runs.
    let (join, secret) = (dir.path().join("tasks"), tempfile::tempdir().unwrap());
    std::fs::write(&join, "").unwrap();
    std::fs::write(secret.path().join("s"), "secret").unwrap();
    let ruleset = landlock::confine_ruleset(&["/usr".into(), "/lib".into(), "/lib64".into()], &[dir.path().into()])
        .unwrap()
        .expect("Landlock ABI 6 on this kernel");
    let limits = RunLimits {
        landlock_ruleset: Some(std::os::fd::AsRawFd::as_raw_fd(&ruleset)),
        cgroup_procs: vec![join.clone()],
        ..RunLimits::default()
    };
    let script = format!("cat {}/s; echo here > {}/w; echo end", secret.path().display(), dir.path().display());
    let out = zygote.run(&Cmd::new("/usr/bin/sh").arg("-c").arg(&script).cwd(dir.path()), &limits).unwrap();
    assert!(out.text.contains("Permission denied") && !out.text.contains("secret"), "{}", out.text);
    assert!(out.text.ends_with("end\n"), "{}", out.text);
    assert_eq!(std::fs::read_to_string(&join).unwrap(), "0");
    assert_eq!(std::fs::read_to_string(dir.path().join("w")).unwrap(), "here\n");
    assert!(zygote.is_alive());

    // A fork that dies of a crash signal ends the zygote: the next link gets
    // a fresh address layout.
    let crash = zygote.run(&Cmd::new("/usr/bin/sh").arg("-c").arg("kill -SEGV $$"), &limits).unwrap();
    assert_eq!(crash.exit, Exit::Signal(libc::SIGSEGV), "{}", crash.text);
    assert!(!zygote.is_alive());
}

/// A stand-in zygote, statically linked (so the shim is not loaded into
/// it), that says it is ready and then answers every request with `MODE`'s
/// malformed reply.
const FAKE_ZYGOTE: &str = r#"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
int main(void) {
    int control = atoi(getenv("WHEELWRIGHT_ZYGOTE_FD"));
    int32_t ready[2] = {1, (int32_t)getpid()};
    send(control, ready, sizeof ready, 0);
    for (;;) {
        char buf[65536];
        union { char b[CMSG_SPACE(8 * sizeof(int))]; struct cmsghdr align; } cbuf;
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg = {0};
        msg.msg_iov = &iov; msg.msg_iovlen = 1;
        msg.msg_control = cbuf.b; msg.msg_controllen = sizeof cbuf.b;
        if (recvmsg(control, &msg, 0) <= 0) return 0;
        int reply;
        memcpy(&reply, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof reply);
        int32_t answer[3] = {2, 0, 0};
        size_t size = 8;
        if (MODE == 1) {                          /* a message of another size, */
            pid_t parent = getpid();
            pid_t child = fork();                 /* about a real child of its own, */
            if (child == 0) {                     /* which ends with it */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent) _exit(0); /* it ended before the prctl */
                pause();
                _exit(0);
            }
            answer[1] = child;
            size = 12;
        }
        if (MODE == 2) answer[1] = 1;             /* a pid that cannot be its child's */
        if (MODE == 3) answer[1] = getpid();      /* its own pid */
        if (MODE == 4) answer[0] = 99;            /* a kind that does not exist */
        send(reply, answer, size, 0);
    }
}
"#;

#[test]
fn a_zygote_that_answers_malformed_is_ended_and_the_run_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let shim = zygote::shared_shim(dir.path()).unwrap();
    let source = dir.path().join("fake.c");
    std::fs::write(&source, FAKE_ZYGOTE).unwrap();
    let scope = landlock::scope_ruleset().expect("Landlock ABI 6 on this kernel");
    let limits = RunLimits { landlock_ruleset: Some(scope), ..RunLimits::default() };
    for (mode, what) in [(1, "a reply of 12 bytes"), (2, "pid 1"), (3, "the zygote's own pid"), (4, "an unknown kind")]
    {
        let fake = dir.path().join(format!("fake-{mode}"));
        let cc = std::process::Command::new("cc")
            .args(["-static", "-O1", &format!("-DMODE={mode}"), "-o"])
            .arg(&fake)
            .arg(&source)
            .output()
            .unwrap();
        assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
        let zygote = zygote::Zygote::start(&fake, &shim).expect("the stand-in says it is ready");
        assert!(zygote.is_alive());
        let out = zygote.run(&Cmd::new("/usr/bin/sh").arg("-c").arg("echo ran"), &limits);
        assert!(out.is_none(), "{what}: served {out:?}");
        assert!(!zygote.is_alive(), "{what}: the zygote still serves");
    }
}
