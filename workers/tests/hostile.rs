//! Hostile projects: sources that read host files, tests that attack the
//! machine, modules that crash or hang. Each is contained, reported with a
//! precise reason, and leaves the next build unharmed.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use wheelwright_workers::pipeline::{self, BuildOptions};
use wheelwright_workers::platform::Target;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{BuildReport, Status, TestRun};
use wheelwright_workers::sandbox::Limits;

const PYMULT: &str = include_str!("../../examples/pymult/src/pymult.asm");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Builds with a short step timeout, returning the report and every log line.
fn build_hostile(root: &Path, targets: &[Target], timeout_secs: u64) -> (BuildReport, String, Dirs) {
    let project = Project::load(root, &Overrides::default()).unwrap();
    let (options, dirs) = options(targets, true);
    let options = BuildOptions { sandbox: sandbox(Limits { timeout_secs, ..Limits::default() }), ..options };
    let log = std::sync::Mutex::new(String::new());
    let report = pipeline::build(&project, &options, &|event| {
        if let pipeline::Event::Log { text, .. } = event {
            log.lock().unwrap().push_str(&text);
            log.lock().unwrap().push('\n');
        }
    });
    (report, log.into_inner().unwrap(), dirs)
}

/// The smoke run of a Linux build.
fn smoke_run(report: &BuildReport) -> &TestRun {
    let linux = target(report, Target::Linux);
    assert_eq!(linux.tests.len(), 1, "{linux:#?}");
    &linux.tests[0]
}

/// A project whose pymult module is fine and whose one test is `test`.
fn project_with_test(test: &str) -> tempfile::TempDir {
    project(&[("src/pymult.asm", PYMULT), ("tests/test_hostile.py", test)])
}

#[test]
fn nasm_cannot_read_host_files_outside_the_project() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret.txt");
    let marker = format!("TOP-SECRET-{}", std::process::id());
    std::fs::write(&secret, &marker).unwrap();
    let (dir_part, file_part) = (secret_dir.path().display().to_string(), "secret.txt");
    let sources = [
        format!("section .data\nincbin \"{}\"\n", secret.display()),
        format!("%include \"{}\"\n", secret.display()),
        // A path built by macros: no filter on the source text could catch it.
        format!("%strcat secret_path, \"{dir_part}\", \"/\", \"{file_part}\"\nsection .data\nincbin secret_path\n"),
        "section .data\nincbin \"/etc/passwd\"\n".to_string(),
    ];
    for source in sources {
        let dir = project(&[("src/leak.asm", &format!("{PYMULT}\n{source}"))]);
        let (report, log, dirs) = build_hostile(dir.path(), &Target::ALL, 30);
        for t in &report.targets {
            let (step, reason) = failed_step(t);
            assert_eq!(step, "assemble", "{source}");
            assert!(reason.starts_with("src/leak.asm:"), "{reason}");
            assert!(
                reason.contains("unable to open include file")
                    || reason.contains("`incbin': unable to get length of file"),
                "{reason}"
            );
        }
        assert!(!contains(&everything(&dirs, &log), marker.as_bytes()), "the secret leaked for {source}");
        assert!(!contains(&everything(&dirs, &log), b"root:x:0:0"), "/etc/passwd leaked for {source}");
    }
}

#[test]
fn tests_cannot_write_outside_the_job_directory() {
    let host_dir = tempfile::tempdir().unwrap();
    let target_file = host_dir.path().join("pwned");
    let test = format!(
        "import os\n\ndef test_write_outside():\n    with open({:?}, 'w') as f:\n        f.write('x')\n\n\
         def test_write_into_the_interpreter():\n    import sys\n    with open(os.path.join(sys.base_prefix, 'pwned'), 'w') as f:\n        f.write('x')\n",
        target_file.display().to_string()
    );
    let dir = project_with_test(&test);
    let (report, _log, _dirs) = build_hostile(dir.path(), &[Target::Linux], 30);
    let run = smoke_run(&report);
    assert_eq!((run.failed, run.passed), (2, 0), "{run:#?}");
    assert!(run.failures[0].message.contains("FileNotFoundError"), "{}", run.failures[0].message);
    assert!(
        run.failures[1].message.contains("Read-only file system")
            || run.failures[1].message.contains("Permission denied"),
        "{}",
        run.failures[1].message
    );
    assert!(!target_file.exists());
    assert!(!python3().prefix.join("pwned").exists());
}

