//! Batch normalisation of the ResNet's activations, fused with the ReLU that follows it where there is one.
//!
//! Two paths, chosen with the convolutions' ([`super::conv::conv_path`]; `SACRO_CONV=stock` keeps candle's):
//! - **fused** (CPU, f32 and f64): in training, one multithreaded pass gathers each channel's batch mean and
//!   variance and a second writes the normalised, scaled, shifted (and rectified) output in the input's own
//!   `[n, c, …]` layout; the backward pass is two more passes (per-channel sums of the output gradient, then
//!   the input gradient) that give the input's, the scale's and the shift's gradients at once. In
//!   evaluation, one pass applies the folded per-channel scale and shift. candle's stock batch norm makes a
//!   transposed copy, runs about eight single-threaded elementwise passes forward and as many backward,
//!   and leaves a transposed result that the next convolution copies again.
//! - **stock**: `candle_nn::BatchNorm` then `relu()`; also used on GPUs.
//!
//! Both update the running statistics as PyTorch does (momentum 0.1, unbiased variance).

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, Var};
use candle_nn::{BatchNorm, ModuleT, VarBuilder};
use rayon::prelude::*;

use super::conv::{Conv, ConvPath, conv_path};
use super::cpu::{Float, by_float, contiguous, simd, zeros};

/// Batch norm over dimension 1 of `[n, c, …]` inputs (BatchNorm2d, or BatchNorm1d on `[n, c]`), with
/// torchvision's tensor names (`weight`, `bias`, `running_mean`, `running_var`).
#[derive(Debug, Clone)]
pub struct Norm {
    stock: BatchNorm,
    running_mean: Var,
    running_var: Var,
}

