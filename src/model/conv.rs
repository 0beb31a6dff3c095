//! The one place where the network's convolutions are made.
//!
//! Three paths, chosen once per process (`SACRO_CONV=stock` selects candle's own, and candle's batch norm in
//! `norm.rs`):
//! - **im2col** (default, CPU): one custom op per convolution: `im2col` (multithreaded over channels),
//!   matrix multiplies by the `gemm` crate (candle's CPU GEMM) written straight into their destination
//!   (`super::gemm`: no zeroed output, no copy), per image or for the whole batch. Its backward rebuilds
//!   the column matrix for the weight gradient (`G·colsᵀ`) rather than have the graph keep it (nine times
//!   the input of a 3×3 convolution), and computes the input gradient as `Wᵀ·G` scattered back by
//!   `col2im` (the adjoint of `im2col`), a GEMM and a memory-bound pass, both column matrices in one
//!   reused buffer, where candle's stock backward runs a direct `conv_transpose2d` loop. 1×1 stride-1 convolutions
//!   are one op too: a batched matrix multiply on the input as it lies (`Conv1x1`), and 3×3 stride-1
//!   padding-1 ones (thirteen of the sixteen 3×3 convolutions) take Winograd's F(2×2, 3×3)
//!   ([`super::winograd`]; `SACRO_WINOGRAD=off`: im2col). The backward passes skip the input gradient
//!   where nothing needs it (the stem's input) and return gradients without a graph of their own.
//! - **stock**: candle's `conv2d` forward and backward, kept to test equivalence and measure regressions.
//! - **tensor** (`SACRO_CONV=tensor`, any device): training through [`super::conv_tensor::conv2d_gemm`],
//!   tensor operations whose backward pass is matrix multiplies (cuBLAS on a GPU) where candle's runs a
//!   direct `conv_transpose2d` kernel; inference, batch norm and max pool as candle's. Written for GPUs;
//!   on the CPU it is what the tests check the GPU's training path with.
//!
//! Devices other than the CPU take candle's operations on the default path: the tensor path's speed on
//! a GPU is measured by `benches/gpu.sh` before it becomes their default.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use candle_nn::{Module, VarBuilder};
use rayon::prelude::*;

use super::cpu::{Float, by_float, contiguous, keep_buffer, simd, take_buffer, zeros};
use super::gemm::{self, MatRef};
use super::winograd::Winograd;

/// Which implementation the process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPath {
    /// im2col + GEMM with a col2im backward.
    Im2Col,
    /// candle's stock `conv2d`.
    Stock,
    /// Tensor operations with a GEMM backward ([`super::conv_tensor`]) in training, candle's `conv2d`
    /// otherwise.
    Tensor,
}

/// The path chosen by `SACRO_CONV` (`im2col`, `stock` or `tensor`; im2col when unset).
pub fn conv_path() -> ConvPath {
    static PATH: OnceLock<ConvPath> = OnceLock::new();
    *PATH.get_or_init(|| match std::env::var("SACRO_CONV").as_deref() {
        Ok("stock") => ConvPath::Stock,
        Ok("tensor") => ConvPath::Tensor,
        _ => ConvPath::Im2Col,
    })
}

/// Geometry of a square-kernel convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
}

impl Geometry {
    /// Output height and width.
    pub fn out(&self) -> (usize, usize) {
        (
            (self.height + 2 * self.padding - self.k) / self.stride + 1,
            (self.width + 2 * self.padding - self.k) / self.stride + 1,
        )
    }

    /// Rows of the column matrix: channels × k × k.
    pub fn rows(&self) -> usize {
        self.channels * self.k * self.k
    }

    fn check(&self, what: &str) -> Result<()> {
        if self.k == 0
            || self.stride == 0
            || self.height + 2 * self.padding < self.k
            || self.width + 2 * self.padding < self.k
        {
            candle_core::bail!("{what}: kernel {} does not fit the input {self:?}", self.k);
        }
        Ok(())
    }
}

/// Input offset of output position `o` and kernel tap `t` along one axis, if inside the image.
#[inline]
fn source(o: usize, t: usize, g: &Geometry, size: usize) -> Option<usize> {
    (o * g.stride + t)
        .checked_sub(g.padding)
        .filter(|&i| i < size)
}

/// Along one axis of `size` input pixels and `outs` output pixels, for kernel tap `t`: the outputs
/// `lo..hi` whose input `o·stride + t − padding` lies inside the image, and the input of the first of them
/// (each later one is `stride` further on); `None` when no output sees the image through this tap.
#[inline(always)]
fn run(t: usize, g: &Geometry, size: usize, outs: usize) -> Option<(usize, usize, usize)> {
    let lo = g.padding.saturating_sub(t).div_ceil(g.stride);
    let hi = (size + g.padding)
        .saturating_sub(t)
        .div_ceil(g.stride)
        .min(outs);
    (lo < hi).then(|| (lo, hi, lo * g.stride + t - g.padding))
}

