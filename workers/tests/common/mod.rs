//! Helpers shared by the engine's integration tests: example paths, scratch
//! projects, build options with the host's python3.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wheelwright_workers::pipeline::{self, BuildOptions};
use wheelwright_workers::platform::Target;
use wheelwright_workers::process::CancelToken;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{BuildReport, TargetReport};
use wheelwright_workers::sandbox::{Helper, Limits, Sandbox};
use wheelwright_workers::smoke::Interpreter;
use wheelwright_workers::toolchain::Toolchain;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `examples/<name>`.
pub fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
}

/// The host's python3, probed once.
pub fn python3() -> Interpreter {
    static PY: OnceLock<Interpreter> = OnceLock::new();
    PY.get_or_init(|| Interpreter::probe(Path::new("python3")).expect("python3 is installed")).clone()
}

/// The host's tools, discovered once per test binary (as the daemon does at start).
pub fn toolchain() -> Arc<Toolchain> {
    static TOOLS: OnceLock<Arc<Toolchain>> = OnceLock::new();
    TOOLS.get_or_init(|| Arc::new(Toolchain::discover())).clone()
}

/// The repository's `.venv` python (made by scripts/setup.sh), which has pip and pytest.
pub fn venv_python() -> PathBuf {
    let venv = repo().join(".venv/bin/python");
    assert!(venv.exists(), "run scripts/setup.sh first: {} is missing", venv.display());
    venv
}

/// A project directory made of `(path, contents)` pairs.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, contents).unwrap();
    }
    dir
}

/// Scratch directories for one build: output and work.
pub struct Dirs {
    pub out: tempfile::TempDir,
    pub work: tempfile::TempDir,
}

/// Options for building `targets` with the smoke test on python3.
pub fn options(targets: &[Target], smoke: bool) -> (BuildOptions, Dirs) {
    let dirs = Dirs { out: tempfile::tempdir().unwrap(), work: tempfile::tempdir().unwrap() };
    let options = BuildOptions {
        targets: Some(targets.to_vec()),
        out_dir: dirs.out.path().to_path_buf(),
        work_dir: dirs.work.path().to_path_buf(),
        smoke,
        interpreters: vec![python3()],
        cache_dir: wheelwright_workers::default_cache_dir(),
        source_date_epoch: None,
        sandbox: sandbox(Limits { timeout_secs: 120, ..Limits::default() }),
        cancel: CancelToken::new(),
        parallel_targets: true,
        check_only: false,
        toolchain: toolchain(),
    };
    (options, dirs)
}

/// The bubblewrap sandbox with the Landlock helper built beside these tests.
pub fn sandbox(limits: Limits) -> Sandbox {
    let helper = Helper { program: env!("CARGO_BIN_EXE_wheelwright-sandbox-exec").into(), args: Vec::new() };
    Sandbox::bubblewrap(limits, Some(helper)).expect("bubblewrap works here (scripts/setup.sh installs it)")
}

/// A `bwrap` for a kernel without Landlock: it runs the real one with the
/// three Landlock calls failing with `ENOSYS` (a seccomp filter, inherited
/// by the helper and the step), as on a kernel built without it.
pub fn bwrap_without_landlock(dir: &Path) -> std::path::PathBuf {
    let bwrap = wheelwright_workers::toolchain::find(wheelwright_workers::toolchain::Tool::Bwrap)
        .expect("bubblewrap is installed");
    let wrapper = dir.join("bwrap");
    let script = format!(
        r#"#!/usr/bin/python3
import ctypes, os, struct, sys
LD_NR, JGE, JGT, RET = 0x20, 0x35, 0x25, 0x06
prog = [(LD_NR, 0, 0, 0), (JGE, 0, 2, 444), (JGT, 1, 0, 446), (RET, 0, 0, 0x00050000 | 38), (RET, 0, 0, 0x7FFF0000)]
code = b"".join(struct.pack("HBBI", *i) for i in prog)
buf = ctypes.create_string_buffer(code, len(code))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(prog), ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0):
    sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
os.execv("{bwrap}", ["bwrap"] + sys.argv[1:])
"#,
        bwrap = bwrap.display()
    );
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    wrapper
}

/// Loads and builds the project at `root`.
pub fn build(root: &Path, targets: &[Target], smoke: bool) -> (BuildReport, Dirs) {
    let project = Project::load(root, &Overrides::default()).expect("project loads");
    let (options, dirs) = options(targets, smoke);
    let report = pipeline::build(&project, &options, &|_| {});
    (report, dirs)
}

/// The report of one target.
pub fn target(report: &BuildReport, target: Target) -> &TargetReport {
    report.targets.iter().find(|t| t.target == target).expect("target in report")
}

/// One target of `project` built with its smoke test: its report.
pub fn smoked(project: &Path, target: Target) -> TargetReport {
    let (report, _dirs) = build(project, &[target], true);
    crate::common::target(&report, target).clone()
}

/// The name of the first failed step (as reports write it), with its reason.
pub fn failed_step(report: &TargetReport) -> (String, String) {
    let step = report
        .steps
        .iter()
        .find(|s| s.status == wheelwright_workers::report::Status::Failed)
        .unwrap_or_else(|| panic!("no failed step in {report:#?}"));
    (step.name.to_string(), step.reason.clone().unwrap_or_default())
}

/// Runs a Python snippet with `python`; panics with its output on failure.
pub fn run_python(python: &Path, code: &str, env: &[(&str, &Path)]) -> String {
    let mut cmd = std::process::Command::new(python);
    cmd.arg("-c").arg(code);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python failed:\n{text}");
    text
}

/// Reads one member of a zip archive.
pub fn zip_member(archive: &Path, predicate: impl Fn(&str) -> bool) -> (String, Vec<u8>) {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(archive).unwrap()).unwrap();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        if predicate(&name) {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            return (name, data);
        }
    }
    panic!("no matching member in {}", archive.display());
}

/// Every byte a build left behind: its log, then every file of its output
/// and work directories (for asserting a secret appears nowhere).
pub fn everything(dirs: &Dirs, log: &str) -> Vec<u8> {
    let mut all = log.as_bytes().to_vec();
    for root in [dirs.out.path(), dirs.work.path()] {
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    all.extend(std::fs::read(entry.path()).unwrap());
                }
            }
        }
    }
    all
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The next build after a hostile one still works.
pub fn assert_next_build_is_fine() {
    let (report, _dirs) = build(&example("pymult"), &[Target::Linux], true);
    assert!(report.succeeded(), "{report:#?}");
}
