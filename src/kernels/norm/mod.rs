//! Batch normalisation kernels, fused with the ReLU that follows it where there is one (and with a
//! block's residual sum): CPU, f32 and f64.
//!
//! In training, one multithreaded pass gathers each channel's batch mean and variance and a second
//! writes the normalised, scaled, shifted (and rectified) output in the input's own `[n, c, …]` layout;
//! the backward pass is two more passes (per-channel sums of the output gradient, then the input
//! gradient) that give the input's, the scale's and the shift's gradients at once ([`train`]). In
//! evaluation, one pass applies the folded per-channel scale and shift ([`eval`]). candle's stock batch
//! norm makes a transposed copy, runs about eight single-threaded elementwise passes forward and as many
//! backward, and leaves a transposed result that the next convolution copies again.
//!
//! The layer that owns the parameters and running statistics is the network's (`model::norm::Norm`);
//! these functions take plain tensors and return the batch statistics for it to fold in.

mod affine;
mod eval;
mod train;

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::cpu::Float;
pub(crate) use eval::eval_in_place;
use train::norm_bwd;

/// Training-mode batch norm (+ ReLU) of a contiguous `x` with scale `weight` and shift `bias` (in `x`'s
/// type), `residual` added before the ReLU where given (then the ReLU always applies): the output, with a
/// graph to the three inputs, and the batch's statistics (for the running statistics).
pub(crate) fn train_forward(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    residual: Option<&Tensor>,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, BatchStats)> {
    let stats = StatsSlot::default();
    let y = match residual {
        None => x.apply_op3(
            weight,
            bias,
            BnTrain {
                eps,
                relu,
                stats: stats.clone(),
            },
        )?,
        Some(r) => x.apply_op3(
            &Tensor::stack(&[weight, bias], 0)?,
            r,
            BnAddTrain {
                eps,
                stats: stats.clone(),
            },
        )?,
    };
    Ok((y, stats.get()?))
}

/// Evaluation-mode `x · scale + shift` per channel of a contiguous `x`, `params = [scale; shift]`
/// (`[2, c]`), `residual` added, then the ReLU when `relu` (always with a residual).
pub(crate) fn eval_forward(
    x: &Tensor,
    params: &Tensor,
    residual: Option<&Tensor>,
    relu: bool,
) -> Result<Tensor> {
    match residual {
        None => x.apply_op2(params, BnEval { relu }),
        Some(r) => x.apply_op3(params, r, BnAddEval),
    }
}

/// Training-mode batch norm (+ ReLU) of a contiguous `x` with `gamma_beta = [scale; shift]` (detached,
/// in `x`'s type), building no graph: the output, what its backward pass needs and the batch statistics,
/// for a caller that runs that pass itself (the network's one-node blocks).
pub(crate) fn train_detached(
    x: &Tensor,
    gamma_beta: Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, NormTrain)> {
    let slot = StatsSlot::default();
    let op = BnTrain {
        eps,
        relu,
        stats: slot.clone(),
    };
    let y = x.apply_op3_no_bwd(&gamma_beta.get(0)?, &gamma_beta.get(1)?, &op)?;
    let stats = slot.get()?;
    Ok((
        y,
        NormTrain {
            eps,
            gamma_beta,
            stats,
        },
    ))
}

/// A training-mode batch norm that ran without a graph ([`train_detached`]): what its backward
/// pass needs besides its input.
#[derive(Debug)]
pub(crate) struct NormTrain {
    eps: f64,
    /// `[2, c]`, detached, in the input's type.
    gamma_beta: Tensor,
    stats: BatchStats,
}

impl NormTrain {
    /// `(dx, dscale, dshift)` from the output gradient `dy` (above the ReLU when `relu`), for the input
    /// `x` the forward pass normalised.
    pub(crate) fn backward(
        &self,
        x: &Tensor,
        dy: &Tensor,
        relu: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        norm_bwd(x, dy, &self.gamma_beta, &self.stats, self.eps, relu)
    }

    /// The batch statistics of the forward pass.
    pub(crate) fn stats(&self) -> &BatchStats {
        &self.stats
    }
}

/// The training-mode `relu(norm(x) + residual)` at the end of a block, computed inside that block's op
/// ([`BlockEnd::new`]); clones share the batch statistics the forward pass leaves.
#[derive(Debug, Clone)]
pub(crate) struct BlockEnd {
    eps: f64,
    gamma_beta: Tensor,
    slot: StatsSlot,
}

impl BlockEnd {
    /// The block end for scale and shift `gamma_beta = [scale; shift]` (detached, in the input's type).
    pub(crate) fn new(eps: f64, gamma_beta: Tensor) -> Self {
        Self {
            eps,
            gamma_beta,
            slot: StatsSlot::default(),
        }
    }

    /// The output from the storages of `x` and the residual (an op's forward pass: no copy of either).
    pub(crate) fn forward(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (params, pl) = self.gamma_beta.storage_and_layout();
        let candle_core::Storage::Cpu(ps) = &*params else {
            candle_core::bail!("batch norm + residual: parameters not on the CPU");
        };
        BnAddTrain {
            eps: self.eps,
            stats: self.slot.clone(),
        }
        .cpu_fwd(xs, xl, ps, pl, rs, rl)
    }

    /// After the forward pass: the batch statistics it gathered (for the layer's running statistics).
    pub(crate) fn stats(&self) -> Result<BatchStats> {
        self.slot.get()
    }

    /// `(dx, dscale, dshift)` from the gradient `dz` below the ReLU (the sum's), for the input `x` the
    /// forward pass normalised.
    pub(crate) fn backward(&self, x: &Tensor, dz: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        norm_bwd(x, dz, &self.gamma_beta, &self.slot.get()?, self.eps, false)
    }
}

