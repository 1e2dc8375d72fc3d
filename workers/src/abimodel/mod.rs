//! Running foreign binaries under ABI models: the macOS (Mach-O) and Windows
//! (PE) modules a build produces are mapped into a Linux CPython on this host
//! and driven by the project's own tests.
//!
//! The loader is a pure-Python package, `_wheelwright_abimodel`, embedded
//! here and written by the smoke step into a read-only folder that goes on
//! `PYTHONPATH` ahead of the wheel's files; the pytest plugin it carries
//! installs a meta-path finder for the model named by
//! `WHEELWRIGHT_ABIMODEL`. Its machine code (the Win64 ↔ System V bridges) is
//! emitted as bytes by the harness itself: a handful of instruction encodings
//! in one generator, which keeps the sandboxed run free of any tool (nasm is
//! on the host, not in the test's sandbox) and lets one function see every
//! bridge, the seam for the ABI guards.

pub mod syscalls;

use std::path::Path;

use crate::platform::Target;

/// The package's files: (path below the harness folder, contents).
pub const HARNESS: &[(&str, &str)] = &[
    ("_wheelwright_abimodel/__init__.py", include_str!("harness/_wheelwright_abimodel/__init__.py")),
    ("_wheelwright_abimodel/memory.py", include_str!("harness/_wheelwright_abimodel/memory.py")),
    ("_wheelwright_abimodel/macho.py", include_str!("harness/_wheelwright_abimodel/macho.py")),
    ("_wheelwright_abimodel/finder.py", include_str!("harness/_wheelwright_abimodel/finder.py")),
    ("_wheelwright_abimodel/plugin.py", include_str!("harness/_wheelwright_abimodel/plugin.py")),
    ("_wheelwright_abimodel/pe.py", include_str!("harness/_wheelwright_abimodel/pe.py")),
    ("_wheelwright_abimodel/x64.py", include_str!("harness/_wheelwright_abimodel/x64.py")),
    ("_wheelwright_abimodel/win64.py", include_str!("harness/_wheelwright_abimodel/win64.py")),
    ("_wheelwright_abimodel/win64_capi.py", include_str!("harness/_wheelwright_abimodel/win64_capi.py")),
    ("_wheelwright_abimodel/x64_extra.py", include_str!("harness/_wheelwright_abimodel/x64_extra.py")),
    ("_wheelwright_abimodel/guards.py", include_str!("harness/_wheelwright_abimodel/guards.py")),
    ("_wheelwright_abimodel/elf.py", include_str!("harness/_wheelwright_abimodel/elf.py")),
    ("_wheelwright_abimodel/images.py", include_str!("harness/_wheelwright_abimodel/images.py")),
];

/// The line table's file name in the job's harness folder: per module file
/// name, `[start, end, "src/x.asm:LINE: text"]` ranges of linked addresses,
/// read by the guards (`guards.py`) for their messages, never by the host.
pub const LINE_TABLE_FILE: &str = "lines.json";

/// The value of [`MODEL_ENV`] for a target's run: the model's name for
/// macOS and Windows, and for Linux `linux-x86_64`, which is no model (the
/// ELF module runs natively) but maps it through the harness so that the
/// ABI guards see every crossing.
pub fn harness_mode(target: Target) -> &'static str {
    target.name()
}

/// What a Linux run says of itself: native, with the guards on.
pub const LINUX_GUARDS_NOTE: &str = "tests run natively, with wheelwright's ABI guards on every call \
     between CPython and the module (callee-saved registers, stack alignment)";

/// Writes the line table of the modules (file name in the wheel, table
/// from [`crate::lines::ModuleLines::table`]) to `path`, which the run
/// names in [`LINE_TABLE_ENV`].
pub fn write_line_table(path: &Path, modules: &[crate::lines::ModuleTable]) -> std::io::Result<()> {
    let table: serde_json::Map<String, serde_json::Value> =
        modules.iter().map(|(name, ranges)| (name.clone(), serde_json::json!(ranges))).collect();
    std::fs::write(path, serde_json::Value::Object(table).to_string())
}

/// The pytest plugin that installs the finder (`-p` argument).
pub const PLUGIN: &str = "_wheelwright_abimodel.plugin";

/// The environment variable naming the line table the guards read (the
/// job's, [`LINE_TABLE_FILE`] in its harness folder): the package itself is
/// the shared copy (see [`shared_harness`]), which holds no job's table.
pub const LINE_TABLE_ENV: &str = "WHEELWRIGHT_LINE_TABLE";

