//! The two capabilities bubblewrap leaves the Landlock helper (and a warm
//! runner), inside the sandbox's own user namespace only, and what they are
//! for: making the host's files a step sees unchangeable before the step
//! starts. Landlock governs reading and writing, not metadata: a step whose
//! user owns a file it sees can `chmod`, `chown` to itself, `utime` or set
//! xattrs on it. When the daemon runs as root that is every device node
//! bubblewrap binds (the host's own `/dev/null`…); always it is the
//! `cgroup.procs` files a step joins through. So the helper, in a mount
//! namespace of its own, remounts each device read-only (a device on a
//! read-only mount is still read and written, its inode no longer changed)
//! and each cgroup file once it has joined, then drops every capability: the bounding set, the
//! effective, permitted and inheritable sets, the ambient set. Nothing the
//! step executes can get one back (the bounding set is empty, and
//! no_new_privs is set before it runs).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The device nodes bubblewrap's `--dev` binds from the host.
pub const DEVICES: [&str; 6] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"];

/// The size of a step's (and a warm child's) `/dev`, which holds only
/// mount points and links.
pub const DEV_SIZE: u64 = 64 << 10;

/// The links of a step's (and a warm child's) `/dev`, as bubblewrap's
/// `--dev` makes them: path, target.
pub const DEV_LINKS: [(&str, &str); 5] = [
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

/// The most pseudo-terminals a step may hold at once. Terminals come from
/// one pool for the whole host (`kernel.pty.max`, 4096 by default, a
/// quarter of it reserved for the host's own `/dev/pts`): without a cap,
/// one step could take every terminal every other build's and container's
/// instance draws from.
pub const PTYS: u32 = 64;

/// The options of a step's devpts instance: those bubblewrap's `--dev`
/// uses, and the cap. The helper mounts a cold step's with them, a warm child its
/// own ([`crate::warm::ViewMount::Devpts`]).
pub fn devpts_options() -> String {
    format!("newinstance,ptmxmode=0666,mode=620,max={PTYS}")
}

/// Mounts a devpts instance of the step's own, capped at [`PTYS`]
/// terminals, at `/dev/pts` (an empty folder the sandbox's hand-built
/// `/dev` holds; bubblewrap's `--dev` would have mounted an uncapped one
/// there, in a user namespace above the step's, which cannot be remounted
/// with a cap), in the mount namespace [`seal_host_files`] made;
/// `/dev/ptmx` links to it.
fn capped_ptys() -> std::io::Result<()> {
    let (target, kind) = (c"/dev/pts", c"devpts");
    let options = std::ffi::CString::new(devpts_options()).expect("no NUL in the options");
    let flags = libc::MS_NOSUID | libc::MS_NOEXEC;
    // SAFETY: valid C strings.
    if unsafe { libc::mount(kind.as_ptr(), target.as_ptr(), kind.as_ptr(), flags, options.as_ptr().cast()) } != 0 {
        return Err(io_error("mounting a capped /dev/pts"));
    }
    Ok(())
}

/// The capabilities bubblewrap keeps for the helper: mounting, and
/// dropping the bounding set.
pub const KEPT: [&str; 2] = ["CAP_SYS_ADMIN", "CAP_SETPCAP"];

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)
}

/// Gives the calling process a mount namespace of its own (a copy of
/// bubblewrap's, whose mounts the helper's nested user namespace may then
/// remount) that shares nothing with any other.
pub fn own_mounts() -> std::io::Result<()> {
    // SAFETY: unshare and mount with valid C strings or null pointers.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(io_error("unshare(CLONE_NEWNS)"));
        }
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(io_error("making / private"));
        }
    }
    Ok(())
}

