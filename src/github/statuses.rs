//! Commit statuses: `pending` when a pushed build starts, `success` or
//! `failure` when it ends, with a link to its page. Driven by the build
//! events ([`follow_builds`]): the workers never call GitHub. Posted by one
//! background task in order, retried with backoff, never holding up a build.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::builds::{BuildEvent, BuildService};
use crate::model::{BuildRecord, BuildStatus, GitOrigin};
use crate::state::AppState;

/// One status to post.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    /// Where to post it.
    pub origin: GitOrigin,
    /// `pending`, `success`, `failure` or `error`.
    pub state: &'static str,
    /// A short sentence.
    pub description: String,
    /// The build page.
    pub target_url: String,
}

/// Queues status updates for the poster task.
#[derive(Debug, Clone)]
pub struct StatusNotifier {
    queue: mpsc::UnboundedSender<StatusUpdate>,
}

/// Attempts per status before it is given up.
const ATTEMPTS: u32 = 5;

impl StatusNotifier {
    /// Starts the poster task for `api` with `token`.
    pub fn start(api: String, token: String) -> StatusNotifier {
        let (queue, mut updates) = mpsc::unbounded_channel::<StatusUpdate>();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .user_agent(concat!("wheelwright/", env!("CARGO_PKG_VERSION")))
                .timeout(Duration::from_secs(20))
                .build()
                .expect("an HTTP client");
            while let Some(update) = updates.recv().await {
                post(&client, &api, &token, &update).await;
            }
        });
        StatusNotifier { queue }
    }

    /// Queues one update; never blocks.
    pub fn send(&self, update: StatusUpdate) {
        let _ = self.queue.send(update);
    }
}

/// Subscribes to the build events and turns those of pushed builds into
/// commit statuses: `pending` at a start, the outcome at the end.
pub fn follow_builds(state: &AppState, statuses: StatusNotifier) {
    let mut events = state.builds.events().subscribe();
    let service = state.builds.clone();
    let public_url = state.config.public_url.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Some(update) = update_for(&service, &public_url, &event).await {
                statuses.send(update);
            }
        }
    });
}

/// The status `event` asks for, when its build came from a push.
async fn update_for(service: &BuildService, public_url: &str, event: &BuildEvent) -> Option<StatusUpdate> {
    let (build_id, started) = match event {
        BuildEvent::Started { build_id } => (build_id, true),
        BuildEvent::Finished { build_id, .. } => (build_id, false),
    };
    let build = match service.record(build_id).await {
        Ok(build) => build,
        Err(e) => {
            warn!(build.id = %build_id, "no commit status: the build cannot be read: {e}");
            return None;
        }
    };
    let origin = build.origin.clone()?;
    let (state, description) = if started { ("pending", "building".to_string()) } else { outcome(&build)? };
    Some(StatusUpdate { origin, state, description, target_url: format!("{public_url}/builds/{}", build.id) })
}

/// A finished build's commit state and description (GitHub keeps 140
/// characters of one line).
fn outcome(build: &BuildRecord) -> Option<(&'static str, String)> {
    let (state, description) = match build.status {
        BuildStatus::Succeeded => ("success", "all targets built and verified".to_string()),
        BuildStatus::Failed => ("failure", build.error.clone().unwrap_or_else(|| "a target failed".into())),
        BuildStatus::Cancelled => ("error", "cancelled".to_string()),
        BuildStatus::Queued | BuildStatus::Running => return None,
    };
    Some((state, description.lines().next().unwrap_or("").chars().take(140).collect()))
}

async fn post(client: &reqwest::Client, api: &str, token: &str, update: &StatusUpdate) {
    let url = format!("{api}/repos/{}/statuses/{}", update.origin.repository, update.origin.commit);
    let body = json!({
        "state": update.state,
        "target_url": update.target_url,
        "description": update.description,
        "context": "wheelwright",
    });
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let result = client
            .post(&url)
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .json(&body)
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => {
                info!(state = update.state, commit = %update.origin.commit, "commit status posted");
                return;
            }
            Ok(response) if response.status().is_client_error() && response.status().as_u16() != 429 => {
                warn!(status = %response.status(), "GitHub refused the commit status; not retried");
                return;
            }
            Ok(response) => warn!(attempt, status = %response.status(), "posting a commit status failed"),
            Err(e) => warn!(attempt, "posting a commit status failed: {e}"),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    warn!(state = update.state, commit = %update.origin.commit, "gave up posting a commit status");
}
