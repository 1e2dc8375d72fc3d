//! The sandbox itself: what a step can see and do, and refusing to run
//! without a working bubblewrap.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use wheelwright_workers::process::{CancelToken, Cmd, Exit};
use wheelwright_workers::sandbox::{check_root_confinement, landlock, Helper, Limits, Mounts, Sandbox, SandboxError};
use wheelwright_workers::toolchain::{self, Tool};

fn sh(script: &str) -> Cmd {
    Cmd::new("/bin/sh").arg("-c").arg(script)
}

/// Runs a Python `script` as a project's step in `job`; its output, after
/// checking that it succeeded.
fn python_step(job: &Path, script: &str) -> wheelwright_workers::process::Output {
    let cmd = Cmd::new("/usr/bin/python3").arg("-c").arg(script);
    let out =
        sandbox(Limits::default()).run(&cmd, &Mounts::job(job).running_project_code(), &CancelToken::new()).unwrap();
    assert_eq!(out.exit, Exit::Code(0), "{}", out.text);
    out
}

#[test]
fn refuses_to_run_without_a_working_bubblewrap() {
    let err = Sandbox::with_bwrap(None, Limits::default(), None).unwrap_err();
    assert!(matches!(err, SandboxError::Missing));
    assert!(err
        .to_string()
        .starts_with("bubblewrap (bwrap) is not installed: install the Debian package `bubblewrap`"));

    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("bwrap");
    std::fs::write(&fake, "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Sandbox::with_bwrap(Some(fake), Limits::default(), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bubblewrap cannot create its namespaces here (bwrap: No permissions to create new namespace); allow \
         unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), \
         or pass --sandbox=none for trusted local builds"
    );
}

#[test]
fn a_step_sees_its_own_namespaces_and_no_capabilities() {
    let job = tempfile::tempdir().unwrap();
    let sandbox = sandbox(Limits::default());
    let script = "hostname; ls /sys/class/net 2>/dev/null || echo no-sys; grep CapEff /proc/self/status; \
                  echo pid=$$; ls /usr | grep -c .; (ls /) 2>&1; test -e /etc/passwd || echo no-passwd";
    let out = sandbox.run(&sh(script), &Mounts::job(job.path()), &CancelToken::new()).unwrap();
    assert_eq!(out.exit, Exit::Code(0), "{}", out.text);
    let lines: Vec<&str> = out.text.lines().collect();
    assert_eq!(lines[0], "wheelwright");
    assert_eq!(lines[1], "no-sys", "no /sys at all: {}", out.text);
    assert_eq!(lines[2], "CapEff:\t0000000000000000");
    // PID namespace: the shell is one of the first processes.
    let pid: u32 = lines[3].trim_start_matches("pid=").parse().unwrap();
    assert!(pid < 10, "{}", out.text);
    assert_ne!(lines[4], "0", "/usr is readable");
    // bubblewrap's root holds only the binds; Landlock does not even let it be listed.
    assert_eq!(lines[5], "ls: cannot open directory '/': Permission denied");
    assert_eq!(lines[6], "no-passwd");
}

#[test]
fn a_step_can_write_only_to_its_job_directory() {
    let job = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("input.asm"), "x").unwrap();
    let script = format!(
        "echo ok > {job}/out && cat {src}/input.asm && (echo no > {src}/input.asm) 2>&1; (touch /usr/pwned) 2>&1; true",
        job = job.path().display(),
        src = source.path().display()
    );
    let mounts = Mounts::job(job.path()).read_only(source.path());
    let out = sandbox(Limits::default()).run(&sh(&script), &mounts, &CancelToken::new()).unwrap();
    assert_eq!(std::fs::read_to_string(job.path().join("out")).unwrap(), "ok\n");
    assert_eq!(std::fs::read_to_string(source.path().join("input.asm")).unwrap(), "x");
    assert!(out.text.contains("Read-only file system"), "{}", out.text);
    assert!(!Path::new("/usr/pwned").exists());
}

