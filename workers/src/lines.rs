//! Addresses back to `.asm` lines, for the run-time ABI guards, crash
//! reports and the static ABI check.
//!
//! Two inputs, both written beside the build's objects and never into a
//! wheel:
//! - nasm's **listing** (`-l`), produced by the very run that writes the
//!   object (adding `-l` leaves the object byte-for-byte unchanged, on all
//!   three formats). One parser serves elf64, macho64 and win64 alike, the
//!   offsets are those of the shipped object by construction (no second
//!   assembly), and, unlike nasm's DWARF, the listing shows where a macro was
//!   *invoked*: nasm's DWARF line table gives the line inside the `%macro`
//!   definition for every expanded instruction, which for `wheelwright.inc`'s
//!   macros is a file the author never wrote. The listing names neither files
//!   nor sections, so both are recovered here: files by following `%include`
//!   lines (resolved inside the project or the engine's include folder only),
//!   sections by matching each line's bytes against the object's sections.
//! - the linker's **map** (`ld.lld -Map`, `ld64.lld -map`, `lld-link /MAP`),
//!   which places the object's sections in the linked module: ld.lld lists
//!   input sections; ld64.lld and lld-link list symbols, which are anchored
//!   to the object's own symbol table to find each section's base.
//!
//! What an answer says for an instruction produced by a macro: the line that
//! invoked the outermost macro (in the file the author wrote), with the
//! macro's name and the line inside its definition as [`Expansion`]. For a
//! `%rep` block: the body's own line. For an `%include`d file: that file's
//! line, its path relative to the project (`wheelwright.inc` for ours).
//! No host path appears in any answer.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

use crate::platform::Target;

/// Why line information could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LinesError {
    /// The object file is not one the `object` crate can read.
    #[error("cannot read the object: {0}")]
    Object(#[from] object::Error),
    /// The linker map does not place the object anywhere.
    #[error("the linker map does not mention the object `{0}`")]
    NotInMap(String),
    /// A listing, map or object the build kept could not be read back.
    #[error(transparent)]
    Read(#[from] crate::readback::ReadbackError),
}

/// Largest listing, map or object read back for line information.
pub const LINES_INPUT_MAX: u64 = 64 << 20;

/// Where an instruction came from in the sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    /// The file, relative to the project (`src/x.asm`), or `wheelwright.inc`.
    pub file: String,
    /// The 1-based line number.
    pub line: u32,
    /// The text of that line, trimmed (for a macro: the invocation).
    pub text: String,
    /// Set when the instruction came from a macro expansion.
    pub expansion: Option<Expansion>,
}

impl std::fmt::Display for SourceLine {
    /// `src/x.asm:12: call foo`, with `(in macro NAME)` for an expansion.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.text)?;
        if let Some(e) = &self.expansion {
            write!(f, " (in macro {})", e.name)?;
        }
        Ok(())
    }
}

/// The macro an instruction was expanded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// The outermost macro's name, as invoked.
    pub name: String,
    /// The file of the line inside the (innermost) definition, when known.
    pub file: Option<String>,
    /// That line's number in its file.
    pub line: u32,
    /// That line's text as written in the definition (parameters unexpanded).
    pub text: String,
}

/// The folders an object's sources are found in, to turn `%include` names
/// into project-relative paths; mirrors the assembler's `-I` options.
#[derive(Debug, Clone)]
pub struct SourceDirs {
    /// The project root (nasm's working directory).
    pub project_root: PathBuf,
    /// The assembled file, relative to the project root.
    pub main: PathBuf,
    /// `-I` folders, in order (absolute or relative to the project root).
    pub include_dirs: Vec<PathBuf>,
    /// The engine's include folder (`wheelwright.inc`): files found there
    /// are shown by name only.
    pub engine_include: Option<PathBuf>,
}

