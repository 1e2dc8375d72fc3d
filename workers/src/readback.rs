//! Files in directories that sandboxed code can write: reading them back in
//! the host, and creating new ones there, without trusting what the sandbox
//! left behind.
//!
//! Anything a step could write (pytest's JUnit XML, the objects nasm wrote,
//! the modules the linker wrote) may have been replaced by a symbolic link
//! to a host file or to `/dev/zero`, by a FIFO that blocks a reader for
//! ever, or grown without bound; a folder on the way may have become a link
//! to `/`. So every read starts from a directory the host created and opened
//! itself ([`Root`]), resolves the path beneath it without following any
//! symbolic link (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`,
//! else `openat` with `O_NOFOLLOW` on every component), opens with
//! `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`, accepts regular files only
//! (`fstat`) and stops at a size cap.
//!
//! There is no separate timer: `O_NONBLOCK` makes opening a FIFO return at
//! once, and the regular file it then insists on never blocks a read (the
//! job directory is a local file system, not FUSE or NFS), so the checks
//! above are the timeout in practice.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The cap on pytest's JUnit XML.
pub const JUNIT_MAX: u64 = 4 << 20;

/// Why a file could not be read back (or created).
#[derive(Debug, thiserror::Error)]
pub enum ReadbackError {
    /// The path is not a plain relative path beneath the root.
    #[error("{what} ({path}) is not inside the directory it is read from")]
    Outside {
        /// What the file is, for the message.
        what: String,
        /// The path that was asked for.
        path: String,
    },
    /// Nothing is there.
    #[error("{what} is missing")]
    Missing {
        /// What the file is.
        what: String,
    },
    /// Something other than a regular file is there.
    #[error("{what} is not a regular file but {kind}")]
    NotRegular {
        /// What the file is.
        what: String,
        /// What is there instead: `a symbolic link`, `a FIFO`, ...
        kind: &'static str,
    },
    /// A file to be created is already there (perhaps as a link).
    #[error("{what} already exists")]
    Exists {
        /// What the file is.
        what: String,
    },
    /// A folder on the way to the file is a symbolic link.
    #[error("{what} is not a regular file: a folder on its path is a symbolic link")]
    LinkOnTheWay {
        /// What the file is.
        what: String,
    },
    /// The file is larger than the cap.
    #[error("{what} is larger than {limit}")]
    TooLarge {
        /// What the file is.
        what: String,
        /// The cap, for people (`4 MiB`).
        limit: String,
    },
    /// The file exists and is regular, but the system refused.
    #[error("cannot read {what}: {source}")]
    Io {
        /// What the file is.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ReadbackError {
    /// Whether the host is to blame (an I/O error, a wrong path), as opposed
    /// to what sandboxed code left in the directory.
    pub fn is_host_failure(&self) -> bool {
        matches!(self, ReadbackError::Io { .. } | ReadbackError::Outside { .. })
    }
}

/// A directory the host created (a job or work directory), opened once; the
/// anchor every path beneath it is resolved from.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// Why opening beneath the root failed, before it is named for a message.
enum OpenFailure {
    LinkOnTheWay,
    Os(std::io::Error),
}

impl Root {
    /// Opens `path`, which the host made and trusts (its own name is
    /// followed as given; nothing beneath it will be).
    pub fn open(path: &Path) -> std::io::Result<Root> {
        let fd = File::open(path)?;
        if !fd.metadata()?.is_dir() {
            return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(Root { fd: fd.into(), path: path.to_path_buf() })
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `path` (relative, or absolute beneath the root) if it is a
    /// regular file of at most `max` bytes; `what` names it in errors
    /// ("pytest's JUnit XML").
    pub fn read(&self, path: &Path, max: u64, what: &str) -> Result<Vec<u8>, ReadbackError> {
        let parts = self.parts(path, what)?;
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
        let fd = self.open_beneath(&parts, flags, 0).map_err(|e| named(e, what))?;
        let file = File::from(fd);
        let io = |source| ReadbackError::Io { what: what.to_string(), source };
        let meta = file.metadata().map_err(io)?;
        if !meta.file_type().is_file() {
            return Err(ReadbackError::NotRegular { what: what.to_string(), kind: kind_of(&meta.file_type()) });
        }
        let too_large = || ReadbackError::TooLarge { what: what.to_string(), limit: human_size(max) };
        if meta.len() > max {
            return Err(too_large());
        }
        // The size is checked again while reading: the file may have grown
        // since fstat if anything still writes it.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        (&file).take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 > max {
            return Err(too_large());
        }
        Ok(bytes)
    }

    /// Creates `path` beneath the root, which must not exist yet (not even
    /// as a link), readable and writable by its owner only, holding `contents`.
    pub fn create_new(&self, path: &Path, contents: &[u8], what: &str) -> Result<(), ReadbackError> {
        let parts = self.parts(path, what)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd = self.open_beneath(&parts, flags, 0o600).map_err(|e| named(e, what))?;
        File::from(fd).write_all(contents).map_err(|source| ReadbackError::Io { what: what.to_string(), source })
    }

    /// `path`'s components beneath the root: normal names only.
    fn parts<'p>(&self, path: &'p Path, what: &str) -> Result<Vec<&'p OsStr>, ReadbackError> {
        let outside = || ReadbackError::Outside { what: what.to_string(), path: path.display().to_string() };
        let rel = if path.is_absolute() { path.strip_prefix(&self.path).map_err(|_| outside())? } else { path };
        let mut parts = Vec::new();
        for component in rel.components() {
            match component {
                Component::Normal(name) => parts.push(name),
                Component::CurDir => {}
                _ => return Err(outside()),
            }
        }
        if parts.is_empty() {
            return Err(outside());
        }
        Ok(parts)
    }

