//! A seccomp filter for the server of a session that serves many builds in
//! turn ([`super::session::SessionPool`]), inherited by every tool it runs.
//!
//! Such a session shows every build's work directory, and Landlock, which
//! keeps a run to its own build's paths, does not govern a file's metadata:
//! by path, a tool could still change the mode, owner, times or extended
//! attributes of another build's files (or of the folder holding them all),
//! watch the folder for new builds with inotify, or leave SysV IPC objects
//! behind, which outlive every process of its build (io_uring, which could
//! do some of it unseen, is refused too). nasm and lld need none of that,
//! so the calls fail with `EPERM`; the descriptor-based forms (`fchmod`,
//! `fchown`, `fsetxattr`, `futimens`), which reach only files the run could
//! open, stay allowed. The other tables' calls (x32, i386) end the
//! process.
//!
//! Every step, and every warm test child, gets a smaller filter, in every
//! table of calls: the key management calls refused (`KEYS`, and fscrypt's
//! key `ioctl`), and the calls that change another process's limits or
//! scheduling (`ON_ITSELF_ONLY`), allowed only on the caller itself.

// The filters name x86-64's (and its i386 and x32 tables') call numbers;
// on another architecture they would refuse the wrong calls.
#[cfg(not(target_arch = "x86_64"))]
compile_error!("the seccomp filters are written for x86-64 (wheelwright builds and runs x86-64 modules)");

use std::io;

/// The x86-64 calls refused, by number (`asm/unistd_64.h`).
const REFUSED: &[u32] = &[
    90,  // chmod
    268, // fchmodat
    452, // fchmodat2
    92,  // chown
    94,  // lchown
    260, // fchownat
    132, // utime
    235, // utimes
    261, // futimesat
    188, // setxattr
    189, // lsetxattr
    197, // removexattr
    198, // lremovexattr
    463, // setxattrat
    466, // removexattrat
    254, // inotify_add_watch
    300, // fanotify_init
    301, // fanotify_mark
    303, // name_to_handle_at
    29,  // shmget
    64,  // semget
    68,  // msgget
    240, // mq_open
    // io_uring: its operations include setxattr and fsetxattr by path,
    // which the calls above would not see.
    425, // io_uring_setup
    426, // io_uring_enter
    427, // io_uring_register
];

/// `utimensat`: refused only with a path (`futimens` passes none).
const UTIMENSAT: u32 = 280;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Classic BPF (linux/filter.h, linux/seccomp.h).
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
// Offsets in struct seccomp_data.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LOW: u32 = 16;
const ARG1_LOW: u32 = 24;
const ARG1_HIGH: u32 = 28;
const ARG2_LOW: u32 = 32;
const ARG2_HIGH: u32 = 36;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The kernel's key management calls, which every step is refused (as
/// Docker's default profile refuses them): keyrings are not namespaced by
/// anything a sandbox unshares. Every step would hold the daemon's session
/// keyring, a warm test could hand the runner a keyring of its own
/// (`KEYCTL_SESSION_TO_PARENT`) for the next build, a key outlives its
/// maker and counts against a quota of the user's across every namespace,
/// and `request_key` can start the host's `/sbin/request-key` as root.
const KEYS: &[u32] = &[
    248, // add_key
    249, // request_key
    250, // keyctl
];

/// The same calls in the i386 table (`int 0x80`, which an x86-64 process
/// may still use: a module's test may, so such calls are not killed).
const KEYS_I386: &[u32] = &[
    286, // add_key
    287, // request_key
    288, // keyctl
];

/// `ioctl` in the x86-64, x32 (before `X32_SYSCALL_BIT`) and i386 tables.
const IOCTL: u32 = 16;
const IOCTL_X32: u32 = 514;
const IOCTL_I386: u32 = 54;

/// fscrypt's `FS_IOC_ADD_ENCRYPTION_KEY` (`linux/fscrypt.h`): adds a key to
/// a file system's own keyring, which no key call touches. Any user may,
/// on a file system with encryption; the key stays until that file system
/// is unmounted or the key removed, charged to the user's key quota: a
/// step's would outlive its build. The command is an `unsigned int`: the
/// kernel reads the argument's low 32 bits.
const FS_IOC_ADD_ENCRYPTION_KEY: u32 = 0xc050_6617;

