//! What training reports: the events a run sends while it runs (the CLI draws a progress bar and the
//! app a panel from the same events; training draws nothing itself), the metrics history's rows, and
//! what a finished run or an LR range test produced.

use std::path::PathBuf;

use super::config::Phase;
use crate::stats::cutoffs::Cutoffs;

/// What training reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Films decoded into the cache.
    Loading {
        /// Done.
        done: usize,
        /// Total.
        total: usize,
    },
    /// A phase begins.
    PhaseStarted {
        /// The phase.
        phase: Phase,
        /// Number of phases in the run.
        phases: usize,
        /// Batches per epoch.
        batches: usize,
        /// Micro-batch size actually used (gradient accumulation up to the phase's batch).
        micro_batch: usize,
    },
    /// A training batch is done.
    Batch {
        /// Phase index.
        phase: usize,
        /// Epoch in the phase (0-based).
        epoch: usize,
        /// Batch in the epoch (0-based).
        batch: usize,
        /// Batches per epoch.
        batches: usize,
        /// Training loss of the batch.
        loss: f64,
        /// Learning rate of the head group.
        lr: f64,
    },
    /// An epoch is done and validated.
    Epoch(EpochRecord),
    /// One LR-finder step.
    LrStep {
        /// Iteration.
        iteration: usize,
        /// Learning rate.
        lr: f64,
        /// Smoothed loss.
        loss: f64,
    },
    /// Anything else worth telling.
    Message(String),
}

/// One row of the metrics history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// Phase index.
    pub phase: usize,
    /// Input side.
    pub size: u32,
    /// Body frozen.
    pub frozen: bool,
    /// Epoch in the phase (0-based).
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub valid_loss: f64,
    /// Validation ROC AUC.
    pub valid_auc: f64,
    /// Head group's learning rate at the end of the epoch.
    pub lr: f64,
    /// Seconds for training and validation.
    pub seconds: f64,
    /// The weights were saved as the phase's best.
    pub best: bool,
}

/// What a finished run produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The model folder.
    pub model_dir: PathBuf,
    /// Validation AUC of the final weights.
    pub valid_auc: f64,
    /// Test AUC, when a test set was given.
    pub test_auc: Option<f64>,
    /// Cut-offs chosen on the validation set.
    pub cutoffs: Option<Cutoffs>,
    /// Epochs run in this invocation.
    pub epochs_run: usize,
}

/// Result of the LR range test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LrFind {
    /// Learning rates tried.
    pub lrs: Vec<f64>,
    /// Smoothed losses.
    pub losses: Vec<f64>,
    /// fastai's "valley" suggestion.
    pub suggestion: Option<f64>,
}
