//! Hostile smoke tests: a test that forges gdb's answers to make the host
//! read its files, a conftest that replaces pytest's JUnit XML with a FIFO or
//! a link to `/dev/zero`, a module that hangs on import on several
//! interpreters, and a build that outlives its budget. Each ends promptly
//! with a precise reason, and the next build runs normally.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use wheelwright_workers::pipeline::{self, BuildOptions};
use wheelwright_workers::platform::Target;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{BuildReport, Status, TestRun};
use wheelwright_workers::sandbox::Limits;
use wheelwright_workers::smoke::Interpreter;

const PYMULT: &str = include_str!("../../examples/pymult/src/pymult.asm");
const SEGFAULT: &str = include_str!("fixtures/segfault/src/segfault.asm");
const HANG: &str = include_str!("fixtures/hang/src/hang.asm");

/// Builds `root` under `limits` on `interpreters`, returning the report and every log line.
fn build_with(
    root: &Path,
    targets: &[Target],
    limits: Limits,
    interpreters: Vec<Interpreter>,
) -> (BuildReport, String, Dirs) {
    let project = Project::load(root, &Overrides::default()).unwrap();
    let (options, dirs) = options(targets, true);
    let options = BuildOptions { sandbox: sandbox(limits), interpreters, parallel_targets: false, ..options };
    let log = std::sync::Mutex::new(String::new());
    let report = pipeline::build(&project, &options, &|event| {
        if let pipeline::Event::Log { text, .. } = event {
            let mut log = log.lock().unwrap();
            log.push_str(&text);
            log.push('\n');
        }
    });
    (report, log.into_inner().unwrap(), dirs)
}

fn limits(timeout_secs: u64) -> Limits {
    Limits { timeout_secs, ..Limits::default() }
}

/// The only smoke run of a Linux build.
fn smoke_run(report: &BuildReport) -> &TestRun {
    let linux = target(report, Target::Linux);
    assert_eq!(linux.tests.len(), 1, "{linux:#?}");
    &linux.tests[0]
}

/// python3 first, then up to `more` other CPythons of this host.
fn interpreters(more: usize) -> Vec<Interpreter> {
    let first = python3();
    let mut all = vec![first.clone()];
    all.extend(Interpreter::discover().into_iter().filter(|i| i.version != first.version).rev().take(more));
    assert!(all.len() > 1, "these tests need a second CPython on the host (pyenv's, /usr/bin/python3.X): {all:?}");
    all
}

/// Every byte the build left behind (artifacts, work files), its report and its log.
fn everything_of(dirs: &Dirs, report: &BuildReport, log: &str) -> Vec<u8> {
    let mut all = everything(dirs, log);
    all.extend(serde_json::to_vec(report).unwrap());
    all
}

/// `path` as a relative path from `from` (both absolute): `../../x/y`.
fn relative_from(from: &Path, path: &Path) -> PathBuf {
    let mut rel: PathBuf = from.components().skip(1).map(|_| "..").collect();
    rel.push(path.strip_prefix("/").unwrap());
    rel
}

