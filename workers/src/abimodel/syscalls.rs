//! Refusing modules that talk to the kernel directly.
//!
//! The ABI models run a macOS or Windows module's code on the Linux kernel.
//! Calls into the C API are bridged to the host's CPython, but a raw
//! `syscall`, `sysenter` or `int 0x80`/`int 0x2e` would reach Linux with a
//! macOS or Windows system-call number and argument layout: the model cannot
//! give it the other kernel's semantics, so its result would say nothing
//! about the shipped module. (Neither platform supports raw system calls
//! from user code anyway: Windows renumbers them between builds, and Apple
//! keeps only `libSystem` stable.) Such a module is refused before its tests
//! run, with each instruction and its `.asm` line as the reason.
//!
//! The module's executable sections are decoded by linear sweep (iced-x86's
//! decoder, from each section's first byte to its last). Code the sweep does
//! not reach through real control flow (data bytes inside `.text`) is decoded
//! too, so such bytes can be reported as an instruction; nasm modules keep
//! their data in data sections, and a false refusal names the line, so the
//! author sees the bytes in question.

use std::path::Path;

use iced_x86::{Code, Decoder, DecoderOptions};
use object::{Object, ObjectSection, SectionKind};

use super::Model;
use crate::lines::{ModuleLines, SourceDirs};
use crate::platform::Target;
use crate::project::{Module, Project};
use crate::pyversion::PyVersion;
use crate::readback::Root;
use crate::smoke::ModuleSymbols;

/// The most bytes of one module read from a wheel.
const MODULE_MAX: u64 = 256 << 20;

/// Why a module could not be examined.
#[derive(Debug, thiserror::Error)]
pub enum SyscallsError {
    /// The module is not an object file the `object` crate reads.
    #[error("cannot read the module {module}: {why}")]
    Module {
        /// The module's file name.
        module: String,
        /// What went wrong.
        why: String,
    },
    /// The wheel could not be opened or read.
    #[error("cannot read the wheel {wheel}: {why}")]
    Wheel {
        /// The wheel's file name.
        wheel: String,
        /// What went wrong.
        why: String,
    },
}

/// One instruction that enters the kernel directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSyscall {
    /// Its address as linked (Mach-O from 0, PE at the preferred base).
    pub address: u64,
    /// The instruction as nasm spells it: `syscall`, `sysenter`, `int 0x80`.
    pub instruction: &'static str,
}

/// Every raw system-call instruction in the executable sections of a linked
/// module (`bytes`: a Mach-O bundle, a PE DLL or an ELF object), by address.
pub fn find(bytes: &[u8]) -> Result<Vec<RawSyscall>, object::Error> {
    let file = object::File::parse(bytes)?;
    let mut found = Vec::new();
    for section in file.sections().filter(|s| s.kind() == SectionKind::Text) {
        found.extend(in_code(section.data()?, section.address()));
    }
    found.sort_by_key(|s| s.address);
    Ok(found)
}

/// Linear sweep over `code`, whose first byte is at `address`.
fn in_code(code: &[u8], address: u64) -> Vec<RawSyscall> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut found = Vec::new();
    for instruction in &mut decoder {
        let name = match instruction.code() {
            Code::Syscall => "syscall",
            Code::Sysenter => "sysenter",
            Code::Int_imm8 if instruction.immediate8() == 0x80 => "int 0x80",
            // Windows' historical system-call gate.
            Code::Int_imm8 if instruction.immediate8() == 0x2e => "int 0x2e",
            _ => continue,
        };
        found.push(RawSyscall { address: instruction.ip(), instruction: name });
    }
    found
}

/// The refusal for `model` when `found` (in `module`, whose lines are
/// `lines` when known) is not empty: what the reason of the target's test
/// runs says instead of results.
pub fn refusal(model: Model, module: &str, found: &[RawSyscall], lines: Option<&ModuleLines>) -> Option<String> {
    if found.is_empty() {
        return None;
    }
    let places: Vec<String> = found
        .iter()
        .map(|s| match lines.and_then(|l| l.at_address(s.address)) {
            Some(line) => format!("`{}` at {line}", s.instruction),
            None => format!("`{}` at {:#x} (no line information)", s.instruction, s.address),
        })
        .collect();
    Some(format!(
        "not run: {module} makes raw system calls, which the {} model cannot give {} kernel semantics: {}",
        model_name(model),
        kernel(model),
        places.join("; ")
    ))
}

/// One module as the wheel ships it: (module, path in the wheel, bytes).
type Shipped<'a> = (&'a Module, String, Vec<u8>);

/// The model as the labels name it.
fn model_name(model: Model) -> &'static str {
    match model {
        Model::Macos => "macOS x86-64 ABI",
        Model::Windows => "Windows x64 ABI",
    }
}

/// The kernel whose system calls the module's code expects.
fn kernel(model: Model) -> &'static str {
    match model {
        Model::Macos => "macOS",
        Model::Windows => "Windows",
    }
}