impl Norm {
    /// The layer for `channels` channels (PyTorch's defaults: eps 1e-5, momentum 0.1, affine).
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let stock = candle_nn::batch_norm(channels, candle_nn::BatchNormConfig::default(), vb)?;
        // The running statistics are the VarMap's variables: setting them here updates what is saved.
        let running_mean = Var::from_tensor(stock.running_mean())?;
        let running_var = Var::from_tensor(stock.running_var())?;
        Ok(Self {
            stock,
            running_mean,
            running_var,
        })
    }

    /// Normalises `x` (batch statistics when `train`, running statistics otherwise), then applies the
    /// ReLU when `relu`.
    pub fn forward(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        self.forward_on(conv_path(), x, train, relu)
    }

    /// `relu(norm(x) + residual)`: the end of a bottleneck block, one pass on the fused path (neither the
    /// normalised `x` nor the sum is kept for the backward pass).
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_add_relu_on(conv_path(), x, residual, train)
    }

    /// [`Norm::forward_add_relu`] on the given path.
    pub fn forward_add_relu_on(
        &self,
        path: ConvPath,
        x: &Tensor,
        residual: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        if !Self::fused(path, x) || residual.dims() != x.dims() || residual.dtype() != x.dtype() {
            return (self.stock.forward_t(x, train)? + residual)?.relu();
        }
        self.fused_forward(&x.contiguous()?, Some(&residual.contiguous()?), train, true)
    }

    /// Scale and shift (the trained parameters).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.stock
            .weight_and_bias()
            .map(|(w, b)| vec![w.clone(), b.clone()])
            .unwrap_or_default()
    }

    /// Copies of the running mean and variance.
    pub fn running_statistics(&self) -> Result<[Tensor; 2]> {
        Ok([
            self.running_mean.as_tensor().copy()?,
            self.running_var.as_tensor().copy()?,
        ])
    }

    /// Sets the running mean and variance (from [`Norm::running_statistics`]).
    pub fn set_running_statistics(&self, [mean, var]: &[Tensor; 2]) -> Result<()> {
        self.running_mean.set(mean)?;
        self.running_var.set(var)
    }

    fn fused(path: ConvPath, x: &Tensor) -> bool {
        path == ConvPath::Im2Col
            && x.device().is_cpu()
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && x.rank() >= 2
    }

    /// [`Norm::forward`] on the given path (the fused one only where it applies: CPU, f32 or f64), for
    /// tests and benchmarks that compare the two in one process.
    pub fn forward_on(
        &self,
        path: ConvPath,
        x: &Tensor,
        train: bool,
        relu: bool,
    ) -> Result<Tensor> {
        if !Self::fused(path, x) {
            let y = self.stock.forward_t(x, train)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        self.fused_forward(&x.contiguous()?, None, train, relu)
    }

    /// The fused path on a contiguous `x` (and residual, added before the ReLU).
    fn fused_forward(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        train: bool,
        relu: bool,
    ) -> Result<Tensor> {
        let Some((weight, bias)) = self.stock.weight_and_bias() else {
            candle_core::bail!("batch norm without scale and shift");
        };
        if train {
            return self.forward_train(x, weight, bias, residual, relu);
        }
        let params = self.eval_params(x.dtype())?;
        match residual {
            None => x.apply_op2(&params, BnEval { relu }),
            Some(r) => x.apply_op3(&params, r, BnAddEval),
        }
    }

    /// `self(conv(x))`, then the ReLU when `relu`: in evaluation mode, where nothing carries a graph
    /// (inference), one op that normalises the convolution's product in place
    /// ([`Conv::forward_bn_eval`]); otherwise the two ops.
    pub fn forward_conv(&self, conv: &Conv, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        if !train && Self::fused(conv_path(), x) {
            let params = self.eval_params(x.dtype())?;
            if let Some(y) = conv.forward_bn_eval(x, &params, relu)? {
                return Ok(y);
            }
        }
        self.forward(&candle_nn::Module::forward(conv, x)?, train, relu)
    }

    /// Evaluation mode's `[scale; shift]` (`[2, c]`) in `dtype`.
    fn eval_params(&self, dtype: DType) -> Result<Tensor> {
        let Some((weight, bias)) = self.stock.weight_and_bias() else {
            candle_core::bail!("batch norm without scale and shift");
        };
        // The running statistics are buffers, not parameters: detached, so that a forward pass of plain
        // (loaded, not trained) weights builds no graph, which would keep every activation alive until the
        // output is dropped.
        let (mean, var) = (
            self.running_mean.as_tensor().detach(),
            self.running_var.as_tensor().detach(),
        );
        let scale = (weight / (var + self.stock.eps())?.sqrt()?)?;
        let shift = (bias - (mean * &scale)?)?;
        Tensor::stack(&[&scale, &shift], 0)?.to_dtype(dtype)
    }

    fn forward_train(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> Result<Tensor> {
        let stats = StatsSlot::default();
        let (weight, bias) = (weight.to_dtype(x.dtype())?, bias.to_dtype(x.dtype())?);
        let y = match residual {
            None => x.apply_op3(
                &weight,
                &bias,
                BnTrain {
                    eps: self.stock.eps(),
                    relu,
                    stats: stats.clone(),
                },
            )?,
            Some(r) => x.apply_op3(
                &Tensor::stack(&[&weight, &bias], 0)?,
                r,
                BnAddTrain {
                    eps: self.stock.eps(),
                    stats: stats.clone(),
                },
            )?,
        };
        self.update_running(&stats.get()?)?;
        Ok(y)
    }

    /// Moves the running statistics towards a training batch's (PyTorch's momentum, unbiased variance).
    fn update_running(&self, stats: &Stats) -> Result<()> {
        let c = stats.mean.len();
        let m = stats.count as f64;
        let momentum = self.stock.momentum();
        let dtype = self.running_mean.dtype();
        let device = self.running_mean.device();
        let mean = Tensor::from_slice(&stats.mean, c, device)?.to_dtype(dtype)?;
        let unbiased =
            Tensor::from_slice(&stats.var, c, device)?.to_dtype(dtype)? * (m / (m - 1.0));
        self.running_mean
            .set(&((self.running_mean.as_tensor() * (1.0 - momentum))? + (mean * momentum)?)?)?;
        self.running_var
            .set(&((self.running_var.as_tensor() * (1.0 - momentum))? + (unbiased? * momentum)?)?)
    }

    /// Scale and shift as `[2, c]` in `dtype`, detached (for ops that compute their own gradients).
    fn gamma_beta_detached(&self, dtype: DType) -> Result<Tensor> {
        let Some((weight, bias)) = self.stock.weight_and_bias() else {
            candle_core::bail!("batch norm without scale and shift");
        };
        Tensor::stack(&[weight.detach(), bias.detach()], 0)?.to_dtype(dtype)
    }

    /// Training-mode batch norm (+ ReLU) of a contiguous `x` on the fused path, building no graph (scale
    /// and shift detached), the running statistics updated: the output and what its backward pass needs,
    /// for a caller that runs that pass itself ([`super::block`]).
    pub(crate) fn train_detached(&self, x: &Tensor, relu: bool) -> Result<(Tensor, NormTrain)> {
        let gamma_beta = self.gamma_beta_detached(x.dtype())?;
        let slot = StatsSlot::default();
        let op = BnTrain {
            eps: self.stock.eps(),
            relu,
            stats: slot.clone(),
        };
        let y = x.apply_op3_no_bwd(&gamma_beta.get(0)?, &gamma_beta.get(1)?, &op)?;
        let stats = slot.get()?;
        self.update_running(&stats)?;
        Ok((
            y,
            NormTrain {
                eps: self.stock.eps(),
                gamma_beta,
                stats,
            },
        ))
    }

    /// Training-mode `relu(norm(x) + residual)` for an op that ends a block and runs its backward pass
    /// itself ([`super::block`]): the op's forward pass calls [`BlockEnd::forward`] on its storages, then
    /// its creator [`BlockEnd::finish`].
    pub(crate) fn block_end(&self, dtype: DType) -> Result<BlockEnd> {
        Ok(BlockEnd {
            eps: self.stock.eps(),
            gamma_beta: self.gamma_beta_detached(dtype)?,
            slot: StatsSlot::default(),
        })
    }

    /// The scale and shift tensors (the variables' own, for gradients keyed by them).
    pub(crate) fn scale_and_shift(&self) -> Result<(Tensor, Tensor)> {
        self.stock
            .weight_and_bias()
            .map(|(w, b)| (w.clone(), b.clone()))
            .ok_or_else(|| candle_core::Error::Msg("batch norm without scale and shift".into()))
    }
}

/// A training-mode batch norm that ran without a graph ([`Norm::train_detached`]): what its backward
/// pass needs besides its input.
#[derive(Debug)]
pub(crate) struct NormTrain {
    eps: f64,
    /// `[2, c]`, detached, in the input's type.
    gamma_beta: Tensor,
    stats: Stats,
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
}

/// The training-mode `relu(norm(x) + residual)` at the end of a block, computed inside that block's op
/// ([`Norm::block_end`]); clones share the batch statistics the forward pass leaves.
#[derive(Debug, Clone)]
pub(crate) struct BlockEnd {
    eps: f64,
    gamma_beta: Tensor,
    slot: StatsSlot,
}

impl BlockEnd {
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

    /// After the forward pass: the running statistics of `norm` moved towards the batch's.
    pub(crate) fn finish(&self, norm: &Norm) -> Result<()> {
        norm.update_running(&self.slot.get()?)
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
struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
    /// Values per channel (n × spatial size).
    count: usize,
}

/// Where a training op's forward pass leaves its [`Stats`] for the caller (running statistics) and the
/// backward pass.
#[derive(Debug, Clone, Default)]
struct StatsSlot(Arc<Mutex<Option<Stats>>>);

impl StatsSlot {
    fn set(&self, stats: Stats) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(stats);
    }

    fn get(&self) -> Result<Stats> {
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

fn train_fwd<T: Float>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    residual: Option<&[T]>,
    (n, c, hw): (usize, usize, usize),
    eps: f64,
    relu: bool,
) -> Result<(Vec<T>, Stats)> {
    let m = n * hw;
    if m < 2 {
        candle_core::bail!(
            "batch norm in training needs more than one value per channel (batch {n}, {hw} per image)"
        );
    }
    let sums = per_channel(c, |ch| {
        simd(
            #[inline(always)]
            || {
                let mut acc = (0.0, 0.0);
                for img in 0..n {
                    let plane = &x[(img * c + ch) * hw..(img * c + ch + 1) * hw];
                    let (s, s2) = lane_sums(plane, plane, |v, _| {
                        let v = v.to_f64();
                        (v, v * v)
                    });
                    acc = (acc.0 + s, acc.1 + s2);
                }
                acc
            },
        )
    });
    let mean: Vec<f64> = sums.iter().map(|&(s, _)| s / m as f64).collect();
    let var: Vec<f64> = sums
        .iter()
        .zip(&mean)
        .map(|(&(_, s2), &mu)| (s2 / m as f64 - mu * mu).max(0.0))
        .collect();
    let y = affine_planes(x, residual, hw, relu, |plane| {
        let ch = plane % c;
        let a = gamma[ch].to_f64() / (var[ch] + eps).sqrt();
        let b = beta[ch].to_f64() - mean[ch] * a;
        (T::from_f64(a), T::from_f64(b))
    });
    Ok((
        y,
        Stats {
            mean,
            var,
            count: m,
        },
    ))
}

/// `v · a + b (+ r)`, rectified when `relu`, in the input's precision.
#[inline(always)]
fn affine<T: Float>(v: T, a: T, b: T, r: f64, relu: bool) -> T {
    let z = v.to_f64() * a.to_f64() + b.to_f64() + r;
    T::from_f64(if relu { z.max(0.0) } else { z })
}

/// [`affine`] over one `[h·w]` plane (number `plane` of the batch), adding that plane of `residual`.
#[inline(always)]
fn affine_plane<T: Float>(
    out: &mut [T],
    x: &[T],
    residual: Option<&[T]>,
    plane: usize,
    a: T,
    b: T,
    relu: bool,
) {
    match residual {
        None => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = affine(v, a, b, 0.0, relu);
            }
        }
        Some(r) => {
            let hw = x.len();
            for ((o, &v), &r) in out.iter_mut().zip(x).zip(&r[plane * hw..(plane + 1) * hw]) {
                *o = affine(v, a, b, r.to_f64(), relu);
            }
        }
    }
}

impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        "sacro-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1)?;
        if l2.shape().elem_count() != d.1 || l3.shape().elem_count() != d.1 {
            candle_core::bail!("batch norm: scale or shift does not have {} channels", d.1);
        }
        let (out, stats) = by_float!(s1.dtype(), "batch norm", T => {
            let (y, st) = train_fwd::<T>(
                contiguous(s1, l1, "batch norm: input")?,
                contiguous(s2, l2, "batch norm: scale")?,
                contiguous(s3, l3, "batch norm: shift")?,
                None,
                d,
                self.eps,
                self.relu,
            )?;
            (T::wrap(y), st)
        });
        self.stats.set(stats);
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self.stats.get()?;
        let gamma_beta = Tensor::stack(&[gamma, beta], 0)?;
        let (dx, dgamma, dbeta) = norm_bwd(x, grad, &gamma_beta, &stats, self.eps, self.relu)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// The training-mode backward pass from the output gradient `dy` (above the ReLU when `relu`):
/// `(dx, dgamma, dbeta)`.
fn norm_bwd(
    x: &Tensor,
    dy: &Tensor,
    gamma_beta: &Tensor,
    stats: &Stats,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let invstd: Vec<f64> = stats.var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let c = invstd.len();
    let device = x.device();
    let mean = Tensor::from_slice(&stats.mean, c, device)?.to_dtype(x.dtype())?;
    let invstd = Tensor::from_vec(invstd, c, device)?.to_dtype(x.dtype())?;
    let params = Tensor::cat(&[&gamma_beta.flatten_all()?, &mean, &invstd], 0)?;
    let packed = x.apply_op3_no_bwd(&dy.contiguous()?, &params, &BnBackward { relu })?;
    let total = x.elem_count();
    let dx = packed.narrow(0, 0, total)?.reshape(x.shape())?;
    let dgamma = packed.narrow(0, total, c)?;
    let dbeta = packed.narrow(0, total + c, c)?;
    Ok((dx, dgamma, dbeta))
}

