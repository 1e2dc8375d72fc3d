//! Link errors in the author's terms: each relocation a linker refuses, and
//! each symbol it cannot find, becomes one [`Finding`] at the `.asm` line,
//! with the instruction as written and the fix.
//!
//! What each linker refuses, checked with lld 19:
//! - **ld.lld** (`-shared -z text`): an absolute address in code
//!   (`R_X86_64_64`, `_32`, `_32S`, against a local symbol or an imported
//!   one) and a rip-relative reference to an imported symbol
//!   (`R_X86_64_PC32`: a call without `wrt ..plt`, data without `wrt ..got`).
//!   Its messages (`recompile with -fPIC`, `obj/x.o:(.text+0xB)`) are read
//!   here and matched to the object's relocations.
//! - **ld64.lld** refuses nothing of this: it links an absolute address in
//!   `__text` into a module whose rebase stream points into read-only code
//!   (and an imported one into a zero), which dyld does not load. Apple's
//!   own `ld` refuses both ("illegal text-relocation"). So the object is
//!   checked here instead ([`check_object`]): `X86_64_RELOC_UNSIGNED` in
//!   code, and `X86_64_RELOC_SIGNED*` against an imported symbol (data read
//!   without `wrt ..gotpcrel`).
//! - **lld-link** accepts absolute addresses (`IMAGE_REL_AMD64_ADDR64`
//!   becomes a base relocation): no error there. It refuses a reference to a
//!   variable of `python3.dll` without `__imp_` ("undefined symbol"), since
//!   the import library only defines `__imp_NAME` for data.
//!
//! Names outside the C API (a misspelled `PyLong_FromLongg`) are caught
//! before linking, the same way on every target ([`unknown_imports`]), with
//! the nearest stable-ABI name suggested.
//!
//! No host path appears in any message: sites are named by their
//! project-relative file, and linker text that is not explained is passed on
//! only through [`sanitise`].

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionKind};

use crate::lines::{ObjectLines, SourceLine};
use crate::platform::Target;
use crate::report::{Finding, Severity};

/// Why an object could not be examined.
#[derive(Debug, thiserror::Error)]
pub enum LinkErrError {
    /// The object file is not one the `object` crate can read.
    #[error("cannot read the object: {0}")]
    Object(#[from] object::Error),
}

/// Rule: an absolute address in code, which a shared library cannot hold.
pub const ABSOLUTE_ADDRESS: &str = "absolute-address-in-text";
/// Rule: a name the Python C API does not have.
pub const UNDEFINED_SYMBOL: &str = "undefined-symbol";
/// Rule: an ELF call to the interpreter without `wrt ..plt`.
pub const MISSING_PLT: &str = "missing-wrt-plt";
/// Rule: the interpreter's data read without `wrt ..got` / `..gotpcrel`.
pub const MISSING_GOT: &str = "missing-wrt-got";
/// Rule: a Windows data import used without its `__imp_` pointer.
pub const MISSING_IMP: &str = "missing-imp-prefix";

/// Where the sources named by line information are read from, to find
/// each instruction's column.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The project root (files are named relative to it).
    pub project_root: PathBuf,
    /// The engine's include folder (`wheelwright.inc`).
    pub include_dir: PathBuf,
}

impl Sources {
    /// The 1-based column where `text` starts on `line` of `file`; 1 when the
    /// file cannot be read.
    fn column(&self, file: &str, line: u32, text: &str) -> u32 {
        let root = if Path::new(file).components().count() == 1 && !self.project_root.join(file).is_file() {
            &self.include_dir
        } else {
            &self.project_root
        };
        let Ok(source) = std::fs::read_to_string(root.join(file)) else { return 1 };
        let Some(raw) = source.lines().nth(line.saturating_sub(1) as usize) else { return 1 };
        let start =
            raw.find(text.get(..text.len().min(8)).unwrap_or(text)).unwrap_or(raw.len() - raw.trim_start().len());
        raw[..start].chars().count() as u32 + 1
    }
}

/// What the object says about the object code at hand: its lines, and
/// where its sources are.
pub struct Context<'a> {
    /// The target the object was assembled for.
    pub target: Target,
    /// The object's bytes.
    pub object: &'a [u8],
    /// Its line tables (from nasm's listing).
    pub lines: &'a ObjectLines,
    /// The sources, for columns.
    pub sources: &'a Sources,
}

