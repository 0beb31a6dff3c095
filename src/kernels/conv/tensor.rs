//! Convolution as candle tensor operations, for training on GPUs.
//!
//! candle's own `conv2d` is fast forward on CUDA (im2col + cuBLAS), but its backward pass computes the
//! input gradient with a direct `conv_transpose2d` kernel that loops over every output channel and tap
//! per input element. Written here as operations candle already differentiates — zero padding, strided
//! views, one concatenation into a column matrix, one matrix multiply — the backward pass is two more
//! matrix multiplies (cuBLAS on a GPU) and memory-bound copies. Nothing here is device-specific: the CPU
//! tests check its output against candle's `conv2d` and its gradients against Sacro's CPU convolution op,
//! and on a GPU it runs on candle's kernels.
//!
//! Layout: the input as `[c, n, h', w']` (channels first, so the column matrix `[k²·c, n·ho·wo]` is
//! one concatenation of `k²` strided views with no further copy), the weight reordered to
//! `[co, k·k·c]` to match, the product `[co, n·ho·wo]` transposed back to `[n, co, ho, wo]`. A stride
//! `s` is a reshape of each padded spatial axis into `(len/s, s)`, so a tap `(ky, kx)` is a plain view
//! (rows `ky/s ..` of phase `ky % s`), for any stride. The column matrix costs `k²` times the input for
//! as long as the graph lives: the price of the fast backward pass (GPU memory is what it spends).

use candle_core::{Result, Tensor};

/// `x` `[n, c, h, w]` convolved with `weight` `[co, c, k, k]` (no bias, square kernel, zero padding on
/// each side), as tensor operations whose gradients candle computes with matrix multiplies.
pub fn conv2d_gemm(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (co, ci, k, k2) = weight.dims4()?;
    if ci != c || k != k2 || k == 0 || stride == 0 {
        candle_core::bail!(
            "conv2d_gemm: weight {:?} does not fit input {:?} (stride {stride})",
            weight.shape(),
            x.shape()
        );
    }
    if h + 2 * padding < k || w + 2 * padding < k {
        candle_core::bail!(
            "conv2d_gemm: kernel {k} larger than the padded input {h}×{w} + {padding}"
        );
    }
    let ho = (h + 2 * padding - k) / stride + 1;
    let wo = (w + 2 * padding - k) / stride + 1;
    // Rows the taps reach, rounded to whole stride groups: (ho + (k−1)/s)·s. Pad the far side up to it
    // or crop it to it (rows past the last tap's reach are never read).
    let rows = stride * (ho + (k - 1) / stride);
    let cols = stride * (wo + (k - 1) / stride);
    let xt = x.transpose(0, 1)?.contiguous()?;
    let xt = pad_or_crop(&xt, 2, padding, rows)?;
    let xt = pad_or_crop(&xt, 3, padding, cols)?;
    // [c, n, rows/s, s, cols/s, s]: a tap is a view.
    let grouped = xt.reshape((c, n, rows / stride, stride, cols / stride, stride))?;
    let mut taps = Vec::with_capacity(k * k);
    for ky in 0..k {
        let rows_of_tap = grouped
            .narrow(2, ky / stride, ho)?
            .narrow(3, ky % stride, 1)?;
        for kx in 0..k {
            taps.push(
                rows_of_tap
                    .narrow(4, kx / stride, wo)?
                    .narrow(5, kx % stride, 1)?,
            );
        }
    }
    // [k²·c, n, ho, 1, wo, 1] in one copy (concatenation along the first axis), then a free reshape.
    let columns = Tensor::cat(&taps, 0)?
        .contiguous()?
        .reshape((k * k * c, n * ho * wo))?;
    let weight = weight.permute((0, 2, 3, 1))?.reshape((co, k * k * c))?;
    weight
        .matmul(&columns)?
        .reshape((co, n, ho, wo))?
        .transpose(0, 1)?
        .contiguous()
}

