//! Checks a linked module before it is packaged, with errors that name the
//! problem: format and machine, the `PyInit_` export, imports limited to the
//! Python C API, and each platform's own rules.

mod elf;
mod macho;
mod pe;

use std::fmt;

use object::{Object, ObjectSymbol};
use serde::Serialize;

use crate::capi::CApi;
use crate::platform::Target;
use crate::pyversion::PyVersion;

/// What the module is expected to be.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// `PyInit_<leaf>`.
    pub init_symbol: &'a str,
    /// `None`: abi3, every import must be in the stable ABI; `Some(v)`: the
    /// module is for CPython `v` only.
    pub python: Option<PyVersion>,
    /// macOS deployment target the wheel will be tagged with.
    pub macos_min: &'a str,
}

/// What verification learned about a good module.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verified {
    /// Python C-API symbols the module imports, sorted.
    pub imports: Vec<String>,
    /// Linux: the newest `GLIBC_x.y` symbol version needed, if any.
    pub glibc: Option<(u32, u32)>,
}

/// One thing wrong with a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not parseable as an object file at all.
    Unreadable(String),
    /// Wrong container format.
    WrongFormat {
        /// What the target needs.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// Not x86-64.
    WrongMachine(String),
    /// The init function is not exported.
    MissingInit {
        /// The symbol that should be there.
        expected: String,
        /// `PyInit_*` symbols exported instead.
        found: Vec<String>,
    },
    /// Imports that no CPython exports.
    NotCApi(Vec<String>),
    /// Imports outside the stable ABI in a module meant to be abi3.
    NotStable(Vec<String>),
    /// Imports that the targeted version's DLL lacks.
    NotInVersion(PyVersion, Vec<String>),
    /// Platform-specific: the message says it all.
    Other(String),
}

