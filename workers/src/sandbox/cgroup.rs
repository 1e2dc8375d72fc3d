//! Cgroups, where the host lets us make them. A group per step that runs
//! project code: `pids.max` bounds the number of processes (RLIMIT_NPROC does
//! not bind root), and the group lets us kill every process of the step,
//! whatever it did to escape. A memory group per build: every sandbox of the
//! build is born into it, so its processes and the tmpfs pages they write are
//! bounded together, and killed together when the build passes a limit.
//!
//! On cgroup v1 the two are in different hierarchies, and a step's first
//! process joins both. On v2 a step's group sits inside its build's group,
//! whose other sandboxes share a `tools` leaf (v2 keeps processes out of a
//! group whose children use controllers).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the groups of one controller are made: our `wheelwright` group in
/// the hierarchy that holds the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2: the unified hierarchy with the controller enabled for children.
    V2(PathBuf),
    /// cgroup v1: the controller's own hierarchy.
    V1(PathBuf),
}

impl Hierarchy {
    /// Finds a writable place to make step (`pids`) cgroups in, below our
    /// own cgroup.
    pub fn detect() -> Option<Hierarchy> {
        Self::detect_controller("pids")
    }

    /// Finds a writable place to make build (`memory`) cgroups in, below
    /// our own cgroup.
    pub fn detect_memory() -> Option<Hierarchy> {
        Self::detect_controller("memory")
    }

    fn detect_controller(controller: &str) -> Option<Hierarchy> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        // What shows that the controller can be used in a group made there.
        let v2_file = if controller == "memory" { "memory.max" } else { "pids.max" };
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let path = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == controller) {
                let base = Path::new("/sys/fs/cgroup").join(controller).join(path).join("wheelwright");
                if try_parent(&base, &[]) {
                    remove_stale(&base, false);
                    return Some(Hierarchy::V1(base));
                }
            }
            if controllers.is_empty() {
                let mount = Path::new("/sys/fs/cgroup");
                let unified =
                    if mount.join("cgroup.controllers").exists() { mount.to_path_buf() } else { mount.join("unified") };
                let base = unified.join(path).join("wheelwright");
                // Both, whichever is asked for: a step's pids group sits
                // inside its build's memory group.
                if try_parent(&base, &["+pids", "+memory"]) && base.join(v2_file).exists() {
                    remove_stale(&base, true);
                    return Some(Hierarchy::V2(base));
                }
                if base.is_dir() && !base.join("pids.max").exists() && !base.join("memory.max").exists() {
                    // v2 without the controllers delegated to us: no use.
                    let _ = std::fs::remove_dir(&base);
                }
            }
        }
        None
    }

    /// A human-readable name for `doctor` and logs.
    pub fn describe(&self) -> String {
        match self {
            Hierarchy::V1(p) => {
                format!("cgroup v1 {} ({})", p.parent().and_then(v1_controller).unwrap_or("?"), p.display())
            }
            Hierarchy::V2(p) => format!("cgroup v2 ({})", p.display()),
        }
    }

    /// Our `wheelwright` group, where step and build groups are made.
    pub(super) fn base(&self) -> &Path {
        match self {
            Hierarchy::V1(p) | Hierarchy::V2(p) => p,
        }
    }
}

/// The controller of the v1 hierarchy holding `dir` (`/sys/fs/cgroup/<controller>/...`).
fn v1_controller(dir: &Path) -> Option<&str> {
    dir.strip_prefix("/sys/fs/cgroup").ok()?.components().next()?.as_os_str().to_str()
}

/// Makes the parent `wheelwright` group (and, on v2, lets its children use
/// `controllers`, each written as `+name`).
fn try_parent(base: &Path, controllers: &[&str]) -> bool {
    if std::fs::create_dir_all(base).is_err() {
        return false;
    }
    let control = base.parent().map(|p| p.join("cgroup.subtree_control"));
    if let Some(control) = control.filter(|c| c.exists()) {
        for controller in controllers {
            // One at a time: a controller not delegated to us fails alone.
            let _ = std::fs::write(&control, controller);
            let _ = std::fs::write(base.join("cgroup.subtree_control"), controller);
        }
    }
    base.join("cgroup.procs").exists()
}

/// Which process made a step group: its PID namespace, PID and start time,
/// so that a group is recognised as stale only by the namespace that can
/// see its owner, and a reused PID is not taken for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    pid_namespace: u64,
    pid: u32,
    started: u64,
}

