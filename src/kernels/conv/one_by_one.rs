//! 1×1 stride-1 convolutions as batched matrix products on the input as it lies, forward and both
//! gradients (the weight gradient accumulated image after image in its own buffer).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::im2col::{Orientation, append_product_split_k};
use crate::kernels::cpu::{Float, by_float, contiguous};
use crate::kernels::gemm::{self, MatRef};

/// A 1×1 stride-1 convolution as one op, `(x, weight)` → `[n, co, h, w]`: one batched matrix multiply
/// on the input as it lies, the weight broadcast over the batch (a zero batch stride; split along k where
/// that is long, [`append_product_split_k`]), so nothing is copied in or out. As one node it also spares the backward pass the
/// zeroed gradient buffer and sum candle's autograd spends on every node (here: the reshapes around a
/// matmul); indexing the images one by one would cost far more, a zero-padded full-batch copy of each
/// image's gradient.
#[derive(Debug, Clone, Copy)]
pub(super) struct Conv1x1;

impl CustomOp2 for Conv1x1 {
    fn name(&self) -> &'static str {
        "sacro-conv1x1"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = xl.shape().dims4()?;
        let (co, wc, kh, kw) = wl.shape().dims4()?;
        if (wc, kh, kw) != (c, 1, 1) {
            candle_core::bail!("conv1x1: weight {:?} does not fit input {:?}", wl, xl);
        }
        let y = by_float!(xs.dtype(), "conv1x1", T => {
            let x = contiguous::<T>(xs, xl, "conv1x1: input")?;
            let weight = contiguous::<T>(ws, wl, "conv1x1: weight")?;
            let mut y = Vec::with_capacity(n * co * h * w);
            append_product_split_k(
                &mut y,
                (weight, Orientation::AsStored),
                (x, 0),
                (n, co, h * w, c),
            )?;
            T::wrap(y)
        });
        Ok((y, Shape::from((n, co, h, w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        conv1x1_backward(x, weight, grad, x.track_op(), true)
    }
}

/// The input gradient of a 1×1 stride-1 convolution, `(weight [co, c, 1, 1], grad [n, co, p])` →
/// `[n, c, p]`: per image `Wᵀ · G`, the weight's transpose read in place, split along k (the output's
/// channels) where that is long ([`append_product_split_k`]: layers 3 and 4's last convolutions, 256 × 196 × 1024
/// and 512 × 49 × 2048 per image at 224²). No backward pass of its own.
#[derive(Debug, Clone, Copy)]
struct Conv1x1InputGrad;

impl CustomOp2 for Conv1x1InputGrad {
    fn name(&self) -> &'static str {
        "sacro-conv1x1-input-grad"
    }

    fn cpu_fwd(
        &self,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, co, p) = gl.shape().dims3()?;
        let (wco, c, kh, kw) = wl.shape().dims4()?;
        if (wco, kh, kw) != (co, 1, 1) {
            candle_core::bail!(
                "conv1x1 input gradient: weight {wl:?} does not fit gradient {gl:?}"
            );
        }
        let dx = by_float!(gs.dtype(), "conv1x1 input gradient", T => {
            let weight = contiguous::<T>(ws, wl, "conv1x1 input gradient: weight")?;
            let grad = contiguous::<T>(gs, gl, "conv1x1 input gradient: gradient")?;
            let mut dx = Vec::with_capacity(n * c * p);
            append_product_split_k(
                &mut dx,
                (weight, Orientation::Transposed),
                (grad, 0),
                (n, c, p, co),
            )?;
            T::wrap(dx)
        });
        Ok((dx, Shape::from((n, c, p))))
    }
}

/// The backward pass of [`Conv1x1`]: `(dx, dw)`, each only when needed.
pub(super) fn conv1x1_backward(
    x: &Tensor,
    weight: &Tensor,
    grad: &Tensor,
    needs_dx: bool,
    needs_dw: bool,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    // Detached: a gradient computed from the graph's own tensors would carry a graph of its own,
    // holding those activations for as long as the gradient lives (measured: +1 GB at 512² batch 2
    // with checkpointing, where parameter gradients wait in a sink until the pass ends).
    let (x, weight) = (x.detach(), weight.detach());
    let (n, c, h, w) = x.dims4()?;
    let co = weight.dim(0)?;
    let gm = grad.contiguous()?.reshape((n, co, h * w))?;
    let dx = if needs_dx {
        Some(
            weight
                .apply_op2_no_bwd(&gm, &Conv1x1InputGrad)?
                .reshape((n, c, h, w))?,
        )
    } else {
        None
    };
    if !needs_dw {
        return Ok((dx, None));
    }
    let dw = x
        .contiguous()?
        .apply_op2_no_bwd(&gm, &Conv1x1WeightGrad)?
        .reshape(weight.shape())?;
    Ok((dx, Some(dw)))
}

/// The weight gradient of a 1×1 stride-1 convolution, `(x [n, c, h, w], grad [n, co, p])` → `[co, c]`:
/// `Σ_i G_i·X_iᵀ` accumulated in the gradient's own buffer, image after image ([`gemm::accumulate_products`];
/// no product per image in memory; a small gradient sums the batch's two halves in parallel and adds
/// them). Where the input has more channels than the output
/// and the images are large, `Σ_i X_i·G_iᵀ` and the sum transposed: the `gemm` crate is faster with the
/// output's contiguous side the shorter one (`benches/gemm`, 224² batch 8: layer1's 256 → 64 1.6 → 0.62
/// ms per image, layer2's 512 → 128 0.60 → 0.41 ms). No backward pass of its own.
#[derive(Debug, Clone, Copy)]
struct Conv1x1WeightGrad;

impl CustomOp2 for Conv1x1WeightGrad {
    fn name(&self) -> &'static str {
        "sacro-conv1x1-weight-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = xl.shape().dims4()?;
        let (gn, co, p) = gl.shape().dims3()?;
        if (gn, p) != (n, h * w) {
            candle_core::bail!(
                "conv1x1 weight gradient: input {xl:?} does not fit gradient {gl:?}"
            );
        }
        let dw = by_float!(xs.dtype(), "conv1x1 weight gradient", T => {
            let x = contiguous::<T>(xs, xl, "conv1x1 weight gradient: input")?;
            let grad = contiguous::<T>(gs, gl, "conv1x1 weight gradient: gradient")?;
            let transposed = c > co && p >= 2 * co;
            // (rows, cols) of the accumulated product and its operands: a `[rows, p]` image times
            // the transpose of a `[cols, p]` one.
            let ((a, rows), (b, cols)) = if transposed { ((x, c), (grad, co)) } else { ((grad, co), (x, c)) };
            // The images from `i0` on, `count` of them, summed into `dst`.
            let images = |dst: &mut [T], i0: usize, count: usize| {
                gemm::accumulate_products(
                    dst,
                    (count, rows, cols, p),
                    MatRef::row_major(a, i0 * rows * p, p).batched(rows * p),
                    MatRef::transposed(b, i0 * cols * p, p).batched(cols * p),
                )
            };
            let mut sum = vec![T::default(); rows * cols];
            // A small gradient (layers 1 and 2: at most 64 Ki values) has few tiles for the threads to
            // share: the batch's two halves are summed in parallel, each into its own buffer, and then
            // added (two halves whatever the thread count, so the same bits on any machine). Training
            // step at 224² batch 8: median 1.609 → 1.557 s, five interleaved rounds, 2026-12-05.
            if n >= 2 && rows * cols <= 1 << 16 {
                let mut upper = vec![T::default(); rows * cols];
                let (lo, hi) = rayon::join(|| images(&mut sum, 0, n / 2), || images(&mut upper, n / 2, n - n / 2));
                lo?;
                hi?;
                sum.iter_mut().zip(&upper).for_each(|(a, &b)| *a += b);
            } else {
                images(&mut sum, 0, n)?;
            }
            if transposed {
                sum = (0..co * c).map(|i| sum[(i % c) * co + i / c]).collect();
            }
            T::wrap(sum)
        });
        Ok((dw, Shape::from((co, c))))
    }
}
