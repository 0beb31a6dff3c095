//! The per-channel affine map `x·a + b` (+ residual, + ReLU) that both modes' forward passes end with,
//! plane by plane, and the residual operand's shape check.

use candle_core::{Layout, Result};
use rayon::prelude::*;

use super::dims;
use crate::kernels::cpu::{Float, simd, zeros};

/// `v · a + b (+ r)`, rectified when `relu`, in the input's precision.
#[inline(always)]
pub(super) fn affine<T: Float>(v: T, a: T, b: T, r: f64, relu: bool) -> T {
    let z = v.to_f64() * a.to_f64() + b.to_f64() + r;
    T::from_f64(if relu { z.max(0.0) } else { z })
}

/// [`affine`] over one `[h·w]` plane (number `plane` of the batch), adding that plane of `residual`.
#[inline(always)]
pub(super) fn affine_plane<T: Float>(
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

/// [`affine_plane`] over every `hw`-sized plane of `x` in parallel, with plane `p`'s scale and shift
/// `coefficients(p)`: the output pass of batch norm in training (batch statistics) and evaluation.
pub(super) fn affine_planes<T: Float>(
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

/// `(n, c, spatial size)` of `x` and its residual, checked to have the same shape, and `params` `2·c`
/// values.
pub(super) fn residual_dims(
    l1: &Layout,
    l2: &Layout,
    l3: &Layout,
) -> Result<(usize, usize, usize)> {
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
