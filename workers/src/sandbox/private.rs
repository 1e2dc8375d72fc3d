//! Folders the host writes in and sandboxes are shown, checked to be this
//! user's alone: anything another user could create, link or write there
//! (a work directory under `/dev/shm`, the warm linker's shim under `/tmp`)
//! would steer what the host binds, preloads or removes. So would a folder
//! above it that another user may write: they could rename the checked
//! folder away and put their own in its place after the check.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Makes `dir` (and its missing parents) with mode 0700 if it is missing,
/// then refuses it unless it is a directory, not a link, owned by this
/// user, with none of the permission bits in `refused` (at least group and
/// other write, 0o022), and every folder crossed on the way to it is safe
/// (`safe_ancestors`). The folders that exist are checked before anything
/// is made in them. Returns its metadata.
pub fn private_dir(dir: &Path, refused: u32) -> std::io::Result<std::fs::Metadata> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    safe_ancestors(dir, uid, true)?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    safe_ancestors(dir, uid, false)?;
    let meta = std::fs::symlink_metadata(dir)?;
    let refused = refused | 0o022;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & refused != 0 {
        let kind = match meta.file_type() {
            t if t.is_symlink() => "a symbolic link",
            t if t.is_dir() => "a directory",
            _ => "a file",
        };
        return Err(std::io::Error::other(format!(
            "{} must be a directory of this user's (uid {uid}) that no one else may write \
             (it is {kind}, owned by uid {}, mode {:o}; `chmod go-w` it, or name another)",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(meta)
}

/// How many links a walk follows, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// Walks to `dir` from `/` one component at a time, as the kernel resolves
/// it (following links, `..` going up from where a link led), and checks
/// every folder crossed before `dir` and every link followed: each must be
/// root's or `uid`'s, and a folder must not be writable by others unless it
/// is sticky (as `/tmp`: there no one can rename or remove what is not
/// theirs), nor by its group unless sticky or the group is `uid`'s own
/// private group (Debian's and Fedora's default umask 002 makes a home's
/// folders 0775 in it). A link's own mode means nothing; the folder holding
/// it is checked as any other. With `missing_ok`, the walk ends quietly at
/// the first component that does not exist yet.
fn safe_ancestors(dir: &Path, uid: u32, missing_ok: bool) -> std::io::Result<()> {
    let refuse = |at: &Path, meta: &std::fs::Metadata, why: &str| {
        std::io::Error::other(format!(
            "{} lies in {}, which {why} (owned by uid {}, mode {:o}): they could put another folder \
             in its place; name a folder whose parents only root and this user (uid {uid}) may write",
            dir.display(),
            at.display(),
            meta.uid(),
            meta.mode() & 0o7777
        ))
    };
    let mut pending: Vec<std::ffi::OsString> =
        std::path::absolute(dir)?.components().rev().map(|c| c.as_os_str().to_os_string()).collect();
    let mut current = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        let path = Path::new(&part);
        if part == "." {
            continue;
        }
        if part == ".." {
            current.pop();
            continue;
        }
        let next = if path.has_root() { PathBuf::from(path) } else { current.join(path) };
        let meta = match std::fs::symlink_metadata(&next) {
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        if pending.is_empty() && !meta.file_type().is_symlink() {
            return Ok(()); // `dir` itself: the caller's check, with its own words
        }
        if meta.uid() != 0 && meta.uid() != uid {
            return Err(refuse(&next, &meta, "another user owns"));
        }
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(std::io::Error::other(format!("{}: too many links on the way", dir.display())));
            }
            let target = std::fs::read_link(&next)?;
            pending.extend(target.components().rev().map(|c| c.as_os_str().to_os_string()));
            continue;
        }
        let (mode, sticky) = (meta.mode(), meta.mode() & 0o1000 != 0);
        if mode & 0o002 != 0 && !sticky {
            return Err(refuse(&next, &meta, "others may write"));
        }
        if mode & 0o020 != 0 && !sticky && !private_group(meta.gid(), uid) {
            return Err(refuse(&next, &meta, "its group may write"));
        }
        current = next;
    }
    Ok(())
}

/// Whether `gid` is `uid`'s user private group: its primary group, named
/// after it, listing no other member.
fn private_group(gid: u32, uid: u32) -> bool {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: the structs are plain C data; each `_r` call writes only into
    // its struct and `buffer` (of the length given), and the pointers read
    // afterwards point into them.
    unsafe {
        let mut user: libc::passwd = std::mem::zeroed();
        let mut found = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut user, buffer.as_mut_ptr(), buffer.len(), &mut found) != 0 || found.is_null() {
            return false;
        }
        if user.pw_gid != gid {
            return false;
        }
        let name = std::ffi::CStr::from_ptr(user.pw_name).to_owned();
        let mut group: libc::group = std::mem::zeroed();
        let mut group_buffer = vec![0 as libc::c_char; 16 * 1024];
        let mut found = std::ptr::null_mut();
        let asked = libc::getgrgid_r(gid, &mut group, group_buffer.as_mut_ptr(), group_buffer.len(), &mut found);
        if asked != 0 || found.is_null() {
            return false;
        }
        let named_alike = std::ffi::CStr::from_ptr(group.gr_name) == name.as_c_str();
        let no_members = group.gr_mem.is_null() || (*group.gr_mem).is_null();
        named_alike && no_members
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::private_dir;

    #[test]
    fn a_folder_others_may_write_or_a_link_is_refused_and_a_missing_one_is_made_0700() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("a/b");
        private_dir(&made, 0).unwrap();
        assert_eq!(std::fs::metadata(&made).unwrap().permissions().mode() & 0o777, 0o700);
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let refused = private_dir(&open, 0).unwrap_err().to_string();
        assert!(refused.contains("that no one else may write") && refused.contains("mode 1777"), "{refused}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&made, &link).unwrap();
        assert!(private_dir(&link, 0).unwrap_err().to_string().contains("a symbolic link"));
        // Readable by others: refused only when asked.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&open, 0).unwrap();
        assert!(private_dir(&open, 0o077).is_err());
    }

    #[test]
    fn a_folder_inside_one_others_may_write_is_refused_unless_that_one_is_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        let inner = shared.join("work");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = private_dir(&inner, 0).unwrap_err().to_string();
        assert!(refused.contains("which others may write") && refused.contains("mode 777"), "{refused}");
        // Sticky, as /tmp: others cannot move what is not theirs.
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        private_dir(&inner, 0).unwrap();
        // Named through a link in an open folder: the link's folder counts too.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::os::unix::fs::symlink(&shared, open.join("via")).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = private_dir(&open.join("via/work"), 0).unwrap_err().to_string();
        assert!(refused.contains(&format!("lies in {}", open.display())), "{refused}");
    }

    #[test]
    fn a_folder_reached_through_links_is_refused_when_a_folder_crossed_between_them_is_open() {
        // dir/a/l1 -> dir/x/y, and dir/x/y/b/l2 -> dir/p: neither the path as named nor the
        // one it resolves to holds dir/x, which others may write.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in ["a", "x/y/b", "p"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        std::os::unix::fs::symlink(root.join("x/y"), root.join("a/l1")).unwrap();
        std::os::unix::fs::symlink(root.join("p"), root.join("x/y/b/l2")).unwrap();
        let through = root.join("a/l1/b/l2/work");
        private_dir(&through, 0).unwrap();
        std::fs::set_permissions(root.join("x"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = private_dir(&through, 0).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("lies in {}, which others may write", root.join("x").display())),
            "{refused}"
        );
    }

    #[test]
    fn a_folder_its_group_may_write_is_crossed_only_if_that_is_this_users_private_group() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o775)).unwrap();
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let gid = std::fs::metadata(&shared).unwrap().gid();
        match super::private_group(gid, uid) {
            true => drop(private_dir(&shared.join("work"), 0).unwrap()),
            false => {
                let refused = private_dir(&shared.join("work"), 0).unwrap_err().to_string();
                assert!(refused.contains("which its group may write"), "{refused}");
            }
        }
        // A group that is nobody's own (gid 12345, no such user) may never write.
        if uid == 0 {
            std::os::unix::fs::chown(&shared, None, Some(12345)).unwrap();
            let refused = private_dir(&shared.join("other"), 0).unwrap_err().to_string();
            assert!(refused.contains("which its group may write"), "{refused}");
        }
    }

    #[test]
    fn a_folder_inside_another_users_folder_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can give a folder away
        }
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(12345), None).unwrap();
        let refused = private_dir(&theirs.join("work"), 0).unwrap_err().to_string();
        assert!(refused.contains("another user owns") && refused.contains("uid 12345"), "{refused}");
        // The folder itself: said as such, not as a folder it lies in.
        let refused = private_dir(&theirs, 0).unwrap_err().to_string();
        assert!(refused.contains("must be a directory of this user's") && refused.contains("uid 12345"), "{refused}");
    }
}
