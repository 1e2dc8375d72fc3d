//! Reading a build upload: `files` parts named by their paths in the project,
//! or one `archive` part (`.zip` or `.tar.gz`), plus options. Every path is
//! checked before anything is written, and only inside the new source folder.

mod archive;
mod paths;

use std::path::{Path, PathBuf};

use axum::extract::Multipart;
use sha2::{Digest, Sha256};
use wheelwright_workers::platform::Target;

use crate::api::error::ApiError;

pub use paths::{safe_relative, shown};

/// Most files a project may have.
pub const MAX_FILES: usize = 2000;

/// Who is uploading: the API takes exactly its documented fields; the web
/// form also sends a token field and files picked one by one or as a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `POST /api/v1/builds`.
    Api,
    /// The upload form's own POST (works without JavaScript).
    Form,
}

/// What a client sent.
#[derive(Debug, Default, Clone)]
pub struct Upload {
    /// Project files: relative path and contents.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// Requested targets, if given.
    pub targets: Option<Vec<Target>>,
    /// Name, when there is no pyproject.toml.
    pub name: Option<String>,
    /// Version, when there is no pyproject.toml.
    pub version: Option<String>,
    /// Debug build.
    pub debug: bool,
    /// Build again even when an identical earlier result exists.
    pub rebuild: bool,
    /// The form's token, once checked (form mode on a server with tokens):
    /// who submits, for the queue limit and the project's owner.
    pub token: Option<String>,
    /// The git push this source came from (webhooks).
    pub origin: Option<crate::builds::GitOrigin>,
    /// The GitHub delivery that asked for this build (webhooks).
    pub delivery: Option<String>,
}

/// Largest text field (targets, name, version, ...) read.
const MAX_TEXT: usize = 64 << 10;

/// Largest token field read.
const MAX_TOKEN: usize = 4 << 10;

/// Bytes of a form's body read before its token has been accepted: the
/// preamble and the token part fit in it many times over, and so does the
/// largest chunk one read of the connection hands over (hyper's buffer is
/// 400 KiB), which may carry the start of the next part too.
pub const BEFORE_TOKEN: usize = 1 << 20;

