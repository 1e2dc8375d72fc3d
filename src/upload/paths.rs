//! Paths that clients name: relative, inside the project, nothing odd.

use std::path::{Component, Path, PathBuf};

/// Deepest folder nesting accepted.
const MAX_DEPTH: usize = 32;

/// Longest part of a client's name quoted back in a message.
const SHOWN_CHARS: usize = 200;

/// A client's name as messages quote it: control characters escaped and at
/// most 200 characters, then `…`, however long the name was.
pub fn shown(name: &str) -> String {
    let mut out = String::new();
    for (count, c) in name.chars().enumerate() {
        if count == SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks a path from a client; the error says what is wrong with it.
pub fn safe_relative(name: &str) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("a file part has no file name (its path in the project)".into());
    }
    if name.contains('\0') || name.contains('\\') {
        return Err(format!("`{}` is not a plain relative path", shown(name)));
    }
    let path = Path::new(name);
    let name = shown(name);
    if path.is_absolute() {
        return Err(format!("`{name}` is an absolute path; paths must be relative to the project"));
    }
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) if part.len() <= 255 => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{name}` leaves the project (`..`)")),
            _ => return Err(format!("`{name}` is not a plain relative path")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(format!("`{name}` names no file"));
    }
    if clean.components().count() > MAX_DEPTH {
        return Err(format!("`{name}` is nested too deeply"));
    }
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_project_paths_and_refuses_escapes() {
        assert_eq!(safe_relative("src/pymult.asm").unwrap(), PathBuf::from("src/pymult.asm"));
        assert_eq!(safe_relative("./tests/test_x.py").unwrap(), PathBuf::from("tests/test_x.py"));
        assert_eq!(safe_relative("../etc/passwd").unwrap_err(), "`../etc/passwd` leaves the project (`..`)");
        assert_eq!(
            safe_relative("/etc/passwd").unwrap_err(),
            "`/etc/passwd` is an absolute path; paths must be relative to the project"
        );
        assert!(safe_relative("src\\x.asm").is_err());
        assert!(safe_relative("").is_err());
        assert!(safe_relative(".").is_err());
    }

    #[test]
    fn long_names_are_quoted_short() {
        let long = format!("../{}", "a".repeat(10_000));
        let message = safe_relative(&long).unwrap_err();
        assert_eq!(message, format!("`../{}…` leaves the project (`..`)", "a".repeat(197)));
        assert_eq!(shown("a\nb"), "a\\nb");
    }
}