/// `[n, c, h, w]` → `[c·k·k, n·ho·wo]`: each column holds the input values one output pixel of one image
/// sees (zeros in the padding), rows ordered (channel, kernel row, kernel column) like a flattened weight,
/// columns (image, output row, output column), so that the whole batch is one matrix multiply.
#[derive(Debug, Clone, Copy)]
pub struct Im2Col(pub Geometry);

/// The adjoint of [`Im2Col`]: `[c·k·k, n·ho·wo]` → `[n, c, h, w]`, summing every column entry back into the
/// input pixel it came from.
#[derive(Debug, Clone, Copy)]
pub struct Col2Im {
    /// Geometry of the convolution.
    pub geometry: Geometry,
    /// Images in the batch.
    pub batch: usize,
}

fn im2col<T: Float>(x: &[T], n: usize, g: &Geometry) -> Vec<T> {
    let (ho, wo) = g.out();
    let (h, w, k) = (g.height, g.width, g.k);
    let plane = ho * wo;
    let stride_row = n * plane;
    // Every value is written below, the padding's zeros too: the buffer's old values do not matter.
    let mut out = take_buffer::<T>(g.rows() * stride_row);
    let zero = T::default();
    // One task per input channel and kernel row: its k rows of the column matrix, every image side by
    // side (per channel alone, the stem's three channels made three tasks for the threads).
    out.par_chunks_mut(k * stride_row)
        .enumerate()
        .for_each(|(cy, rows)| {
            let (c, ky) = (cy / k, cy % k);
            simd(
                #[inline(always)]
                || {
                    for img in 0..n {
                        let src =
                            &x[(img * g.channels + c) * h * w..(img * g.channels + c + 1) * h * w];
                        for kx in 0..k {
                            let start = kx * stride_row + img * plane;
                            let row = &mut rows[start..start + plane];
                            let Some((lo, hi, first)) = run(kx, g, w, wo) else {
                                row.fill(zero);
                                continue;
                            };
                            for (oy, out_line) in row.chunks_exact_mut(wo).enumerate() {
                                let Some(iy) = source(oy, ky, g, h) else {
                                    out_line.fill(zero);
                                    continue;
                                };
                                out_line[..lo].fill(zero);
                                out_line[hi..].fill(zero);
                                let line = &src[iy * w..(iy + 1) * w];
                                let dst = &mut out_line[lo..hi];
                                if g.stride == 1 {
                                    dst.copy_from_slice(&line[first..first + (hi - lo)]);
                                } else {
                                    let from = line[first..].iter().step_by(g.stride);
                                    for (d, &v) in dst.iter_mut().zip(from) {
                                        *d = v;
                                    }
                                }
                            }
                        }
                    }
                },
            );
        });
    out
}

fn col2im<T: Float>(cols: &[T], n: usize, g: &Geometry) -> Vec<T> {
    let (ho, wo) = g.out();
    let (h, w, k) = (g.height, g.width, g.k);
    let plane = ho * wo;
    let stride_row = n * plane;
    let mut out = zeros::<T>(n * g.channels * h * w);
    out.par_chunks_mut(h * w).enumerate().for_each(|(nc, dst)| {
        let (img, c) = (nc / g.channels, nc % g.channels);
        simd(
            #[inline(always)]
            || {
                for ky in 0..k {
                    for kx in 0..k {
                        let start = ((c * k + ky) * k + kx) * stride_row + img * plane;
                        let row = &cols[start..start + plane];
                        let Some((lo, hi, first)) = run(kx, g, w, wo) else {
                            continue;
                        };
                        for oy in 0..ho {
                            let Some(iy) = source(oy, ky, g, h) else {
                                continue;
                            };
                            let line = &mut dst[iy * w..(iy + 1) * w];
                            let src = &row[oy * wo + lo..oy * wo + hi];
                            if g.stride == 1 {
                                for (d, &v) in line[first..first + (hi - lo)].iter_mut().zip(src) {
                                    *d += v;
                                }
                            } else {
                                let to = line[first..].iter_mut().step_by(g.stride);
                                for (d, &v) in to.zip(src) {
                                    *d += v;
                                }
                            }
                        }
                    }
                }
            },
        );
    });
    out
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "sacro-im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        g.check("im2col")?;
        let (n, c, h, w) = l.shape().dims4()?;
        if (c, h, w) != (g.channels, g.height, g.width) {
            candle_core::bail!("im2col: input {:?} does not match {g:?}", l.shape());
        }
        let (ho, wo) = g.out();
        let shape = Shape::from((g.rows(), n * ho * wo));
        let out = by_float!(s.dtype(), "im2col", T => T::wrap(im2col(
            contiguous::<T>(s, l, "im2col: input")?,
            n,
            &g
        )));
        Ok((out, shape))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let batch = arg.dim(0)?;
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im {
            geometry: self.0,
            batch,
        })?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "sacro-col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, n) = (self.geometry, self.batch);
        g.check("col2im")?;
        let (rows, cols) = l.shape().dims2()?;
        let (ho, wo) = g.out();
        if (rows, cols) != (g.rows(), n * ho * wo) {
            candle_core::bail!("col2im: input {:?} does not match {g:?}", l.shape());
        }
        let shape = Shape::from((n, g.channels, g.height, g.width));
        let out = by_float!(s.dtype(), "col2im", T => T::wrap(col2im(
            contiguous::<T>(s, l, "col2im: input")?,
            n,
            &g
        )));
        Ok((out, shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col(self.geometry))?))
    }
}