/// `body`, which ends in a return, for the calls `numbers` (one or two:
/// a call's x86-64 and x32 numbers) once the call number is loaded; any
/// other call skips it.
fn for_calls(numbers: &[u32], body: Vec<libc::sock_filter>) -> Vec<libc::sock_filter> {
    let len = u8::try_from(body.len()).expect("a short body");
    let mut p = match numbers {
        [nr] => vec![jump(JEQ_K, *nr, 0, len)],
        [nr, alt] => vec![jump(JEQ_K, *nr, 1, 0), jump(JEQ_K, *alt, 0, len)],
        _ => unreachable!("one number, or two"),
    };
    p.extend(body);
    p
}

/// Refuses `ioctl(_, FS_IOC_ADD_ENCRYPTION_KEY, _)`, allows every other
/// `ioctl` (`ioctl_x32` too, when given).
fn refusing_the_key_ioctl(ioctl: u32, ioctl_x32: Option<u32>) -> Vec<libc::sock_filter> {
    let errno = RET_ERRNO | libc::EPERM as u32;
    let numbers: Vec<u32> = [ioctl].into_iter().chain(ioctl_x32).collect();
    let body = vec![
        stmt(LD_W_ABS, ARG1_LOW),
        jump(JEQ_K, FS_IOC_ADD_ENCRYPTION_KEY, 0, 1),
        stmt(RET_K, errno),
        stmt(RET_K, RET_ALLOW),
    ];
    for_calls(&numbers, body)
}

/// A body for [`for_calls`]: allows the call when its argument whose
/// halves are at `low` and `high` (offsets in struct seccomp_data) is a
/// NULL pointer, refuses it with `EPERM` otherwise. Ends in `RET ALLOW`
/// then `RET errno`, so a check before it may jump to the allow (4 ahead
/// of its first instruction).
fn allowed_if_null(low: u32, high: u32) -> Vec<libc::sock_filter> {
    let errno = RET_ERRNO | libc::EPERM as u32;
    vec![
        stmt(LD_W_ABS, low),
        jump(JEQ_K, 0, 0, 3),
        stmt(LD_W_ABS, high),
        jump(JEQ_K, 0, 0, 1),
        stmt(RET_K, RET_ALLOW),
        stmt(RET_K, errno),
    ]
}

/// How a call names the process it changes.
#[derive(Clone, Copy)]
enum Target {
    /// The first argument is a pid (or a thread's id); 0 is the caller.
    Pid,
    /// `prlimit64(pid, resource, new, old)`: reading another's limits
    /// (`new` NULL) changes nothing and is allowed.
    PidUnlessOnlyRead,
    /// `(which, who, …)`: allowed only with `which` this value (the
    /// process form) and `who` 0, the caller. A process group is refused
    /// too: a tool may join its session server's (`setpgid`), and a whole
    /// user's processes in the pid namespace include the server's.
    WhichWho(u32),
}

/// The calls that change another process's scheduling or limits, which a
/// step may make only on itself, with their x86-64 and i386 numbers. The
/// kernel lets a process of the same uid make them on any other: in a warm
/// runner's sandbox that is every other build's test run side by side, and
/// the runner, the session server and the warm linker (which serve the
/// builds after it and pass their limits, priority and affinity on to them).
/// A pid of 0 names the caller, as `setrlimit`, `nice` and
/// `os.sched_setaffinity(0, …)` do; a thread's own id does not (classic
/// BPF cannot know it): `pthread_setaffinity_np` and
/// `pthread_setschedparam` on a thread, or a pid given as `getpid()`, are
/// refused too.
const ON_ITSELF_ONLY: [(&str, u32, u32, Target); 7] = [
    ("setpriority", 141, 97, Target::WhichWho(0)), // PRIO_PROCESS
    ("sched_setparam", 142, 154, Target::Pid),
    ("sched_setscheduler", 144, 156, Target::Pid),
    ("sched_setaffinity", 203, 241, Target::Pid),
    ("ioprio_set", 251, 289, Target::WhichWho(1)), // IOPRIO_WHO_PROCESS
    ("prlimit64", 302, 340, Target::PidUnlessOnlyRead),
    ("sched_setattr", 314, 351, Target::Pid),
];

