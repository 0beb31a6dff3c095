//! Losses: fastai's label-smoothing cross-entropy, `eps/c · Σ(−log p) + (1 − eps) · NLL`, averaged over
//! the batch.

use candle_core::{D, DType, Result, Tensor};

/// Per-sample label-smoothing cross-entropy `[n]` (fastai's loss with `reduction='none'`).
pub fn label_smoothing_per_sample(logits: &Tensor, targets: &Tensor, eps: f64) -> Result<Tensor> {
    let c = logits.dim(D::Minus1)? as f64;
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let smooth = log_p.sum(D::Minus1)?.neg()?;
    let picked = log_p
        .gather(&targets.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?;
    (smooth * (eps / c))? + (picked * (1.0 - eps))?
}

/// Label-smoothing cross-entropy of logits `[n, c]` and class indices `[n]` (u32); `eps = 0` is plain
/// cross-entropy.
pub fn label_smoothing_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let c = logits.dim(D::Minus1)? as f64;
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let smooth = log_p.sum(D::Minus1)?.neg()?.mean_all()?;
    let nll = candle_nn::loss::nll(&log_p, &targets.to_dtype(DType::U32)?)?;
    (smooth * (eps / c))? + (nll * (1.0 - eps))?
}
