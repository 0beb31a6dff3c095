//! Command-line subcommands, one module per group.

pub mod image;
pub mod phantom;
pub mod stats;
pub mod study;
