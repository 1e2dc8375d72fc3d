//! The sandbox every step that touches user input runs in: bubblewrap with
//! each namespace unshared (so no network), only the job directory writable,
//! read-only binds of just what the tools need, a private `/tmp` and `/proc`,
//! no capabilities and an allow-listed environment; Landlock inside it where
//! the kernel offers it; rlimits, a pids-limited cgroup where the host allows
//! one, an output cap and a wall-clock timeout that kills the whole tree.
//!
//! A [`Session`] runs many steps of one build in a single bubblewrap (the
//! assembler and linker runs), each still with its own limits and timeout.
//!
//! A build as a whole is bounded too ([`Sandbox::for_build`]): one memory
//! cgroup for all its sandboxes, a disk budget for its job directory, and a
//! sized `/tmp` in each sandbox.
//!
//! `Sandbox::none` runs the same limits without isolation, for trusted
//! local builds only (the build's cgroup and disk budget still apply).

mod build;
mod caps;
mod cgroup;
mod init;
pub mod landlock;
mod limits;
mod private;
pub mod seccomp;
mod session;
mod warm;
pub mod zygote;

pub use private::private_dir;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use build::BuildSandbox;
pub use cgroup::Hierarchy;
pub use limits::Limits;
pub use session::{Session, SessionPool};
pub use warm::WarmRun;

use crate::process::{self, CancelToken, Cmd, Output, RunLimits, SpawnError};

/// Where the Landlock helper appears inside the sandbox.
const HELPER_PATH: &str = "/run/wheelwright/sandbox-exec";

/// Where a step's cgroup membership files appear, for the helper to join
/// (`-0`, `-1`: on cgroup v1 the build's memory group and the step's pids
/// group are in different hierarchies).
const CGROUP_PROCS_PATH: &str = "/run/wheelwright/cgroup.procs";

/// What of the sandbox's fresh `/proc` is hidden (`/dev/null`, read-only,
/// bound over it, as Docker masks them): the keys the daemon's user may
/// view, with their names, and its key quotas. Key calls are refused to
/// every step ([`seccomp::install_step_filter`]); the listing is not a call.
const PROC_HIDDEN: [&str; 2] = ["/proc/keys", "/proc/key-users"];

/// What of the sandbox's fresh `/proc` is bound read-only over it. A fresh
/// procfs lets a process whose uid is the host's root write the host's
/// kernel settings (`/proc/sys/kernel/core_pattern` runs a program as host
/// root on the next crash), trigger SysRq, retarget interrupts, touch PCI
/// config and MTRRs, without any capability: bubblewrap leaves them all
/// writable. `/proc/sys/net` and `/proc/sys/user` still show the sandbox's
/// own namespaces (the kernel picks them by the reader's namespace, not by
/// the mount). Entries missing on this kernel are skipped.
const PROC_READ_ONLY: [&str; 10] = [
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
    "/proc/mtrr",
    "/proc/pressure",
    "/proc/acpi",
    "/proc/driver",
    "/proc/scsi",
];

/// Environment variables passed into the sandbox when a step sets them.
const ENV_ALLOWED: [&str; 11] = [
    "PYTHONPATH",
    // The same on warm and cold test runs (crate::warm::HASH_SEED).
    "PYTHONHASHSEED",
    // Which ABI model runs a macOS or Windows wheel's tests (crate::abimodel).
    "WHEELWRIGHT_ABIMODEL",
    // Where the guards find the job's line table (crate::abimodel).
    "WHEELWRIGHT_LINE_TABLE",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONNOUSERSITE",
    "PYTHONFAULTHANDLER",
    "SOURCE_DATE_EPOCH",
    "TERM",
    "GIT_TERMINAL_PROMPT",
    "LC_ALL",
];

/// What a step that may use the network also sees: name resolution and the
/// CA certificates (Debian's and Red Hat's places), not private keys.
const NETWORK_FILES: [&str; 6] = [
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust/extracted",
];

