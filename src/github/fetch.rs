//! Fetching exactly one pushed commit with `git`, shallow, in the sandbox
//! (network for the fetch only), with a timeout and a size cap, and nothing
//! from the repository executed: no hooks, no submodules, no filters, no
//! configuration from the repository.

use std::path::{Path, PathBuf};

use wheelwright_workers::process::{CancelToken, Cmd, Exit};
use wheelwright_workers::sandbox::{Limits, Mounts, Sandbox};
use wheelwright_workers::toolchain::{self, Tool};

/// Largest checkout accepted.
const MAX_TREE: u64 = 64 << 20;

/// Fetches `commit` from `url` into a scratch directory under `scratch_in`
/// and returns its files.
pub fn fetch_commit(
    url: &str,
    commit: &str,
    git_ref: &str,
    sandbox: &Sandbox,
    scratch_in: &Path,
) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let git = toolchain::find(Tool::Git).ok_or("git is not installed (Debian package git)")?;
    // Limits of its own: a fetch is not a build step.
    let mut sandbox = sandbox.clone();
    sandbox.limits = Limits { timeout_secs: 120, file_size: MAX_TREE * 4, ..sandbox.limits.clone() };
    let sandbox = &sandbox;
    std::fs::create_dir_all(scratch_in).map_err(|e| e.to_string())?;
    let scratch = tempfile::Builder::new().prefix("fetch-").tempdir_in(scratch_in).map_err(|e| e.to_string())?;
    let root = std::fs::canonicalize(scratch.path()).map_err(|e| e.to_string())?;
    let git_dir = root.join("repo.git");
    let tree = root.join("tree");
    std::fs::create_dir_all(&tree).map_err(|e| e.to_string())?;
    let offline = Mounts::job(&root);
    // A local repository (tests, mirrors) read-only; a remote one over the
    // network, to its port only.
    let local = url.strip_prefix("file://").unwrap_or(url);
    let online = if local.starts_with('/') {
        Mounts::job(&root).read_only(local)
    } else {
        Mounts::job(&root).with_network(&[port_of(url).ok_or_else(|| format!("cannot tell the port of `{url}`"))?])
    };
    let run = |args: &[&str], mounts: &Mounts| run_git(&git, &root, args, sandbox, mounts);
    run(&["init", "--quiet", "--bare", git_dir.to_str().unwrap_or("")], &offline)?;
    let git_dir_arg = format!("--git-dir={}", git_dir.display());
    // By commit first (GitHub allows it); a server that does not falls back
    // to the ref, which must then still point at the commit.
    // `--`: nothing from the payload is read as an option.
    let by_commit = run(&[&git_dir_arg, "fetch", "--quiet", "--depth=1", "--no-tags", "--", url, commit], &online);
    if by_commit.is_err() {
        run(&[&git_dir_arg, "fetch", "--quiet", "--depth=1", "--no-tags", "--", url, git_ref], &online)?;
    }
    let head = run(&[&git_dir_arg, "rev-parse", "FETCH_HEAD"], &offline)?;
    if head.trim() != commit {
        return Err(format!("{git_ref} is at {} now, not at the pushed commit {commit}", head.trim()));
    }
    let work_tree = format!("--work-tree={}", tree.display());
    run(&[&git_dir_arg, &work_tree, "checkout", "--quiet", "--force", "FETCH_HEAD", "--", "."], &offline)?;
    let files = crate::store::read_tree(&tree).map_err(|e| e.to_string())?;
    let size: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    if size > MAX_TREE {
        return Err(format!("the commit's files add up to {size} bytes, more than {MAX_TREE}"));
    }
    Ok(files)
}

/// The TCP port a clone URL connects to.
fn port_of(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit('@').next()?;
    match host.rsplit_once(':') {
        Some((_, port)) if !host.ends_with(']') => port.parse().ok(),
        _ => match scheme {
            "https" => Some(443),
            "http" => Some(80),
            "git" => Some(9418),
            "ssh" => Some(22),
            _ => None,
        },
    }
}

/// Runs git in the sandbox with a clean environment and settings that keep
/// the repository's own code and configuration out of it.
fn run_git(git: &Path, cwd: &Path, args: &[&str], sandbox: &Sandbox, mounts: &Mounts) -> Result<String, String> {
    let mut cmd = Cmd::new(git)
        .args(["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.ext.allow=never"])
        .args(["-c", "submodule.recurse=false", "-c", "core.symlinks=false", "-c", "credential.helper="])
        .args(args.iter().copied())
        .cwd(cwd);
    // Inside the sandbox the environment is cleared and HOME is an empty
    // /tmp; without one (--sandbox=none), the same by hand.
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
    let out = sandbox.run(&cmd, mounts, &CancelToken::new()).map_err(|e| e.to_string())?;
    let what = args.iter().find(|a| !a.starts_with('-')).unwrap_or(&"");
    match out.exit {
        Exit::Code(0) => Ok(out.text),
        Exit::TimedOut => Err(format!("git {what} timed out after {} s", sandbox.limits.timeout_secs)),
        _ => Err(format!("git {what}: {}", out.text.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::port_of;

    #[test]
    fn the_port_comes_from_the_url_or_its_scheme() {
        assert_eq!(port_of("https://github.com/acme/pymult.git"), Some(443));
        assert_eq!(port_of("http://git.example:8080/a/b.git"), Some(8080));
        assert_eq!(port_of("https://user@github.com/a/b"), Some(443));
        assert_eq!(port_of("git://example.org/a.git"), Some(9418));
        assert_eq!(port_of("https://[::1]/a.git"), Some(443));
        assert_eq!(port_of("ftp://example.org/a.git"), None);
        assert_eq!(port_of("/srv/git/a.git"), None);
    }
}
