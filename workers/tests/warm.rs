//! The warm test runner ([`wheelwright_workers::warm`]): results equal to
//! cold ones on every example and test project, and the isolation of each
//! run from every other run, from the runner, and from the next build.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use wheelwright_workers::pipeline;
use wheelwright_workers::platform::Target;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::{BuildReport, Status, TestPath, TestRun};
use wheelwright_workers::sandbox::{Limits, Sandbox};
use wheelwright_workers::warm::WarmPool;

const PYMULT: &str = include_str!("../../examples/pymult/src/pymult.asm");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A sandbox whose warm runners live in `pool` and may serve every build
/// whose work directory is in `root`.
fn pooled(pool: &Arc<WarmPool>, root: &Path, timeout_secs: u64) -> Sandbox {
    sandbox(Limits { timeout_secs, ..Limits::default() }).with_warm(pool.clone()).with_warm_root(root)
}

/// Builds `project` for Linux in `work_dir` with `sandbox`.
fn build_in(project: &Path, work_dir: &Path, sandbox: Sandbox) -> BuildReport {
    std::fs::create_dir_all(work_dir).unwrap();
    let project = Project::load(project, &Overrides::default()).expect("project loads");
    let (mut options, _dirs) = options(&[Target::Linux], true);
    options.work_dir = work_dir.to_path_buf();
    options.sandbox = sandbox;
    // A fallback to cold is printed: a test asserting a warm run then shows why it was not.
    pipeline::build(&project, &options, &|e| {
        if let pipeline::Event::Log { text, .. } = e {
            if text.contains("[wheelwright:") && text.contains("cold") {
                eprintln!("{text}");
            }
        }
    })
}

/// The only test run of a Linux build.
fn only_run(report: &BuildReport) -> &TestRun {
    let tests = &target(report, Target::Linux).tests;
    assert_eq!(tests.len(), 1, "{report:#?}");
    &tests[0]
}

/// The folder a Linux build in `work_dir` ran its tests in.
fn run_dir(work_dir: &Path) -> PathBuf {
    let smoke = work_dir.join("linux-x86_64/smoke");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&smoke)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.to_string_lossy().ends_with(".abimodel"))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

/// Builds `root` for `targets` with the tests run warm (or, `warm` false,
/// every run cold); the report and the work directory it ran in.
fn build_with(root: &Path, targets: &[Target], warm: bool, timeout_secs: u64) -> (BuildReport, Dirs) {
    let project = Project::load(root, &Overrides::default()).expect("project loads");
    let (mut options, dirs) = options(targets, true);
    options.sandbox = sandbox(Limits { timeout_secs, ..Limits::default() });
    if !warm {
        options.sandbox = options.sandbox.without_warm();
    }
    options.work_dir = std::fs::canonicalize(&options.work_dir).unwrap();
    (pipeline::build(&project, &options, &|_| {}), dirs)
}

/// A run's results without the path that ran it, with its work directory
/// named `<work>`. Of a crash's Python stack only the frames above pytest's
/// own are kept: below them a warm child shows the runner's frames where a
/// cold run shows `python -m`'s; the harness's frames name its folder
/// `<harness>` (a warm child runs the runner's shared copy, a cold run the
/// job's).
fn outcome(run: &TestRun, work_dir: &Path) -> String {
    let mut run = run.clone();
    run.runner = TestPath::Cold;
    if let Some(crash) = run.crash.as_mut() {
        // Random in every run, cold or warm: the guards' register values.
        crash.registers.retain(|(name, _)| name == "rip");
        crash.python_traceback = crash.python_traceback.as_deref().map(above_pytest).map(|s| harness_named(&s));
    }
    run.problem = run.problem.as_deref().map(above_pytest).map(|s| harness_named(&s));
    let json = serde_json::to_value(&run).unwrap();
    let text = json.to_string();
    text.replace(&work_dir.display().to_string(), "<work>")
}

/// A Python stack (faulthandler's) down to pytest's first frame, without
/// the thread's address (random in every run).
fn above_pytest(stack: &str) -> String {
    let kept: Vec<&str> = stack
        .lines()
        .filter(|l| !l.starts_with("Current thread 0x") && !l.starts_with("Thread 0x"))
        .take_while(|l| !l.contains("/_pytest/"))
        .collect();
    kept.join("\n")
}

