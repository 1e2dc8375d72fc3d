//! The smoke test: install a wheel into a fresh directory and run the
//! project's pytest tests (or a generated import test) against it in the
//! sandbox, on each interpreter the wheel admits; results read from pytest's
//! JUnit XML, crashes explained with faulthandler and gdb. A macOS or
//! Windows wheel runs the same way under its ABI model ([`crate::abimodel`]):
//! the harness goes on `PYTHONPATH` ahead of the wheel and its pytest plugin
//! maps the foreign modules when the tests import them.

mod crash;
mod interpreter;
mod junit;

use std::path::{Path, PathBuf};

pub use crash::{symbolise, MappedImage, ModuleSymbols, Sources};
pub use interpreter::{Interpreter, SmokeEnv};

use crate::abimodel::{self, Model};
use crate::process::{self, CancelToken, Cmd, Exit};
use crate::readback::{ReadbackError, Root, JUNIT_MAX};
use crate::report::{TestPath, TestRun};
use crate::sandbox::{Mounts, Sandbox, WarmRun};
use crate::warm::WarmError;

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

/// One smoke run: a wheel on an interpreter.
#[derive(Debug)]
pub struct SmokeJob<'a> {
    /// The wheel file.
    pub wheel: &'a Path,
    /// Where to install and run (created fresh); the only writable place.
    pub dir: &'a Path,
    /// The project's test files: (path relative to `tests/`, absolute source).
    pub tests: &'a [(PathBuf, PathBuf)],
    /// Modules to import when the project has no tests.
    pub modules: &'a [String],
    /// The interpreter.
    pub interpreter: &'a Interpreter,
    /// Its environment with pytest.
    pub env: &'a SmokeEnv,
    /// The project's sources, to show `.asm` lines in crash reports.
    pub sources: &'a Sources,
    /// The build's work directory, opened by the host: `dir` lies beneath
    /// it, and every file read back from `dir` is resolved from it.
    pub root: &'a Root,
    /// What to say when the wall clock stops the run, when that is not the
    /// step's own timeout (the build's budget ran out first).
    pub timeout_reason: Option<&'a str>,
    /// The debugger that explains a crash, from the build's toolchain;
    /// `None` when it has none (the crash is reported without gdb's view).
    pub gdb: Option<&'a Path>,
    /// The ABI model the wheel's modules run under (a macOS or Windows
    /// wheel); `None` for a Linux wheel, which CPython imports natively.
    pub model: Option<Model>,
    /// For a Linux wheel (no model): map its modules through the harness
    /// all the same, so that the ABI guards see every call between CPython
    /// and the module. A crash is then explained by a native run under gdb.
    pub guards: bool,
    /// Per module file of the wheel, its line table
    /// ([`crate::lines::ModuleLines::table`]), for the guards' messages.
    pub line_table: &'a [crate::lines::ModuleTable],
    /// The wheel's modules as the host knows them, to say where a crash
    /// under the model happened (empty for a Linux wheel: gdb says it).
    pub symbols: &'a [ModuleSymbols],
    /// Run the tests on a warm runner when the sandbox offers one
    /// ([`crate::warm`]); false: `[tool.wheelwright] warm-tests = false`.
    pub warm: bool,
}

/// What a smoke run found.
#[derive(Debug)]
pub struct Smoked {
    /// The results.
    pub run: TestRun,
    /// pytest's (and gdb's) output, for the log.
    pub log: String,
    /// Set when importing the wheel's modules hung or crashed: the same
    /// wheel would do it again on another interpreter.
    pub on_import: Option<ImportFailure>,
}

/// How importing a wheel's module failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportFailure {
    /// It never returned (the run was killed at its timeout).
    Hung,
    /// It crashed with this signal.
    Crashed(String),
}

impl ImportFailure {
    /// `hung`, `crashed on import with SIGSEGV`.
    pub fn describe(&self) -> String {
        match self {
            ImportFailure::Hung => "hung".into(),
            ImportFailure::Crashed(signal) => format!("crashed on import with {signal}"),
        }
    }
}

/// Whether a Python stack shows an import in progress: the interpreter's
/// import machinery is on it (the `import` statement and `importlib` both
/// go through it), so the module's own `PyInit_` is what hangs or crashes.
fn in_import(stack: &str) -> bool {
    stack.contains("importlib._bootstrap")
}