impl SourceDirs {
    /// The folders of `module` as the assembler was told them (`-I`): its
    /// own folder, the project's source folder, the engine's include folder.
    pub fn for_module(
        project: &crate::project::Project,
        module: &crate::project::Module,
        include_dir: &Path,
    ) -> SourceDirs {
        let source_dir = module.source.parent().unwrap_or(Path::new("")).to_path_buf();
        SourceDirs {
            project_root: project.root.clone(),
            main: module.source.clone(),
            include_dirs: vec![source_dir, project.source_dir.clone(), include_dir.to_path_buf()],
            engine_include: Some(include_dir.to_path_buf()),
        }
    }

    /// The project-relative name of what `%include "name"` opened, or the
    /// name as written when it is not inside the project or our folder.
    fn resolve(&self, name: &str) -> String {
        let written = Path::new(name);
        let mut candidates = vec![self.project_root.join(written)];
        candidates.extend(self.include_dirs.iter().map(|d| self.project_root.join(d).join(written)));
        for candidate in candidates {
            let candidate = normalise(&candidate);
            if let Some(ours) = &self.engine_include {
                if candidate.starts_with(normalise(ours)) && candidate.is_file() {
                    return written.file_name().map_or(name.to_string(), |n| n.to_string_lossy().into_owned());
                }
            }
            let root = normalise(&self.project_root);
            if let Ok(relative) = candidate.strip_prefix(&root) {
                if candidate.is_file() {
                    return slash(relative);
                }
            }
        }
        name.to_string()
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system (links are not
/// followed: a name only ever resolves inside the folders it names).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn slash(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// One listed line with its bytes: `(offset, bytes)` chunks, where `None`
/// stands for a byte the linker fills in (a relocation) or one not listed.
#[derive(Debug, Default)]
struct Listed {
    chunks: Vec<(u64, Vec<Option<u8>>)>,
    site: usize,
}

impl Listed {
    fn start(&self) -> u64 {
        self.chunks.first().map_or(0, |c| c.0)
    }
    fn end(&self) -> u64 {
        self.chunks.iter().map(|(o, b)| o + b.len() as u64).max().unwrap_or(0)
    }
    fn has_known_bytes(&self) -> bool {
        self.chunks.iter().any(|(_, b)| b.iter().any(Option::is_some))
    }
    fn matches(&self, data: &[u8]) -> bool {
        self.chunks.iter().all(|(offset, bytes)| {
            let start = *offset as usize;
            data.get(start..start + bytes.len())
                .is_some_and(|have| have.iter().zip(bytes).all(|(h, want)| want.is_none_or(|w| w == *h)))
        })
    }
}

/// Parses one listing line's byte column: `B807000000`, `488B05(00000000)`,
/// `[0000000000000000]`, `90<rep Fh>`, `<res 20h>`; a trailing `-` continues
/// on the next line.
fn parse_bytes(field: &str) -> Vec<Option<u8>> {
    let mut out = Vec::new();
    let mut rest = field.trim().trim_end_matches('-');
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if let Some(close) = match first {
            b'(' => rest.find(')'),
            b'[' => rest.find(']'),
            b'{' => rest.find('}'),
            _ => None,
        } {
            out.extend(std::iter::repeat_n(None, (close - 1) / 2));
            rest = &rest[close + 1..];
        } else if first == b'<' {
            let close = rest.find('>').unwrap_or(rest.len() - 1);
            let inner = &rest[1..close];
            let count = inner
                .split_whitespace()
                .nth(1)
                .and_then(|n| u64::from_str_radix(n.trim_end_matches(['h', 'H']), 16).ok())
                .unwrap_or(0);
            match inner.split_whitespace().next() {
                // `times`/`align` repeat what came before, `count` times in all.
                Some("rep") if count > 0 && count < (1 << 24) => {
                    let once = std::mem::take(&mut out);
                    for _ in 0..count {
                        out.extend_from_slice(&once);
                    }
                }
                // `resb` and `incbin`: bytes the listing does not show.
                _ => out.extend(std::iter::repeat_n(None, count.min(1 << 24) as usize)),
            }
            rest = &rest[(close + 1).min(rest.len())..];
        } else if rest.len() >= 2 && rest.is_char_boundary(2) {
            match u8::from_str_radix(&rest[..2], 16) {
                Ok(b) => out.push(Some(b)),
                Err(_) => break,
            }
            rest = &rest[2..];
        } else {
            break;
        }
    }
    out
}

/// A listing line split into its columns.
struct Row<'a> {
    line: u32,
    offset: Option<u64>,
    bytes: &'a str,
    level: usize,
    text: &'a str,
}

/// nasm's listing columns: line number (6), offset (8 hex), bytes (up to
/// column 36), nesting level `<n>`, then the source text.
fn parse_row(raw: &str) -> Option<Row<'_>> {
    let line: u32 = raw.get(..6)?.trim().parse().ok()?;
    let offset = raw.get(7..15).and_then(|o| u64::from_str_radix(o, 16).ok());
    let bytes = raw.get(16..36.min(raw.len())).unwrap_or("");
    let rest = raw.get(36..).unwrap_or("");
    let (level, text) = match rest.strip_prefix('<').and_then(|r| r.split_once('>')) {
        Some((n, text)) if n.bytes().all(|b| b.is_ascii_digit()) => (n.parse().ok()?, text.get(1..).unwrap_or("")),
        _ => (0, rest.get(4..).unwrap_or("")),
    };
    Some(Row { line, offset, bytes, level, text })
}

