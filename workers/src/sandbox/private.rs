//! Folders the host writes in and sandboxes are shown, checked to be this
//! user's alone: anything another user could create, link or write there
//! (a work directory under `/dev/shm`, the warm linker's shim under `/tmp`)
//! would steer what the host binds, preloads or removes.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

/// Makes `dir` (and its missing parents) with mode 0700 if it is missing,
/// then refuses it unless it is a directory, not a link, owned by this
/// user, with none of the permission bits in `refused` (at least group and
/// other write, 0o022). Returns its metadata.
pub fn private_dir(dir: &Path, refused: u32) -> std::io::Result<std::fs::Metadata> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
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
}