#[test]
fn a_step_can_change_no_metadata_of_the_hosts_devices_holds_no_capability_and_reaches_no_keyring() {
    // Landlock governs reading and writing, not chmod, utime or xattrs, and
    // a daemon running as root owns the host's device nodes bubblewrap binds:
    // the helper remounts them read-only before the step starts. Same mode
    // and a new time only: a hole would show without harming the host.
    let job = tempfile::tempdir().unwrap();
    let script = r#"
import os, time
for device in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"):
    for what, change in (
        ("chmod", lambda: os.chmod(device, os.stat(device).st_mode & 0o7777)),
        ("utime", lambda: os.utime(device)),
        ("setxattr", lambda: os.setxattr(device, "user.step", b"1")),
    ):
        try:
            change()
            print("changed", what, device)
        except OSError as refused:
            assert refused.errno in (1, 13, 30), (what, device, refused)
# Through a descriptor too: stdin is the daemon's /dev/null.
for what, change in (
    ("fchmod of stdin", lambda: os.fchmod(0, os.fstat(0).st_mode & 0o7777)),
    ("chmod of /proc/self/fd/0", lambda: os.chmod("/proc/self/fd/0", os.stat("/proc/self/fd/0").st_mode & 0o7777)),
    ("utime of /proc/self/fd/0", lambda: os.utime("/proc/self/fd/0")),
):
    try:
        change()
        print("changed", what)
    except OSError as refused:
        assert refused.errno in (1, 13, 30), (what, refused)
with open("/dev/null", "w") as null, open("/dev/zero", "rb") as zero:
    null.write("still a device")
    assert zero.read(4) == bytes(4)
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith("Cap"):
            print(line.split()[0], line.split()[1])
# Keyrings are namespaced by nothing a sandbox unshares (the daemon's
# session keyring would be every step's): every key call is refused.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
for what, call in (
    ("add_key", (248, b"user", b"step", b"x", 1, ctypes.c_long(-4))),
    ("request_key", (249, b"user", b"step", None, 0)),
    ("keyctl of the session keyring", (250, ctypes.c_long(0), ctypes.c_long(-3), ctypes.c_long(0))),
):
    if libc.syscall(*call) != -1 or ctypes.get_errno() != 1:
        print("reached a keyring:", what, ctypes.get_errno())
# Nor a file system's (fscrypt's ioctl; unfiltered, /dev/null says ENOTTY).
import fcntl
with open("/dev/null", "rb") as null:
    try:
        fcntl.ioctl(null, 0xC0506617, bytes(80))
    except OSError as refused:
        if refused.errno != 1:
            print("reached a keyring: fscrypt's ioctl", refused.errno)
# Nor does it list the keys the daemon's user may view (a device on a
# nodev mount hides them: EACCES).
for listing in ("/proc/keys", "/proc/key-users"):
    try:
        with open(listing) as keys:
            if keys.read():
                print("reached a keyring: listed", listing)
    except PermissionError:
        pass
"#;
    let before = std::fs::metadata("/dev/null").unwrap();
    let out = python_step(job.path(), script);
    assert!(!out.text.contains("changed"), "{}", out.text);
    assert!(!out.text.contains("reached a keyring"), "{}", out.text);
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert!(out.text.contains(&format!("{set} 0000000000000000")), "{set}: {}", out.text);
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata("/dev/null").unwrap().mtime(), before.mtime());
}

