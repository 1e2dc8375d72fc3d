//! Packaging: one wheel per target and Python tag (PEP 427), and the sdist.

mod archive;
mod metadata;
pub mod tags;

use std::path::{Path, PathBuf};

pub use archive::{record_hash, sha256_hex, Entry};

use crate::platform::Target;
use crate::project::Project;
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
    if let Some(license) = &meta.license_file {
        let data = std::fs::read(input.project.root.join(license))?;
        entries.push(Entry { path: format!("{dist_info}/licenses/{}", slash_path(license)), data, executable: false });
    }
    let bytes = archive::write_wheel(entries, &dist_info, input.epoch)?;
    save(out_dir, &filename, &bytes)
}

/// Writes `{name}-{version}.tar.gz` (PEP 625) with `PKG-INFO` and the project's files.
pub fn write_sdist(project: &Project, out_dir: &Path, epoch: u64) -> std::io::Result<Artifact> {
    let meta = &project.metadata;
    let base = format!("{}-{}", tags::filename_name(&meta.name), tags::filename_version(&meta.version));
    let mut entries =
        vec![Entry { path: "PKG-INFO".into(), data: metadata::render(meta).into_bytes(), executable: false }];
    for file in &project.sdist_files {
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
