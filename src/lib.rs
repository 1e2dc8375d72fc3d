//! The wheelwright daemon and command-line interface. The build engine lives
//! in the `wheelwright-workers` crate; this crate drives it.

pub mod cli;