/// Zero padding `before` on axis `dim`, then padding or cropping the far end to `len` in all.
fn pad_or_crop(t: &Tensor, dim: usize, before: usize, len: usize) -> Result<Tensor> {
    let size = t.dim(dim)? + before;
    let t = if size < len {
        t.pad_with_zeros(dim, before, len - size)?
    } else {
        t.pad_with_zeros(dim, before, 0)?.narrow(dim, 0, len)?
    };
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::cpu::tests::max_abs_diff;
    use candle_core::{DType, Device, Var};
    use rand::{Rng, SeedableRng};

    fn random(shape: &[usize], rng: &mut rand::rngs::StdRng) -> Var {
        let v: Vec<f64> = (0..shape.iter().product())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")).expect("var")
    }

    /// The output equals candle's `conv2d`, the input and weight gradients those of Sacro's CPU
    /// convolution op (checked against finite differences in `conv.rs`), f64 within 1e-10, over kernels
    /// 1/3/7, strides 1/2/3, paddings 0/1/3, odd and non-square sizes, batch 1 to 3, channel counts not
    /// multiples of 16. (candle's own `conv2d` backward cannot be the reference for all of them: it
    /// derives the output padding from the height alone and fails when width and height need different
    /// ones, as with 10×9 at stride 2.)
    #[test]
    fn equals_candles_convolution_and_its_gradients() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        // (n, c, co, h, w, k, stride, padding)
        let cases = [
            (1, 3, 5, 9, 7, 1, 1, 0),
            (3, 5, 4, 8, 8, 1, 2, 0),
            (2, 4, 6, 9, 11, 3, 1, 1),
            (3, 7, 3, 10, 9, 3, 2, 1),
            (1, 3, 8, 17, 15, 7, 2, 3),
            (2, 2, 3, 8, 7, 3, 3, 0),
            (1, 6, 2, 5, 5, 3, 1, 0),
            (2, 3, 2, 4, 6, 3, 2, 3),
        ];
        for (n, c, co, h, w, k, stride, padding) in cases {
            let x = random(&[n, c, h, w], &mut rng);
            let weight = random(&[co, c, k, k], &mut rng);
            let y = conv2d_gemm(x.as_tensor(), weight.as_tensor(), stride, padding).expect("gemm");
            let reference = x
                .as_tensor()
                .conv2d(weight.as_tensor(), padding, stride, 1, 1)
                .expect("conv2d");
            let case = format!("{:?}", (n, c, co, h, w, k, stride, padding));
            assert_eq!(y.dims(), reference.dims(), "{case}");
            assert!(max_abs_diff(&y, &reference) < 1e-10, "output {case}");
            // A loss that weighs every output differently, so that a misplaced gradient shows.
            let g = random(y.dims(), &mut rng);
            let loss = |t: &Tensor| (t * g.as_tensor()).expect("mul").sum_all().expect("sum");
            let mine = loss(&y).backward().expect("backward");
            let theirs = loss(
                &crate::kernels::conv::conv2d_im2col(
                    x.as_tensor(),
                    weight.as_tensor(),
                    stride,
                    padding,
                )
                .expect("im2col"),
            )
            .backward()
            .expect("backward");
            for (var, what) in [(&x, "input"), (&weight, "weight")] {
                let (a, b) = (
                    mine.get(var.as_tensor()).expect("gradient"),
                    theirs.get(var.as_tensor()).expect("gradient"),
                );
                assert!(max_abs_diff(a, b) < 1e-10, "{what} gradient {case}");
            }
        }
    }

    /// Works in f32 too (the training dtype) and names a weight that does not fit.
    #[test]
    fn f32_and_a_mismatched_weight() {
        let x = Tensor::ones((1, 3, 8, 8), DType::F32, &Device::Cpu).expect("x");
        let weight = Tensor::ones((4, 3, 3, 3), DType::F32, &Device::Cpu).expect("w");
        let y = conv2d_gemm(&x, &weight, 1, 1).expect("gemm");
        let reference = x.conv2d(&weight, 1, 1, 1, 1).expect("conv2d");
        assert!(max_abs_diff(&y, &reference) < 1e-5);
        let wrong = Tensor::ones((4, 2, 3, 3), DType::F32, &Device::Cpu).expect("w");
        let err = conv2d_gemm(&x, &wrong, 1, 1).expect_err("mismatch");
        assert!(err.to_string().contains("does not fit"), "{err}");
    }
}