/// What a nesting level in the listing is.
#[derive(Debug, Clone)]
enum Frame {
    /// Lines of an `%include`d file.
    Include(String),
    /// The body of a `%rep`, listed again with its own line numbers.
    Rep,
    /// A macro's expansion, invoked from `site`.
    Macro { name: String, site: usize },
}

/// The line tables of one object: for each of its sections, which source
/// line each byte range came from.
#[derive(Debug, Default)]
pub struct ObjectLines {
    sites: Vec<SourceLine>,
    /// Section name (as the object names it: `.text`, `__text`) → sorted
    /// `(start, end, site)` ranges.
    sections: BTreeMap<String, Vec<(u64, u64, usize)>>,
    /// Listed lines whose bytes matched no section of the object.
    unplaced: usize,
}

impl ObjectLines {
    /// Reads nasm's listing of `object` (the bytes of the object that same
    /// run wrote). `dirs` says where its `%include`s were found.
    pub fn from_listing(listing: &str, object: &[u8], dirs: &SourceDirs) -> Result<Self, LinesError> {
        let file = object::File::parse(object)?;
        let sections: Vec<(String, Vec<u8>)> = file
            .sections()
            .filter(|s| {
                !matches!(s.kind(), SectionKind::UninitializedData | SectionKind::Debug | SectionKind::Metadata)
            })
            .filter_map(|s| Some((s.name().ok()?.to_string(), s.data().ok()?.to_vec())))
            .collect();
        let main = slash(&dirs.main);
        let mut table = ObjectLines::default();
        let mut frames: Vec<Frame> = Vec::new();
        // The last line seen at each level: the invoker of the next deeper one.
        let mut last_at: Vec<Option<usize>> = vec![None];
        let mut macro_files: HashMap<String, String> = HashMap::new();
        let mut listed: Vec<Listed> = Vec::new();
        let mut continuing = false;
        for raw in listing.lines() {
            let Some(row) = parse_row(raw) else { continue };
            if continuing {
                if let (Some(offset), Some(last)) = (row.offset, listed.last_mut()) {
                    last.chunks.push((offset, parse_bytes(row.bytes)));
                }
                continuing = row.bytes.trim_end().ends_with('-');
                continue;
            }
            frames.truncate(row.level);
            while frames.len() < row.level {
                let depth = frames.len();
                let invoker = last_at.get(depth).copied().flatten();
                let frame = match invoker.map(|i| &table.sites[i]) {
                    Some(site) if starts_with_word(&site.text, "%include") => {
                        Frame::Include(dirs.resolve(quoted(&site.text[8..])))
                    }
                    Some(site) if starts_with_word(&site.text, "%endrep") => Frame::Rep,
                    Some(site) => Frame::Macro { name: macro_name(&site.text).to_string(), site: invoker.unwrap() },
                    None => Frame::Rep,
                };
                frames.push(frame);
            }
            let file = file_of(&frames, &main, &macro_files);
            let text = row.text.trim();
            if let Some(name) = defined_macro(text) {
                if let Some(file) = &file {
                    macro_files.insert(name.to_ascii_lowercase(), file.clone());
                }
            }
            let outer_macro = frames.iter().find_map(|f| match f {
                Frame::Macro { name, site } => Some((name.clone(), *site)),
                _ => None,
            });
            let own = SourceLine {
                file: file.clone().unwrap_or_default(),
                line: row.line,
                text: text.to_string(),
                expansion: None,
            };
            let site = match outer_macro {
                Some((name, site)) => SourceLine {
                    expansion: Some(Expansion { name, file, line: row.line, text: text.to_string() }),
                    ..strip_expansion(&table.sites[site])
                },
                None => own.clone(),
            };
            // Invokers are remembered by what they say themselves.
            table.sites.push(own);
            let own_index = table.sites.len() - 1;
            table.sites.push(site);
            let site_index = table.sites.len() - 1;
            last_at.truncate(row.level + 1);
            last_at.resize(row.level + 1, None);
            last_at[row.level] = Some(own_index);
            continuing = row.bytes.trim_end().ends_with('-');
            if let Some(offset) = row.offset {
                listed.push(Listed { chunks: vec![(offset, parse_bytes(row.bytes))], site: site_index });
            }
        }
        table.place(listed, &sections);
        Ok(table)
    }

