//! CPython interpreters on this host, and the cached environment holding
//! pytest that each of them gets once.

use std::path::{Path, PathBuf};

use super::SmokeError;
use crate::pyversion::PyVersion;

/// A CPython interpreter on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The real executable (not a shim).
    pub executable: PathBuf,
    /// Its feature version.
    pub version: PyVersion,
    /// `sys.base_prefix`: the installation the sandbox must be able to read.
    pub prefix: PathBuf,
}

/// The oldest version wheelwright smoke-tests on.
const OLDEST: u8 = 8;

impl Interpreter {
    /// `cpython-3.11`.
    pub fn label(&self) -> String {
        format!("cpython-{}", self.version)
    }

    /// Asks `command` (a name on PATH or a path) what it is.
    pub fn probe(command: &Path) -> Result<Interpreter, SmokeError> {
        let fail = |why: String| SmokeError::Interpreter { command: command.display().to_string(), why };
        let script = "import sys, platform; print(platform.python_implementation()); \
                      print(sys.version_info[0]); print(sys.version_info[1]); \
                      print(sys.executable); print(sys.base_prefix)";
        let out =
            std::process::Command::new(command).args(["-I", "-c", script]).output().map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        match lines.as_slice() {
            ["CPython", major, minor, exe, prefix] => Ok(Interpreter {
                executable: PathBuf::from(exe),
                version: PyVersion::new(
                    major.parse().map_err(|_| fail(format!("answered `{}`", text.trim())))?,
                    minor.parse().map_err(|_| fail(format!("answered `{}`", text.trim())))?,
                ),
                prefix: PathBuf::from(prefix),
            }),
            [other, ..] if *other != "CPython" => Err(fail(format!("is {other}, not CPython"))),
            _ => Err(fail(format!("answered `{}`", text.trim()))),
        }
    }

    /// Every CPython 3.8 or newer found on this host, one per version, oldest
    /// first: `python3.X` and `python3` on PATH, the usual install prefixes, and
    /// pyenv's versions. Shims that only forward to another interpreter are
    /// skipped in favour of the real executables.
    pub fn discover() -> Vec<Interpreter> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        let names = (OLDEST..=PyVersion::NEWEST.minor).map(|m| format!("python3.{m}")).chain(["python3".to_string()]);
        for name in names {
            candidates.extend(which::which(&name).ok());
            for dir in ["/usr/bin", "/usr/local/bin"] {
                candidates.push(Path::new(dir).join(&name));
            }
        }
        let pyenv = std::env::var_os("PYENV_ROOT")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
        for root in pyenv.iter().chain([&PathBuf::from("/opt/python")]) {
            let versions = if root.ends_with("python") { root.clone() } else { root.join("versions") };
            for entry in std::fs::read_dir(versions).into_iter().flatten().flatten() {
                candidates.push(entry.path().join("bin/python3"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        let candidates: Vec<PathBuf> = candidates
            .into_iter()
            .filter(|p| p.is_file() && !p.components().any(|c| c.as_os_str() == "shims"))
            .filter(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())))
            .collect();
        // Probing starts an interpreter each: do them side by side.
        let probed: Vec<Interpreter> = std::thread::scope(|s| {
            let handles: Vec<_> = candidates.iter().map(|c| s.spawn(move || Interpreter::probe(c).ok())).collect();
            handles.into_iter().filter_map(|h| h.join().ok().flatten()).collect()
        });
        let mut by_version: Vec<Interpreter> = Vec::new();
        for interp in probed {
            if interp.version.minor >= OLDEST && !by_version.iter().any(|i| i.version == interp.version) {
                by_version.push(interp);
            }
        }
        by_version.sort_by_key(|i| i.version);
        by_version
    }
}

/// A virtual environment holding pytest, made once per interpreter and reused.
#[derive(Debug, Clone)]
pub struct SmokeEnv {
    /// The environment's directory.
    pub dir: PathBuf,
    /// The environment's python.
    pub python: PathBuf,
}

impl SmokeEnv {
    /// The environment for `interp` under `root`, created on first use.
    pub fn ensure(interp: &Interpreter, root: &Path) -> Result<SmokeEnv, SmokeError> {
        let key = crate::wheel::sha256_hex(interp.executable.as_os_str().as_encoded_bytes());
        let dir = root.join(format!("{}-{}", interp.label(), &key[..12]));
        let env = SmokeEnv { python: dir.join("bin/python"), dir: dir.clone() };
        if dir.join("ready").is_file() {
            return Ok(env);
        }
        let fail =
            |why: String| SmokeError::Environment { interpreter: interp.label(), dir: dir.display().to_string(), why };
        std::fs::create_dir_all(root).map_err(|e| fail(e.to_string()))?;
        let scratch = tempfile::tempdir_in(root).map_err(|e| fail(e.to_string()))?;
        let run = |cmd: &mut std::process::Command| -> Result<(), SmokeError> {
            let out = cmd.output().map_err(|e| fail(e.to_string()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(fail(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
            }
        };
        run(std::process::Command::new(&interp.executable).args(["-m", "venv"]).arg(scratch.path()))?;
        run(std::process::Command::new(scratch.path().join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "pytest",
        ]))?;
        std::fs::write(scratch.path().join("ready"), b"").map_err(|e| fail(e.to_string()))?;
        let scratch = scratch.keep();
        if std::fs::rename(&scratch, &dir).is_err() {
            // Another build made it first.
            let _ = std::fs::remove_dir_all(&scratch);
        }
        if dir.join("ready").is_file() {
            Ok(env)
        } else {
            Err(fail("the environment vanished after it was made".into()))
        }
    }
}