#[test]
fn a_test_that_forges_gdbs_answers_cannot_make_the_host_read_a_file() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret.txt");
    let marker = format!("TOP-SECRET-{}", std::process::id());
    std::fs::write(&secret, format!("{marker}\n")).unwrap();
    // What the host's own /proc/self/environ holds (cargo sets it for tests).
    let environ = std::fs::read("/proc/self/environ").unwrap();
    let host_variable = b"CARGO_MANIFEST_DIR=";
    assert!(contains(&environ, host_variable), "the precondition: the host has {host_variable:?}");

    let dir = project(&[
        ("pyproject.toml", include_str!("fixtures/segfault/pyproject.toml")),
        ("src/segfault.asm", SEGFAULT),
        ("tests/test_forge.py", ""),
    ]);
    let relative = relative_from(dir.path(), &secret);
    let forged: String = ["/proc/self/environ", &secret.display().to_string(), &relative.display().to_string()]
        .iter()
        .map(|file| format!("@@line\nLine 1 of \"{file}\" starts at address 0x1 <forged> and ends at 0x2.\n@@end\n"))
        .collect();
    // Every way out: stdout and stderr, every pipe the process holds (pytest
    // keeps the real stdout on a spare descriptor), and the pipes of other
    // processes in the sandbox through /proc.
    let test = format!(
        "import os, stat\n\nFORGED = {forged:?}.encode()\n\n\
         def forge():\n\
         \x20   for fd in range(64):\n\
         \x20       try:\n\
         \x20           if stat.S_ISFIFO(os.fstat(fd).st_mode):\n\
         \x20               os.write(fd, FORGED)\n\
         \x20       except OSError:\n\
         \x20           pass\n\
         \x20   for pid in os.listdir('/proc'):\n\
         \x20       for fd in ('1', '2'):\n\
         \x20           try:\n\
         \x20               with open(f'/proc/{{pid}}/fd/{{fd}}', 'wb') as f:\n\
         \x20                   f.write(FORGED)\n\
         \x20           except OSError:\n\
         \x20               pass\n\n\
         def test_forge_then_crash():\n\
         \x20   forge()\n\
         \x20   import segfault  # noqa: F401\n"
    );
    std::fs::write(dir.path().join("tests/test_forge.py"), test).unwrap();

    let (report, log, dirs) = build_with(dir.path(), &[Target::Linux], limits(60), vec![python3()]);
    // The real line, from the project's own source, not the forged ones.
    assert_real_crash_report(smoke_run(&report), &log);
    // The forgery did reach the output (so the test tests something) ...
    assert!(log.contains("Line 1 of \"/proc/self/environ\""), "{log}");
    // ... and nothing of the host's files did.
    let all = everything_of(&dirs, &report, &log);
    assert!(!contains(&all, marker.as_bytes()), "the secret file leaked");
    assert!(!contains(&all, host_variable), "the host's environment leaked");
    assert_next_build_is_fine();
}

/// A project whose one passing test is fine, and whose conftest replaces
/// the JUnit XML after pytest wrote it, with `replace` (Python taking `path`).
fn junit_replaced_by(replace: &str) -> tempfile::TempDir {
    let conftest = format!("import os\n\n\ndef pytest_unconfigure(config):\n    path = config.option.xmlpath\n    os.remove(path)\n    {replace}\n");
    project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/conftest.py", &conftest),
        ("tests/test_ok.py", "def test_ok():\n    assert True\n"),
    ])
}

#[test]
fn a_junit_xml_replaced_by_a_fifo_is_refused_at_once() {
    let dir = junit_replaced_by("os.mkfifo(path)");
    let started = Instant::now();
    let (report, log, _dirs) = build_with(dir.path(), &[Target::Linux], limits(60), vec![python3()]);
    assert!(started.elapsed() < Duration::from_secs(60), "the build waited on the FIFO");
    let run = smoke_run(&report);
    assert_eq!(run.problem.as_deref(), Some("pytest's JUnit XML is not a regular file but a FIFO"), "{log}");
    let (step, reason) = failed_step(target(&report, Target::Linux));
    assert_eq!(
        (step.as_str(), reason),
        ("smoke", format!("{}: pytest's JUnit XML is not a regular file but a FIFO", run.interpreter))
    );
    assert_next_build_is_fine();
}

#[test]
fn a_junit_xml_replaced_by_a_link_to_dev_zero_is_refused_at_once() {
    let dir = junit_replaced_by("os.symlink('/dev/zero', path)");
    let started = Instant::now();
    let (report, log, _dirs) = build_with(dir.path(), &[Target::Linux], limits(60), vec![python3()]);
    assert!(started.elapsed() < Duration::from_secs(60));
    let run = smoke_run(&report);
    assert_eq!(run.problem.as_deref(), Some("pytest's JUnit XML is not a regular file but a symbolic link"), "{log}");
    assert_eq!((run.passed, run.failed), (0, 0), "{run:#?}");
    assert_eq!(target(&report, Target::Linux).status, Status::Failed);
    assert_next_build_is_fine();
}

