//! The network's convolutions as CPU kernels, and the one place that picks the kernel for a shape.
//!
//! Three paths, chosen once per process (`SACRO_CONV=stock` selects candle's own, and candle's batch norm in
//! `norm.rs`):
//! - **im2col** (default, CPU): one custom op per convolution: `im2col` (multithreaded over channels),
//!   matrix multiplies by the `gemm` crate (candle's CPU GEMM) written straight into their destination
//!   (`crate::kernels::gemm`: no zeroed output, no copy), per image or for the whole batch. Its backward rebuilds
//!   the column matrix for the weight gradient (`G·colsᵀ`) rather than have the graph keep it (nine times
//!   the input of a 3×3 convolution), and computes the input gradient as `Wᵀ·G` scattered back by
//!   `col2im` (the adjoint of `im2col`), a GEMM and a memory-bound pass, both column matrices in one
//!   reused buffer, where candle's stock backward runs a direct `conv_transpose2d` loop. 1×1 stride-1 convolutions
//!   are one op too: a batched matrix multiply on the input as it lies (`Conv1x1`), and 3×3 stride-1
//!   padding-1 ones (thirteen of the sixteen 3×3 convolutions) take Winograd's F(2×2, 3×3)
//!   ([`winograd`]; `SACRO_WINOGRAD=off`: im2col). The backward passes skip the input gradient
//!   where nothing needs it (the stem's input) and return gradients without a graph of their own.
//! - **stock**: candle's `conv2d` forward and backward, kept to test equivalence and measure regressions.
//! - **tensor** (`SACRO_CONV=tensor`, any device): training through [`tensor::conv2d_gemm`],
//!   tensor operations whose backward pass is matrix multiplies (cuBLAS on a GPU) where candle's runs a
//!   direct `conv_transpose2d` kernel; inference, batch norm and max pool as candle's. Written for GPUs;
//!   on the CPU it is what the tests check the GPU's training path with.
//!
//! Devices other than the CPU take candle's operations on the default path: the tensor path's speed on
//! a GPU is measured by `benches/gpu.sh` before it becomes their default.

mod geometry;
mod im2col;
#[cfg(test)]
mod layers;
mod one_by_one;
pub mod tensor;
pub(crate) mod winograd;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

pub use geometry::Geometry;
pub use im2col::{Col2Im, Im2Col};

use crate::kernels::cpu::{Float, by_float, contiguous};
use crate::kernels::path::winograd_enabled;
use im2col::ConvIm2Col;
use one_by_one::{Conv1x1, conv1x1_backward};
use winograd::Winograd;

/// `x` `[n, c, h, w]` convolved with `weight` `[co, c, k, k]` (no bias) through im2col and a matrix
/// multiply (1×1 stride-1: a batched matrix multiply). Differentiable in both arguments; the input's
/// gradient is computed only when something needs it ([`Tensor::track_op`]).
pub fn conv2d_im2col(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    conv2d_with(x, weight, (stride, padding), winograd_enabled())
}

/// [`conv2d_im2col`] with F(2×2, 3×3) for the convolutions it fits only when `winograd` (tests and
/// benchmarks compare the two in one process).
pub(crate) fn conv2d_with(
    x: &Tensor,
    weight: &Tensor,
    (stride, padding): (usize, usize),
    winograd: bool,
) -> Result<Tensor> {
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match conv_op(&x, &weight, stride, padding, winograd)? {
        ConvOp::OneByOne => x.apply_op2(&weight, Conv1x1),
        ConvOp::Im2Col(op) => x.apply_op2(&weight, op),
        ConvOp::Winograd(op) => x.apply_op2(&weight, op),
    }
}

