//! The build service: what the doors (API, web pages, GitHub) ask of
//! builds — submit, rebuild, cancel, list, look up — in one place, with
//! errors of its own ([`ServiceError`]), and the events ([`BuildEvents`])
//! that tell listeners (GitHub commit statuses) when builds start and end.
//! It stands on the stores ([`crate::db`], [`crate::store`]) and never on
//! a door.

mod error;
pub mod events;
mod service;

pub use error::ServiceError;
pub use events::{BuildEvent, BuildEvents};
pub use service::{
    BuildService, Listing, ProjectSummary, RunningBuilds, ServiceSettings, Shared, Submission, VersionCell, VersionRow,
};