#[test]
fn a_steps_root_and_dev_hold_the_devices_and_one_capped_terminal_instance_and_nothing_it_can_fill() {
    // bubblewrap's `--dev` would leave an uncapped devpts instance under
    // the helper's capped one (in bubblewrap's mount namespace, which no
    // process of the sandbox shows any more) and an unsized, writable tmpfs
    // at /dev.
    let job = tempfile::tempdir().unwrap();
    let script = r#"
import os, pty
mounts = [line.split() for line in open("/proc/self/mountinfo")]
devpts = [m[m.index("-") + 3] for m in mounts if m[m.index("-") + 1] == "devpts"]
print("devpts", devpts)
print("read-only", [m[4] for m in mounts if m[4] in ("/", "/dev") and m[5].split(",")[0] == "ro"])
print("dev", sorted(os.listdir("/dev")))
print("ptmx", os.readlink("/dev/ptmx"), "fd", os.readlink("/dev/fd"))
try:
    open("/dev/planted", "w").write("x")
    print("wrote /dev")
except OSError as refused:
    print("refused", refused.errno)
open("/dev/shm/ok", "w").write("x")
leader, follower = pty.openpty()
print("pty", os.ttyname(follower))
"#;
    let out = python_step(job.path(), script);
    let devpts = out.text.lines().find(|l| l.starts_with("devpts ")).unwrap();
    assert_eq!(devpts.matches("'").count(), 2, "exactly one devpts instance: {}", out.text);
    assert!(devpts.contains("max=64"), "capped (caps::PTYS): {}", out.text);
    assert!(
        out.text.contains(
            "dev ['core', 'fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', \
             'urandom', 'zero']"
        ),
        "{}",
        out.text
    );
    assert!(out.text.contains("ptmx pts/ptmx fd /proc/self/fd"), "{}", out.text);
    assert!(out.text.contains("refused 30"), "/dev is read-only: {}", out.text);
    assert!(out.text.contains("read-only ['/', '/dev']"), "bubblewrap's root and /dev: {}", out.text);
    assert!(out.text.contains("pty /dev/pts/0"), "{}", out.text);
}

#[test]
fn the_landlock_helper_confines_what_it_runs() {
    if landlock::kernel_abi() == 0 {
        eprintln!("this kernel has no Landlock; the helper's confinement cannot be observed here");
        return;
    }
    // Outside /tmp, which the helper always leaves writable (inside
    // bubblewrap it is the step's private tmpfs).
    let allowed = tempfile::tempdir_in("/var/tmp").unwrap();
    let other = tempfile::tempdir_in("/var/tmp").unwrap();
    let helper = env!("CARGO_BIN_EXE_wheelwright-sandbox-exec");
    let script = format!(
        "echo ok > {allowed}/f && cat {allowed}/f; (echo no > {other}/f) 2>&1; (cat /etc/hostname) 2>&1; true",
        allowed = allowed.path().display(),
        other = other.path().display()
    );
    let out = std::process::Command::new(helper)
        .args(["--ro", "/usr", "--ro", "/bin", "--ro", "/lib", "--ro", "/lib64", "--ro", "/etc/ld.so.cache", "--rw"])
        .arg(allowed.path())
        .args(["--", "/bin/sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ok");
    assert!(lines[1].ends_with("Permission denied"), "{text}");
    assert!(lines[2].ends_with("Permission denied"), "{text}");
    assert!(!other.path().join("f").exists());
}

#[test]
fn the_timeout_kills_everything_the_step_started() {
    let job = tempfile::tempdir().unwrap();
    let marker = job.path().join("still-running");
    let script = format!("(sleep 3; touch {}) & setsid sleep 30 & sleep 30", marker.display());
    let started = std::time::Instant::now();
    let out = sandbox(Limits { timeout_secs: 1, ..Limits::default() })
        .run(&sh(&script), &Mounts::job(job.path()).running_project_code(), &CancelToken::new())
        .unwrap();
    assert_eq!(out.exit, Exit::TimedOut);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(!marker.exists(), "a background process survived the step");
}

#[test]
fn rlimits_apply_inside_the_sandbox() {
    let job = tempfile::tempdir().unwrap();
    let limits = Limits { file_size: 1 << 20, ..Limits::default() };
    let script = format!(
        "ulimit -v; ulimit -c; ulimit -n; head -c 2000000 /dev/zero > {}/big; echo status=$?",
        job.path().display()
    );
    let out = sandbox(limits).run(&sh(&script), &Mounts::job(job.path()), &CancelToken::new()).unwrap();
    let lines: Vec<&str> = out.text.lines().collect();
    assert_eq!(&lines[..3], ["1048576", "0", "256"], "{}", out.text);
    assert!(out.text.contains("File size limit exceeded") || out.text.contains("status=153"), "{}", out.text);
    assert_eq!(std::fs::metadata(job.path().join("big")).unwrap().len(), 1 << 20);
}

#[test]
fn only_a_step_given_the_network_can_connect_and_only_to_its_ports() {
    use std::io::Write;
    let serve = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.write_all(b"hello\n");
            }
        });
        port
    };
    let (allowed, other) = (serve(), serve());
    let job = tempfile::tempdir().unwrap();
    let connect = |port: u16| {
        let script = format!("(exec 3<>/dev/tcp/127.0.0.1/{port} && head -n 1 <&3) 2>/dev/null || echo refused");
        Cmd::new("/usr/bin/bash").arg("-c").arg(script)
    };
    let sandbox = sandbox(Limits::default());
    let online = Mounts::job(job.path()).with_network(&[allowed]);
    let run = |cmd: &Cmd, mounts: &Mounts| sandbox.run(cmd, mounts, &CancelToken::new()).unwrap().text;
    assert_eq!(run(&connect(allowed), &online), "hello\n");
    assert_eq!(run(&connect(allowed), &Mounts::job(job.path())), "refused\n");
    if landlock::kernel_abi() >= 4 {
        assert_eq!(run(&connect(other), &online), "refused\n", "Landlock lets only the given ports through");
    }
}