#[test]
fn tests_cannot_see_the_daemons_files_or_home() {
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::write(data_dir.path().join("wheelwright.db"), "data").unwrap();
    let test = format!(
        "import os\n\ndef test_data_dir_is_invisible():\n    assert not os.path.exists({:?})\n\n\
         def test_only_the_job_directory_is_there():\n    job = os.getcwd()\n    assert job.startswith('/tmp/')\n    harness = job + '.abimodel'\n    if os.environ['HOME'] == job + '/.tmp':\n        # A warm run (docs/warm-runner.md): its Landlock domain holds only\n        # its own folder (and its temp folder in it), not what is beside it.\n        for beside in ('/tmp', os.path.dirname(job)):\n            try:\n                os.listdir(beside)\n                raise AssertionError(beside + ' is readable')\n            except PermissionError:\n                pass\n    else:\n        assert os.environ['HOME'] == '/tmp'\n        assert os.listdir('/tmp') == [job.split('/')[2]]\n        # Beside it only the engine's harness (the ABI guards), read-only.\n        assert sorted(os.listdir(os.path.dirname(job))) == [os.path.basename(job), os.path.basename(harness)]\n        # Read-only by its mount (warm: by Landlock, which access(2) does not ask).\n        assert not os.access(harness, os.W_OK)\n    try:\n        open(os.path.join(harness, 'planted.py'), 'w')\n        raise AssertionError('the harness is writable')\n    except OSError:\n        pass\n    # The job's line table only: the package is the shared copy in the\n    # pytest environment (read-only there), warm and cold.\n    assert os.listdir(harness) == ['lines.json'], os.listdir(harness)\n    import _wheelwright_abimodel\n    assert '/wheelwright-harness-' in _wheelwright_abimodel.__file__, _wheelwright_abimodel.__file__\n    assert not os.path.exists('/etc/passwd')\n    assert not os.path.exists(os.path.expanduser('~root/.cargo'))\n    assert not os.path.exists('/etc/shadow')\n\n\
         def test_environment_is_an_allow_list():\n    assert 'CARGO' not in os.environ and 'WHEELWRIGHT_CACHE_DIR' not in os.environ\n",
        data_dir.path().display().to_string()
    );
    let dir = project_with_test(&test);
    let (report, log, _dirs) = build_hostile(dir.path(), &[Target::Linux], 30);
    let run = smoke_run(&report);
    assert_eq!((run.passed, run.failed, run.errors), (3, 0, 0), "{run:#?}\n{log}");
}

#[test]
fn tests_cannot_reach_a_local_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let test = format!(
        "import socket\n\ndef test_connect():\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
    );
    let dir = project_with_test(&test);
    let (report, _log, _dirs) = build_hostile(dir.path(), &[Target::Linux], 30);
    let run = smoke_run(&report);
    assert_eq!(run.failed, 1, "{run:#?}");
    let message = &run.failures[0].message;
    assert!(
        ["ConnectionRefusedError", "PermissionError", "OSError: [Errno 101]"].iter().any(|e| message.contains(e)),
        "{message}"
    );
    assert_eq!(listener.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "a connection got through");
}

#[test]
fn a_fork_bomb_is_contained_and_leaves_no_process_behind() {
    let test = "import os, time\n\ndef test_fork_bomb():\n    while True:\n        if os.fork() == 0:\n            time.sleep(600)\n            os._exit(0)\n";
    let dir = project_with_test(test);
    let (report, log, dirs) = build_hostile(dir.path(), &[Target::Linux], 20);
    let run = smoke_run(&report);
    assert_eq!(run.failed, 1, "{run:#?}\n{log}");
    assert!(run.failures[0].message.contains("BlockingIOError"), "{}", run.failures[0].message);
    // Nothing started by the step outlives it.
    let work = dirs.work.path().display().to_string();
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&work))
        .collect();
    assert!(survivors.is_empty(), "{survivors:?}");
    assert_next_build_is_fine();
}

