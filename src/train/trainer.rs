//! The training loop: fastai's `fit_one_cycle` per phase (frozen, then unfrozen, per progressive-resizing
//! stage) with discriminative rates, MixUp, label smoothing and on-the-fly augmentation; validation AUC
//! after every epoch, the best weights of a phase saved and reloaded at its end (fastai's
//! `SaveModelCallback(monitor='roc_auc_score')`), a checkpoint after every epoch so that `--resume`
//! continues where a crash or a cancel stopped, and the model folder with card, metrics, validation
//! predictions and cut-offs at the end. Also the LR range test (`lr_find`) and the augmented-sample grid.
//!
//! Progress goes out as [`Event`]s: the CLI turns them into progress bars, the GUI into a panel.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::TrainError;
use super::augment::augment;
use super::config::TrainConfig;
use super::data::{Dataset, Example, Split};
pub use super::events::{EpochRecord, Event, LrFind, Summary};
use super::loss::label_smoothing_cross_entropy;
use super::mixup::{mix, mixed_loss};
use super::optim::Adam;
use super::run_dir::{
    CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, append_metrics, io_err, load_tensors, save_tensors,
    state_path, write_predictions, write_text,
};
pub use super::run_dir::{MODEL_DIR, resumable};
use super::schedule::OneCycle;
use crate::imaging::GreyImage;
use crate::model::Network;
use crate::model::card::{self, ModelCard};
use crate::model::preprocess::Preprocess;
use crate::stats::cutoffs::{Targets, choose_all};
use crate::stats::roc::roc_auc;

/// Where a run stands (written after every epoch).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct RunState {
    /// Phase in progress.
    phase: usize,
    /// Epochs of that phase done.
    epochs_done: usize,
    /// Best validation AUC in that phase so far.
    best_auc: Option<f64>,
    /// Epochs since the best.
    since_best: usize,
}

/// Bytes of training memory per input pixel per sample of Sacro's ResNet-50 on the CPU, over a fixed
/// [`TRAIN_BASE_BYTES`] (weights, gradients, Adam's moments, the program), used to choose a micro-batch
/// that fits. Measured with `sacro bench memory` (peak resident set, 2026-11-28, the blocks as one graph
/// node): 2.39 GB at 768² batch 2 and 1.12 GB at 224² batch 8, i.e. 1,300–1,520 bytes per pixel; rounded
/// up. (Before the blocks became one node: 3.0 and 1.3 GB, up to 2,000 bytes per pixel.)
const TRAIN_BYTES_PER_PIXEL: f64 = 1_800.0;
/// The same with the blocks checkpointed (`checkpoint_blocks`): 2.4 GB at 768² batch 2, 1.2 GB at 224²
/// batch 8, i.e. 1,400–1,550 bytes per pixel; rounded up (no longer less than without).
const TRAIN_BYTES_PER_PIXEL_CHECKPOINTED: f64 = 1_800.0;
/// Memory a training process needs whatever the batch.
const TRAIN_BASE_BYTES: f64 = 0.6e9;

/// Memory available to the process (Linux `MemAvailable`; 8 GB when unknown).
fn available_memory() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(8e9, |kb| kb * 1024.0)
}

/// The micro-batch for a phase: the configured maximum, or what fits in 60 % of the available memory;
/// never below 2 (batch norm) and never above the batch.
pub fn micro_batch(cfg: &TrainConfig, size: u32, batch: usize) -> usize {
    let fit = if cfg.max_micro_batch > 0 {
        cfg.max_micro_batch
    } else {
        let per_pixel = if cfg.checkpoint_blocks {
            TRAIN_BYTES_PER_PIXEL_CHECKPOINTED
        } else {
            TRAIN_BYTES_PER_PIXEL
        };
        let per_sample = f64::from(size) * f64::from(size) * per_pixel;
        ((available_memory() * 0.6 - TRAIN_BASE_BYTES).max(0.0) / per_sample) as usize
    };
    fit.clamp(2, batch.max(2))
}

