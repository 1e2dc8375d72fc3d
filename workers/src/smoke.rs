//! The smoke test: install a Linux wheel into a fresh directory and run the
//! project's pytest tests (or a generated import test) against it, on each
//! interpreter the wheel admits; results read from pytest's JUnit XML.

use std::path::{Path, PathBuf};

use crate::process::{self, CancelToken, Cmd, Exit, RunLimits};
use crate::pyversion::PyVersion;
use crate::report::{TestFailure, TestRun};

/// A CPython interpreter on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The real executable (not a shim).
    pub executable: PathBuf,
    /// Its feature version.
    pub version: PyVersion,
}

impl Interpreter {
    /// `cpython-3.11`.
    pub fn label(&self) -> String {
        format!("cpython-{}", self.version)
    }

    /// Asks `command` (a name on PATH or a path) what it is.
    pub fn probe(command: &Path) -> Result<Interpreter, SmokeError> {
        let fail = |why: String| SmokeError::Interpreter {
            command: command.display().to_string(),
            why,
        };
        let out = std::process::Command::new(command)
            .args(["-c", "import sys, platform; print(platform.python_implementation(), sys.version_info[0], sys.version_info[1], sys.executable)"])
            .output()
            .map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            return Err(fail(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.trim().splitn(4, ' ');
        let (implementation, major, minor, exe) =
            (words.next(), words.next(), words.next(), words.next());
        match (
            implementation,
            major.and_then(|m| m.parse().ok()),
            minor.and_then(|m| m.parse().ok()),
            exe,
        ) {
            (Some("CPython"), Some(major), Some(minor), Some(exe)) => Ok(Interpreter {
                executable: PathBuf::from(exe),
                version: PyVersion::new(major, minor),
            }),
            (Some(other), ..) if other != "CPython" => {
                Err(fail(format!("is {other}, not CPython")))
            }
            _ => Err(fail(format!("answered `{}`", text.trim()))),
        }
    }
}

/// Why a smoke test could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    /// The interpreter is not usable.
    #[error("interpreter `{command}`: {why}")]
    Interpreter {
        /// What was tried.
        command: String,
        /// What went wrong.
        why: String,
    },
    /// The cached environment with pytest could not be made.
    #[error("could not set up pytest for {interpreter} in {dir}: {why}")]
    Environment {
        /// The interpreter label.
        interpreter: String,
        /// The environment directory.
        dir: String,
        /// What went wrong.
        why: String,
    },
    /// Installing the wheel failed.
    #[error("could not install {wheel}: {why}")]
    Install {
        /// The wheel.
        wheel: String,
        /// What went wrong.
        why: String,
    },
    /// Starting pytest failed.
    #[error(transparent)]
    Spawn(#[from] process::SpawnError),
}

/// A virtual environment holding pytest, made once per interpreter and reused.
#[derive(Debug, Clone)]
pub struct SmokeEnv {
    /// The environment's python.
    pub python: PathBuf,
}

impl SmokeEnv {
    /// The environment for `interp` under `root`, created on first use.
    pub fn ensure(interp: &Interpreter, root: &Path) -> Result<SmokeEnv, SmokeError> {
        let key = crate::wheel::sha256_hex(interp.executable.as_os_str().as_encoded_bytes());
        let dir = root.join(format!("{}-{}", interp.label(), &key[..12]));
        let python = dir.join("bin/python");
        if dir.join("ready").is_file() {
            return Ok(SmokeEnv { python });
        }
        let fail = |why: String| SmokeError::Environment {
            interpreter: interp.label(),
            dir: dir.display().to_string(),
            why,
        };
        std::fs::create_dir_all(root).map_err(|e| fail(e.to_string()))?;
        let scratch = tempfile::tempdir_in(root).map_err(|e| fail(e.to_string()))?;
        let run = |cmd: &mut std::process::Command| -> Result<(), SmokeError> {
            let out = cmd.output().map_err(|e| fail(e.to_string()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(fail(format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )))
            }
        };
        run(std::process::Command::new(&interp.executable)
            .args(["-m", "venv"])
            .arg(scratch.path()))?;
        run(
            std::process::Command::new(scratch.path().join("bin/python")).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "pytest",
            ]),
        )?;
        std::fs::write(scratch.path().join("ready"), b"").map_err(|e| fail(e.to_string()))?;
        let scratch = scratch.keep();
        if std::fs::rename(&scratch, &dir).is_err() {
            // Another build made it first.
            let _ = std::fs::remove_dir_all(&scratch);
        }
        if dir.join("ready").is_file() {
            Ok(SmokeEnv { python })
        } else {
            Err(fail("the environment vanished after it was made".into()))
        }
    }
}

