//! The Landlock layer: a tiny exec helper that runs inside bubblewrap,
//! restricts itself to the step's paths, TCP and signals, and then executes
//! the tool (as the sandbox's pid 1, in a child it forks and reaps:
//! `sandbox/init.rs`). Landlock forbids mounting, so it cannot wrap bubblewrap itself.
//!
//! Command line: `[--cgroup PROCS] [--rlimit RES=VALUE]... [--ro PATH]...
//! [--rw PATH]... -- PROGRAM [ARGS]...`, or `--serve [--ro PATH]... [--rw
//! PATH]... [--warm-lld LLD] --` to serve a [`super::Session`] (starting
//! the warm linker of LLD at once); `--connect PORT` allows TCP
//! connections to that port. With `--cgroup` (repeated: on cgroup v1 a step
//! joins its build's memory group and its own pids group) it first joins
//! each cgroup whose join file (`tasks` on v1, see `cgroup::join_file`) is
//! bound at PROCS, by writing `0` while it is single-threaded; it lowers the
//! rlimits before it restricts itself. Before all that it makes the host's
//! files it sees unchangeable and drops the capabilities bubblewrap left it
//! for that (`sandbox/caps.rs`).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

/// The newest Landlock ABI we ask for; older kernels get what they support.
const ABI_WANTED: ABI = ABI::V6;

/// Paths a step may read and write, beyond its own.
const ALWAYS_WRITABLE: [&str; 2] = ["/tmp", "/dev"];
const ALWAYS_READABLE: [&str; 1] = ["/proc"];

/// What the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    /// Every requested restriction.
    Fully,
    /// Some (an older kernel).
    Partially,
    /// None (no Landlock in this kernel).
    Not,
}

/// Restricts the calling process (and what it executes) to reading `ro`,
/// writing `rw`, no TCP but connecting to `connect` ports, and no signals or
/// abstract sockets outside.
pub fn restrict(ro: &[PathBuf], rw: &[PathBuf], connect: &[u16]) -> Result<Enforced, landlock::RulesetError> {
    let mut readable: Vec<PathBuf> = ro.to_vec();
    readable.extend(ALWAYS_READABLE.iter().map(PathBuf::from));
    let mut writable: Vec<PathBuf> = rw.to_vec();
    writable.extend(ALWAYS_WRITABLE.iter().map(PathBuf::from));
    let ports = connect.iter().map(|&port| Ok::<_, landlock::RulesetError>(NetPort::new(port, AccessNet::ConnectTcp)));
    let status = paths_ruleset(&readable, &writable)?.add_rules(ports)?.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partially,
        RulesetStatus::NotEnforced => Enforced::Not,
    })
}

/// The ruleset of one tool run in a session that serves many builds
/// (a [`super::SessionPool`]'s): reading `ro`, writing `rw` (folders, or single
/// files such as devices), no TCP, no signals or abstract sockets outside;
/// for [`crate::process::RunLimits::landlock_ruleset`]. `None`: this kernel
/// cannot enforce all of it (a shared session is then not used).
pub fn confine_ruleset(ro: &[PathBuf], rw: &[PathBuf]) -> Result<Option<std::os::fd::OwnedFd>, landlock::RulesetError> {
    let created = paths_ruleset(ro, rw)?;
    // Isolation between builds rests on this ruleset alone: all or nothing.
    Ok(if kernel_abi() >= 6 { created.into() } else { None })
}

/// A ruleset handling every access this crate knows (as far as the kernel
/// does), with reading the existing paths of `ro` and everything on those
/// of `rw` allowed, and every scope.
fn paths_ruleset(ro: &[PathBuf], rw: &[PathBuf]) -> Result<landlock::RulesetCreated, landlock::RulesetError> {
    let existing = |paths: &[PathBuf]| paths.iter().filter(|p| p.exists()).cloned().collect::<Vec<_>>();
    Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_WANTED))?
        .handle_access(AccessNet::from_all(ABI_WANTED))?
        .scope(Scope::from_all(ABI_WANTED))?
        .create()?
        .add_rules(path_beneath_rules(existing(ro), AccessFs::from_read(ABI_WANTED)))?
        .add_rules(path_beneath_rules(existing(rw), AccessFs::from_all(ABI_WANTED)))
}

/// A Landlock ruleset that adds nothing but scoping (no signals, no abstract
/// sockets outside the domain it makes), for
/// [`crate::process::RunLimits::landlock_ruleset`]; `None` before ABI 6.
/// The descriptor lives as long as the process (and is closed on exec).
pub fn scope_ruleset() -> Option<std::os::fd::RawFd> {
    #[repr(C)]
    struct Attr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }
    const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;
    const SCOPE_SIGNAL: u64 = 2;
    if kernel_abi() < 6 {
        return None;
    }
    let attr = Attr { handled_access_fs: 0, handled_access_net: 0, scoped: SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL };
    // SAFETY: `attr` is a valid ruleset attribute of the size given.
    let fd = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const Attr, std::mem::size_of::<Attr>(), 0u32)
    };
    (fd >= 0).then_some(fd as std::os::fd::RawFd)
}