/// The last OS error, saying what failed.
fn io_error(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Seals ([`seal`]) each of [`DEVICES`] that is a character device and
/// each of `joined` (the cgroup files the step joined through), where
/// bubblewrap bound them (a mount point of their own; run outside
/// bubblewrap, the helper finds none): in a mount namespace of the
/// process's own ([`own_mounts`]), made when there is something to seal.
/// A device can still be opened, read and written, but not `chmod`ed,
/// `chown`ed, touched or given xattrs. With `limit_ptys`, `/dev/pts` is
/// first replaced by a capped instance of the step's own ([`PTYS`]).
pub fn seal_host_files(joined: &[PathBuf], limit_ptys: bool) -> std::io::Result<()> {
    let devices = DEVICES
        .iter()
        .map(Path::new)
        .filter(|d| std::fs::symlink_metadata(d).is_ok_and(|info| info.file_type().is_char_device()));
    let mut bound = Vec::new();
    for path in devices.chain(joined.iter().map(PathBuf::as_path)) {
        if is_bound(path)? {
            bound.push(path);
        }
    }
    if bound.is_empty() && !limit_ptys {
        return Ok(());
    }
    own_mounts()?;
    if limit_ptys {
        capped_ptys()?;
    }
    bound.into_iter().try_for_each(seal)?;
    standard_fds_sealed()
}

/// Whether `path` is a mount of its own (a bind): its mount differs from
/// its folder's.
fn is_bound(path: &Path) -> std::io::Result<bool> {
    let mount_id = |p: &Path| -> std::io::Result<u64> {
        let name = c_path(p)?;
        // SAFETY: `name` is a valid C string and `info` a statx to fill.
        let mut info: libc::statx = unsafe { std::mem::zeroed() };
        let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_DONT_SYNC;
        if unsafe { libc::statx(libc::AT_FDCWD, name.as_ptr(), flags, libc::STATX_MNT_ID, &mut info) } != 0 {
            return Err(io_error(&format!("statx {}", p.display())));
        }
        if info.stx_mask & libc::STATX_MNT_ID == 0 {
            return Err(std::io::Error::other(format!("statx gives no mount id for {}", p.display())));
        }
        Ok(info.stx_mnt_id)
    };
    let folder = path.parent().unwrap_or(Path::new("/"));
    Ok(mount_id(path)? != mount_id(folder)?)
}

/// Points each of the standard descriptors that is a character device (the
/// daemon's `/dev/null` as stdin: a descriptor of the host's node on a
/// writable mount, through which `fchmod` would still reach it) at the
/// sealed `/dev/null` instead; pipes and sockets stay.
fn standard_fds_sealed() -> std::io::Result<()> {
    for fd in 0..3 {
        // SAFETY: fstat into a zeroed stat of a descriptor number.
        let mut info: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut info) } != 0 || info.st_mode & libc::S_IFMT != libc::S_IFCHR {
            continue;
        }
        let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
        // SAFETY: dup2 onto a standard descriptor from one we own.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) } < 0 {
            return Err(io_error("dup2 of the sealed /dev/null"));
        }
    }
    Ok(())
}

/// Remounts the mount at `path` (a bind of one file or folder) read-only,
/// nosuid and noexec, keeping its access-time, nodev and nosymfollow flags
/// (which a copied mount may not change, or which only restrict).
pub fn seal(path: &Path) -> std::io::Result<()> {
    let name = c_path(path)?;
    // SAFETY: `name` is a valid C string and `info` a statvfs to fill.
    let mut info: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(name.as_ptr(), &mut info) } != 0 {
        return Err(io_error(&format!("statvfs {}", path.display())));
    }
    let kept = [
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
        (ST_NOSYMFOLLOW, libc::MS_NOSYMFOLLOW),
    ];
    let mut flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC;
    for (st, ms) in kept {
        if info.f_flag & st != 0 {
            flags |= ms;
        }
    }
    // SAFETY: `name` is a valid C string; the other pointers may be null.
    if unsafe { libc::mount(std::ptr::null(), name.as_ptr(), std::ptr::null(), flags, std::ptr::null()) } != 0 {
        return Err(io_error(&format!("remounting {} read-only", path.display())));
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// statvfs's flag for a nosymfollow mount (Linux 5.10; not in `libc`).
const ST_NOSYMFOLLOW: libc::c_ulong = 0x2000;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// Drops every capability of the calling thread (it must be the only one):
/// the bounding set first (which takes `CAP_SETPCAP`), then the ambient,
/// effective, permitted and inheritable sets; and checks they are empty.
pub fn drop_all() -> std::io::Result<()> {
    let last: u32 =
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(63);
    // Without CAP_SETPCAP (the helper run by hand, by an ordinary user) the
    // bounding set stays: with nothing permitted and no_new_privs, which
    // Landlock sets before the program runs, nothing can be gained from it.
    let bounding = has_effective(CAP_SETPCAP)?;
    for cap in (0..=last).filter(|_| bounding) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("dropping capability {cap} from the bounding set: {e}"),
                ));
            }
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) };
    let mut header = CapHeader { version: CAP_VERSION_3, pid: 0 };
    let data = [CapData::default(); 2];
    // SAFETY: a version-3 header and two data words, as capset(2) reads.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("capset: {e}")));
    }
    match held(bounding)? {
        None => Ok(()),
        Some(set) => Err(std::io::Error::other(format!("a capability is still held ({set})"))),
    }
}

/// `CAP_SETPCAP`'s number.
const CAP_SETPCAP: u32 = 8;

/// Whether the thread's effective set holds capability `cap`.
fn has_effective(cap: u32) -> std::io::Result<bool> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| std::io::Error::other("/proc/self/status lacks CapEff"))?;
    Ok(effective & (1 << cap) != 0)
}

/// The first of the thread's capability sets (as `/proc/self/status`
/// names them; the bounding set only with `bounding`) that is not empty.
pub fn held(bounding: bool) -> std::io::Result<Option<String>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let mut seen = 0;
    for line in status.lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].contains(&name) {
            seen += 1;
            if name == "CapBnd" && !bounding {
                continue;
            }
            if u64::from_str_radix(value.trim(), 16) != Ok(0) {
                return Ok(Some(format!("{name} {}", value.trim())));
            }
        }
    }
    if seen < 5 {
        return Err(std::io::Error::other("/proc/self/status lacks the capability sets"));
    }
    Ok(None)
}