/// `` `a`, `b` and `c` `` for messages.
pub fn list(symbols: &[String]) -> String {
    let quoted: Vec<String> = symbols.iter().map(|s| format!("`{s}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

/// "which is" or "which are", for `n` things.
pub fn which(n: usize) -> &'static str {
    if n == 1 {
        "which is"
    } else {
        "which are"
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable(e) => write!(f, "cannot read the module: {e}"),
            Problem::WrongFormat { expected, found } => {
                write!(f, "is {found}, expected {expected}")
            }
            Problem::WrongMachine(m) => write!(f, "is for {m}, expected x86-64"),
            Problem::MissingInit { expected, found } if found.is_empty() => {
                write!(f, "does not export `{expected}`")
            }
            Problem::MissingInit { expected, found } => {
                write!(
                    f,
                    "does not export `{expected}` (it exports {}; the name must match the module's file name)",
                    list(found)
                )
            }
            Problem::NotCApi(s) => write!(f, "imports {}, {} not part of the Python C API", list(s), which(s.len())),
            Problem::NotStable(s) => write!(f, "imports {}, {} not in the stable ABI (abi3)", list(s), which(s.len())),
            Problem::NotInVersion(v, s) => {
                write!(f, "imports {}, {} not exported by Python {v}", list(s), which(s.len()))
            }
            Problem::Other(m) => f.write_str(m),
        }
    }
}

/// Everything wrong with one module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct VerifyError(pub Vec<Problem>);

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Problem::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Verifies a linked module for `target`.
pub fn verify(target: Target, bytes: &[u8], expect: &Expect<'_>, capi: &CApi) -> Result<Verified, VerifyError> {
    let file = object::File::parse(bytes).map_err(|e| VerifyError(vec![Problem::Unreadable(e.to_string())]))?;
    let mut problems = Vec::new();
    let expected_format = match target {
        Target::Linux => object::BinaryFormat::Elf,
        Target::Macos => object::BinaryFormat::MachO,
        Target::Windows => object::BinaryFormat::Pe,
    };
    if file.format() != expected_format {
        let found = format!("{:?}", file.format());
        return Err(VerifyError(vec![Problem::WrongFormat { expected: format_name(target), found }]));
    }
    if file.architecture() != object::Architecture::X86_64 {
        problems.push(Problem::WrongMachine(format!("{:?}", file.architecture())));
    }

    let prefix = target.symbol_prefix();
    let exports: Vec<String> = file
        .exports()
        .and_then(|exports| exports.collect::<object::Result<Vec<_>>>())
        .map_err(|e| VerifyError(vec![Problem::Unreadable(e.to_string())]))?
        .iter()
        .map(|e| symbol_name(e.name()).trim_start_matches(prefix).to_string())
        .collect();
    if !exports.iter().any(|e| e == expect.init_symbol) {
        let found = exports.iter().filter(|e| e.starts_with("PyInit_")).cloned().collect();
        problems.push(Problem::MissingInit { expected: expect.init_symbol.to_string(), found });
    }

    let mut verified = Verified::default();
    let platform = match target {
        Target::Linux => elf::check(&file, bytes, &mut verified),
        Target::Macos => macho::check(&file, bytes, expect),
        Target::Windows => pe::check(&file, bytes, expect),
    };
    problems.extend(platform);

    let mut imports: Vec<String> = file
        .imports()
        .and_then(|imports| imports.collect::<object::Result<Vec<_>>>())
        .map_err(|e| VerifyError(vec![Problem::Unreadable(e.to_string())]))?
        .iter()
        .map(|i| symbol_name(i.name()))
        .map(|n| n.strip_prefix(prefix).map(str::to_string).unwrap_or(n))
        .collect();
    imports.sort();
    imports.dedup();
    // ld64 binds lazy stubs through dyld's own helper, which every process has.
    imports.retain(|name| !(target == Target::Macos && name == "dyld_stub_binder"));
    problems.extend(check_imports(&imports, expect.python, capi));
    verified.imports = imports;

    if problems.is_empty() {
        Ok(verified)
    } else {
        Err(VerifyError(problems))
    }
}

/// Every import must be C API; abi3 modules only stable ABI; version-specific
/// modules only what that version exports.
pub fn check_imports(imports: &[String], python: Option<PyVersion>, capi: &CApi) -> Vec<Problem> {
    let mut problems = Vec::new();
    let foreign: Vec<String> = imports.iter().filter(|s| !capi.is_capi(s)).cloned().collect();
    let known: Vec<&String> = imports.iter().filter(|s| capi.is_capi(s)).collect();
    if !foreign.is_empty() {
        problems.push(Problem::NotCApi(foreign));
    }
    match python {
        None => {
            let unstable: Vec<String> = known.into_iter().filter(|s| !capi.is_stable(s)).cloned().collect();
            if !unstable.is_empty() {
                problems.push(Problem::NotStable(unstable));
            }
        }
        Some(v) => {
            let missing: Vec<String> = known.into_iter().filter(|s| !capi.in_version(v, s)).cloned().collect();
            if !missing.is_empty() {
                problems.push(Problem::NotInVersion(v, missing));
            }
        }
    }
    problems
}

/// The undefined symbols of an assembled object, as C names (without the
/// Mach-O underscore and the Windows `__imp_` prefix): what the module will import.
pub fn object_imports(target: Target, bytes: &[u8]) -> Result<Vec<String>, String> {
    let file = object::File::parse(bytes).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = file
        .symbols()
        .filter(|s| s.is_undefined() && s.is_global())
        .filter_map(|s| s.name().ok().map(str::to_string))
        .map(|n| {
            let n = n.strip_prefix(target.symbol_prefix()).map(str::to_string).unwrap_or(n);
            n.strip_prefix("__imp_").map(str::to_string).unwrap_or(n)
        })
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The newest `GLIBC_x.y` symbol version an ELF shared object needs: what
/// its manylinux tag is computed from.
pub fn glibc_requirement(bytes: &[u8]) -> Result<Option<(u32, u32)>, String> {
    let elf = object::read::elf::ElfFile64::<object::LittleEndian>::parse(bytes).map_err(|e| e.to_string())?;
    elf::glibc_needed(&elf, bytes).map_err(|e| e.to_string())
}

/// A symbol name, or `#N` for a PE import or export by ordinal.
fn symbol_name(name: object::read::NameOrOrdinal<&[u8]>) -> String {
    match name {
        object::read::NameOrOrdinal::Name(n) => String::from_utf8_lossy(n).into_owned(),
        object::read::NameOrOrdinal::Ordinal(o) => format!("#{o}"),
    }
}

fn format_name(target: Target) -> &'static str {
    match target {
        Target::Linux => "an ELF shared object",
        Target::Macos => "a Mach-O bundle",
        Target::Windows => "a PE DLL",
    }
}
