//! 3×3 stride-1 convolutions (padding 1: thirteen of ResNet-50's sixteen 3×3 convolutions) by Winograd's
//! minimal filtering algorithm F(2×2, 3×3) (Lavin & Gray, "Fast algorithms for convolutional neural
//! networks", CVPR 2016), forward and both gradients.
//!
//! Each 2×2 block of output pixels ("tile") of one output channel is `Aᵀ [Σ_c U_c ⊙ V_c] A`, where
//! `V_c = Bᵀ d_c B` transforms the 4×4 input patch the tile sees in channel c and `U_c = G g_c Gᵀ` the
//! 3×3 filter. For each of the 16 transformed positions ξ the sum over channels is a matrix product,
//! `M_ξ = U_ξ · V_ξ` (`[co, c]` by `[c, tiles]`), so the convolution is 16 products with 4 multiplies per
//! output pixel and channel pair where im2col's product has 9: 2.25 times less arithmetic, for three
//! cheap transforms (each writes at most four times the input or output, where im2col's column matrix
//! is nine times the input). The backward pass is the exact adjoint of these linear
//! steps: the output gradient transformed by `A · Aᵀ` (`dM`), the input gradient `Bᵀᵀ (U_ξᵀ · dM_ξ) Bᵀ`
//! scattered back over the overlapping patches, and the weight gradient `Gᵀ (dM_ξ · V_ξᵀ) G` summed
//! over the tiles by the product itself.
//!
//! The transforms' coefficients are 0, ±1 and ±½ (exact in binary floating point); only the order of the
//! sums differs from a direct convolution. The tests hold the f32 results within 1e-5 (relative to the
//! largest value) of candle's stock convolution, and the f64 ones within 1e-12 of the im2col path and of
//! finite differences. oneDNN, which PyTorch calls on the CPU, computes these convolutions directly;
//! cuDNN and NNPACK offer Winograd for them.
//!
//! Layouts (t: tile index (image, tile row, tile column) over the images of one chunk):
//! - every operand and product is ξ-major, one row-major block per ξ: `U` `[16][co][c]`, `V` `[16][c][t]`,
//!   `M` `[16][co][t]`, `dM` `[16][co][t]`, `dU` `[16][co][c]`, `dV` `[16][c][t]`. A transform task
//!   (one channel) writes its row of each of the 16 blocks. With the channel-major layout the products
//!   read 16 blocks interleaved, rows 16·t values apart (a multiple of 4 KiB at 56²): layer1's weight
//!   gradient product ran at 65 GFLOP/s, against 133 for the same product on contiguous copies;
//! - the 16 products run side by side on the pool, each on one thread (their outputs are small beside
//!   their sums, which the crate parallelises badly: 30 GFLOP/s on the pool for layer1's weight
//!   gradient).
//!
//! The products are [`crate::kernels::gemm`]'s (the one module with raw-pointer code); this one has none.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

mod products;
#[cfg(test)]
mod tests;
mod transforms;

use super::Geometry;
use crate::kernels::cpu::{Float, by_float, contiguous, keep_buffer, take_buffer, zeros};
use products::*;
use transforms::*;

/// Tiles per chunk of images in the forward pass: a chunk's `V` and `M` (16 values per tile and
/// channel) stay near the cache between the transforms and the products for large images, while small
/// ones (layers 3 and 4) are taken whole so the products are not too thin.
const CHUNK_TILES: usize = 512;

/// Whether F(2×2, 3×3) computes a convolution of this geometry: 3×3, stride 1, padding 1.
pub(crate) fn fits(g: &Geometry) -> bool {
    g.k == 3 && g.stride == 1 && g.padding == 1
}

/// The tiling of an `h × w` plane into 2×2 output tiles (the last row or column of tiles half outside
/// when a side is odd).
#[derive(Debug, Clone, Copy)]
struct Tiles {
    h: usize,
    w: usize,
    /// Tile rows.
    th: usize,
    /// Tile columns.
    tw: usize,
}

