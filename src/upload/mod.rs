//! Reading a build upload: `files` parts named by their paths in the project,
//! or one `archive` part (`.zip` or `.tar.gz`), plus options. Every path is
//! checked before anything is written, and only inside the new source folder.

mod archive;
mod error;
mod paths;

use std::path::PathBuf;

use axum::extract::multipart::Field;
use axum::extract::Multipart;
use wheelwright_workers::platform::Target;

pub use error::UploadError;
pub use paths::{safe_relative, shown};

/// Largest size an uploaded archive may unpack to.
pub const MAX_EXPANDED: u64 = 64 << 20;

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

/// What a client sent: what to build, and the form's token.
#[derive(Debug, Default, Clone)]
pub struct Upload {
    /// The project files and options, as the build service takes them.
    pub build: crate::builds::Submission,
    /// The form's token, once checked (form mode on a server with tokens):
    /// who submits, for the queue limit and the project's owner.
    pub token: Option<String>,
}

/// Largest text field (targets, name, version, ...) read.
const MAX_TEXT: usize = 64 << 10;

/// Largest token field read.
const MAX_TOKEN: usize = 4 << 10;

/// File parts have no cap of their own: the request's body limit bounds
/// them, and a body past it answers 413 `too_large`, which a smaller cap
/// here would turn into a 400 `bad_field`.
const FILE_PART: usize = usize::MAX;

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
) -> Result<Upload, UploadError> {
    let mut upload = Upload::default();
    let mut archive: Option<(String, Vec<u8>)> = None;
    let mut folder: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    if mode == Mode::Form && !tokens.is_empty() {
        // A body that fails here went past the gate without a token part.
        let mut field =
            form.next_field().await.map_err(|_| UploadError::TokenNotFirst)?.ok_or(UploadError::TokenNotFirst)?;
        if field.name() != Some("token") {
            return Err(UploadError::TokenNotFirst);
        }
        let given = read_text(&mut field, "token", MAX_TOKEN).await.map_err(|_| UploadError::TokenNotFirst)?;
        if !crate::auth::token_allowed(tokens, Some(given.trim())) {
            return Err(UploadError::TokenInvalid);
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
                let data = read_part(&mut field, &name, FILE_PART).await?;
                if !filename.is_empty() {
                    let path = safe_relative(&filename).map_err(UploadError::BadPath)?;
                    folder.push((path, data));
                }
            }
            // Checked above when it matters; a tokenless server ignores it.
            "token" if mode == Mode::Form => {
                read_text(&mut field, "token", MAX_TOKEN).await?;
            }
            "files" | "files[]" => {
                let filename = field.file_name().unwrap_or("").to_string();
                let data = read_part(&mut field, &name, FILE_PART).await?;
                if mode == Mode::Form && filename.is_empty() && data.is_empty() {
                    continue; // an empty file picker
                }
                let mut path = safe_relative(&filename).map_err(UploadError::BadPath)?;
                if mode == Mode::Form {
                    path = place_picked_file(path);
                }
                if upload.build.files.iter().any(|(p, _)| *p == path) {
                    return Err(UploadError::DuplicatePath(filename));
                }
                upload.build.files.push((path, data));
                if upload.build.files.len() > MAX_FILES {
                    return Err(UploadError::TooManyFiles);
                }
            }
            "archive" => {
                if archive.is_some() {
                    return Err(UploadError::SeveralArchives);
                }
                let filename = field.file_name().unwrap_or("").to_string();
                let data = read_part(&mut field, &name, FILE_PART).await?;
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
                        let targets = Target::parse_list(&value)?;
                        let all = upload.build.targets.get_or_insert_with(Vec::new);
                        all.extend(targets);
                        all.sort();
                        all.dedup();
                    }
                    "name" if !value.is_empty() => upload.build.name = Some(value),
                    "version" if !value.is_empty() => upload.build.version = Some(value),
                    "debug" => upload.build.debug = parse_bool("debug", &value)?,
                    "rebuild" => upload.build.rebuild = parse_bool("rebuild", &value)?,
                    _ => {}
                }
            }
            _ => return Err(UploadError::UnknownField(name)),
        }
    }
    if !folder.is_empty() {
        if !upload.build.files.is_empty() {
            return Err(UploadError::FilesAndFolder);
        }
        upload.build.files = archive::strip_common_folder(folder);
    }
    match (archive, upload.build.files.is_empty()) {
        (Some(_), false) => return Err(UploadError::FilesAndArchive),
        (Some((filename, bytes)), true) => {
            // Decompressing is CPU work: off the async runtime.
            upload.build.files =
                tokio::task::spawn_blocking(move || archive::extract(&filename, &bytes, max_expanded)).await??
        }
        (None, true) => return Err(UploadError::NoFiles),
        (None, false) => {}
    }
    Ok(upload)
}

