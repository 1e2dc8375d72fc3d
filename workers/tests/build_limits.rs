//! Limits on a build as a whole, not per process or per file: a sized
//! `/tmp`, a disk budget for the job directory, one memory cgroup for every
//! process of the build; each stops the build with a reason that reaches
//! the failed step, and the next build runs normally.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use wheelwright_workers::pipeline;
use wheelwright_workers::platform::Target;
use wheelwright_workers::process::{CancelToken, Cmd, Exit, Output};
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::report::Status;
use wheelwright_workers::sandbox::{Limits, Mounts, Sandbox};

fn sh(script: &str) -> Cmd {
    Cmd::new("/bin/sh").arg("-c").arg(script)
}

/// Runs `cmd` as a step that runs project code, in a build of its own.
fn run_in_build(sandbox: &Sandbox, job: &Path, cmd: &Cmd) -> Output {
    let build = sandbox.for_build(job);
    build.sandbox().run(cmd, &Mounts::job(job).running_project_code(), &CancelToken::new()).unwrap()
}

/// A build after a stopped one: a step runs and writes as usual.
fn assert_next_build_runs_normally(sandbox: &Sandbox) {
    let job = tempfile::tempdir().unwrap();
    let script = format!(
        "head -c 1000000 /dev/zero > /tmp/t && head -c 1000000 /dev/zero > {}/f && echo ok",
        job.path().display()
    );
    let out = run_in_build(sandbox, job.path(), &sh(&script));
    assert_eq!((out.exit, out.text.as_str()), (Exit::Code(0), "ok\n"));
}

/// Four children that each touch 800 MiB and hold it for a while; the
/// parent fails when one of them was killed.
const FOUR_HUNGRY_CHILDREN: &str = "
import os, sys, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = b'x' * (800 << 20)
        time.sleep(3)
        os._exit(0)
    children.append(pid)
killed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
print(len(killed), 'killed')
sys.exit(1 if killed else 0)
";

#[test]
fn a_step_that_fills_tmp_runs_out_of_space_at_tmp_size() {
    let sandbox = sandbox(Limits { tmp_size: 8 << 20, ..Limits::default() });
    let job = tempfile::tempdir().unwrap();
    let out =
        run_in_build(&sandbox, job.path(), &sh("dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1; du -k /tmp/fill"));
    assert!(out.text.contains("dd: error writing '/tmp/fill': No space left on device"), "{}", out.text);
    let kib: u64 = out.text.lines().last().unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(kib, 8 << 10, "{}", out.text);
    assert_next_build_runs_normally(&sandbox);
}

#[test]
fn a_build_writing_files_past_its_disk_budget_is_stopped_with_the_reason() {
    let sandbox = sandbox(Limits { build_disk: 8 << 20, file_size: 4 << 20, ..Limits::default() });
    let job = tempfile::tempdir().unwrap();
    // Each file below RLIMIT_FSIZE: only the budget of the whole build stops it.
    let script = format!(
        "i=0; while true; do head -c 4000000 /dev/zero > {}/f$i || exit 9; i=$((i+1)); done",
        job.path().display()
    );
    let build = sandbox.for_build(job.path());
    let mounts = Mounts::job(job.path()).running_project_code();
    let started = Instant::now();
    let out = build.sandbox().run(&sh(&script), &mounts, &CancelToken::new()).unwrap();
    let reason = "the build used more than 8 MiB of disk".to_string();
    assert_eq!(out.exit, Exit::Limit(reason.clone()), "{}", out.text);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(build.stopped(), Some(reason.clone()));
    // A stopped build runs nothing more.
    let out = build.sandbox().run(&sh(&format!("touch {}/later", job.path().display())), &mounts, &CancelToken::new());
    assert_eq!(out.unwrap().exit, Exit::Limit(reason));
    assert!(!job.path().join("later").exists());
    drop(build);
    assert_next_build_runs_normally(&sandbox);
}

/// The most descriptors this process had open, sampled every millisecond
/// while `run` runs, and how many it had before. One such measure at a
/// time: removing a deep tree afterwards (std's `remove_dir_all`) holds a
/// descriptor per level, which another measure would count.
fn most_fds_during<T>(run: impl FnOnce() -> T) -> (T, usize, usize) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(std::fs::read_dir("/proc/self/fd").unwrap().count());
                std::thread::sleep(Duration::from_millis(1));
            }
            most
        })
    };
    let result = run();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (result, sampler.join().unwrap(), before)
}