    /// Gives each listed line the section whose bytes it matches; where
    /// several match, the one it continues (nasm lists a section's lines at
    /// increasing offsets) wins.
    fn place(&mut self, listed: Vec<Listed>, sections: &[(String, Vec<u8>)]) {
        let mut current: Option<usize> = None;
        let mut next: Vec<u64> = vec![0; sections.len()];
        // Lines with only relocated bytes that continue no section yet (a
        // table of pointers opening `.data`): they go where the next line
        // with known bytes goes, if it follows them without a gap.
        let mut pending: Vec<Listed> = Vec::new();
        for entry in listed {
            let (start, end) = (entry.start(), entry.end());
            if end == start {
                continue;
            }
            if !entry.has_known_bytes() {
                match current.filter(|&c| next[c] == start && pending.is_empty()) {
                    Some(c) => {
                        self.sections.entry(sections[c].0.clone()).or_default().push((start, end, entry.site));
                        next[c] = end;
                    }
                    None => {
                        if pending.last().is_some_and(|p| p.end() != start) {
                            self.unplaced += pending.len();
                            pending.clear();
                        }
                        pending.push(entry);
                    }
                }
                continue;
            }
            let run_start = match pending.last() {
                Some(p) if p.end() == start => pending[0].start(),
                _ => {
                    self.unplaced += pending.len();
                    pending.clear();
                    start
                }
            };
            let continues = |i: usize| next[i] == run_start;
            let candidates: Vec<usize> = (0..sections.len()).filter(|&i| entry.matches(&sections[i].1)).collect();
            let chosen = current
                .filter(|c| candidates.contains(c) && continues(*c))
                .or_else(|| candidates.iter().copied().find(|&i| continues(i)))
                .or_else(|| current.filter(|c| candidates.contains(c)))
                .or_else(|| candidates.first().copied());
            match chosen {
                Some(i) => {
                    let ranges = self.sections.entry(sections[i].0.clone()).or_default();
                    for p in pending.drain(..) {
                        ranges.push((p.start(), p.end(), p.site));
                    }
                    ranges.push((start, end, entry.site));
                    next[i] = end;
                    current = Some(i);
                }
                None => {
                    self.unplaced += 1 + pending.len();
                    pending.clear();
                }
            }
        }
        self.unplaced += pending.len();
        for ranges in self.sections.values_mut() {
            ranges.sort_by_key(|r| (r.0, r.1));
        }
    }

