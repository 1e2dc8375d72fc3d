//! Commit statuses: `pending` when a pushed build starts, `success` or
//! `failure` when it ends, with a link to its page. Posted by one background
//! task in order, retried with backoff, never holding up a build.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::builds::GitOrigin;

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