/// Batches whose output images have at least this many pixels are convolved one image at a time (see
/// [`ConvIm2Col`]).
const PER_IMAGE_MIN_PIXELS: usize = 128;

/// The convolution as one op, `(x, weight)` → `[n, co, ho, wo]`: im2col and a matrix multiply per image,
/// each product written into the output where it belongs ([`append_product_split_k`]), where the images' outputs have at
/// least [`PER_IMAGE_MIN_PIXELS`] pixels: an image's column matrix stays in the cache between im2col and
/// the product (the batch's, at 224² batch 8, is 58 MB for layer1's 3×3 convolution, one image's 7 MB),
/// and nothing is zeroed or reordered (224² batch 8: forward pass about 5 % faster, the training step's
/// fastest about 1 %, interleaved runs; layer4's 7 × 7 outputs at 224² stay one product for the batch, whose 49 columns
/// per image made a slower product). Otherwise one im2col and one matrix multiply for the whole batch and
/// a parallel copy into batch-major order. The column matrix lives only
/// while the op runs: the backward pass rebuilds it (one memory-bound pass) for the weight gradient instead
/// of the graph keeping it, nine times the input of a 3×3 convolution, from the forward to the backward
/// pass.
#[derive(Debug, Clone, Copy)]
struct ConvIm2Col {
    geometry: Geometry,
    out_channels: usize,
}

/// `a · bᵀ` for `a` `[m, k]` and `b` `[n, k]` (both k-contiguous rows), as the weight gradients need it
/// (k: the batch's pixels, often far more than m and n). The `gemm` crate is slow on such products as
/// candle hands them over: it parallelises over tiles of the output, of which a 64 × 576 product has few,
/// and a row-major output whose rows are long ran at 71 GFLOP/s where the transposed orientation ran at
/// 186 (`benches/gemm/results_2026-11-28.txt`, this 2-core machine, 224² batch 8). So, where k is long
/// (≥ 2·max(m, n)) the product is computed as `b · aᵀ` when n > m (the output's contiguous side the
/// shorter one) and its transpose copied back, and k is split into two chunks computed in parallel
/// (each still multithreaded inside) and summed: 26 → 6.5 ms for layer1's 3×3 weight gradient, 37 → 9.2
/// ms for the stem's (PyTorch's `torch.mm` on the same operands: 8.0 and 10.1 ms). Returns `[m, n]`
/// row-major.
fn product_abt<T: Float>(a: &[T], b: &[T], (m, n, k): (usize, usize, usize)) -> Result<Vec<T>> {
    // `x · yᵀ` over `k0..k1` appended to `out`, x `[rows, k]` and y `[cols, k]`.
    let part = |out: &mut Vec<T>,
                (x, rows): (&[T], usize),
                (y, cols): (&[T], usize),
                k0: usize,
                k1: usize| {
        gemm::append_products(
            out,
            (1, rows, cols, k1 - k0),
            MatRef::row_major(x, k0, k),
            MatRef::transposed(y, k0, k),
        )
    };
    let mut out = Vec::with_capacity(m * n);
    if k < 2 * m.max(n) {
        part(&mut out, (a, m), (b, n), 0, k)?;
        return Ok(out);
    }
    let (x, y, transposed) = if n > m {
        ((b, n), (a, m), true)
    } else {
        ((a, m), (b, n), false)
    };
    // Two halves whatever the thread count (each product is multithreaded inside): the sums, and so the
    // trained weights, do not depend on the machine's cores.
    if k >= 2048 {
        let mut upper = Vec::with_capacity(m * n);
        let (lo, hi) = rayon::join(
            || part(&mut out, x, y, 0, k / 2),
            || part(&mut upper, x, y, k / 2, k),
        );
        lo?;
        hi?;
        out.iter_mut().zip(&upper).for_each(|(a, &b)| *a += b);
    } else {
        part(&mut out, x, y, 0, k)?;
    }
    if !transposed {
        return Ok(out);
    }
    // [n, m] → [m, n].
    Ok((0..m * n).map(|i| out[(i % n) * m + i / n]).collect())
}