/// `File "<harness>/_wheelwright_abimodel/…"` for every frame in the
/// harness, wherever its copy lies.
fn harness_named(stack: &str) -> String {
    let lines: Vec<String> = stack
        .lines()
        .map(|line| match (line.find("File \""), line.find("/_wheelwright_abimodel/")) {
            (Some(file), Some(package)) if file < package => {
                format!("{}<harness>{}", &line[..file + "File \"".len()], &line[package..])
            }
            _ => line.to_string(),
        })
        .collect();
    lines.join("\n")
}

fn runs(report: &BuildReport) -> Vec<&TestRun> {
    report.targets.iter().flat_map(|t| &t.tests).collect()
}

/// Every example and every test project of the suite that builds, on
/// every target: the warm results are the cold ones.
#[test]
fn every_example_and_test_project_gives_the_same_results_warm_and_cold() {
    let mut projects: Vec<PathBuf> = ["pymult", "vecstats"].iter().map(|e| example(e)).collect();
    // warm_shadow: a conftest that changes and shadows pytest's built-in
    // plugins, against what the runner worked out from them before it forked;
    // warm_sitecustomize: the wheel's sitecustomize changes one before pytest
    // makes its first configuration, which a runner makes ahead of time.
    // warm_pty: pseudo-terminals, which a cold run's /dev has.
    let fixtures = ["abibad", "segfault", "win64_long", "hang", "warm_shadow", "warm_sitecustomize", "warm_pty"];
    projects.extend(fixtures.iter().map(|f| fixture(f)));
    for project in projects {
        // `hang` waits out its timeout; faulthandler's dump comes at four fifths of it, and a
        // cold run on a loaded machine can spend more than a second starting pytest first.
        let timeout = if project.ends_with("hang") { 10 } else { 5 };
        let (warm, warm_dirs) = build_with(&project, &Target::ALL, true, timeout);
        let (cold, cold_dirs) = build_with(&project, &Target::ALL, false, timeout);
        let (warm_runs, cold_runs) = (runs(&warm), runs(&cold));
        assert!(!warm_runs.is_empty(), "{}: no test ran", project.display());
        // A run that was not run (a refused module) has no path.
        let ran = |r: &&&TestRun| !r.problem.as_deref().is_some_and(|p| p.starts_with("not run"));
        assert!(warm_runs.iter().filter(ran).all(|r| r.runner == TestPath::Warm), "{warm_runs:#?}");
        assert!(cold_runs.iter().all(|r| r.runner == TestPath::Cold), "{cold_runs:#?}");
        let warm: Vec<String> = warm_runs.iter().map(|r| outcome(r, warm_dirs.work.path())).collect();
        let cold: Vec<String> = cold_runs.iter().map(|r| outcome(r, cold_dirs.work.path())).collect();
        assert_eq!(warm, cold, "{}", project.display());
        if project.ends_with("warm_shadow") {
            // Every planted change seen: only the test meant to fail fails.
            let only_the_meant_one = |r: &&TestRun| {
                r.errors == 0 && r.failures.len() == 1 && r.failures[0].test.ends_with("::test_this_one_fails_alike")
            };
            assert!(cold_runs.iter().all(only_the_meant_one), "{cold_runs:#?}");
        }
        let tests = [("warm_sitecustomize", 2), ("warm_pty", 4)].into_iter().find(|(p, _)| project.ends_with(p));
        if let Some((_, tests)) = tests {
            let all_passed = |r: &&TestRun| r.errors == 0 && r.failures.is_empty() && r.passed == tests;
            assert!(cold_runs.iter().all(all_passed), "{cold_runs:#?}");
        }
    }
}

