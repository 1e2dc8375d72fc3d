//! The build backend that every sdist names (`wheelwright-backend`, module
//! `wheelwright_backend`): a PEP 517/660 backend in Python that runs this
//! very engine, shipped inside a platform wheel of its own (as maturin ships
//! itself), so that `pip install --no-binary` builds an uploaded project from
//! source with nothing compiled but its assembly. [`write_wheel`] makes
//! that wheel from a `wheelwright` binary.

pub mod recipe;

use std::path::Path;

use crate::report::Artifact;
use crate::wheel::archive::{self, Entry};

/// The distribution's name (`wheelwright` on PyPI is another project's).
pub const NAME: &str = "wheelwright-backend";

/// Its version: the engine's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Python side: the PEP 517/660 hooks.
const HOOKS: &str = include_str!("wheelwright_backend.py");

/// The platform tag of a backend wheel holding a binary built for this host
/// (linked against the host's C library: not a manylinux promise).
pub const TAG: &str = "py3-none-linux_x86_64";

/// `wheelwright_backend-<version>-py3-none-linux_x86_64.whl`.
pub fn wheel_filename() -> String {
    format!("wheelwright_backend-{VERSION}-{TAG}.whl")
}

/// Writes the backend's wheel, with `binary` (a `wheelwright` executable)
/// as `wheelwright_backend/bin/wheelwright`, into `out_dir`.
pub fn write_wheel(binary: &Path, out_dir: &Path) -> std::io::Result<Artifact> {
    let dist_info = format!("wheelwright_backend-{VERSION}.dist-info");
    let metadata = format!(
        "Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\nSummary: Build backend (PEP 517) for CPython \
         extension modules written in x86-64 assembly\nLicense: MIT\nRequires-Python: >=3.8\n"
    );
    let wheel = format!("Wheel-Version: 1.0\nGenerator: wheelwright {VERSION}\nRoot-Is-Purelib: false\nTag: {TAG}\n");
    let entries = vec![
        Entry {
            path: "wheelwright_backend/__init__.py".into(),
            data: HOOKS.replace("@VERSION@", VERSION).replace("@TOOLS@", &recipe::tools_json()).into_bytes(),
            executable: false,
        },
        Entry { path: "wheelwright_backend/bin/wheelwright".into(), data: std::fs::read(binary)?, executable: true },
        Entry { path: format!("{dist_info}/METADATA"), data: metadata.into_bytes(), executable: false },
        Entry { path: format!("{dist_info}/WHEEL"), data: wheel.into_bytes(), executable: false },
    ];
    let bytes = archive::write_wheel(entries, &dist_info, 0)?;
    let filename = wheel_filename();
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join(&filename);
    let partial = out_dir.join(format!(".{filename}.partial"));
    std::fs::write(&partial, &bytes)?;
    std::fs::rename(&partial, &path)?;
    Ok(Artifact { filename, path, size: bytes.len() as u64, sha256: crate::wheel::sha256_hex(&bytes) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_wheel_holds_the_hooks_and_an_executable_binary() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("fake-binary");
        std::fs::write(&binary, b"\x7fELF not really").unwrap();
        let artifact = write_wheel(&binary, &dir.path().join("out")).unwrap();
        assert_eq!(artifact.filename, format!("wheelwright_backend-{VERSION}-py3-none-linux_x86_64.whl"));
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&artifact.path).unwrap()).unwrap();
        let bin = zip.by_name("wheelwright_backend/bin/wheelwright").unwrap();
        assert_eq!(bin.unix_mode().map(|m| m & 0o777), Some(0o755));
        drop(bin);
        let mut hooks = String::new();
        std::io::Read::read_to_string(&mut zip.by_name("wheelwright_backend/__init__.py").unwrap(), &mut hooks)
            .unwrap();
        assert!(hooks.contains(&format!("__version__ = \"{VERSION}\"")) && hooks.contains("def build_wheel("));
        let record = zip.by_name(&format!("wheelwright_backend-{VERSION}.dist-info/RECORD")).unwrap();
        assert!(record.size() > 0);
    }

    #[test]
    fn the_hooks_name_a_missing_nasm_and_how_to_install_it_before_running_anything() {
        let dir = tempfile::tempdir().unwrap();
        // Never run: the tool check comes first.
        let binary = dir.path().join("not-run");
        std::fs::write(&binary, b"").unwrap();
        let artifact = write_wheel(&binary, &dir.path().join("out")).unwrap();
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&artifact.path).unwrap()).unwrap();
        let package = dir.path().join("site/wheelwright_backend");
        std::fs::create_dir_all(&package).unwrap();
        let mut hooks = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name("wheelwright_backend/__init__.py").unwrap(), &mut hooks).unwrap();
        std::fs::write(package.join("__init__.py"), hooks).unwrap();
        let empty_path = dir.path().join("no-tools");
        std::fs::create_dir_all(&empty_path).unwrap();
        // The interpreter itself (python3 on PATH may be a shim that needs PATH).
        let python =
            std::process::Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
        let python = String::from_utf8(python.stdout).unwrap().trim().to_string();
        let out = std::process::Command::new(python)
            .args(["-c", "import wheelwright_backend as b; b.build_wheel('.')"])
            .current_dir(dir.path())
            .env("PYTHONPATH", dir.path().join("site"))
            .env("PATH", &empty_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("RuntimeError: wheelwright-backend needs the assembler nasm")
                && stderr.contains("sudo apt-get install nasm"),
            "{stderr}"
        );
    }
}
