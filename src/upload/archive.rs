//! Unpacking an uploaded `.zip` or `.tar.gz` in memory, refusing links,
//! paths outside the project, too many entries and decompression bombs.
//! One top-level folder shared by every entry is stripped.

use std::io::Read;
use std::path::PathBuf;

use super::{safe_relative, MAX_FILES};
use crate::api::error::ApiError;

/// Unpacks `bytes`; the format comes from the file name or the first bytes.
pub fn extract(filename: &str, bytes: &[u8], max_expanded: u64) -> Result<Vec<(PathBuf, Vec<u8>)>, ApiError> {
    let lower = filename.to_ascii_lowercase();
    let files = if lower.ends_with(".zip") || bytes.starts_with(b"PK\x03\x04") {
        unzip(bytes, max_expanded)?
    } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") || bytes.starts_with(&[0x1f, 0x8b]) {
        untar(bytes, max_expanded)?
    } else {
        return Err(ApiError::bad_request("bad_archive", format!("`{filename}` is not a .zip or .tar.gz archive")));
    };
    if files.is_empty() {
        return Err(ApiError::bad_request("bad_archive", "the archive holds no files"));
    }
    Ok(strip_common_folder(files))
}

fn refuse(message: String) -> ApiError {
    ApiError::bad_request("bad_archive", message)
}

/// Reads at most `budget` bytes of an entry, failing past it.
fn read_capped(reader: &mut impl Read, budget: &mut u64, max_expanded: u64) -> Result<Vec<u8>, ApiError> {
    let mut data = Vec::new();
    reader
        .take(*budget + 1)
        .read_to_end(&mut data)
        .map_err(|e| refuse(format!("the archive could not be read: {e}")))?;
    if data.len() as u64 > *budget {
        return Err(ApiError::too_large(format!("the archive unpacks to more than {max_expanded} bytes")));
    }
    *budget -= data.len() as u64;
    Ok(data)
}

fn unzip(bytes: &[u8], max_expanded: u64) -> Result<Vec<(PathBuf, Vec<u8>)>, ApiError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| refuse(format!("the zip archive could not be read: {e}")))?;
    if zip.len() > MAX_FILES {
        return Err(refuse(format!("the archive has more than {MAX_FILES} entries")));
    }
    let mut budget = max_expanded;
    let mut files = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| refuse(format!("the zip archive could not be read: {e}")))?;
        let name = entry.name().map_err(|e| refuse(e.to_string()))?.to_string();
        if entry.is_symlink() {
            return Err(refuse(format!("archive entry `{name}` is a symbolic link")));
        }
        if entry.is_dir() {
            safe_relative(name.trim_end_matches('/')).map_err(refuse)?;
            continue;
        }
        let path = safe_relative(&name).map_err(refuse)?;
        files.push((path, read_capped(&mut entry, &mut budget, max_expanded)?));
    }
    Ok(files)
}

fn untar(bytes: &[u8], max_expanded: u64) -> Result<Vec<(PathBuf, Vec<u8>)>, ApiError> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut budget = max_expanded;
    let mut files = Vec::new();
    let entries = tar.entries().map_err(|e| refuse(format!("the tar archive could not be read: {e}")))?;
    for (count, entry) in entries.enumerate() {
        if count >= MAX_FILES {
            return Err(refuse(format!("the archive has more than {MAX_FILES} entries")));
        }
        let mut entry = entry.map_err(|e| refuse(format!("the tar archive could not be read: {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let path = safe_relative(&name).map_err(refuse)?;
                files.push((path, read_capped(&mut entry, &mut budget, max_expanded)?));
            }
            tar::EntryType::Directory => {
                safe_relative(name.trim_end_matches('/')).map_err(refuse)?;
            }
            // pax and GNU long-name headers are metadata the reader applies itself.
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader | tar::EntryType::GNULongName => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                return Err(refuse(format!("archive entry `{name}` is a link")));
            }
            other => return Err(refuse(format!("archive entry `{name}` is not a regular file ({other:?})"))),
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

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut zip, data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

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
        assert_eq!(extract("p.zip", &bytes, 1 << 20).unwrap_err().message, "`../evil.asm` leaves the project (`..`)");
        let bomb = zip_of(&[("big.asm", &vec![b'a'; 10_000])]);
        let err = extract("p.zip", &bomb, 1000).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(extract("p.rar", b"Rar!", 1000).unwrap_err().message, "`p.rar` is not a .zip or .tar.gz archive");
    }
}