/// Appends to `out` `lhs · rhs_i` for each of `b` products: `lhs` `[m, k]` (shared by all; stored as
/// `[k, m]` when [`Orientation::Transposed`]), `rhs` `[b, k, n]` contiguous from `rhs_start`; each product
/// `[m, n]` row-major, written where it belongs ([`gemm::append_products`]: no zeroed buffer, no copy).
/// Where k is long against the output (≥ 2·max(m, n): layers 3 and 4 of a forward pass) k is split in two
/// halves computed in parallel (each still multithreaded inside) and summed. The `gemm` crate parallelises
/// over tiles of the output, of which such products have few: layer3's 3×3 product at 224² ran at 173
/// GFLOP/s whole and 244 split, layer4's at 168 and 223 (PyTorch's `torch.mm`: 270 and 182;
/// `benches/gemm/results_2026-11-28.txt`, `--split-forward`, Intel Xeon). On the AMD EPYC of 2026-12-05
/// layer3's 1×1 product (256 × 196 × 1024), which a batch's 1×1 convolutions compute per image, ran at 98
/// GFLOP/s whole and 200 split (`results_2026-12-05.txt`).
fn append_product_split_k<T: Float>(
    out: &mut Vec<T>,
    (lhs, orientation): (&[T], Orientation),
    (rhs, rhs_start): (&[T], usize),
    (b, m, n, k): (usize, usize, usize, usize),
) -> Result<()> {
    // The weight is the same for every product: a zero batch stride.
    let lhs_view = |k0: usize| match orientation {
        Orientation::AsStored => MatRef::row_major(lhs, k0, k),
        Orientation::Transposed => MatRef::transposed(lhs, k0 * m, m),
    };
    let rhs_view = |k0: usize| MatRef::row_major(rhs, rhs_start + k0 * n, n).batched(k * n);
    // Two halves whatever the thread count, as in `product_abt`.
    if k < 2 * m.max(n) || k < 128 {
        return gemm::append_products(out, (b, m, n, k), lhs_view(0), rhs_view(0));
    }
    let half = k / 2;
    let start = out.len();
    let mut upper = Vec::new();
    let (lo, hi) = rayon::join(
        || gemm::append_products(out, (b, m, n, half), lhs_view(0), rhs_view(0)),
        || {
            gemm::append_products(
                &mut upper,
                (b, m, n, k - half),
                lhs_view(half),
                rhs_view(half),
            )
        },
    );
    lo?;
    hi?;
    out[start..]
        .par_chunks_mut(1 << 14)
        .zip(upper.par_chunks(1 << 14))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, &b)| *a += b));
    Ok(())
}

/// How the shared left operand of [`append_product_split_k`] is stored.
#[derive(Debug, Clone, Copy)]
enum Orientation {
    /// `[m, k]`, row-major.
    AsStored,
    /// `[k, m]`, row-major: the product uses its transpose (a weight `[co, c]` for an input gradient).
    Transposed,
}

/// `[co, n·p]` → `[n, co, p]`.
fn batch_major<T: Float>(y: &[T], n: usize, co: usize, p: usize) -> Vec<T> {
    let mut out = zeros::<T>(y.len());
    out.par_chunks_mut(p).enumerate().for_each(|(io, dst)| {
        let (img, o) = (io / co, io % co);
        dst.copy_from_slice(&y[(o * n + img) * p..(o * n + img + 1) * p]);
    });
    out
}

