//! The three targets and what differs between them: nasm's output format and
//! defines, the link command, file names and wheel platform tags.

mod linux;
mod macos;
mod windows;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::process::Cmd;
use crate::pyversion::PyVersion;

/// A platform that wheelwright builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    /// ELF shared object for glibc Linux.
    #[serde(rename = "linux-x86_64")]
    Linux,
    /// Mach-O bundle for macOS.
    #[serde(rename = "macos-x86_64")]
    Macos,
    /// PE DLL (`.pyd`) for Windows.
    #[serde(rename = "windows-x86_64")]
    Windows,
}

/// A target name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown target `{0}` (expected linux-x86_64, macos-x86_64, windows-x86_64 or all)")]
pub struct UnknownTarget(pub String);

impl Target {
    /// Every target, in build order.
    pub const ALL: [Target; 3] = [Target::Linux, Target::Macos, Target::Windows];

    /// The name used in configuration, the CLI and the API.
    pub fn name(self) -> &'static str {
        match self {
            Target::Linux => "linux-x86_64",
            Target::Macos => "macos-x86_64",
            Target::Windows => "windows-x86_64",
        }
    }

    /// Parses a comma-separated list such as `linux-x86_64,windows-x86_64` or `all`.
    pub fn parse_list(list: &str) -> Result<Vec<Target>, UnknownTarget> {
        let mut targets = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                targets.extend(Target::ALL);
            } else {
                targets.push(part.parse()?);
            }
        }
        targets.sort();
        targets.dedup();
        Ok(targets)
    }

    /// Arguments that select nasm's output format and the defines the
    /// article's build used, so existing sources assemble unmodified.
    pub fn nasm_args(self, debug: bool) -> Vec<&'static str> {
        let (format, defines, debug_format): (_, &[&str], _) = match self {
            Target::Linux => ("elf64", &["-DPIE"], "dwarf"),
            Target::Macos => ("macho64", &["-DNOPIE", "-DMACOS", "--prefix", "_"], "dwarf"),
            Target::Windows => ("win64", &["-DNOPIE", "-DWINDOWS"], "cv8"),
        };
        let mut args = vec!["-f", format];
        args.extend_from_slice(defines);
        if debug {
            args.extend(["-g", "-F", debug_format]);
        }
        args
    }

    /// The extension of an object file.
    pub fn object_extension(self) -> &'static str {
        match self {
            Target::Windows => "obj",
            _ => "o",
        }
    }

    /// The prefix the platform's C compilers put before global symbol names.
    pub fn symbol_prefix(self) -> &'static str {
        match self {
            Target::Macos => "_",
            _ => "",
        }
    }

    /// The extension module's file name (`leaf` is the last part of the
    /// module's dotted name); `None` for `python` means abi3.
    pub fn module_filename(self, leaf: &str, python: Option<PyVersion>) -> String {
        match (self, python) {
            (Target::Linux, None) | (Target::Macos, None) => format!("{leaf}.abi3.so"),
            (Target::Linux, Some(v)) => format!("{leaf}.cpython-{}-x86_64-linux-gnu.so", v.nodot()),
            (Target::Macos, Some(v)) => format!("{leaf}.cpython-{}-darwin.so", v.nodot()),
            (Target::Windows, None) => format!("{leaf}.pyd"),
            (Target::Windows, Some(v)) => format!("{leaf}.cp{}-win_amd64.pyd", v.nodot()),
        }
    }

    /// Builds the link command for one module.
    pub fn link_command(self, tools: &LinkTools, job: &LinkJob<'_>) -> Cmd {
        let cmd = match self {
            Target::Linux => linux::link_command(tools, job),
            Target::Macos => macos::link_command(tools, job),
            Target::Windows => windows::link_command(tools, job),
        };
        match tools.flavor {
            LinkerFlavor::Lld => cmd.arg(lld_one_thread(self)),
            LinkerFlavor::Native => cmd,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = UnknownTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| UnknownTarget(s.to_string()))
    }
}

/// Which linker flavour to drive: LLVM's cross linkers, or the platform's own
/// when running on that platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkerFlavor {
    /// `ld.lld`, `ld64.lld`, `lld-link`.
    Lld,
    /// Apple's `ld` (macOS hosts) or MSVC's `link.exe` (Windows hosts).
    Native,
}

