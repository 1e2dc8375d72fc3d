//! Byte-reproducible archives: a zip with `RECORD` for wheels, a tar.gz for
//! sdists. Entries are sorted, timestamps fixed, permissions normalised.

use std::io::Write;

use base64::Engine;
use sha2::{Digest, Sha256};

/// One file to put in an archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path inside the archive, `/`-separated.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Mark executable (extension modules).
    pub executable: bool,
}

/// The lowest time zip can store: 1980-01-01.
const ZIP_EPOCH: u64 = 315_532_800;

/// `sha256=<urlsafe base64, no padding>` as RECORD wants it.
pub fn record_hash(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    format!("sha256={}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
}

/// Lowercase hex sha256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a wheel: `entries` sorted (the `.dist-info` directory last), then
/// `RECORD` listing every entry with its hash and size.
pub fn write_wheel(mut entries: Vec<Entry>, dist_info: &str, epoch: u64) -> std::io::Result<Vec<u8>> {
    let is_meta = |e: &Entry| e.path.starts_with(&format!("{dist_info}/"));
    entries.sort_by(|a, b| (is_meta(a), &a.path).cmp(&(is_meta(b), &b.path)));
    let record_path = format!("{dist_info}/RECORD");
    let mut record = String::new();
    for entry in &entries {
        record.push_str(&format!("{},{},{}\n", csv_field(&entry.path), record_hash(&entry.data), entry.data.len()));
    }
    record.push_str(&format!("{record_path},,\n"));
    entries.push(Entry { path: record_path, data: record.into_bytes(), executable: false });

    let (y, mo, d, h, mi, s) = civil(epoch.max(ZIP_EPOCH));
    let time = zip::DateTime::from_date_and_time(y, mo, d, h, mi, s).unwrap_or_default();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for entry in &entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(time)
            .unix_permissions(if entry.executable { 0o755 } else { 0o644 });
        zip.start_file(entry.path.as_str(), options).map_err(std::io::Error::other)?;
        zip.write_all(&entry.data)?;
    }
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

/// Writes a gzip-compressed tar of `entries` under `prefix/`, sorted.
pub fn write_tar_gz(mut entries: Vec<Entry>, prefix: &str, epoch: u64) -> std::io::Result<Vec<u8>> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.data.len() as u64);
        header.set_mode(if entry.executable { 0o755 } else { 0o644 });
        header.set_mtime(epoch);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{prefix}/{}", entry.path), entry.data.as_slice())?;
    }
    tar.into_inner()?.finish()
}

/// RECORD is CSV: quote a path that holds a comma or a quote.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Seconds since 1970 → (year, month, day, hour, minute, second) in UTC.
fn civil(epoch: u64) -> (u16, u8, u8, u8, u8, u8) {
    let days = (epoch / 86_400) as i64;
    let rem = epoch % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
    (year, month, day, (rem / 3600) as u8, (rem % 3600 / 60) as u8, (rem % 60) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_epochs_to_dates() {
        assert_eq!(civil(ZIP_EPOCH), (1980, 1, 1, 0, 0, 0));
        assert_eq!(civil(1_700_000_000), (2023, 11, 14, 22, 13, 20));
    }

    #[test]
    fn record_hashes_are_urlsafe_base64_without_padding() {
        assert_eq!(record_hash(b""), "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    }

    #[test]
    fn identical_input_gives_identical_bytes() {
        let entries = || {
            vec![
                Entry { path: "b.py".into(), data: b"b".to_vec(), executable: false },
                Entry { path: "a.so".into(), data: b"a".to_vec(), executable: true },
                Entry { path: "x-1.dist-info/WHEEL".into(), data: b"w".to_vec(), executable: false },
            ]
        };
        let first = write_wheel(entries(), "x-1.dist-info", 0).unwrap();
        let mut reversed = entries();
        reversed.reverse();
        assert_eq!(first, write_wheel(reversed, "x-1.dist-info", 0).unwrap());
        assert_eq!(write_tar_gz(entries(), "x-1", 0).unwrap(), write_tar_gz(entries(), "x-1", 0).unwrap());
    }
}
