//! The static ABI check: each target's objects, disassembled before
//! anything is linked or run, explained at the `.asm` line.
//!
//! What is checked: every function reachable from `PyInit_*` and from the
//! function pointers in data (the `PyMethodDef` tables' `ml_meth`, slots),
//! and the functions they call directly, following each one's control flow
//! path by path (`flow`); the module's `PyModuleDef` and its `PyMethodDef`
//! table (`tables`). The rules and their default severities are
//! [`Rule::ALL`]; the C-API signatures the argument rules need come from
//! the same prototypes the Win64 model uses ([`signatures`]).
//!
//! Each finding names the line through [`crate::lines::ObjectLines`] (the
//! invocation line for an instruction a macro produced) and the column of
//! the mnemonic (or macro name) on it. A source line that carries
//! `; wheelwright: allow(rule-id)` silences that rule there.

mod flow;
mod object;
pub mod signatures;
mod tables;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::lines::{ObjectLines, SourceDirs};
use crate::platform::Target;
use crate::report::{Finding, Severity};

/// Why an object could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// The object file is not one the `object` crate can read.
    #[error("cannot read the object: {0}")]
    Object(#[from] ::object::Error),
}

/// A rule of the check, with its stable id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A callee-saved register of the target's ABI is written on some path
    /// and not restored before the function returns (or tail-calls).
    CalleeSavedNotRestored,
    /// `rsp` is not 16-byte aligned at a `call`.
    MisalignedCall,
    /// Win64: the caller did not reserve 32 bytes of shadow space for the callee.
    MissingShadowSpace,
    /// Win64: arguments placed in System V registers before a C-API call
    /// whose Win64 argument registers were not set.
    SysvArgumentsOnWin64,
    /// System V: `al` (the number of vector registers) not set before a
    /// variadic C-API call.
    VariadicAlNotSet,
    /// A 32-bit load from a 64-bit slot into the register of a 64-bit parameter.
    TruncatedArgument,
    /// A `PyMethodDef` table whose entries are not 32 bytes with zero padding
    /// after `ml_flags`.
    MethodDefLayout,
    /// A `PyMethodDef` table without its all-zero sentinel entry.
    MethodDefSentinel,
    /// `ml_flags` that are not a valid combination of `METH_*` flags.
    MethodDefFlags,
    /// A `PyModuleDef` in a read-only section: `PyModule_Create2` writes into it.
    ModuleDefReadOnly,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 10] = [
        Rule::CalleeSavedNotRestored,
        Rule::MisalignedCall,
        Rule::MissingShadowSpace,
        Rule::SysvArgumentsOnWin64,
        Rule::VariadicAlNotSet,
        Rule::TruncatedArgument,
        Rule::MethodDefLayout,
        Rule::MethodDefSentinel,
        Rule::MethodDefFlags,
        Rule::ModuleDefReadOnly,
    ];

    /// The id findings, overrides and `allow(...)` comments use.
    pub fn id(self) -> &'static str {
        match self {
            Rule::CalleeSavedNotRestored => "callee-saved-not-restored",
            Rule::MisalignedCall => "misaligned-call",
            Rule::MissingShadowSpace => "missing-shadow-space",
            Rule::SysvArgumentsOnWin64 => "sysv-arguments-on-win64",
            Rule::VariadicAlNotSet => "variadic-al-not-set",
            Rule::TruncatedArgument => "truncated-argument",
            Rule::MethodDefLayout => "methoddef-layout",
            Rule::MethodDefSentinel => "methoddef-sentinel",
            Rule::MethodDefFlags => "methoddef-flags",
            Rule::ModuleDefReadOnly => "moduledef-read-only",
        }
    }

    /// The rule with this id.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }

    /// Errors for what is always wrong, warnings for heuristics.
    pub fn default_severity(self) -> Severity {
        match self {
            Rule::TruncatedArgument => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// `[tool.wheelwright] lint`: how findings count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// Warnings become errors.
    Strict,
    /// Each rule at its own severity.
    #[default]
    Default,
    /// No check at all.
    Off,
}

impl Level {
    /// `strict`, `default`, `off`.
    pub fn parse(word: &str) -> Option<Level> {
        match word {
            "strict" => Some(Level::Strict),
            "default" => Some(Level::Default),
            "off" => Some(Level::Off),
            _ => None,
        }
    }
}

/// A per-rule override (`[tool.wheelwright.lint-rules]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleLevel {
    /// Always an error.
    Error,
    /// A warning (made an error by `strict`).
    Warn,
    /// Not reported.
    Allow,
}