#[test]
fn a_step_cannot_write_host_kernel_settings_nor_make_user_namespaces_even_without_landlock() {
    let job = tempfile::tempdir().unwrap();
    // Writes back the value it read, so that a regression changes nothing on the host.
    let script = "v=$(cat /proc/sys/kernel/core_pattern); (printf '%s\\n' \"$v\" > /proc/sys/kernel/core_pattern) 2>&1 \
                  && echo WROTE; s=$(cat /proc/sys/vm/swappiness); (echo \"$s\" > /proc/sys/vm/swappiness) 2>&1 && echo WROTE; \
                  grep -c . /proc/sys/kernel/core_pattern; unshare -U true 2>&1 || echo no-userns; \
                  (echo x > /planted) 2>&1 || true; (echo x > /dev/planted) 2>&1 || true";
    let bwrap = toolchain::find(Tool::Bwrap).expect("bubblewrap is installed");
    let without_landlock = Sandbox::with_bwrap(Some(bwrap), Limits::default(), None).unwrap();
    for (name, sandbox) in [("with landlock", sandbox(Limits::default())), ("bubblewrap only", without_landlock)] {
        let out = sandbox.run(&sh(script), &Mounts::job(job.path()), &CancelToken::new()).unwrap();
        let lines: Vec<&str> = out.text.lines().collect();
        assert_eq!(lines.len(), 7, "{name}: {}", out.text);
        assert!(lines[0].ends_with("/proc/sys/kernel/core_pattern: Read-only file system"), "{name}: {}", out.text);
        assert!(lines[1].ends_with("/proc/sys/vm/swappiness: Read-only file system"), "{name}: {}", out.text);
        assert_eq!(lines[2], "1", "{name}: /proc/sys stays readable");
        assert_eq!(lines[3], "unshare: unshare failed: No space left on device", "{name}");
        assert_eq!(lines[4], "no-userns", "{name}");
        assert!(lines[5].ends_with("/planted: Read-only file system"), "{name}: bubblewrap's root: {}", out.text);
        assert!(lines[6].ends_with("/dev/planted: Read-only file system"), "{name}: /dev: {}", out.text);
    }
}