pub(super) fn seed_of(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5AC0_u64, |h, &p| {
        (h ^ p).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
    })
}

/// Normalised `[n, 3, s, s]` input from square grey images in [0, 1].
fn to_input(
    images: &[GreyImage],
    pre: &Preprocess,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let s = pre.size as usize;
    let mut data = Vec::with_capacity(images.len() * 3 * s * s);
    for img in images {
        for c in 0..3 {
            data.extend(img.pixels.iter().map(|&v| (v - pre.mean[c]) / pre.std[c]));
        }
    }
    Tensor::from_vec(data, (images.len(), 3, s, s), device)
}

/// The images of a batch at `size`, augmented (each with its own seeded generator) or not.
pub(super) fn batch_images(
    data: &Dataset,
    idx: &[usize],
    size: u32,
    cfg: &TrainConfig,
    augmented: Option<u64>,
) -> Vec<GreyImage> {
    idx.par_iter()
        .map(|&i| {
            let ex: &Example = &data.examples[i];
            let img = ex.image.at(size);
            match augmented {
                Some(seed) if cfg.augment_enabled => {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed_of(&[seed, i as u64]));
                    augment(&img, ex.grades, &cfg.augment, &mut rng).0
                }
                _ => img,
            }
        })
        .collect()
}

/// Splits a batch into micro-batches of at most `micro`, never leaving one of a single sample.
fn micro_batches(batch: &[usize], micro: usize) -> Vec<&[usize]> {
    let mut out: Vec<&[usize]> = batch.chunks(micro.max(2)).collect();
    if out.len() > 1 && out.last().is_some_and(|c| c.len() == 1) {
        let n = out.len();
        let start = batch.len() - out[n - 2].len() - 1;
        out.truncate(n - 2);
        out.push(&batch[start..]);
    }
    out
}

/// The training batches of an epoch: shuffled, full batches only (fastai's `drop_last`), or one batch of
/// everything when the set is smaller than a batch.
pub(super) fn epoch_batches(train: &[usize], batch: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut order = train.to_vec();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    if order.len() <= batch {
        return vec![order];
    }
    order.chunks_exact(batch).map(<[usize]>::to_vec).collect()
}

/// Number of batches [`epoch_batches`] makes of `n` films.
fn batch_count(n: usize, batch: usize) -> usize {
    if n <= batch { 1 } else { n / batch }
}

/// The training machinery shared by `train` and `lr_find`.
pub(super) struct Learner<'a> {
    pub(super) cfg: &'a TrainConfig,
    pub(super) data: &'a Dataset,
    pub(super) network: Network,
    pub(super) varmap: VarMap,
    pub(super) device: Device,
}

impl<'a> Learner<'a> {
    /// The network of the configuration with its base weights, ready to train on `data`.
    pub(super) fn new(
        cfg: &'a TrainConfig,
        data: &'a Dataset,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let (network, varmap) = build(cfg, device)?;
        Ok(Self {
            cfg,
            data,
            network,
            varmap,
            device: device.clone(),
        })
    }

