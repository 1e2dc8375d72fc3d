//! Each build's project files, kept under `<data>/sources/<build id>/` for
//! its worker and for rebuilds.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The source trees of every build.
#[derive(Debug, Clone)]
pub struct SourceTrees {
    dir: PathBuf,
}

impl SourceTrees {
    /// The trees under `dir` (created if needed).
    pub fn open(dir: &Path) -> std::io::Result<SourceTrees> {
        std::fs::create_dir_all(dir)?;
        Ok(SourceTrees { dir: dir.to_path_buf() })
    }

    /// Where build `id`'s tree is.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Writes build `id`'s files through a temporary sibling renamed into
    /// place; returns the tree's sha256 (over sorted names and contents).
    pub fn write(&self, id: &str, files: &[(PathBuf, Vec<u8>)]) -> std::io::Result<String> {
        let dir = self.path(id);
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial)?;
        let mut sorted: Vec<&(PathBuf, Vec<u8>)> = files.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hasher = Sha256::new();
        for (path, data) in sorted {
            let full = partial.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&full, data)?;
            let name = path.to_string_lossy();
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update((data.len() as u64).to_le_bytes());
            hasher.update(data);
        }
        std::fs::rename(&partial, dir)?;
        Ok(hex::encode(hasher.finalize()))
    }

    /// Reads build `id`'s files back, sorted by path.
    pub fn read(&self, id: &str) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
        read_tree(&self.path(id))
    }

    /// Removes build `id`'s tree (a build that was never recorded).
    pub fn remove(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.path(id));
    }
}

/// Every regular file below `dir` with its path relative to it, sorted.
pub fn read_tree(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let rel = entry.path().strip_prefix(dir).expect("below dir").to_path_buf();
                files.push((rel, std::fs::read(entry.path())?));
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}
