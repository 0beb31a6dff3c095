//! MixUp as fastai applies it: per sample λ ~ Beta(α, α), λ ← max(λ, 1 − λ); the batch is blended with a
//! shuffled copy of itself, x ← λ·x + (1 − λ)·x[perm], and the loss is λ·L(y) + (1 − λ)·L(y[perm]),
//! training only.

use candle_core::{Device, Result, Tensor};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Beta, Distribution};

use super::loss::label_smoothing_per_sample;

/// A mixed batch.
#[derive(Debug, Clone)]
pub struct Mixed {
    /// The blended inputs.
    pub inputs: Tensor,
    /// λ per sample (≥ 0.5).
    pub lambda: Vec<f32>,
    /// The shuffle.
    pub perm: Vec<u32>,
}

/// Blends a batch `[n, …]` with a shuffled copy of itself.
pub fn mix<R: Rng>(inputs: &Tensor, alpha: f64, rng: &mut R) -> Result<Mixed> {
    let n = inputs.dim(0)?;
    let beta = Beta::new(alpha, alpha)
        .map_err(|e| candle_core::Error::Msg(format!("mixup alpha {alpha}: {e}")))?;
    let lambda: Vec<f32> = (0..n)
        .map(|_| {
            let l: f64 = beta.sample(rng);
            l.max(1.0 - l) as f32
        })
        .collect();
    let mut perm: Vec<u32> = (0..n as u32).collect();
    perm.shuffle(rng);
    let device: &Device = inputs.device();
    let idx = Tensor::new(perm.as_slice(), device)?;
    let shuffled = inputs.index_select(&idx, 0)?;
    let mut shape = vec![n];
    shape.extend(std::iter::repeat_n(1, inputs.rank() - 1));
    let lam = Tensor::new(lambda.as_slice(), device)?.reshape(shape)?;
    let mixed = (inputs.broadcast_mul(&lam)? + shuffled.broadcast_mul(&(1.0 - &lam)?)?)?;
    Ok(Mixed {
        inputs: mixed,
        lambda,
        perm,
    })
}

/// The MixUp loss (label-smoothing cross-entropy with `eps`) of logits for a mixed batch.
pub fn mixed_loss(logits: &Tensor, targets: &Tensor, mixed: &Mixed, eps: f64) -> Result<Tensor> {
    let device = logits.device();
    let idx = Tensor::new(mixed.perm.as_slice(), device)?;
    let l1 = label_smoothing_per_sample(logits, targets, eps)?;
    let l2 = label_smoothing_per_sample(logits, &targets.index_select(&idx, 0)?, eps)?;
    let lam = Tensor::new(mixed.lambda.as_slice(), device)?;
    ((l1 * &lam)? + (l2 * (1.0 - &lam)?)?)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::loss::label_smoothing_cross_entropy;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn blends_and_weights_the_loss() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[0.0f32, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], &dev).unwrap();
        let m = mix(&x, 0.4, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        assert!(m.lambda.iter().all(|&l| (0.5..=1.0).contains(&l)));
        let got: Vec<Vec<f32>> = m.inputs.to_vec2().unwrap();
        for (i, row) in got.iter().enumerate() {
            let want = m.lambda[i] * i as f32 + (1.0 - m.lambda[i]) * m.perm[i] as f32;
            assert!((row[0] - want).abs() < 1e-6);
        }
        let logits =
            Tensor::new(&[[0.2f32, -0.1], [1.0, 0.3], [-0.5, 0.5], [0.0, 2.0]], &dev).unwrap();
        let y = Tensor::new(&[0u32, 1, 1, 0], &dev).unwrap();
        // λ = 1 everywhere: plain label-smoothing loss.
        let ones = Mixed {
            inputs: x.clone(),
            lambda: vec![1.0; 4],
            perm: m.perm.clone(),
        };
        let a: f32 = mixed_loss(&logits, &y, &ones, 0.1)
            .unwrap()
            .to_scalar()
            .unwrap();
        let b: f32 = label_smoothing_cross_entropy(&logits, &y, 0.1)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((a - b).abs() < 1e-6);
        assert!(mix(&x, -1.0, &mut ChaCha8Rng::seed_from_u64(5)).is_err());
    }
}