#[test]
fn unbounded_allocation_meets_the_memory_limit() {
    let test =
        "def test_allocate():\n    blocks = []\n    while True:\n        blocks.append(bytearray(256 * 1024 * 1024))\n";
    let dir = project_with_test(test);
    let (report, _log, _dirs) = build_hostile(dir.path(), &[Target::Linux], 30);
    let run = smoke_run(&report);
    assert_eq!(run.failed, 1, "{run:#?}");
    assert!(run.failures[0].message.contains("MemoryError"), "{}", run.failures[0].message);
}

#[test]
fn a_test_that_sleeps_forever_is_killed_at_the_timeout() {
    let test = "import time\n\ndef test_sleep_forever():\n    time.sleep(3600)\n";
    let dir = project_with_test(test);
    let started = std::time::Instant::now();
    let (report, _log, _dirs) = build_hostile(dir.path(), &[Target::Linux], 5);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let problem = smoke_run(&report).problem.clone().unwrap();
    assert!(problem.starts_with("timed out after 5 s in:"), "{problem}");
    assert!(problem.contains("in test_sleep_forever"), "{problem}");
    let (step, reason) = failed_step(target(&report, Target::Linux));
    assert_eq!(step, "smoke");
    assert!(reason.contains(": timed out after 5 s"), "{reason}");
    assert_next_build_is_fine();
}

#[test]
fn a_module_that_hangs_in_its_init_is_reported_as_a_timeout() {
    let (report, _log, _dirs) = build_hostile(&fixture("hang"), &[Target::Linux], 5);
    let problem = smoke_run(&report).problem.clone().unwrap();
    assert!(problem.starts_with("timed out after 5 s in:"), "{problem}");
    assert!(problem.contains("test_wheelwright_import.py"), "{problem}");
}

#[test]
fn a_segfault_on_import_is_explained_down_to_the_asm_line() {
    let (report, log, _dirs) = build_hostile(&fixture("segfault"), &[Target::Linux], 60);
    let run = smoke_run(&report);
    assert_eq!(run.problem.as_deref(), Some("the test process crashed with SIGSEGV"), "{log}");
    let crash = run.crash.as_ref().expect("a crash report");
    assert_eq!(crash.signal, "SIGSEGV");
    let traceback = crash.python_traceback.as_deref().unwrap_or("");
    assert!(traceback.starts_with("Fatal Python error: Segmentation fault"), "{traceback}");
    assert!(traceback.contains("test_segfault.py"), "{traceback}");
    let instruction = crash.instruction.as_deref().unwrap_or("");
    assert!(
        instruction.contains("<PyInit_segfault+") && instruction.contains("mov rax,QWORD PTR [rax]"),
        "{instruction}\n{log}"
    );
    assert!(crash.location.as_deref().unwrap_or("").starts_with("PyInit_segfault + "), "{crash:#?}");
    assert_eq!(
        crash.source_line.as_deref(),
        Some("src/segfault.asm:20: mov rax, [rax]                    ; the faulting instruction")
    );
    let registers: Vec<&str> = crash.registers.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(&registers[..4], ["rip", "rsp", "rbp", "rax"]);
    assert_eq!(crash.registers[3].1, "0x0");
    let (step, reason) = failed_step(target(&report, Target::Linux));
    assert_eq!(
        (step.as_str(), reason.as_str()),
        ("smoke", format!("{}: the test process crashed with SIGSEGV", run.interpreter).as_str())
    );
    assert_next_build_is_fine();
}

#[test]
fn a_crash_without_debug_information_still_names_the_signal_and_symbol() {
    // The same crash without debug information still names the signal and the symbol.
    let dir = project(&[
        ("src/segfault.asm", include_str!("fixtures/segfault/src/segfault.asm")),
        ("tests/test_segfault.py", include_str!("fixtures/segfault/tests/test_segfault.py")),
    ]);
    let (report, _log, _dirs) = build_hostile(dir.path(), &[Target::Linux], 60);
    let crash = smoke_run(&report).crash.clone().unwrap();
    assert_eq!(crash.signal, "SIGSEGV");
    assert!(crash.location.unwrap_or_default().starts_with("PyInit_segfault + "));
    assert_eq!(crash.source_line, None);
    assert_eq!(target(&report, Target::Linux).status, Status::Failed);
}