    /// One optimiser step on a batch; returns the batch's loss.
    pub(super) fn step(
        &self,
        adam: &mut Adam,
        batch: &[usize],
        pre: &Preprocess,
        micro: usize,
        (rates, momentum): ([f64; 3], f64),
        seed: u64,
    ) -> Result<f64, TrainError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed_of(&[seed, 1]));
        let mut total = 0.0;
        for (k, part) in micro_batches(batch, micro).into_iter().enumerate() {
            let images = batch_images(self.data, part, pre.size, self.cfg, Some(seed));
            let x = to_input(&images, pre, &self.device)?;
            let labels: Vec<u32> = part
                .iter()
                .map(|&i| u32::from(self.data.examples[i].label))
                .collect();
            let y = Tensor::new(labels.as_slice(), &self.device)?;
            let eps = self.cfg.label_smoothing;
            let loss = if self.cfg.mixup_alpha > 0.0 {
                let mixed = mix(&x, self.cfg.mixup_alpha, &mut rng)?;
                let logits = self
                    .network
                    .forward_train(&mixed.inputs, seed_of(&[seed, 2, k as u64]))?;
                mixed_loss(&logits, &y, &mixed, eps)?
            } else {
                let logits = self
                    .network
                    .forward_train(&x, seed_of(&[seed, 2, k as u64]))?;
                label_smoothing_cross_entropy(&logits, &y, eps)?
            };
            let share = part.len() as f64 / batch.len() as f64;
            let value = f64::from(loss.to_scalar::<f32>()?);
            if !value.is_finite() {
                adam.clear_gradients();
                return Ok(value);
            }
            total += value * share;
            adam.accumulate(&self.network.backward(&(loss * share)?)?)?;
        }
        adam.step(&rates, momentum)?;
        Ok(total)
    }

    /// Probabilities of the positive class and the mean loss over a set, in eval mode.
    pub(super) fn evaluate(
        &self,
        idx: &[usize],
        pre: &Preprocess,
        micro: usize,
    ) -> Result<(Vec<f64>, f64), TrainError> {
        let mut probs = Vec::with_capacity(idx.len());
        let mut loss_sum = 0.0;
        // The same weights as plain tensors: no graph is built (nor kept alive) for what is not trained.
        let network =
            crate::model::weights::inference_network(*self.network.config(), &self.varmap)?;
        for part in idx.chunks(micro.max(1)) {
            let images = batch_images(self.data, part, pre.size, self.cfg, None);
            let x = to_input(&images, pre, &self.device)?;
            let logits = network.forward_t(&x, false)?;
            let labels: Vec<u32> = part
                .iter()
                .map(|&i| u32::from(self.data.examples[i].label))
                .collect();
            let y = Tensor::new(labels.as_slice(), &self.device)?;
            let loss = label_smoothing_cross_entropy(&logits, &y, self.cfg.label_smoothing)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * part.len() as f64;
            let p = candle_nn::ops::softmax(&logits, D::Minus1)?
                .narrow(1, 1, 1)?
                .squeeze(1)?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            probs.extend(p);
        }
        Ok((probs, loss_sum / idx.len().max(1) as f64))
    }

    pub(super) fn labels(&self, idx: &[usize]) -> Vec<bool> {
        idx.iter().map(|&i| self.data.examples[i].label).collect()
    }

    pub(super) fn snapshot(&self) -> Result<HashMap<String, Tensor>, TrainError> {
        let data = self
            .varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        data.iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    pub(super) fn restore(&self, snapshot: &HashMap<String, Tensor>) -> Result<(), TrainError> {
        let data = self
            .varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (k, v) in data.iter() {
            if let Some(t) = snapshot.get(k) {
                v.set(t)?;
            }
        }
        Ok(())
    }
}

/// Builds the network of the configuration and loads the base weights: every body tensor must be present
/// with the right shape; the head is loaded too when the file has a matching one (fine-tuning a Sacro
/// model), and freshly initialised otherwise (ImageNet weights with torchvision's `fc`).
fn build(cfg: &TrainConfig, device: &Device) -> Result<(Network, VarMap), TrainError> {
    let (mut network, varmap) = Network::initialised_seeded(cfg.architecture, device, cfg.seed)?;
    network.set_checkpointing(cfg.checkpoint_blocks);
    if cfg.checkpoint_blocks && !device.is_cpu() {
        tracing::warn!(
            "checkpoint_blocks applies on the CPU only: every intermediate is kept on the GPU"
        );
    }
    let Some(base) = &cfg.base_weights else {
        return Ok((network, varmap));
    };
    let file = if base.is_dir() {
        base.join(card::WEIGHTS_FILE)
    } else {
        base.clone()
    };
    let tensors = load_tensors(&file, device)?;
    let data = varmap
        .data()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let head_matches = data
        .iter()
        .filter(|(k, _)| k.starts_with("head."))
        .all(|(k, v)| tensors.get(k).is_some_and(|t| t.shape() == v.shape()));
    for (name, var) in data.iter() {
        let in_head = name.starts_with("head.") || name.starts_with("fc.");
        if in_head && !head_matches {
            continue;
        }
        let t = tensors.get(name).ok_or_else(|| {
            TrainError::Data(format!("{}: base weights lack {name}", file.display()))
        })?;
        if t.shape() != var.shape() {
            return Err(TrainError::Data(format!(
                "{}: {name} has shape {:?}, the network needs {:?}",
                file.display(),
                t.shape(),
                var.shape()
            )));
        }
        var.set(&t.to_dtype(DType::F32)?)?;
    }
    drop(data);
    Ok((network, varmap))
}