/// One relocation of the object.
#[derive(Debug, Clone)]
struct Site {
    section: String,
    offset: u64,
    /// The raw relocation type (`r_type` / `typ`).
    kind: u32,
    /// The target symbol's name as the source writes it (no Mach-O `_`),
    /// `None` for a section (a local label).
    symbol: Option<String>,
    /// The target symbol is not defined in the object.
    imported: bool,
    /// The target symbol is defined and global (preemptible on ELF).
    global: bool,
    /// The relocation is in code.
    in_code: bool,
}

fn sites(target: Target, object: &[u8]) -> Result<Vec<Site>, LinkErrError> {
    let file = object::File::parse(object)?;
    let mut out = Vec::new();
    for section in file.sections() {
        let Ok(section_name) = section.name() else { continue };
        let in_code = section.kind() == SectionKind::Text;
        for (offset, relocation) in section.relocations() {
            let kind = match relocation.flags() {
                RelocationFlags::Elf { r_type } => r_type.0,
                RelocationFlags::MachO { r_type, .. } => u32::from(r_type.0),
                RelocationFlags::Coff { typ } => u32::from(typ.0),
                _ => continue,
            };
            let (symbol, imported, global) = match relocation.target() {
                RelocationTarget::Symbol(index) => {
                    let symbol = file.symbol_by_index(index)?;
                    if symbol.kind() == object::SymbolKind::Section {
                        (None, false, false)
                    } else {
                        let name = symbol.name().unwrap_or_default();
                        let name = name.strip_prefix(target.symbol_prefix()).unwrap_or(name).to_string();
                        let local = symbol.is_local();
                        (Some(name), symbol.is_undefined(), !local && !symbol.is_undefined())
                    }
                }
                _ => (None, false, false),
            };
            out.push(Site { section: section_name.to_string(), offset, kind, symbol, imported, global, in_code });
        }
    }
    Ok(out)
}

/// An instruction as written, split: mnemonic and operands.
struct Instruction {
    /// The text without comment (and label), as the finding shows it.
    text: String,
    mnemonic: String,
    operands: Vec<String>,
}

impl Instruction {
    fn parse(line: &str) -> Instruction {
        let code = strip_comment(line).trim();
        // A label before the instruction (`start: mov ...`) is not part of it.
        let code = match code.split_once(':') {
            Some((label, rest)) if !label.contains(['[', ' ', ',']) && !rest.trim().is_empty() => rest.trim(),
            _ => code,
        };
        let (mnemonic, rest) = code.split_once(char::is_whitespace).unwrap_or((code, ""));
        let mut operands = Vec::new();
        let mut depth = 0;
        let mut current = String::new();
        for c in rest.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                ',' if depth == 0 => {
                    operands.push(current.trim().to_string());
                    current.clear();
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        if !current.trim().is_empty() {
            operands.push(current.trim().to_string());
        }
        Instruction { text: code.to_string(), mnemonic: mnemonic.to_ascii_lowercase(), operands }
    }

    fn is_call(&self) -> bool {
        matches!(self.mnemonic.as_str(), "call" | "jmp")
    }

    /// The destination register of a two-operand `mov`/`lea`, widened to
    /// 64 bits (an address needs all of them).
    fn destination(&self) -> Option<String> {
        (self.operands.len() == 2 && !self.operands[0].contains('[')).then(|| widen(&self.operands[0]))
    }

    /// The operand that names `symbol` (`moduledef`, `[moduledef]`), else
    /// the last one that names any label: a local target may be given as
    /// another label of its section plus an offset (nasm's Mach-O output).
    fn operand_naming(&self, symbol: Option<&str>) -> Option<&String> {
        let names = |o: &&String, s: &str| words(o).any(|w| w == s);
        let labelled = |o: &&String| {
            words(o).any(|w| w.starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '.') && !is_keyword(w))
        };
        symbol
            .and_then(|s| self.operands.iter().rev().find(|o| names(o, s)))
            .or_else(|| self.operands.iter().rev().find(labelled))
    }
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '$' | '?' | '@'))).filter(|w| !w.is_empty())
}