/// One smoke run: a wheel on an interpreter.
#[derive(Debug)]
pub struct SmokeJob<'a> {
    /// The wheel file.
    pub wheel: &'a Path,
    /// Where to install and run (created fresh).
    pub dir: &'a Path,
    /// The project's test files: (path relative to `tests/`, absolute source).
    pub tests: &'a [(PathBuf, PathBuf)],
    /// Modules to import when the project has no tests.
    pub modules: &'a [String],
    /// The interpreter.
    pub interpreter: &'a Interpreter,
    /// Its environment with pytest.
    pub env: &'a SmokeEnv,
}

/// Installs the wheel into `job.dir/site` and runs pytest; returns the
/// results and pytest's own output for the log.
pub fn run(
    job: &SmokeJob<'_>,
    limits: &RunLimits,
    cancel: &CancelToken,
) -> Result<(TestRun, String), SmokeError> {
    let wheel_name = job
        .wheel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let site = job.dir.join("site");
    let tests_dir = job.dir.join("tests");
    let install_err = |why: String| SmokeError::Install {
        wheel: wheel_name.clone(),
        why,
    };
    std::fs::create_dir_all(&tests_dir).map_err(|e| install_err(e.to_string()))?;
    install_wheel(job.wheel, &site).map_err(install_err)?;
    if job.tests.iter().any(|(rel, _)| is_test_module(rel)) {
        for (rel, source) in job.tests {
            let dest = tests_dir.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| install_err(e.to_string()))?;
            }
            std::fs::copy(source, &dest).map_err(|e| install_err(e.to_string()))?;
        }
    } else {
        std::fs::write(
            tests_dir.join("test_wheelwright_import.py"),
            generated_import_test(job.modules),
        )
        .map_err(|e| install_err(e.to_string()))?;
    }
    let junit = job.dir.join("junit.xml");
    let cmd = Cmd::new(&job.env.python)
        .args([
            "-X",
            "faulthandler",
            "-X",
            "dev",
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rfE",
            "--color=no",
        ])
        .arg(format!("--junitxml={}", junit.display()))
        .arg("tests")
        .cwd(job.dir)
        .env("PYTHONPATH", site.display().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONNOUSERSITE", "1");
    let out = process::run(&cmd, limits, cancel)?;
    let mut run = TestRun {
        interpreter: job.interpreter.label(),
        executable: job.interpreter.executable.clone(),
        wheel: wheel_name,
        passed: 0,
        failed: 0,
        errors: 0,
        skipped: 0,
        failures: Vec::new(),
        problem: None,
    };
    match &out.exit {
        Exit::Code(0) | Exit::Code(1) => {}
        Exit::Code(5) => run.problem = Some("pytest collected no tests".into()),
        Exit::Code(code) => run.problem = Some(format!("pytest exited with status {code}")),
        Exit::Signal(sig) => {
            run.problem = Some(format!(
                "the test process was killed by {}",
                signal_name(*sig)
            ))
        }
        Exit::TimedOut => {
            run.problem = Some(format!("timed out after {} s", limits.timeout.as_secs()))
        }
        Exit::Cancelled => run.problem = Some("cancelled".into()),
    }
    if let Ok(xml) = std::fs::read_to_string(&junit) {
        parse_junit(&xml, &mut run);
    } else if run.problem.is_none() {
        run.problem = Some("pytest wrote no results".into());
    }
    Ok((run, out.text))
}

fn is_test_module(rel: &Path) -> bool {
    rel.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("test_") && n.ends_with(".py"))
}

