//! ELF rules: a shared object, no executable stack, no text relocations, no
//! libpython, only libraries manylinux allows; records the glibc versions used.

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::LittleEndian;

use super::{Problem, Verified};

/// Libraries every manylinux policy allows (auditwheel's core list).
const MANYLINUX_LIBS: [&str; 10] = [
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libutil.so.1",
    "libcrypt.so.1",
    "ld-linux-x86-64.so.2",
];

pub(super) fn check(file: &object::File<'_>, bytes: &[u8], verified: &mut Verified) -> Vec<Problem> {
    let mut problems = Vec::new();
    let elf = match file {
        object::File::Elf64(_) => match ElfFile64::<LittleEndian>::parse(bytes) {
            Ok(elf) => elf,
            Err(e) => return vec![Problem::Unreadable(e.to_string())],
        },
        _ => return vec![Problem::Other("is not a 64-bit ELF file".into())],
    };
    let endian = LittleEndian;
    let header = elf.elf_header();
    if header.e_type(endian) != elf::ET_DYN {
        problems.push(Problem::Other("is not a shared object (ET_DYN)".into()));
    }
    let stack = elf.elf_program_headers().iter().find(|ph| ph.p_type(endian) == elf::PT_GNU_STACK);
    match stack {
        Some(ph) if ph.p_flags(endian).0 & elf::PF_X.0 != 0 => problems.push(Problem::Other(
            "has an executable stack (PT_GNU_STACK is RWX); glibc 2.41 and newer refuse to load it".into(),
        )),
        None => problems.push(Problem::Other(
            "has no PT_GNU_STACK header, so its stack is executable; glibc 2.41 and newer refuse to load it".into(),
        )),
        _ => {}
    }

    let sections = elf.elf_section_table();
    match sections.dynamic_table(endian, bytes) {
        Ok(table) => {
            for entry in table.iter() {
                match entry.tag {
                    elf::DT_TEXTREL => problems.push(text_relocations()),
                    elf::DT_FLAGS if entry.val & elf::DF_TEXTREL.0 != 0 => problems.push(text_relocations()),
                    elf::DT_NEEDED => {
                        let name =
                            table.string(entry).map(|s| String::from_utf8_lossy(s).into_owned()).unwrap_or_default();
                        if name.starts_with("libpython") {
                            problems.push(Problem::Other(format!(
                                "links `{name}`; extension modules must not link libpython (manylinux policy)"
                            )));
                        } else if !MANYLINUX_LIBS.contains(&name.as_str()) {
                            problems.push(Problem::Other(format!("links `{name}`, which no manylinux policy allows")));
                        }
                    }
                    _ => {}
                }
            }
        }
        Err(e) => problems.push(Problem::Unreadable(e.to_string())),
    }
    problems.dedup();

    match glibc_needed(&elf, bytes) {
        Ok(glibc) => verified.glibc = glibc,
        Err(e) => problems.push(Problem::Unreadable(e.to_string())),
    }
    problems
}

fn text_relocations() -> Problem {
    Problem::Other("has text relocations (DT_TEXTREL); use `wrt ..plt` and `wrt ..got` for Python symbols".into())
}

/// The newest `GLIBC_x.y` version any symbol needs.
pub(super) fn glibc_needed(elf: &ElfFile64<'_, LittleEndian>, bytes: &[u8]) -> object::Result<Option<(u32, u32)>> {
    let endian = LittleEndian;
    let sections = elf.elf_section_table();
    let Some((mut needs, link)) = sections.gnu_verneed(endian, bytes)? else {
        return Ok(None);
    };
    let strings = sections.strings(endian, bytes, link)?;
    let mut newest = None;
    while let Some((_, mut aux)) = needs.next()? {
        while let Some(entry) = aux.next()? {
            let name = String::from_utf8_lossy(entry.name(endian, strings)?).into_owned();
            if let Some(v) = name.strip_prefix("GLIBC_").and_then(parse_version) {
                newest = newest.max(Some(v));
            }
        }
    }
    Ok(newest)
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
