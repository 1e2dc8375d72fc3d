//! Folders the host writes in and sandboxes are shown, checked to be this
//! user's alone: anything another user could create, link or write there
//! (a work directory under `/dev/shm`, the warm linker's shim under `/tmp`)
//! would steer what the host binds, preloads or removes. So would a folder
//! above it that another user may write: they could rename the checked
//! folder away and put their own in its place after the check.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

/// Makes `dir` (and its missing parents) with mode 0700 if it is missing,
/// then refuses it unless it is a directory, not a link, owned by this
/// user, with none of the permission bits in `refused` (at least group and
/// other write, 0o022), and every folder above it (as named, and as it
/// resolves) is root's or this user's and writable by no one else unless
/// sticky (as `/tmp`: there others cannot rename or remove what is not
/// theirs). Returns its metadata.
pub fn private_dir(dir: &Path, refused: u32) -> std::io::Result<std::fs::Metadata> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    safe_ancestors(dir, uid)?;
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

/// Every folder above `dir`, on the path as given and on the one it
/// resolves to: root's or `uid`'s, and not writable by group or others
/// unless sticky. A link on the way counts by its owner (its own mode is
/// always 0777), and the folder holding it is checked like any other.
fn safe_ancestors(dir: &Path, uid: u32) -> std::io::Result<()> {
    let named = std::path::absolute(dir)?;
    let real = std::fs::canonicalize(dir)?;
    for path in [named, real] {
        for above in path.ancestors().skip(1) {
            let meta = std::fs::symlink_metadata(above)?;
            let mode = meta.mode();
            let others_write = mode & 0o022 != 0 && mode & 0o1000 == 0 && !meta.file_type().is_symlink();
            if (meta.uid() != 0 && meta.uid() != uid) || others_write {
                return Err(std::io::Error::other(format!(
                    "{} lies in {}, which {} (owned by uid {}, mode {:o}): they could put another \
                     folder in its place; name a folder whose parents only root and this user (uid {uid}) may write",
                    dir.display(),
                    above.display(),
                    if others_write { "others may write" } else { "another user owns" },
                    meta.uid(),
                    mode & 0o7777
                )));
            }
        }
    }
    Ok(())
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
    }
}