fn train_bwd<T: Float>(
    x: &[T],
    dy: &[T],
    params: &[T],
    (n, c, hw): (usize, usize, usize),
    relu: bool,
) -> Vec<T> {
    let p = |row: usize, ch: usize| params[row * c + ch].to_f64();
    let m = (n * hw) as f64;
    // Per channel: Σ dz and Σ dz·x̂, where dz is the gradient below the ReLU.
    let sums = per_channel(c, |ch| {
        let q = (p(0, ch), p(1, ch), p(2, ch), p(3, ch));
        simd(
            #[inline(always)]
            || {
                let mut acc = (0.0, 0.0);
                for img in 0..n {
                    let range = (img * c + ch) * hw..(img * c + ch + 1) * hw;
                    let (x, dy) = (&x[range.clone()], &dy[range]);
                    let (s, sx) = if relu {
                        bwd_sums::<T, true>(x, dy, q)
                    } else {
                        bwd_sums::<T, false>(x, dy, q)
                    };
                    acc = (acc.0 + s, acc.1 + sx);
                }
                acc
            },
        )
    });
    let total = x.len();
    let mut out = zeros::<T>(total + 2 * c);
    let (dx, dparams) = out.split_at_mut(total);
    dx.par_chunks_mut(hw).enumerate().for_each(|(plane, o)| {
        let ch = plane % c;
        let q = (p(0, ch), p(1, ch), p(2, ch), p(3, ch));
        let (s, sx) = sums[ch];
        let means = (s / m, sx / m);
        let range = plane * hw..(plane + 1) * hw;
        let (x, dy) = (&x[range.clone()], &dy[range]);
        simd(
            #[inline(always)]
            || {
                if relu {
                    bwd_dx::<T, true>(o, x, dy, q, means);
                } else {
                    bwd_dx::<T, false>(o, x, dy, q, means);
                }
            },
        );
    });
    for (ch, &(s, sx)) in sums.iter().enumerate() {
        dparams[ch] = T::from_f64(sx);
        dparams[c + ch] = T::from_f64(s);
    }
    out
}