impl RuleLevel {
    /// `error`, `warn`, `allow`.
    pub fn parse(word: &str) -> Option<RuleLevel> {
        match word {
            "error" => Some(RuleLevel::Error),
            "warn" => Some(RuleLevel::Warn),
            "allow" => Some(RuleLevel::Allow),
            _ => None,
        }
    }
}

/// What the project asks of the check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LintConfig {
    /// The overall level.
    pub level: Level,
    /// Per-rule overrides.
    pub rules: BTreeMap<Rule, RuleLevel>,
}

impl LintConfig {
    /// The severity `rule` is reported with, `None` when it is not reported.
    pub fn severity(&self, rule: Rule) -> Option<Severity> {
        if self.level == Level::Off {
            return None;
        }
        let severity = match self.rules.get(&rule) {
            Some(RuleLevel::Allow) => return None,
            Some(RuleLevel::Error) => Severity::Error,
            Some(RuleLevel::Warn) => Severity::Warning,
            None => rule.default_severity(),
        };
        Some(if self.level == Level::Strict { Severity::Error } else { severity })
    }
}

/// A rule broken at a place in the object, before it is put at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raw {
    pub rule: Rule,
    /// The section's name as the object names it, and the offset in it.
    pub section: String,
    pub offset: u64,
    /// The decoded instruction, for when no line is known.
    pub disassembly: String,
    pub message: String,
}

/// One object to check.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The target it was assembled for.
    pub target: Target,
    /// The object's bytes.
    pub object: &'a [u8],
    /// nasm's listing of it (read into line tables only when a finding or
    /// a rule needs a line); without it findings name the module's source
    /// file at line 0.
    pub listing: Option<&'a str>,
    /// Where the sources are, to read a line's columns and its comments.
    pub dirs: &'a SourceDirs,
}

/// Checks one object: its findings, sorted by place, at the severities
/// `config` gives (none at all for `lint = "off"`).
pub fn check(input: &Input<'_>, config: &LintConfig) -> Result<Vec<Finding>, LintError> {
    if config.level == Level::Off {
        return Ok(Vec::new());
    }
    let obj = object::Obj::parse(input.target, input.object)?;
    let tables = std::cell::OnceCell::new();
    let lines = || -> Option<&ObjectLines> {
        tables
            .get_or_init(|| input.listing.and_then(|l| ObjectLines::from_listing(l, input.object, input.dirs).ok()))
            .as_ref()
    };
    // A data label declared `dq`/`resq` (times ... included), from its line.
    let qword_data = |sec: usize, offset: u64| {
        lines().and_then(|l| l.at(&obj.sections[sec].name, offset)).is_some_and(|site| {
            let code = site.text.split(';').next().unwrap_or("");
            code.split_whitespace().any(|w| w.eq_ignore_ascii_case("dq") || w.eq_ignore_ascii_case("resq"))
        })
    };
    let flow = flow::check(&obj, &qword_data);
    let mut raw = flow.raws;
    raw.extend(tables::check(&obj, &flow.moduledefs));
    let mut sources = Sources::new(input.dirs);
    let mut out: Vec<Finding> = Vec::new();
    for r in raw {
        let Some(severity) = config.severity(r.rule) else { continue };
        let finding = match lines().and_then(|l| l.at(&r.section, r.offset)) {
            Some(site) => {
                let raw_line = sources.line(&site.file, site.line);
                let text = raw_line.unwrap_or(&site.text);
                if allows(text, r.rule) {
                    continue;
                }
                Finding {
                    rule: r.rule.id().to_string(),
                    severity,
                    file: site.file.clone(),
                    line: site.line,
                    column: mnemonic_column(text),
                    instruction: site.text.clone(),
                    message: r.message,
                }
            }
            None => Finding {
                rule: r.rule.id().to_string(),
                severity,
                file: slash(&input.dirs.main),
                line: 0,
                column: 0,
                instruction: r.disassembly,
                message: format!("{} (at {}+{:#x})", r.message, r.section, r.offset),
            },
        };
        if !out.contains(&finding) {
            out.push(finding);
        }
    }
    out.sort_by(|a, b| (&a.file, a.line, a.column, &a.rule).cmp(&(&b.file, b.line, b.column, &b.rule)));
    Ok(out)
}

