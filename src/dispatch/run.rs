//! One claimed build: run the engine on a blocking thread while a watcher
//! keeps the lease alive and listens for cancellation and shutdown, stream
//! its log lines, store its artifacts, and record the outcome fenced on the
//! claim's attempt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, info_span, warn, Instrument};
use wheelwright_workers::pipeline::Event;
use wheelwright_workers::process::CancelToken;
use wheelwright_workers::project::Overrides;
use wheelwright_workers::report::{BuildReport, Status};

use super::executor::BuildJob;
use super::scrub::HostPaths;
use crate::builds::BuildEvent;
use crate::config::Ownership;
use crate::db::Change;
use crate::model::index::{Publish, Refusal};
use crate::model::queue::{Claim, Completed, Completion, Retry};
use crate::model::{ArtifactRecord, BuildRecord, BuildStatus, StoredReport};
use crate::state::AppState;

/// What the watcher saw while the build ran.
#[derive(Debug, Default)]
struct Watch {
    lost_lease: AtomicBool,
    handed_back: AtomicBool,
}

/// The build's log as this attempt writes it: lines reach the writer task in
/// order, and [`BuildLog::flushed`] waits until every line sent so far is in
/// the database. The build's final status is recorded only after that, so a
/// client that sees the status final reads the whole log.
#[derive(Clone)]
struct BuildLog(mpsc::UnboundedSender<LogMessage>);

enum LogMessage {
    Event(Event),
    /// Answered once every line sent before it is written.
    Flush(oneshot::Sender<()>),
}

impl BuildLog {
    fn send(&self, event: Event) {
        let _ = self.0.send(LogMessage::Event(event));
    }

    fn line(&self, text: impl Into<String>) {
        self.send(Event::Log { target: None, text: text.into() });
    }

