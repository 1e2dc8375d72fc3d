//! Submit, rebuild, cancel, list and look up builds: the one implementation
//! behind the API, the web pages and the GitHub webhook.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tracing::instrument;
use wheelwright_workers::platform::Target;
use wheelwright_workers::process::CancelToken;
use wheelwright_workers::project::{Overrides, Project};
use wheelwright_workers::wheel::{sha256_hex, tags};

use super::error::ServiceError;
use super::events::{BuildEvent, BuildEvents};
use crate::config::Ownership;
use crate::db::Database;
use crate::logs::{LogEvent, LogHub};
use crate::model::index::{project_owned_message, IndexFile};
use crate::model::{
    ArtifactRecord, BuildDetails, BuildRecord, BuildStatus, CancelOutcome, GitOrigin, Inserted, ListFilter, NewBuild,
    PendingPush, Submitter, UploadOverrides,
};
use crate::store::{BackendFile, BackendWheel, SourceTrees};

/// What a submission asks for: a project's files and the options sent with them.
#[derive(Debug, Default, Clone)]
pub struct Submission {
    /// Project files: relative path and contents.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// Requested targets; `None` takes the project's own.
    pub targets: Option<Vec<Target>>,
    /// Name, when there is no pyproject.toml.
    pub name: Option<String>,
    /// Version, when there is no pyproject.toml.
    pub version: Option<String>,
    /// Debug build.
    pub debug: bool,
    /// Build again even when an identical earlier result exists.
    pub rebuild: bool,
    /// The git push this source came from.
    pub origin: Option<GitOrigin>,
    /// The GitHub delivery that asked for it.
    pub delivery: Option<String>,
}

/// The settings submissions are checked and keyed with, fixed at start.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Tool versions, interpreters and settings that change results: part
    /// of every cache key.
    pub fingerprint: String,
    /// Attempts per job.
    pub max_attempts: u32,
    /// Queued builds one client may have.
    pub max_queued_per_client: u32,
    /// Who may publish a project.
    pub ownership: Ownership,
}

/// Cancel tokens of the builds this daemon is running.
#[derive(Debug, Default)]
pub struct RunningBuilds(Mutex<HashMap<String, CancelToken>>);

impl RunningBuilds {
    /// Registers a running build.
    pub fn insert(&self, id: &str, token: CancelToken) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), token);
    }

    /// Forgets a build that stopped.
    pub fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Stops a build running here, if it is.
    pub fn cancel(&self, id: &str) {
        if let Some(token) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            token.cancel();
        }
    }
}

/// A page of builds.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The builds, newest first, with their artifacts.
    pub builds: Vec<BuildDetails>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
}

/// The newest outcome of one target of one version.
#[derive(Debug, Clone)]
pub struct VersionCell {
    /// The target.
    pub target: Target,
    /// The target's status in that build (or the build's, while it runs).
    pub status: String,
    /// The build.
    pub build_id: String,
    /// Its wheels for this target (none when the target failed: a refused
    /// upload's wheel must not stand beside the published one).
    pub artifacts: Vec<ArtifactRecord>,
}

/// One version of a project.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// Version.
    pub version: String,
    /// One cell per target ever built for it.
    pub cells: Vec<VersionCell>,
}

/// A project's versions × targets.
#[derive(Debug, Clone)]
pub struct ProjectSummary {
    /// Normalised name.
    pub name: String,
    /// The name as its newest build spells it.
    pub display_name: String,
    /// Newest version first.
    pub versions: Vec<VersionRow>,
    /// Builds looked at.
    pub builds: usize,
}

/// How many of a project's newest builds its summary looks at.
const PROJECT_BUILDS: u32 = 500;

/// What the service shares with the workers and the rest of the daemon.
pub struct Shared {
    /// Notified when a job is queued.
    pub wake: Arc<Notify>,
    /// Live log channels, which the service's followers subscribe to.
    pub logs: Arc<LogHub>,
    /// Build events.
    pub events: Arc<BuildEvents>,
    /// The build backend's wheel.
    pub backend: Arc<BackendWheel>,
}

/// The build service. Cheap to clone.
#[derive(Clone)]
pub struct BuildService(Arc<Inner>);

struct Inner {
    db: Database,
    sources: SourceTrees,
    settings: ServiceSettings,
    wake: Arc<Notify>,
    logs: Arc<LogHub>,
    events: Arc<BuildEvents>,
    backend: Arc<BackendWheel>,
}