/// A part's bytes, refused past `max` without reading on: the one reader
/// of every part, file or text.
async fn read_part(field: &mut Field<'_>, name: &str, max: usize) -> Result<Vec<u8>, UploadError> {
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if data.len() + chunk.len() > max {
            return Err(UploadError::FieldTooLong { field: name.to_string(), max });
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// A text part of at most `max` bytes.
async fn read_text(field: &mut Field<'_>, name: &str, max: usize) -> Result<String, UploadError> {
    let data = read_part(field, name, max).await?;
    String::from_utf8(data).map_err(|_| UploadError::FieldNotText { field: name.to_string() })
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

fn parse_bool(field: &'static str, value: &str) -> Result<bool, UploadError> {
    match value.to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        _ => Err(UploadError::NotABool { field, value: value.to_string() }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A multipart form of `(field, file name, bytes)` parts, as a client sends it.
    pub(crate) async fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Multipart {
        const BOUNDARY: &str = "wheelwright-test-boundary";
        let mut body = Vec::new();
        for (name, filename, data) in parts {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
            );
            if let Some(filename) = filename {
                body.extend_from_slice(format!("; filename=\"{filename}\"").as_bytes());
            }
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let request = axum::http::Request::builder()
            .header(axum::http::header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(axum::body::Body::from(body))
            .unwrap();
        <Multipart as axum::extract::FromRequest<()>>::from_request(request, &()).await.unwrap()
    }

    /// A zip holding `entries`.
    pub(crate) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut zip, data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    async fn api(parts: &[(&str, Option<&str>, &[u8])]) -> Result<Upload, UploadError> {
        read(form(parts).await, 1 << 20, Mode::Api, &[], None).await
    }

    async fn with_tokens(parts: &[(&str, Option<&str>, &[u8])]) -> Result<Upload, UploadError> {
        read(form(parts).await, 1 << 20, Mode::Form, &["sesame".to_string()], None).await
    }

    #[tokio::test]
    async fn a_file_outside_the_project_is_a_bad_path_with_the_reason() {
        let err = api(&[("files", Some("../escape.asm"), b"x")]).await.unwrap_err();
        assert!(matches!(&err, UploadError::BadPath(m) if m == "`../escape.asm` leaves the project (`..`)"), "{err:?}");
    }

    #[tokio::test]
    async fn an_archive_entry_outside_the_project_is_a_bad_archive_with_the_reason() {
        let zip = zip_of(&[("../evil.asm", b"x")]);
        let err = api(&[("archive", Some("p.zip"), &zip)]).await.unwrap_err();
        assert!(
            matches!(&err, UploadError::BadArchive(m) if m == "`../evil.asm` leaves the project (`..`)"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_path_sent_twice_is_named_in_the_refusal() {
        let err = api(&[("files", Some("src/m.asm"), b"a"), ("files", Some("./src/m.asm"), b"b")]).await.unwrap_err();
        assert!(matches!(&err, UploadError::DuplicatePath(p) if p == "./src/m.asm"), "{err:?}");
        assert_eq!(err.to_string(), "`./src/m.asm` was sent twice");
    }

    #[tokio::test]
    async fn text_fields_are_capped_by_the_same_reader_as_files() {
        let long = vec![b'n'; MAX_TEXT + 1];
        let err = api(&[("files", Some("src/m.asm"), b"x"), ("name", None, &long)]).await.unwrap_err();
        assert!(
            matches!(&err, UploadError::FieldTooLong { field, max } if field == "name" && *max == MAX_TEXT),
            "{err:?}"
        );
        let exact = vec![b'n'; MAX_TEXT];
        let upload = api(&[("files", Some("src/m.asm"), b"x"), ("name", None, &exact)]).await.unwrap();
        assert_eq!(upload.build.name.map(|n| n.len()), Some(MAX_TEXT));
        let err = api(&[("files", Some("src/m.asm"), b"x"), ("version", None, b"\xff")]).await.unwrap_err();
        assert!(matches!(&err, UploadError::FieldNotText { field } if field == "version"), "{err:?}");
    }

    #[tokio::test]
    async fn a_file_part_is_not_capped_at_the_text_limit() {
        let big = vec![b';'; MAX_TEXT * 2];
        let upload = api(&[("files", Some("src/m.asm"), &big)]).await.unwrap();
        assert_eq!(upload.build.files, vec![(PathBuf::from("src/m.asm"), big)]);
    }

    #[tokio::test]
    async fn a_form_needs_its_valid_token_first_when_the_server_has_tokens() {
        let file = ("files", Some("src/m.asm"), &b"x"[..]);
        let err = with_tokens(&[file, ("token", None, b"sesame")]).await.unwrap_err();
        assert!(matches!(err, UploadError::TokenNotFirst), "{err:?}");
        let err = with_tokens(&[]).await.unwrap_err();
        assert!(matches!(err, UploadError::TokenNotFirst), "{err:?}");
        let err = with_tokens(&[("token", None, &[b's'; MAX_TOKEN + 1]), file]).await.unwrap_err();
        assert!(matches!(err, UploadError::TokenNotFirst), "{err:?}");
        let err = with_tokens(&[("token", None, b"open"), file]).await.unwrap_err();
        assert!(matches!(err, UploadError::TokenInvalid), "{err:?}");
        let upload = with_tokens(&[("token", None, b" sesame "), file]).await.unwrap();
        assert_eq!(upload.token.as_deref(), Some("sesame"));
    }

    #[tokio::test]
    async fn form_mistakes_are_told_apart() {
        let file = ("files", Some("src/m.asm"), &b"x"[..]);
        let zip = zip_of(&[("src/m.asm", b"x")]);
        let archive = ("archive", Some("p.zip"), &zip[..]);
        assert!(matches!(api(&[]).await, Err(UploadError::NoFiles)));
        assert!(matches!(api(&[file, archive]).await, Err(UploadError::FilesAndArchive)));
        assert!(matches!(api(&[archive, archive]).await, Err(UploadError::SeveralArchives)));
        assert!(matches!(api(&[file, ("debug", None, b"maybe")]).await,
            Err(UploadError::NotABool { field: "debug", value }) if value == "maybe"));
        assert!(matches!(api(&[file, ("colour", None, b"red")]).await,
            Err(UploadError::UnknownField(f)) if f == "colour"));
        assert!(matches!(api(&[file, ("targets", None, b"sparc")]).await, Err(UploadError::UnknownTarget(_))));
        // The API takes no folder field: only the form does.
        assert!(matches!(api(&[("folder", Some("p/src/m.asm"), b"x")]).await,
            Err(UploadError::UnknownField(f)) if f == "folder"));
    }
}
