//! Classification heads on layer4's output: torchvision's `fc` (average pool → linear, for ImageNet
//! checks) and the head fastai's `create_head` puts on a ResNet-50, which the seed study trained:
//! concat pool (max, then average) → BatchNorm1d → Dropout(0.25) → Linear (no bias) → ReLU →
//! BatchNorm1d → Dropout(0.5) → Linear (no bias). Names follow fastai's `nn.Sequential` indices under
//! `head.` (`head.2` BatchNorm, `head.4` Linear, `head.6` BatchNorm, `head.8` Linear).

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, Linear, Module, ModuleT, VarBuilder};
use rand::{Rng, SeedableRng};

use crate::kernels::pool;

/// Which head the model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HeadKind {
    /// torchvision's `fc`: global average pool → Linear(C → classes) with bias.
    Torchvision,
    /// fastai's head: concat pool → BN → dropout → Linear(2C → hidden) → ReLU → BN → dropout → Linear(hidden → classes).
    Fastai {
        /// Hidden width (512).
        hidden: usize,
    },
}

/// A head.
#[derive(Debug, Clone)]
pub enum Head {
    /// torchvision's `fc`.
    Torchvision(Linear),
    /// fastai's head.
    Fastai {
        /// BatchNorm1d(2C).
        bn1: BatchNorm,
        /// Linear(2C → hidden), no bias.
        lin1: Linear,
        /// BatchNorm1d(hidden).
        bn2: BatchNorm,
        /// Linear(hidden → classes), no bias.
        lin2: Linear,
    },
}

impl Head {
    /// Builds the head for `channels` input channels and `classes` outputs. torchvision's head lives
    /// at `fc`, fastai's under `head`.
    pub fn new(kind: HeadKind, channels: usize, classes: usize, vb: VarBuilder) -> Result<Self> {
        Ok(match kind {
            HeadKind::Torchvision => {
                Head::Torchvision(candle_nn::linear(channels, classes, vb.pp("fc"))?)
            }
            HeadKind::Fastai { hidden } => {
                let vb = vb.pp("head");
                let bn_cfg = candle_nn::BatchNormConfig::default();
                Head::Fastai {
                    bn1: candle_nn::batch_norm(2 * channels, bn_cfg, vb.pp("2"))?,
                    lin1: candle_nn::linear_no_bias(2 * channels, hidden, vb.pp("4"))?,
                    bn2: candle_nn::batch_norm(hidden, bn_cfg, vb.pp("6"))?,
                    lin2: candle_nn::linear_no_bias(hidden, classes, vb.pp("8"))?,
                }
            }
        })
    }

    /// Logits from layer4's output `[n, C, h, w]`.
    pub fn forward_t(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_dropout(features, train, None)
    }

    /// Logits in training mode with dropout masks drawn from a generator seeded with `seed`, so that a
    /// training run is reproducible (candle's own dropout draws from an unseeded generator).
    pub fn forward_seeded(&self, features: &Tensor, seed: u64) -> Result<Tensor> {
        self.forward_dropout(features, true, Some(seed))
    }

    fn forward_dropout(&self, features: &Tensor, train: bool, seed: Option<u64>) -> Result<Tensor> {
        let mut rng = seed.map(rand_chacha::ChaCha8Rng::seed_from_u64);
        let mut dropout = |x: &Tensor, p: f32| -> Result<Tensor> {
            if !train {
                return Ok(x.clone());
            }
            match rng.as_mut() {
                None => candle_nn::ops::dropout(x, p),
                Some(rng) => {
                    let scale = 1.0 / (1.0 - p);
                    let mask: Vec<f32> = (0..x.elem_count())
                        .map(|_| if rng.random::<f32>() >= p { scale } else { 0.0 })
                        .collect();
                    x * Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?
                }
            }
        };
        match self {
            Head::Torchvision(fc) => fc.forward(&pool::global_avg(features)?),
            Head::Fastai {
                bn1,
                lin1,
                bn2,
                lin2,
            } => {
                let x = Tensor::cat(
                    &[pool::global_max(features)?, pool::global_avg(features)?],
                    1,
                )?;
                let x = bn1.forward_t(&x, train)?;
                let x = dropout(&x, 0.25)?;
                let x = lin1.forward(&x)?.relu()?;
                let x = bn2.forward_t(&x, train)?;
                let x = dropout(&x, 0.5)?;
                lin2.forward(&x)
            }
        }
    }
}