#[test]
fn five_thousand_folders_are_measured_with_a_few_descriptors_and_stop_the_build_over_budget() {
    // 5000 empty folders count 4 KiB each: 20 MB, over the budget of 8 MiB.
    let sandbox = sandbox(Limits { build_disk: 8 << 20, ..Limits::default() });
    let job = tempfile::tempdir().unwrap();
    let script = format!(
        "cd {} && python3 -c \"import os\nfor n in range(5000): os.mkdir(f'd{{n}}')\" && sleep 30",
        job.path().display()
    );
    let (out, most, before) = most_fds_during(|| {
        let out = run_in_build(&sandbox, job.path(), &sh(&script));
        drop(job);
        out
    });
    assert_eq!(out.exit, Exit::Limit("the build used more than 8 MiB of disk".into()), "{}", out.text);
    // A descriptor per folder would be some 2000 before the budget is passed;
    // the watcher holds two, the step's run a few, the other tests here some.
    // (The job directory is removed inside, while no other measure runs.)
    assert!(most < before + 100, "{most} descriptors open at once, {before} before");
    assert_next_build_runs_normally(&sandbox);
}

#[test]
fn five_thousand_nested_folders_stop_the_build_at_the_depth_bound() {
    let sandbox = sandbox(Limits::default());
    let job = tempfile::tempdir().unwrap();
    let script = format!(
        "cd {} && python3 -c \"import os\nfor n in range(5000): os.mkdir('d'); os.chdir('d')\" && sleep 30",
        job.path().display()
    );
    let (out, most, before) = most_fds_during(|| run_in_build(&sandbox, job.path(), &sh(&script)));
    let reason = "the build nested directories more than 64 deep in its job directory";
    assert_eq!(out.exit, Exit::Limit(reason.into()), "{}", out.text);
    // The watcher holds at most 65 (the job directory and 64 levels).
    assert!(most < before + 100, "{most} descriptors open at once, {before} before");
    // Removed here, while no other measure runs (see most_fds_during).
    let _one = most_fds_during(|| drop(job));
    assert_next_build_runs_normally(&sandbox);
}

#[test]
fn four_children_touching_800_mib_each_are_killed_by_the_build_memory_limit() {
    let sandbox = sandbox(Limits { build_memory: 1 << 30, ..Limits::default() });
    let description = sandbox.describe();
    assert!(description.ends_with(", disk 1 GiB (job directory), /tmp 64 MiB per sandbox"), "{description}");
    if description.contains("memory per process only") {
        eprintln!("no memory cgroup for builds here: {description}");
        return;
    }
    assert!(description.contains("; per build: memory 1 GiB (cgroup v"), "{description}");
    let job = tempfile::tempdir().unwrap();
    let out = run_in_build(&sandbox, job.path(), &Cmd::new("/usr/bin/python3").arg("-c").arg(FOUR_HUNGRY_CHILDREN));
    assert_eq!(out.exit, Exit::Limit("the build used more than 1 GiB of memory".into()), "{}", out.text);
    assert_next_build_runs_normally(&sandbox);
}

/// Builds examples/pymult for Linux with `test_hostile.py` beside its tests,
/// under `limits`.
fn build_pymult_with(test: &str, limits: Limits) -> wheelwright_workers::report::TargetReport {
    let root = tempfile::tempdir().unwrap();
    let example = example("pymult");
    for file in ["pyproject.toml", "README.md", "src/pymult.asm", "tests/test_pymult.py"] {
        std::fs::create_dir_all(root.path().join(file).parent().unwrap()).unwrap();
        std::fs::copy(example.join(file), root.path().join(file)).unwrap();
    }
    std::fs::write(root.path().join("tests/test_hostile.py"), test).unwrap();
    let project = Project::load(root.path(), &Overrides::default()).expect("project loads");
    let (mut options, _dirs) = options(&[Target::Linux], true);
    options.sandbox = sandbox(Limits { timeout_secs: 120, ..limits });
    let report = pipeline::build(&project, &options, &|_| {});
    report.targets.into_iter().next().unwrap()
}

#[test]
fn the_smoke_step_reports_the_build_limit_that_stopped_it() {
    let disk = "def test_fills_the_job_directory():\n    n = 0\n    while True:\n        with open(f'f{n}', 'wb') as f:\n            f.write(bytes(4000000))\n        n += 1\n";
    let report = build_pymult_with(disk, Limits { build_disk: 8 << 20, file_size: 4 << 20, ..Limits::default() });
    assert_eq!(report.status, Status::Failed);
    let (step, reason) = failed_step(&report);
    assert_eq!(
        (step.as_str(), reason.as_str()),
        ("smoke", format!("{}: the build used more than 8 MiB of disk", python3().label()).as_str())
    );

    let memory = format!("import subprocess, sys\n\ndef test_four_hungry_children():\n    subprocess.run([sys.executable, '-c', {FOUR_HUNGRY_CHILDREN:?}], check=True)\n");
    let report = build_pymult_with(&memory, Limits { build_memory: 1 << 30, ..Limits::default() });
    let (step, reason) = failed_step(&report);
    if sandbox(Limits::default()).describe().contains("memory per process only") {
        eprintln!("no memory cgroup for builds here");
        return;
    }
    assert_eq!(
        (step.as_str(), reason.as_str()),
        ("smoke", format!("{}: the build used more than 1 GiB of memory", python3().label()).as_str())
    );

    let report = build_pymult_with("def test_nothing():\n    pass\n", Limits::default());
    assert_eq!(report.status, Status::Succeeded, "{report:#?}");
}