/// Why the sandbox cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    /// bwrap is not installed.
    #[error("bubblewrap (bwrap) is not installed: install the Debian package `bubblewrap`, or pass --sandbox=none for trusted local builds")]
    Missing,
    /// bwrap cannot create namespaces here.
    #[error("bubblewrap cannot create its namespaces here ({0}); allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or pass --sandbox=none for trusted local builds")]
    Unusable(String),
    /// The daemon runs as root and Landlock cannot confine its steps.
    #[error("wheelwright runs as root, and {0}: a sandboxed step would run as the host's root user (bubblewrap maps uid 0 inside to uid 0 outside), held back by bubblewrap's mounts alone; run wheelwright as a non-root user, or on a kernel with Landlock (Linux 5.13 or newer, `landlock` in the `lsm=` boot parameter) with the sandbox helper installed beside the binary")]
    RootWithoutLandlock(&'static str),
}

/// Refuses a sandbox that would run untrusted code as the host's root with
/// bubblewrap as its only layer: `euid` is the daemon's effective uid,
/// `landlock_abi` the kernel's Landlock ABI (0: none), `helper` whether the
/// Landlock helper was found. A non-root daemon's steps run as that user,
/// which the kernel already keeps from host settings.
pub fn check_root_confinement(euid: u32, landlock_abi: i64, helper: bool) -> Result<(), SandboxError> {
    match (euid, landlock_abi, helper) {
        (0, _, false) => Err(SandboxError::RootWithoutLandlock("the Landlock sandbox helper was not found")),
        (0, ..=0, true) => Err(SandboxError::RootWithoutLandlock("this kernel has no Landlock")),
        _ => Ok(()),
    }
}

/// The Landlock exec helper: a program plus the arguments that select its
/// helper mode (`wheelwright __sandbox-exec`, or `wheelwright-sandbox-exec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the helper's own.
    pub args: Vec<String>,
}

#[derive(Debug, Clone)]
enum Isolation {
    Bubblewrap { bwrap: PathBuf, helper: Option<Helper> },
    None,
}

/// Paths a step may see, besides the system's `/usr`, and whether it runs
/// the project's own code.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    /// Writable: the job directory.
    pub writable: Vec<PathBuf>,
    /// Read-only: sources, caches, the interpreter's prefix.
    pub read_only: Vec<PathBuf>,
    /// The step runs code from the project (its tests, its modules), which
    /// can fork: count and kill its processes through a cgroup of its own.
    /// Moving a process into a cgroup v1 costs milliseconds, so nasm and the
    /// linkers, which run no project code, go without (they only join their
    /// build's memory group, once per sandbox: a session holds most of them).
    pub runs_project_code: bool,
    /// TCP ports the step may connect to over the host's network (fetching
    /// a pushed commit); empty: no network at all. Every other namespace and
    /// layer stays, and Landlock (ABI 4+) refuses other ports and binding.
    pub network: Vec<u16>,
}

impl Mounts {
    /// Only `dir` writable.
    pub fn job(dir: &Path) -> Self {
        Mounts {
            writable: vec![dir.to_path_buf()],
            read_only: Vec::new(),
            runs_project_code: false,
            network: Vec::new(),
        }
    }

    /// Lets the step connect to these TCP ports over the network.
    pub fn with_network(mut self, ports: &[u16]) -> Self {
        self.network = ports.to_vec();
        self
    }

    /// Marks the step as running the project's code.
    pub fn running_project_code(mut self) -> Self {
        self.runs_project_code = true;
        self
    }

    /// Adds a read-only path.
    pub fn read_only(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_only.push(path.into());
        self
    }
}

/// How steps are run: isolation, limits and process-count enforcement.
#[derive(Debug, Clone)]
pub struct Sandbox {
    isolation: Isolation,
    /// The limits for every step, and for each build as a whole.
    pub limits: Limits,
    cgroups: Option<Hierarchy>,
    /// Where builds' memory groups are made.
    memory: Option<Hierarchy>,
    /// The build this sandbox runs steps of (see [`Sandbox::for_build`]).
    build: Option<Arc<build::BuildState>>,
    /// Where warm test runners are kept ([`crate::warm`]); `None`: every
    /// test run is cold.
    warm: Option<Arc<crate::warm::WarmPool>>,
    /// The folder holding every build's work directory, when runners may
    /// serve many builds ([`Sandbox::with_warm_root`]).
    warm_root: Option<PathBuf>,
    /// Whether sessions link with a warm lld ([`zygote`]).
    lld_zygote: bool,
    /// Sessions kept between builds ([`Sandbox::with_session_pool`]).
    sessions: Option<Arc<SessionPool>>,
}

