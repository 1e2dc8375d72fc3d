//! Unpacking an uploaded `.zip` or `.tar.gz` in memory, refusing links,
//! paths outside the project, too many entries and decompression bombs.
//! One top-level folder shared by every entry is stripped.
//!
//! Every decompressed byte is counted, not only file data: a tar archive is
//! read through [`CappedReader`] between the gzip decoder and the tar reader,
//! so no record of any kind (GNU long names and pax headers, which the `tar`
//! crate reads whole before we see the entry) grows past the cap; a zip's
//! central directory is checked before it is parsed, and each entry's
//! decompressed bytes are counted as they come.

use std::cell::Cell;
use std::io::Read;
use std::path::PathBuf;
use std::rc::Rc;

use super::{safe_relative, shown, UploadError, MAX_FILES};

/// What tar headers, long names and pax records may add to the file data.
const TAR_METADATA: u64 = 8 << 20;

/// Unpacks `bytes`; the format comes from the file name or the first bytes.
/// It decompresses (CPU-bound): call it off the async runtime.
pub fn extract(filename: &str, bytes: &[u8], max_expanded: u64) -> Result<Vec<(PathBuf, Vec<u8>)>, UploadError> {
    let lower = filename.to_ascii_lowercase();
    let files = if lower.ends_with(".zip") || bytes.starts_with(b"PK\x03\x04") {
        unzip(bytes, max_expanded)?
    } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") || bytes.starts_with(&[0x1f, 0x8b]) {
        untar(bytes, max_expanded)?
    } else {
        return Err(refuse(format!("`{}` is not a .zip or .tar.gz archive", shown(filename))));
    };
    if files.is_empty() {
        return Err(refuse("the archive holds no files".into()));
    }
    Ok(strip_common_folder(files))
}

/// A reader that fails once more than `cap` bytes went through it, and says
/// so in `tripped` (the tar reader wraps our error in its own).
struct CappedReader<R> {
    inner: R,
    left: u64,
    tripped: Rc<Cell<bool>>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more than the cap tells a full archive from a bomb.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.tripped.set(true);
            return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, "the archive unpacks to too much"));
        }
        let wanted = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..wanted])?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn too_large(max_expanded: u64) -> UploadError {
    UploadError::ArchiveTooLarge { max: max_expanded }
}

fn refuse(message: String) -> UploadError {
    UploadError::BadArchive(message)
}

/// Reads at most `budget` bytes of an entry, failing past it.
fn read_capped(reader: &mut impl Read, budget: &mut u64, max_expanded: u64) -> Result<Vec<u8>, UploadError> {
    let mut data = Vec::new();
    reader
        .take(*budget + 1)
        .read_to_end(&mut data)
        .map_err(|e| refuse(format!("the archive could not be read: {}", shown(&e.to_string()))))?;
    if data.len() as u64 > *budget {
        return Err(too_large(max_expanded));
    }
    *budget -= data.len() as u64;
    Ok(data)
}

fn unzip(bytes: &[u8], max_expanded: u64) -> Result<Vec<(PathBuf, Vec<u8>)>, UploadError> {
    check_central_directory(bytes)?;
    let unreadable =
        |e: zip::result::ZipError| refuse(format!("the zip archive could not be read: {}", shown(&e.to_string())));
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(unreadable)?;
    if zip.len() > MAX_FILES {
        return Err(refuse(format!("the archive has more than {MAX_FILES} entries")));
    }
    // What the central directory claims, before anything is decompressed.
    let mut claimed: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(unreadable)?;
        claimed = claimed.saturating_add(entry.size());
        if claimed > max_expanded {
            return Err(too_large(max_expanded));
        }
    }
    let mut budget = max_expanded;
    let mut files = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(unreadable)?;
        let name = entry.name().map_err(|e| refuse(e.to_string()))?.to_string();
        if entry.is_symlink() {
            return Err(refuse(format!("archive entry `{}` is a symbolic link", shown(&name))));
        }
        if entry.is_dir() {
            safe_relative(name.trim_end_matches('/')).map_err(refuse)?;
            continue;
        }
        let path = safe_relative(&name).map_err(refuse)?;
        // Counted as the decompressor yields it, whatever the entry claimed.
        files.push((path, read_capped(&mut entry, &mut budget, max_expanded)?));
    }
    Ok(files)
}