    /// The source line of the byte at `offset` in the object's `section`.
    pub fn at(&self, section: &str, offset: u64) -> Option<&SourceLine> {
        let ranges = self.sections.get(section)?;
        let i = ranges.partition_point(|r| r.0 <= offset);
        let (start, end, site) = *ranges.get(i.checked_sub(1)?)?;
        (start <= offset && offset < end).then(|| &self.sites[site])
    }

    /// How many listed lines with bytes matched no section (0 for every
    /// listing nasm wrote for its own object).
    pub fn unplaced(&self) -> usize {
        self.unplaced
    }
}

fn strip_expansion(line: &SourceLine) -> SourceLine {
    SourceLine { expansion: None, ..line.clone() }
}

fn starts_with_word(text: &str, word: &str) -> bool {
    text.get(..word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word))
        && text[word.len()..].chars().next().is_none_or(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '<')
}

/// `"name"`, `'name'` or `<name>` → `name`.
fn quoted(arg: &str) -> &str {
    let arg = arg.trim();
    let arg = arg.split(';').next().unwrap_or(arg).trim();
    arg.trim_matches(['"', '\'', '<', '>'])
}

/// The macro a line invokes: its first word after an optional `label:`.
fn macro_name(text: &str) -> &str {
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("");
    if first.ends_with(':') { words.next().unwrap_or(first) } else { first.split(':').next_back().unwrap_or(first) }
        .trim_end_matches(',')
}

/// `%macro NAME n` (and `%imacro`, `%rmacro`, `%irmacro`) → `NAME`.
fn defined_macro(text: &str) -> Option<&str> {
    ["%macro", "%imacro", "%rmacro", "%irmacro"]
        .iter()
        .find(|d| starts_with_word(text, d))
        .and_then(|d| text[d.len()..].split_whitespace().next())
}

/// The file the lines at the innermost level come from.
fn file_of(frames: &[Frame], main: &str, macro_files: &HashMap<String, String>) -> Option<String> {
    let mut file = Some(main.to_string());
    for frame in frames {
        match frame {
            Frame::Include(name) => file = Some(name.clone()),
            Frame::Rep => {}
            Frame::Macro { name, .. } => file = macro_files.get(&name.to_ascii_lowercase()).cloned(),
        }
    }
    file
}

/// Where the linker put one section of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The section's name in the object.
    pub section: String,
    /// Its first address in the linked module (as linked: before any slide).
    pub address: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// The object's sections as placed in one linked module.
#[derive(Debug, Clone, Default)]
pub struct LinkMap {
    /// One per section the map places.
    pub placements: Vec<Placement>,
}

impl LinkMap {
    /// Reads `target`'s linker map for the object `object_name` (its file
    /// name), whose bytes are `object`.
    pub fn parse(target: Target, map: &str, object_name: &str, object: &[u8]) -> Result<LinkMap, LinesError> {
        let file = object::File::parse(object)?;
        let placements = match target {
            Target::Linux => elf_placements(map, object_name, &file),
            Target::Macos => anchor(&file, &macho_symbols(map, object_name)),
            Target::Windows => anchor(&file, &pe_symbols(map, object_name)),
        };
        if placements.is_empty() {
            return Err(LinesError::NotInMap(object_name.to_string()));
        }
        Ok(LinkMap { placements })
    }

    /// The object's section and offset of a linked address.
    pub fn locate(&self, address: u64) -> Option<(&str, u64)> {
        self.placements
            .iter()
            .find(|p| p.address <= address && address < p.address + p.size.max(1))
            .map(|p| (p.section.as_str(), address - p.address))
    }
}

fn named(path: &str, object_name: &str) -> bool {
    path.rsplit(['/', '\\', ':']).next() == Some(object_name)
}