    /// Opens `parts` beneath the root without following any symbolic link:
    /// `openat2` where the kernel has it, otherwise (and to say which
    /// component is a link) one `openat` per component.
    fn open_beneath(&self, parts: &[&OsStr], flags: libc::c_int, mode: libc::mode_t) -> Result<OwnedFd, OpenFailure> {
        let joined: PathBuf = parts.iter().collect();
        let path = c_path(joined.as_os_str()).map_err(OpenFailure::Os)?;
        match openat2(self.fd.as_raw_fd(), &path, flags, mode) {
            Ok(fd) => return Ok(fd),
            // A link somewhere: the walk below says where.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {}
            // No openat2 here (an old kernel, a seccomp filter): walk.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EINVAL)) => {}
            Err(e) => return Err(OpenFailure::Os(e)),
        }
        self.walk(parts, flags, mode)
    }

    /// The fallback of [`Root::open_beneath`]: one `openat` per component,
    /// each with `O_NOFOLLOW`, from the root's descriptor down.
    fn walk(&self, parts: &[&OsStr], flags: libc::c_int, mode: libc::mode_t) -> Result<OwnedFd, OpenFailure> {
        let (last, folders) = parts.split_last().expect("at least one component");
        let mut dir: Option<OwnedFd> = None;
        for folder in folders {
            let at = dir.as_ref().map_or(self.fd.as_raw_fd(), |d| d.as_raw_fd());
            let name = c_path(folder).map_err(OpenFailure::Os)?;
            // O_PATH | O_NOFOLLOW opens a link itself, so that fstat can
            // tell a link (refused) from a folder (entered).
            let fd =
                openat(at, &name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0).map_err(OpenFailure::Os)?;
            let kind = File::from(fd.try_clone().map_err(OpenFailure::Os)?).metadata().map_err(OpenFailure::Os)?;
            if kind.file_type().is_symlink() {
                return Err(OpenFailure::LinkOnTheWay);
            }
            if !kind.is_dir() {
                return Err(OpenFailure::Os(std::io::Error::from_raw_os_error(libc::ENOTDIR)));
            }
            dir = Some(fd);
        }
        let at = dir.as_ref().map_or(self.fd.as_raw_fd(), |d| d.as_raw_fd());
        openat(at, &c_path(last).map_err(OpenFailure::Os)?, flags | libc::O_NOFOLLOW, mode).map_err(OpenFailure::Os)
    }
}

/// An open failure, named for `what`.
fn named(failure: OpenFailure, what: &str) -> ReadbackError {
    let what = what.to_string();
    match failure {
        OpenFailure::LinkOnTheWay => ReadbackError::LinkOnTheWay { what },
        OpenFailure::Os(e) => match e.raw_os_error() {
            Some(libc::ENOENT) => ReadbackError::Missing { what },
            // O_NOFOLLOW on a link as the last component.
            Some(libc::ELOOP) => ReadbackError::NotRegular { what, kind: "a symbolic link" },
            // Opening a Unix socket.
            Some(libc::ENXIO) => ReadbackError::NotRegular { what, kind: "a socket" },
            Some(libc::EEXIST) => ReadbackError::Exists { what },
            _ => ReadbackError::Io { what, source: e },
        },
    }
}

fn kind_of(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "something else"
    }
}

/// `4 MiB`, `64 KiB`, `1000 bytes`.
pub fn human_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