/// lld's option for one thread, in the spelling of the flavour the target's
/// linker drives (`lld-link` takes MSVC-style options): a module is one
/// small object, and lld's thread pool (three threads started and joined
/// per link) costs more than it saves, ~4 ms of wall time per link on the
/// 2-core host of BENCHMARKS.md. The output is the same bytes with any
/// number of threads. The toolchain's lld is 19 (TOOLCHAIN.md), whose three
/// flavours take these spellings (checked); much older lld may not.
fn lld_one_thread(target: Target) -> &'static str {
    match target {
        Target::Windows => "/threads:1",
        Target::Linux | Target::Macos => "--threads=1",
    }
}

/// The linker to run for a target.
#[derive(Debug, Clone)]
pub struct LinkTools {
    /// Path of the linker.
    pub linker: PathBuf,
    /// Its flavour.
    pub flavor: LinkerFlavor,
}

/// One link: object in, module out.
#[derive(Debug, Clone)]
pub struct LinkJob<'a> {
    /// The object file.
    pub object: &'a Path,
    /// The module to write.
    pub output: &'a Path,
    /// `PyInit_<leaf>`, the one symbol to export.
    pub init_symbol: &'a str,
    /// Windows: the import library for python3.dll or python3XY.dll.
    pub import_library: Option<&'a Path>,
    /// macOS: the deployment target, e.g. `10.9`.
    pub macos_min: &'a str,
    /// Keep debug information.
    pub debug: bool,
    /// Where the linker writes its map, for [`crate::lines`] (it does not
    /// change the module's bytes).
    pub map: Option<&'a Path>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lld_links_on_one_thread_in_its_flavours_spelling_and_native_linkers_are_left_alone() {
        let job = LinkJob {
            object: Path::new("m.o"),
            output: Path::new("m.out"),
            init_symbol: "PyInit_m",
            import_library: None,
            macos_min: "10.9",
            debug: false,
            map: None,
        };
        let last = |target: Target, flavor| {
            let cmd = target.link_command(&LinkTools { linker: "lld".into(), flavor }, &job);
            cmd.args.last().cloned().unwrap_or_default()
        };
        assert_eq!(last(Target::Linux, LinkerFlavor::Lld), "--threads=1");
        assert_eq!(last(Target::Macos, LinkerFlavor::Lld), "--threads=1");
        assert_eq!(last(Target::Windows, LinkerFlavor::Lld), "/threads:1");
        assert_eq!(last(Target::Macos, LinkerFlavor::Native), "m.o");
        assert_eq!(last(Target::Windows, LinkerFlavor::Native), "m.o");
    }

    #[test]
    fn parses_target_lists() {
        assert_eq!(Target::parse_list("all").unwrap(), Target::ALL.to_vec());
        assert_eq!(
            Target::parse_list("windows-x86_64, linux-x86_64,linux-x86_64").unwrap(),
            vec![Target::Linux, Target::Windows]
        );
        assert_eq!(
            Target::parse_list("linux-x86_64,arm").unwrap_err().to_string(),
            "unknown target `arm` (expected linux-x86_64, macos-x86_64, windows-x86_64 or all)"
        );
    }

    #[test]
    fn module_filenames_follow_each_platforms_suffixes() {
        let v311 = Some(PyVersion::new(3, 11));
        assert_eq!(Target::Linux.module_filename("m", None), "m.abi3.so");
        assert_eq!(Target::Linux.module_filename("m", v311), "m.cpython-311-x86_64-linux-gnu.so");
        assert_eq!(Target::Macos.module_filename("m", None), "m.abi3.so");
        assert_eq!(Target::Macos.module_filename("m", v311), "m.cpython-311-darwin.so");
        assert_eq!(Target::Windows.module_filename("m", None), "m.pyd");
        assert_eq!(Target::Windows.module_filename("m", v311), "m.cp311-win_amd64.pyd");
    }

    #[test]
    fn nasm_arguments_match_the_articles_defines() {
        assert_eq!(Target::Linux.nasm_args(false), ["-f", "elf64", "-DPIE"]);
        assert_eq!(Target::Macos.nasm_args(false), ["-f", "macho64", "-DNOPIE", "-DMACOS", "--prefix", "_"]);
        assert_eq!(Target::Windows.nasm_args(true), ["-f", "win64", "-DNOPIE", "-DWINDOWS", "-g", "-F", "cv8"]);
    }
}
