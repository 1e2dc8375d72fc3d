//! A project as wheelwright reads it: `pyproject.toml` metadata and settings,
//! the extension modules found under `src/`, Python files and tests.

mod layout;
mod pyproject;
pub mod spdx;

use std::path::{Path, PathBuf};

pub use layout::Module;
pub use pyproject::{Author, Metadata, Readme, Settings};

/// A project whose layout and metadata were read and checked.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project directory.
    pub root: PathBuf,
    /// Core metadata for the wheel.
    pub metadata: Metadata,
    /// `[tool.wheelwright]`.
    pub settings: Settings,
    /// Extension modules, sorted by dotted name.
    pub modules: Vec<Module>,
    /// Python files to package, relative to `source_dir`.
    pub python_files: Vec<PathBuf>,
    /// Files under `tests/` (test modules, conftest and helpers), relative to the root.
    pub test_files: Vec<PathBuf>,
    /// Where module paths start: `src/`, or the root when there is no `src/`.
    pub source_dir: PathBuf,
    /// Every file that goes into the sdist, relative to the root, sorted.
    pub sdist_files: Vec<PathBuf>,
}

/// Values given beside the project (upload fields, CLI flags) that stand in
/// for a missing `pyproject.toml`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Distribution name when `pyproject.toml` gives none.
    pub name: Option<String>,
    /// Version when `pyproject.toml` gives none.
    pub version: Option<String>,
    /// Force a debug build.
    pub debug: bool,
}

/// Why a project cannot be built; each names the file or key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    /// The project directory could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        message: String,
    },
    /// `pyproject.toml` is not valid TOML or has a value of the wrong type.
    #[error("pyproject.toml: {0}")]
    Toml(String),
    /// A key has a value wheelwright refuses; the message names the key.
    #[error("pyproject.toml: {key}: {message}")]
    InvalidKey {
        /// The dotted key, e.g. `tool.wheelwright.targets`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// No `.asm` sources.
    #[error("no assembly sources: expected src/**/*.asm (or *.asm at the project root when there is no src/)")]
    NoSources,
    /// A source whose path is not a valid dotted module name.
    #[error("{path}: `{part}` is not a valid Python module name")]
    InvalidModuleName {
        /// The source path.
        path: String,
        /// The offending part.
        part: String,
    },
    /// Two sources give the same module.
    #[error("{first} and {second} both define the module `{module}`")]
    DuplicateModule {
        /// The module.
        module: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// A symbolic link inside the project.
    #[error("{0} is a symbolic link; wheelwright does not follow links inside a project")]
    Symlink(String),
    /// No name and no way to derive one.
    #[error("no project name: add [project] name to pyproject.toml (there are several modules to name it after)")]
    NoName,
}

impl Project {
    /// Reads and checks the project at `root`.
    pub fn load(root: &Path, overrides: &Overrides) -> Result<Project, ProjectError> {
        // Absolute, so that the sandbox can bind it and tools can be given it.
        let root = &std::fs::canonicalize(root).map_err(|e| io_error(root, &e))?;
        let pyproject_path = root.join("pyproject.toml");
        let pyproject = match std::fs::read_to_string(&pyproject_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&pyproject_path, &e)),
        };
        let files = layout::scan(root)?;
        let (metadata, settings) = pyproject::parse(root, pyproject.as_deref(), &files.modules, overrides)?;
        let mut sdist_files = files.other_files;
        if pyproject.is_some() {
            sdist_files.push(PathBuf::from("pyproject.toml"));
        }
        if let Some(Readme { path: Some(path), .. }) = &metadata.readme {
            sdist_files.push(path.clone());
        }
        sdist_files.extend(metadata.license_files.iter().cloned());
        sdist_files.sort();
        sdist_files.dedup();
        Ok(Project {
            root: root.to_path_buf(),
            metadata,
            settings,
            modules: files.modules,
            python_files: files.python_files,
            test_files: files.test_files,
            source_dir: files.source_dir,
            sdist_files,
        })
    }
}

pub(crate) fn io_error(path: &Path, e: &std::io::Error) -> ProjectError {
    ProjectError::Io { path: path.display().to_string(), message: e.to_string() }
}
