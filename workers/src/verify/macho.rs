//! Mach-O rules: a bundle, no dylibs beyond the system's, and a minimum macOS
//! no newer than the wheel's platform tag.

use object::macho;
use object::read::macho::{LoadCommandVariant, MachHeader, MachOFile64};
use object::LittleEndian;

use super::{Expect, Problem};

pub(super) fn check(file: &object::File<'_>, bytes: &[u8], expect: &Expect<'_>) -> Vec<Problem> {
    if !matches!(file, object::File::MachO64(_)) {
        return vec![Problem::Other("is not a 64-bit Mach-O file".into())];
    }
    let macho = match MachOFile64::<LittleEndian>::parse(bytes) {
        Ok(m) => m,
        Err(e) => return vec![Problem::Unreadable(e.to_string())],
    };
    let mut problems = Vec::new();
    if macho.macho_header().filetype(LittleEndian) != macho::MH_BUNDLE {
        problems.push(Problem::Other("is not a Mach-O bundle (MH_BUNDLE)".into()));
    }
    let mut min_os = None;
    match macho.macho_load_commands() {
        Ok(mut commands) => loop {
            match commands.next() {
                Ok(Some(command)) => match command.variant() {
                    Ok(LoadCommandVariant::VersionMin(v)) if command.cmd() == macho::LC_VERSION_MIN_MACOSX => {
                        min_os = Some(v.version.get(LittleEndian).0);
                    }
                    Ok(LoadCommandVariant::BuildVersion(v, _))
                        if v.platform.get(LittleEndian) == macho::PLATFORM_MACOS =>
                    {
                        min_os = Some(v.minos.get(LittleEndian).0);
                    }
                    Ok(LoadCommandVariant::Dylib(d)) if command.cmd() != macho::LC_ID_DYLIB => {
                        let name = command
                            .string(LittleEndian, d.dylib.name)
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .unwrap_or_default();
                        if !name.starts_with("/usr/lib/") && !name.starts_with("/System/") {
                            problems.push(Problem::Other(format!("links `{name}`, which is not a system library")));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        problems.push(Problem::Unreadable(e.to_string()));
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    problems.push(Problem::Unreadable(e.to_string()));
                    break;
                }
            }
        },
        Err(e) => problems.push(Problem::Unreadable(e.to_string())),
    }
    let tag = parse_macos(expect.macos_min);
    match min_os {
        None => problems.push(Problem::Other("records no minimum macOS version".into())),
        Some(found) if found > tag => problems.push(Problem::Other(format!(
            "needs macOS {} but the wheel is tagged for {}",
            show_macos(found),
            expect.macos_min
        ))),
        Some(_) => {}
    }
    problems
}

/// `10.9` → 0x000A0900, Mach-O's nibble encoding `xxxx.yy.zz`.
fn parse_macos(v: &str) -> u32 {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major << 16) | (minor << 8)
}

fn show_macos(v: u32) -> String {
    format!("{}.{}", v >> 16, (v >> 8) & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macos_versions_use_the_nibble_encoding() {
        assert_eq!(parse_macos("10.9"), 0x000A_0900);
        assert_eq!(show_macos(0x000B_0000), "11.0");
    }
}
