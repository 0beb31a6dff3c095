//! Training-mode batch norm: the forward pass (batch statistics, then the normalised output, with the
//! residual and the ReLU where asked) and its backward pass (per-channel sums, then the input gradient).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::affine::{affine_planes, residual_dims};
use super::*;
use crate::kernels::cpu::{Float, by_float, contiguous, simd, zeros};

pub(super) fn train_fwd<T: Float>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    residual: Option<&[T]>,
    (n, c, hw): (usize, usize, usize),
    eps: f64,
    relu: bool,
) -> Result<(Vec<T>, BatchStats)> {
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
        BatchStats {
            mean,
            var,
            count: m,
        },
    ))
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
pub(super) fn norm_bwd(
    x: &Tensor,
    dy: &Tensor,
    gamma_beta: &Tensor,
    stats: &BatchStats,
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

pub(super) fn train_bwd<T: Float>(
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
pub(super) fn below_relu<const RELU: bool>(d: f64, xh: f64, g: f64, b: f64) -> f64 {
    if RELU && xh * g + b <= 0.0 { 0.0 } else { d }
}

/// One plane's `(Σ dz, Σ dz·x̂)` for `(scale, shift, mean, 1/std)` = `q`.
#[inline(always)]
pub(super) fn bwd_sums<T: Float, const RELU: bool>(
    x: &[T],
    dy: &[T],
    q: (f64, f64, f64, f64),
) -> (f64, f64) {
    let (g, b, mu, is) = q;
    lane_sums(x, dy, |v, d| {
        let xh = (v.to_f64() - mu) * is;
        let dz = below_relu::<RELU>(d.to_f64(), xh, g, b);
        (dz, dz * xh)
    })
}

/// One plane's input gradient, given the channel's `(mean dz, mean dz·x̂)` = `means`.
#[inline(always)]
pub(super) fn bwd_dx<T: Float, const RELU: bool>(
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