impl Owner {
    /// This process (read from /proc once).
    fn this() -> &'static Owner {
        static THIS: std::sync::OnceLock<Owner> = std::sync::OnceLock::new();
        THIS.get_or_init(|| {
            use std::os::unix::fs::MetadataExt;
            let pid = std::process::id();
            let pid_namespace = std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino()).unwrap_or(0);
            Owner { pid_namespace, pid, started: start_time(pid).unwrap_or(0) }
        })
    }

    fn tag(&self) -> String {
        format!("{}-{}-{}", self.pid_namespace, self.pid, self.started)
    }

    /// The owner of a group named `step-NS-PID-START-N` or `build-NS-PID-START-N`.
    fn of(name: &str) -> Option<Owner> {
        let mut parts = name.strip_prefix("step-").or_else(|| name.strip_prefix("build-"))?.split('-');
        let owner = Owner {
            pid_namespace: parts.next()?.parse().ok()?,
            pid: parts.next()?.parse().ok()?,
            started: parts.next()?.parse().ok()?,
        };
        parts.next()?.parse::<u64>().ok()?;
        parts.next().is_none().then_some(owner)
    }
}

impl Owner {
    /// Whether `judge` knows this owner to have exited: it is in the same
    /// PID namespace (so its PID means the same process), and no process
    /// with its PID and start time runs. Anything else may be alive.
    fn is_gone(&self, judge: &Owner) -> bool {
        if self == judge || self.pid_namespace != judge.pid_namespace {
            return false;
        }
        match start_time(self.pid) {
            None => true,
            // 0: the owner could not read its own start time; its PID runs.
            Some(started) => self.started != 0 && started != self.started,
        }
    }
}

/// A process's start time (clock ticks since boot), from /proc.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    fields.get(19)?.parse().ok()
}

/// Removes the step and build groups of processes that no longer run (a
/// daemon killed mid-step leaves its groups behind), killing whatever is
/// still in them.
fn remove_stale(base: &Path, v2: bool) {
    remove_stale_as(base, v2, Owner::this());
}

/// [`remove_stale`] as judged by the process `judge` (a parameter so that
/// tests can take another live process's view).
///
/// A group is removed only when its owner is known to be gone. Never "when
/// empty": a v1 group is legitimately empty between its creation and its
/// first process joining it, and removing it then fails the step
/// (`ENODEV` on the join). So a group whose owner this process cannot judge
/// (another PID namespace, a name of another form) is left alone.
fn remove_stale_as(base: &Path, v2: bool, judge: &Owner) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(Owner::of) else { continue };
        if owner.is_gone(judge) {
            drop(StepGroup { dir: entry.path(), v2 });
        }
    }
}

/// One step's cgroup; removed (after killing what is left in it) on drop.
#[derive(Debug)]
pub struct StepGroup {
    dir: PathBuf,
    v2: bool,
}

/// The file a process writes `0` into to join the group in `dir`. On v1,
/// `tasks`: it moves the writing thread only, and so skips the global lock
/// a `cgroup.procs` write takes to move a whole thread group, whose first
/// taker after ~20 ms without one waits for an RCU grace period (measured
/// here: 5–16 ms of sleep, against ~0.3 ms) — once per sandbox and per
/// warm run otherwise, on the path every build waits for. Every writer is a
/// single-threaded process (a child between fork and exec, the sandbox
/// helper before it starts a thread, a warm runner's fresh fork), for
/// which both files make the same move. v2 has no `tasks`.
fn join_file(dir: &Path, v2: bool) -> PathBuf {
    dir.join(if v2 { "cgroup.procs" } else { "tasks" })
}

/// A fresh name `PREFIX-NS-PID-START-N`: this process's, never used before.
fn fresh_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", Owner::this().tag(), NEXT.fetch_add(1, Ordering::Relaxed))
}

impl StepGroup {
    /// Makes a new group limited to `max_pids` processes; on v2 inside
    /// `build`'s group when the step belongs to one.
    pub fn create(hierarchy: &Hierarchy, max_pids: u64, build: Option<&BuildGroup>) -> std::io::Result<StepGroup> {
        let v2 = matches!(hierarchy, Hierarchy::V2(_));
        let parent = match build {
            Some(build) if v2 && build.v2 => build.dir.as_path(),
            _ => hierarchy.base(),
        };
        let dir = parent.join(fresh_name("step"));
        std::fs::create_dir(&dir)?;
        let group = StepGroup { dir, v2 };
        std::fs::write(group.dir.join("pids.max"), max_pids.to_string())?;
        Ok(group)
    }

    /// The group's `cgroup.procs`: the processes in it.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The file a child writes `0` into to join the group ([`join_file`]).
    pub fn join_file(&self) -> PathBuf {
        join_file(&self.dir, self.v2)
    }