/// The ReLU's input gradient from its output `y` and output gradient `dy` (no graph).
pub(crate) fn relu_backward(dy: &Tensor, y: &Tensor) -> Result<Tensor> {
    dy.contiguous()?
        .apply_op2_no_bwd(&y.contiguous()?, &ReluGrad)
}

/// Batch statistics of one forward pass (biased variance), kept for the backward pass and the running
/// statistics.
#[derive(Debug, Clone)]
pub(crate) struct BatchStats {
    /// Per-channel mean.
    pub(crate) mean: Vec<f64>,
    /// Per-channel biased variance.
    pub(crate) var: Vec<f64>,
    /// Values per channel (n × spatial size).
    pub(crate) count: usize,
}

/// Where a training op's forward pass leaves its [`BatchStats`] for the caller (running statistics) and the
/// backward pass.
#[derive(Debug, Clone, Default)]
struct StatsSlot(Arc<Mutex<Option<BatchStats>>>);

impl StatsSlot {
    fn set(&self, stats: BatchStats) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(stats);
    }

    fn get(&self) -> Result<BatchStats> {
        let stats = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        stats.ok_or_else(|| {
            candle_core::Error::Msg("batch norm: no statistics from a forward pass".into())
        })
    }
}

/// Training-mode batch norm (+ ReLU) of `x` with scale `gamma` and shift `beta`.
#[derive(Debug)]
struct BnTrain {
    eps: f64,
    relu: bool,
    /// Written by the forward pass; read by the caller (running statistics) and the backward pass.
    stats: StatsSlot,
}

/// Training-mode `relu(norm(x) + residual)`: `(x, [gamma; beta], residual)`.
#[derive(Debug)]
struct BnAddTrain {
    eps: f64,
    /// As [`BnTrain::stats`].
    stats: StatsSlot,
}

/// Evaluation-mode `relu(x · scale + shift + residual)`: `(x, [scale; shift], residual)`.
#[derive(Debug)]
struct BnAddEval;

/// The ReLU's backward pass from its output: `(dy, y)` → `dy` where `y > 0`, else 0.
#[derive(Debug)]
struct ReluGrad;

/// Evaluation-mode batch norm (+ ReLU): `x · scale + shift` per channel, `params = [scale; shift]`.
#[derive(Debug)]
struct BnEval {
    relu: bool,
}

/// The backward pass of [`BnTrain`]: `(x, dy, [gamma; beta; mean; invstd])` → `dx ++ dgamma ++ dbeta`.
#[derive(Debug)]
struct BnBackward {
    relu: bool,
}

/// `(n, c, spatial size)` of an `[n, c, …]` layout.
fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    let d = l.dims();
    if d.len() < 2 {
        candle_core::bail!("batch norm: input {d:?} has no channel dimension");
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// Σ f(aᵢ, bᵢ) over two equally long slices, a pair of sums accumulated in f64 in [`LANES`] independent
/// partial sums rather than one chain of dependent additions per channel, so that the additions can
/// pipeline and vectorise. (Batch norm's passes were about a tenth of a training step in a profile; this
/// change alone did not move the step time beyond the measurement's noise.)
#[inline(always)]
fn lane_sums<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> (f64, f64)) -> (f64, f64) {
    let (mut s, mut t) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for j in 0..LANES {
            let (p, q) = f(xa[j], xb[j]);
            s[j] += p;
            t[j] += q;
        }
    }
    for (&va, &vb) in ra.iter().zip(rb) {
        let (p, q) = f(va, vb);
        s[0] += p;
        t[0] += q;
    }
    (s.iter().sum(), t.iter().sum())
}

/// Independent partial sums per channel in [`lane_sums`].
const LANES: usize = 8;

/// `f(channel)` for every channel, in parallel: each channel's pair of sums.
fn per_channel<F>(c: usize, f: F) -> Vec<(f64, f64)>
where
    F: Fn(usize) -> (f64, f64) + Sync + Send,
{
    (0..c).into_par_iter().map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::cpu::tests::on_both_paths;
    use eval::eval_fwd;
    use train::{train_bwd, train_fwd};

    /// `n` seeded values in [-2, 2).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-2.0..2.0)).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The vectorised kernels give the same bits as the baseline code: the forward pass (with and without
    /// ReLU and residual), the backward pass and evaluation mode, on planes whose size is not a multiple
    /// of any vector width. (In the test profile, optimised less, this mostly checks the dispatch; the
    /// release build was checked by hand with `SACRO_SIMD=off`, README "Performance".)
    #[test]
    fn dispatched_kernels_equal_the_baseline_to_the_bit() {
        let d = (3, 5, 67);
        let len = d.0 * d.1 * d.2;
        let (x, dy, r) = (values(len, 1), values(len, 2), values(len, 3));
        let (gamma, beta) = (values(d.1, 4), values(d.1, 5));
        for relu in [false, true] {
            for residual in [None, Some(r.as_slice())] {
                let (fast, base) = on_both_paths(|| {
                    let (y, st) =
                        train_fwd(&x, &gamma, &beta, residual, d, 1e-5, relu).expect("forward");
                    let params: Vec<f32> = gamma
                        .iter()
                        .chain(&beta)
                        .copied()
                        .chain(st.mean.iter().map(|&m| m as f32))
                        .chain(st.var.iter().map(|&v| (1.0 / (v + 1e-5).sqrt()) as f32))
                        .collect();
                    let dx = train_bwd(&x, &dy, &params, d, relu);
                    let ev = eval_fwd(&x, &params[..2 * d.1], residual, d, relu);
                    (bits(&y), bits(&dx), bits(&ev), st.mean, st.var)
                });
                assert!(fast == base, "relu {relu}, residual {}", residual.is_some());
            }
        }
    }
}