/// A register or a word of nasm's operand syntax, not a label.
fn is_keyword(word: &str) -> bool {
    const WORDS: [&str; 12] =
        ["rel", "abs", "wrt", "byte", "word", "dword", "qword", "ptr", "rip", "..plt", "..got", "..gotpcrel"];
    let w = word.to_ascii_lowercase();
    let register = matches!(w.as_str(), "rax" | "rbx" | "rcx" | "rdx" | "rsi" | "rdi" | "rbp" | "rsp")
        || widen(&w) != w
        || (w.starts_with('r') && w[1..].trim_end_matches(['d', 'w', 'b']).parse::<u8>().is_ok())
        || matches!(w.as_str(), "ax" | "bx" | "cx" | "dx" | "si" | "di" | "al" | "bl" | "cl" | "dl")
        || w.starts_with("xmm");
    register || WORDS.contains(&w.as_str())
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"' | '`') => quote = Some(c),
            (Some(q), _) if q == c => quote = None,
            (None, ';') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// `edi` → `rdi`, `r8d` → `r8`; anything else unchanged.
fn widen(register: &str) -> String {
    let r = register.to_ascii_lowercase();
    match r.as_str() {
        "eax" | "ebx" | "ecx" | "edx" | "esi" | "edi" | "ebp" | "esp" => format!("r{}", &r[1..]),
        _ if r.starts_with('r') && r.ends_with('d') && r[1..r.len() - 1].parse::<u8>().is_ok() => {
            r[..r.len() - 1].to_string()
        }
        _ => register.to_string(),
    }
}

/// `[moduledef + 8]` → `[rel moduledef + 8]`.
fn rip_relative(operand: &str) -> String {
    match operand.find('[') {
        Some(i) if !operand[i + 1..].trim_start().starts_with("rel ") => {
            format!("{}[rel {}", &operand[..i], operand[i + 1..].trim_start())
        }
        _ => operand.to_string(),
    }
}

/// How the target's GOT is named in nasm.
fn got(target: Target) -> &'static str {
    match target {
        Target::Macos => "..gotpcrel",
        _ => "..got",
    }
}

impl Context<'_> {
    fn finding(
        &self,
        site: &Site,
        rule: &str,
        message: impl FnOnce(&Instruction, Option<&SourceLine>) -> String,
    ) -> Option<Finding> {
        let line = self.lines.at(&site.section, site.offset)?;
        let instruction = Instruction::parse(&line.text);
        let message = message(&instruction, Some(line));
        Some(Finding {
            rule: rule.to_string(),
            severity: Severity::Error,
            file: line.file.clone(),
            line: line.line,
            column: self.sources.column(&line.file, line.line, &instruction.text),
            instruction: instruction.text.clone(),
            message,
        })
    }

    /// An absolute address in code.
    fn absolute(&self, site: &Site) -> Option<Finding> {
        let target = self.target;
        self.finding(site, ABSOLUTE_ADDRESS, |i, line| {
            let macro_note = macro_note(line);
            let symbol = site.symbol.as_deref();
            if site.imported {
                let name = symbol.unwrap_or_default();
                let fix = match i.destination() {
                    Some(register) if macro_note.is_empty() => {
                        format!("mov {register}, [rel {name} wrt {}] (PYDATA {register}, {name})", got(target))
                    }
                    _ => format!("[rel {name} wrt {}] (PYDATA from wheelwright.inc)", got(target)),
                };
                return format!(
                    "{}{macro_note} loads the absolute address of `{name}`, which is in the interpreter; in a shared library write {fix}",
                    i.text
                );
            }
            let operand = i.operand_naming(symbol).cloned();
            match (operand, i.destination()) {
                (Some(op), Some(register)) if macro_note.is_empty() && !op.contains('[') && i.mnemonic == "mov" => {
                    format!("{} loads an absolute address; in a shared library write lea {register}, [rel {op}]", i.text)
                }
                (Some(op), _) if macro_note.is_empty() && op.contains('[') => format!(
                    "{} uses an absolute address; in a shared library write {}",
                    i.text,
                    i.text.replacen(&op, &rip_relative(&op), 1)
                ),
                _ => format!(
                    "{}{macro_note} puts an absolute address in the code, which a shared library cannot have; take it relative to rip instead (lea reg, [rel name])",
                    i.text
                ),
            }
        })
    }

    /// A rip-relative reference to a symbol the module does not define.
    fn direct(&self, site: &Site) -> Option<Finding> {
        let target = self.target;
        let name = site.symbol.clone().unwrap_or_default();
        let calls = self.lines.at(&site.section, site.offset).is_some_and(|l| Instruction::parse(&l.text).is_call());
        if calls {
            return self.finding(site, MISSING_PLT, |i, line| {
                let note = macro_note(line);
                if site.imported {
                    format!(
                        "{}{note} calls `{name}` directly; in a shared library a call to the interpreter goes through the PLT: write {} {name} wrt ..plt (PYCALL {name})",
                        i.text, i.mnemonic
                    )
                } else {
                    format!(
                        "{}{note} calls the global `{name}` directly, which the dynamic linker may replace; write {} {name} wrt ..plt, or do not make it global",
                        i.text, i.mnemonic
                    )
                }
            });
        }
        self.finding(site, MISSING_GOT, |i, line| {
            let note = macro_note(line);
            let register = i.destination().unwrap_or_else(|| "rax".to_string());
            let then = if i.mnemonic == "lea" { "" } else { ", then read through it" };
            format!(
                "{}{note} reaches `{name}` as if it were inside the module; the interpreter's variables are reached through the GOT: write mov {register}, [rel {name} wrt {}] for its address (PYDATA {register}, {name}){then}",
                i.text,
                got(target)
            )
        })
    }

    /// A Windows reference to a `python3.dll` variable without `__imp_`.
    fn without_imp(&self, site: &Site) -> Option<Finding> {
        let name = site.symbol.clone().unwrap_or_default();
        self.finding(site, MISSING_IMP, |i, line| {
            let note = macro_note(line);
            let register = i.destination().unwrap_or_else(|| "rax".to_string());
            let then = if i.mnemonic == "mov" && i.operands.get(1).is_some_and(|o| o.contains('[')) {
                ", then read through it"
            } else {
                ""
            };
            format!(
                "{}{note} uses `{name}`, a variable of the Python DLL, which a Windows module reaches only through its import pointer: write mov {register}, [rel __imp_{name}] for its address (PYDATA {register}, {name}){then}",
                i.text
            )
        })
    }
}