/// The gradient below the ReLU (when `RELU`) from the gradient `d` above it, at the input value whose
/// normalised value is `xh`, for scale `g` and shift `b`: zero where the ReLU cut, as a select, not a branch.
#[inline(always)]
fn below_relu<const RELU: bool>(d: f64, xh: f64, g: f64, b: f64) -> f64 {
    if RELU && xh * g + b <= 0.0 { 0.0 } else { d }
}

/// One plane's `(Σ dz, Σ dz·x̂)` for `(scale, shift, mean, 1/std)` = `q`.
#[inline(always)]
fn bwd_sums<T: Float, const RELU: bool>(x: &[T], dy: &[T], q: (f64, f64, f64, f64)) -> (f64, f64) {
    let (g, b, mu, is) = q;
    lane_sums(x, dy, |v, d| {
        let xh = (v.to_f64() - mu) * is;
        let dz = below_relu::<RELU>(d.to_f64(), xh, g, b);
        (dz, dz * xh)
    })
}

/// One plane's input gradient, given the channel's `(mean dz, mean dz·x̂)` = `means`.
#[inline(always)]
fn bwd_dx<T: Float, const RELU: bool>(
    out: &mut [T],
    x: &[T],
    dy: &[T],
    q: (f64, f64, f64, f64),
    means: (f64, f64),
) {
    let (g, b, mu, is) = q;
    let (mean_dz, mean_dz_xh) = means;
    let k = g * is;
    for ((o, &v), &d) in out.iter_mut().zip(x).zip(dy) {
        let xh = (v.to_f64() - mu) * is;
        let dz = below_relu::<RELU>(d.to_f64(), xh, g, b);
        *o = T::from_f64(k * (dz - mean_dz - xh * mean_dz_xh));
    }
}

