//! A cgroup per step, where the host lets us make one: `pids.max` bounds
//! the number of processes (RLIMIT_NPROC does not bind root), and the group
//! lets us kill every process of the step, whatever it did to escape.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Which cgroup hierarchy holds the `pids` controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2: the unified hierarchy with `pids` enabled for children.
    V2(PathBuf),
    /// cgroup v1: the `pids` hierarchy.
    V1(PathBuf),
}

impl Hierarchy {
    /// Finds a writable place to make step cgroups in, below our own cgroup.
    pub fn detect() -> Option<Hierarchy> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let path = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "pids") {
                let base = Path::new("/sys/fs/cgroup/pids").join(path).join("wheelwright");
                if try_parent(&base) {
                    remove_stale(&base, false);
                    return Some(Hierarchy::V1(base));
                }
            }
            if controllers.is_empty() {
                let mount = Path::new("/sys/fs/cgroup");
                let unified =
                    if mount.join("cgroup.controllers").exists() { mount.to_path_buf() } else { mount.join("unified") };
                let base = unified.join(path).join("wheelwright");
                if try_parent(&base) && base.join("pids.max").exists() {
                    remove_stale(&base, true);
                    return Some(Hierarchy::V2(base));
                }
                if base.is_dir() && !base.join("pids.max").exists() {
                    // v2 without the pids controller delegated to us: no use.
                    let _ = std::fs::remove_dir(&base);
                }
            }
        }
        None
    }

    /// A human-readable name for `doctor` and logs.
    pub fn describe(&self) -> String {
        match self {
            Hierarchy::V1(p) => format!("cgroup v1 pids ({})", p.display()),
            Hierarchy::V2(p) => format!("cgroup v2 ({})", p.display()),
        }
    }

    fn base(&self) -> &Path {
        match self {
            Hierarchy::V1(p) | Hierarchy::V2(p) => p,
        }
    }
}

/// Makes the parent `wheelwright` group (and, on v2, lets children use `pids`).
fn try_parent(base: &Path) -> bool {
    if std::fs::create_dir_all(base).is_err() {
        return false;
    }
    let controllers = base.parent().map(|p| p.join("cgroup.subtree_control"));
    if let Some(control) = controllers.filter(|c| c.exists()) {
        let _ = std::fs::write(control, "+pids");
        let _ = std::fs::write(base.join("cgroup.subtree_control"), "+pids");
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

    /// The owner of a group named `step-NS-PID-START-N`.
    fn of(name: &str) -> Option<Owner> {
        let mut parts = name.strip_prefix("step-")?.split('-');
        let owner = Owner {
            pid_namespace: parts.next()?.parse().ok()?,
            pid: parts.next()?.parse().ok()?,
            started: parts.next()?.parse().ok()?,
        };
        parts.next()?.parse::<u64>().ok()?;
        parts.next().is_none().then_some(owner)
    }
}

/// A process's start time (clock ticks since boot), from /proc.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    fields.get(19)?.parse().ok()
}

/// Removes the step groups of processes that no longer run (a daemon killed
/// mid-step leaves its group behind), killing whatever is still in them.
/// A group whose owner this process cannot judge (another PID namespace, an
/// older name) is only removed when empty.
fn remove_stale(base: &Path, v2: bool) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    let this = Owner::this();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("step-")) else { continue };
        match Owner::of(name) {
            Some(owner) if &owner == this => {}
            Some(owner)
                if owner.pid_namespace == this.pid_namespace && start_time(owner.pid) != Some(owner.started) =>
            {
                drop(StepGroup { dir: entry.path(), v2 });
            }
            // Fails unless the group is empty.
            _ => {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
}

/// One step's cgroup; removed (after killing what is left in it) on drop.
#[derive(Debug)]
pub struct StepGroup {
    dir: PathBuf,
    v2: bool,
}

impl StepGroup {
    /// Makes a new group limited to `max_pids` processes.
    pub fn create(hierarchy: &Hierarchy, max_pids: u64) -> std::io::Result<StepGroup> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("step-{}-{}", Owner::this().tag(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = hierarchy.base().join(name);
        std::fs::create_dir(&dir)?;
        let group = StepGroup { dir, v2: matches!(hierarchy, Hierarchy::V2(_)) };
        std::fs::write(group.dir.join("pids.max"), max_pids.to_string())?;
        Ok(group)
    }

    /// The file a child writes `0` into to join the group.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
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
        for _ in 0..100 {
            let pids: Vec<i32> = std::fs::read_to_string(self.procs_file())
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
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let reused = hierarchy.base().join(format!("step-{}-{}-1-0", this.pid_namespace, this.pid));
        // Another PID namespace's daemon, with a process in its group.
        let foreign = StepGroup { dir: hierarchy.base().join(format!("step-1-{}-0", this.tag())), v2: false };
        let live = StepGroup::create(&hierarchy, 8).unwrap();
        for dir in [&dead, &reused, &foreign.dir] {
            std::fs::create_dir(dir).unwrap();
        }
        let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(foreign.procs_file(), sleeper.id().to_string()).unwrap();

        Hierarchy::detect();
        assert!(!dead.exists() && !reused.exists());
        assert!(live.dir.exists(), "this process's own group stays");
        assert!(foreign.dir.exists(), "a group this namespace cannot judge stays while it has processes");
        assert!(sleeper.try_wait().unwrap().is_none(), "its process was not killed");
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }
}
