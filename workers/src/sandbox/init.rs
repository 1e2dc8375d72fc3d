//! The Landlock helper as its sandbox's pid 1 (bubblewrap's `--as-pid-1`).
//!
//! bubblewrap's own pid 1 (its reaper) stays in bubblewrap's mount
//! namespace, keeps no seccomp filter and is dumpable: a step of the same
//! uid could `ptrace` it or open `/proc/1/root`, `/proc/1/mem`, and through
//! it reach the device and `cgroup.procs` binds the helper sealed only in
//! its own mount namespace, or make the key calls its filter refuses (a
//! key in the daemon's session keyring outlives the build and is seen by
//! the next). Landlock refuses a trace out of the step's domain, so this
//! mattered where the kernel has none; but the class is "a process the step
//! can name that holds more than the step", and the fix is that there is no
//! such process. So the helper is pid 1 itself: it makes every restriction
//! first (sealed mounts, no capability, the filters, rlimits, Landlock),
//! then forks the step, and, no longer dumpable, only reaps until the step
//! ends. Nothing of it can be traced or opened through `/proc`, and it
//! blocks every signal (as its namespace's init it could not be killed from
//! inside anyway).

/// If this process is pid 1 of its namespace, forks: the child returns
/// `Ok(None)` and goes on to be the step (pid 2, as under bubblewrap's
/// reaper); the parent reaps every process that ends until the child
/// does, and returns `Ok(Some(status))`, the exit status to end with
/// (the child's, or 128 + the signal that ended it, as bubblewrap reports
/// it). When this process is not pid 1, returns `Ok(None)` at once.
pub fn fork_step_as_init() -> std::io::Result<Option<i32>> {
    if std::process::id() != 1 {
        return Ok(None);
    }
    // Before the fork: no moment in which the step exists and pid 1 could
    // be traced. The child's own exec makes it dumpable again (only pid 1
    // needs not to be), as a server of a session sets itself not dumpable.
    // SAFETY: prctl(PR_SET_DUMPABLE) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the helper is single-threaded here (it has started no thread;
    // a session's server starts its own after this), so the child may run
    // any code.
    let child = unsafe { libc::fork() };
    match child {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(None),
        child => Ok(Some(reap_until(child))),
    }
}

/// Reaps children (the step, and whatever it left that was re-parented to
/// pid 1) until `child` ends; returns the status to exit with. Holds none
/// of the descriptors above the standard three: the step's, once it has
/// them, are its own. When pid 1 exits, the kernel kills the rest of its
/// namespace, as it did when bubblewrap's reaper exited.
fn reap_until(child: libc::pid_t) -> i32 {
    // Every signal blocked: as init, pid 1 ignores those sent from inside
    // its namespace that it has no handler for, but Rust's runtime installs
    // handlers (SIGSEGV, SIGBUS) a step could otherwise run. waitpid needs
    // no SIGCHLD. SIGKILL from outside (the host, bubblewrap's
    // --die-with-parent) cannot be blocked, and ends the namespace.
    // SAFETY: sigfillset and sigprocmask on a local set; close_range takes
    // no pointers, and nothing of this process uses a descriptor above 2
    // from here on.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    loop {
        let mut status = 0;
        // SAFETY: a valid pointer to an int.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == child {
            return if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                255
            };
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // No child left although the step was one: cannot happen.
            return 255;
        }
    }
}