/// ld.lld: `VMA LMA Size Align Out In Symbol`, input sections as `obj:(.text)`.
fn elf_placements(map: &str, object_name: &str, file: &object::File<'_>) -> Vec<Placement> {
    let mut out = Vec::new();
    for line in map.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [vma, _lma, size, _align, input] = cols[..] else { continue };
        let Some((path, section)) = input.rsplit_once(":(") else { continue };
        let section = section.trim_end_matches(')');
        if !named(path, object_name) || file.section_by_name(section).is_none() {
            continue;
        }
        if let (Ok(address), Ok(size)) = (u64::from_str_radix(vma, 16), u64::from_str_radix(size, 16)) {
            out.push(Placement { section: section.to_string(), address, size });
        }
    }
    out
}

/// ld64.lld: `# Object files:` `[  1] path`, then `# Symbols:` rows
/// `0xADDR 0xSIZE [  1] name`.
fn macho_symbols(map: &str, object_name: &str) -> Vec<(String, u64)> {
    let mut ours = Vec::new();
    let mut symbols = Vec::new();
    let mut part = "";
    for line in map.lines() {
        if let Some(header) = line.strip_prefix("# ") {
            // Column headings (`# Address Size ...`) keep the part they head.
            if header.ends_with(':') {
                part = header;
            }
            continue;
        }
        let index = |s: &str| {
            s.split_once('[')
                .and_then(|(_, r)| r.split_once(']'))
                .map(|(n, r)| (n.trim().to_string(), r.trim().to_string()))
        };
        match part {
            "Object files:" => {
                if let Some((n, path)) = index(line) {
                    if named(&path, object_name) {
                        ours.push(n);
                    }
                }
            }
            "Symbols:" => {
                let Some(address) = line
                    .split_whitespace()
                    .next()
                    .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
                else {
                    continue;
                };
                if let Some((n, name)) = index(line) {
                    if ours.contains(&n) {
                        symbols.push((name, address));
                    }
                }
            }
            _ => {}
        }
    }
    symbols
}

/// lld-link `/MAP`: rows `0001:00000002  Name  0000000180001002 f  obj.obj`
/// under "Publics by Value" and "Static symbols"; the address is the one at
/// the preferred image base.
fn pe_symbols(map: &str, object_name: &str) -> Vec<(String, u64)> {
    let mut symbols = Vec::new();
    for line in map.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 4 || !cols[0].contains(':') || !named(cols[cols.len() - 1], object_name) {
            continue;
        }
        if let Ok(address) = u64::from_str_radix(cols[2], 16) {
            symbols.push((cols[1].to_string(), address));
        }
    }
    symbols
}

/// Each section's base from a symbol the map places and the object defines
/// in it (address in the module minus offset in the section).
fn anchor(file: &object::File<'_>, placed: &[(String, u64)]) -> Vec<Placement> {
    let mut out: Vec<Placement> = Vec::new();
    for symbol in file.symbols() {
        let (Ok(name), object::SymbolSection::Section(index)) = (symbol.name(), symbol.section()) else { continue };
        let Some((_, address)) = placed.iter().find(|(n, _)| n == name) else { continue };
        let Ok(section) = file.section_by_index(index) else { continue };
        let Ok(section_name) = section.name() else { continue };
        if out.iter().any(|p| p.section == section_name) {
            continue;
        }
        // Mach-O objects give symbols addresses, not offsets.
        let offset = symbol.address() - section.address();
        out.push(Placement { section: section_name.to_string(), address: address - offset, size: section.size() });
    }
    out
}

/// A module's line table: `(start, end, "src/x.asm:LINE: text")` ranges
/// of linked addresses (see [`ModuleLines::table`]).
pub type LineTable = Vec<(u64, u64, String)>;

/// One module file's line table, by its file name in the wheel.
pub type ModuleTable = (String, LineTable);

