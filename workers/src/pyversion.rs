//! CPython versions and the `requires-python` specifiers that admit them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A CPython feature version such as 3.11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PyVersion {
    /// Major version (3).
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl PyVersion {
    /// The oldest version wheelwright tags abi3 wheels for by default.
    pub const DEFAULT_MIN: PyVersion = PyVersion::new(3, 8);
    /// The newest version wheelwright knows the C API of.
    pub const NEWEST: PyVersion = PyVersion::new(3, 14);

    /// A version from its parts.
    pub const fn new(major: u8, minor: u8) -> Self {
        Self { major, minor }
    }

    /// `311` for 3.11, as used in tags and file names.
    pub fn nodot(self) -> String {
        format!("{}{}", self.major, self.minor)
    }

    /// Every CPython 3 version wheelwright knows, oldest first.
    pub fn known() -> impl Iterator<Item = PyVersion> {
        (7..=Self::NEWEST.minor).map(|minor| PyVersion::new(3, minor))
    }
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for PyVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a Python version such as 3.11");
        let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
        Ok(PyVersion::new(major.parse().map_err(|_| bad())?, minor.parse().map_err(|_| bad())?))
    }
}

impl TryFrom<String> for PyVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PyVersion> for String {
    fn from(v: PyVersion) -> String {
        v.to_string()
    }
}

/// A parsed `requires-python` value: comma-separated PEP 440 clauses,
/// evaluated on feature versions (3.X).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequiresPython {
    clauses: Vec<(Op, Vec<u32>, bool)>,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
    Compatible,
}

impl RequiresPython {
    /// Parses a specifier such as `>=3.8, <4`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut clauses = Vec::new();
        for clause in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let (op, rest) = [
                ("~=", Op::Compatible),
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("==", Op::Eq),
                ("!=", Op::Ne),
                (">", Op::Gt),
                ("<", Op::Lt),
            ]
            .into_iter()
            .find_map(|(p, op)| clause.strip_prefix(p).map(|rest| (op, rest.trim())))
            .ok_or_else(|| format!("`{clause}` is not a version clause such as >=3.8"))?;
            let (version, wildcard) = match rest.strip_suffix(".*") {
                Some(v) => (v, true),
                None => (rest, false),
            };
            let parts: Vec<u32> = version
                .split('.')
                .map(|p| p.parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("`{clause}` has a version wheelwright cannot read"))?;
            if wildcard && !matches!(op, Op::Eq | Op::Ne) {
                return Err(format!("`{clause}`: `.*` only goes with == and !="));
            }
            clauses.push((op, parts, wildcard));
        }
        Ok(Self { clauses, text: text.trim().to_string() })
    }

    /// The specifier as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether some release of feature version `v` satisfies every clause.
    pub fn admits(&self, v: PyVersion) -> bool {
        // A feature version is admitted when one of its releases (3.X.0 up to
        // a large micro) is: try the first and a late release.
        [0u32, 999].iter().any(|&micro| {
            let release = [u32::from(v.major), u32::from(v.minor), micro];
            self.clauses.iter().all(|(op, spec, wildcard)| matches(*op, spec, *wildcard, &release))
        })
    }

    /// The oldest 3.X at or above 3.2 that this specifier admits.
    pub fn minimum(&self) -> Option<PyVersion> {
        (2..=PyVersion::NEWEST.minor).map(|m| PyVersion::new(3, m)).find(|v| self.admits(*v))
    }
}

fn cmp_padded(a: &[u32], b: &[u32]) -> std::cmp::Ordering {
    let len = a.len().max(b.len());
    let pad = |v: &[u32], i| v.get(i).copied().unwrap_or(0);
    (0..len).map(|i| pad(a, i).cmp(&pad(b, i))).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
}

fn matches(op: Op, spec: &[u32], wildcard: bool, release: &[u32]) -> bool {
    use std::cmp::Ordering::*;
    let prefix_eq = || release.iter().zip(spec).all(|(a, b)| a == b);
    match op {
        Op::Eq if wildcard => prefix_eq(),
        Op::Ne if wildcard => !prefix_eq(),
        Op::Eq => cmp_padded(release, spec) == Equal,
        Op::Ne => cmp_padded(release, spec) != Equal,
        Op::Ge => cmp_padded(release, spec) != Less,
        Op::Gt => cmp_padded(release, spec) == Greater,
        Op::Le => cmp_padded(release, spec) != Greater,
        Op::Lt => cmp_padded(release, spec) == Less,
        Op::Compatible => {
            let prefix = &spec[..spec.len().saturating_sub(1)];
            cmp_padded(release, spec) != Less && release.iter().zip(prefix).all(|(a, b)| a == b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u8) -> PyVersion {
        PyVersion::new(3, minor)
    }

    #[test]
    fn evaluates_common_specifiers() {
        let spec = RequiresPython::parse(">=3.9, <3.13").unwrap();
        assert!(!spec.admits(v(8)));
        assert!(spec.admits(v(9)) && spec.admits(v(12)));
        assert!(!spec.admits(v(13)));
        assert_eq!(spec.minimum(), Some(v(9)));
        assert_eq!(RequiresPython::parse(">3.10").unwrap().minimum(), Some(v(10)));
        assert_eq!(RequiresPython::parse(">=3.10.4").unwrap().minimum(), Some(v(10)));
        assert_eq!(RequiresPython::parse("~=3.11").unwrap().minimum(), Some(v(11)));
        assert!(!RequiresPython::parse("==3.11.*").unwrap().admits(v(12)));
        assert!(RequiresPython::parse("").unwrap().admits(v(7)));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert_eq!(RequiresPython::parse("3.8+").unwrap_err(), "`3.8+` is not a version clause such as >=3.8");
        assert_eq!(RequiresPython::parse(">=3.x").unwrap_err(), "`>=3.x` has a version wheelwright cannot read");
    }
}