#[test]
fn a_module_that_hangs_on_import_is_timed_out_once_not_once_per_interpreter() {
    let interpreters = interpreters(2);
    let timeout = 4;
    let dir = project(&[("src/hang.asm", HANG)]);
    let started = Instant::now();
    let (report, log, _dirs) = build_with(dir.path(), &[Target::Linux], limits(timeout), interpreters.clone());
    let elapsed = started.elapsed();
    let linux = target(&report, Target::Linux);
    let labels: Vec<&str> = linux.tests.iter().map(|t| t.interpreter.as_str()).collect();
    let expected: Vec<String> = interpreters.iter().map(|i| i.label()).collect();
    assert_eq!(labels, expected, "{linux:#?}");
    let first = &linux.tests[0];
    let problem = first.problem.as_deref().unwrap_or("");
    assert!(problem.starts_with(&format!("timed out after {timeout} s in:")), "{problem}\n{log}");
    assert!(problem.contains("importlib._bootstrap"), "{problem}");
    for other in &linux.tests[1..] {
        assert_eq!(
            other.problem.as_deref(),
            Some(format!("not run: the same wheel hung on {}", first.interpreter).as_str()),
            "{other:#?}"
        );
    }
    // One timeout, not one per interpreter (that would be at least 3 × 4 s).
    assert!(elapsed < Duration::from_secs(2 * timeout + 3), "{elapsed:?}");
    let (step, reason) = failed_step(linux);
    assert_eq!(step, "smoke");
    let last = expected.last().unwrap();
    assert!(reason.ends_with(&format!("{last}: not run: the same wheel hung on {}", expected[0])), "{reason}");
}

#[test]
fn a_build_that_outlives_its_budget_is_stopped_and_says_so() {
    let interpreters = interpreters(1);
    let dir = project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/test_sleep.py", "import time\n\ndef test_sleep():\n    time.sleep(3600)\n"),
    ]);
    let limits = Limits { timeout_secs: 60, build_timeout_secs: 6, ..Limits::default() };
    let started = Instant::now();
    let (report, log, _dirs) = build_with(dir.path(), &[Target::Linux, Target::Windows], limits, interpreters.clone());
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());

    let linux = target(&report, Target::Linux);
    let steps: Vec<(&str, Status)> = linux.steps.iter().map(|s| (s.name.as_str(), s.status)).collect();
    assert_eq!(
        steps,
        [
            ("assemble", Status::Succeeded),
            ("check", Status::Succeeded),
            ("abi", Status::Succeeded),
            ("link", Status::Succeeded),
            ("verify", Status::Succeeded),
            ("package", Status::Succeeded),
            ("smoke", Status::Failed)
        ],
        "{log}"
    );
    let stopped = linux.tests[0].problem.as_deref().unwrap_or("");
    assert!(stopped.starts_with("stopped: the build used its 6 s budget"), "{stopped}");
    assert_eq!(linux.tests[1].problem.as_deref(), Some("not run: the build used its 6 s budget"), "{linux:#?}");

    // The next target cannot start: its first step is reported as not run.
    let windows = target(&report, Target::Windows);
    assert_eq!(windows.status, Status::Failed);
    assert_eq!(windows.reason.as_deref(), Some("the build used its 6 s budget"));
    let first = &windows.steps[0];
    assert_eq!(
        (first.name.as_str(), first.status, first.reason.as_deref()),
        ("assemble", Status::Skipped, Some("not run: the build used its 6 s budget"))
    );
    assert_eq!(windows.steps.len(), 1, "{windows:#?}");
}

/// The one smoke folder of a Linux build (beside it, only the engine's
/// read-only harness, `<folder>.abimodel`).
fn smoke_dir(dirs: &Dirs) -> PathBuf {
    let smoke = dirs.work.path().join("linux-x86_64/smoke");
    let folders: Vec<PathBuf> = std::fs::read_dir(&smoke)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "abimodel"))
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    folders[0].clone()
}

