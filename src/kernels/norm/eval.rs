//! Evaluation-mode batch norm (folded scale and shift, in place where it can be), the residual sum at a
//! block's end in both modes, and the ReLU's backward pass.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::affine::{affine, affine_planes, residual_dims};
use super::*;
use crate::kernels::cpu::{Float, by_float, contiguous, simd, zeros};

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

pub(super) fn eval_fwd<T: Float>(
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
pub(super) fn eval_bwd(
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