/// ` (in macro NAME)` for an instruction a macro produced, else nothing.
fn macro_note(line: Option<&SourceLine>) -> String {
    match line.and_then(|l| l.expansion.as_ref()) {
        Some(e) => format!(" (in macro {})", e.name),
        None => String::new(),
    }
}

/// What a failed link's output was turned into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explanation {
    /// One finding per refused site.
    pub findings: Vec<Finding>,
    /// The linker's error lines that were not explained, host paths removed
    /// (see [`sanitise`]).
    pub unexplained: Vec<String>,
}

impl Explanation {
    /// The failed link step's reason: one `src/x.asm:LINE: message` line
    /// per finding, then what was not explained.
    pub fn reason(&self) -> String {
        let mut lines: Vec<String> = self.findings.iter().map(site_line).collect();
        lines.extend(self.unexplained.iter().cloned());
        lines.join("\n")
    }
}

/// `src/x.asm:33: <message>`: a finding as a step's reason names it.
pub fn site_line(finding: &Finding) -> String {
    format!("{}:{}: {}", finding.file, finding.line, finding.message)
}

/// Turns a failed link's output into findings. `capi` says whether an
/// undefined name is the C API's (then, on Windows, a variable without
/// `__imp_`). `scrub` are host folders to remove from unexplained lines.
pub fn explain(
    cx: &Context<'_>,
    linker_output: &str,
    is_capi: &dyn Fn(&str) -> bool,
    stable: &[&str],
    scrub: &[&Path],
) -> Result<Explanation, LinkErrError> {
    let all = sites(cx.target, cx.object)?;
    let mut out = Explanation::default();
    let mut seen: Vec<(String, u64)> = Vec::new();
    let mut push = |out: &mut Explanation, site: &Site, finding: Option<Finding>| -> bool {
        let Some(finding) = finding else { return false };
        if !seen.contains(&(site.section.clone(), site.offset)) {
            seen.push((site.section.clone(), site.offset));
            out.findings.push(finding);
        }
        true
    };
    let blocks = error_blocks(linker_output);
    for (head, details) in &blocks {
        let explained = if let Some(refused) = ElfRefusal::parse(head) {
            let locations: Vec<(String, u64)> = details.iter().filter_map(|d| location(d)).collect();
            let matching: Vec<&Site> = all
                .iter()
                .filter(|s| s.in_code && Some(s.kind) == elf_type(&refused.kind))
                .filter(|s| match &refused.symbol {
                    Some(name) => s.symbol.as_deref() == Some(name),
                    None => s.symbol.is_none() || !(s.imported || s.global),
                })
                .filter(|s| {
                    locations.is_empty() || locations.iter().any(|(sec, off)| *sec == s.section && *off == s.offset)
                })
                .collect();
            let mut any = false;
            for site in matching {
                let finding = if refused.kind == "R_X86_64_PC32" { cx.direct(site) } else { cx.absolute(site) };
                any |= push(&mut out, site, finding);
            }
            any
        } else if let Some(name) = undefined_name(head) {
            let mut any = false;
            for site in all.iter().filter(|s| s.symbol.as_deref() == Some(name)) {
                let finding = if is_capi(name) {
                    if cx.target == Target::Windows {
                        cx.without_imp(site)
                    } else {
                        None
                    }
                } else {
                    unknown(cx, site, name, stable)
                };
                any |= push(&mut out, site, finding);
            }
            any
        } else {
            false
        };
        if !explained {
            out.unexplained.push(sanitise(head, scrub));
        }
    }
    if blocks.is_empty() && !linker_output.trim().is_empty() {
        out.unexplained.push(sanitise(linker_output.trim(), scrub));
    }
    Ok(out)
}

