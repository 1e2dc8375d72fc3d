//! `wheelwright submit`: pack a project (respecting `.gitignore`), upload it
//! to a wheelwright server, optionally follow the build live, and download
//! every artifact after checking its sha256.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use futures_util::StreamExt;
use serde_json::Value;
use wheelwright_workers::wheel::sha256_hex;

/// Arguments of `wheelwright submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The project directory.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "WHEELWRIGHT_SERVER")]
    server: String,
    /// Bearer token for the server.
    #[arg(long, env = "WHEELWRIGHT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Targets (comma-separated, or `all`); default: the project's.
    #[arg(long = "target")]
    targets: Option<String>,
    /// Follow the build until it ends; exit non-zero when it fails.
    #[arg(long)]
    wait: bool,
    /// Save every artifact here after checking its sha256 (implies --wait).
    #[arg(long)]
    download: Option<PathBuf>,
    /// Print the build as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// What went wrong, and the exit code for it.
struct Failure(u8, String);

pub fn run(args: SubmitArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(submit(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Every file of the project that git would not ignore, relative to it.
fn project_files(root: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    let walker = ignore::WalkBuilder::new(root).hidden(true).git_ignore(true).require_git(false).build();
    for entry in walker {
        let entry = entry.map_err(|e| Failure(2, format!("cannot read the project: {e}")))?;
        if entry.file_type().is_some_and(|t| t.is_file()) {
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path()).to_path_buf();
            files.push(rel);
        }
    }
    files.sort();
    Ok(files)
}

async fn submit(args: SubmitArgs) -> Result<(), Failure> {
    crate::install_crypto_provider();
    let server = args.server.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let files = project_files(&args.path)?;
    if files.is_empty() {
        return Err(Failure(2, format!("{} holds no files", args.path.display())));
    }
    let mut form = reqwest::multipart::Form::new();
    for rel in &files {
        let data = std::fs::read(args.path.join(rel)).map_err(|e| Failure(2, format!("{}: {e}", rel.display())))?;
        let name = rel.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join("/");
        form = form.part("files", reqwest::multipart::Part::bytes(data).file_name(name));
    }
    if let Some(targets) = &args.targets {
        form = form.text("targets", targets.clone());
    }
    let mut request = client.post(format!("{server}/api/v1/builds")).multipart(form);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| Failure(1, format!("cannot reach {server}: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message").to_string();
        return Err(Failure(1, format!("the server refused the build ({status}): {message}")));
    }
    let id = body["id"].as_str().unwrap_or("").to_string();
    eprintln!("submitted {} files as build {id}: {server}/builds/{id}", files.len());

    let mut build = body;
    if args.wait || args.download.is_some() {
        if !["succeeded", "failed", "cancelled"].contains(&build["status"].as_str().unwrap_or("")) {
            follow(&client, &server, &id).await?;
        }
        build = client
            .get(format!("{server}/api/v1/builds/{id}"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| Failure(1, e.to_string()))?
            .json()
            .await
            .map_err(|e| Failure(1, e.to_string()))?;
        summarize(&build);
    }
    if let Some(dir) = &args.download {
        download(&client, &server, &build, dir).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&build).unwrap_or_default());
    }
    match build["status"].as_str() {
        Some("failed") | Some("cancelled") if args.wait || args.download.is_some() => {
            Err(Failure(1, format!("build {id} {}", build["status"].as_str().unwrap_or(""))))
        }
        _ => Ok(()),
    }
}

/// Streams the build's log, showing each step as it ends.
async fn follow(client: &reqwest::Client, server: &str, id: &str) -> Result<(), Failure> {
    let response = client
        .get(format!("{server}/api/v1/builds/{id}/log"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .map_err(|e| Failure(1, format!("cannot follow the log: {e}")))?;
    let mut stream = response.bytes_stream();
    let mut pending = String::new();
    let mut event = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failure(1, format!("the log stream broke: {e}")))?;
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line = pending[..end].trim_end_matches('\r').to_string();
            pending.drain(..=end);
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                match event.as_str() {
                    "log" => progress(data),
                    "end" => {
                        eprintln!("build {data}");
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// One progress line per finished step, and every failure's reason.
fn progress(line: &str) {
    if let Some((target, rest)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
        if let Some(step) = rest.strip_prefix("<== ") {
            eprintln!("  {target:<15} {step}");
        } else if rest.starts_with("    ") {
            eprintln!("  {target:<15}   {}", rest.trim());
        }
    } else if line.starts_with("attempt ") || line.starts_with("error:") || line.starts_with("host failure") {
        eprintln!("{line}");
    }
}

fn summarize(build: &Value) {
    for target in build["targets"].as_array().into_iter().flatten() {
        let tests: Vec<String> = target["tests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "{} {}/{} passed",
                    t["interpreter"].as_str().unwrap_or(""),
                    t["passed"],
                    t["passed"].as_u64().unwrap_or(0) + t["failed"].as_u64().unwrap_or(0)
                )
            })
            .collect();
        eprintln!(
            "{:<15} {:<10} {}",
            target["target"].as_str().unwrap_or(""),
            target["status"].as_str().unwrap_or(""),
            tests.join(", ")
        );
    }
}

async fn download(client: &reqwest::Client, server: &str, build: &Value, dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure(1, format!("{}: {e}", dir.display())))?;
    for artifact in build["artifacts"].as_array().into_iter().flatten() {
        let filename = artifact["filename"].as_str().unwrap_or("");
        let url = format!("{server}{}", artifact["url"].as_str().unwrap_or(""));
        let bytes = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| Failure(1, format!("downloading {filename}: {e}")))?
            .bytes()
            .await
            .map_err(|e| Failure(1, format!("downloading {filename}: {e}")))?;
        let digest = sha256_hex(&bytes);
        if Some(digest.as_str()) != artifact["sha256"].as_str() {
            return Err(Failure(1, format!("{filename} does not match its sha256: refusing to save it")));
        }
        if filename.is_empty() || filename.contains('/') || filename.starts_with('.') {
            return Err(Failure(1, format!("the server named an artifact `{filename}`")));
        }
        std::fs::write(dir.join(filename), &bytes).map_err(|e| Failure(1, format!("{filename}: {e}")))?;
        eprintln!("saved {} ({} bytes, sha256 ok)", dir.join(filename).display(), bytes.len());
    }
    Ok(())
}
