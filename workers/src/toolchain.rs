//! Finding the tools a build needs, with their versions, and saying what is
//! missing and which Debian package provides it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::platform::{LinkTools, LinkerFlavor, Target};

/// One tool wheelwright uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// The assembler.
    Nasm,
    /// ELF linker.
    LdLld,
    /// Mach-O linker.
    Ld64Lld,
    /// COFF/PE linker.
    LldLink,
    /// Import library generator driven by python3-dll-a.
    LlvmDlltool,
    /// The sandbox.
    Bwrap,
    /// Debugger used for crash reports.
    Gdb,
    /// Fetches pushed commits for the GitHub webhook.
    Git,
}

impl Tool {
    /// Every tool, in the order `doctor` lists them.
    pub const ALL: [Tool; 8] =
        [Tool::Nasm, Tool::LdLld, Tool::Ld64Lld, Tool::LldLink, Tool::LlvmDlltool, Tool::Bwrap, Tool::Gdb, Tool::Git];

    /// The command name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Nasm => "nasm",
            Tool::LdLld => "ld.lld",
            Tool::Ld64Lld => "ld64.lld",
            Tool::LldLink => "lld-link",
            Tool::LlvmDlltool => "llvm-dlltool",
            Tool::Bwrap => "bwrap",
            Tool::Gdb => "gdb",
            Tool::Git => "git",
        }
    }

    /// The Debian package that provides it.
    pub fn package(self) -> &'static str {
        match self {
            Tool::Nasm => "nasm",
            Tool::LdLld | Tool::Ld64Lld | Tool::LldLink => "lld-19",
            Tool::LlvmDlltool => "llvm (or llvm-19)",
            Tool::Bwrap => "bubblewrap",
            Tool::Gdb => "gdb",
            Tool::Git => "git",
        }
    }

    /// What it is for, for `doctor`.
    pub fn purpose(self) -> &'static str {
        match self {
            Tool::Nasm => "assembles every target",
            Tool::LdLld => "links linux-x86_64",
            Tool::Ld64Lld => "links macos-x86_64",
            Tool::LldLink => "links windows-x86_64",
            Tool::LlvmDlltool => "makes python3.lib for windows-x86_64",
            Tool::Bwrap => "sandboxes untrusted steps",
            Tool::Gdb => "explains crashes (optional)",
            Tool::Git => "fetches pushed commits for the GitHub webhook",
        }
    }

    /// Flag that prints the version.
    fn version_flag(self) -> &'static str {
        match self {
            Tool::Nasm => "-v",
            _ => "--version",
        }
    }
}

/// A tool that was found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// Which tool.
    pub tool: Tool,
    /// Where.
    pub path: PathBuf,
    /// First line of its version output (empty until [`Toolchain::with_versions`]).
    pub version: String,
}

/// The tools found on this host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Toolchain {
    /// Found tools.
    pub found: Vec<Found>,
    /// Tools not found.
    pub missing: Vec<Tool>,
}

/// Where Debian puts versioned LLVM tools, newest first.
fn llvm_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("llvm-")))
        .map(|p| p.join("bin"))
        .collect();
    dirs.sort_by_key(|p| std::cmp::Reverse(llvm_major(p)));
    dirs
}

fn llvm_major(dir: &Path) -> u32 {
    dir.parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("llvm-"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Finds one tool: on `PATH` by its plain name, then Debian's versioned names
/// (`ld64.lld-19`), then `/usr/lib/llvm-*/bin`.
pub fn find(tool: Tool) -> Option<PathBuf> {
    let name = tool.name();
    if let Ok(path) = which::which(name) {
        return Some(path);
    }
    let llvm = llvm_dirs();
    for dir in &llvm {
        if let Some(version) = llvm_major_str(dir) {
            if let Ok(path) = which::which(format!("{name}-{version}")) {
                return Some(path);
            }
        }
    }
    llvm.iter().map(|dir| dir.join(name)).find(|p| p.is_file())
}

fn llvm_major_str(dir: &Path) -> Option<String> {
    Some(llvm_major(dir)).filter(|v| *v > 0).map(|v| v.to_string())
}

/// The first line of `tool --version`; for llvm-dlltool, which prints no
/// version, the LLVM release it belongs to.
pub fn version_of(tool: Tool, path: &Path) -> String {
    if tool == Tool::LlvmDlltool {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let release = real.ancestors().find_map(|dir| {
            let name = dir.file_name()?.to_str()?;
            name.strip_prefix("llvm-").filter(|v| v.chars().all(|c| c.is_ascii_digit())).map(str::to_string)
        });
        return release.map_or_else(|| "LLVM (version not reported)".to_string(), |v| format!("LLVM {v}"));
    }
    Command::new(path)
        .arg(tool.version_flag())
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

impl Toolchain {
    /// Looks for every tool. Done once by whoever runs builds (the daemon at
    /// start, the CLI per run) and passed to each in
    /// [`crate::pipeline::BuildOptions::toolchain`]. Versions are left empty:
    /// asking every tool costs about 100 ms; see [`Toolchain::with_versions`].
    pub fn discover() -> Self {
        let mut chain = Toolchain::default();
        for tool in Tool::ALL {
            match find(tool) {
                Some(path) => chain.found.push(Found { tool, path, version: String::new() }),
                None => chain.missing.push(tool),
            }
        }
        chain
    }

    /// Asks every found tool for its version (for `doctor` and cache keys).
    pub fn with_versions(mut self) -> Self {
        for found in &mut self.found {
            found.version = version_of(found.tool, &found.path);
        }
        self
    }

    /// Where `tool` is, if found.
    pub fn path(&self, tool: Tool) -> Option<&Path> {
        self.found.iter().find(|f| f.tool == tool).map(|f| f.path.as_path())
    }

    /// A string that changes when any tool changes: part of cache keys.
    pub fn fingerprint(&self) -> String {
        self.found.iter().map(|f| format!("{}={}", f.tool.name(), f.version)).collect::<Vec<_>>().join(";")
    }
}

/// The linker for `target` on this host: the platform's own when running on
/// that platform and found, else LLVM's.
pub fn linker_for(target: Target, chain: &Toolchain) -> Option<LinkTools> {
    let native = match target {
        Target::Macos if cfg!(target_os = "macos") => which::which("ld").ok(),
        Target::Windows if cfg!(windows) => which::which("link.exe").ok(),
        _ => None,
    };
    if let Some(linker) = native {
        return Some(LinkTools { linker, flavor: LinkerFlavor::Native });
    }
    let tool = match target {
        Target::Linux => Tool::LdLld,
        Target::Macos => Tool::Ld64Lld,
        Target::Windows => Tool::LldLink,
    };
    chain.path(tool).map(|p| LinkTools { linker: p.to_path_buf(), flavor: LinkerFlavor::Lld })
}

/// The tools `target` cannot be built without.
pub fn required_for(target: Target) -> &'static [Tool] {
    match target {
        Target::Linux => &[Tool::Nasm, Tool::LdLld],
        Target::Macos => &[Tool::Nasm, Tool::Ld64Lld],
        Target::Windows => &[Tool::Nasm, Tool::LldLink, Tool::LlvmDlltool],
    }
}
