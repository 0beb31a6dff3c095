//! Fine-tuning on consensus labels with the seed study's (fastai's) schedule. This part holds the
//! schedule functions and losses, checked against fastai's own code; the training loop comes with the
//! training issue.

pub mod augment;
pub mod loss;
pub mod schedule;