    async fn flushed(&self) {
        let (done, written) = oneshot::channel();
        if self.0.send(LogMessage::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}

/// Runs `claim`'s build to its end; never panics the worker.
pub async fn execute(state: &AppState, claim: Claim) {
    state.metrics.worker_busy();
    let span = info_span!("build", build.id = %claim.build_id, attempt = claim.attempt);
    if let Err(e) = run(state, &claim).instrument(span).await {
        warn!(build.id = %claim.build_id, "build could not be run: {e:#}");
        let reason = host_paths(state, &claim.build_id).scrub(&format!("{e:#}"));
        match state.db.jobs.fail_attempt(&claim, &reason).await {
            Ok(Retry::Discarded) => finished(state, &claim.build_id, BuildStatus::Failed).await,
            Ok(_) => {}
            Err(e) => warn!("recording the failure failed too: {e}"),
        }
    }
    state.running.remove(&claim.build_id);
    let _ = std::fs::remove_dir_all(state.jobs_dir.join(&claim.build_id));
    state.metrics.worker_idle();
}

/// Tells live followers on every daemon (through the database, once the
/// build's last lines are written) and this daemon's event subscribers that
/// a build ended.
async fn finished(state: &AppState, build_id: &str, status: BuildStatus) {
    let change = Change::Finished { build_id: build_id.to_string(), status };
    if let Err(e) = state.db.changes.announce(&change).await {
        // Followers find the end in the table within seconds anyway.
        warn!(build.id = %build_id, "announcing the build's end failed: {e}");
    }
    state.events.publish(BuildEvent::Finished { build_id: build_id.to_string(), status });
}

async fn run(state: &AppState, claim: &Claim) -> anyhow::Result<()> {
    let build = state.db.builds.get(&claim.build_id).await?.ok_or_else(|| anyhow::anyhow!("the build row is gone"))?;
    let cancel = CancelToken::new();
    state.running.insert(&build.id, cancel.clone());

    let (sender, receiver) = mpsc::unbounded_channel();
    let log = BuildLog(sender);
    let first_seq = state.db.logs.next_seq(&build.id).await?;
    let writer = tokio::spawn(write_logs(state.clone(), build.id.clone(), first_seq, receiver));
    let ending = attempt(state, claim, &build, &log, cancel).await;
    // Every line is written before anyone (this function, or `execute` on an
    // error, failing the attempt) says the build ended.
    drop(log);
    let _ = writer.await;
    if let Ok(Some(status)) = ending {
        info!(status = status.as_str(), "build finished");
        finished(state, &build.id, status).await;
    }
    ending.map(|_| ())
}

/// The attempt itself, logging to `log`: the build's final status when this
/// attempt recorded one (`None` when it was handed back, lost or retried).
async fn attempt(
    state: &AppState,
    claim: &Claim,
    build: &BuildRecord,
    log: &BuildLog,
    cancel: CancelToken,
) -> anyhow::Result<Option<BuildStatus>> {
    log.line(format!(
        "attempt {} of build {} ({} {})",
        claim.attempt, build.id, build.project_name, build.project_version
    ));
    state.events.publish(BuildEvent::Started { build_id: build.id.clone() });
    let watch = Arc::new(Watch::default());
    let watcher = tokio::spawn(watch_build(state.clone(), claim.clone(), cancel.clone(), watch.clone()));

    let job_dir = state.jobs_dir.join(&build.id);
    let _ = std::fs::remove_dir_all(&job_dir);
    std::fs::create_dir_all(job_dir.join("work"))?;
    // Submitted here, or to another daemon sharing the store: then fetched
    // from it and checked against the recorded hash. A store that is down
    // fails this attempt, to be retried.
    let source = state.sources.materialise(&build.id, &build.source_hash).await?;
    let job = BuildJob {
        build_id: build.id.clone(),
        source,
        overrides: Overrides {
            name: build.overrides.name.clone(),
            version: build.overrides.version.clone(),
            debug: build.debug,
        },
        targets: build.targets.clone(),
        out_dir: job_dir.join("out"),
        work_dir: job_dir.join("work"),
        cancel: cancel.clone(),
    };
    let executor = state.executor.clone();
    let engine_log = log.clone();
    let outcome = tokio::task::spawn_blocking(move || executor.execute(&job, &|event| engine_log.send(event))).await;
    watcher.abort();
    let _ = watcher.await;

    let ending = if watch.lost_lease.load(Ordering::SeqCst) {
        warn!("the lease was lost; another attempt owns this build");
        log.line("lease lost: this attempt's results are dropped");
        None
    } else if watch.handed_back.load(Ordering::SeqCst) {
        log.line("shutting down: the build is handed back");
        // Before another attempt may number lines after these.
        log.flushed().await;
        state.db.jobs.release(claim).await?;
        None
    } else if cancel.is_cancelled() {
        log.line("cancelled");
        let report = outcome.ok().and_then(|r| r.ok());
        Some(record(state, claim, build, log, BuildStatus::Cancelled, report, Some("cancelled".into())).await?)
    } else {
        match outcome {
            Err(panic) => anyhow::bail!("the engine stopped unexpectedly: {panic}"),
            Ok(Err(project_error)) => {
                let message = project_error.to_string();
                log.line(format!("error: {message}"));
                Some(record(state, claim, build, log, BuildStatus::Failed, None, Some(message)).await?)
            }
            Ok(Ok(report)) => match report.infrastructure_failure() {
                Some(reason) => {
                    log.line(format!("host failure: {reason}"));
                    log.flushed().await;
                    let reason = host_paths(state, &build.id).scrub(&reason);
                    match state.db.jobs.fail_attempt(claim, &reason).await? {
                        Retry::Scheduled => {
                            log.line("the build will be retried");
                            None
                        }
                        Retry::Discarded => Some(BuildStatus::Failed),
                        Retry::Stale => None,
                    }
                }
                None => {
                    let status = if report.succeeded() { BuildStatus::Succeeded } else { BuildStatus::Failed };
                    Some(record(state, claim, build, log, status, Some(report), None).await?)
                }
            },
        }
    };
    Ok(ending)
}

/// Stores the artifacts, then completes the job, publishes a successful
/// build's files and records the build in one transaction fenced on the
/// claim. Returns the status written: a build whose files cannot be
/// published (see [`refuse`]) fails.
async fn record(
    state: &AppState,
    claim: &Claim,
    build: &BuildRecord,
    log: &BuildLog,
    status: BuildStatus,
    report: Option<BuildReport>,
    error: Option<String>,
) -> anyhow::Result<BuildStatus> {
    let mut artifacts = Vec::new();
    if let (Some(report), BuildStatus::Succeeded | BuildStatus::Failed) = (report.as_ref(), status) {
        // Content-addressed: a crash after this leaves only unreferenced
        // blobs. Every object is stored before the row that names it: a
        // store failure fails the attempt (retried), never a row pointing
        // at nothing.
        artifacts = store_artifacts(&*state.store, report).await?;
    }
    let paths = host_paths(state, &build.id);
    let mut report = report.map(|r| paths.scrub_report(&r));
    let error = error.map(|e| paths.scrub(&e));
    let publish = if status == BuildStatus::Succeeded && build.debug {
        // A debug wheel has the release wheel's name: it must never stand in for it.
        log.line("debug build: its files are not published to the package index");
        None
    } else if status == BuildStatus::Succeeded {
        Some(Publish {
            owner: build.owner.clone(),
            enforce_ownership: state.config.index_ownership == Ownership::FirstPublisher,
        })
    } else {
        None
    };
    let mut completion =
        Completion { status, report: report.as_ref().map(StoredReport::from), error, artifacts, publish };
    // Every line before the status that ends the build.
    log.flushed().await;
    let mut outcome = state.db.jobs.complete(claim, &completion).await?;
    if let Completed::Refused(refusals) = &outcome {
        // Recorded again, failed and unpublished, with the reasons.
        let message = refuse(report.as_mut(), refusals);
        log.line(message.clone());
        log.flushed().await;
        completion.status = BuildStatus::Failed;
        completion.report = report.as_ref().map(StoredReport::from);
        completion.error = Some(message);
        completion.publish = None;
        outcome = state.db.jobs.complete(claim, &completion).await?;
    }
    match outcome {
        Completed::Recorded => {}
        Completed::Stale => anyhow::bail!("the claim went stale before the result was recorded"),
        Completed::Refused(_) => anyhow::bail!("an unpublished build was refused publication"),
    }
    Ok(completion.status)
}

/// The host places a build's public log and report must not show.
fn host_paths(state: &AppState, build_id: &str) -> HostPaths {
    state.host_paths.with_build(&state.jobs_dir.join(build_id), &state.sources.path(build_id))
}

/// Marks the targets whose wheels could not be published as failed, with
/// the reason, and returns the build's error: one line per refusal.
///
/// Such a build fails rather than "succeeds without publishing": whoever
/// changed the bytes of a published version expects `pip install` to give
/// them the change, and it will not (the index keeps the first bytes, which
/// every `--require-hashes` lock file pins). A red build that says "bump the
/// version" tells them; a green one would not, and `submit --wait` or a
/// commit status would report a release that did not happen.
fn refuse(report: Option<&mut BuildReport>, refusals: &[Refusal]) -> String {
    if let Some(report) = report {
        for refusal in refusals {
            let Refusal::FileTaken { target: Some(target), .. } = refusal else { continue };
            if let Some(t) = report.targets.iter_mut().find(|t| t.target.name() == target) {
                t.status = Status::Failed;
                t.reason = Some(match t.reason.take() {
                    Some(earlier) => format!("{earlier}\n{}", refusal.message()),
                    None => refusal.message(),
                });
            }
        }
    }
    refusals.iter().map(Refusal::message).collect::<Vec<_>>().join("\n")
}

async fn store_artifacts(
    store: &dyn crate::store::ArtifactStore,
    report: &BuildReport,
) -> anyhow::Result<Vec<ArtifactRecord>> {
    let mut records = Vec::new();
    let wheels = report
        .targets
        .iter()
        .filter(|t| t.status != Status::Failed)
        .flat_map(|t| t.artifacts.iter().map(move |a| (Some(t.target.name().to_string()), a)));
    // Gathered first: the iterator's closures must not live across the awaits.
    let files: Vec<(Option<String>, &wheelwright_workers::report::Artifact)> =
        wheels.chain(report.sdist.iter().map(|a| (None, a))).collect();
    for (target, artifact) in files {
        // Read before the file is given to the store (which may move it).
        let metadata_sha256 = match target {
            Some(_) => {
                let path = artifact.path.clone();
                let metadata = tokio::task::spawn_blocking(move || wheel_metadata(&path)).await??;
                Some(store.put(metadata.into()).await?)
            }
            None => None,
        };
        let (sha256, size) = store.put_file(&artifact.path).await?;
        anyhow::ensure!(sha256 == artifact.sha256, "{} changed on disk after it was built", artifact.filename);
        records.push(ArtifactRecord {
            filename: artifact.filename.clone(),
            target,
            sha256,
            size: size as i64,
            metadata_sha256,
        });
    }
    Ok(records)
}

/// Largest `METADATA` file read from a wheel.
const METADATA_MAX: u64 = 1 << 20;

/// The `*.dist-info/METADATA` of the wheel at `path`, which the index serves
/// beside the wheel (PEP 658) so that installers resolve without downloading it.
fn wheel_metadata(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path)?)?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .find(|n| n.split_once('/').is_some_and(|(dir, file)| dir.ends_with(".dist-info") && file == "METADATA"))
        .ok_or_else(|| anyhow::anyhow!("{} has no .dist-info/METADATA", path.display()))?;
    let mut bytes = Vec::new();
    zip.by_name(&name)?.take(METADATA_MAX + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(bytes.len() as u64 <= METADATA_MAX, "{name} is larger than {METADATA_MAX} bytes");
    Ok(bytes)
}

/// Keeps the lease alive, turns a cancel request into the cancel token, and
/// on shutdown gives the build its grace period before handing it back. A
/// cancel asked for on any daemon usually arrives sooner, as a change
/// (`relay`); the flag read here catches one whose notification was lost.
async fn watch_build(state: AppState, claim: Claim, cancel: CancelToken, watch: Arc<Watch>) {
    let tick = (state.config.lease / 3).min(Duration::from_secs(1));
    let mut last_beat = Instant::now();
    let mut shutdown_at: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        if last_beat.elapsed() >= state.config.lease / 3 {
            match state.db.jobs.heartbeat(&claim, state.config.lease).await {
                Ok(true) => last_beat = Instant::now(),
                Ok(false) => {
                    watch.lost_lease.store(true, Ordering::SeqCst);
                    cancel.cancel();
                    return;
                }
                Err(e) => warn!("heartbeat failed: {e}"),
            }
        }
        if state.db.builds.cancel_requested(&claim.build_id).await.unwrap_or(false) {
            cancel.cancel();
        }
        if state.shutdown.is_cancelled() {
            let since = *shutdown_at.get_or_insert_with(Instant::now);
            if since.elapsed() >= state.config.shutdown_grace {
                watch.handed_back.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
        }
    }
}

/// How long the log writer gathers lines before it writes them.
const LOG_BATCH_WINDOW: Duration = Duration::from_millis(20);

/// The most lines written in one transaction.
const LOG_BATCH_LINES: usize = 500;

/// Turns engine events into numbered log lines, written to the database in
/// batches; live followers (on any daemon) hear of each batch from the
/// database's changes.
async fn write_logs(
    state: AppState,
    build_id: String,
    mut seq: i64,
    mut messages: mpsc::UnboundedReceiver<LogMessage>,
) {
    let host_paths = host_paths(&state, &build_id);
    while let Some(message) = messages.recv().await {
        let (mut lines, mut flushes) = (Vec::new(), Vec::new());
        take(&state, message, &mut lines, &mut flushes);
        // A short window gathers a burst of lines into one transaction; the
        // end of the build (the channel closing) or a flush ends it at once.
        let until = tokio::time::Instant::now() + LOG_BATCH_WINDOW;
        while lines.len() < LOG_BATCH_LINES && flushes.is_empty() {
            match tokio::time::timeout_at(until, messages.recv()).await {
                Ok(Some(message)) => take(&state, message, &mut lines, &mut flushes),
                Ok(None) | Err(_) => break,
            }
        }
        // Where the daemon keeps its files is none of the reader's business.
        for line in &mut lines {
            *line = host_paths.scrub(line);
        }
        if !lines.is_empty() {
            if let Err(e) = state.db.logs.append(&build_id, seq, &lines).await {
                // Another attempt of the build (a retry claimed at once, or the
                // one that took over a lost lease) may have numbered lines
                // since: once more, after its last line.
                let next = state.db.logs.next_seq(&build_id).await.unwrap_or(seq);
                let again = match next > seq {
                    true => state.db.logs.append(&build_id, next, &lines).await.map(|()| seq = next),
                    false => Err(e),
                };
                if let Err(e) = again {
                    warn!("writing log lines failed: {e}");
                }
            }
            seq += lines.len() as i64;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// A message into the batch being gathered: its lines, or who waits for it.
fn take(state: &AppState, message: LogMessage, lines: &mut Vec<String>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match message {
        LogMessage::Event(event) => lines.extend(render(state, &event)),
        LogMessage::Flush(done) => flushes.push(done),
    }
}

fn render(state: &AppState, event: &Event) -> Vec<String> {
    match event {
        Event::Log { target, text } => {
            let prefix = target.map(|t| format!("[{t}] ")).unwrap_or_default();
            text.lines().map(|l| format!("{prefix}{l}")).collect()
        }
        Event::StepStarted { target, step } => vec![format!("[{target}] ==> {step}")],
        Event::StepFinished { target, report } => {
            state.metrics.observe_step(report.name.as_str(), report.duration_ms as f64 / 1000.0);
            let mut lines =
                vec![format!("[{target}] <== {} {} ({} ms)", report.name, report.status, report.duration_ms)];
            if let Some(reason) = &report.reason {
                lines.extend(reason.lines().map(|l| format!("[{target}]     {l}")));
            }
            lines
        }
    }
}