impl CustomOp2 for ConvIm2Col {
    fn name(&self) -> &'static str {
        "sacro-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let co = self.out_channels;
        let (n, c, h, w) = xl.shape().dims4()?;
        if (c, h, w) != (g.channels, g.height, g.width) || wl.shape().elem_count() != co * g.rows()
        {
            candle_core::bail!(
                "conv2d: input {:?} or weight {:?} does not match {g:?}",
                xl,
                wl
            );
        }
        let (ho, wo) = g.out();
        let p = ho * wo;
        let out = by_float!(xs.dtype(), "conv2d", T => {
            let x = contiguous::<T>(xs, xl, "conv2d: input")?;
            let weight = (contiguous::<T>(ws, wl, "conv2d: weight")?, Orientation::AsStored);
            let mut out: Vec<T> = Vec::with_capacity(n * co * p);
            if n > 1 && p >= PER_IMAGE_MIN_PIXELS {
                let per = c * h * w;
                for img in 0..n {
                    let cols = im2col(&x[img * per..(img + 1) * per], 1, &g);
                    append_product_split_k(&mut out, weight, (&cols, 0), (1, co, p, g.rows()))?;
                    keep_buffer(cols);
                }
            } else {
                let cols = im2col(x, n, &g);
                append_product_split_k(&mut out, weight, (&cols, 0), (1, co, n * p, g.rows()))?;
                keep_buffer(cols);
                if n > 1 {
                    let y = out;
                    out = batch_major(&y, n, co, p);
                    keep_buffer(y);
                }
            }
            T::wrap(out)
        });
        Ok((out, Shape::from((n, co, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.backward(x, weight, grad, x.track_op(), true)
    }
}

impl ConvIm2Col {
    /// `(dx, dw)` from the output gradient, `dx` only when `needs_dx` (not for the network's input), `dw`
    /// only when `needs_dw` (not for frozen weights); computed from detached tensors: the gradients carry
    /// no graph.
    fn backward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        grad: &Tensor,
        needs_dx: bool,
        needs_dw: bool,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.geometry;
        let co = self.out_channels;
        let (x, weight) = (x.detach(), weight.detach());
        let n = x.dim(0)?;
        let (ho, wo) = g.out();
        // The output gradient as [co, n·ho·wo], the columns' order.
        let gm = grad
            .reshape((n, co, ho * wo))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((co, n * ho * wo))?;
        let dw = if needs_dw {
            let dw = x
                .contiguous()?
                .apply_op2_no_bwd(&gm, &Im2ColWeightGrad { geometry: g })?;
            Some(dw.reshape(weight.shape())?)
        } else {
            None
        };
        if !needs_dx {
            return Ok((None, dw));
        }
        let dx = weight.apply_op2_no_bwd(&gm, &Im2ColInputGrad { geometry: g })?;
        Ok((Some(dx), dw))
    }
}

/// The weight gradient of [`ConvIm2Col`], `(x [n, c, h, w], grad [co, n·ho·wo])` → `[co, c·k·k]`: the
/// column matrix rebuilt in the module's spare buffer ([`take_buffer`]) and given back after the product
/// `G·colsᵀ` ([`product_abt`]), so that the input gradient's column matrix reuses it. No backward pass of
/// its own.
#[derive(Debug, Clone, Copy)]
struct Im2ColWeightGrad {
    geometry: Geometry,
}

impl CustomOp2 for Im2ColWeightGrad {
    fn name(&self) -> &'static str {
        "sacro-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let (n, c, h, w) = xl.shape().dims4()?;
        let (co, cols) = gl.shape().dims2()?;
        let (ho, wo) = g.out();
        if (c, h, w) != (g.channels, g.height, g.width) || cols != n * ho * wo {
            candle_core::bail!(
                "conv2d weight gradient: input {xl:?} or gradient {gl:?} does not match {g:?}"
            );
        }
        let dw = by_float!(xs.dtype(), "conv2d weight gradient", T => {
            let x = contiguous::<T>(xs, xl, "conv2d weight gradient: input")?;
            let grad = contiguous::<T>(gs, gl, "conv2d weight gradient: gradient")?;
            let columns = im2col(x, n, &g);
            let dw = product_abt(grad, &columns, (co, g.rows(), cols));
            keep_buffer(columns);
            T::wrap(dw?)
        });
        Ok((dw, Shape::from((co, g.rows()))))
    }
}

/// The input gradient of [`ConvIm2Col`], `(weight [co, c, k, k], grad [co, n·ho·wo])` → `[n, c, h, w]`:
/// the column matrix's gradient `Wᵀ·G`, written into the module's spare buffer ([`take_buffer`]: no
/// fresh, zeroed allocation of up to nine times the input), scattered back by `col2im`. No backward pass
/// of its own.
#[derive(Debug, Clone, Copy)]
struct Im2ColInputGrad {
    geometry: Geometry,
}

impl CustomOp2 for Im2ColInputGrad {
    fn name(&self) -> &'static str {
        "sacro-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let (co, cols) = gl.shape().dims2()?;
        let (ho, wo) = g.out();
        let n = cols / (ho * wo).max(1);
        if n * ho * wo != cols || wl.shape().elem_count() != co * g.rows() {
            candle_core::bail!(
                "conv2d input gradient: weight {wl:?} or gradient {gl:?} does not match {g:?}"
            );
        }
        let dx = by_float!(gs.dtype(), "conv2d input gradient", T => {
            let weight = contiguous::<T>(ws, wl, "conv2d input gradient: weight")?;
            let grad = contiguous::<T>(gs, gl, "conv2d input gradient: gradient")?;
            let mut dcols = take_buffer::<T>(0);
            gemm::append_products(
                &mut dcols,
                (1, g.rows(), cols, co),
                MatRef::transposed(weight, 0, g.rows()),
                MatRef::row_major(grad, 0, cols),
            )?;
            let dx = col2im(&dcols, n, &g);
            keep_buffer(dcols);
            T::wrap(dx)
        });
        Ok((dx, Shape::from((n, g.channels, g.height, g.width))))
    }
}

