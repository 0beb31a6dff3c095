//! Fine-tuning on consensus labels with the seed study's (fastai's) schedule. So far: the schedule
//! functions, the losses and MixUp (checked against fastai's own code), the augmentations and the
//! parameter groups (discriminative rates, freezing with trainable batch norm, no decay on BN/bias); the
//! training loop, data sets, checkpoints and the `sacro train` command come with the rest of the training
//! issue.

pub mod augment;
pub mod groups;
pub mod loss;
pub mod mixup;
pub mod schedule;
