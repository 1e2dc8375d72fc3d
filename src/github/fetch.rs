//! Fetching exactly one pushed commit with `git`, shallow, with a timeout and
//! a size cap, and nothing from the repository executed: no hooks, no
//! submodules, no filters, no configuration from the repository.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wheelwright_workers::process::{self, CancelToken, Cmd, Exit, RunLimits};

/// Largest checkout accepted.
const MAX_TREE: u64 = 64 << 20;

/// Fetches `commit` from `url` and returns its files.
pub fn fetch_commit(url: &str, commit: &str, git_ref: &str) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let git_dir = scratch.path().join("repo.git");
    let tree = scratch.path().join("tree");
    std::fs::create_dir_all(&tree).map_err(|e| e.to_string())?;
    git(scratch.path(), &["init", "--quiet", "--bare", git_dir.to_str().unwrap_or("")])?;
    let git_dir_arg = format!("--git-dir={}", git_dir.display());
    // By commit first (GitHub allows it); a server that does not falls back
    // to the ref, which must then still point at the commit.
    let by_commit = git(scratch.path(), &[&git_dir_arg, "fetch", "--quiet", "--depth=1", "--no-tags", url, commit]);
    if by_commit.is_err() {
        git(scratch.path(), &[&git_dir_arg, "fetch", "--quiet", "--depth=1", "--no-tags", url, git_ref])?;
    }
    let head = git(scratch.path(), &[&git_dir_arg, "rev-parse", "FETCH_HEAD"])?;
    if head.trim() != commit {
        return Err(format!("{git_ref} is at {} now, not at the pushed commit {commit}", head.trim()));
    }
    let work_tree = format!("--work-tree={}", tree.display());
    git(scratch.path(), &[&git_dir_arg, &work_tree, "checkout", "--quiet", "--force", "FETCH_HEAD", "--", "."])?;
    let files = crate::upload::read_tree(&tree).map_err(|e| e.to_string())?;
    let size: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    if size > MAX_TREE {
        return Err(format!("the commit's files add up to {size} bytes, more than {MAX_TREE}"));
    }
    Ok(files)
}

/// Runs git with a clean environment and settings that keep the
/// repository's own code and configuration out of it.
fn git(cwd: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Cmd::new("git")
        .args(["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.ext.allow=never"])
        .args(["-c", "submodule.recurse=false", "-c", "core.symlinks=false"])
        .args(args.iter().copied())
        .cwd(cwd);
    cmd.clear_env = true;
    for (key, value) in [
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_CONFIG_GLOBAL", "/dev/null"),
        ("HOME", "/nonexistent"),
        ("LC_ALL", "C"),
    ] {
        cmd = cmd.env(key, value);
    }
    if let Some(path) = std::env::var_os("PATH") {
        cmd = cmd.env("PATH", path.to_string_lossy().into_owned());
    }
    let limits = RunLimits {
        timeout: Duration::from_secs(120),
        max_output: 64 * 1024,
        // A huge blob cannot fill the disk.
        rlimits: vec![(libc::RLIMIT_FSIZE, MAX_TREE * 4)],
        cgroup_procs: None,
    };
    let out = process::run(&cmd, &limits, &CancelToken::new()).map_err(|e| e.to_string())?;
    match out.exit {
        Exit::Code(0) => Ok(out.text),
        Exit::TimedOut => Err("git timed out".into()),
        _ => Err(format!("git {}: {}", args.iter().find(|a| !a.starts_with('-')).unwrap_or(&""), out.text.trim())),
    }
}