/// Installs the wheel into `job.dir/site` and runs pytest in the sandbox;
/// returns the results and pytest's own output for the log.
pub fn run(job: &SmokeJob<'_>, sandbox: &Sandbox, cancel: &CancelToken) -> Result<Smoked, SmokeError> {
    let wheel_name = job.wheel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let site = job.dir.join("site");
    let tests_dir = job.dir.join("tests");
    let install_err = |why: String| SmokeError::Install { wheel: wheel_name.clone(), why };
    // A folder no sandbox has seen: made here, refused if it exists. The
    // writes below follow paths inside it, which only the host has touched
    // until pytest starts; a reused folder could hold links a test planted.
    if let Some(parent) = job.dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| install_err(e.to_string()))?;
    }
    std::fs::create_dir(job.dir).map_err(|e| install_err(format!("{}: {e}", job.dir.display())))?;
    std::fs::create_dir(&tests_dir).map_err(|e| install_err(e.to_string()))?;
    install_wheel(job.wheel, &site).map_err(install_err)?;
    // The harness lives beside the job folder, not in it: the sandbox sees
    // it read-only, so the tests cannot change the loader that runs them.
    let mode = match job.model {
        Some(model) => Some(model.name()),
        None if job.guards => Some(abimodel::harness_mode(crate::platform::Target::Linux)),
        None => None,
    };
    let harness = mode.map(|_| RunHarness::prepare(job)).transpose().map_err(|e| install_err(e.to_string()))?;
    if job.tests.iter().any(|(rel, _)| is_test_module(rel)) {
        for (rel, source) in job.tests {
            let dest = tests_dir.join(rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| install_err(e.to_string()))?;
            }
            std::fs::copy(source, &dest).map_err(|e| install_err(e.to_string()))?;
        }
    } else {
        std::fs::write(tests_dir.join("test_wheelwright_import.py"), generated_import_test(job.modules))
            .map_err(|e| install_err(e.to_string()))?;
    }
    let junit = job.dir.join("junit.xml");
    // pytest's faulthandler dumps every thread's stack shortly before the
    // wall-clock limit, so that a hang shows where it hangs.
    let dump_after = (sandbox.limits.timeout_secs * 4 / 5).max(1);
    let mut pytest_args: Vec<String> = vec![
        "-X".into(),
        "faulthandler".into(),
        "-X".into(),
        "dev".into(),
        "-m".into(),
        "pytest".into(),
        "-p".into(),
        "no:cacheprovider".into(),
        "-rfE".into(),
        "--color=no".into(),
        "-o".into(),
        format!("faulthandler_timeout={dump_after}"),
        format!("--junitxml={}", junit.display()),
        "tests".into(),
    ];
    // The native arguments, for gdb's run of a guarded Linux module: gdb
    // names symbols and lines of a module dlopen mapped, not of one ours did.
    let native_args = pytest_args.clone();
    if mode.is_some() {
        // Loaded before collection, so before the tests import the module.
        pytest_args.splice(6..6, ["-p".to_string(), abimodel::PLUGIN.to_string()]);
    }
    let python_path = match &harness {
        Some(harness) => format!("{}:{}", harness.package().display(), site.display()),
        None => site.display().to_string(),
    };
    let native_gdb = job.model.is_none();
    // gdb gets no PYTHONPATH: the site directory holds the upload's files,
    // and gdb's own Python would import them (see `crash::gdb_args`).
    let line_table = harness.as_ref().map(|h| h.table().display().to_string());
    let cmd = |program: &Path, args: Vec<String>, mode: Option<&str>| {
        let cmd = Cmd::new(program)
            .args(args)
            .cwd(job.dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONNOUSERSITE", "1")
            .env("PYTHONHASHSEED", crate::warm::HASH_SEED);
        let cmd = match &line_table {
            Some(table) => cmd.env(abimodel::LINE_TABLE_ENV, table),
            None => cmd,
        };
        match mode {
            Some(mode) => cmd.env(abimodel::MODEL_ENV, mode),
            None => cmd,
        }
    };
    let mut mounts =
        Mounts::job(job.dir).read_only(&job.interpreter.prefix).read_only(&job.env.dir).running_project_code();
    if let Some(harness) = &harness {
        mounts = mounts.read_only(&harness.job_dir);
    }
    let pytest = cmd(&job.env.python, pytest_args.clone(), mode).env("PYTHONPATH", python_path.clone());
    let mut log = String::new();
    let mut path = TestPath::Cold;
    let warm = match (job.warm, sandbox.warm_pool()) {
        (true, Some(_)) => {
            let visible = sandbox.warm_view(job.root.path());
            // The shared copy of the harness, which the runner imports
            // before it forks; without one (the job has its own) the child
            // imports the job's.
            let runner_harness = harness.as_ref().and_then(|h| h.shared.clone());
            let run = WarmRun {
                python: &job.env.python,
                runner_read_only: vec![job.interpreter.prefix.clone(), job.env.dir.clone()],
                visible,
                dir: job.dir,
                read_only: harness.iter().map(|h| h.job_dir.clone()).collect(),
                runner_harness,
                harness: harness.is_some(),
                // What follows `python -X faulthandler -X dev -m pytest`:
                // the runner was started with those flags.
                args: &pytest_args[6..],
                env: &pytest.env,
            };
            match sandbox.run_warm(&run, cancel) {
                Ok(out) => {
                    path = TestPath::Warm;
                    Some(out)
                }
                Err(e @ WarmError::Protocol(_)) => {
                    // The child may have run the tests in this folder, and
                    // left anything there: the cold run gets a fresh one,
                    // as a folder no sandbox has seen.
                    let mut name = job.dir.file_name().unwrap_or_default().to_os_string();
                    name.push("-cold");
                    let fresh = job.dir.with_file_name(name);
                    let mut smoked = self::run(&SmokeJob { dir: &fresh, warm: false, ..*job }, sandbox, cancel)?;
                    smoked.log.insert_str(0, &format!("[wheelwright: {e}; the tests run cold, in a fresh folder]\n"));
                    return Ok(smoked);
                }
                Err(e) => {
                    log.push_str(&format!("[wheelwright: {e}; the tests run cold]\n"));
                    None
                }
            }
        }
        _ => None,
    };
    let out = match warm {
        Some(out) => out,
        None => sandbox.run(&pytest, &mounts, cancel)?,
    };
    let mut run = TestRun::new(&job.interpreter.label(), job.interpreter.executable.clone(), &wheel_name);
    run.runner = path;
    run.model = job.model.map(|m| m.label().to_string());
    log.push_str(&out.text);
    if job.model.is_none() && job.guards {
        log.push_str(&format!("\n[wheelwright: {}]\n", abimodel::LINUX_GUARDS_NOTE));
    }
    let mut on_import = None;
    match &out.exit {
        Exit::Code(0) | Exit::Code(1) => {}
        Exit::Code(5) => run.problem = Some("pytest collected no tests".into()),
        Exit::Code(code) => run.problem = Some(format!("pytest exited with status {code}")),
        Exit::Signal(sig) => {
            let signal = signal_name(*sig);
            run.problem = Some(format!("the test process crashed with {signal}"));
            // The same run again under gdb, to see the faulting instruction.
            let marker = crash::Marker::new().ok();
            let gdb_output = match (&marker, job.gdb) {
                (Some(marker), Some(gdb)) => {
                    let (gdb_path, gdb_args, gdb_mode) = if native_gdb {
                        (site.display().to_string(), &native_args, None)
                    } else {
                        (python_path.clone(), &pytest_args, mode)
                    };
                    let script = gdb_script(job, marker, &gdb_path);
                    match script {
                        Ok(script) => {
                            let args = crash::gdb_args(&script, &job.env.python, gdb_args);
                            sandbox.run(&cmd(gdb, args, gdb_mode), &mounts, cancel).ok().map(|out| {
                                log.push_str(&format!("\n--- gdb ---\n{}", marker.scrub(&out.text)));
                                out.text
                            })
                        }
                        Err(e) => {
                            log.push_str(&format!("\n[wheelwright: no gdb run: {e}]\n"));
                            None
                        }
                    }
                }
                _ => None,
            };
            let gdb = marker.as_ref().zip(gdb_output.as_deref()).map(|(marker, text)| (text, marker));
            let mut crash = crash::report(&signal, &out.text, gdb, job.sources);
            if job.model.is_some() {
                crash::symbolise_under_model(&mut crash, job.root, &job.dir.join(crash::IMAGES_FILE), job.symbols);
            }
            if crash.python_traceback.as_deref().is_some_and(in_import) {
                on_import = Some(ImportFailure::Crashed(signal.clone()));
            }
            run.crash = Some(crash);
        }
        Exit::TimedOut => {
            let mut problem = match job.timeout_reason {
                Some(reason) => reason.to_string(),
                None => format!("timed out after {} s", sandbox.limits.timeout_secs),
            };
            if let Some(stack) = hang_traceback(&out.text) {
                if in_import(&stack) {
                    on_import = Some(ImportFailure::Hung);
                }
                problem.push_str(&format!(" in:\n{stack}"));
            }
            run.problem = Some(problem);
        }
        Exit::Cancelled => run.problem = Some("cancelled".into()),
        Exit::Limit(why) => run.problem = Some(why.clone()),
    }
    // pytest ran the project's code in this directory: the XML may have
    // been replaced by anything (a FIFO, a link to /dev/zero or to a host
    // file), so it is read only through the reader that refuses those.
    match job.root.read(&junit, JUNIT_MAX, "pytest's JUnit XML") {
        Ok(bytes) => {
            let parsed = std::str::from_utf8(&bytes).is_ok_and(|xml| junit::parse_into(xml, &mut run));
            if !parsed {
                run.problem.get_or_insert_with(|| "pytest's JUnit XML is unreadable".into());
            }
        }
        Err(ReadbackError::Missing { .. }) => {
            run.problem.get_or_insert_with(|| "pytest wrote no results".into());
        }
        Err(e) => {
            run.problem.get_or_insert_with(|| e.to_string());
        }
    }
    Ok(Smoked { run, log, on_import })
}

