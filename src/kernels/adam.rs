//! Adam's step with decoupled weight decay for one parameter: on the CPU two parallel passes (moments,
//! then weights, both updated in place) instead of candle's fourteen tensor operations, several of them
//! on one thread; elsewhere (GPUs) those tensor operations, which do the same floating-point operations
//! in the same order (the optimiser's tests check that they agree to the bit).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, InplaceOp2, Layout, Result, Shape, Tensor, Var};
use rayon::prelude::*;

use crate::kernels::cpu::{Float, by_float, contiguous, contiguous_mut, simd, zeros};

/// The numbers of one parameter's step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepConstants {
    /// β1 (the momentum).
    pub(crate) beta1: f64,
    /// β2.
    pub(crate) beta2: f64,
    /// 1 / (1 − β1ᵗ).
    pub(crate) scale_m: f64,
    /// 1 / (1 − β2ᵗ).
    pub(crate) scale_v: f64,
    /// ε added to the root of the second moment.
    pub(crate) eps: f64,
    /// Learning rate.
    pub(crate) lr: f64,
    /// Decoupled weight decay.
    pub(crate) weight_decay: f64,
}

/// One parameter's step: the weights of `var` and the moments (`[2, numel]`; none before the first step)
/// updated from the gradient `g`. `fused`: two CPU passes that update the moments and then the weights in
/// place (no new buffers); otherwise candle tensor operations (any device), kept as the reference the
/// passes are tested against.
pub(crate) fn update(
    var: &Var,
    g: &Tensor,
    moments: &mut Option<Tensor>,
    c: &StepConstants,
    fused: bool,
) -> Result<()> {
    let theta = var.as_tensor();
    if fused {
        let g = g.contiguous()?;
        let state = match moments.take() {
            Some(state) => {
                state.inplace_op2(&g, &Moments { c: *c })?;
                state
            }
            None => g.apply_op1_no_bwd(&FirstMoments { c: *c })?,
        };
        theta.inplace_op2(&state, &Weights { c: *c })?;
        *moments = Some(state);
        return Ok(());
    }
    let (b1, b2) = (c.beta1, c.beta2);
    let shape = theta.shape();
    let (m, v) = match moments.as_ref() {
        Some(state) => (
            ((state.get(0)?.reshape(shape)? * b1)? + (g * (1.0 - b1))?)?,
            ((state.get(1)?.reshape(shape)? * b2)? + (g.sqr()? * (1.0 - b2))?)?,
        ),
        None => ((g * (1.0 - b1))?, (g.sqr()? * (1.0 - b2))?),
    };
    let decayed = (theta * (1.0 - c.lr * c.weight_decay))?;
    let step = ((&m * c.scale_m)? / ((&v * c.scale_v)?.sqrt()? + c.eps)?)?;
    var.set(&(decayed - (step * c.lr)?)?)?;
    *moments = Some(Tensor::stack(&[m.flatten_all()?, v.flatten_all()?], 0)?);
    Ok(())
}

/// Elements per parallel task of the two passes.
pub(crate) const CHUNK: usize = 1 << 14;

/// One parallel pass over the moments `m`, `v` and the gradient `g`: `(m, v) ← f(m, v, g)` per element.
fn moments_pass<T: Float>(m: &mut [T], v: &mut [T], g: &[T], f: impl Fn(T, T, T) -> (T, T) + Sync) {
    m.par_chunks_mut(CHUNK)
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|((m, v), g)| {
            simd(
                #[inline(always)]
                || {
                    for ((m, v), &g) in m.iter_mut().zip(v.iter_mut()).zip(g) {
                        (*m, *v) = f(*m, *v, g);
                    }
                },
            );
        });
}

/// The gradient `g` → the first moments `[2, numel]`: `g·(1 − β1)`, `g²·(1 − β2)` (the moments before the
/// first step are zero).
#[derive(Debug, Clone, Copy)]
struct FirstMoments {
    c: StepConstants,
}