impl CustomOp3 for BnBackward {
    fn name(&self) -> &'static str {
        "sacro-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1)?;
        if l2.dims() != l1.dims() || l3.shape().elem_count() != 4 * d.1 {
            candle_core::bail!("batch norm backward: shapes {:?} {:?} {:?}", l1, l2, l3);
        }
        let out = by_float!(s1.dtype(), "batch norm", T => T::wrap(train_bwd::<T>(
            contiguous(s1, l1, "batch norm: input")?,
            contiguous(s2, l2, "batch norm: gradient")?,
            contiguous(s3, l3, "batch norm: parameters")?,
            d,
            self.relu,
        )));
        let len = l1.shape().elem_count() + 2 * d.1;
        Ok((out, Shape::from(len)))
    }
}

/// Evaluation-mode batch norm (+ ReLU) in place on `y` (`[n, c, hw]`), `params = [scale; shift]`: the
/// same arithmetic as [`eval_fwd`], to the bit.
pub(crate) fn eval_in_place<T: Float>(y: &mut [T], params: &[T], c: usize, hw: usize, relu: bool) {
    y.par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(plane, v)| {
            let ch = plane % c;
            let (a, b) = (params[ch], params[c + ch]);
            simd(
                #[inline(always)]
                || {
                    for v in v.iter_mut() {
                        *v = affine(*v, a, b, 0.0, relu);
                    }
                },
            );
        });
}

fn eval_fwd<T: Float>(
    x: &[T],
    params: &[T],
    residual: Option<&[T]>,
    (_, c, hw): (usize, usize, usize),
    relu: bool,
) -> Vec<T> {
    affine_planes(x, residual, hw, relu, |plane| {
        (params[plane % c], params[c + plane % c])
    })
}

/// [`affine_plane`] over every `hw`-sized plane of `x` in parallel, with plane `p`'s scale and shift
/// `coefficients(p)`: the output pass of batch norm in training (batch statistics) and evaluation.
fn affine_planes<T: Float>(
    x: &[T],
    residual: Option<&[T]>,
    hw: usize,
    relu: bool,
    coefficients: impl Fn(usize) -> (T, T) + Sync,
) -> Vec<T> {
    let mut y = zeros::<T>(x.len());
    y.par_chunks_mut(hw).enumerate().for_each(|(plane, out)| {
        let (a, b) = coefficients(plane);
        let x = &x[plane * hw..(plane + 1) * hw];
        simd(
            #[inline(always)]
            || affine_plane(out, x, residual, plane, a, b, relu),
        );
    });
    y
}

impl CustomOp2 for BnEval {
    fn name(&self) -> &'static str {
        "sacro-batch-norm-eval"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = dims(l1)?;
        if l2.shape().elem_count() != 2 * d.1 {
            candle_core::bail!("batch norm: parameters do not have {} channels", d.1);
        }
        let out = by_float!(s1.dtype(), "batch norm", T => T::wrap(eval_fwd::<T>(
            contiguous(s1, l1, "batch norm: input")?,
            contiguous(s2, l2, "batch norm: parameters")?,
            None,
            d,
            self.relu,
        )));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dparams, _) = eval_bwd(x, params, res, grad, self.relu)?;
        Ok((Some(dx), Some(dparams)))
    }
}