/// Refuses a zip whose end-of-central-directory record (or its zip64 twin)
/// claims more entries than a project may have, or a directory larger than
/// the upload: the zip reader would otherwise allocate for the claim.
fn check_central_directory(bytes: &[u8]) -> Result<(), UploadError> {
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as u64);
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as u64);
    let u64_at = |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    // The record is 22 bytes plus a comment of at most 65535.
    let floor = bytes.len().saturating_sub(22 + 65_535);
    let Some(end) = (floor..bytes.len().saturating_sub(21)).rev().find(|&at| bytes[at..].starts_with(b"PK\x05\x06"))
    else {
        return Ok(()); // not a zip: the reader says so
    };
    let (mut entries, mut size) = (u16_at(end + 10).unwrap_or(0), u32_at(end + 12).unwrap_or(0));
    if entries == 0xFFFF || size == 0xFFFF_FFFF {
        // zip64: the locator just before points at the real record.
        let record = end
            .checked_sub(20)
            .filter(|&at| bytes[at..].starts_with(b"PK\x06\x07"))
            .and_then(|at| u64_at(at + 8))
            .and_then(|offset| usize::try_from(offset).ok())
            .filter(|&at| bytes.get(at..).is_some_and(|b| b.starts_with(b"PK\x06\x06")));
        if let Some(at) = record {
            entries = u64_at(at + 32).unwrap_or(u64::MAX);
            size = u64_at(at + 40).unwrap_or(u64::MAX);
        }
    }
    if entries > MAX_FILES as u64 {
        return Err(refuse(format!("the archive has more than {MAX_FILES} entries")));
    }
    if size > bytes.len() as u64 {
        return Err(refuse("the zip archive's central directory is larger than the archive".into()));
    }
    Ok(())
}

fn untar(bytes: &[u8], max_expanded: u64) -> Result<Vec<(PathBuf, Vec<u8>)>, UploadError> {
    let tripped = Rc::new(Cell::new(false));
    let capped = CappedReader {
        inner: flate2::read::GzDecoder::new(bytes),
        left: max_expanded + TAR_METADATA,
        tripped: tripped.clone(),
    };
    let mut tar = tar::Archive::new(capped);
    let unreadable = |e: std::io::Error| {
        if tripped.get() {
            too_large(max_expanded)
        } else {
            refuse(format!("the tar archive could not be read: {}", shown(&e.to_string())))
        }
    };
    let mut budget = max_expanded;
    let mut files = Vec::new();
    let entries = tar.entries().map_err(unreadable)?;
    for (count, entry) in entries.enumerate() {
        if count >= MAX_FILES {
            return Err(refuse(format!("the archive has more than {MAX_FILES} entries")));
        }
        let mut entry = entry.map_err(unreadable)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let path = safe_relative(&name).map_err(refuse)?;
                let data = read_capped(&mut entry, &mut budget, max_expanded).map_err(|e| match tripped.get() {
                    true => too_large(max_expanded),
                    false => e,
                })?;
                files.push((path, data));
            }
            tar::EntryType::Directory => {
                safe_relative(name.trim_end_matches('/')).map_err(refuse)?;
            }
            // pax and GNU long-name headers are metadata the reader applies itself.
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader | tar::EntryType::GNULongName => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                return Err(refuse(format!("archive entry `{}` is a link", shown(&name))));
            }
            other => return Err(refuse(format!("archive entry `{}` is not a regular file ({other:?})", shown(&name)))),
        }
    }
    Ok(files)
}