/// `RESOURCE=VALUE`, both numbers.
fn parse_rlimit(text: &str) -> Option<(libc::__rlimit_resource_t, u64)> {
    let (resource, value) = text.split_once('=')?;
    Some((resource.parse().ok()?, value.parse().ok()?))
}

/// The Landlock ABI this kernel offers (0 when none).
pub fn kernel_abi() -> i64 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION takes no pointer and no size.
    unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) }.max(0)
}

/// The helper's `main`: parses the command line, restricts, executes.
/// Returns only on failure, with the exit status to use, when a served
/// session's input ends, or, as the sandbox's pid 1, with the step's.
pub fn exec_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let mut args = args.into_iter();
    let (mut ro, mut rw) = (Vec::new(), Vec::new());
    let mut serve = false;
    let mut shared = false;
    let mut warm_lld = None;
    let mut connect = Vec::new();
    let mut cgroups = Vec::new();
    let mut rlimits = Vec::new();
    let mut limit_ptys = false;
    loop {
        match args.next().as_ref().and_then(|a| a.to_str()) {
            Some("--serve") => serve = true,
            Some("--limit-ptys") => limit_ptys = true,
            Some("--shared") => shared = true,
            Some("--warm-lld") => warm_lld = args.next().map(PathBuf::from),
            Some("--connect") => match args.next().as_ref().and_then(|a| a.to_str()).and_then(|p| p.parse().ok()) {
                Some(port) => connect.push(port),
                None => {
                    eprintln!("wheelwright-sandbox-exec: --connect takes a TCP port");
                    return 126;
                }
            },
            Some("--cgroup") => cgroups.extend(args.next().map(PathBuf::from)),
            Some("--rlimit") => match args.next().as_ref().and_then(|a| a.to_str()).and_then(parse_rlimit) {
                Some(limit) => rlimits.push(limit),
                None => {
                    eprintln!("wheelwright-sandbox-exec: --rlimit takes RESOURCE=VALUE (numbers)");
                    return 126;
                }
            },
            Some("--ro") => ro.extend(args.next().map(PathBuf::from)),
            Some("--rw") => rw.extend(args.next().map(PathBuf::from)),
            Some("--") => break,
            other => {
                eprintln!("wheelwright-sandbox-exec: unexpected argument {other:?}");
                return 126;
            }
        }
    }
    let program = args.next();
    if program.is_none() != serve {
        eprintln!("wheelwright-sandbox-exec: give either a program to run or --serve");
        return 126;
    }
    if (warm_lld.is_some() || shared) && !serve {
        eprintln!("wheelwright-sandbox-exec: --warm-lld and --shared are for --serve only");
        return 126;
    }
    // The cgroup first, so that everything the program starts is counted.
    for procs in &cgroups {
        if let Err(e) = std::fs::write(procs, "0") {
            eprintln!("wheelwright-sandbox-exec: cannot join the step's cgroup: {e}");
            return 126;
        }
    }
    // Then the host's files it sees unchangeable, and every capability gone.
    // And no key management call, for it or anything it starts.
    // (With its terminals capped: only bubblewrap's helper asks, as run by
    // hand `/dev/pts` is the host's.)
    let sealed = super::caps::seal_host_files(&cgroups, limit_ptys).and_then(|_| super::caps::drop_all());
    if let Err(e) = sealed.and_then(|_| super::seccomp::install_step_filter()) {
        eprintln!("wheelwright-sandbox-exec: {e}");
        return 126;
    }
    if let Err(e) = crate::process::set_rlimits(&rlimits) {
        eprintln!("wheelwright-sandbox-exec: setrlimit: {e}");
        return 126;
    }
    if let Err(e) = restrict(&ro, &rw, &connect) {
        eprintln!("wheelwright-sandbox-exec: landlock: {e}");
        return 126;
    }
    // A server of builds in turn: what Landlock leaves to every run
    // (metadata by path, watches, IPC objects) is refused to all of them.
    if let Err(e) = shared.then(super::seccomp::refuse_metadata_and_ipc).transpose() {
        eprintln!("wheelwright-sandbox-exec: seccomp: {e}");
        return 126;
    }
    // As the sandbox's pid 1, the step runs in a child; this process reaps.
    match super::init::fork_step_as_init() {
        Ok(None) => {}
        Ok(Some(status)) => return status,
        Err(e) => {
            eprintln!("wheelwright-sandbox-exec: cannot start the step as pid 2: {e}");
            return 126;
        }
    }
    let Some(program) = program else {
        return super::session::serve(std::io::stdin().lock(), std::io::stdout(), warm_lld, shared);
    };
    let err = std::process::Command::new(&program).args(args).exec();
    eprintln!("wheelwright-sandbox-exec: cannot run {}: {err}", PathBuf::from(program).display());
    127
}