/// A 1×1 stride-1 convolution as one op, `(x, weight)` → `[n, co, h, w]`: one batched matrix multiply
/// on the input as it lies, the weight broadcast over the batch (a zero batch stride; split along k where
/// that is long, [`append_product_split_k`]), so nothing is copied in or out. As one node it also spares the backward pass the
/// zeroed gradient buffer and sum candle's autograd spends on every node (here: the reshapes around a
/// matmul); indexing the images one by one would cost far more, a zero-padded full-batch copy of each
/// image's gradient.
#[derive(Debug, Clone, Copy)]
struct Conv1x1;

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
fn conv1x1_backward(
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

/// Whether 3×3 stride-1 convolutions take F(2×2, 3×3) ([`super::winograd`]): yes unless
/// `SACRO_WINOGRAD=off` (im2col for them too: to compare, or to rule the algorithm out when diagnosing).
pub fn winograd_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("SACRO_WINOGRAD").as_deref() != Ok("off"))
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
    } else if winograd && super::winograd::fits(&g) {
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
            super::norm::eval_in_place(&mut v, params, co, ho * wo, self.relu);
            T::wrap(v)
        });
        Ok((y, shape))
    }
}

/// A bias-free 2-D convolution (every convolution in a ResNet is followed by batch norm).
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv {
    /// A `k × k` convolution from `cin` to `cout` channels with the given stride and padding; its weight
    /// is `vb`'s `weight` (torchvision's layout `[cout, cin, k, k]`, Kaiming-normal when created).
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (cout, cin, k, k),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        Ok(Self {
            weight,
            stride,
            padding,
        })
    }
}

impl Conv {
    /// The weight `[cout, cin, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Stride and zero padding.
    pub fn stride_padding(&self) -> (usize, usize) {
        (self.stride, self.padding)
    }

    /// The same convolution on its weight detached: no gradient for the weight (a frozen body).
    pub fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            ..self.clone()
        }
    }
}

impl Conv {
    /// `x` through this convolution and evaluation-mode batch norm `params = [scale; shift]` (+ ReLU)
    /// as one op ([`conv2d_im2col_bn_eval`]); `None` where that op does not apply (not the CPU path,
    /// not f32/f64, or something here carries a graph), and the caller takes the separate ops.
    pub fn forward_bn_eval(
        &self,
        x: &Tensor,
        params: &Tensor,
        relu: bool,
    ) -> Result<Option<Tensor>> {
        let applies = conv_path() == ConvPath::Im2Col
            && x.device().is_cpu()
            && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
            && params.dtype() == x.dtype()
            && !(x.track_op() || self.weight.track_op() || params.track_op());
        if !applies {
            return Ok(None);
        }
        conv2d_im2col_bn_eval(x, &self.weight, self.stride, self.padding, params, relu).map(Some)
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match (conv_path(), x.device()) {
            (ConvPath::Im2Col, candle_core::Device::Cpu) => {
                conv2d_im2col(x, &self.weight, self.stride, self.padding)
            }
            // Matrix multiplies in the backward pass, not candle's direct `conv_transpose2d` kernel;
            // without a graph candle's forward is as fast and keeps nothing.
            (ConvPath::Tensor, _) if x.track_op() || self.weight.track_op() => {
                super::conv_tensor::conv2d_gemm(x, &self.weight, self.stride, self.padding)
            }
            _ => x.conv2d(&self.weight, self.padding, self.stride, 1, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpu::tests::on_both_paths;
    use rand::{Rng, SeedableRng};

    /// `product_abt` equals candle's `a.matmul(bᵀ)` in every branch: k short (plain), k long with the
    /// output as it is or transposed, k split over the threads or not (f64, relative 1e-12).
    #[test]
    fn weight_gradient_products_equal_the_plain_matrix_multiply() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut random = |r: usize, c: usize| {
            let v: Vec<f64> = (0..r * c).map(|_| rng.random_range(-1.0..1.0)).collect();
            Tensor::from_vec(v, (r, c), &candle_core::Device::Cpu).expect("tensor")
        };
        // (m, n, k): short k; long k, m ≥ n, one part; long k, n > m (transposed), one part; long k split
        // (threads permitting), both orientations; k not a multiple of the parts.
        for (m, n, k) in [
            (64, 64, 100),
            (40, 3, 200),
            (3, 40, 200),
            (6, 5, 5003),
            (5, 70, 9001),
        ] {
            let (a, b) = (random(m, k), random(n, k));
            let want = a.matmul(&b.t().expect("t")).expect("matmul");
            let abt = |a: &Tensor, b: &Tensor| -> Tensor {
                let flat = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f64>());
                let v = product_abt(&flat(a).expect("a"), &flat(b).expect("b"), (m, n, k))
                    .expect("product");
                Tensor::from_vec(v, (m, n), &candle_core::Device::Cpu).expect("tensor")
            };
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("pool");
                let got = pool.install(|| abt(&a, &b));
                assert_eq!(got.dims(), &[m, n]);
                assert!(got.is_contiguous(), "{m}×{n}×{k}");
                let err = (&got - &want)
                    .expect("sub")
                    .abs()
                    .expect("abs")
                    .max_all()
                    .expect("max")
                    .to_scalar::<f64>()
                    .expect("scalar");
                assert!(
                    err < 1e-12 * k as f64,
                    "{m}×{n}×{k}, {threads} threads: {err}"
                );
                // The same bits whatever the thread count (the split does not follow the cores).
                let bits = |t: &Tensor| -> Vec<u64> {
                    let v: Vec<Vec<f64>> = t.to_vec2().expect("values");
                    v.concat().iter().map(|x| x.to_bits()).collect()
                };
                let one = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("pool")
                    .install(|| abt(&a, &b));
                assert!(bits(&got) == bits(&one), "{m}×{n}×{k}, {threads} threads");
            }
        }
    }