/// Whether a source line says `; wheelwright: allow(rule, ...)` for `rule`.
fn allows(line: &str, rule: Rule) -> bool {
    let Some((_, comment)) = line.split_once(';') else { return false };
    let mut rest = comment;
    while let Some(at) = rest.find("wheelwright:") {
        rest = rest[at + "wheelwright:".len()..].trim_start();
        if let Some(list) = rest.strip_prefix("allow(").and_then(|r| r.split_once(')')).map(|(l, _)| l) {
            if list.split(',').any(|id| id.trim() == rule.id()) {
                return true;
            }
        }
    }
    false
}

/// The 1-based column of the mnemonic (or macro name) on a source line:
/// the first word after the indentation and an optional `label:`.
fn mnemonic_column(line: &str) -> u32 {
    let code = line.split(';').next().unwrap_or("");
    let indent = code.len() - code.trim_start().len();
    let mut at = indent;
    let first = code[indent..].split_whitespace().next().unwrap_or("");
    if let Some(colon) = first.find(':') {
        // `label: mov ...`: the instruction is the next word.
        let after = indent + colon + 1;
        let tail = &code[after..];
        if !tail.trim().is_empty() {
            at = after + (tail.len() - tail.trim_start().len());
        }
    }
    line[..at].chars().count() as u32 + 1
}

fn slash(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Source files read once each, to find a line's columns and comments.
struct Sources<'a> {
    dirs: &'a SourceDirs,
    files: HashMap<String, Option<Vec<String>>>,
}

impl<'a> Sources<'a> {
    fn new(dirs: &'a SourceDirs) -> Self {
        Sources { dirs, files: HashMap::new() }
    }

    /// Line `line` (1-based) of `file` (project-relative, or the engine's
    /// include by name), untrimmed.
    fn line(&mut self, file: &str, line: u32) -> Option<&str> {
        let dirs = self.dirs;
        let lines = self.files.entry(file.to_string()).or_insert_with(|| {
            let mut candidates: Vec<PathBuf> = vec![dirs.project_root.join(file)];
            if let Some(ours) = &dirs.engine_include {
                candidates.push(ours.join(file));
            }
            candidates
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .map(|b| String::from_utf8_lossy(&b).lines().map(str::to_string).collect())
        });
        lines.as_ref()?.get((line as usize).checked_sub(1)?).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_is_that_of_the_mnemonic_after_indentation_and_label() {
        assert_eq!(mnemonic_column("    mov rdi, rax"), 5);
        assert_eq!(mnemonic_column("start: push rbx ; save"), 8);
        assert_eq!(mnemonic_column("\tret"), 2);
        assert_eq!(mnemonic_column("label:"), 1);
    }

    #[test]
    fn an_allow_comment_names_rules_by_id() {
        assert!(allows("  push rbx ; wheelwright: allow(misaligned-call)", Rule::MisalignedCall));
        assert!(allows("x ; wheelwright: allow(methoddef-flags, misaligned-call)", Rule::MisalignedCall));
        assert!(!allows("x ; wheelwright: allow(methoddef-flags)", Rule::MisalignedCall));
        assert!(!allows("x ; misaligned-call", Rule::MisalignedCall));
    }

    #[test]
    fn strict_makes_warnings_errors_and_allow_silences_a_rule() {
        let mut config = LintConfig::default();
        assert_eq!(config.severity(Rule::TruncatedArgument), Some(Severity::Warning));
        config.level = Level::Strict;
        assert_eq!(config.severity(Rule::TruncatedArgument), Some(Severity::Error));
        config.rules.insert(Rule::TruncatedArgument, RuleLevel::Allow);
        assert_eq!(config.severity(Rule::TruncatedArgument), None);
        config.level = Level::Off;
        assert_eq!(config.severity(Rule::MisalignedCall), None);
    }

    #[test]
    fn rule_ids_read_back() {
        for rule in Rule::ALL {
            assert_eq!(Rule::from_id(rule.id()), Some(rule));
        }
    }
}