/// Line information for one linked module: the object's line tables and
/// where the linker put its sections.
#[derive(Debug)]
pub struct ModuleLines {
    /// The object's lines.
    pub object: ObjectLines,
    /// Its placement in the module.
    pub map: LinkMap,
}

impl ModuleLines {
    /// The source line of a linked address (an address as linked: ELF and
    /// Mach-O from 0, PE at its preferred base; subtract a loader's slide first).
    pub fn at_address(&self, address: u64) -> Option<&SourceLine> {
        let (section, offset) = self.map.locate(address)?;
        self.object.at(section, offset)
    }
}

impl ModuleLines {
    /// Builds a linked module's lines from what the build keeps in its
    /// target directory: the object (`obj/<module>.<ext>`), its listing
    /// beside it (`listing_path`) and the map of `variant` (`map_path`).
    /// The sandboxed tools wrote them: each is read back through `root`
    /// (no link followed, regular files only, [`LINES_INPUT_MAX`]).
    /// Returns the object's bytes too.
    pub fn from_work_dir(
        root: &crate::readback::Root,
        target: Target,
        target_dir: &Path,
        variant: &str,
        module: &str,
        dirs: &SourceDirs,
    ) -> Result<(ModuleLines, Vec<u8>), LinesError> {
        let object = target_dir.join("obj").join(format!("{module}.{}", target.object_extension()));
        let read = |path: &Path, what: &str| root.read(path, LINES_INPUT_MAX, what);
        let listing = String::from_utf8_lossy(&read(&listing_path(&object), "a listing")?).into_owned();
        let map = String::from_utf8_lossy(&read(&map_path(target_dir, variant, module), "a linker map")?).into_owned();
        let bytes = read(&object, "an object")?;
        let name = object.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let lines = ModuleLines {
            object: ObjectLines::from_listing(&listing, &bytes, dirs)?,
            map: LinkMap::parse(target, &map, name, &bytes)?,
        };
        Ok((lines, bytes))
    }

    /// Every placed range as `(start, end, "src/x.asm:LINE: text")` in
    /// linked addresses, sorted: the table the run-time ABI guards read to
    /// name lines (written for the harness, never read back by the host).
    pub fn table(&self) -> LineTable {
        let mut out = Vec::new();
        for placement in &self.map.placements {
            for &(start, end, site) in self.object.sections.get(&placement.section).into_iter().flatten() {
                out.push((placement.address + start, placement.address + end, self.object.sites[site].to_string()));
            }
        }
        out.sort();
        out
    }
}

/// Where the build keeps the listing of an object: beside it, `.lst`
/// (`<target dir>/obj/<module>.lst`).
pub fn listing_path(object: &Path) -> PathBuf {
    object.with_extension("lst")
}

/// Where the build keeps the linker map of one module of one variant
/// (`abi3`, `cp311`): `<target dir>/obj/<variant>/<module>.map`.
pub fn map_path(target_dir: &Path, variant: &str, module: &str) -> PathBuf {
    target_dir.join("obj").join(variant).join(format!("{module}.map"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_columns_with_relocations_repeats_and_reservations() {
        assert_eq!(parse_bytes("B807000000"), [0xB8, 7, 0, 0, 0].map(Some));
        assert_eq!(parse_bytes("488B05(00000000)"), vec![Some(0x48), Some(0x8B), Some(5), None, None, None, None]);
        assert_eq!(parse_bytes("90<rep 3h>"), vec![Some(0x90); 3]);
        assert_eq!(parse_bytes("<res 4h>"), vec![None; 4]);
        assert_eq!(parse_bytes("48B8-"), vec![Some(0x48), Some(0xB8)]);
    }

    #[test]
    fn macro_names_after_labels() {
        assert_eq!(macro_name("PYCALL PyLong_FromLong"), "PYCALL");
        assert_eq!(macro_name("start: TWICE"), "TWICE");
        assert_eq!(defined_macro("%imacro Foo 1-*"), Some("Foo"));
        assert_eq!(quoted(" \"inc/x.inc\" ; comment"), "inc/x.inc");
    }
}
