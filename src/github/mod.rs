//! GitHub: the signed push webhook that builds pushed commits, and the
//! commit statuses that report their outcome.

mod fetch;
pub mod signature;
pub mod statuses;
mod webhook;

pub use webhook::{resume_pending, webhook};