/// Forged gdb sections with `marker` (Python expression) as their header.
const FORGED_SECTIONS: &str = "''.join(f'{marker} {name}\\n{body}\\n' for name, body in [\
    ('registers', 'rip 0x4141414141414141 0'), ('instruction', '=> 0x4141414141414141 <forged>:\\tnop'), \
    ('symbol', 'forged + 0 in section .text of /x/forged.so'), \
    ('line', 'Line 1 of \"src/segfault.asm\" starts at address 0x41 <forged> and ends at 0x42.'), ('end', '')])";

/// The crash report of the segfault fixture is gdb's own, not a forged one.
fn assert_real_crash_report(run: &TestRun, log: &str) {
    assert_eq!(run.problem.as_deref(), Some("the test process crashed with SIGSEGV"), "{log}");
    let crash = run.crash.as_ref().expect("a crash report");
    assert_eq!(
        crash.source_line.as_deref(),
        Some("src/segfault.asm:20: mov rax, [rax]                    ; the faulting instruction"),
        "{crash:#?}\n{log}"
    );
    assert!(crash.location.as_deref().unwrap_or("").starts_with("PyInit_segfault + "), "{crash:#?}\n{log}");
    let instruction = crash.instruction.as_deref().unwrap_or("");
    assert!(instruction.contains("<PyInit_segfault+") && instruction.contains("mov"), "{crash:#?}\n{log}");
    let rip = crash.registers.iter().find(|(r, _)| r == "rip").map(|(_, v)| v.as_str());
    assert!(rip.is_some_and(|v| v.starts_with("0x") && v != "0x4141414141414141"), "{crash:#?}\n{log}");
}

#[test]
fn a_sitecustomize_in_the_wheel_does_not_run_in_gdb_and_cannot_learn_the_marker() {
    // Packaged into the wheel's top level (it is in `src/`), so it lies in the site directory
    // on the test's PYTHONPATH. Inside gdb's Python (where `import gdb`
    // works) it reads the command file named on gdb's command line, takes
    // the marker from it and prints sections under it.
    let sitecustomize = format!(
        "import os, re, sys\n\n\n\
         def _forge():\n\
         \x20   try:\n\
         \x20       import gdb  # noqa: F401\n\
         \x20   except ImportError:\n\
         \x20       sys.stderr.write('[sitecustomize] imported outside gdb\\n')\n\
         \x20       return\n\
         \x20   os.write(2, b'[sitecustomize] imported in gdb\\n')\n\
         \x20   args = open('/proc/self/cmdline', 'rb').read().split(b'\\0')\n\
         \x20   text = open(args[args.index(b'-x') + 1].decode()).read()\n\
         \x20   marker = re.search(r'@@[0-9a-f]{{32}}', text).group(0)\n\
         \x20   os.write(1, ({FORGED_SECTIONS}).encode())\n\n\n\
         _forge()\n"
    );
    let dir = project(&[
        ("pyproject.toml", include_str!("fixtures/segfault/pyproject.toml")),
        ("src/segfault.asm", SEGFAULT),
        ("src/sitecustomize.py", &sitecustomize),
        ("tests/test_crash.py", "def test_crash():\n    import segfault  # noqa: F401\n"),
    ]);
    let (report, log, _dirs) = build_with(dir.path(), &[Target::Linux], limits(60), vec![python3()]);
    // The file is where the test's interpreter imports it ...
    assert!(log.contains("[sitecustomize] imported outside gdb"), "{log}");
    // ... and gdb's Python never did.
    assert!(!log.contains("[sitecustomize] imported in gdb"), "{log}");
    assert_real_crash_report(smoke_run(&report), &log);
    assert_next_build_is_fine();
}