/// A submitted source tree, removed when dropped unless a build row keeps it.
struct Unrecorded<'a> {
    sources: &'a SourceTrees,
    id: Option<String>,
}

impl Unrecorded<'_> {
    fn keep(&mut self) {
        self.id = None;
    }
}

impl Drop for Unrecorded<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.sources.remove(&id);
        }
    }
}

impl BuildService {
    /// The service over `db` and `sources`, with what it shares with the workers.
    pub fn new(db: Database, sources: SourceTrees, settings: ServiceSettings, shared: Shared) -> BuildService {
        let Shared { wake, logs, events, backend } = shared;
        BuildService(Arc::new(Inner { db, sources, settings, wake, logs, events, backend }))
    }

    /// The build backend's wheel, which every sdist needs to build.
    pub async fn backend_wheel(&self) -> Result<BackendFile, ServiceError> {
        Ok(self.0.backend.get().await?)
    }

    /// Build events, for subscribers.
    pub fn events(&self) -> &BuildEvents {
        &self.0.events
    }

    /// Stores a submission, checks the project and who sends it, and queues
    /// it (or answers from an identical earlier build).
    #[instrument(skip_all, err, fields(client = %submitter.client))]
    pub async fn submit(&self, submission: Submission, submitter: &Submitter) -> Result<BuildDetails, ServiceError> {
        let inner = &self.0;
        let id = uuid::Uuid::now_v7().to_string();
        // Until a row refers to the files, every way out removes them.
        let mut unrecorded = Unrecorded { sources: &inner.sources, id: Some(id.clone()) };
        let overrides =
            Overrides { name: submission.name.clone(), version: submission.version.clone(), debug: submission.debug };
        let files = submission.files;
        // Written (to a shared store too) before any row refers to it: a
        // store that is down refuses the upload here, with nothing recorded.
        let source_hash = inner.sources.write(&id, files).await?;
        let project = {
            let dir = inner.sources.path(&id);
            tokio::task::spawn_blocking(move || Project::load(&dir, &overrides))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))?
        };
        let project = project.map_err(|e| ServiceError::InvalidProject(e.to_string()))?;
        let normalized_name = tags::normalize(&project.metadata.name);
        let enforce_ownership = inner.settings.ownership == Ownership::FirstPublisher;
        if enforce_ownership {
            // Refused before it takes a worker; the worker checks again when
            // it publishes (the first publisher may still be building).
            let owner = inner.db.index.owner_of(&normalized_name).await?;
            if let Some(owner) = owner.filter(|o| *o != submitter.owner) {
                return Err(ServiceError::ProjectOwned(project_owned_message(&normalized_name, &owner)));
            }
        }
        let targets = submission.targets.unwrap_or_else(|| project.settings.targets.clone());
        let overrides = UploadOverrides { name: submission.name, version: submission.version };
        let cache_key = {
            let key = serde_json::json!([
                source_hash,
                targets,
                project.settings.debug,
                overrides,
                inner.settings.fingerprint
            ]);
            sha256_hex(key.to_string().as_bytes())
        };
        let build = NewBuild {
            id: id.clone(),
            project_name: project.metadata.name.clone(),
            normalized_name,
            project_version: project.metadata.version.clone(),
            requires_python: project.metadata.requires_python.as_str().to_string(),
            targets,
            debug: project.settings.debug,
            overrides,
            source_hash,
            cache_key,
            origin: submission.origin,
            delivery: submission.delivery,
            submitter: submitter.clone(),
        };
        let builds = &inner.db.builds;
        let cached = if submission.rebuild { None } else { builds.find_cached(&build.cache_key).await? };
        let queue =
            |build| builds.insert_queued(build, inner.settings.max_attempts, inner.settings.max_queued_per_client);
        let inserted = match cached {
            Some(earlier) => match builds.insert_cached(&build, &earlier.id, enforce_ownership).await? {
                Inserted::NotFromCache => queue(&build).await?,
                other => other,
            },
            None => queue(&build).await?,
        };
        match inserted {
            Inserted::Recorded => {
                unrecorded.keep();
                inner.wake.notify_one();
                let details = self.get(&id).await?;
                if details.build.status.is_final() {
                    // Served from the cache: it will not start; it is done.
                    inner.events.publish(BuildEvent::Finished { build_id: id, status: details.build.status });
                }
                Ok(details)
            }
            Inserted::DeliveryTaken(first) => self.get(&first).await,
            Inserted::TooManyQueued(queued) => Err(ServiceError::TooManyQueued(format!(
                "{queued} of your builds are already waiting, the most this server queues for one client; try \
                 again when some have started"
            ))),
            // insert_cached's answer, handled above.
            Inserted::NotFromCache => {
                Err(ServiceError::Internal("a queued build came back as not from the cache".into()))
            }
        }
    }

    /// Submits build `id`'s stored source again with its options, asked for
    /// by `requester`: it counts against the requester's queue, and
    /// publishes for the original build's owner (the same source is not a
    /// takeover). Never from the cache.
    pub async fn rebuild(&self, id: &str, requester: &Submitter) -> Result<BuildDetails, ServiceError> {
        let build = self.record(id).await?;
        let submitter = Submitter {
            owner: build.owner.clone().unwrap_or_else(|| requester.owner.clone()),
            client: requester.client.clone(),
        };
        // From the shared store when this daemon has no copy.
        let files = self.0.sources.read(&build.id, &build.source_hash).await?;
        let submission = Submission {
            files,
            targets: Some(build.targets.clone()),
            name: build.overrides.name.clone(),
            version: build.overrides.version.clone(),
            debug: build.debug,
            rebuild: true,
            origin: build.origin.clone(),
            delivery: None,
        };
        self.submit(submission, &submitter).await
    }

    /// Cancels a queued build, or stops a running one.
    pub async fn cancel(&self, id: &str) -> Result<(), ServiceError> {
        match self.0.db.builds.cancel(id).await? {
            CancelOutcome::NotFound => return Err(not_found(id)),
            CancelOutcome::AlreadyFinished(status) => {
                return Err(ServiceError::AlreadyFinished(format!("build `{id}` already {status}")))
            }
            // Its followers are ended, and a running build is stopped by
            // the daemon that runs it, through the change the store
            // announces (dispatch::relay); the build events are this
            // daemon's own.
            CancelOutcome::Cancelled => {
                self.0.events.publish(BuildEvent::Finished { build_id: id.into(), status: BuildStatus::Cancelled });
            }
            CancelOutcome::Requested => {}
        }
        Ok(())
    }

    /// Yanks (PEP 592) the files the index serves from build `id`, with
    /// `reason` shown to installers (`None` or empty: no reason), or
    /// unyanks them (`yank: false`). Returns the reason now in force.
    #[instrument(skip(self, reason), err)]
    pub async fn set_yanked(&self, id: &str, yank: bool, reason: Option<&str>) -> Result<Option<String>, ServiceError> {
        self.record(id).await?;
        let reason = if yank { Some(yank_reason(reason.unwrap_or(""))?) } else { None };
        let changed = self.0.db.index.set_yanked(id, reason.as_deref()).await?;
        if changed == 0 {
            return Err(ServiceError::NotPublished(format!("the index serves no file of build {id}")));
        }
        tracing::info!(build.id = %id, files = changed, yanked = yank, "yank state changed");
        Ok(reason)
    }

    /// The yank state of build `id`'s files on the index: `None` when it
    /// serves none, `Some(reason)` when yanked.
    pub async fn yank_state(&self, id: &str) -> Result<Option<Option<String>>, ServiceError> {
        Ok(self.0.db.index.yank_state(id).await?)
    }

    /// One build with its artifacts.
    pub async fn get(&self, id: &str) -> Result<BuildDetails, ServiceError> {
        self.0.db.builds.details(id).await?.ok_or_else(|| not_found(id))
    }

    /// A build's artifacts (none for an unknown build).
    pub async fn artifacts(&self, id: &str) -> Result<Vec<ArtifactRecord>, ServiceError> {
        Ok(self.0.db.builds.artifacts(id).await?)
    }

    /// One build's row.
    pub async fn record(&self, id: &str) -> Result<BuildRecord, ServiceError> {
        self.0.db.builds.get(id).await?.ok_or_else(|| not_found(id))
    }

    /// A page of builds: `filter.limit` of them, and the next page's cursor
    /// when there are more.
    pub async fn list(&self, filter: &ListFilter) -> Result<Listing, ServiceError> {
        let mut one_more = filter.clone();
        one_more.limit = filter.limit.saturating_add(1);
        let mut builds = self.0.db.builds.list(&one_more).await?;
        let more = builds.len() > filter.limit as usize;
        builds.truncate(filter.limit as usize);
        let next_cursor = if more { builds.last().map(|b| b.build.id.clone()) } else { None };
        Ok(Listing { builds, next_cursor })
    }

    /// A build's log lines after `after` (-1 for all).
    pub async fn log(&self, id: &str, after: i64) -> Result<Vec<(i64, String)>, ServiceError> {
        Ok(self.0.db.logs.after(id, after).await?)
    }

    /// A build's live log events from now on.
    pub fn follow(&self, id: &str) -> tokio::sync::broadcast::Receiver<LogEvent> {
        self.0.logs.subscribe(id)
    }

    /// A project's versions × targets, from its newest builds.
    pub async fn project(&self, name: &str) -> Result<ProjectSummary, ServiceError> {
        let normalized = tags::normalize(name);
        let filter = ListFilter { limit: PROJECT_BUILDS, project: Some(normalized.clone()), ..ListFilter::default() };
        let builds = self.0.db.builds.list(&filter).await?;
        let Some(newest) = builds.first() else {
            return Err(ServiceError::NotFound(format!("no builds of `{normalized}`")));
        };
        let display_name = newest.build.project_name.clone();
        let mut order: Vec<String> = Vec::new();
        let mut cells: BTreeMap<(String, &'static str), VersionCell> = BTreeMap::new();
        for BuildDetails { build, artifacts } in &builds {
            if !order.contains(&build.project_version) {
                order.push(build.project_version.clone());
            }
            for target in &build.targets {
                let key = (build.project_version.clone(), target.name());
                if cells.contains_key(&key) {
                    continue;
                }
                let status = build.target_status(*target);
                let artifacts = artifacts
                    .iter()
                    .filter(|a| a.target.as_deref() == Some(target.name()) && status != "failed")
                    .cloned()
                    .collect();
                cells.insert(key, VersionCell { target: *target, status, build_id: build.id.clone(), artifacts });
            }
        }
        let versions = order
            .into_iter()
            .map(|version| {
                let keys: Vec<_> = cells.keys().filter(|(v, _)| *v == version).cloned().collect();
                let cells = keys.iter().filter_map(|key| cells.remove(key)).collect();
                VersionRow { version, cells }
            })
            .collect();
        Ok(ProjectSummary { name: normalized, display_name, versions, builds: builds.len() })
    }

    /// Projects of the package index.
    pub async fn index_projects(&self) -> Result<Vec<String>, ServiceError> {
        Ok(self.0.db.index.projects().await?)
    }

    /// A project's files on the package index.
    pub async fn index_files(&self, normalized_name: &str) -> Result<Vec<IndexFile>, ServiceError> {
        Ok(self.0.db.index.files(normalized_name).await?)
    }

    /// Builds per status and jobs waiting, for health and metrics.
    pub async fn counts(&self) -> Result<(Vec<(BuildStatus, i64)>, i64), ServiceError> {
        Ok((self.0.db.builds.counts_by_status().await?, self.0.db.jobs.depth().await?))
    }

    /// Jobs waiting.
    pub async fn queue_depth(&self) -> Result<i64, ServiceError> {
        Ok(self.0.db.jobs.depth().await?)
    }

    /// The build a GitHub delivery made, if any.
    pub async fn build_of_delivery(&self, delivery: &str) -> Result<Option<String>, ServiceError> {
        Ok(self.0.db.github.build_of(delivery).await?)
    }

    /// Records a push accepted before its fetch; false when its delivery is
    /// already pending.
    pub async fn remember_push(&self, push: &PendingPush) -> Result<bool, ServiceError> {
        Ok(self.0.db.github.remember(push).await?)
    }

    /// Drops a pending push.
    pub async fn forget_push(&self, delivery: &str) -> Result<(), ServiceError> {
        Ok(self.0.db.github.forget(delivery).await?)
    }

    /// Pushes accepted but not built, with their ages.
    pub async fn pending_pushes(&self) -> Result<Vec<(PendingPush, std::time::Duration)>, ServiceError> {
        Ok(self.0.db.github.pending().await?)
    }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no build `{id}`"))
}

/// Longest yank reason kept: a sentence for installers to print, not a document.
pub const YANK_REASON_MAX: usize = 500;

/// Trims `reason` and refuses one installers could not print safely on one line.
fn yank_reason(reason: &str) -> Result<String, ServiceError> {
    let reason = reason.trim();
    if reason.chars().count() > YANK_REASON_MAX {
        return Err(ServiceError::BadReason(format!("the reason is longer than {YANK_REASON_MAX} characters")));
    }
    if reason.chars().any(char::is_control) {
        return Err(ServiceError::BadReason("the reason has control characters (one line of text, please)".into()));
    }
    Ok(reason.to_string())
}