/// Trains as `cfg` says on `data` (already split), writing into `out`. With `resume`, continues the run
/// whose checkpoint is in `out` (the configuration must be the one saved there).
pub fn train(
    cfg: &TrainConfig,
    data: &Dataset,
    out: &Path,
    resume: bool,
    device: &Device,
    on_event: &mut dyn FnMut(Event),
    cancel: &AtomicBool,
) -> Result<Summary, TrainError> {
    cfg.check().map_err(|detail| TrainError::Config {
        path: out.join(CONFIG_FILE),
        detail,
    })?;
    data.check()?;
    let ckpt = out.join(CHECKPOINT_DIR);
    std::fs::create_dir_all(&ckpt).map_err(io_err(&ckpt))?;
    let state_path = state_path(out);
    let mut learner = Learner::new(cfg, data, device)?;
    let mut state = if resume {
        let saved = TrainConfig::load(&out.join(CONFIG_FILE))?;
        if &saved != cfg {
            return Err(TrainError::Config {
                path: out.join(CONFIG_FILE),
                detail: "--resume needs the configuration the run started with".into(),
            });
        }
        let text = std::fs::read_to_string(&state_path).map_err(io_err(&state_path))?;
        let state: RunState = serde_json::from_str(&text)
            .map_err(|e| TrainError::Data(format!("{}: {e}", state_path.display())))?;
        learner.restore(&load_tensors(&ckpt.join("weights.safetensors"), device)?)?;
        on_event(Event::Message(format!(
            "resuming at phase {} after {} epochs",
            state.phase + 1,
            state.epochs_done
        )));
        state
    } else {
        if state_path.exists() {
            return Err(TrainError::Data(format!(
                "{} holds a run already: --resume it or choose another output folder",
                out.display()
            )));
        }
        write_text(&out.join(CONFIG_FILE), &cfg.to_toml())?;
        RunState {
            phase: 0,
            epochs_done: 0,
            best_auc: None,
            since_best: 0,
        }
    };
    let phases = cfg.phases();
    let train_idx = data.indices(Split::Train);
    let valid_idx = data.indices(Split::Valid);
    let valid_labels = learner.labels(&valid_idx);
    let mut epochs_run = 0;
    while state.phase < phases.len() {
        let phase = phases[state.phase];
        let pre = Preprocess {
            fit: cfg.fit,
            window: cfg.window,
            ..Preprocess::imagenet(phase.size)
        };
        let micro = micro_batch(cfg, phase.size, phase.batch);
        learner.network.set_frozen_convolutions(phase.frozen);
        let mut adam = Adam::new(&learner.varmap, phase.frozen, cfg.adam);
        if state.epochs_done > 0 {
            adam.load_state(&load_tensors(&ckpt.join("optimizer.safetensors"), device)?)?;
        }
        let n_batches = batch_count(train_idx.len(), phase.batch);
        on_event(Event::PhaseStarted {
            phase,
            phases: phases.len(),
            batches: n_batches,
            micro_batch: micro,
        });
        let rates = cfg.rates(phase.frozen);
        let total_steps = (phase.epochs * n_batches) as f64;
        while state.epochs_done < phase.epochs {
            let epoch = state.epochs_done;
            let started = Instant::now();
            let batches = epoch_batches(
                &train_idx,
                phase.batch,
                seed_of(&[cfg.seed, phase.index as u64, epoch as u64]),
            );
            let mut loss_sum = 0.0;
            let mut lr_now = 0.0;
            for (b, batch) in batches.iter().enumerate() {
                if cancel.load(Ordering::Relaxed) {
                    return Err(TrainError::Cancelled);
                }
                let pos = (epoch * n_batches + b) as f64 / total_steps;
                let lrs = rates.map(|r| OneCycle::new(r).lr(pos));
                let mom = OneCycle::new(1.0).momentum(pos);
                let seed = seed_of(&[cfg.seed, phase.index as u64, epoch as u64, b as u64]);
                let loss = learner.step(&mut adam, batch, &pre, micro, (lrs, mom), seed)?;
                if !loss.is_finite() {
                    return Err(TrainError::Data(format!(
                        "training diverged (loss {loss}) in phase {}, epoch {}: lower the learning rate",
                        phase.index + 1,
                        epoch + 1
                    )));
                }
                loss_sum += loss;
                lr_now = lrs[2];
                on_event(Event::Batch {
                    phase: phase.index,
                    epoch,
                    batch: b,
                    batches: n_batches,
                    loss,
                    lr: lr_now,
                });
            }
            let (probs, valid_loss) = learner.evaluate(&valid_idx, &pre, micro)?;
            let auc = roc_auc(&valid_labels, &probs).unwrap_or(f64::NAN);
            let best = state.best_auc.is_none_or(|b| auc > b);
            if best {
                save_tensors(&ckpt.join("best.safetensors"), &learner.snapshot()?)?;
                state.best_auc = Some(auc);
                state.since_best = 0;
            } else {
                state.since_best += 1;
            }
            state.epochs_done += 1;
            epochs_run += 1;
            let record = EpochRecord {
                phase: phase.index,
                size: phase.size,
                frozen: phase.frozen,
                epoch,
                train_loss: loss_sum / batches.len().max(1) as f64,
                valid_loss,
                valid_auc: auc,
                lr: lr_now,
                seconds: started.elapsed().as_secs_f64(),
                best,
            };
            // Metrics first, then the checkpoint that says the epoch is done: a crash in between repeats
            // the epoch, and the metrics file then shows it twice rather than missing it.
            append_metrics(out, &record)?;
            save_tensors(&ckpt.join("weights.safetensors"), &learner.snapshot()?)?;
            save_tensors(&ckpt.join("optimizer.safetensors"), &adam.state()?)?;
            write_text(
                &state_path,
                &serde_json::to_string_pretty(&state).unwrap_or_default(),
            )?;
            on_event(Event::Epoch(record));
            if cfg
                .early_stopping_patience
                .is_some_and(|p| state.since_best >= p)
            {
                on_event(Event::Message(format!(
                    "early stop: no better validation AUC for {} epochs",
                    state.since_best
                )));
                break;
            }
        }
        // End of the phase: back to its best weights, as fastai's SaveModelCallback does.
        learner.restore(&load_tensors(&ckpt.join("best.safetensors"), device)?)?;
        state = RunState {
            phase: state.phase + 1,
            epochs_done: 0,
            best_auc: None,
            since_best: 0,
        };
        save_tensors(&ckpt.join("weights.safetensors"), &learner.snapshot()?)?;
        write_text(
            &state_path,
            &serde_json::to_string_pretty(&state).unwrap_or_default(),
        )?;
    }
    finish(&learner, out, epochs_run, on_event)
}

