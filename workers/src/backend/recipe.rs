//! What the build backend runs on each host: the host's target, the tools
//! it needs (with how to install each), and the assemble and link argument
//! vectors — the engine's own native-linker recipes ([`Target::nasm_args`],
//! [`Target::link_command`]), chosen by a pure function so that the macOS
//! and Windows choices are tested on Linux.

use std::path::Path;

use serde::Serialize;

use crate::platform::{LinkJob, LinkTools, LinkerFlavor, Target};

/// The operating system the backend runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// Linux (glibc).
    Linux,
    /// macOS.
    Macos,
    /// Windows.
    Windows,
}

/// A tool the backend needs: any one of `any_of` on `PATH` will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tool {
    /// Program names, the preferred first.
    pub any_of: Vec<&'static str>,
    /// The message for when none is found: names the tool and how to install it.
    pub missing: String,
}

/// The host's recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The target built for.
    pub target: Target,
    /// Tools needed, in the order they run.
    pub tools: Vec<Tool>,
    /// `nasm` argv for `m.asm`.
    pub assemble: Vec<String>,
    /// Linker argv for the object of `m.asm` (module `m`).
    pub link: Vec<String>,
}

fn tool(any_of: &[&'static str], what: &str, install: &str) -> Tool {
    Tool {
        any_of: any_of.to_vec(),
        missing: format!(
            "wheelwright-backend needs {what} to build this project from source, and none of {} is on PATH. \
             Install it: {install}",
            any_of.join(", ")
        ),
    }
}

/// The recipe for `host`: pure, so that every host's choice is testable anywhere.
pub fn recipe(host: Host) -> Recipe {
    let nasm_install = match host {
        Host::Linux => "`sudo apt-get install nasm` (Debian, Ubuntu) or `sudo dnf install nasm` (Fedora)",
        Host::Macos => "`brew install nasm`",
        Host::Windows => "`winget install NASM.NASM` or `choco install nasm`",
    };
    let nasm = tool(&["nasm"], "the assembler nasm", nasm_install);
    let (target, linker, linker_tool, object, output) = match host {
        Host::Linux => (
            Target::Linux,
            LinkTools { linker: "ld.lld".into(), flavor: LinkerFlavor::Lld },
            tool(
                &["ld.lld", "ld"],
                "a linker",
                "`sudo apt-get install lld` (Debian, Ubuntu) or `sudo dnf install lld` (Fedora)",
            ),
            "m.o",
            "m.abi3.so",
        ),
        Host::Macos => (
            Target::Macos,
            LinkTools { linker: "ld".into(), flavor: LinkerFlavor::Native },
            tool(&["ld"], "Apple's linker ld", "`xcode-select --install` (the Command Line Tools)"),
            "m.o",
            "m.abi3.so",
        ),
        Host::Windows => (
            Target::Windows,
            LinkTools { linker: "link.exe".into(), flavor: LinkerFlavor::Native },
            tool(
                &["link.exe", "lld-link"],
                "a linker (MSVC's link.exe or LLVM's lld-link)",
                "`winget install Microsoft.VisualStudio.2022.BuildTools` (link.exe, from a Developer prompt) \
                 or `winget install LLVM.LLVM` / `choco install llvm` (lld-link)",
            ),
            "m.obj",
            "m.pyd",
        ),
    };
    let mut assemble: Vec<String> = vec!["nasm".into()];
    assemble.extend(target.nasm_args(false).into_iter().map(String::from));
    assemble.extend(["-o".into(), object.into(), "m.asm".into()]);
    let job = LinkJob {
        object: Path::new(object),
        output: Path::new(output),
        init_symbol: "PyInit_m",
        import_library: (host == Host::Windows).then_some(Path::new("python3.lib")),
        macos_min: "10.9",
        debug: false,
        map: None,
    };
    let cmd = target.link_command(&linker, &job);
    let mut link = vec![cmd.program.to_string_lossy().into_owned()];
    link.extend(cmd.args);
    Recipe { target, tools: vec![nasm, linker_tool], assemble, link }
}

/// The first tool of `recipe` that `found` (a `PATH` look-up) finds under
/// none of its names: its message.
pub fn missing_tool(recipe: &Recipe, found: impl Fn(&str) -> bool) -> Option<&str> {
    recipe.tools.iter().find(|t| !t.any_of.iter().any(|name| found(name))).map(|t| t.missing.as_str())
}

/// The tools of every host, as JSON keyed by Python's `sys.platform`, for
/// the hooks to check before they run the engine.
pub fn tools_json() -> String {
    let table: std::collections::BTreeMap<&str, Vec<Tool>> = [
        ("linux", recipe(Host::Linux).tools),
        ("darwin", recipe(Host::Macos).tools),
        ("win32", recipe(Host::Windows).tools),
    ]
    .into_iter()
    .collect();
    serde_json::to_string(&table).expect("plain strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macos_assembles_macho64_and_links_a_bundle_with_apples_ld() {
        let r = recipe(Host::Macos);
        assert_eq!(r.target, Target::Macos);
        assert_eq!(r.assemble.join(" "), "nasm -f macho64 -DNOPIE -DMACOS --prefix _ -o m.o m.asm");
        assert_eq!(
            r.link.join(" "),
            "ld -arch x86_64 -platform_version macos 10.9 10.9 -bundle -undefined dynamic_lookup \
             -exported_symbol _PyInit_m -o m.abi3.so m.o"
        );
        assert_eq!(r.tools.iter().map(|t| t.any_of.clone()).collect::<Vec<_>>(), [vec!["nasm"], vec!["ld"]]);
    }

    #[test]
    fn windows_assembles_win64_and_links_a_dll_with_link_exe_or_lld_link() {
        let r = recipe(Host::Windows);
        assert_eq!(r.assemble.join(" "), "nasm -f win64 -DNOPIE -DWINDOWS -o m.obj m.asm");
        assert_eq!(r.link[0], "link.exe");
        assert!(r.link.iter().any(|a| a == "/DLL") && r.link.iter().any(|a| a == "/EXPORT:PyInit_m"), "{:?}", r.link);
        assert!(r.link.iter().any(|a| a == "/OUT:m.pyd") && r.link.iter().any(|a| a == "python3.lib"));
        assert_eq!(r.tools[1].any_of, ["link.exe", "lld-link"]);
        // Either linker will do; without both, the message says how to get one.
        assert_eq!(missing_tool(&r, |n| n == "nasm" || n == "lld-link"), None);
        let message = missing_tool(&r, |n| n == "nasm").unwrap();
        assert!(message.contains("link.exe, lld-link") && message.contains("winget install LLVM.LLVM"), "{message}");
    }

    #[test]
    fn a_missing_nasm_is_named_with_the_install_line_for_the_host() {
        for (host, install) in [
            (Host::Linux, "sudo apt-get install nasm"),
            (Host::Macos, "brew install nasm"),
            (Host::Windows, "choco install nasm"),
        ] {
            let r = recipe(host);
            let message = missing_tool(&r, |n| n != "nasm").unwrap();
            assert!(message.contains("none of nasm is on PATH") && message.contains(install), "{message}");
        }
        assert_eq!(missing_tool(&recipe(Host::Linux), |n| n == "nasm" || n == "ld"), None);
        assert!(recipe(Host::Linux).assemble.starts_with(&["nasm".into(), "-f".into(), "elf64".into()]));
    }
}
