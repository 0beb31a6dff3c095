//! Command-line subcommands, one module per group.

pub mod boxes;
pub mod deid;
pub mod films;
pub mod image;
pub mod localisation;
pub mod model;
pub mod pacs;
pub mod phantom;
pub mod reader_study;
pub mod stats;
pub mod study;
pub mod train;