    /// Whether the pids limit refused a fork at some point.
    pub fn hit_pids_limit(&self) -> bool {
        std::fs::read_to_string(self.dir.join("pids.events"))
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("max ").map(|n| n.trim().to_string())))
            .is_some_and(|n| n != "0")
    }

    /// Kills every process in the group, until it is empty.
    pub fn kill_all(&self) {
        if self.v2 && std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        Self::kill_procs(&self.procs_file());
    }

    /// Kills the processes listed in `procs` until it lists none.
    fn kill_procs(procs: &Path) {
        for _ in 0..100 {
            let pids: Vec<i32> = std::fs::read_to_string(procs)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                // 0 would mean our own process group.
                .filter(|pid| *pid > 0)
                .collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for StepGroup {
    fn drop(&mut self) {
        self.kill_all();
        remove_children(&self.dir);
        remove_group(&self.dir);
    }
}

/// Removes a group whose processes were killed (the kernel may take a few
/// milliseconds to let go of it).
fn remove_group(dir: &Path) {
    for _ in 0..100 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Removes the (v2) child groups of `dir`, killing what is left in them.
fn remove_children(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            drop(StepGroup { dir: entry.path(), v2: true });
        }
    }
}

/// One build's memory cgroup, which every sandbox of the build joins;
/// removed (after killing what is left in it) on drop.
#[derive(Debug)]
pub struct BuildGroup {
    dir: PathBuf,
    v2: bool,
}

impl BuildGroup {
    /// Makes a new group whose processes may use `memory` bytes together
    /// (tmpfs pages they write included), with no swap to spill into.
    pub fn create(hierarchy: &Hierarchy, memory: u64) -> std::io::Result<BuildGroup> {
        let v2 = matches!(hierarchy, Hierarchy::V2(_));
        let dir = hierarchy.base().join(fresh_name("build"));
        std::fs::create_dir(&dir)?;
        let group = BuildGroup { dir, v2 };
        if v2 {
            std::fs::write(group.dir.join("memory.max"), memory.to_string())?;
            if group.dir.join("memory.swap.max").exists() {
                std::fs::write(group.dir.join("memory.swap.max"), "0")?;
            }
            // Step groups inside use pids; the build's other processes go
            // to a leaf of their own.
            let _ = std::fs::write(group.dir.join("cgroup.subtree_control"), "+pids");
            std::fs::create_dir(group.dir.join("tools"))?;
        } else {
            std::fs::write(group.dir.join("memory.limit_in_bytes"), memory.to_string())?;
            // Memory plus swap: the same bound, so nothing spills to swap.
            if group.dir.join("memory.memsw.limit_in_bytes").exists() {
                std::fs::write(group.dir.join("memory.memsw.limit_in_bytes"), memory.to_string())?;
            }
        }
        Ok(group)
    }

    /// Where the build's processes outside its step groups are: the group
    /// itself on v1, its `tools` leaf on v2.
    fn leaf(&self) -> PathBuf {
        if self.v2 {
            self.dir.join("tools")
        } else {
            self.dir.clone()
        }
    }

    /// The `cgroup.procs` of the build's processes outside its step groups.
    pub fn procs_file(&self) -> PathBuf {
        self.leaf().join("cgroup.procs")
    }

    /// The file a sandbox's first process writes `0` into to join the build
    /// ([`join_file`]).
    pub fn join_file(&self) -> PathBuf {
        join_file(&self.leaf(), self.v2)
    }

    /// Whether a step of the build joins only its own step group, which
    /// then sits inside the build's (v2); on v1 it joins both.
    pub fn holds_step_groups(&self) -> bool {
        self.v2
    }

    /// How many processes the kernel's OOM killer has killed in the build.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 { "memory.events" } else { "memory.oom_control" };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok())))
            .unwrap_or(0)
    }

    /// Whether any process is left in the build (in doubt: yes).
    pub fn is_populated(&self) -> bool {
        if self.v2 {
            return std::fs::read_to_string(self.dir.join("cgroup.events"))
                .map_or(true, |events| !events.lines().any(|l| l == "populated 0"));
        }
        std::fs::read_to_string(self.procs_file()).map_or(true, |procs| !procs.trim().is_empty())
    }

    /// Kills every process of the build, until none is left.
    pub fn kill_all(&self) {
        if self.v2 && std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        StepGroup::kill_procs(&self.procs_file());
    }
}