impl CustomOp1 for FirstMoments {
    fn name(&self) -> &'static str {
        "sacro-adam-first-moments"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Float>(g: &[T], c: &StepConstants) -> Vec<T> {
            let n = g.len();
            let (a1, a2) = (T::from_f64(1.0 - c.beta1), T::from_f64(1.0 - c.beta2));
            let mut out = zeros::<T>(2 * n);
            let (m, v) = out.split_at_mut(n);
            moments_pass(m, v, g, |_, _, g| (g * a1, g * g * a2));
            out
        }
        let n = gl.shape().elem_count();
        let out = by_float!(gs.dtype(), "adam", T => {
            T::wrap(run(contiguous::<T>(gs, gl, "adam: gradient")?, &self.c))
        });
        Ok((out, Shape::from((2, n))))
    }
}

/// In place on the moments `[2, numel]`, with the gradient: `m ← m·β1 + g·(1 − β1)`,
/// `v ← v·β2 + g²·(1 − β2)`.
#[derive(Debug, Clone, Copy)]
struct Moments {
    c: StepConstants,
}

impl InplaceOp2 for Moments {
    fn name(&self) -> &'static str {
        "sacro-adam-moments"
    }

    fn cpu_fwd(
        &self,
        ss: &mut CpuStorage,
        sl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        fn run<T: Float>(mv: &mut [T], g: &[T], c: &StepConstants) {
            let (b1, b2) = (T::from_f64(c.beta1), T::from_f64(c.beta2));
            let (a1, a2) = (T::from_f64(1.0 - c.beta1), T::from_f64(1.0 - c.beta2));
            let (m, v) = mv.split_at_mut(g.len());
            moments_pass(m, v, g, |m, v, g| (m * b1 + g * a1, v * b2 + g * g * a2));
        }
        by_float!(ss.dtype(), "adam", T => {
            let g = contiguous::<T>(gs, gl, "adam: gradient")?;
            let mv = contiguous_mut::<T>(ss, sl, "adam: moments")?;
            if mv.len() != 2 * g.len() {
                candle_core::bail!("adam: moments {:?} for a gradient {:?}", sl.shape(), gl.shape());
            }
            run(mv, g, &self.c);
        });
        Ok(())
    }
}

/// In place on the weights θ, with the new moments: `θ ← θ·(1 − lr·wd) − lr·(m·sₘ) / (√(v·sᵥ) + ε)`.
#[derive(Debug, Clone, Copy)]
struct Weights {
    c: StepConstants,
}

impl InplaceOp2 for Weights {
    fn name(&self) -> &'static str {
        "sacro-adam-weights"
    }

    fn cpu_fwd(
        &self,
        ts: &mut CpuStorage,
        tl: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
    ) -> Result<()> {
        fn run<T: Float>(theta: &mut [T], mv: &[T], c: &StepConstants) {
            let (m, v) = mv.split_at(theta.len());
            let keep = T::from_f64(1.0 - c.lr * c.weight_decay);
            let (sm, sv) = (T::from_f64(c.scale_m), T::from_f64(c.scale_v));
            let (eps, lr) = (T::from_f64(c.eps), T::from_f64(c.lr));
            theta
                .par_chunks_mut(CHUNK)
                .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
                .for_each(|(theta, (m, v))| {
                    simd(
                        #[inline(always)]
                        || {
                            for ((t, &m), &v) in theta.iter_mut().zip(m).zip(v) {
                                *t = *t * keep - (m * sm) / ((v * sv).sqrt() + eps) * lr;
                            }
                        },
                    );
                });
        }
        by_float!(ts.dtype(), "adam", T => {
            let mv = contiguous::<T>(ms, ml, "adam: moments")?;
            let theta = contiguous_mut::<T>(ts, tl, "adam: weights")?;
            if mv.len() != 2 * theta.len() {
                candle_core::bail!("adam: moments {:?} for weights {:?}", ml.shape(), tl.shape());
            }
            run(theta, mv, &self.c);
        });
        Ok(())
    }
}