/// [`ON_ITSELF_ONLY`]'s rules, for the x86-64 (and x32) or the i386 numbers.
fn only_on_itself(i386: bool) -> Vec<libc::sock_filter> {
    let errno = RET_ERRNO | libc::EPERM as u32;
    let mut p = Vec::new();
    for (_name, x86_64, i386_nr, target) in ON_ITSELF_ONLY {
        let body = match target {
            Target::Pid => {
                vec![stmt(LD_W_ABS, ARG0_LOW), jump(JEQ_K, 0, 0, 1), stmt(RET_K, RET_ALLOW), stmt(RET_K, errno)]
            }
            // A pid of 0 jumps to the allow at the end of the NULL check.
            Target::PidUnlessOnlyRead => {
                let mut body = vec![stmt(LD_W_ABS, ARG0_LOW), jump(JEQ_K, 0, 4, 0)];
                body.extend(allowed_if_null(ARG2_LOW, ARG2_HIGH));
                body
            }
            Target::WhichWho(own_process) => vec![
                stmt(LD_W_ABS, ARG0_LOW),
                jump(JEQ_K, own_process, 0, 3),
                stmt(LD_W_ABS, ARG1_LOW),
                jump(JEQ_K, 0, 0, 1),
                stmt(RET_K, RET_ALLOW),
                stmt(RET_K, errno),
            ],
        };
        p.extend(for_calls(&[if i386 { i386_nr } else { x86_64 }], body));
    }
    p
}

/// `EPERM` for each call of `numbers`.
fn refusing(numbers: &[u32]) -> impl Iterator<Item = libc::sock_filter> + '_ {
    let errno = RET_ERRNO | libc::EPERM as u32;
    numbers.iter().flat_map(move |&nr| [jump(JEQ_K, nr, 0, 1), stmt(RET_K, errno)])
}

/// The filter of every step ([`install_step_filter`]): the key calls (and
/// fscrypt's key ioctl) refused, and [`ON_ITSELF_ONLY`] allowed only on the
/// caller, in each of the three tables an x86-64 process can call through
/// (x86-64, x32, whose numbers are x86-64's with `X32_SYSCALL_BIT` set, and
/// i386), everything else allowed: unlike the shared server's, it runs
/// project code, which may use the other tables for other calls.
fn step_program() -> Vec<libc::sock_filter> {
    let mut x86_64 = vec![
        // No other architecture reaches an x86-64 kernel's filter.
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR),
        stmt(AND_K, !X32_SYSCALL_BIT),
    ];
    x86_64.extend(refusing(KEYS));
    x86_64.extend(refusing_the_key_ioctl(IOCTL, Some(IOCTL_X32)));
    x86_64.extend(only_on_itself(false));
    x86_64.push(stmt(RET_K, RET_ALLOW));
    let skip = u8::try_from(x86_64.len()).expect("a short program");
    let mut p = vec![stmt(LD_W_ABS, ARCH), jump(JEQ_K, AUDIT_ARCH_I386, skip, 0)];
    p.extend(x86_64);
    p.push(stmt(LD_W_ABS, NR));
    p.extend(refusing(KEYS_I386));
    p.extend(refusing_the_key_ioctl(IOCTL_I386, None));
    p.extend(only_on_itself(true));
    p.push(stmt(RET_K, RET_ALLOW));
    p
}

/// [`install_step_filter`]'s program as the bytes of its `struct sock_filter`
/// array (native byte order), in hex: what a warm test child installs
/// ([`crate::warm::Request::seccomp`]), so that both paths refuse the same.
/// Made once: every warm run sends it.
pub fn step_program_hex() -> &'static str {
    static HEX: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut hex = String::new();
        for f in step_program() {
            let bytes = [&f.code.to_ne_bytes()[..], &[f.jt, f.jf], &f.k.to_ne_bytes()[..]].concat();
            hex.extend(bytes.iter().map(|b| format!("{b:02x}")));
        }
        hex
    });
    &HEX
}

/// The shared server's filter ([`refuse_metadata_and_ipc`]).
fn program() -> Vec<libc::sock_filter> {
    // Another table's calls (x32, i386) end the process: nasm and lld make
    // none, and each would need its own list.
    let mut p = vec![
        stmt(LD_W_ABS, ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, RET_KILL_PROCESS),
    ];
    p.extend(refusing(REFUSED));
    // utimensat(fd, path, …): allowed only when path is NULL.
    p.extend(for_calls(&[UTIMENSAT], allowed_if_null(ARG1_LOW, ARG1_HIGH)));
    p.push(stmt(RET_K, RET_ALLOW));
    p
}

/// Installs the filter on the calling thread (before it starts others:
/// they and every child inherit it). Sets `no_new_privs`, which it needs.
pub fn refuse_metadata_and_ipc() -> io::Result<()> {
    install(&program())
}