/// The backward pass of [`conv2d_im2col`] of `x` with `weight`, from the output gradient `grad`:
/// `(dx, dw)`, each only when needed. For callers that run a block's backward pass themselves
/// ([`super::block`]); the gradients carry no graph.
pub(crate) fn conv2d_im2col_backward(
    x: &Tensor,
    weight: &Tensor,
    (stride, padding): (usize, usize),
    grad: &Tensor,
    needs_dx: bool,
    needs_dw: bool,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let (x, weight, grad) = (x.contiguous()?, weight.contiguous()?, grad.contiguous()?);
    match conv_op(&x, &weight, stride, padding, winograd_enabled())? {
        ConvOp::OneByOne => conv1x1_backward(&x, &weight, &grad, needs_dx, needs_dw),
        ConvOp::Im2Col(op) => op.backward(&x, &weight, &grad, needs_dx, needs_dw),
        ConvOp::Winograd(op) => op.backward(&x, &weight, &grad, needs_dx, needs_dw),
    }
}

/// [`conv2d_im2col`] followed by evaluation-mode batch norm, `y·scale + shift` per channel with
/// `params = [scale; shift]` (`[2, cout]`), then the ReLU when `relu`, applied in the buffer the product
/// was written into: no second buffer and no pass that reads the product back from memory. Inference
/// only: it has no backward pass, so it is for inputs, weights and parameters that carry no graph.
pub fn conv2d_im2col_bn_eval(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
    params: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    let (x, weight, params) = (x.contiguous()?, weight.contiguous()?, params.contiguous()?);
    match conv_op(&x, &weight, stride, padding, winograd_enabled())? {
        ConvOp::OneByOne => x.apply_op3_no_bwd(
            &weight,
            &params,
            &WithAffine {
                conv: Conv1x1,
                relu,
            },
        ),
        ConvOp::Im2Col(conv) => x.apply_op3_no_bwd(&weight, &params, &WithAffine { conv, relu }),
        ConvOp::Winograd(conv) => x.apply_op3_no_bwd(&weight, &params, &WithAffine { conv, relu }),
    }
}

/// Which op computes a convolution.
enum ConvOp {
    OneByOne,
    Im2Col(ConvIm2Col),
    Winograd(Winograd),
}

/// The op for `weight` over `x` (shapes checked); F(2×2, 3×3) where it fits and `winograd`.
fn conv_op(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
    winograd: bool,
) -> Result<ConvOp> {
    let (_, c, h, w) = x.dims4()?;
    let (co, ci, k, k2) = weight.dims4()?;
    if ci != c || k != k2 {
        candle_core::bail!(
            "conv2d: weight {:?} does not fit input {:?}",
            weight.shape(),
            x.shape()
        );
    }
    let g = Geometry {
        channels: c,
        height: h,
        width: w,
        k,
        stride,
        padding,
    };
    g.check("conv2d")?;
    Ok(if k == 1 && stride == 1 && padding == 0 {
        ConvOp::OneByOne
    } else if winograd && winograd::fits(&g) {
        ConvOp::Winograd(Winograd::new(g, co))
    } else {
        ConvOp::Im2Col(ConvIm2Col {
            geometry: g,
            out_channels: co,
        })
    })
}

/// A convolution op with evaluation-mode batch norm (+ ReLU) applied to its product in place
/// ([`conv2d_im2col_bn_eval`]).
#[derive(Debug, Clone)]
struct WithAffine<C> {
    conv: C,
    relu: bool,
}

impl<C: CustomOp2> CustomOp3 for WithAffine<C> {
    fn name(&self) -> &'static str {
        "sacro-conv2d-bn-eval"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, shape) = self.conv.cpu_fwd(xs, xl, ws, wl)?;
        let (_, co, ho, wo) = shape.dims4()?;
        if pl.shape().elem_count() != 2 * co {
            candle_core::bail!("conv2d + batch norm: parameters {pl:?} for {co} channels");
        }
        let y = by_float!(y.dtype(), "conv2d + batch norm", T => {
            let params = contiguous::<T>(ps, pl, "conv2d + batch norm: parameters")?;
            let Some(mut v) = T::into_vec(y) else {
                candle_core::bail!("conv2d + batch norm: the product's type differs from the input's");
            };
            crate::kernels::norm::eval_in_place(&mut v, params, co, ho * wo, self.relu);
            T::wrap(v)
        });
        Ok((y, shape))
    }
}