impl Tiles {
    fn new(h: usize, w: usize) -> Self {
        Self {
            h,
            w,
            th: h.div_ceil(2),
            tw: w.div_ceil(2),
        }
    }

    /// Tiles per image.
    fn count(&self) -> usize {
        self.th * self.tw
    }
}

/// A convolution by F(2×2, 3×3), `(x [n, c, h, w], weight [co, c, 3, 3])` → `[n, co, h, w]`.
/// Differentiable in both arguments like [`super::conv`]'s im2col op (gradients without a graph; the
/// input's only when something needs it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Winograd {
    /// Geometry (3×3, stride 1, padding 1: [`fits`]).
    pub geometry: Geometry,
    /// Output channels.
    pub out_channels: usize,
    /// Tiles per forward chunk ([`CHUNK_TILES`]; smaller in tests, to cover the chunking).
    pub chunk_tiles: usize,
}

impl Winograd {
    /// The op for `geometry` (which must [`fits`]) and `out_channels`.
    pub(crate) fn new(geometry: Geometry, out_channels: usize) -> Self {
        Self {
            geometry,
            out_channels,
            chunk_tiles: CHUNK_TILES,
        }
    }

    fn check(&self, (n, c, h, w): (usize, usize, usize, usize), weight: usize) -> Result<()> {
        let g = &self.geometry;
        if !fits(g)
            || (c, h, w) != (g.channels, g.height, g.width)
            || weight != self.out_channels * g.rows()
        {
            candle_core::bail!(
                "Winograd conv2d: input [{n}, {c}, {h}, {w}] or weight of {weight} values does not match {g:?}"
            );
        }
        Ok(())
    }

    /// `(dx, dw)` from the output gradient `[n, co, h, w]`, `dx` only when `needs_dx`, `dw` only when
    /// `needs_dw`; from detached tensors, so the gradients carry no graph.
    pub(crate) fn backward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        grad: &Tensor,
        needs_dx: bool,
        needs_dw: bool,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !needs_dx && !needs_dw {
            return Ok((None, None));
        }
        let (x, weight, grad) = (
            x.detach().contiguous()?,
            weight.detach().contiguous()?,
            grad.detach().contiguous()?,
        );
        let op = Grads {
            op: *self,
            needs_dx,
            needs_dw,
            dw: std::sync::Mutex::new(None),
        };
        let dx = x.apply_op3_no_bwd(&weight, &grad, &op)?;
        let dw = op
            .dw
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|dw| match dw {
                CpuStorage::F32(v) => Tensor::from_vec(v, weight.shape(), weight.device()),
                CpuStorage::F64(v) => Tensor::from_vec(v, weight.shape(), weight.device()),
                other => candle_core::bail!(
                    "Winograd conv2d backward: a {:?} weight gradient",
                    other.dtype()
                ),
            })
            .transpose()?;
        Ok((needs_dx.then_some(dx), dw))
    }
}

