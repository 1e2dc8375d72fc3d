//! Wheel tags (PEP 425) and file names (PEP 427, PEP 625).

use crate::platform::Target;
use crate::pyversion::PyVersion;

/// glibc versions of the manylinux policies for x86-64, oldest first
/// (PEP 600; 2.5 and 2.12 are manylinux1 and manylinux2010).
const MANYLINUX_POLICIES: [u32; 14] = [5, 12, 17, 24, 27, 28, 31, 34, 35, 36, 37, 38, 39, 40];

/// The Linux platform tag, computed like auditwheel: the lowest manylinux
/// policy that covers the newest `GLIBC_2.x` the module needs, with its
/// legacy alias when it has one.
pub fn manylinux_tag(glibc: Option<(u32, u32)>) -> String {
    let needed = match glibc {
        None => 5,
        Some((major, minor)) if major < 2 => minor.min(5),
        Some((2, minor)) => minor,
        Some(_) => u32::MAX,
    };
    let Some(&policy) = MANYLINUX_POLICIES.iter().find(|p| **p >= needed) else {
        return "linux_x86_64".to_string();
    };
    let tag = format!("manylinux_2_{policy}_x86_64");
    match policy {
        5 => format!("{tag}.manylinux1_x86_64"),
        12 => format!("{tag}.manylinux2010_x86_64"),
        17 => format!("{tag}.manylinux2014_x86_64"),
        _ => tag,
    }
}

/// The platform tag of a wheel for `target`.
pub fn platform_tag(target: Target, glibc: Option<(u32, u32)>, macos_min: &str) -> String {
    match target {
        Target::Linux => manylinux_tag(glibc),
        Target::Macos => format!("macosx_{}_x86_64", macos_min.replace('.', "_")),
        Target::Windows => "win_amd64".to_string(),
    }
}

/// Python and ABI tags: `cp3X-abi3` for abi3 (X the oldest admitted
/// version), `cp3XY-cp3XY` otherwise.
pub fn python_abi_tags(abi3_min: PyVersion, python: Option<PyVersion>) -> (String, String) {
    match python {
        None => (format!("cp{}", abi3_min.nodot()), "abi3".to_string()),
        Some(v) => (format!("cp{}", v.nodot()), format!("cp{}", v.nodot())),
    }
}

/// The name as it appears in wheel and sdist file names: lowercase, runs of
/// `-`, `_` and `.` replaced by one `_`.
pub fn filename_name(name: &str) -> String {
    let mut out = String::new();
    let mut last_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_sep {
                out.push('_');
            }
            last_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_sep = false;
        }
    }
    out
}

/// PEP 503 normalised name: lowercase, runs of `-`, `_`, `.` replaced by `-`.
pub fn normalize(name: &str) -> String {
    filename_name(name).replace('_', "-")
}

/// The version as it appears in file names (`-` is the field separator).
pub fn filename_version(version: &str) -> String {
    version.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manylinux_policy_covers_the_newest_glibc_needed() {
        assert_eq!(manylinux_tag(None), "manylinux_2_5_x86_64.manylinux1_x86_64");
        assert_eq!(manylinux_tag(Some((2, 2))), "manylinux_2_5_x86_64.manylinux1_x86_64");
        assert_eq!(manylinux_tag(Some((2, 14))), "manylinux_2_17_x86_64.manylinux2014_x86_64");
        assert_eq!(manylinux_tag(Some((2, 28))), "manylinux_2_28_x86_64");
        assert_eq!(manylinux_tag(Some((2, 32))), "manylinux_2_34_x86_64");
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(filename_name("Py.Mult--Fast"), "py_mult_fast");
        assert_eq!(normalize("Py.Mult__Fast"), "py-mult-fast");
        assert_eq!(python_abi_tags(PyVersion::new(3, 8), None), ("cp38".into(), "abi3".into()));
        assert_eq!(
            python_abi_tags(PyVersion::new(3, 8), Some(PyVersion::new(3, 12))),
            ("cp312".into(), "cp312".into())
        );
        assert_eq!(platform_tag(Target::Macos, None, "10.9"), "macosx_10_9_x86_64");
    }
}