/// Waits until every folder in `dirs` holds a file `name`.
fn wait_for_files(dirs: &[&Path], name: &str) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let found: Vec<PathBuf> = dirs
            .iter()
            .filter_map(|d| {
                let smoke = d.join("linux-x86_64/smoke");
                std::fs::read_dir(smoke).ok()?.flatten().map(|e| e.path()).find(|p| p.join(name).exists())
            })
            .collect();
        if found.len() == dirs.len() {
            return found;
        }
        assert!(Instant::now() < deadline, "the builds' tests never wrote {name}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn two_concurrent_builds_on_one_warm_root_cannot_read_signal_or_trace_each_other() {
    let root = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let (a, b) = (root.join("a"), root.join("b"));
    let spy = std::fs::read_to_string(fixture("warm_spy/test_spy.py")).unwrap();
    let project_spying = |own: &Path, other: &Path| {
        let test = spy
            .replace("OWN_WORK_DIR", &own.display().to_string())
            .replace("OTHER_WORK_DIR", &other.display().to_string());
        project(&[("src/pymult.asm", PYMULT), ("tests/test_spy.py", &test)])
    };
    let (spy_on_b, spy_on_a) = (project_spying(&a, &b), project_spying(&b, &a));
    let pool = Arc::new(WarmPool::new());
    let sandbox = pooled(&pool, &root, 60);
    let mode_of = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let (root_mode, work_mode) = (mode_of(&root), mode_of(&b));
    let (report_a, report_b) = std::thread::scope(|s| {
        let build_a = s.spawn(|| build_in(spy_on_b.path(), &a, sandbox.clone()));
        let build_b = s.spawn(|| build_in(spy_on_a.path(), &b, sandbox.clone()));
        // Both children are alive and waiting: let them spy.
        let waiting = wait_for_files(&[&a, &b], "waiting");
        for (dir, work) in waiting.iter().zip([&a, &b]) {
            std::fs::write(dir.join("secret.txt"), format!("secret of {}", work.display())).unwrap();
        }
        for dir in &waiting {
            std::fs::write(dir.join("go"), "").unwrap();
        }
        (build_a.join().unwrap(), build_b.join().unwrap())
    });
    for report in [&report_a, &report_b] {
        let run = only_run(report);
        assert_eq!(run.runner, TestPath::Warm, "{run:#?}");
        assert_eq!((run.passed, run.failed, run.errors), (2, 0, 0), "{run:#?}");
        assert_eq!(target(report, Target::Linux).status, Status::Succeeded);
    }
    assert!(!run_dir(&a).join("planted").exists() && !run_dir(&b).join("planted").exists());
    // What each child changed of the folder of work directories in its own
    // view reached nothing of the host's.
    assert_eq!((mode_of(&root), mode_of(&a), mode_of(&b)), (root_mode, work_mode, work_mode));
    for path in [&root, &a, &b, &run_dir(&a), &run_dir(&b)] {
        assert_eq!(xattr(path, "user.spy"), None, "{}", path.display());
    }
    let secret = std::fs::metadata(run_dir(&a).join("secret.txt")).unwrap();
    assert!(secret.modified().unwrap() > std::time::UNIX_EPOCH + Duration::from_secs(1));
}

/// The value of the extended attribute `name` of `path`, if it has one.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let mut value = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the size given.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    if n < 0 {
        return None;
    }
    value.truncate(n as usize);
    Some(value)
}

#[test]
fn a_test_that_corrupts_its_interpreter_leaves_the_next_build_on_the_same_runner_unharmed() {
    let root = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let pool = Arc::new(WarmPool::new());
    let corrupt = std::fs::read_to_string(fixture("warm_corrupt/test_corrupt.py")).unwrap();
    let check = std::fs::read_to_string(fixture("warm_corrupt/test_check.py")).unwrap();
    let corrupting = project(&[("src/pymult.asm", PYMULT), ("tests/test_corrupt.py", &corrupt)]);
    let checking = project(&[("src/pymult.asm", PYMULT), ("tests/test_check.py", &check)]);

    let first = build_in(corrupting.path(), &root.join("first"), pooled(&pool, &root, 60));
    let run = only_run(&first);
    assert_eq!((run.runner, run.passed, run.failed), (TestPath::Warm, 1, 0), "{run:#?}");
    // Its runner went back to the pool (the child exited), for the next build.
    assert_eq!(pool.idle_count(), 1);
    let second = build_in(checking.path(), &root.join("second"), pooled(&pool, &root, 60));
    let run = only_run(&second);
    assert_eq!((run.runner, run.passed, run.failed, run.errors), (TestPath::Warm, 1, 0, 0), "{run:#?}");
    // The same runner forked both.
    let runner_of = |work: &str| std::fs::read_to_string(run_dir(&root.join(work)).join("runner-pid")).unwrap();
    assert_eq!(runner_of("first"), runner_of("second"));
}

