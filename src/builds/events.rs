//! Build events: a worker claimed a build, a build reached its final
//! status. Whoever cares (GitHub commit statuses) subscribes; the workers
//! and the service only publish, and never know who listens.

use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::model::BuildStatus;

/// Something that happened to a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// A worker started an attempt of the build.
    Started {
        /// The build.
        build_id: String,
    },
    /// The build reached a final status.
    Finished {
        /// The build.
        build_id: String,
        /// Its status.
        status: BuildStatus,
    },
}

/// Fan-out of build events to every subscriber, in order, without loss
/// (each subscriber has an unbounded queue; a dropped one is forgotten).
#[derive(Debug, Default)]
pub struct BuildEvents {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<BuildEvent>>>,
}

impl BuildEvents {
    /// A new subscriber's queue of every event from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<BuildEvent> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).push(sender);
        receiver
    }

    /// Sends `event` to every subscriber; never blocks.
    pub fn publish(&self, event: BuildEvent) {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).retain(|s| s.send(event.clone()).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_gets_every_event_in_order_and_dropped_ones_are_forgotten() {
        let events = BuildEvents::default();
        let mut first = events.subscribe();
        let second = events.subscribe();
        drop(second);
        let started = BuildEvent::Started { build_id: "b".into() };
        let finished = BuildEvent::Finished { build_id: "b".into(), status: BuildStatus::Succeeded };
        events.publish(started.clone());
        events.publish(finished.clone());
        assert_eq!(first.try_recv().unwrap(), started);
        assert_eq!(first.try_recv().unwrap(), finished);
        assert!(first.try_recv().is_err());
        assert_eq!(events.subscribers.lock().unwrap().len(), 1);
    }
}