fn c_path(name: &OsStr) -> std::io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// `struct open_how` of `<linux/openat2.h>` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2(dir: RawFd, path: &CString, flags: libc::c_int, mode: libc::mode_t) -> std::io::Result<OwnedFd> {
    let how = OpenHow {
        flags: flags as u64,
        mode: mode as u64,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `path` is a valid C string and `how` a valid open_how of the
    // size passed, both alive for the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, dir, path.as_ptr(), &how as *const OpenHow, std::mem::size_of::<OpenHow>())
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn openat(dir: RawFd, path: &CString, flags: libc::c_int, mode: libc::mode_t) -> std::io::Result<OwnedFd> {
    // SAFETY: `path` is a valid C string alive for the call.
    let fd = unsafe { libc::openat(dir, path.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::time::{Duration, Instant};

    use super::*;

    fn root() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn reads_a_regular_file_beneath_the_root_by_relative_or_absolute_path() {
        let (dir, root) = root();
        std::fs::create_dir(dir.path().join("smoke")).unwrap();
        std::fs::write(dir.path().join("smoke/junit.xml"), "<x/>").unwrap();
        assert_eq!(root.read(Path::new("smoke/junit.xml"), 100, "the XML").unwrap(), b"<x/>");
        assert_eq!(root.read(&dir.path().join("smoke/junit.xml"), 100, "the XML").unwrap(), b"<x/>");
    }

    #[test]
    fn refuses_a_symbolic_link_to_a_host_file() {
        let (dir, root) = root();
        symlink("/etc/hostname", dir.path().join("junit.xml")).unwrap();
        let err = root.read(Path::new("junit.xml"), 100, "pytest's JUnit XML").unwrap_err();
        assert_eq!(err.to_string(), "pytest's JUnit XML is not a regular file but a symbolic link");
        assert!(!err.is_host_failure());
    }

    #[test]
    fn refuses_a_link_to_dev_zero_at_once() {
        let (dir, root) = root();
        symlink("/dev/zero", dir.path().join("junit.xml")).unwrap();
        let err = root.read(Path::new("junit.xml"), JUNIT_MAX, "pytest's JUnit XML").unwrap_err();
        assert_eq!(err.to_string(), "pytest's JUnit XML is not a regular file but a symbolic link");
    }

    #[test]
    fn refuses_a_fifo_without_blocking() {
        let (dir, root) = root();
        let fifo = CString::new(dir.path().join("junit.xml").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let started = Instant::now();
        let err = root.read(Path::new("junit.xml"), JUNIT_MAX, "pytest's JUnit XML").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(err.to_string(), "pytest's JUnit XML is not a regular file but a FIFO");
    }

    #[test]
    fn refuses_a_directory() {
        let (dir, root) = root();
        std::fs::create_dir(dir.path().join("junit.xml")).unwrap();
        let err = root.read(Path::new("junit.xml"), 100, "the XML").unwrap_err();
        assert_eq!(err.to_string(), "the XML is not a regular file but a directory");
    }

    #[test]
    fn refuses_a_file_larger_than_the_cap() {
        let (dir, root) = root();
        std::fs::write(dir.path().join("big"), vec![b'x'; 4097]).unwrap();
        let err = root.read(Path::new("big"), 4 << 10, "the module").unwrap_err();
        assert_eq!(err.to_string(), "the module is larger than 4 KiB");
        assert_eq!(root.read(Path::new("big"), 4097, "the module").unwrap().len(), 4097);
    }

    #[test]
    fn refuses_a_folder_on_the_way_replaced_by_a_symbolic_link() {
        let (dir, root) = root();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("junit.xml"), "secret").unwrap();
        std::fs::create_dir(dir.path().join("smoke")).unwrap();
        symlink(elsewhere.path(), dir.path().join("smoke/cpython-3.11")).unwrap();
        symlink("/", dir.path().join("up")).unwrap();
        for path in ["smoke/cpython-3.11/junit.xml", "up/etc/hostname"] {
            let err = root.read(Path::new(path), 100, "pytest's JUnit XML").unwrap_err();
            assert_eq!(
                err.to_string(),
                "pytest's JUnit XML is not a regular file: a folder on its path is a symbolic link"
            );
        }
    }

    #[test]
    fn refuses_paths_that_leave_the_root() {
        let (_dir, root) = root();
        for path in ["../etc/hostname", "/etc/hostname", "a/../../b", ""] {
            let err = root.read(Path::new(path), 100, "the file").unwrap_err();
            assert!(matches!(err, ReadbackError::Outside { .. }), "{path}: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let (_dir, root) = root();
        let err = root.read(Path::new("obj/m.o"), 100, "the object").unwrap_err();
        assert_eq!(err.to_string(), "the object is missing");
    }

    #[test]
    fn create_new_refuses_a_planted_link_and_writes_a_fresh_file() {
        let (dir, root) = root();
        let victim = tempfile::tempdir().unwrap();
        symlink(victim.path().join("pwned"), dir.path().join("script")).unwrap();
        let err = root.create_new(Path::new("script"), b"x", "gdb's commands").unwrap_err();
        assert_eq!(err.to_string(), "gdb's commands already exists");
        assert!(!victim.path().join("pwned").exists());
        root.create_new(Path::new("fresh"), b"run\n", "gdb's commands").unwrap();
        assert_eq!(std::fs::read(dir.path().join("fresh")).unwrap(), b"run\n");
    }

    #[test]
    fn the_walk_without_openat2_says_the_same() {
        // The fallback path, exercised directly.
        let (dir, root) = root();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        symlink("/", dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/f"), "ok").unwrap();
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let parts = |p: &'static str| p.split('/').map(OsStr::new).collect::<Vec<_>>();
        assert!(matches!(root.walk(&parts("a/b/etc"), flags, 0), Err(OpenFailure::LinkOnTheWay)));
        assert!(
            matches!(root.walk(&parts("a/b"), flags, 0), Err(OpenFailure::Os(e)) if e.raw_os_error() == Some(libc::ELOOP))
        );
        assert!(root.walk(&parts("a/f"), flags, 0).is_ok());
    }
}