fn generated_import_test(modules: &[String]) -> String {
    let list: Vec<String> = modules.iter().map(|m| format!("{m:?}")).collect();
    format!(
        "# Generated by wheelwright: the project has no tests, so import every module.\n\
         import importlib\n\nimport pytest\n\n\n\
         @pytest.mark.parametrize(\"name\", [{}])\n\
         def test_import(name):\n    importlib.import_module(name)\n",
        list.join(", ")
    )
}

/// Unpacks the wheel into `site`, checking every file against RECORD as an
/// installer does.
fn install_wheel(wheel: &Path, site: &Path) -> Result<(), String> {
    let file = std::fs::File::open(wheel).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let mut record = None;
    let mut hashes = std::collections::HashMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let name = entry.name().map_err(|e| e.to_string())?.to_string();
        let rel = entry
            .enclosed_name()
            .ok_or_else(|| format!("unsafe path in wheel: {name}"))?;
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| e.to_string())?;
        let dest = site.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&dest, &data).map_err(|e| e.to_string())?;
        if name.ends_with(".dist-info/RECORD") {
            record = Some(String::from_utf8_lossy(&data).into_owned());
        } else {
            hashes.insert(name, crate::wheel::record_hash(&data));
        }
    }
    let record = record.ok_or("the wheel has no RECORD")?;
    for line in record.lines() {
        let mut fields = line.rsplitn(3, ',');
        let (_size, hash, path) = (fields.next(), fields.next(), fields.next());
        if let (Some(hash), Some(path)) = (hash, path) {
            if !hash.is_empty() && hashes.get(path).map(String::as_str) != Some(hash) {
                return Err(format!("{path} does not match its RECORD hash"));
            }
        }
    }
    Ok(())
}

/// Reads pytest's JUnit XML into `run`.
fn parse_junit(xml: &str, run: &mut TestRun) {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        run.problem
            .get_or_insert_with(|| "pytest's JUnit XML is unreadable".into());
        return;
    };
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let class = case.attribute("classname").unwrap_or("");
        let name = case.attribute("name").unwrap_or("");
        let test = if class.is_empty() {
            name.to_string()
        } else {
            format!("{class}::{name}")
        };
        let outcome = case.children().find(|c| {
            c.is_element()
                && ["failure", "error", "skipped"]
                    .iter()
                    .any(|t| c.has_tag_name(*t))
        });
        match outcome {
            None => run.passed += 1,
            Some(node) if node.has_tag_name("skipped") => run.skipped += 1,
            Some(node) => {
                if node.has_tag_name("failure") {
                    run.failed += 1;
                } else {
                    run.errors += 1;
                }
                let message = node.attribute("message").unwrap_or("");
                let text = node.text().unwrap_or("").trim();
                let message = if text.is_empty() {
                    message.to_string()
                } else {
                    text.to_string()
                };
                run.failures.push(TestFailure { test, message });
            }
        }
    }
}

/// `SIGSEGV` for 11, and so on.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pytest_junit_xml() {
        let xml = r#"<?xml version="1.0"?><testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="4">
            <testcase classname="tests.test_m" name="test_ok" time="0.001"/>
            <testcase classname="tests.test_m" name="test_ok2" time="0.001"/>
            <testcase classname="tests.test_m" name="test_bad" time="0.001"><failure message="assert 1 == 2">def test_bad():
&gt;       assert 1 == 2</failure></testcase>
            <testcase classname="tests.test_m" name="test_skip" time="0.001"><skipped type="pytest.skip" message="no"/></testcase>
            </testsuite></testsuites>"#;
        let mut run = TestRun {
            interpreter: "cpython-3.11".into(),
            executable: "python3".into(),
            wheel: "w.whl".into(),
            passed: 0,
            failed: 0,
            errors: 0,
            skipped: 0,
            failures: vec![],
            problem: None,
        };
        parse_junit(xml, &mut run);
        assert_eq!(
            (run.passed, run.failed, run.errors, run.skipped),
            (2, 1, 0, 1)
        );
        assert_eq!(run.failures[0].test, "tests.test_m::test_bad");
        assert!(run.failures[0].message.contains("assert 1 == 2"));
    }
}