#[test]
fn a_step_can_reach_no_process_outside_itself_even_without_landlock() {
    // bubblewrap's own reaper was dumpable, unfiltered and in the unsealed
    // mount namespace: without Landlock a step could trace it (and make the
    // key calls refused to the step) or go through /proc/1/root. Now pid 1
    // is the helper, restricted like the step and not dumpable.
    let job = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let script = r#"
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
abi = libc.syscall(444, None, 0, 1)
print("landlock", abi if abi >= 0 else os.strerror(ctypes.get_errno()))
print("pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "me", os.getpid())
print("pid 1", open("/proc/1/comm").read().strip())
for path in ("/proc/1/root/dev", "/proc/1/mem", "/proc/1/environ", "/proc/1/fd/0"):
    try:
        os.listdir(path) if path.endswith("dev") else open(path).close()
        print("opened", path)
    except OSError as e:
        print(path, e.strerror)
print("trace pid 1", libc.ptrace(0x4206, 1, None, None), os.strerror(ctypes.get_errno()))
for sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGTERM, signal.SIGKILL):
    os.kill(1, sig)
print("pid 1 after SIGKILL", open("/proc/1/comm").read().strip())
blocked = [l.split()[1] for l in open("/proc/1/status") if l.startswith("SigBlk")][0]
print("pid 1 blocks", "all" if int(blocked, 16) | (1 << 8) | (1 << 18) | (3 << 31) == (1 << 64) - 1 else blocked)
"#;
    let helper = Helper { program: env!("CARGO_BIN_EXE_wheelwright-sandbox-exec").into(), args: Vec::new() };
    let without_landlock =
        Sandbox::with_bwrap(Some(bwrap_without_landlock(tools.path())), Limits::default(), Some(helper)).unwrap();
    let cmd = Cmd::new("/usr/bin/python3").arg("-c").arg(script);
    for (name, sandbox) in [("without landlock", without_landlock), ("with landlock", sandbox(Limits::default()))] {
        let mounts = Mounts::job(job.path()).running_project_code();
        let out = sandbox.run(&cmd, &mounts, &CancelToken::new()).unwrap();
        assert_eq!(out.exit, Exit::Code(0), "{name}: {}", out.text);
        let lines: Vec<&str> = out.text.lines().collect();
        if name == "without landlock" {
            assert_eq!(lines[0], "landlock Function not implemented", "the simulation holds: {}", out.text);
        } else {
            assert!(lines[0].starts_with("landlock ") && lines[0] != "landlock 0", "{}", out.text);
        }
        assert_eq!(lines[1], "pids [1, 2] me 2", "{name}: the helper and the step only: {}", out.text);
        assert_eq!(lines[2], "pid 1 sandbox-exec", "{name}: {}", out.text);
        for (n, path) in ["/proc/1/root/dev", "/proc/1/mem", "/proc/1/environ", "/proc/1/fd/0"].iter().enumerate() {
            assert_eq!(lines[3 + n], format!("{path} Permission denied"), "{name}: {}", out.text);
        }
        assert_eq!(lines[7], "trace pid 1 -1 Operation not permitted", "{name}: {}", out.text);
        assert_eq!(lines[8], "pid 1 after SIGKILL sandbox-exec", "{name}: {}", out.text);
        assert_eq!(lines[9], "pid 1 blocks all", "{name}: but SIGKILL, SIGSTOP and glibc's two: {}", out.text);
    }
}

#[test]
fn a_root_daemon_is_refused_without_landlock_and_others_are_not() {
    let advice = "a sandboxed step would run as the host's root user (bubblewrap maps uid 0 inside to uid 0 \
                  outside), held back by bubblewrap's mounts alone; run wheelwright as a non-root user, or on a kernel \
                  with Landlock (Linux 5.13 or newer, `landlock` in the `lsm=` boot parameter) with the sandbox helper \
                  installed beside the binary";
    let err = check_root_confinement(0, 0, true).unwrap_err();
    assert!(matches!(err, SandboxError::RootWithoutLandlock(_)));
    assert_eq!(err.to_string(), format!("wheelwright runs as root, and this kernel has no Landlock: {advice}"));
    let err = check_root_confinement(0, 6, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("wheelwright runs as root, and the Landlock sandbox helper was not found: {advice}")
    );
    assert!(check_root_confinement(0, 1, true).is_ok());
    assert!(check_root_confinement(1000, 0, false).is_ok(), "a non-root daemon's steps are not the host's root");
}