    /// Convolutions whose product has a long k (split in two, `append_product_split_k`) equal candle's stock
    /// convolution: 1×1 (the batched op, one product per image) and 3×3 (im2col), batch 1 and 3, f64.
    #[test]
    fn long_k_forward_products_equal_the_stock_convolution() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut random = |dims: &[usize]| {
            let v: Vec<f64> = (0..dims.iter().product::<usize>())
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            Tensor::from_vec(v, dims, &candle_core::Device::Cpu).expect("tensor")
        };
        // (in channels, out channels, kernel, padding, side): k = in·kernel² ≥ 128 and ≥ 2·max(out, pixels).
        for (c, co, kk, pad, side) in [(300, 5, 1, 0, 4), (40, 6, 3, 1, 5), (200, 7, 1, 0, 3)] {
            for n in [1, 3] {
                let x = random(&[n, c, side, side]);
                let w = random(&[co, c, kk, kk]);
                let ours = conv2d_im2col(&x, &w, 1, pad).expect("ours");
                let stock = x.conv2d(&w, pad, 1, 1, 1).expect("stock");
                let err = crate::model::cpu::tests::max_abs_diff(&ours, &stock);
                assert!(err < 1e-11, "batch {n}, {c}→{co} k{kk}: {err}");
            }
        }
    }

    /// The vectorised column copies give the same bits as the baseline code (stride 1 and 2, with
    /// padding, sizes that are no multiple of a vector width; in the test profile this mostly checks the
    /// dispatch, see `norm::tests`).
    #[test]
    fn dispatched_im2col_and_col2im_equal_the_baseline_to_the_bit() {
        for (k, stride, padding) in [(3, 1, 1), (3, 2, 1), (7, 2, 3)] {
            let g = Geometry {
                channels: 3,
                height: 19,
                width: 23,
                k,
                stride,
                padding,
            };
            let n = 2;
            let x: Vec<f32> = (0..n * 3 * 19 * 23)
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let (fast, base) = on_both_paths(|| {
                let cols = im2col(&x, n, &g);
                let back = col2im(&cols, n, &g);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                (bits(&cols), bits(&back))
            });
            assert!(fast == base, "k{k} s{stride} p{padding}");
        }
    }

    /// The column matrix is written whole, padding included, into a reused buffer holding old values
    /// (here NaN): the same bits as into a zeroed one. Geometries with padding, stride 2, and an image
    /// narrower than the kernel's reach (whole kernel columns in the padding).
    #[test]
    fn im2col_overwrites_a_reused_buffer() {
        for (k, stride, padding, height, width) in [
            (3, 1, 1, 9, 11),
            (3, 2, 1, 9, 11),
            (7, 2, 3, 8, 2),
            (1, 2, 0, 5, 7),
        ] {
            let g = Geometry {
                channels: 3,
                height,
                width,
                k,
                stride,
                padding,
            };
            let n = 2;
            let x: Vec<f32> = (0..n * 3 * height * width)
                .map(|i| (i as f32 * 0.37).sin() + 2.0)
                .collect();
            crate::model::cpu::release_buffers();
            let fresh = im2col(&x, n, &g);
            keep_buffer(vec![f32::NAN; 2 * fresh.len()]);
            let reused = im2col(&x, n, &g);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert!(fresh.iter().all(|v| !v.is_nan()));
            assert!(bits(&fresh) == bits(&reused), "k{k} s{stride} p{padding}");
        }
    }

    /// Where the time of an im2col convolution goes, part by part, for the 3×3 stride-1 shapes of
    /// ResNet-50 at 224² batch 8 (`PARTS=1 benches/conv_layers.sh`): the forward pass's im2col and
    /// products (per image or for the batch, as the op runs them), and the backward pass's gradient
    /// transpose (candle's, as [`ConvIm2Col::backward`] has it made), whole-batch im2col,
    /// weight-gradient product, `Wᵀ·G` and col2im, each the fastest of six runs, the products with
    /// their GFLOP/s. A benchmark that prints (no timed assertion).
    #[test]
    #[ignore = "a benchmark: PARTS=1 benches/conv_layers.sh"]
    fn print_im2col_parts() -> Result<()> {
        fn time<R>(f: impl FnOnce() -> Result<R>) -> Result<(f64, R)> {
            let start = std::time::Instant::now();
            let r = f()?;
            Ok((start.elapsed().as_secs_f64() * 1e3, r))
        }
        let n = 8;
        println!(
            "shape,fwd_im2col_ms,fwd_products_ms,fwd_gflops,bwd_transpose_ms,bwd_im2col_ms,\
             bwd_weight_grad_ms,weight_grad_gflops,bwd_wt_g_ms,wt_g_gflops,bwd_col2im_ms"
        );
        for (c, side) in [(64usize, 56usize), (128, 28), (256, 14), (512, 7)] {
            let g = Geometry {
                channels: c,
                height: side,
                width: side,
                k: 3,
                stride: 1,
                padding: 1,
            };
            let (co, p, rows, per) = (c, side * side, g.rows(), c * side * side);
            let x: Vec<f32> = (0..n * per).map(|i| (i as f32 * 0.37).sin()).collect();
            let w: Vec<f32> = (0..co * rows).map(|i| (i as f32 * 0.21).cos()).collect();
            let grad: Vec<f32> = (0..n * co * p).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut best = [f64::MAX; 7];
            for _ in 0..6 {
                // As the op runs it: image by image where an output has enough pixels, else one
                // product for the batch and the copy into batch-major order (counted with it).
                let weight = (&w[..], Orientation::AsStored);
                let (fwd_cols, fwd_products) = if p >= PER_IMAGE_MIN_PIXELS {
                    let (a, ()) = time(|| {
                        (0..n).for_each(|img| keep_buffer(im2col(&x[img * per..][..per], 1, &g)));
                        Ok(())
                    })?;
                    let cols = im2col(&x[..per], 1, &g);
                    let (b, _) = time(|| {
                        let mut out = Vec::with_capacity(n * co * p);
                        for _ in 0..n {
                            append_product_split_k(&mut out, weight, (&cols, 0), (1, co, p, rows))?;
                        }
                        Ok(out)
                    })?;
                    (a, b)
                } else {
                    let (a, cols) = time(|| Ok(im2col(&x, n, &g)))?;
                    let (b, _) = time(|| {
                        let mut out = Vec::with_capacity(n * co * p);
                        append_product_split_k(&mut out, weight, (&cols, 0), (1, co, n * p, rows))?;
                        Ok(batch_major(&out, n, co, p))
                    })?;
                    (a, b)
                };
                let grad = Tensor::from_slice(&grad, (n, co, p), &candle_core::Device::Cpu)?;
                let (transpose, gm) = time(|| grad.transpose(0, 1)?.contiguous())?;
                let gm = gm.flatten_all()?.to_vec1::<f32>()?;
                let (bwd_cols, cols) = time(|| Ok(im2col(&x, n, &g)))?;
                let (dw, _) = time(|| product_abt(&gm, &cols, (co, rows, n * p)))?;
                keep_buffer(cols);
                let (wt_g, dcols) = time(|| {
                    let mut dcols = take_buffer::<f32>(0);
                    gemm::append_products(
                        &mut dcols,
                        (1, rows, n * p, co),
                        MatRef::transposed(&w, 0, rows),
                        MatRef::row_major(&gm, 0, n * p),
                    )?;
                    Ok(dcols)
                })?;
                let (back, _) = time(|| Ok(col2im(&dcols, n, &g)))?;
                keep_buffer(dcols);
                let parts = [fwd_cols, fwd_products, transpose, bwd_cols, dw, wt_g, back];
                for (b, t) in best.iter_mut().zip(parts) {
                    *b = b.min(t);
                }
            }
            crate::model::cpu::release_buffers();
            let gflop = 2.0 * (co * rows * n * p) as f64 / 1e6;
            let [a, b, t, d, e, f, h] = best;
            println!(
                "{c}-{co}-k3-s1-{side},{a:.2},{b:.2},{:.0},{t:.2},{d:.2},{e:.2},{:.0},{f:.2},{:.0},{h:.2}",
                gflop / b,
                gflop / e,
                gflop / f
            );
        }
        Ok(())
    }
}
