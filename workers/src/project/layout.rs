//! Finding modules, Python files and tests in a project directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{io_error, ProjectError};

/// One extension module built from one `.asm` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Dotted name, e.g. `pkg._native`.
    pub name: String,
    /// The source, relative to the project root.
    pub source: PathBuf,
}

impl Module {
    /// The last part of the dotted name: what `PyInit_` is followed by.
    pub fn leaf(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }

    /// The symbol the module must export.
    pub fn init_symbol(&self) -> String {
        format!("PyInit_{}", self.leaf())
    }

    /// The package directory inside the wheel (`pkg` for `pkg._native`).
    pub fn package_dir(&self) -> PathBuf {
        let parts: Vec<&str> = self.name.split('.').collect();
        parts[..parts.len() - 1].iter().collect()
    }
}

pub(super) struct Files {
    pub modules: Vec<Module>,
    pub python_files: Vec<PathBuf>,
    pub test_files: Vec<PathBuf>,
    pub source_dir: PathBuf,
    /// Sources, includes, Python files, tests and data under `src/`.
    pub other_files: Vec<PathBuf>,
}

const ASM_EXTENSIONS: [&str; 2] = ["asm", "nasm"];

pub(super) fn scan(root: &Path) -> Result<Files, ProjectError> {
    let src = root.join("src");
    let has_src = src.is_dir();
    let source_dir = if has_src { PathBuf::from("src") } else { PathBuf::new() };
    let source_files = if has_src { walk(root, Path::new("src"))? } else { top_level_files(root)? };

    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut python_files = Vec::new();
    for file in &source_files {
        let inner = file.strip_prefix(&source_dir).unwrap_or(file);
        let ext = inner.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ASM_EXTENSIONS.contains(&ext) {
            let name = module_name(file, inner)?;
            if let Some(first) = by_name.insert(name.clone(), file.clone()) {
                return Err(duplicate(&name, &first, file));
            }
        } else if ext == "py" && (has_src || is_packaged_root_python(inner)) {
            python_files.push(inner.to_path_buf());
        }
    }
    if by_name.is_empty() {
        return Err(ProjectError::NoSources);
    }
    // A Python module or package of the same name would shadow the extension.
    for py in &python_files {
        let dotted = python_module_name(py);
        if let Some(source) = by_name.get(&dotted) {
            return Err(duplicate(&dotted, source, &source_dir.join(py)));
        }
    }
    let test_files = if root.join("tests").is_dir() {
        walk(root, Path::new("tests"))?.into_iter().filter(|p| p.extension().is_some_and(|e| e == "py")).collect()
    } else {
        Vec::new()
    };
    let mut other_files = source_files;
    other_files.extend(test_files.iter().cloned());
    let modules = by_name.into_iter().map(|(name, source)| Module { name, source }).collect();
    Ok(Files { modules, python_files, test_files, source_dir, other_files })
}

fn duplicate(module: &str, first: &Path, second: &Path) -> ProjectError {
    ProjectError::DuplicateModule {
        module: module.to_string(),
        first: first.display().to_string(),
        second: second.display().to_string(),
    }
}

/// `pkg/_native.asm` → `pkg._native`, every part a Python identifier.
fn module_name(file: &Path, inner: &Path) -> Result<String, ProjectError> {
    let stem = inner.with_extension("");
    let mut parts = Vec::new();
    for part in stem.iter() {
        let part = part.to_string_lossy();
        if !is_identifier(&part) {
            return Err(ProjectError::InvalidModuleName { path: file.display().to_string(), part: part.into_owned() });
        }
        parts.push(part.into_owned());
    }
    Ok(parts.join("."))
}

/// `pkg/util.py` → `pkg.util`; `pkg/__init__.py` → `pkg`.
fn python_module_name(py: &Path) -> String {
    let stem = py.with_extension("");
    let mut parts: Vec<String> = stem.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "__init__") {
        parts.pop();
    }
    parts.join(".")
}

