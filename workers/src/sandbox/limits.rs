//! Resource limits: for one step (the wall clock, rlimits set in the child
//! before it executes, the output cap) and for one build as a whole (its
//! wall clock, memory, disk and each sandbox's `/tmp`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits for every sandboxed step. Configuration, with defaults fit for
/// assembling and testing one small module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Wall-clock seconds per step; the whole process tree is killed after it.
    pub timeout_secs: u64,
    /// Address space per process, bytes (RLIMIT_AS).
    pub address_space: u64,
    /// CPU seconds per process (RLIMIT_CPU).
    pub cpu_secs: u64,
    /// Largest file a step may write, bytes (RLIMIT_FSIZE).
    pub file_size: u64,
    /// Open files per process (RLIMIT_NOFILE).
    pub open_files: u64,
    /// Processes and threads in the step (cgroup `pids.max`, else RLIMIT_NPROC).
    pub processes: u64,
    /// Bytes of output kept per step.
    pub max_output: usize,
    /// Wall-clock seconds for a whole build, every target and step
    /// together; what has not run by then is reported as not run.
    pub build_timeout_secs: u64,
    /// Memory of a whole build, bytes: every process of every step and the
    /// tmpfs pages they write, together (a memory cgroup per build).
    pub build_memory: u64,
    /// Disk a build's job directory may use, bytes, all files together.
    pub build_disk: u64,
    /// Size of the private `/tmp` each sandbox gets, bytes.
    pub tmp_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_secs: 60,
            address_space: 1 << 30,
            cpu_secs: 60,
            file_size: 64 << 20,
            open_files: 256,
            processes: 64,
            max_output: 1 << 20,
            build_timeout_secs: 600,
            build_memory: 2 << 30,
            build_disk: 1 << 30,
            tmp_size: 64 << 20,
        }
    }
}

impl Limits {
    /// The wall-clock limit of one step.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The wall-clock limit of one build.
    pub fn build_timeout(&self) -> Duration {
        Duration::from_secs(self.build_timeout_secs)
    }

    /// `(resource, value)` pairs for setrlimit. RLIMIT_NPROC is included; it
    /// only binds non-root users, which is why a cgroup is preferred.
    pub fn rlimits(&self) -> Vec<(libc::__rlimit_resource_t, u64)> {
        vec![
            (libc::RLIMIT_AS, self.address_space),
            (libc::RLIMIT_CPU, self.cpu_secs),
            (libc::RLIMIT_FSIZE, self.file_size),
            (libc::RLIMIT_NOFILE, self.open_files),
            (libc::RLIMIT_NPROC, self.processes),
            // A crashing module must not leave a core file in the job directory.
            (libc::RLIMIT_CORE, 0),
        ]
    }
}