/// The environment variable that selects the model.
pub const MODEL_ENV: &str = "WHEELWRIGHT_ABIMODEL";

/// An ABI model: how a target's binaries are run on the Linux host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Mach-O mapped and bound; System V and LP64 as on Linux.
    Macos,
    /// PE mapped, every crossing bridged between Win64 and System V.
    Windows,
}

impl Model {
    /// The model a target's modules run under; `None` for Linux, whose
    /// modules CPython loads natively.
    pub fn for_target(target: Target) -> Option<Model> {
        match target {
            Target::Linux => None,
            Target::Macos => Some(Model::Macos),
            Target::Windows => Some(Model::Windows),
        }
    }

    /// The value of [`MODEL_ENV`]: the target's name.
    pub fn name(self) -> &'static str {
        match self {
            Model::Macos => Target::Macos.name(),
            Model::Windows => Target::Windows.name(),
        }
    }

    /// What a run under this model is, for reports: never a native run.
    pub fn label(self) -> &'static str {
        match self {
            Model::Macos => "tests run on the Linux host under the macOS x86-64 ABI model",
            Model::Windows => "tests run on the Linux host under the Windows x64 ABI model",
        }
    }
}

/// Writes the harness package below `dir` (which must exist and be empty
/// or absent of these files); `dir` is what goes on `PYTHONPATH`.
pub fn install_harness(dir: &Path) -> std::io::Result<()> {
    for (rel, contents) in HARNESS {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
    }
    Ok(())
}

/// A copy of the harness below `under`, written once and then shared (a
/// warm runner imports it before it forks, so no child compiles it again):
/// `under/wheelwright-harness-<digest of its files>`, made in a scratch
/// folder and renamed into place, so a reader never sees half of it.
/// Nothing here is ever written after that; `under` must be a folder that
/// sandboxes see read-only (the pytest environment).
pub fn shared_harness(under: &Path) -> std::io::Result<std::path::PathBuf> {
    // The digest of files compiled into the engine: the same for every run.
    static DIGEST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let digest = DIGEST.get_or_init(|| {
        let mut all = Vec::new();
        for (rel, contents) in HARNESS {
            all.extend_from_slice(rel.as_bytes());
            all.push(0);
            all.extend_from_slice(contents.as_bytes());
            all.push(0);
        }
        crate::wheel::sha256_hex(&all)[..16].to_string()
    });
    let dir = under.join(format!("wheelwright-harness-{digest}"));
    if dir.join(READY).is_file() {
        return Ok(dir);
    }
    let scratch = tempfile::tempdir_in(under)?;
    install_harness(scratch.path())?;
    std::fs::write(scratch.path().join(READY), b"")?;
    let scratch = scratch.keep();
    if std::fs::rename(&scratch, &dir).is_err() {
        // Another build made it first.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if dir.join(READY).is_file() {
        Ok(dir)
    } else {
        Err(std::io::Error::other(format!("{} vanished after it was made", dir.display())))
    }
}

/// Marks a [`shared_harness`] copy complete.
const READY: &str = "ready";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_foreign_targets_run_under_a_model() {
        assert_eq!(Model::for_target(Target::Linux), None);
        assert_eq!(Model::for_target(Target::Macos), Some(Model::Macos));
        assert_eq!(Model::for_target(Target::Windows).map(Model::name), Some("windows-x86_64"));
    }

    #[test]
    fn labels_say_the_run_is_on_the_linux_host() {
        assert_eq!(Model::Windows.label(), "tests run on the Linux host under the Windows x64 ABI model");
        assert!(Model::Macos.label().starts_with("tests run on the Linux host"));
    }

    #[test]
    fn the_shared_harness_is_written_once_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let first = shared_harness(dir.path()).unwrap();
        for (rel, contents) in HARNESS {
            assert_eq!(std::fs::read_to_string(first.join(rel)).unwrap(), *contents);
        }
        let mtime = std::fs::metadata(first.join(HARNESS[0].0)).unwrap().modified().unwrap();
        assert_eq!(shared_harness(dir.path()).unwrap(), first);
        assert_eq!(std::fs::metadata(first.join(HARNESS[0].0)).unwrap().modified().unwrap(), mtime);
        // Only the copy itself: no scratch folder left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn installs_every_harness_file() {
        let dir = tempfile::tempdir().unwrap();
        install_harness(dir.path()).unwrap();
        for (rel, contents) in HARNESS {
            assert_eq!(std::fs::read_to_string(dir.path().join(rel)).unwrap(), *contents);
        }
    }
}
