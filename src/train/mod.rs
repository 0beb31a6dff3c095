//! Fine-tuning on consensus labels with the seed study's (fastai's) schedule. So far: the schedule
//! functions, the losses and MixUp (checked against fastai's own code) and the augmentations; the
//! training loop, data sets, checkpoints and the `sacro train` command come with the rest of the training
//! issue.

pub mod augment;
pub mod loss;
pub mod mixup;
pub mod schedule;