/// The backward pass of evaluation-mode batch norm (+ ReLU, + residual), rarely needed (Grad-CAM's
/// backward stops above the body), in plain tensor operations: `(dx, [dscale; dshift], dz)` where `dz` is
/// the gradient below the ReLU (the residual's).
fn eval_bwd(
    x: &Tensor,
    params: &Tensor,
    res: &Tensor,
    grad: &Tensor,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let dz = if relu {
        grad.apply_op2_no_bwd(res, &ReluGrad)?
    } else {
        grad.clone()
    };
    let (x, params) = (x.detach(), params.detach());
    let c = x.dim(1)?;
    let mut shape = vec![1usize; x.rank()];
    shape[1] = c;
    let scale = params.get(0)?.reshape(shape.as_slice())?;
    let dx = dz.broadcast_mul(&scale)?;
    let per_channel =
        |t: &Tensor| -> Result<Tensor> { t.transpose(0, 1)?.contiguous()?.flatten_from(1)?.sum(1) };
    let dscale = per_channel(&(&dz * &x)?)?;
    let dshift = per_channel(&dz)?;
    Ok((dx, Tensor::stack(&[dscale, dshift], 0)?, dz))
}

/// `(n, c, spatial size)` of `x` and its residual, checked to have the same shape, and `params` `2·c`
/// values.
fn residual_dims(l1: &Layout, l2: &Layout, l3: &Layout) -> Result<(usize, usize, usize)> {
    let d = dims(l1)?;
    if l2.shape().elem_count() != 2 * d.1 || l3.dims() != l1.dims() {
        candle_core::bail!(
            "batch norm + residual: input {:?}, parameters {:?}, residual {:?} do not fit",
            l1.dims(),
            l2.dims(),
            l3.dims()
        );
    }
    Ok(d)
}

impl CustomOp3 for BnAddTrain {
    fn name(&self) -> &'static str {
        "sacro-batch-norm-add-relu-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = residual_dims(l1, l2, l3)?;
        let (out, stats) = by_float!(s1.dtype(), "batch norm", T => {
            let params = contiguous::<T>(s2, l2, "batch norm: parameters")?;
            let (y, st) = train_fwd::<T>(
                contiguous(s1, l1, "batch norm: input")?,
                &params[..d.1],
                &params[d.1..],
                Some(contiguous(s3, l3, "batch norm: residual")?),
                d,
                self.eps,
                true,
            )?;
            (T::wrap(y), st)
        });
        self.stats.set(stats);
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _residual: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self.stats.get()?;
        // Below the ReLU: the residual's gradient, and the normalisation's output gradient.
        let dz = grad.contiguous()?.apply_op2_no_bwd(res, &ReluGrad)?;
        let (dx, dgamma, dbeta) = norm_bwd(x, &dz, params, &stats, self.eps, false)?;
        Ok((
            Some(dx),
            Some(Tensor::stack(&[dgamma, dbeta], 0)?),
            Some(dz),
        ))
    }
}

impl CustomOp3 for BnAddEval {
    fn name(&self) -> &'static str {
        "sacro-batch-norm-add-relu-eval"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = residual_dims(l1, l2, l3)?;
        let out = by_float!(s1.dtype(), "batch norm", T => T::wrap(eval_fwd::<T>(
            contiguous(s1, l1, "batch norm: input")?,
            contiguous(s2, l2, "batch norm: parameters")?,
            Some(contiguous(s3, l3, "batch norm: residual")?),
            d,
            true,
        )));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _residual: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dparams, dz) = eval_bwd(x, params, res, grad, true)?;
        Ok((Some(dx), Some(dparams), Some(dz)))
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "sacro-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            candle_core::bail!("relu gradient: {:?} and {:?} differ", l1.dims(), l2.dims());
        }
        let out = by_float!(s1.dtype(), "relu gradient", T => {
            let dy = contiguous::<T>(s1, l1, "relu gradient: gradient")?;
            let y = contiguous::<T>(s2, l2, "relu gradient: output")?;
            let mut dz = zeros::<T>(dy.len());
            dz.par_chunks_mut(1 << 14)
                .zip(dy.par_chunks(1 << 14).zip(y.par_chunks(1 << 14)))
                .for_each(|(o, (dy, y))| {
                    for ((o, &d), &v) in o.iter_mut().zip(dy).zip(y) {
                        *o = if v > T::default() { d } else { T::default() };
                    }
                });
            T::wrap(dz)
        });
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu::tests::on_both_paths;

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