/// Refuses the key management calls (`KEYS`) to the calling thread and
/// everything it starts, and changes to other processes' limits and
/// scheduling (`ON_ITSELF_ONLY`): every step. First makes sure the session keyring
/// it holds is empty ([`hold_an_empty_session_keyring`]), so that no kernel
/// user of keys the filter does not see (a socket that takes a key by
/// serial) finds the daemon's keys possessed. Sets `no_new_privs`.
pub fn install_step_filter() -> io::Result<()> {
    hold_an_empty_session_keyring()?;
    install(&step_program())
}

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
const KEYCTL_READ: libc::c_long = 11;
const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;

/// Leaves the calling thread's session keyring for a new, empty, anonymous
/// one (freed with the last process holding it), unless the one it holds is
/// empty already. The daemon does this once at its start, before it starts
/// a thread, so that every step inherits an empty keyring and the helper
/// has nothing to do: a new keyring per step would count against a
/// non-root user's quota (`kernel.keys.maxkeys`, 200 by default), which
/// frees a keyring only when the kernel's collector runs. A kernel without
/// keys has nothing to leave.
pub fn hold_an_empty_session_keyring() -> io::Result<()> {
    // SAFETY: keyctl with integer arguments: the size of the keyring's list
    // of keys, read into no buffer; then a join with a null name.
    let listed = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_READ, KEY_SPEC_SESSION_KEYRING, 0, 0) };
    if listed == 0 {
        return Ok(());
    }
    let joined =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<libc::c_char>()) };
    if joined >= 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ENOSYS) => Ok(()),
        e => Err(io::Error::new(
            e.kind(),
            format!("cannot leave the session keyring it inherited for an empty one: {e} (a non-root user's keys count against kernel.keys.maxkeys)"),
        )),
    }
}

