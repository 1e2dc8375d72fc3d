//! Packaging: one wheel per target and Python tag (PEP 427), and the sdist.

pub mod archive;
pub mod metadata;
pub mod tags;

use std::path::{Path, PathBuf};

pub use archive::{record_hash, sha256_hex, Entry};

use crate::platform::Target;
use crate::project::{Project, Readme};
use crate::pyversion::PyVersion;
use crate::report::Artifact;

/// What goes into one wheel.
#[derive(Debug)]
pub struct WheelInput<'a> {
    /// The project.
    pub project: &'a Project,
    /// The target platform.
    pub target: Target,
    /// `None` for an abi3 wheel.
    pub python: Option<PyVersion>,
    /// Built modules: path inside the wheel and bytes.
    pub modules: Vec<(String, Vec<u8>)>,
    /// Linux: newest glibc symbol version needed.
    pub glibc: Option<(u32, u32)>,
    /// Timestamp for every entry.
    pub epoch: u64,
}

/// The oldest version an abi3 wheel is tagged for: from `requires-python`,
/// 3.8 when it says nothing.
pub fn abi3_minimum(project: &Project) -> PyVersion {
    let spec = &project.metadata.requires_python;
    if spec.as_str().is_empty() {
        PyVersion::DEFAULT_MIN
    } else {
        spec.minimum().unwrap_or(PyVersion::DEFAULT_MIN)
    }
}

/// Writes the wheel into `out_dir` and describes it.
pub fn write_wheel(input: &WheelInput<'_>, out_dir: &Path) -> std::io::Result<Artifact> {
    let meta = &input.project.metadata;
    let name = tags::filename_name(&meta.name);
    let version = tags::filename_version(&meta.version);
    let (py_tag, abi_tag) = tags::python_abi_tags(abi3_minimum(input.project), input.python);
    let platform = tags::platform_tag(input.target, input.glibc, &input.project.settings.macos_deployment_target);
    let filename = format!("{name}-{version}-{py_tag}-{abi_tag}-{platform}.whl");
    let dist_info = format!("{name}-{version}.dist-info");

    let mut entries: Vec<Entry> = input
        .modules
        .iter()
        .map(|(path, data)| Entry { path: path.clone(), data: data.clone(), executable: true })
        .collect();
    for py in &input.project.python_files {
        let data = std::fs::read(input.project.root.join(&input.project.source_dir).join(py))?;
        entries.push(Entry { path: slash_path(py), data, executable: false });
    }
    let mut wheel =
        format!("Wheel-Version: 1.0\nGenerator: wheelwright {}\nRoot-Is-Purelib: false\n", env!("CARGO_PKG_VERSION"));
    for platform_tag in platform.split('.') {
        wheel.push_str(&format!("Tag: {py_tag}-{abi_tag}-{platform_tag}\n"));
    }
    entries.push(meta_entry(&dist_info, "WHEEL", wheel));
    entries.push(meta_entry(&dist_info, "METADATA", metadata::render(meta)));
    for license in &meta.license_files {
        let data = std::fs::read(input.project.root.join(license))?;
        entries.push(Entry { path: format!("{dist_info}/licenses/{}", slash_path(license)), data, executable: false });
    }
    let bytes = archive::write_wheel(entries, &dist_info, input.epoch)?;
    save(out_dir, &filename, &bytes)
}

/// The build backend every sdist names: this project's own, at least the
/// version that made the sdist.
pub const BACKEND_REQUIREMENT: &str = concat!("wheelwright-backend >= ", env!("CARGO_PKG_VERSION"));

/// The backend's import name (`build-backend`).
pub const BACKEND_MODULE: &str = "wheelwright_backend";

/// The `pyproject.toml` an sdist carries, so that pip and `python -m build`
/// build it from source through our backend: the project's own with a
/// `[build-system]` added when it has none (one it has is kept: the
/// author chose it), or, for an upload without one, a file with the name,
/// version, `requires-python` and root README the build used.
pub fn sdist_pyproject(project: &Project) -> std::io::Result<String> {
    let build_system =
        format!("[build-system]\nrequires = [\"{BACKEND_REQUIREMENT}\"]\nbuild-backend = \"{BACKEND_MODULE}\"\n");
    let path = project.root.join("pyproject.toml");
    if project.sdist_files.iter().any(|f| f == Path::new("pyproject.toml")) {
        let text = std::fs::read_to_string(&path)?;
        let has_build_system = text
            .parse::<toml::Table>()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
            .contains_key("build-system");
        if has_build_system {
            return Ok(text);
        }
        let separator = if text.ends_with('\n') || text.is_empty() { "\n" } else { "\n\n" };
        return Ok(format!("{text}{separator}{build_system}"));
    }
    let meta = &project.metadata;
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out =
        format!("{build_system}\n[project]\nname = {}\nversion = {}\n", quoted(&meta.name), quoted(&meta.version));
    if !meta.requires_python.as_str().is_empty() {
        out.push_str(&format!("requires-python = {}\n", quoted(meta.requires_python.as_str())));
    }
    // The root README that described the upload describes the rebuild too,
    // so the sdist's PKG-INFO and the wheel built from it agree.
    if let Some(Readme { path: Some(path), .. }) = &meta.readme {
        out.push_str(&format!("readme = {}\n", quoted(&slash_path(path))));
    }
    Ok(out)
}

/// Writes `{name}-{version}.tar.gz` (PEP 625) with `PKG-INFO`, a
/// `pyproject.toml` that names our build backend (see [`sdist_pyproject`])
/// and the project's files.
pub fn write_sdist(project: &Project, out_dir: &Path, epoch: u64) -> std::io::Result<Artifact> {
    let meta = &project.metadata;
    let base = format!("{}-{}", tags::filename_name(&meta.name), tags::filename_version(&meta.version));
    let mut entries = vec![
        Entry { path: "PKG-INFO".into(), data: metadata::render(meta).into_bytes(), executable: false },
        Entry { path: "pyproject.toml".into(), data: sdist_pyproject(project)?.into_bytes(), executable: false },
    ];
    for file in project.sdist_files.iter().filter(|f| *f != Path::new("pyproject.toml")) {
        let data = std::fs::read(project.root.join(file))?;
        entries.push(Entry { path: slash_path(file), data, executable: false });
    }
    let bytes = archive::write_tar_gz(entries, &base, epoch)?;
    save(out_dir, &format!("{base}.tar.gz"), &bytes)
}

fn meta_entry(dist_info: &str, name: &str, text: String) -> Entry {
    Entry { path: format!("{dist_info}/{name}"), data: text.into_bytes(), executable: false }
}

/// A relative path with `/` separators, as archives want.
pub fn slash_path(path: &Path) -> String {
    path.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Writes `bytes` to `out_dir/filename` through a temporary file and a rename,
/// so that a reader never sees half a file. Not fsynced: a caller that needs
/// the file durable (the daemon's store) copies it durably itself.
fn save(out_dir: &Path, filename: &str, bytes: &[u8]) -> std::io::Result<Artifact> {
    std::fs::create_dir_all(out_dir)?;
    let path: PathBuf = out_dir.join(filename);
    let mut tmp = tempfile::NamedTempFile::new_in(out_dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    // Temporary files are private (0600); artifacts are for everyone to read.
    tmp.as_file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(Artifact { filename: filename.to_string(), path, size: bytes.len() as u64, sha256: sha256_hex(bytes) })
}