/// Without `src/`, root-level Python files are packaged unless they are
/// build or test scaffolding.
fn is_packaged_root_python(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !(name == "setup.py" || name == "conftest.py" || name.starts_with("test_") || name.ends_with("_test.py"))
}

/// A Python identifier in the ASCII range (what a module file name can be).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !is_keyword(s)
}

fn is_keyword(s: &str) -> bool {
    const KEYWORDS: [&str; 35] = [
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
        "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
        "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
    ];
    KEYWORDS.contains(&s)
}

fn skip_dir(name: &str) -> bool {
    name.starts_with('.') || name == "__pycache__"
}

/// Regular files below `root/dir`, relative to `root`, sorted; hidden
/// directories and caches skipped, symbolic links refused.
fn walk(root: &Path, dir: &Path) -> Result<Vec<PathBuf>, ProjectError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let entries = std::fs::read_dir(&full).map_err(|e| io_error(&full, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&full, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel_path = rel.join(&name);
            let kind = entry.file_type().map_err(|e| io_error(&entry.path(), &e))?;
            if kind.is_symlink() {
                return Err(ProjectError::Symlink(rel_path.display().to_string()));
            } else if kind.is_dir() {
                if !skip_dir(&name) {
                    stack.push(rel_path);
                }
            } else if kind.is_file() {
                out.push(rel_path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The regular files at the root (not in subdirectories), for PEP 639's
/// default license globs. Links are left out: a license file is read from
/// the project, never through a link out of it.
pub(super) fn root_files(root: &Path) -> Result<Vec<PathBuf>, ProjectError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| io_error(root, &e))? {
        let entry = entry.map_err(|e| io_error(root, &e))?;
        if entry.file_type().map_err(|e| io_error(&entry.path(), &e))?.is_file() {
            out.push(PathBuf::from(entry.file_name()));
        }
    }
    out.sort();
    Ok(out)
}

/// Every regular file below the root, relative to it, sorted, for a
/// `license-files` glob that names a subdirectory; hidden directories and
/// caches skipped, links left out (as in [`root_files`]).
pub(super) fn all_files(root: &Path) -> Result<Vec<PathBuf>, ProjectError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        for entry in std::fs::read_dir(&full).map_err(|e| io_error(&full, &e))? {
            let entry = entry.map_err(|e| io_error(&full, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type().map_err(|e| io_error(&entry.path(), &e))?;
            if kind.is_dir() && !skip_dir(&name) {
                stack.push(rel.join(&name));
            } else if kind.is_file() {
                out.push(rel.join(&name));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn top_level_files(root: &Path) -> Result<Vec<PathBuf>, ProjectError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(root).map_err(|e| io_error(root, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(root, &e))?;
        let name = PathBuf::from(entry.file_name());
        let kind = entry.file_type().map_err(|e| io_error(&entry.path(), &e))?;
        let ext = name.extension().and_then(|e| e.to_str()).unwrap_or("");
        let relevant = ASM_EXTENSIONS.contains(&ext) || ext == "inc" || ext == "py";
        if relevant && kind.is_symlink() {
            return Err(ProjectError::Symlink(name.display().to_string()));
        }
        if relevant && kind.is_file() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_python_rules() {
        assert!(is_identifier("_native") && is_identifier("pymult2"));
        assert!(!is_identifier("2fast") && !is_identifier("my-mod") && !is_identifier("class") && !is_identifier(""));
    }

    #[test]
    fn module_names_come_from_paths_under_src() {
        let m = Module { name: "pkg.sub._native".into(), source: "src/pkg/sub/_native.asm".into() };
        assert_eq!(m.leaf(), "_native");
        assert_eq!(m.init_symbol(), "PyInit__native");
        assert_eq!(m.package_dir(), PathBuf::from("pkg/sub"));
        assert_eq!(python_module_name(Path::new("pkg/__init__.py")), "pkg");
    }
}
