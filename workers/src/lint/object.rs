//! One object file as the check sees it: sections with their bytes,
//! symbols, and relocations resolved to a place (a section and an offset in
//! it) or an external name, alike for ELF, Mach-O and COFF.

use std::collections::{BTreeMap, HashMap};

use object::{
    Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget, SectionIndex, SectionKind, SymbolKind,
};

use crate::platform::Target;

/// Where a relocation (or an address in code) points.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Place {
    /// Inside this object: section index (into [`Obj::sections`]) and offset.
    Local(usize, u64),
    /// An undefined symbol, named without the Mach-O `_` and the Win64 `__imp_`.
    External(String),
}

/// A section of the object.
#[derive(Debug)]
pub(crate) struct Section {
    pub name: String,
    pub data: Vec<u8>,
    /// Its address in the object (Mach-O places sections one after another).
    pub address: u64,
    pub code: bool,
    /// Holds data the program may write (`.data`, `.bss`, `__data`).
    pub writable: bool,
    /// Relocation offset → (size in bits, where it points).
    pub relocations: BTreeMap<u64, (u8, Place)>,
}

/// The object, parsed once.
#[derive(Debug)]
pub(crate) struct Obj {
    pub target: Target,
    pub sections: Vec<Section>,
    /// Defined symbols: name (without the Mach-O `_`) → place.
    pub symbols: BTreeMap<String, (usize, u64)>,
}

impl Obj {
    pub fn parse(target: Target, bytes: &[u8]) -> Result<Obj, object::Error> {
        let file = object::File::parse(bytes)?;
        // object's section indices → ours.
        let mut index: HashMap<SectionIndex, usize> = HashMap::new();
        let mut sections = Vec::new();
        for s in file.sections() {
            let kind = s.kind();
            if matches!(kind, SectionKind::Debug | SectionKind::Metadata | SectionKind::Note | SectionKind::Other) {
                continue;
            }
            let data = if kind == SectionKind::UninitializedData { Vec::new() } else { s.data()?.to_vec() };
            index.insert(s.index(), sections.len());
            sections.push(Section {
                name: s.name().unwrap_or_default().to_string(),
                data,
                address: s.address(),
                code: kind == SectionKind::Text,
                writable: matches!(
                    kind,
                    SectionKind::Data | SectionKind::UninitializedData | SectionKind::Tls | SectionKind::TlsVariables
                ),
                relocations: BTreeMap::new(),
            });
        }
        let strip = |name: &str| -> String {
            let name = if target == Target::Macos { name.strip_prefix('_').unwrap_or(name) } else { name };
            name.strip_prefix("__imp_").unwrap_or(name).to_string()
        };
        let mut symbols = BTreeMap::new();
        for sym in file.symbols() {
            let (Ok(name), Some(si)) = (sym.name(), sym.section_index()) else { continue };
            let Some(&ours) = index.get(&si) else { continue };
            if sym.kind() == SymbolKind::Section || name.is_empty() {
                continue;
            }
            symbols.insert(strip(name), (ours, sym.address() - sections[ours].address));
        }
        for s in file.sections() {
            let Some(&ours) = index.get(&s.index()) else { continue };
            for (at, reloc) in s.relocations() {
                let implicit =
                    if reloc.has_implicit_addend() { read_signed(&sections[ours].data, at, reloc.size()) } else { 0 };
                let value = implicit.wrapping_add(reloc.addend());
                let relative = matches!(
                    reloc.kind(),
                    RelocationKind::Relative | RelocationKind::PltRelative | RelocationKind::GotRelative
                );
                let place = match reloc.target() {
                    RelocationTarget::Symbol(si) => {
                        let Ok(sym) = file.symbol_by_index(si) else { continue };
                        match sym.section_index().and_then(|i| index.get(&i)) {
                            // A relative reference's addend counts from the
                            // relocated field; ours from the instruction's
                            // end, which is `size` bytes after it (for the
                            // rip-relative operands nasm emits last).
                            Some(&sec) => {
                                let base = sym.address().wrapping_sub(sections[sec].address) as i64;
                                let bias = if relative { i64::from(reloc.size() / 8) } else { 0 };
                                Place::Local(sec, base.wrapping_add(value).wrapping_add(bias) as u64)
                            }
                            None => Place::External(strip(sym.name().unwrap_or_default())),
                        }
                    }
                    // Mach-O's section-relative form: the field holds the
                    // address itself (absolute) or its distance from the
                    // end of the field (relative).
                    RelocationTarget::Section(si) => {
                        let Some(&sec) = index.get(&si) else { continue };
                        let absolute = if relative {
                            (s.address() + at + u64::from(reloc.size() / 8)).wrapping_add(implicit as u64)
                        } else {
                            implicit as u64
                        };
                        Place::Local(sec, absolute.wrapping_sub(sections[sec].address))
                    }
                    _ => continue,
                };
                sections[ours].relocations.insert(at, (reloc.size(), place));
            }
        }
        Ok(Obj { target, sections, symbols })
    }

    /// The relocation inside `[start, end)` of a section, if any.
    pub fn relocation_in(&self, section: usize, start: u64, end: u64) -> Option<(u64, &Place)> {
        self.sections[section].relocations.range(start..end).next().map(|(at, (_, p))| (*at, p))
    }

    /// The name of the symbol defined exactly at a place, if any.
    pub fn symbol_at(&self, section: usize, offset: u64) -> Option<&str> {
        self.symbols.iter().find(|(_, &(s, o))| s == section && o == offset).map(|(n, _)| n.as_str())
    }
}

fn read_signed(data: &[u8], at: u64, bits: u8) -> i64 {
    let at = at as usize;
    let get = |n: usize| data.get(at..at + n);
    match bits {
        64 => get(8).map_or(0, |b| i64::from_le_bytes(b.try_into().unwrap())),
        32 => get(4).map_or(0, |b| i64::from(i32::from_le_bytes(b.try_into().unwrap()))),
        _ => 0,
    }
}