impl CustomOp2 for Winograd {
    fn name(&self) -> &'static str {
        "sacro-conv3x3-winograd"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = xl.shape().dims4()?;
        self.check(dims, wl.shape().elem_count())?;
        let (n, _, h, w) = dims;
        let y = by_float!(xs.dtype(), "Winograd conv2d", T => {
            let x = contiguous::<T>(xs, xl, "Winograd conv2d: input")?;
            let weight = contiguous::<T>(ws, wl, "Winograd conv2d: weight")?;
            T::wrap(forward(x, weight, n, self)?)
        });
        Ok((y, Shape::from((n, self.out_channels, h, w))))
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

/// The forward pass: the weights transformed once, then per chunk of images the input transform, the 16
/// products and the output transform into the chunk's part of the output.
fn forward<T: Float>(x: &[T], weight: &[T], n: usize, op: &Winograd) -> Result<Vec<T>> {
    let g = &op.geometry;
    let (c, co) = (g.channels, op.out_channels);
    let t = Tiles::new(g.height, g.width);
    let plane = t.h * t.w;
    let u = weight_transform(weight, co, c);
    let per_chunk = op.chunk_tiles.div_ceil(t.count()).clamp(1, n.max(1));
    let most = per_chunk * t.count();
    let mut v = take_buffer::<T>(16 * c * most);
    let mut m = zeros::<T>(16 * co * most);
    let mut y = zeros::<T>(n * co * plane);
    for first in (0..n).step_by(per_chunk) {
        let images = first..(first + per_chunk).min(n);
        let bt = images.len() * t.count();
        let (v, m) = (&mut v[..16 * c * bt], &mut m[..16 * co * bt]);
        input_transform(x, images.clone(), c, t, v);
        products_forward(&u, v, m, (co, c, bt))?;
        output_transform(
            m,
            co,
            images.len(),
            t,
            &mut y[images.start * co * plane..images.end * co * plane],
        );
    }
    keep_buffer(v);
    Ok(y)
}

/// Both gradients from one transformed output gradient, `(x [n, c, h, w], weight [co, c, 3, 3], grad
/// [n, co, h, w])` → the input gradient (`[n, c, h, w]`; one unused value when not `needs_dx`), the weight gradient
/// (when `needs_dw`) left in `dw` for [`Winograd::backward`] to take: an op has one output, and a
/// weight gradient sharing the input gradient's buffer would keep that alive to the end of the backward
/// pass. The weight gradient is `Gᵀ (dM_ξ · V_ξᵀ) G` (the sum over the batch's tiles is the products'
/// own); the input gradient the adjoint input transform of `dV_ξ = U_ξᵀ · dM_ξ`, in `V`'s buffer once the
/// weight gradient is done with it. No backward pass of its own.
struct Grads {
    op: Winograd,
    needs_dx: bool,
    needs_dw: bool,
    dw: std::sync::Mutex<Option<CpuStorage>>,
}

impl CustomOp3 for Grads {
    fn name(&self) -> &'static str {
        "sacro-conv3x3-winograd-grads"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = &self.op;
        let dims = xl.shape().dims4()?;
        op.check(dims, wl.shape().elem_count())?;
        let (n, c, h, w) = dims;
        let co = op.out_channels;
        if gl.shape().dims() != [n, co, h, w] {
            candle_core::bail!("Winograd conv2d backward: gradient {gl:?} for input {xl:?}");
        }
        let t = Tiles::new(h, w);
        let bt = n * t.count();
        let dx = by_float!(xs.dtype(), "Winograd conv2d backward", T => {
            let x = contiguous::<T>(xs, xl, "Winograd conv2d backward: input")?;
            let weight = contiguous::<T>(ws, wl, "Winograd conv2d backward: weight")?;
            let dy = contiguous::<T>(gs, gl, "Winograd conv2d backward: gradient")?;
            let dm = grad_transform(dy, n, co, t);
            let mut v = zeros::<T>(16 * c * bt);
            if self.needs_dw {
                input_transform(x, 0..n, c, t, &mut v);
                let mut du = zeros::<T>(16 * co * c);
                products_weight_grad(&dm, &v, &mut du, (co, c, bt))?;
                let dw = T::wrap(weight_grad_transform(&du, co, c));
                *self.dw.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dw);
            }
            let dx = if self.needs_dx {
                let u = weight_transform(weight, co, c);
                // Into V's buffer: the weight gradient is done with it.
                products_input_grad(&u, &dm, &mut v, (co, c, bt))?;
                input_grad_transform(&v, n, c, t)
            } else {
                vec![T::default()]
            };
            keep_buffer(dm);
            keep_buffer(v);
            T::wrap(dx)
        });
        let shape = if self.needs_dx {
            Shape::from((n, c, h, w))
        } else {
            Shape::from(1)
        };
        Ok((dx, shape))
    }
}
