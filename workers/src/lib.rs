//! The wheelwright build engine: NASM sources to verified wheels for Linux,
//! macOS and Windows, from one Linux host.
//!
//! The data flows one way: [`project::Project::load`] reads a project,
//! [`pipeline::build`] runs each target's steps (assemble, link, verify,
//! package, smoke test) and returns a [`report::BuildReport`]. Every tool runs
//! through [`process::run`]. No HTTP and no database here: the daemon drives
//! this crate.

pub mod abimodel;
pub mod backend;
pub mod capi;
pub mod lines;
pub mod linkerr;
pub mod lint;
pub mod pipeline;
pub mod platform;
pub mod process;
pub mod project;
pub mod pyversion;
pub mod readback;
pub mod report;
pub mod sandbox;
pub mod smoke;
pub mod toolchain;
pub mod verify;
pub mod warm;
pub mod wheel;

use std::path::PathBuf;

/// The cache directory: `$WHEELWRIGHT_CACHE_DIR`, else `$XDG_CACHE_HOME/wheelwright`,
/// else `~/.cache/wheelwright`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WHEELWRIGHT_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("wheelwright");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/wheelwright"),
        None => std::env::temp_dir().join("wheelwright-cache"),
    }
}