/// What ld64.lld links but dyld refuses, or links wrong: absolute addresses
/// in code and imported data read without `wrt ..gotpcrel`. Nothing for the
/// other targets (their linkers refuse it themselves, or it is fine).
pub fn check_object(cx: &Context<'_>) -> Result<Vec<Finding>, LinkErrError> {
    if cx.target != Target::Macos {
        return Ok(Vec::new());
    }
    use object::macho;
    let mut out = Vec::new();
    for site in sites(cx.target, cx.object)?.iter().filter(|s| s.in_code) {
        let kind = macho::RelocationType(site.kind as u8);
        let signed = [
            macho::X86_64_RELOC_SIGNED,
            macho::X86_64_RELOC_SIGNED_1,
            macho::X86_64_RELOC_SIGNED_2,
            macho::X86_64_RELOC_SIGNED_4,
        ];
        let finding = if kind == macho::X86_64_RELOC_UNSIGNED {
            cx.absolute(site)
        } else if signed.contains(&kind) && site.imported {
            cx.direct(site)
        } else {
            None
        };
        out.extend(finding);
    }
    Ok(out)
}

/// Names the object imports that the C API does not have (`names` as
/// [`crate::verify::object_imports`] gives them): one finding per site,
/// with the nearest of `stable` suggested. Names with no site in the
/// object's code or data come back in the second list.
pub fn unknown_imports(
    cx: &Context<'_>,
    names: &[String],
    stable: &[&str],
) -> Result<(Vec<Finding>, Vec<String>), LinkErrError> {
    let all = sites(cx.target, cx.object)?;
    let mut findings = Vec::new();
    let mut without_site = Vec::new();
    for name in names {
        let before = findings.len();
        let imp = format!("__imp_{name}");
        for site in all
            .iter()
            .filter(|s| s.imported && (s.symbol.as_deref() == Some(name) || s.symbol.as_deref() == Some(&imp)))
        {
            findings.extend(unknown(cx, site, name, stable));
        }
        if findings.len() == before {
            without_site.push(name.clone());
        }
    }
    findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok((findings, without_site))
}

fn unknown(cx: &Context<'_>, site: &Site, name: &str, stable: &[&str]) -> Option<Finding> {
    let suggestion = nearest(name, stable);
    cx.finding(site, UNDEFINED_SYMBOL, |i, _| match suggestion {
        Some(near) => format!("{} names `{name}`, which is not in the Python C API; did you mean `{near}`?", i.text),
        None => format!(
            "{} names `{name}`, which is not in the Python C API; an extension module can use only what the interpreter exports",
            i.text
        ),
    })
}