impl Drop for BuildGroup {
    fn drop(&mut self) {
        self.kill_all();
        // Removing a v1 memory group can take milliseconds after its last
        // task is gone (its pages are uncharged first): the build's thread
        // does not wait for it.
        let dir = std::mem::take(&mut self.dir);
        std::thread::spawn(move || {
            remove_children(&dir);
            remove_group(&dir);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `sleep` child and its owner tag, as another daemon in our PID namespace.
    fn live_child() -> (std::process::Child, Owner) {
        let child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let owner = Owner {
            pid_namespace: Owner::this().pid_namespace,
            pid: child.id(),
            started: start_time(child.id()).unwrap(),
        };
        (child, owner)
    }

    #[test]
    fn groups_left_by_a_dead_daemon_are_removed_and_no_others() {
        let Some(hierarchy) = Hierarchy::detect() else {
            eprintln!("no writable pids cgroup here; nothing to clean up");
            return;
        };
        let this = Owner::this();
        assert_eq!(Owner::of(&format!("step-{}-7", this.tag())).as_ref(), Some(this));
        // A pid above the kernel's maximum (4194304) belongs to no process.
        let dead = hierarchy.base().join(format!("step-{}-99999999-1-0", this.pid_namespace));
        // Our own pid, but started at another time: a daemon before this one.
        let reused = hierarchy.base().join(format!("build-{}-{}-1-0", this.pid_namespace, this.pid));
        // Another daemon in our namespace, alive: its groups are empty until
        // their first process joins, and must stay so.
        let (mut other, other_owner) = live_child();
        let other_step = hierarchy.base().join(format!("step-{}-0", other_owner.tag()));
        let other_build = hierarchy.base().join(format!("build-{}-1", other_owner.tag()));
        // Another PID namespace's daemon: this one cannot judge it, empty or not.
        let foreign_empty = hierarchy.base().join(format!("step-1-{}-0", this.tag()));
        let foreign = StepGroup { dir: hierarchy.base().join(format!("step-1-{}-1", this.tag())), v2: false };
        // A name of another form (an older release's): nobody's to judge.
        let unknown = hierarchy.base().join("step-99999999-0");
        let live = StepGroup::create(&hierarchy, 8, None).unwrap();
        for dir in [&dead, &reused, &other_step, &other_build, &foreign_empty, &foreign.dir, &unknown] {
            std::fs::create_dir(dir).unwrap();
        }
        let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(foreign.procs_file(), sleeper.id().to_string()).unwrap();

        Hierarchy::detect();
        assert!(!dead.exists() && !reused.exists(), "the groups of exited owners are removed");
        assert!(live.dir.exists(), "this process's own group stays");
        assert!(other_step.exists() && other_build.exists(), "a live owner's empty groups stay");
        assert!(foreign_empty.exists() && foreign.dir.exists(), "another namespace's groups stay");
        assert!(sleeper.try_wait().unwrap().is_none(), "its process was not killed");
        assert!(unknown.exists(), "a name of another form stays");

        // Once the other daemon has exited, its groups are stale.
        other.kill().unwrap();
        other.wait().unwrap();
        Hierarchy::detect();
        assert!(!other_step.exists() && !other_build.exists(), "an exited owner's groups are removed");

        let _ = sleeper.kill();
        let _ = sleeper.wait();
        drop(foreign);
        for dir in [&foreign_empty, &unknown] {
            std::fs::remove_dir(dir).unwrap();
        }
    }

    #[test]
    fn steps_join_their_groups_while_another_process_looks_for_stale_ones() {
        let Some(hierarchy) = Hierarchy::detect() else {
            eprintln!("no writable pids cgroup here");
            return;
        };
        // Another live process in our namespace (`wheelwright doctor`, a
        // second daemon) cleaning up in a loop while this one runs steps.
        let (mut other, other_owner) = live_child();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cleaner = {
            let (base, done) = (hierarchy.base().to_path_buf(), done.clone());
            std::thread::spawn(move || {
                let mut scans = 0u64;
                while !done.load(Ordering::Relaxed) {
                    remove_stale_as(&base, false, &other_owner);
                    scans += 1;
                }
                scans
            })
        };
        let mut failed = Vec::new();
        for _ in 0..100 {
            let group = StepGroup::create(&hierarchy, 8, None).unwrap();
            // The step's sandbox takes a moment to start before it joins.
            std::thread::sleep(std::time::Duration::from_millis(2));
            let join = std::process::Command::new("sh")
                .args(["-c", "echo 0 > \"$1\"", "sh"])
                .arg(group.procs_file())
                .output()
                .unwrap();
            if !join.status.success() {
                failed.push(String::from_utf8_lossy(&join.stderr).trim().to_string());
            }
        }
        done.store(true, Ordering::Relaxed);
        let scans = cleaner.join().unwrap();
        let _ = other.kill();
        let _ = other.wait();
        assert!(scans > 100, "the other process looked {scans} times");
        assert_eq!(failed, Vec::<String>::new(), "every step joined its group");
    }
}
