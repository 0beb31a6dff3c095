//! im2col + GEMM convolutions for any kernel, stride and padding: the column matrix, its adjoint col2im,
//! the forward op (per image or for the whole batch, products written straight into the output) and
//! the two backward ops (weight gradient `G·colsᵀ` from a rebuilt column matrix, input gradient `Wᵀ·G`
//! scattered back by col2im).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::geometry::{Geometry, run, source};
use crate::kernels::cpu::{Float, by_float, contiguous, keep_buffer, simd, take_buffer, zeros};
use crate::kernels::gemm::{self, MatRef};

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
pub(super) struct ConvIm2Col {
    pub(super) geometry: Geometry,
    pub(super) out_channels: usize,
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
pub(super) fn append_product_split_k<T: Float>(
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
pub(super) enum Orientation {
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
    pub(super) fn backward(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::conv2d_im2col;
    use crate::kernels::cpu::tests::on_both_paths;
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
                let err = crate::kernels::cpu::tests::max_abs_diff(&ours, &stock);
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
            crate::kernels::cpu::release_buffers();
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
            crate::kernels::cpu::release_buffers();
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