#[test]
fn a_child_left_running_cannot_read_gdbs_answers_from_the_output_pipe() {
    // Under gdb (the second run), the test forks a child that tries to open
    // the output pipe through the sandbox's init (/proc/1/fd/1, read end and
    // write end), says it is there, then reads everything gdb prints and,
    // once it has a marked section, prints forged sections under the marker.
    let test = format!(
        "import os, re, time\n\n\n\
         def traced():\n\
         \x20   with open('/proc/self/status') as f:\n\
         \x20       return any(l.startswith('TracerPid:') and l.split()[1] != '0' for l in f)\n\n\n\
         def thief(ready):\n\
         \x20   try:\n\
         \x20       steal(ready)\n\
         \x20   except BaseException as e:\n\
         \x20       open('thief.txt', 'w').write(repr(e))\n\
         \x20       os.write(ready, b'x')\n\
         \x20   os._exit(0)\n\n\n\
         def steal(ready):\n\
         \x20   pipe_in = os.open('/proc/1/fd/1', os.O_RDONLY)\n\
         \x20   pipe_out = os.open('/proc/1/fd/1', os.O_WRONLY)\n\
         \x20   os.write(pipe_out, b'[thief] reading the output pipe\\n')\n\
         \x20   open('thief.txt', 'w').write('reading')\n\
         \x20   os.write(ready, b'x')\n\
         \x20   data = b''\n\
         \x20   deadline = time.monotonic() + 30\n\
         \x20   while time.monotonic() < deadline:\n\
         \x20       data += os.read(pipe_in, 65536)\n\
         \x20       found = re.search(rb'@@[0-9a-f]{{32}}', data)\n\
         \x20       if found:\n\
         \x20           marker = found.group(0).decode()\n\
         \x20           os.write(pipe_out, b'[thief] stole the marker\\n' + ({FORGED_SECTIONS}).encode())\n\
         \x20           break\n\n\n\
         def test_crash():\n\
         \x20   if traced():\n\
         \x20       ready_r, ready_w = os.pipe()\n\
         \x20       if os.fork() == 0:\n\
         \x20           thief(ready_w)\n\
         \x20       assert os.read(ready_r, 1) == b'x'\n\
         \x20   import segfault  # noqa: F401\n"
    );
    let dir = project(&[
        ("pyproject.toml", include_str!("fixtures/segfault/pyproject.toml")),
        ("src/segfault.asm", SEGFAULT),
        ("tests/test_thief.py", &test),
    ]);
    let (report, log, dirs) = build_with(dir.path(), &[Target::Linux], limits(60), vec![python3()]);
    // The child ran in the gdb run, and could not open the pipe: the init
    // is the helper, not dumpable (bubblewrap's own reaper, which is, let
    // it; gdb's order, answers printed only once every other process is
    // gone, is kept for a sandbox without the helper).
    let thief = std::fs::read_to_string(smoke_dir(&dirs).join("thief.txt")).unwrap();
    assert_eq!(thief, "PermissionError(13, 'Permission denied')", "{log}");
    // ... and was gone before gdb printed anything it could steal.
    assert!(!log.contains("[thief] stole the marker"), "{log}");
    assert_real_crash_report(smoke_run(&report), &log);
    assert_next_build_is_fine();
}

#[test]
fn a_second_interpreter_of_one_version_gets_a_folder_no_test_has_touched() {
    // The first run's conftest swaps its `site` folder for a link to a host
    // folder; were the second run (same version) given the same folder, the
    // host would install the wheel through that link.
    let host = tempfile::tempdir().unwrap();
    let conftest = format!(
        "import os, shutil\n\n\ndef pytest_unconfigure(config):\n    \
         shutil.rmtree('site')\n    os.symlink({:?}, 'site')\n",
        host.path().display().to_string()
    );
    let dir = project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/conftest.py", &conftest),
        ("tests/test_ok.py", "def test_ok():\n    assert True\n"),
    ]);
    let (report, log, _dirs) = build_with(dir.path(), &[Target::Linux], limits(60), vec![python3(), python3()]);
    let runs = &target(&report, Target::Linux).tests;
    assert_eq!(runs.len(), 2, "{log}");
    for run in runs {
        assert_eq!((run.passed, run.problem.as_deref()), (1, None), "{log}");
    }
    let written: Vec<_> = std::fs::read_dir(host.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(written.is_empty(), "the host wrote through a link a test planted: {written:?}");
    assert_next_build_is_fine();
}
