//! fastai's LR range test on the learner of the first phase.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;

use super::TrainError;
use super::config::TrainConfig;
use super::data::Dataset;
use super::data::Split;
use super::events::{Event, LrFind};
use super::optim::Adam;
use super::schedule::{sched_exp, valley};
use super::trainer::{Learner, epoch_batches, micro_batch, seed_of};
use crate::model::preprocess::Preprocess;

/// fastai's `lr_find`: learning rates from `start` to `end` exponentially over `iterations` batches of the
/// first phase (frozen as the learner starts), Adam with β1 0.9, the loss smoothed (β 0.98, debiased);
/// stops when the smoothed loss exceeds 4× its minimum or is not finite. The weights (and batch-norm
/// statistics) are restored afterwards. The suggestion is fastai's "valley" on the curve without its
/// first tenth and last five points.
pub fn lr_find(
    cfg: &TrainConfig,
    data: &Dataset,
    device: &Device,
    (start, end, iterations): (f64, f64, usize),
    on_event: &mut dyn FnMut(Event),
    cancel: &AtomicBool,
) -> Result<LrFind, TrainError> {
    data.check()?;
    let mut learner = Learner::new(cfg, data, device)?;
    let saved = learner.snapshot()?;
    let phase = cfg
        .phases()
        .first()
        .copied()
        .ok_or_else(|| TrainError::Data("the configuration has no phase with epochs".into()))?;
    let pre = Preprocess {
        fit: cfg.fit,
        window: cfg.window,
        ..Preprocess::imagenet(phase.size)
    };
    let micro = micro_batch(cfg, phase.size, phase.batch);
    learner.network.set_frozen_convolutions(phase.frozen);
    let mut adam = Adam::new(&learner.varmap, phase.frozen, cfg.adam);
    let train_idx = data.indices(Split::Train);
    let (mut lrs, mut losses) = (Vec::new(), Vec::new());
    let (mut avg, mut best) = (0.0, f64::INFINITY);
    let beta = 0.98f64;
    let mut epoch = 0u64;
    let mut queue: Vec<Vec<usize>> = Vec::new();
    let result = (|| -> Result<(), TrainError> {
        for it in 0..iterations {
            if cancel.load(Ordering::Relaxed) {
                return Err(TrainError::Cancelled);
            }
            if queue.is_empty() {
                queue = epoch_batches(&train_idx, phase.batch, seed_of(&[cfg.seed, 99, epoch]));
                queue.reverse();
                epoch += 1;
            }
            let Some(batch) = queue.pop() else { break };
            let lr = sched_exp(start, end, it as f64 / iterations as f64);
            let seed = seed_of(&[cfg.seed, 99, it as u64]);
            let loss = learner.step(&mut adam, &batch, &pre, micro, ([lr; 3], 0.9), seed)?;
            avg = beta * avg + (1.0 - beta) * loss;
            let smooth = avg / (1.0 - beta.powi(it as i32 + 1));
            if !smooth.is_finite() {
                break;
            }
            lrs.push(lr);
            losses.push(smooth);
            on_event(Event::LrStep {
                iteration: it,
                lr,
                loss: smooth,
            });
            if smooth > 4.0 * best {
                break;
            }
            best = best.min(smooth);
        }
        Ok(())
    })();
    learner.restore(&saved)?;
    result?;
    let lo = lrs.len() / 10;
    let hi = lrs.len().saturating_sub(5).max(lo);
    let suggestion = valley(&losses[lo..hi]).map(|i| lrs[lo + i]);
    Ok(LrFind {
        lrs,
        losses,
        suggestion,
    })
}