impl Sandbox {
    /// The bubblewrap sandbox, after checking that it works here, and that
    /// a root daemon has Landlock too ([`check_root_confinement`]).
    pub fn bubblewrap(limits: Limits, helper: Option<Helper>) -> Result<Sandbox, SandboxError> {
        let sandbox = Self::with_bwrap(crate::toolchain::find(crate::toolchain::Tool::Bwrap), limits, helper)?;
        let helper_found = sandbox.has_helper();
        // SAFETY: geteuid has no preconditions.
        check_root_confinement(unsafe { libc::geteuid() }, landlock::kernel_abi(), helper_found)?;
        // Tests run warm wherever a warm run can be isolated (Landlock's
        // signal scoping needs ABI 6); cold otherwise.
        if helper_found && landlock::kernel_abi() >= 6 {
            return Ok(sandbox.with_warm(crate::warm::WarmPool::shared()));
        }
        Ok(sandbox)
    }

    /// The bubblewrap sandbox using `bwrap` (`None`: not installed), after
    /// checking that it works here. Unlike [`Sandbox::bubblewrap`], it does
    /// not refuse a root process without Landlock: for looking at
    /// bubblewrap's own layer.
    pub fn with_bwrap(bwrap: Option<PathBuf>, limits: Limits, helper: Option<Helper>) -> Result<Sandbox, SandboxError> {
        let bwrap = bwrap.ok_or(SandboxError::Missing)?;
        let sandbox = Sandbox {
            isolation: Isolation::Bubblewrap { bwrap, helper: helper.filter(|h| h.program.is_file()) },
            limits,
            cgroups: Hierarchy::detect(),
            memory: Hierarchy::detect_memory(),
            build: None,
            warm: None,
            warm_root: None,
            lld_zygote: true,
            sessions: None,
        };
        let probe = sandbox.wrap(&Cmd::new("/usr/bin/true"), &Mounts::default());
        let out = std::process::Command::new(&probe.program)
            .args(&probe.args)
            .output()
            .map_err(|e| SandboxError::Unusable(e.to_string()))?;
        if !out.status.success() {
            return Err(SandboxError::Unusable(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        Ok(sandbox)
    }

    /// No isolation: limits only. For trusted local builds.
    pub fn none(limits: Limits) -> Sandbox {
        Sandbox {
            isolation: Isolation::None,
            limits,
            cgroups: Hierarchy::detect(),
            memory: Hierarchy::detect_memory(),
            build: None,
            warm: None,
            warm_root: None,
            lld_zygote: true,
            sessions: None,
        }
    }

    /// Lets a session serve builds one after the other
    /// ([`session::SessionPool`]): those whose work directory lies in the
    /// warm root ([`Sandbox::with_warm_root`]); each of
    /// `read_only_roots` (the folder of the builds' sources) is shown whole,
    /// read-only. Every run is confined to its own build's paths.
    pub fn with_session_pool(mut self, read_only_roots: Vec<PathBuf>) -> Sandbox {
        self.sessions = Some(Arc::new(SessionPool::new(read_only_roots)));
        self
    }

    /// The pool of sessions, when builds share them.
    pub fn session_pool(&self) -> Option<&Arc<SessionPool>> {
        self.sessions.as_ref()
    }

    /// Sessions link with a cold lld each time (see [`zygote`]).
    pub fn without_lld_zygote(mut self) -> Sandbox {
        self.lld_zygote = false;
        self
    }

    /// Starts the limits of one build as a whole (its memory cgroup, the
    /// disk budget of `work_dir`, its job directory); run the build's steps
    /// with [`BuildSandbox::sandbox`], and drop it when the build ends.
    pub fn for_build(&self, work_dir: &Path) -> BuildSandbox {
        BuildSandbox::start(self, work_dir)
    }

    /// Whether steps run isolated.
    pub fn is_isolated(&self) -> bool {
        matches!(self.isolation, Isolation::Bubblewrap { .. })
    }

    /// Whether steps run under the Landlock helper (the sandbox's pid 1,
    /// which seals, filters and confines them; see `init`).
    fn has_helper(&self) -> bool {
        matches!(self.isolation, Isolation::Bubblewrap { helper: Some(_), .. })
    }

    /// What protects a step, and what bounds a build, for logs.
    pub fn describe(&self) -> String {
        format!("{}; {}", self.describe_layers(), self.describe_build_limits())
    }

    /// What protects a step, for `doctor`.
    pub fn describe_layers(&self) -> String {
        let mut layers = Vec::new();
        match &self.isolation {
            Isolation::Bubblewrap { helper, .. } => {
                layers.push("bubblewrap".to_string());
                match (helper, landlock::kernel_abi()) {
                    (Some(_), abi) if abi > 0 => layers.push(format!("landlock ABI {abi}")),
                    (Some(_), _) => layers.push("no landlock (kernel)".into()),
                    (None, _) => layers.push("no landlock (helper not found)".into()),
                }
                if helper.is_some() {
                    layers.push("key calls refused (seccomp)".into());
                }
            }
            Isolation::None => layers.push("NO ISOLATION (--sandbox=none)".into()),
        }
        layers.push(match &self.cgroups {
            Some(h) => h.describe(),
            None => "RLIMIT_NPROC (binds non-root users only)".into(),
        });
        layers.join(" + ")
    }

    /// What bounds each build as a whole, for logs and `doctor`.
    pub fn describe_build_limits(&self) -> String {
        let limits = &self.limits;
        let memory = match &self.memory {
            Some(h) => format!("memory {} ({})", crate::readback::human_size(limits.build_memory), h.describe()),
            None => "memory per process only (no memory cgroup)".into(),
        };
        format!(
            "per build: {memory}, disk {} (job directory), /tmp {} per sandbox",
            crate::readback::human_size(limits.build_disk),
            crate::readback::human_size(limits.tmp_size)
        )
    }

    /// Runs `cmd` inside the sandbox under the limits (and its build's).
    pub fn run(&self, cmd: &Cmd, mounts: &Mounts, cancel: &CancelToken) -> Result<Output, SpawnError> {
        match &self.build {
            Some(build) => build.bounded(|| self.run_step(cmd, mounts, cancel)),
            None => self.run_step(cmd, mounts, cancel),
        }
    }

    /// [`Sandbox::run`] without the build's accounting.
    fn run_step(&self, cmd: &Cmd, mounts: &Mounts, cancel: &CancelToken) -> Result<Output, SpawnError> {
        let build_group = self.build.as_ref().and_then(|b| b.memory.as_ref());
        // The helper, the sandbox's pid 1, joins the group before it forks
        // the step (`init`): one more, so that the step may start as many
        // processes as without it.
        let helper = self.has_helper();
        let group = match (&self.cgroups, mounts.runs_project_code) {
            (Some(h), true) => {
                cgroup::StepGroup::create(h, self.limits.processes + u64::from(helper), build_group).ok()
            }
            _ => None,
        };
        let mut rlimits = self.limits.rlimits();
        if group.is_some() {
            rlimits.retain(|(r, _)| *r != libc::RLIMIT_NPROC);
        }
        // The build's group, unless the step's own group sits inside it (v2).
        let mut cgroup_procs: Vec<PathBuf> = build_group
            .filter(|b| group.is_none() || !b.holds_step_groups())
            .map(|b| b.join_file())
            .into_iter()
            .collect();
        cgroup_procs.extend(group.as_ref().map(|g| g.join_file()));
        let setup = ChildSetup { rlimits, cgroup_procs, ..ChildSetup::default() };
        // The helper joins the cgroup and lowers the rlimits inside the
        // sandbox, so the daemon starts bubblewrap without a pre-exec hook:
        // spawned, not forked with all its threads and memory.
        let (wrapped, setup) = if helper {
            (self.wrap_program(Some(cmd), mounts, &setup), ChildSetup::default())
        } else {
            (self.wrap(cmd, mounts), setup)
        };
        let limits = RunLimits {
            timeout: self.limits.timeout(),
            max_output: self.limits.max_output,
            rlimits: setup.rlimits,
            cgroup_procs: setup.cgroup_procs,
            landlock_ruleset: None,
            stop: self.build.as_ref().map(|b| b.stop.clone()),
        };
        let mut output = process::run(&wrapped, &limits, cancel)?;
        if let (true, process::Exit::Code(code @ 129..=192)) = (self.is_isolated(), &output.exit) {
            // bwrap (and the helper, as pid 1) reports a child killed by
            // signal N as exit status 128 + N.
            output.exit = process::Exit::Signal(code - 128);
        }
        if let Some(group) = group {
            if group.hit_pids_limit() {
                output.text.push_str(&format!(
                    "\n[wheelwright: the step reached its limit of {} processes]\n",
                    self.limits.processes
                ));
            }
            group.kill_all();
            // Removing a v1 cgroup can take a few milliseconds after its last
            // task exits; nothing waits for it.
            std::thread::spawn(move || drop(group));
        }
        Ok(output)
    }

    /// Starts a session in which many steps can run, each seeing what
    /// `mounts` shows (see [`Session::covers`]); `None` when steps are not
    /// isolated, or there is no Landlock helper to serve them.
    pub fn session(&self, mounts: Mounts) -> Option<Result<Session, SpawnError>> {
        self.session_warming(mounts, None)
    }

    /// [`Sandbox::session`] whose server starts the warm linker of `lld`
    /// ([`zygote`]) at once, while the build assembles, instead of at the
    /// first link.
    pub fn session_warming(&self, mounts: Mounts, lld: Option<&Path>) -> Option<Result<Session, SpawnError>> {
        if !self.has_helper() {
            return None;
        }
        if let Some(session) = self.pooled_session(&mounts, lld) {
            return Some(Ok(session));
        }
        // The session's server joins the build's group; the tools it runs are born in it.
        let cgroup_procs = self.build.iter().filter_map(|b| b.memory.as_ref()).map(|g| g.join_file()).collect();
        let (zygote_shim, warm_lld) = self.warm_linker(lld);
        let setup = ChildSetup { cgroup_procs, zygote_shim, warm_lld, ..ChildSetup::default() };
        let wrapped = self.wrap_program(None, &mounts, &setup);
        Some(
            session::Core::start(&wrapped, mounts, self.limits.clone())
                .map(|core| Session::own(core, self.build.clone())),
        )
    }

    /// The shim to show a session, and the lld its server starts warm.
    fn warm_linker(&self, lld: Option<&Path>) -> (Option<PathBuf>, Option<PathBuf>) {
        // The warm linker's forks are scoped like cold tools: only with ABI 6.
        let zygote_shim = match self.lld_zygote && landlock::kernel_abi() >= 6 {
            true => zygote::shared_shim(&std::env::temp_dir())
                .inspect_err(|e| tracing::warn!("links run cold: cannot write the lld zygote's shim: {e}"))
                .ok(),
            false => None,
        };
        let warm_lld = lld
            .filter(|p| zygote_shim.is_some() && p.is_absolute() && zygote::lld_binary(p).is_some())
            .map(Path::to_path_buf);
        (zygote_shim, warm_lld)
    }

    /// A pooled session for a build's steps seeing `mounts`, when the pool
    /// may serve it: the build's work directory lies in the warm root, and
    /// the steps need neither the network nor to run project code.
    fn pooled_session(&self, mounts: &Mounts, lld: Option<&Path>) -> Option<Session> {
        let pool = self.sessions.as_ref()?;
        let root = self.warm_root.as_ref()?;
        let [work] = mounts.writable.as_slice() else { return None };
        if !pool.is_on()
            || !mounts.network.is_empty()
            || mounts.runs_project_code
            || !work.starts_with(root)
            || work == root
        {
            return None;
        }
        // Its runs join the build's memory group, through the folder of
        // the groups that the session shows its server. Only a build with
        // one: through it the build's memory is counted, and the session
        // handed back only when nothing of the build is left in it.
        let groups_dir = self.memory.as_ref()?.base().to_path_buf();
        let group = self.build.as_ref()?.memory.as_ref()?;
        let cgroups = vec![group.join_file().strip_prefix(&groups_dir).ok()?.to_path_buf()];
        let groups_dir = Some(groups_dir);
        let mut read_only: Vec<PathBuf> = mounts
            .read_only
            .iter()
            .map(|p| pool.roots.iter().find(|r| p.starts_with(r)).unwrap_or(p).clone())
            .collect();
        read_only.sort();
        read_only.dedup();
        let (zygote_shim, warm_lld) = self.warm_linker(lld);
        let key = session::PoolKey {
            writable: vec![root.clone()],
            read_only,
            lld: warm_lld.clone(),
            limits: self.limits.clone(),
        };
        let core = match pool.take(&key) {
            Some(core) => core,
            None => {
                let view =
                    Mounts { writable: key.writable.clone(), read_only: key.read_only.clone(), ..Mounts::default() };
                let setup = ChildSetup { zygote_shim, warm_lld, groups_dir, ..ChildSetup::default() };
                let wrapped = self.wrap_program(None, &view, &setup);
                let core = session::Core::start(&wrapped, view, self.limits.clone())
                    .inspect_err(|e| tracing::warn!("no pooled session: {e}"))
                    .ok()?;
                pool.started();
                // A first run, confined and joining the build's group, as
                // every run will: a host where that fails gets sessions of
                // each build's own.
                if let Err(why) = core.probe(mounts, &cgroups) {
                    tracing::warn!("this build gets a session of its own: a pooled one cannot confine a run ({why})");
                    pool.failed();
                    return None;
                }
                Arc::new(core)
            }
        };
        Some(Session::pooled(core, self.build.clone(), pool.clone(), key, mounts.clone(), cgroups))
    }

    /// The command line that runs `cmd` isolated (unchanged without isolation).
    pub fn wrap(&self, cmd: &Cmd, mounts: &Mounts) -> Cmd {
        self.wrap_program(Some(cmd), mounts, &ChildSetup::default())
    }

    /// [`Sandbox::wrap`]; without a command, the helper serves a session.
    /// The helper (when there is one) applies `setup` before it executes.
    fn wrap_program(&self, cmd: Option<&Cmd>, mounts: &Mounts, setup: &ChildSetup) -> Cmd {
        let Isolation::Bubblewrap { bwrap, helper } = &self.isolation else {
            return cmd.cloned().expect("only a bubblewrap sandbox serves sessions");
        };
        let mut args: Vec<String> = [
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup",
            // No user namespace inside: it would give a step capabilities
            // there, and with them the kernel's namespaced attack surface.
            "--disable-userns",
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--hostname",
            "wheelwright",
        ]
        .map(String::from)
        .to_vec();
        // What the helper (or a warm runner's child) needs to make the
        // host's files unchangeable before the step starts, and then drops.
        let helper = helper.as_ref().filter(|_| !setup.runner_views);
        if helper.is_some() || setup.runner_views {
            args.extend(caps::KEPT.iter().flat_map(|cap| ["--cap-add".to_string(), cap.to_string()]));
        }
        if setup.runner_views {
            args.extend(["--dir".to_string(), warm::VIEW_ROOT.to_string()]);
        }
        let mut setenv = |k: &str, v: &str| args.extend(["--setenv".to_string(), k.to_string(), v.to_string()]);
        setenv("PATH", "/usr/local/bin:/usr/bin:/bin");
        setenv("HOME", "/tmp");
        setenv("TMPDIR", "/tmp");
        setenv("LANG", "C.UTF-8");
        for (k, v) in cmd.map(allowed_env).into_iter().flatten() {
            setenv(k, v);
        }
        if mounts.network.is_empty() {
            args.push("--unshare-net".into());
        }
        args.extend(system_binds());
        let network_files: Vec<&str> =
            NETWORK_FILES.iter().copied().filter(|f| !mounts.network.is_empty() && Path::new(f).exists()).collect();
        for file in &network_files {
            args.extend(["--ro-bind".to_string(), file.to_string(), file.to_string()]);
        }
        args.extend(["--proc", "/proc"].map(String::from));
        for path in PROC_READ_ONLY {
            args.extend(["--ro-bind-try", path, path].map(String::from));
        }
        for path in PROC_HIDDEN.iter().filter(|p| Path::new(p).exists()) {
            args.extend(["--ro-bind", "/dev/null", path].map(String::from));
        }
        args.extend(dev_args(helper.is_some()));
        // Sized: an unsized tmpfs may take half the host's memory.
        let tmp_size = self.limits.tmp_size.to_string();
        args.extend(
            ["--size", &tmp_size, "--tmpfs", "/tmp", "--size", &tmp_size, "--tmpfs", "/dev/shm"].map(String::from),
        );
        // Once all of it is there: the devices, /dev/shm and /dev/pts (the
        // helper's, or `--dev`'s) are mounts of their own, and stay writable.
        args.extend(["--remount-ro", "/dev"].map(String::from));

        // Parents before children, so that a read-only source inside the
        // writable job directory stays read-only.
        let mut binds: Vec<(&Path, bool)> = mounts
            .writable
            .iter()
            .map(|p| (p.as_path(), true))
            .chain(mounts.read_only.iter().map(|p| (p.as_path(), false)))
            .collect();
        let program_dir = cmd.and_then(|c| c.program.parent()).filter(|d| !d.starts_with("/usr") && d.is_absolute());
        binds.extend(program_dir.map(|d| (d, false)));
        binds.sort_by_key(|(p, _)| p.components().count());
        for (path, writable) in &binds {
            let flag = if *writable { "--bind" } else { "--ro-bind" };
            let p = path.display().to_string();
            args.extend([flag.to_string(), p.clone(), p]);
        }
        if let Some(dir) = cmd.and_then(|c| c.cwd.as_ref()) {
            args.extend(["--chdir".to_string(), dir.display().to_string()]);
        }
        if let Some(helper) = helper {
            // The helper is the sandbox's pid 1 (see `init`): no reaper of
            // bubblewrap's that a step could trace.
            args.push("--as-pid-1".into());
            // At a fixed place, so that nothing of the helper's own folder shows.
            args.extend(["--ro-bind".to_string(), helper.program.display().to_string(), HELPER_PATH.to_string()]);
            for (n, procs) in setup.cgroup_procs.iter().enumerate() {
                args.extend(["--bind".to_string(), procs.display().to_string(), format!("{CGROUP_PROCS_PATH}-{n}")]);
            }
            if let Some(groups) = &setup.groups_dir {
                args.extend(["--bind".to_string(), groups.display().to_string(), session::GROUPS_PATH.to_string()]);
            }
            if let Some(shim) = &setup.zygote_shim {
                args.extend(["--ro-bind".to_string(), shim.display().to_string(), zygote::SHIM_PATH.to_string()]);
            }
        }
        // The root bubblewrap made (its folders, the mount points): nothing
        // of a step's belongs there, and unwritable it cannot be filled
        // where Landlock does not forbid it.
        args.extend(["--remount-ro", "/"].map(String::from));
        args.push("--".into());
        if let Some(helper) = helper {
            args.push(HELPER_PATH.into());
            args.extend(helper.args.iter().cloned());
            if cmd.is_none() {
                args.push("--serve".into());
            }
            if let Some(lld) = &setup.warm_lld {
                args.extend(["--warm-lld".to_string(), lld.display().to_string()]);
            }
            if setup.groups_dir.is_some() {
                args.push("--shared".into());
            }
            args.push("--limit-ptys".into());
            for port in &mounts.network {
                args.extend(["--connect".to_string(), port.to_string()]);
            }
            for n in 0..setup.cgroup_procs.len() {
                args.extend(["--cgroup".to_string(), format!("{CGROUP_PROCS_PATH}-{n}")]);
            }
            for (resource, value) in &setup.rlimits {
                args.extend(["--rlimit".to_string(), format!("{resource}={value}")]);
            }
            for path in binds.iter().filter(|(_, w)| !w).map(|(p, _)| p).chain([&Path::new("/usr")]) {
                args.extend(["--ro".to_string(), path.display().to_string()]);
            }
            for path in binds.iter().filter(|(_, w)| *w).map(|(p, _)| p) {
                args.extend(["--rw".to_string(), path.display().to_string()]);
            }
            if setup.groups_dir.is_some() {
                args.extend(["--rw".to_string(), session::GROUPS_PATH.to_string()]);
            }
            args.extend(
                ["/etc/ld.so.cache", "/lib", "/lib64", "/bin", HELPER_PATH]
                    .iter()
                    .chain(&network_files)
                    .chain(setup.zygote_shim.as_ref().map(|_| &zygote::SHIM_PATH))
                    .flat_map(|p| ["--ro".to_string(), p.to_string()]),
            );
            args.push("--".into());
        }
        if let Some(cmd) = cmd {
            args.push(cmd.program.display().to_string());
            args.extend(cmd.args.iter().cloned());
        }
        Cmd { program: bwrap.clone(), args, cwd: None, env: Vec::new(), clear_env: false }
    }
}

/// The variables of `cmd`'s environment that pass into a sandbox.
fn allowed_env(cmd: &Cmd) -> impl Iterator<Item = &(String, String)> {
    cmd.env.iter().filter(|(k, _)| ENV_ALLOWED.contains(&k.as_str()))
}

/// What a confined run (a warm test's child, a tool of a shared session)
/// may read besides its own paths.
const CONFINED_READ_ONLY: [&str; 6] = ["/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache", "/proc"];

/// The devices a confined run may write (a warm test's child `/dev/tty`
/// too, and `/dev/shm` only as its runner's `PRIVATE` says).
const CONFINED_DEVICES: [&str; 5] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/// What a step's first process does to itself before it executes: join the
/// build's and the step's cgroups, lower its rlimits.
#[derive(Debug, Default)]
struct ChildSetup {
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    cgroup_procs: Vec<PathBuf>,
    /// A session's server: the lld zygote's shim to show it ([`zygote::SHIM_PATH`]).
    zygote_shim: Option<PathBuf>,
    /// A session's server: the lld whose zygote it starts at once.
    warm_lld: Option<PathBuf>,
    /// A pooled session's server: the folder of the builds' memory groups,
    /// shown at [`session::GROUPS_PATH`] (the runs join theirs); with it the
    /// server serves `--shared` (see [`session::serve`]).
    groups_dir: Option<PathBuf>,
    /// A warm runner: no helper (Landlock would forbid the mounts), and
    /// the capabilities its children need to make each run's view of its
    /// own, which every child drops before it runs anything of a build's.
    runner_views: bool,
}

/// How a step's `/dev` is made. Without the helper, bubblewrap's `--dev`.
/// With it, the same by hand minus `--dev`'s devpts instance: the helper
/// mounts a capped one of the step's own at `/dev/pts`
/// ([`caps::PTYS`]), and no uncapped instance should lie underneath, in
/// any mount namespace (bubblewrap's reaper, whose `/proc/1/root` showed
/// bubblewrap's, is no longer there: the helper is pid 1, see `init`; this
/// holds even if it were). Either way the folder is
/// made read-only once filled (see [`Sandbox::wrap_program`]): `--dev`'s
/// is an unsized tmpfs a step could fill.
fn dev_args(helper: bool) -> Vec<String> {
    if !helper {
        return ["--dev", "/dev"].map(String::from).to_vec();
    }
    let size = caps::DEV_SIZE.to_string();
    let mut args: Vec<String> = ["--size", &size, "--tmpfs", "/dev"].map(String::from).to_vec();
    for device in caps::DEVICES {
        args.extend(["--dev-bind", device, device].map(String::from));
    }
    // `--dev`'s `core` link too (a warm child's view has none; /proc/kcore
    // is unreadable to a step either way).
    for (link, target) in caps::DEV_LINKS.iter().chain(&[("/dev/core", "/proc/kcore")]) {
        args.extend(["--symlink", target, link].map(String::from));
    }
    args.extend(["--dir", "/dev/pts", "--dir", "/dev/shm"].map(String::from));
    args
}

/// `/usr` read-only, and the merged-usr links (or the real directories on a
/// system without merged /usr), plus the loader cache.
fn system_binds() -> Vec<String> {
    let mut args: Vec<String> = ["--ro-bind", "/usr", "/usr"].map(String::from).to_vec();
    for dir in ["/bin", "/sbin", "/lib", "/lib64", "/lib32"] {
        match std::fs::read_link(dir) {
            Ok(target) => args.extend(["--symlink".to_string(), target.display().to_string(), dir.to_string()]),
            Err(_) if Path::new(dir).is_dir() => {
                args.extend(["--ro-bind".to_string(), dir.to_string(), dir.to_string()])
            }
            Err(_) => {}
        }
    }
    args.extend(["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"].map(String::from));
    args
}