fn install(program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
    // SAFETY: prctl with integer arguments; then PR_SET_SECCOMP reads the
    // program `fprog` points to, alive for the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const libc::sock_fprog) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn refused_calls_fail_with_eperm_and_descriptor_forms_still_work() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let path = CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
        // In a child: the filter stays with the process that installs it.
        let code = in_child(|| {
            (|| unsafe {
                refuse_metadata_and_ipc().ok()?;
                let eperm = |r: libc::c_int| r == -1 && *libc::__errno_location() == libc::EPERM;
                let fd = libc::open(path.as_ptr(), libc::O_RDWR);
                let checks = [
                    eperm(libc::chmod(path.as_ptr(), 0o600)),
                    eperm(libc::fchmodat(libc::AT_FDCWD, path.as_ptr(), 0o600, 0)),
                    eperm(libc::chown(path.as_ptr(), libc::getuid(), libc::getgid())),
                    eperm(libc::utimensat(libc::AT_FDCWD, path.as_ptr(), std::ptr::null(), 0)),
                    eperm(libc::shmget(libc::IPC_PRIVATE, 4096, 0o600)),
                    eperm(libc::syscall(libc::SYS_io_uring_setup, 8, [0u8; 120].as_mut_ptr()) as libc::c_int),
                    eperm(libc::inotify_add_watch(libc::inotify_init1(0), path.as_ptr(), libc::IN_MODIFY)),
                    fd >= 0 && libc::fchmod(fd, 0o600) == 0,
                    fd >= 0 && libc::futimens(fd, std::ptr::null()) == 0,
                ];
                Some(checks.iter().position(|ok| !ok).map_or(0, |i| 10 + i as i32))
            })()
            .unwrap_or(1)
        });
        assert_eq!(code, 0, "check {code} failed (10 = the first)");
        // Outside the child, untouched.
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    }

    /// Runs `check` in a forked child (a filter stays with the process that
    /// installs it); the child's exit code, which `check` returns.
    fn in_child(check: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = check();
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "{status:#x}");
        libc::WEXITSTATUS(status)
    }

    /// A call through the x86-64 `syscall` instruction with `nr` as it is.
    unsafe fn raw_syscall(nr: i64, a: i64, b: i64) -> i64 {
        let ret: i64;
        // SAFETY: a system call of two integer arguments; the instruction
        // clobbers rcx and r11.
        unsafe {
            std::arch::asm!("syscall", inlateout("rax") nr => ret, in("rdi") a, in("rsi") b,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    /// A call through the i386 table (`int 0x80`).
    unsafe fn int80(nr: i64, a: i64, b: i64) -> i64 {
        let ret: i64;
        // SAFETY: as above; rbx (reserved by LLVM) is swapped in and out,
        // and r8-r11 may come back cleared.
        unsafe {
            std::arch::asm!("xchg {a}, rbx", "int 0x80", "xchg {a}, rbx", a = inout(reg) a => _,
                inlateout("rax") nr => ret, in("rcx") b, lateout("r8") _, lateout("r9") _,
                lateout("r10") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    #[test]
    fn every_key_call_fails_with_eperm_and_others_pass() {
        let code = in_child(|| unsafe {
            if install_step_filter().is_err() {
                return 1;
            }
            let eperm = |r: libc::c_long| r == -1 && *libc::__errno_location() == libc::EPERM;
            let user = c"user".as_ptr();
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            let checks = [
                eperm(libc::syscall(libc::SYS_add_key, user, c"k".as_ptr(), c"v".as_ptr(), 1, -4)),
                eperm(libc::syscall(libc::SYS_request_key, user, c"k".as_ptr(), 0, 0)),
                eperm(libc::syscall(libc::SYS_keyctl, 0, -3, 0)),
                libc::getpid() > 0,
                libc::getuid() == libc::geteuid(),
                // keyctl(KEYCTL_GET_KEYRING_ID, the session keyring) through
                // the x32 and i386 tables: refused (-EPERM) too; an i386
                // getpid still works.
                raw_syscall(0x4000_0000 | 250, 0, -3) == -(libc::EPERM as i64),
                int80(288, 0, -3) == -(libc::EPERM as i64),
                int80(20, 0, 0) == i64::from(libc::getpid()),
                // fscrypt's key ioctl, on a descriptor that has no ioctls
                // (ENOTTY unfiltered), in each table, the high half of the
                // command ignored as the kernel does; another ioctl passes.
                null >= 0,
                eperm(libc::ioctl(null, FS_IOC_ADD_ENCRYPTION_KEY as _, std::ptr::null_mut::<u8>()) as libc::c_long),
                raw_syscall(
                    IOCTL.into(),
                    null.into(),
                    (0xffff_ffff_u64 << 32) as i64 | i64::from(FS_IOC_ADD_ENCRYPTION_KEY),
                ) == -(libc::EPERM as i64),
                raw_syscall((X32_SYSCALL_BIT | IOCTL_X32).into(), null.into(), i64::from(FS_IOC_ADD_ENCRYPTION_KEY))
                    == -(libc::EPERM as i64),
                int80(IOCTL_I386.into(), null.into(), i64::from(FS_IOC_ADD_ENCRYPTION_KEY)) == -(libc::EPERM as i64),
                raw_syscall(IOCTL.into(), null.into(), libc::TCGETS as i64) == -(libc::ENOTTY as i64),
                int80(IOCTL_I386.into(), null.into(), libc::TCGETS as i64) == -(libc::ENOTTY as i64),
            ];
            checks.iter().position(|ok| !ok).map_or(0, |i| 10 + i as i32)
        });
        assert_eq!(code, 0, "check {code} failed (10 = the first)");
    }

    /// In a forked child: joins a fresh session keyring, with a key in it
    /// if `with_a_key`, then [`hold_an_empty_session_keyring`]; exits 0 if
    /// the keyring it then holds is empty and changed exactly when it held
    /// a key.
    fn empty_session_keyring_in_child(with_a_key: bool) -> i32 {
        let session = || unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) };
        in_child(|| unsafe {
            let user = c"user".as_ptr();
            let made = libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<libc::c_char>());
            let keyed = !with_a_key || libc::syscall(libc::SYS_add_key, user, c"k".as_ptr(), c"v".as_ptr(), 1, -3) > 0;
            let before = session();
            match hold_an_empty_session_keyring() {
                _ if made < 0 || !keyed => 3,
                Ok(()) if (session() != before) != with_a_key => 2,
                Ok(()) if libc::syscall(libc::SYS_keyctl, KEYCTL_READ, -3, 0, 0) != 0 => 4,
                Ok(()) => 0,
                Err(_) => 1,
            }
        })
    }

    #[test]
    fn a_step_holds_an_empty_session_keyring_made_only_when_the_inherited_one_is_not() {
        // SAFETY: keyctl with integer arguments.
        if unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) } < 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS)
        {
            eprintln!("this kernel has no keys: nothing to leave");
            return;
        }
        assert_eq!(empty_session_keyring_in_child(true), 0, "a keyring with a key is left");
        assert_eq!(empty_session_keyring_in_child(false), 0, "an empty keyring is kept");
    }

    #[test]
    fn another_processs_limits_and_scheduling_cannot_be_changed_and_ones_own_can() {
        // Another process of the same uid, which the kernel alone would let
        // the child change: a sleeper, so that a regression changes nothing
        // that matters (the same limits and mask it has, a lower priority).
        let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let other = i64::from(sleeper.id());
        let nobody = 4_000_000_i64; // a uid with no process: unfiltered, ESRCH
        let code = in_child(|| unsafe {
            if install_step_filter().is_err() {
                return 1;
            }
            let eperm = |r: i64| r == -1 && *libc::__errno_location() == libc::EPERM;
            let raw_eperm = |r: i64| r == -(libc::EPERM as i64);
            let mut limit = libc::rlimit64 { rlim_cur: 0, rlim_max: 0 };
            let limit = &mut limit as *mut libc::rlimit64 as i64;
            let mut cpus = [0u64; 16];
            let cpus_len = std::mem::size_of_val(&cpus) as i64;
            let cpus = cpus.as_mut_ptr() as i64;
            let mut param = 0i32;
            let param = &mut param as *mut i32 as i64;
            let call = |nr: i64, a: i64, b: i64, c: i64, d: i64| libc::syscall(nr, a, b, c, d);
            let (stack, other_sched) = (i64::from(libc::RLIMIT_STACK), i64::from(libc::SCHED_OTHER));
            let checks = [
                // Reading is allowed, on anyone; so is changing oneself.
                call(libc::SYS_prlimit64, other, stack, 0, limit) == 0,
                call(libc::SYS_prlimit64, 0, stack, limit, 0) == 0,
                libc::setrlimit(libc::RLIMIT_CORE, &libc::rlimit { rlim_cur: 0, rlim_max: 0 }) == 0,
                call(libc::SYS_sched_getaffinity, 0, cpus_len, cpus, 0) > 0,
                call(libc::SYS_sched_setaffinity, 0, cpus_len, cpus, 0) == 0,
                call(libc::SYS_sched_getparam, 0, param, 0, 0) == 0,
                call(libc::SYS_sched_setscheduler, 0, other_sched, param, 0) == 0,
                call(libc::SYS_sched_setparam, 0, param, 0, 0) == 0,
                libc::setpriority(libc::PRIO_PROCESS, 0, 1) == 0,
                // Changing another process, a process group (a tool may
                // join its server's) or a whole user's: refused.
                eperm(libc::setpriority(libc::PRIO_PGRP, 0, 1).into()),
                eperm(call(libc::SYS_ioprio_set, 2, 0, 0, 0)),
                eperm(call(libc::SYS_prlimit64, other, stack, limit, 0)),
                eperm(call(libc::SYS_sched_setaffinity, other, cpus_len, cpus, 0)),
                eperm(call(libc::SYS_sched_setscheduler, other, other_sched, param, 0)),
                eperm(call(libc::SYS_sched_setparam, other, param, 0, 0)),
                eperm(call(libc::SYS_sched_setattr, other, 0, 0, 0)),
                eperm(call(libc::SYS_setpriority, libc::PRIO_PROCESS.into(), other, 19, 0)),
                eperm(call(libc::SYS_setpriority, libc::PRIO_USER.into(), nobody, 19, 0)),
                eperm(call(libc::SYS_ioprio_set, 1, other, 0, 0)),
                eperm(call(libc::SYS_ioprio_set, 3, nobody, 0, 0)),
                // The same through the x32 and i386 tables.
                raw_eperm(raw_syscall4(i64::from(X32_SYSCALL_BIT) | libc::SYS_setpriority, 0, other, 19)),
                raw_eperm(int80(97, 0, other)),
                raw_eperm(int80(241, other, cpus_len)),
            ];
            checks.iter().position(|ok| !ok).map_or(0, |i| 10 + i as i32)
        });
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert_eq!(code, 0, "check {code} failed (10 = the first)");
    }

    /// A call through the x86-64 `syscall` instruction with three arguments.
    unsafe fn raw_syscall4(nr: i64, a: i64, b: i64, c: i64) -> i64 {
        let ret: i64;
        // SAFETY: a system call of three integer arguments; the instruction
        // clobbers rcx and r11.
        unsafe {
            std::arch::asm!("syscall", inlateout("rax") nr => ret, in("rdi") a, in("rsi") b, in("rdx") c,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    #[test]
    fn the_hex_program_a_warm_child_installs_is_the_filter_every_step_gets() {
        let program = step_program();
        let hex = step_program_hex();
        assert_eq!(hex.len(), program.len() * 16);
        // The first instruction: load the architecture (code 0x20, k 4).
        assert_eq!(&hex[..16], "2000000004000000");
    }
}