/// Writes the model folder: weights, card with the validation cut-offs, validation (and test)
/// predictions.
fn finish(
    learner: &Learner,
    out: &Path,
    epochs_run: usize,
    on_event: &mut dyn FnMut(Event),
) -> Result<Summary, TrainError> {
    let cfg = learner.cfg;
    let size = cfg.stages.last().map_or(224, |s| s.size);
    let pre = Preprocess {
        fit: cfg.fit,
        window: cfg.window,
        ..Preprocess::imagenet(size)
    };
    let micro = micro_batch(cfg, size, cfg.stages.last().map_or(8, |s| s.batch));
    let valid_idx = learner.data.indices(Split::Valid);
    let (probs, _) = learner.evaluate(&valid_idx, &pre, micro)?;
    let labels = learner.labels(&valid_idx);
    let valid_auc = roc_auc(&labels, &probs).unwrap_or(f64::NAN);
    let cutoffs = choose_all(&labels, &probs, Targets::default()).ok();
    write_predictions(
        &out.join("valid_predictions.csv"),
        learner.data,
        &valid_idx,
        &probs,
        cutoffs,
    )?;
    let test_idx = learner.data.indices(Split::Test);
    let test_auc = if test_idx.is_empty() {
        None
    } else {
        let (p, _) = learner.evaluate(&test_idx, &pre, micro)?;
        write_predictions(
            &out.join("test_predictions.csv"),
            learner.data,
            &test_idx,
            &p,
            cutoffs,
        )?;
        roc_auc(&learner.labels(&test_idx), &p).ok()
    };
    let model_dir = out.join(MODEL_DIR);
    let n_train = learner.data.indices(Split::Train).len();
    let card = ModelCard {
        name: out
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned()),
        architecture: cfg.architecture,
        preprocess: pre,
        class_names: class_names(),
        positive_class: 1,
        cutoffs,
        training_data: format!(
            "{} ({n_train} training, {} validation cases; validation AUC {valid_auc:.3}); schedule in {CONFIG_FILE}, history in {METRICS_FILE}",
            learner.data.source,
            valid_idx.len()
        ),
        intended_use: "research; not validated for clinical use".into(),
        weights_sha256: String::new(),
        sacro_version: String::new(),
        scope: Default::default(),
    };
    card::save(&model_dir, &card, &learner.varmap)?;
    // The model folder describes itself: the schedule, the history and the validation predictions.
    for name in [CONFIG_FILE, METRICS_FILE, "valid_predictions.csv"] {
        let (from, to) = (out.join(name), model_dir.join(name));
        if from.is_file() {
            std::fs::copy(&from, &to).map_err(io_err(&to))?;
        }
    }
    on_event(Event::Message(format!(
        "model written to {} (validation AUC {valid_auc:.3})",
        model_dir.display()
    )));
    Ok(Summary {
        model_dir,
        valid_auc,
        test_auc,
        cutoffs,
        epochs_run,
    })
}

/// The class names of a binary Sacro model.
pub fn class_names() -> Vec<String> {
    vec![
        "no definite sacroiliitis".to_string(),
        "definite radiographic sacroiliitis".to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batches_never_leave_one_sample() {
        let b: Vec<usize> = (0..9).collect();
        let parts = micro_batches(&b, 4);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert_eq!(parts.concat(), b);
        assert_eq!(micro_batches(&b, 3).len(), 3);
        assert_eq!(micro_batches(&b[..2], 8).len(), 1);
    }

    #[test]
    fn epochs_drop_the_last_partial_batch() {
        let idx: Vec<usize> = (0..10).collect();
        let b = epoch_batches(&idx, 4, 1);
        assert_eq!(b.len(), 2);
        assert!(b.iter().all(|x| x.len() == 4));
        assert_eq!(epoch_batches(&idx, 16, 1)[0].len(), 10);
        assert_ne!(epoch_batches(&idx, 4, 1), epoch_batches(&idx, 4, 2));
        for (n, batch) in [(10, 4), (10, 16), (8, 4), (3, 2)] {
            let idx: Vec<usize> = (0..n).collect();
            assert_eq!(batch_count(n, batch), epoch_batches(&idx, batch, 7).len());
        }
    }
}
