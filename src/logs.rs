//! Build logs: lines are numbered, written to the database as they come, and
//! broadcast to anyone following the build live in this daemon. The hub is
//! fed from the database's changes (`dispatch::relay`), whichever daemon
//! runs the build.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// What a follower receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A line with its sequence number.
    Line(i64, String),
    /// The build reached a final status.
    Finished(String),
}

/// Live channels, one per running build.
#[derive(Debug, Default)]
pub struct LogHub {
    channels: Mutex<HashMap<String, broadcast::Sender<LogEvent>>>,
}

impl LogHub {
    /// Subscribes to a build's live events (creating the channel if needed).
    pub fn subscribe(&self, build_id: &str) -> broadcast::Receiver<LogEvent> {
        self.sender(build_id).subscribe()
    }

    /// Whether anyone here follows the build now.
    pub fn is_followed(&self, build_id: &str) -> bool {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.get(build_id).is_some_and(|sender| sender.receiver_count() > 0)
    }

    /// Sends an event to current followers.
    pub fn publish(&self, build_id: &str, event: LogEvent) {
        let _ = self.sender(build_id).send(event);
    }

    /// Tells followers the build is done and drops its channel.
    pub fn finish(&self, build_id: &str, status: &str) {
        let sender = self.channels.lock().unwrap_or_else(|e| e.into_inner()).remove(build_id);
        if let Some(sender) = sender {
            let _ = sender.send(LogEvent::Finished(status.to_string()));
        }
    }

    fn sender(&self, build_id: &str) -> broadcast::Sender<LogEvent> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.entry(build_id.to_string()).or_insert_with(|| broadcast::channel(1024).0).clone()
    }
}
