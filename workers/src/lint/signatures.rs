//! The C-API signatures the argument rules need: for each stable-ABI
//! function, its parameters as kinds and whether it is variadic.
//!
//! Read from the prototypes the Win64 model carries
//! (`win64_capi.py`'s `_PROTOTYPES`, one `Name(C types) -> C type` line per
//! function of `python3.def`): one list of the C API for the engine, kept in
//! one place.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::platform::Target;

const WIN64_CAPI: &str = include_str!("../abimodel/harness/_wheelwright_abimodel/win64_capi.py");

/// What a parameter is, as far as registers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// A pointer (also function pointers and handles).
    Pointer,
    /// A 64-bit integer (`Py_ssize_t`, `size_t`, `long long`, `int64_t`, ...).
    Int64,
    /// A C `long` or `unsigned long`: 64 bits on Linux and macOS, 32 on Windows.
    Long,
    /// A 32-bit or narrower integer.
    Int32,
    /// `double` or `float`: a vector register.
    Float,
}

impl Param {
    /// Whether the parameter fills a whole 64-bit register on `target`.
    pub fn is_64_bit(self, target: Target) -> bool {
        match self {
            Param::Pointer | Param::Int64 => true,
            Param::Long => target != Target::Windows,
            Param::Int32 | Param::Float => false,
        }
    }

    fn of(c_type: &str) -> Param {
        let t = c_type.trim().trim_start_matches("const ").trim();
        if t.contains('*') {
            return Param::Pointer;
        }
        match t {
            "long" | "unsigned long" => Param::Long,
            "Py_ssize_t" | "size_t" | "long long" | "unsigned long long" | "int64_t" | "uint64_t" | "PY_TIMEOUT_T"
            | "Py_hash_t" | "Py_uhash_t" => Param::Int64,
            "double" | "float" => Param::Float,
            "PyCapsule_Destructor" | "PyOS_sighandler_t" | "PyThread_type_lock" | "va_list" => Param::Pointer,
            _ => Param::Int32,
        }
    }
}

/// One function's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The fixed parameters, in order.
    pub params: Vec<Param>,
    /// Ends in `...`.
    pub variadic: bool,
}

impl Signature {
    /// The integer argument registers of the fixed parameters on `target`,
    /// with each one's kind (floats take vector registers: System V counts
    /// them apart, Win64 by position).
    pub fn integer_registers(&self, target: Target) -> Vec<(iced_x86::Register, Param)> {
        use iced_x86::Register::*;
        let mut out = Vec::new();
        if target == Target::Windows {
            for (param, reg) in self.params.iter().zip([RCX, RDX, R8, R9]) {
                if *param != Param::Float {
                    out.push((reg, *param));
                }
            }
        } else {
            let ints = self.params.iter().filter(|p| **p != Param::Float);
            out.extend([RDI, RSI, RDX, RCX, R8, R9].into_iter().zip(ints).map(|(r, p)| (r, *p)));
        }
        out
    }
}

/// The signature of the C-API function `name`, if it is in the stable ABI.
pub fn signature(name: &str) -> Option<&'static Signature> {
    static TABLE: OnceLock<HashMap<String, Signature>> = OnceLock::new();
    TABLE.get_or_init(|| parse(WIN64_CAPI)).get(name)
}

fn parse(source: &str) -> HashMap<String, Signature> {
    let block = source.split_once("_PROTOTYPES = \"\"\"").and_then(|(_, rest)| rest.split_once("\"\"\"")).map(|b| b.0);
    let mut table = HashMap::new();
    for line in block.unwrap_or("").lines() {
        let Some((name, rest)) = line.trim().split_once('(') else { continue };
        let Some((args, _)) = rest.rsplit_once(") ->") else { continue };
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, ch) in args.char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&args[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&args[start..]);
        let parts: Vec<&str> = parts.into_iter().map(str::trim).filter(|p| !p.is_empty() && *p != "void").collect();
        let variadic = parts.last() == Some(&"...");
        let params = parts.iter().filter(|p| **p != "...").map(|p| Param::of(p)).collect();
        table.insert(name.to_string(), Signature { params, variadic });
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prototypes_give_kinds_and_variadics() {
        let s = signature("PyLong_FromLongLong").unwrap();
        assert_eq!(s.params, [Param::Int64]);
        assert!(!s.variadic);
        let s = signature("PyArg_ParseTuple").unwrap();
        assert_eq!(s.params, [Param::Pointer, Param::Pointer]);
        assert!(s.variadic);
        assert_eq!(signature("PyLong_FromLong").unwrap().params, [Param::Long]);
        assert_eq!(signature("PyErr_Occurred").unwrap().params, []);
        assert!(signature("PyModule_Create2").is_some());
        assert!(signature("NoSuchFunction").is_none());
    }

    #[test]
    fn a_double_takes_no_integer_register_on_system_v_and_its_position_on_win64() {
        let s = Signature { params: vec![Param::Pointer, Param::Float, Param::Int64], variadic: false };
        use iced_x86::Register::*;
        assert_eq!(s.integer_registers(Target::Linux), [(RDI, Param::Pointer), (RSI, Param::Int64)]);
        assert_eq!(s.integer_registers(Target::Windows), [(RCX, Param::Pointer), (R8, Param::Int64)]);
    }
}