#[test]
fn a_crash_or_a_hang_kills_only_that_child_and_its_runner_is_replaced() {
    let root = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let pool = Arc::new(WarmPool::new());
    let crashing = project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/test_crash.py", "import os, signal\n\ndef test_crash():\n    os.kill(os.getpid(), signal.SIGSEGV)\n"),
    ]);
    let hanging = project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/test_hang.py", "import time\n\ndef test_hang():\n    time.sleep(3600)\n"),
    ]);
    let slow = project(&[
        ("src/pymult.asm", PYMULT),
        ("tests/test_slow.py", "import time\n\ndef test_slow():\n    time.sleep(2)\n"),
    ]);
    let (crashed, hung, beside) = std::thread::scope(|s| {
        let crashed = s.spawn(|| build_in(crashing.path(), &root.join("crash"), pooled(&pool, &root, 5)));
        let hung = s.spawn(|| build_in(hanging.path(), &root.join("hang"), pooled(&pool, &root, 5)));
        let beside = s.spawn(|| build_in(slow.path(), &root.join("slow"), pooled(&pool, &root, 30)));
        (crashed.join().unwrap(), hung.join().unwrap(), beside.join().unwrap())
    });
    let run = only_run(&crashed);
    assert_eq!(run.runner, TestPath::Warm);
    assert_eq!(run.problem.as_deref(), Some("the test process crashed with SIGSEGV"), "{run:#?}");
    let run = only_run(&hung);
    assert_eq!(run.runner, TestPath::Warm);
    assert!(run.problem.as_deref().unwrap_or("").starts_with("timed out after 5 s in:"), "{run:#?}");
    assert!(run.problem.as_deref().unwrap_or("").contains("in test_hang"), "{run:#?}");
    // The build running beside them on its own runner did not notice.
    let run = only_run(&beside);
    assert_eq!((run.runner, run.passed, run.failed, run.errors), (TestPath::Warm, 1, 0, 0), "{run:#?}");
    // Only the runner whose child exited cleanly is kept; the next build is fine.
    assert_eq!(pool.idle_count(), 1);
    let after = build_in(&example("pymult"), &root.join("after"), pooled(&pool, &root, 30));
    let run = only_run(&after);
    assert_eq!((run.runner, run.passed, run.failed), (TestPath::Warm, 7, 0), "{run:#?}");
    assert_next_build_is_fine();
}

#[test]
fn warm_tests_false_runs_the_tests_cold() {
    let dir = project(&[
        (
            "pyproject.toml",
            "[project]\nname = \"pymult\"\nversion = \"0.1.0\"\n\n[tool.wheelwright]\nwarm-tests = false\n",
        ),
        ("src/pymult.asm", PYMULT),
        ("tests/test_pymult.py", include_str!("../../examples/pymult/tests/test_pymult.py")),
    ]);
    let (report, _dirs) = build_with(dir.path(), &[Target::Linux], true, 60);
    let run = only_run(&report);
    assert_eq!((run.runner, run.passed, run.failed), (TestPath::Cold, 7, 0), "{run:#?}");
}

#[test]
fn each_run_gets_a_fresh_tmp_and_dev_shm_as_a_cold_run_does() {
    // Two builds on one runner: what the first leaves in its /tmp and
    // /dev/shm (tmpfs mounts of its own view) is gone for the second.
    let root = tempfile::tempdir_in("/var/tmp").unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let pool = Arc::new(WarmPool::new());
    let test = "import os, tempfile\n\n\
                def test_tmp_is_fresh_and_writable():\n\
                \x20   with open('runner-pid', 'w') as f:\n\
                \x20       f.write(str(os.getppid()))\n\
                \x20   assert os.environ['HOME'] == '/tmp' and tempfile.gettempdir() == '/tmp'\n\
                \x20   assert os.listdir('/tmp') == [] and os.listdir('/dev/shm') == []\n\
                \x20   os.mkdir('/tmp/left-behind')\n\
                \x20   open('/tmp/left-behind/file', 'w').close()\n\
                \x20   os.symlink('/usr', '/tmp/link')\n\
                \x20   open('/dev/shm/left-behind', 'w').close()\n";
    let dir = project(&[("src/pymult.asm", PYMULT), ("tests/test_tmp.py", test)]);
    for build in ["first", "second"] {
        let report = build_in(dir.path(), &root.join(build), pooled(&pool, &root, 60));
        let run = only_run(&report);
        assert_eq!((run.runner, run.passed, run.failed, run.errors), (TestPath::Warm, 1, 0, 0), "{run:#?}");
    }
    let runner_of = |work: &str| std::fs::read_to_string(run_dir(&root.join(work)).join("runner-pid")).unwrap();
    assert_eq!(runner_of("first"), runner_of("second"));
    assert!(Path::new("/usr/bin").exists());
}