/// Writes gdb's commands (and the marker its answers carry) to a fresh
/// file in the job directory, which gdb deletes before the program starts;
/// returns its path.
fn gdb_script(job: &SmokeJob<'_>, marker: &crash::Marker, python_path: &str) -> Result<PathBuf, String> {
    let script = crash::script_path(job.dir).map_err(|e| e.to_string())?;
    job.root
        .create_new(&script, crash::gdb_script(marker, &script, python_path).as_bytes(), "gdb's command file")
        .map_err(|e| e.to_string())?;
    Ok(script)
}

/// The ABI harness of one run: the package on `PYTHONPATH` and the job's
/// line table, both where the tests cannot write.
#[derive(Debug)]
struct RunHarness {
    /// The shared copy of the package in the pytest environment
    /// ([`abimodel::shared_harness`]; a warm runner imports it), or `None`
    /// when there is none and the job has its own in `job_dir`.
    shared: Option<PathBuf>,
    /// The job's sibling `<dir>.abimodel`, outside the folder the tests may
    /// write, shown read-only: the line table, and the job's own copy of
    /// the package when it has one.
    job_dir: PathBuf,
}

impl RunHarness {
    /// Writes the job's line table and, only when the pytest environment
    /// has no shared copy of the package, the job's own copy. Every file a
    /// run writes is one the host must create and delete again (on this
    /// file system, with no journal, creating one costs about half a
    /// millisecond of CPU): the shared copy saves a run fifteen.
    fn prepare(job: &SmokeJob<'_>) -> std::io::Result<RunHarness> {
        let mut name = job.dir.file_name().unwrap_or_default().to_os_string();
        name.push(".abimodel");
        let job_dir = job.dir.with_file_name(name);
        std::fs::create_dir(&job_dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", job_dir.display())))?;
        abimodel::write_line_table(&job_dir.join(abimodel::LINE_TABLE_FILE), job.line_table)?;
        let shared = match abimodel::shared_harness(&job.env.dir) {
            Ok(shared) => Some(shared),
            Err(e) => {
                tracing::warn!(error = %e, "no shared ABI harness; the job gets its own copy");
                abimodel::install_harness(&job_dir)?;
                None
            }
        };
        Ok(RunHarness { shared, job_dir })
    }

    /// What goes on `PYTHONPATH`.
    fn package(&self) -> &Path {
        self.shared.as_deref().unwrap_or(&self.job_dir)
    }

    /// The line table the guards read ([`abimodel::LINE_TABLE_ENV`]).
    fn table(&self) -> PathBuf {
        self.job_dir.join(abimodel::LINE_TABLE_FILE)
    }
}

/// The stack pytest's faulthandler dumped before the timeout.
fn hang_traceback(output: &str) -> Option<String> {
    let start = output.find("Timeout (")?;
    let lines: Vec<&str> = output[start..].lines().skip(1).take_while(|l| !l.trim().is_empty()).collect();
    Some(lines.join("\n"))
}

fn is_test_module(rel: &Path) -> bool {
    rel.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("test_") && n.ends_with(".py"))
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
        let rel = entry.enclosed_name().ok_or_else(|| format!("unsafe path in wheel: {name}"))?;
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
