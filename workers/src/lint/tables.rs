//! The data rules: the `PyModuleDef` handed to `PyModule_Create2` (or
//! `PyModuleDef_Init`) is in a writable section, and the `PyMethodDef`
//! table its `m_methods` points at has 32-byte entries (`ml_name`,
//! `ml_meth`, `int ml_flags` and 4 bytes of zero padding, `ml_doc`), valid
//! `ml_flags` and an all-zero sentinel.

use std::collections::BTreeSet;

use super::object::{Obj, Place};
use super::{Raw, Rule};

/// `offsetof(PyModuleDef, m_methods)`.
const M_METHODS: u64 = 64;
/// `sizeof(PyMethodDef)`.
const ENTRY: u64 = 32;
/// A table longer than this is not a table.
const MAX_ENTRIES: u64 = 4096;

const METH_VARARGS: u32 = 0x1;
const METH_KEYWORDS: u32 = 0x2;
const METH_NOARGS: u32 = 0x4;
const METH_O: u32 = 0x8;
const METH_CLASS: u32 = 0x10;
const METH_STATIC: u32 = 0x20;
const METH_COEXIST: u32 = 0x40;
const METH_FASTCALL: u32 = 0x80;
const METH_METHOD: u32 = 0x200;

/// Whether `flags` is a calling convention CPython accepts, with optional
/// `METH_CLASS` or `METH_STATIC` and `METH_COEXIST`.
pub(crate) fn valid_flags(flags: u32) -> bool {
    let convention = flags & !(METH_CLASS | METH_STATIC | METH_COEXIST);
    let conventions = [
        METH_VARARGS,
        METH_VARARGS | METH_KEYWORDS,
        METH_NOARGS,
        METH_O,
        METH_FASTCALL,
        METH_FASTCALL | METH_KEYWORDS,
        METH_METHOD | METH_FASTCALL | METH_KEYWORDS,
    ];
    conventions.contains(&convention) && flags & (METH_CLASS | METH_STATIC) != (METH_CLASS | METH_STATIC)
}

fn raw(obj: &Obj, rule: Rule, sec: usize, offset: u64, message: String) -> Raw {
    let name = &obj.sections[sec].name;
    Raw { rule, section: name.clone(), offset, disassembly: format!("{name}+{offset:#x}"), message }
}

/// The data rules for each `PyModuleDef` the code hands to CPython.
pub(crate) fn check(obj: &Obj, moduledefs: &BTreeSet<(usize, u64)>) -> Vec<Raw> {
    let mut out = Vec::new();
    for &(sec, off) in moduledefs {
        let section = &obj.sections[sec];
        if !section.writable {
            out.push(raw(
                obj,
                Rule::ModuleDefReadOnly,
                sec,
                off,
                format!(
                    "this PyModuleDef is in the read-only section `{}`, and PyModule_Create2 writes into it \
                     (m_base): put it in `section .data`",
                    section.name
                ),
            ));
        }
        if let Some((_, Place::Local(ts, to))) = obj.relocation_in(sec, off + M_METHODS, off + M_METHODS + 8) {
            out.extend(methods(obj, *ts, *to));
        }
    }
    out
}

fn u32_at(data: &[u8], at: u64) -> Option<u32> {
    let at = at as usize;
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// The rules of one `PyMethodDef` table at `(sec, start)`.
fn methods(obj: &Obj, sec: usize, start: u64) -> Vec<Raw> {
    let section = &obj.sections[sec];
    let data = &section.data;
    let relocated = |a: u64, b: u64| obj.relocation_in(sec, a, b).is_some();
    let mut out = Vec::new();
    for i in 0..MAX_ENTRIES {
        let at = start + i * ENTRY;
        let Some(bytes) = data.get(at as usize..(at + ENTRY) as usize) else {
            let last = if i == 0 { start } else { at - ENTRY };
            out.push(raw(
                obj,
                Rule::MethodDefSentinel,
                sec,
                last,
                "the PyMethodDef table runs to the end of its section without an all-zero sentinel entry: \
                 end it with 32 zero bytes (PYMETHOD_END)"
                    .into(),
            ));
            break;
        };
        let named = relocated(at, at + 8);
        if !named {
            let zero = bytes.iter().all(|b| *b == 0) && !relocated(at, at + ENTRY);
            if !zero {
                out.push(raw(
                    obj,
                    Rule::MethodDefSentinel,
                    sec,
                    if i == 0 { at } else { at - ENTRY },
                    "the PyMethodDef table does not end with an all-zero sentinel entry (32 zero bytes): \
                     CPython reads past its last entry; end it with PYMETHOD_END"
                        .into(),
                ));
            }
            break;
        }
        // Pointers at 0, 8 and 24 only; ml_flags an int, then zero padding.
        let misplaced = relocated(at + 16, at + 24)
            || obj.sections[sec].relocations.range(at..at + ENTRY).any(|(o, _)| !(o - at).is_multiple_of(8))
            || !relocated(at + 8, at + 16);
        let padding = u32_at(data, at + 20).unwrap_or(0);
        if misplaced || padding != 0 {
            out.push(raw(
                obj,
                Rule::MethodDefLayout,
                sec,
                at,
                "this PyMethodDef entry is not laid out as CPython reads it: 32 bytes, ml_name and ml_meth \
                 (dq), ml_flags (dd) followed by 4 bytes of zero padding (dd 0), ml_doc (dq); use PYMETHOD"
                    .into(),
            ));
            break;
        }
        let flags = u32_at(data, at + 16).unwrap_or(0);
        if !valid_flags(flags) {
            out.push(raw(
                obj,
                Rule::MethodDefFlags,
                sec,
                at,
                format!(
                    "ml_flags {flags:#x} is not a calling convention CPython accepts: one of METH_VARARGS, \
                     METH_VARARGS|METH_KEYWORDS, METH_NOARGS, METH_O, METH_FASTCALL[|METH_KEYWORDS], \
                     optionally with METH_CLASS or METH_STATIC"
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calling_conventions_and_their_modifiers() {
        assert!(valid_flags(METH_VARARGS));
        assert!(valid_flags(METH_VARARGS | METH_KEYWORDS));
        assert!(valid_flags(METH_O | METH_COEXIST));
        assert!(valid_flags(METH_FASTCALL | METH_KEYWORDS | METH_CLASS));
        assert!(!valid_flags(0));
        assert!(!valid_flags(METH_NOARGS | METH_O));
        assert!(!valid_flags(METH_KEYWORDS));
        assert!(!valid_flags(METH_O | METH_CLASS | METH_STATIC));
    }
}