/// The name of `candidates` nearest to `name` (edit distance, ignoring
/// case), when it is near enough to be a misspelling.
pub fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (name.chars().count() / 4).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (distance(&name.to_ascii_lowercase(), &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The linker's errors: each `error:` line with the `>>>` lines under it.
fn error_blocks(output: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in output.lines() {
        if let Some(i) = line.find("error: ") {
            blocks.push((line[i + 7..].trim().to_string(), Vec::new()));
        } else if let (Some(rest), Some(last)) = (line.trim_start().strip_prefix(">>>"), blocks.last_mut()) {
            last.1.push(rest.trim().to_string());
        }
    }
    blocks
}

/// `relocation R_X86_64_64 cannot be used against local symbol; …` or
/// `… against symbol 'X'; …`.
struct ElfRefusal {
    kind: String,
    symbol: Option<String>,
}

impl ElfRefusal {
    fn parse(head: &str) -> Option<ElfRefusal> {
        let rest = head.strip_prefix("relocation ")?;
        let (kind, rest) = rest.split_once(' ')?;
        let rest = rest.strip_prefix("cannot be used against ")?;
        let symbol = if rest.starts_with("local symbol") {
            None
        } else {
            let quoted = rest.strip_prefix("symbol '")?;
            Some(quoted[..quoted.find('\'')?].to_string())
        };
        Some(ElfRefusal { kind: kind.to_string(), symbol })
    }
}

fn elf_type(name: &str) -> Option<u32> {
    use object::elf;
    Some(match name {
        "R_X86_64_64" => elf::R_X86_64_64.0,
        "R_X86_64_32" => elf::R_X86_64_32.0,
        "R_X86_64_32S" => elf::R_X86_64_32S.0,
        "R_X86_64_PC32" => elf::R_X86_64_PC32.0,
        _ => return None,
    })
}

/// `/tmp/…/obj/x.o:(.text+0xB)` → (`.text`, 0xB).
fn location(detail: &str) -> Option<(String, u64)> {
    let inner = &detail[detail.rfind(":(")? + 2..];
    let inner = &inner[..inner.find(')')?];
    let (section, offset) = inner.rsplit_once("+0x")?;
    Some((section.to_string(), u64::from_str_radix(offset, 16).ok()?))
}

/// `undefined symbol: X` → X.
fn undefined_name(head: &str) -> Option<&str> {
    Some(head.strip_prefix("undefined symbol: ")?.trim())
}

/// `text` without the host folders in `scrub` (a path under one is shown
/// relative to it).
pub fn sanitise(text: &str, scrub: &[&Path]) -> String {
    let mut out = text.to_string();
    for dir in scrub {
        let dir = dir.display().to_string();
        if dir.is_empty() {
            continue;
        }
        out = out.replace(&format!("{}/", dir.trim_end_matches('/')), "").replace(dir.trim_end_matches('/'), ".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_split_into_mnemonic_and_operands() {
        let i = Instruction::parse("start: mov rdi, [moduledef + 8] ; the def");
        assert_eq!(i.text, "mov rdi, [moduledef + 8]");
        assert_eq!(i.mnemonic, "mov");
        assert_eq!(i.operands, ["rdi", "[moduledef + 8]"]);
        assert_eq!(widen("edi"), "rdi");
        assert_eq!(widen("r9d"), "r9");
        assert_eq!(rip_relative("qword [moduledef]"), "qword [rel moduledef]");
    }

    #[test]
    fn a_misspelling_gets_the_nearest_name_and_a_stranger_none() {
        let names = ["PyLong_FromLong", "PyLong_FromLongLong", "PyLong_AsLong"];
        assert_eq!(nearest("PyLong_FromLongg", &names), Some("PyLong_FromLong"));
        assert_eq!(nearest("pylong_fromlong", &names), Some("PyLong_FromLong"));
        assert_eq!(nearest("printf", &names), None);
    }

    #[test]
    fn lld_refusals_and_locations_are_read() {
        let r = ElfRefusal::parse(
            "relocation R_X86_64_64 cannot be used against symbol '_Py_NoneStruct'; recompile with -fPIC",
        )
        .unwrap();
        assert_eq!((r.kind.as_str(), r.symbol.as_deref()), ("R_X86_64_64", Some("_Py_NoneStruct")));
        let r = ElfRefusal::parse("relocation R_X86_64_32S cannot be used against local symbol; recompile with -fPIC")
            .unwrap();
        assert_eq!((r.kind.as_str(), r.symbol), ("R_X86_64_32S", None));
        assert_eq!(location("/tmp/w/linux-x86_64/obj/x.o:(.text+0xB)"), Some((".text".to_string(), 0xB)));
        assert_eq!(location("x.o:(PyInit_x)"), None);
    }

    #[test]
    fn host_folders_are_scrubbed() {
        let text = "cannot open /tmp/wheelwright-1/linux-x86_64/obj/x.o";
        assert_eq!(sanitise(text, &[Path::new("/tmp/wheelwright-1")]), "cannot open linux-x86_64/obj/x.o");
    }
}