#[test]
fn work_directories_under_dev_shm_are_bound_into_a_fresh_dev_shm_as_a_cold_run_sees_them() {
    // The runner's sandbox has a /dev/shm tmpfs of its own, with the binds
    // of work directories below /dev/shm inside it. A child's view has a
    // fresh /dev/shm (and /tmp), as a cold run's, with only its own run
    // directory bound back inside: nothing of another build's, and what the
    // child leaves there goes with it.
    let root = tempfile::tempdir_in("/dev/shm").unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    std::fs::write(root.join("kept"), "another build's file").unwrap();
    let pool = Arc::new(WarmPool::new());
    let test = format!(
        "import os, tempfile\n\n\
         def test_dev_shm_is_fresh_and_holds_only_this_run():\n\
         \x20   assert os.environ['HOME'] == '/tmp' == tempfile.gettempdir()\n\
         \x20   assert os.listdir('/tmp') == []\n\
         \x20   assert os.listdir('/dev/shm') == ['{top}'], os.listdir('/dev/shm')\n\
         \x20   assert os.listdir('{root}') == [os.getcwd().split('/')[len('{root}'.split('/'))]]\n\
         \x20   open('/dev/shm/left-behind', 'w').close()\n\
         \x20   open('/tmp/left-behind', 'w').close()\n",
        top = root.strip_prefix("/dev/shm").unwrap().components().next().unwrap().as_os_str().to_string_lossy(),
        root = root.display(),
    );
    let dir = project(&[("src/pymult.asm", PYMULT), ("tests/test_tmp.py", &test)]);
    for build in ["first", "second", "third"] {
        let report = build_in(dir.path(), &root.join(build), pooled(&pool, &root, 60));
        let run = only_run(&report);
        assert_eq!((run.runner, run.passed, run.failed, run.errors), (TestPath::Warm, 1, 0, 0), "{run:#?}");
    }
    assert_eq!(std::fs::read_to_string(root.join("kept")).unwrap(), "another build's file");
    assert!(run_dir(&root.join("first")).is_dir());
    assert!(!Path::new("/dev/shm/left-behind").exists() && !root.join("left-behind").exists());
}

/// The host's pid of the parent of a process working in `dir` whose parent
/// does not (a warm child's runner, which works in `/`).
fn parent_of_process_in(dir: &Path) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let want = std::fs::metadata(dir).ok()?;
    let same = |pid: &str| {
        std::fs::metadata(format!("/proc/{pid}/cwd")).is_ok_and(|m| (m.dev(), m.ino()) == (want.dev(), want.ino()))
    };
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || !same(&pid) {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let parent = status.lines().find_map(|l| l.strip_prefix("PPid:"))?.trim().to_string();
        if !same(&parent) {
            return parent.parse().ok();
        }
    }
    None
}

#[test]
fn a_runner_lost_mid_run_sends_the_tests_cold_into_a_fresh_folder() {
    // The child ran (part of) the tests when its runner died: whatever it
    // left in its folder must not meet the cold run that replaces it.
    let root = tempfile::tempdir_in("/var/tmp").unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let pool = Arc::new(WarmPool::new());
    let test = "import os, time\n\n\
                def test_runs_in_a_folder_no_run_has_written():\n\
                \x20   assert not os.path.exists('planted'), 'a run before this one left its files here'\n\
                \x20   open('planted', 'w').close()\n\
                \x20   # Warm (its parent the runner, not the sandbox's init): long\n\
                \x20   # enough for the host to kill the runner on a loaded machine.\n\
                \x20   time.sleep(40 if os.getppid() != 1 else 0)\n";
    let dir = project(&[("src/pymult.asm", PYMULT), ("tests/test_planted.py", test)]);
    let work = root.join("build");
    let report = std::thread::scope(|s| {
        let build = s.spawn(|| build_in(dir.path(), &work, pooled(&pool, &root, 60)));
        let planted = wait_for_files(&[&work], "planted").remove(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        let runner = loop {
            if let Some(runner) = parent_of_process_in(&planted) {
                break runner;
            }
            assert!(Instant::now() < deadline, "no process works in {}", planted.display());
            std::thread::sleep(Duration::from_millis(10));
        };
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(runner, libc::SIGKILL) }, 0);
        build.join().unwrap()
    });
    let run = only_run(&report);
    assert_eq!((run.runner, run.passed, run.failed, run.errors), (TestPath::Cold, 1, 0, 0), "{run:#?}");
    assert_eq!(pool.idle_count(), 0, "the lost runner is not handed on");
}