/// `pymult-1.0/src/pymult.asm` → `src/pymult.asm` when every entry is under `pymult-1.0/`.
pub(super) fn strip_common_folder(files: Vec<(PathBuf, Vec<u8>)>) -> Vec<(PathBuf, Vec<u8>)> {
    let Some((first_path, _)) = files.first() else { return files };
    let first = first_path.components().next().map(|c| c.as_os_str().to_os_string());
    let shared = first.filter(|top| {
        files
            .iter()
            .all(|(p, _)| p.components().count() > 1 && p.components().next().map(|c| c.as_os_str()) == Some(top))
    });
    match shared {
        Some(top) => files.into_iter().map(|(p, d)| (p.strip_prefix(&top).expect("shared").to_path_buf(), d)).collect(),
        None => files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::tests::zip_of;

    #[test]
    fn strips_one_shared_top_folder() {
        let bytes = zip_of(&[("p-1/src/m.asm", b"x"), ("p-1/pyproject.toml", b"y")]);
        let files = extract("p.zip", &bytes, 1 << 20).unwrap();
        let names: Vec<_> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(names, ["src/m.asm", "pyproject.toml"]);
    }

    #[test]
    fn refuses_escapes_and_bombs() {
        let bytes = zip_of(&[("../evil.asm", b"x")]);
        assert_eq!(
            extract("p.zip", &bytes, 1 << 20).unwrap_err().to_string(),
            "`../evil.asm` leaves the project (`..`)"
        );
        let bomb = zip_of(&[("big.asm", &vec![b'a'; 10_000])]);
        assert!(matches!(extract("p.zip", &bomb, 1000), Err(UploadError::ArchiveTooLarge { max: 1000 })));
        assert_eq!(
            extract("p.rar", b"Rar!", 1000).unwrap_err().to_string(),
            "`p.rar` is not a .zip or .tar.gz archive"
        );
    }

    #[test]
    fn a_long_name_record_past_the_cap_is_too_large() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        header.set_entry_type(tar::EntryType::GNULongName);
        let name = TAR_METADATA + 2000;
        header.set_size(name);
        header.set_cksum();
        std::io::Write::write_all(&mut gz, header.as_bytes()).unwrap();
        std::io::Write::write_all(&mut gz, &vec![b'a'; name as usize]).unwrap();
        let err = extract("p.tar.gz", &gz.finish().unwrap(), 1000).unwrap_err();
        assert!(matches!(err, UploadError::ArchiveTooLarge { max: 1000 }), "{err:?}");
        assert_eq!(err.to_string(), "the archive unpacks to more than 1000 bytes");
    }

    #[test]
    fn a_zip_claiming_too_many_entries_is_refused_before_parsing() {
        let mut bytes = zip_of(&[("src/m.asm", b"x")]);
        let end = bytes.len() - 22;
        assert!(bytes[end..].starts_with(b"PK\x05\x06"));
        bytes[end + 8..end + 12].copy_from_slice(&[0xFE, 0xFF, 0xFE, 0xFF]);
        assert_eq!(
            extract("p.zip", &bytes, 1 << 20).unwrap_err().to_string(),
            "the archive has more than 2000 entries"
        );
        let mut bytes = zip_of(&[("src/m.asm", b"x")]);
        bytes[end + 12..end + 16].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        assert_eq!(
            extract("p.zip", &bytes, 1 << 20).unwrap_err().to_string(),
            "the zip archive's central directory is larger than the archive"
        );
    }

    #[test]
    fn a_zip_whose_entries_claim_more_than_the_budget_is_refused_early() {
        let bytes = zip_of(&[("src/a.asm", &[b';'; 600]), ("src/b.asm", &[b';'; 600])]);
        assert!(matches!(extract("p.zip", &bytes, 1000), Err(UploadError::ArchiveTooLarge { max: 1000 })));
    }
}
