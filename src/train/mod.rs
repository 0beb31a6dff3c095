//! Fine-tuning on consensus labels with the seed study's (fastai's) schedule: data sets from a study or a
//! folder + CSV ([`data`]), the run's TOML configuration ([`config`]), fastai's augmentations, MixUp and
//! label smoothing, the one-cycle schedule with discriminative rates and freezing ([`schedule`],
//! [`groups`]), Adam with decoupled weight decay ([`optim`]), and the loop with checkpoints, resume and
//! the LR range test ([`trainer`]).

pub mod augment;
pub mod bench;
pub mod config;
pub mod data;
pub mod events;
pub mod groups;
pub mod loss;
pub mod lr_find;
pub mod mixup;
pub mod optim;
pub mod preview;
mod run_dir;
pub mod schedule;
pub mod trainer;

use std::path::PathBuf;

pub use config::{Phase, Stage, TrainConfig};
pub use data::{Dataset, Split};
pub use events::{EpochRecord, Event, LrFind, Summary};
pub use lr_find::lr_find;
pub use trainer::train;

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The configuration is not usable.
    #[error("{path}: {detail}")]
    Config {
        /// Configuration file.
        path: PathBuf,
        /// Which key and what is wrong.
        detail: String,
    },
    /// A row of a label CSV is wrong.
    #[error("{path}, row {row}: {detail}")]
    Csv {
        /// CSV file.
        path: PathBuf,
        /// 1-based row (the header is row 1).
        row: usize,
        /// What is wrong.
        detail: String,
    },
    /// The data cannot be trained on (unreadable film, one class only, …).
    #[error("{0}")]
    Data(String),
    /// The model could not be built or saved.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A tensor operation failed.
    #[error("training: {0}")]
    Candle(#[from] candle_core::Error),
    /// Cancelled by the user; the last completed epoch's checkpoint can be resumed.
    #[error("cancelled; resume with --resume")]
    Cancelled,
}