/// Holds a form's body to [`BEFORE_TOKEN`] bytes until [`read`] has
/// accepted its token. The multipart parser buffers a part's headers (and a
/// preamble) until it finds a boundary: without the gate an unauthenticated
/// sender could make it buffer, and rescan, a whole `max-upload` body.
#[derive(Debug, Clone, Default)]
pub struct TokenGate(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl TokenGate {
    /// `body`, failing once more than [`BEFORE_TOKEN`] bytes pass while the
    /// gate is still closed.
    pub fn guard(&self, body: axum::body::Body) -> axum::body::Body {
        use futures_util::StreamExt;
        let open = self.0.clone();
        let mut seen = 0usize;
        axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
            let chunk = chunk?;
            if !open.load(std::sync::atomic::Ordering::Acquire) {
                seen += chunk.len();
                if seen > BEFORE_TOKEN {
                    return Err(axum::Error::new(std::io::Error::other("more than 1 MiB before the token")));
                }
            }
            Ok(chunk)
        }))
    }

    fn open(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Reads the form. `max_expanded` caps what an archive may unpack to.
///
/// In [`Mode::Form`] with `tokens` configured, the first part must be a
/// valid `token`: nothing else is read before the sender is known, and
/// `gate` (when the body goes through one) opens only then. (The API checks
/// its bearer header before the body is read at all.)
pub async fn read(
    mut form: Multipart,
    max_expanded: u64,
    mode: Mode,
    tokens: &[String],
    gate: Option<&TokenGate>,
) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    let mut archive: Option<(String, Vec<u8>)> = None;
    let mut folder: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    if mode == Mode::Form && !tokens.is_empty() {
        // A body that fails here went past the gate without a token part.
        let mut field = form.next_field().await.map_err(|_| token_first())?.ok_or_else(token_first)?;
        if field.name() != Some("token") {
            return Err(token_first());
        }
        let given = read_text(&mut field, "token", MAX_TOKEN).await.map_err(|_| token_first())?;
        if !crate::api::token_allowed(tokens, Some(given.trim())) {
            return Err(ApiError::unauthorized(crate::web::INVALID_TOKEN));
        }
        upload.token = Some(given.trim().to_string());
        if let Some(gate) = gate {
            gate.open();
        }
    }
    while let Some(mut field) = form.next_field().await? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "folder" if mode == Mode::Form => {
                // A browser sends a picked folder's files as `folder/…`.
                let filename = field.file_name().unwrap_or("").to_string();
                let data = read_field(&mut field).await?;
                if !filename.is_empty() {
                    let path = safe_relative(&filename).map_err(|m| ApiError::bad_request("bad_path", m))?;
                    folder.push((path, data));
                }
            }
            // Checked above when it matters; a tokenless server ignores it.
            "token" if mode == Mode::Form => {
                read_text(&mut field, "token", MAX_TOKEN).await?;
            }
            "files" | "files[]" => {
                let filename = field.file_name().unwrap_or("").to_string();
                let data = read_field(&mut field).await?;
                if mode == Mode::Form && filename.is_empty() && data.is_empty() {
                    continue; // an empty file picker
                }
                let mut path = safe_relative(&filename).map_err(|m| ApiError::bad_request("bad_path", m))?;
                if mode == Mode::Form {
                    path = place_picked_file(path);
                }
                if upload.files.iter().any(|(p, _)| *p == path) {
                    return Err(ApiError::bad_request(
                        "duplicate_path",
                        format!("`{}` was sent twice", shown(&filename)),
                    ));
                }
                upload.files.push((path, data));
                if upload.files.len() > MAX_FILES {
                    return Err(ApiError::bad_request("too_many_files", format!("more than {MAX_FILES} files")));
                }
            }
            "archive" => {
                if archive.is_some() {
                    return Err(ApiError::bad_request("bad_form", "send one `archive`, not several"));
                }
                let filename = field.file_name().unwrap_or("").to_string();
                let data = read_field(&mut field).await?;
                if mode == Mode::Form && filename.is_empty() && data.is_empty() {
                    continue; // an empty file picker
                }
                archive = Some((filename, data));
            }
            "targets" | "name" | "version" | "debug" | "rebuild" => {
                let value = read_text(&mut field, &name, MAX_TEXT).await?.trim().to_string();
                match name.as_str() {
                    "targets" if !value.is_empty() => {
                        // Repeated fields (checkboxes) add up.
                        let targets = Target::parse_list(&value)
                            .map_err(|e| ApiError::bad_request("unknown_target", e.to_string()))?;
                        let all = upload.targets.get_or_insert_with(Vec::new);
                        all.extend(targets);
                        all.sort();
                        all.dedup();
                    }
                    "name" if !value.is_empty() => upload.name = Some(value),
                    "version" if !value.is_empty() => upload.version = Some(value),
                    "debug" => upload.debug = parse_bool("debug", &value)?,
                    "rebuild" => upload.rebuild = parse_bool("rebuild", &value)?,
                    _ => {}
                }
            }
            other => {
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!(
                        "unknown form field `{}` (expected files, archive, targets, name, version, debug, rebuild)",
                        shown(other)
                    ),
                ))
            }
        }
    }
    if !folder.is_empty() {
        if !upload.files.is_empty() {
            return Err(ApiError::bad_request("bad_form", "pick files or a folder, not both"));
        }
        upload.files = archive::strip_common_folder(folder);
    }
    match (archive, upload.files.is_empty()) {
        (Some(_), false) => {
            return Err(ApiError::bad_request("bad_form", "send either `files` or one `archive`, not both"))
        }
        (Some((filename, bytes)), true) => {
            // Decompressing is CPU work: off the async runtime.
            upload.files = tokio::task::spawn_blocking(move || archive::extract(&filename, &bytes, max_expanded))
                .await
                .map_err(ApiError::internal)??
        }
        (None, true) => {
            return Err(ApiError::bad_request("no_files", "no project: send `files` parts or one `archive` part"))
        }
        (None, false) => {}
    }
    Ok(upload)
}

async fn read_field(field: &mut axum::extract::multipart::Field<'_>) -> Result<Vec<u8>, ApiError> {
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

fn token_first() -> ApiError {
    ApiError::unauthorized("this server needs a token: the form's first field must be `token`")
}

/// A text field of at most `max` bytes, refused past it without reading on.
async fn read_text(
    field: &mut axum::extract::multipart::Field<'_>,
    name: &str,
    max: usize,
) -> Result<String, ApiError> {
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if data.len() + chunk.len() > max {
            return Err(ApiError::bad_request("bad_field", format!("`{}` is longer than {max} bytes", shown(name))));
        }
        data.extend_from_slice(&chunk);
    }
    String::from_utf8(data)
        .map_err(|_| ApiError::bad_request("bad_field", format!("`{}` is not UTF-8 text", shown(name))))
}

/// Files picked one by one arrive without folders: tests go to `tests/`,
/// everything else stays at the root (a project without `src/`).
fn place_picked_file(path: PathBuf) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if path.components().count() == 1 && name.starts_with("test_") && name.ends_with(".py") {
        PathBuf::from("tests").join(path)
    } else {
        path
    }
}

/// Reads a stored source tree back (for rebuilds).
pub fn read_tree(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let rel = entry.path().strip_prefix(dir).expect("below dir").to_path_buf();
                files.push((rel, std::fs::read(entry.path())?));
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn parse_bool(field: &str, value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        _ => Err(ApiError::bad_request("bad_field", format!("`{field}` must be true or false, not `{value}`"))),
    }
}

/// Writes the files under `dir` (which must not exist yet) through a
/// temporary sibling renamed into place; returns the tree's sha256.
pub fn write_tree(dir: &Path, files: &[(PathBuf, Vec<u8>)]) -> std::io::Result<String> {
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    let mut sorted: Vec<&(PathBuf, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (path, data) in sorted {
        let full = partial.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, data)?;
        let name = path.to_string_lossy();
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(data);
    }
    std::fs::rename(&partial, dir)?;
    Ok(hex::encode(hasher.finalize()))
}