/// What the smoke step needs to examine one wheel of a target.
#[derive(Debug)]
pub struct WheelCheck<'a> {
    /// The target (macOS or Windows) and its model.
    pub target: Target,
    /// The model its modules would run under.
    pub model: Model,
    /// The wheel as shipped.
    pub wheel: &'a Path,
    /// The wheel's Python version (`None`: abi3).
    pub python: Option<PyVersion>,
    /// The project: its modules, root and source folder.
    pub project: &'a Project,
    /// The target's work directory (objects, listings, maps).
    pub target_dir: &'a Path,
    /// The engine's include folder (`wheelwright.inc`).
    pub include_dir: &'a Path,
    /// The build's work directory, through which everything nasm and the
    /// linker wrote is read back.
    pub root: &'a Root,
}

impl WheelCheck<'_> {
    /// The wheel's modules as shipped: (module, path in the wheel, bytes).
    fn shipped(&self) -> Result<Vec<Shipped<'_>>, SyscallsError> {
        let wheel_name = self.wheel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let wheel_err = |why: String| SyscallsError::Wheel { wheel: wheel_name.clone(), why };
        let file = std::fs::File::open(self.wheel).map_err(|e| wheel_err(e.to_string()))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| wheel_err(e.to_string()))?;
        let mut out = Vec::new();
        for module in &self.project.modules {
            let filename = self.target.module_filename(module.leaf(), self.python);
            let member = crate::wheel::slash_path(&module.package_dir().join(&filename));
            let mut entry = zip.by_name(&member).map_err(|e| wheel_err(format!("{member}: {e}")))?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, MODULE_MAX), &mut bytes)
                .map_err(|e| wheel_err(e.to_string()))?;
            drop(entry);
            out.push((module, member, bytes));
        }
        Ok(out)
    }

    /// The refusal for the first module of the wheel that makes raw system
    /// calls, or `None` when none does.
    pub fn refusal(&self) -> Result<Option<String>, SyscallsError> {
        for (module, member, bytes) in self.shipped()? {
            let found =
                find(&bytes).map_err(|e| SyscallsError::Module { module: member.clone(), why: e.to_string() })?;
            if found.is_empty() {
                continue;
            }
            let lines = self.module_lines(module).map(|(lines, _)| lines);
            return Ok(refusal(self.model, &member, &found, lines.as_ref()));
        }
        Ok(None)
    }

    /// What the crash report needs to symbolise an address in each of the
    /// wheel's modules under the model (see `smoke::symbolise_under_model`).
    pub fn module_symbols(&self) -> Result<Vec<ModuleSymbols>, SyscallsError> {
        let mut out = Vec::new();
        for (module, member, bytes) in self.shipped()? {
            let name = member.rsplit('/').next().unwrap_or(&member).to_string();
            let (lines, object) = self.module_lines(module).unzip();
            let mut symbols = ModuleSymbols::from_module(&name, self.target, &bytes, lines)
                .map_err(|e| SyscallsError::Module { module: member.clone(), why: e.to_string() })?;
            // A PE image has no symbol table: the object's, placed by the map.
            if let Some(object) = object {
                symbols.add_object_symbols(&object);
            }
            out.push(symbols);
        }
        Ok(out)
    }

    /// The module's line table from the build's listing and map (read back
    /// through [`Root`]: the sandboxed tools wrote them); `None` when any
    /// part is missing or unreadable, and the refusal then gives addresses.
    /// With it, the object's bytes.
    fn module_lines(&self, module: &Module) -> Option<(ModuleLines, Vec<u8>)> {
        let variant = self.python.map_or("abi3".to_string(), |v| format!("cp{}", v.nodot()));
        let dirs = SourceDirs::for_module(self.project, module, self.include_dir);
        ModuleLines::from_work_dir(self.root, self.target, self.target_dir, &variant, &module.name, &dirs).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_kernel_entry_by_linear_sweep() {
        // mov eax, 60 / syscall / nop / sysenter / int 0x80 / int 0x2e / int3 / ret
        let code = [0xB8, 60, 0, 0, 0, 0x0F, 0x05, 0x90, 0x0F, 0x34, 0xCD, 0x80, 0xCD, 0x2E, 0xCC, 0xC3];
        let found = in_code(&code, 0x1000);
        let got: Vec<(u64, &str)> = found.iter().map(|s| (s.address, s.instruction)).collect();
        assert_eq!(got, [(0x1005, "syscall"), (0x1008, "sysenter"), (0x100A, "int 0x80"), (0x100C, "int 0x2e")]);
    }

    #[test]
    fn bytes_inside_a_longer_instruction_are_not_a_syscall() {
        // mov eax, 0x050F050F: the immediate holds `0F 05` twice.
        assert_eq!(in_code(&[0xB8, 0x0F, 0x05, 0x0F, 0x05, 0xC3], 0), Vec::new());
    }

    #[test]
    fn no_refusal_without_raw_syscalls() {
        assert_eq!(refusal(Model::Windows, "m.pyd", &[], None), None);
    }

    #[test]
    fn a_refusal_names_the_model_the_instruction_and_its_address_without_lines() {
        let found = [RawSyscall { address: 0x180001010, instruction: "syscall" }];
        assert_eq!(
            refusal(Model::Windows, "m.pyd", &found, None).as_deref(),
            Some(
                "not run: m.pyd makes raw system calls, which the Windows x64 ABI model cannot give \
                 Windows kernel semantics: `syscall` at 0x180001010 (no line information)"
            )
        );
    }
}
