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
//! The products are [`super::gemm`]'s (the one module with raw-pointer code); this one has none.

use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv::Geometry;
use super::cpu::{Float, by_float, contiguous, keep_buffer, simd, take_buffer, zeros};
use super::gemm::{self, MatRef, Threads};

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

// The element-wise loops below each write one slice, passed as its own `&mut` argument to an
// always-inlined helper, so that the compiler knows the output aliases none of the inputs and needs no
// run-time overlap checks to vectorise the loop.

/// `out[j] = f(a[j])`.
#[inline(always)]
fn map1<T: Float>(out: &mut [T], a: &[T], f: impl Fn(T) -> T) {
    let a = &a[..out.len()];
    for (o, &a) in out.iter_mut().zip(a) {
        *o = f(a);
    }
}

/// `out[j] = f(a[j], b[j])`.
#[inline(always)]
fn map2<T: Float>(out: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    let (a, b) = (&a[..out.len()], &b[..out.len()]);
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = f(a, b);
    }
}

/// `out[j] = f(a[j], b[j], c[j])`.
#[inline(always)]
fn map3<T: Float>(out: &mut [T], a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T) {
    let (a, b, c) = (&a[..out.len()], &b[..out.len()], &c[..out.len()]);
    for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(a, b, c);
    }
}

/// `out[j] = f(out[j], a[j])`.
#[inline(always)]
fn update1<T: Float>(out: &mut [T], a: &[T], f: impl Fn(T, T) -> T) {
    let a = &a[..out.len()];
    for (o, &a) in out.iter_mut().zip(a) {
        *o = f(*o, a);
    }
}

/// `out[j] = f(out[j], a[j], b[j], c[j])`.
#[inline(always)]
fn update3<T: Float>(out: &mut [T], a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T, T) -> T) {
    let (a, b, c) = (&a[..out.len()], &b[..out.len()], &c[..out.len()]);
    for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(*o, a, b, c);
    }
}

/// `even[j] = line[2j]`, `odd[j] = line[2j + 1]` for the `even.len()` pairs of `line`.
#[inline(always)]
fn deinterleave<T: Float>(even: &mut [T], odd: &mut [T], line: &[T]) {
    let odd = &mut odd[..even.len()];
    let line = &line[..2 * even.len()];
    for ((e, o), pair) in even.iter_mut().zip(odd).zip(line.chunks_exact(2)) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// `line[2j] = even[j]`, `line[2j + 1] = odd[j]` for the pairs of `line`.
#[inline(always)]
fn interleave<T: Float>(line: &mut [T], even: &[T], odd: &[T]) {
    let pairs = line.len() / 2;
    let (even, odd) = (&even[..pairs], &odd[..pairs]);
    for ((pair, &e), &o) in line.chunks_exact_mut(2).zip(even).zip(odd) {
        pair[0] = e;
        pair[1] = o;
    }
}

/// `buf` as blocks of `rows` rows of `len` values each (one block per ξ), regrouped by row: item `r`
/// holds row `r` of every block, so that one task can write its row of each ξ.
fn rows_of_blocks<T>(buf: &mut [T], rows: usize, len: usize) -> Vec<Vec<&mut [T]>> {
    let mut out: Vec<Vec<&mut [T]>> = (0..rows).map(|_| Vec::with_capacity(16)).collect();
    if len == 0 {
        return out;
    }
    for block in buf.chunks_mut(rows * len) {
        for (r, row) in block.chunks_mut(len).enumerate() {
            out[r].push(row);
        }
    }
    out
}

/// The 16 products `lhs(ξ) · rhs(ξ)` (`[m, k]` by `[k, n]`) into `dst` `[16][m][n]`, side by side on
/// the pool, each on one thread.
fn products_by_xi<'a, T: Float>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    lhs: impl Fn(usize) -> MatRef<'a, T> + Sync,
    rhs: impl Fn(usize) -> MatRef<'a, T> + Sync,
) -> Result<()> {
    dst.par_chunks_mut(m * n)
        .enumerate()
        .try_for_each(|(xi, d)| {
            gemm::products_into(d, (1, m, n, k), lhs(xi), rhs(xi), Threads::One)
        })
}

/// `M_ξ = U_ξ · V_ξ` (`[co, c]` by `[c, bt]`) into `m` `[16][co][bt]`.
fn products_forward<T: Float>(
    u: &[T],
    v: &[T],
    m: &mut [T],
    (co, c, bt): (usize, usize, usize),
) -> Result<()> {
    products_by_xi(
        m,
        (co, bt, c),
        |xi| MatRef::row_major(u, xi * co * c, c),
        |xi| MatRef::row_major(v, xi * c * bt, bt),
    )
}

/// `dU_ξ = dM_ξ · V_ξᵀ` (`[co, bt]` by `[bt, c]`: the sum over the tiles) into `du` `[16][co][c]`.
fn products_weight_grad<T: Float>(
    dm: &[T],
    v: &[T],
    du: &mut [T],
    (co, c, bt): (usize, usize, usize),
) -> Result<()> {
    products_by_xi(
        du,
        (co, c, bt),
        |xi| MatRef::row_major(dm, xi * co * bt, bt),
        |xi| MatRef::transposed(v, xi * c * bt, bt),
    )
}

/// `dV_ξ = U_ξᵀ · dM_ξ` (`[c, co]` by `[co, bt]`) into `dv` `[16][c][bt]`.
fn products_input_grad<T: Float>(
    u: &[T],
    dm: &[T],
    dv: &mut [T],
    (co, c, bt): (usize, usize, usize),
) -> Result<()> {
    products_by_xi(
        dv,
        (c, bt, co),
        |xi| MatRef::transposed(u, xi * co * c, c),
        |xi| MatRef::row_major(dm, xi * co * bt, bt),
    )
}

/// The input transform of images `images` of `x` (`[n, c, h, w]`): `v` `[16][c][bt]` with `bt` the
/// chunk's tiles, `v[4α+β][ch][tile] = (Bᵀ d B)[α][β]` for the tile's 4×4 patch `d` of the zero-padded
/// plane (rows `2·ti − 1 ..`, columns `2·tj − 1 ..` of the image), `Bᵀ` along one axis mapping
/// `(d0, d1, d2, d3)` to `(d0 − d2, d1 + d2, d2 − d1, d1 − d3)`. One task per channel.
///
/// The padded plane is first split by row and column parity into four `(th + 1) × (tw + 1)` arrays
/// (`P[2·rp + cp][i·(tw+1) + j]` = padded pixel `(2i + rp, 2j + cp)`): a tile's rows and columns are then
/// the same index or one row (`tw + 1`) or one value further, so each pass of the transform is one loop
/// over the whole image (a row of tiles alone is too short a loop to vectorise well). The last value of
/// each row of the results (the column past the last tile) is dropped when they are copied out.
fn input_transform<T: Float>(x: &[T], images: Range<usize>, c: usize, t: Tiles, v: &mut [T]) {
    let (h, w, th, tw) = (t.h, t.w, t.th, t.tw);
    let tiles = t.count();
    let bt = images.len() * tiles;
    let n1 = tw + 1;
    let pp = (th + 1) * n1 + 1;
    let qq = th * n1 + 1;
    let pairs = w / 2;
    let zero = T::default();
    rows_of_blocks(v, c, bt)
        .into_par_iter()
        .enumerate()
        .for_each_init(
            || vec![zero; 4 * pp + 8 * qq + th * n1],
            |scratch, (ch, mut vc)| {
                simd(
                    #[inline(always)]
                    || {
                        let (p, rest) = scratch.split_at_mut(4 * pp);
                        let (q, s) = rest.split_at_mut(8 * qq);
                        let s = &mut s[..th * n1];
                        for (i, img) in images.clone().enumerate() {
                            let src = &x[(img * c + ch) * h * w..(img * c + ch + 1) * h * w];
                            // Image pixel (r, x) is padded (r + 1, x + 1): even x in the odd columns.
                            p.fill(zero);
                            for (r, line) in src.chunks_exact(w).enumerate() {
                                let padded = r + 1;
                                let (rp, at) = (padded % 2, padded / 2 * n1);
                                let (even_cols, odd_cols) =
                                    p[2 * rp * pp..(2 * rp + 2) * pp].split_at_mut(pp);
                                deinterleave(
                                    &mut odd_cols[at..at + pairs],
                                    &mut even_cols[at + 1..at + 1 + pairs],
                                    line,
                                );
                                if w % 2 == 1 {
                                    odd_cols[at + pairs] = line[w - 1];
                                }
                            }
                            // Bᵀ down the rows: padded rows 2ti..2ti+4 are P[0·][g], P[1·][g],
                            // P[0·][g + n1], P[1·][g + n1]; q[2α + cp].
                            for cp in 0..2 {
                                let (p0, p1) =
                                    (&p[cp * pp..(cp + 1) * pp], &p[(2 + cp) * pp..(3 + cp) * pp]);
                                let out =
                                    |alpha: usize| (2 * alpha + cp) * qq..(2 * alpha + cp + 1) * qq;
                                map2(&mut q[out(0)], p0, &p0[n1..], |a, b| a - b);
                                map2(&mut q[out(1)], p1, &p0[n1..], |a, b| a + b);
                                map2(&mut q[out(2)], &p0[n1..], p1, |a, b| a - b);
                                map2(&mut q[out(3)], p1, &p1[n1..], |a, b| a - b);
                            }
                            // Bᵀ along the columns: columns 2tj..2tj+4 are q[·0][f], q[·1][f], q[·0][f + 1],
                            // q[·1][f + 1]; each result copied out row of tiles by row of tiles.
                            let at = i * tiles;
                            for alpha in 0..4 {
                                let (e, o) = (
                                    &q[2 * alpha * qq..(2 * alpha + 1) * qq],
                                    &q[(2 * alpha + 1) * qq..(2 * alpha + 2) * qq],
                                );
                                for beta in 0..4 {
                                    match beta {
                                        0 => map2(s, e, &e[1..], |a, b| a - b),
                                        1 => map2(s, o, &e[1..], |a, b| a + b),
                                        2 => map2(s, &e[1..], o, |a, b| a - b),
                                        _ => map2(s, o, &o[1..], |a, b| a - b),
                                    }
                                    let dst = &mut vc[4 * alpha + beta][at..at + tiles];
                                    for (d, from) in
                                        dst.chunks_exact_mut(tw).zip(s.chunks_exact(n1))
                                    {
                                        d.copy_from_slice(&from[..tw]);
                                    }
                                }
                            }
                        }
                    },
                );
            },
        );
}

/// The output transform: `m` `[16][co][bt]` → `y`, the chunk's `images` images `[images, co, h, w]`,
/// `y[tile's 2×2] = Aᵀ m A` with `Aᵀ` along one axis mapping `(m0, m1, m2, m3)` to
/// `(m0 + m1 + m2, m1 − m2 − m3)` (the parts of the last tiles outside an odd side dropped). One task per
/// output plane; each pass one loop over the plane's tiles.
fn output_transform<T: Float>(m: &[T], co: usize, images: usize, t: Tiles, y: &mut [T]) {
    let (h, w, tw) = (t.h, t.w, t.tw);
    let tiles = t.count();
    let bt = images * tiles;
    let zero = T::default();
    y.par_chunks_mut(h * w).enumerate().for_each_init(
        || vec![zero; 12 * tiles],
        |z, (p, dst)| {
            let (i, k) = (p / co, p % co);
            simd(
                #[inline(always)]
                || {
                    let row = |xi: usize| &m[(xi * co + k) * bt + i * tiles..][..tiles];
                    // Aᵀ along the columns: z[2α] = m0 + m1 + m2, z[2α+1] = m1 − m2 − m3 of row α.
                    let (zs, ys) = z.split_at_mut(8 * tiles);
                    for alpha in 0..4 {
                        let (m0, m1, m2, m3) = (
                            row(4 * alpha),
                            row(4 * alpha + 1),
                            row(4 * alpha + 2),
                            row(4 * alpha + 3),
                        );
                        let (z0, z1) =
                            zs[2 * alpha * tiles..(2 * alpha + 2) * tiles].split_at_mut(tiles);
                        map3(z0, m0, m1, m2, |a, b, c| a + b + c);
                        map3(z1, m1, m2, m3, |a, b, c| a - b - c);
                    }
                    // Aᵀ down the rows: ys[2a + b] is the tile's pixel (a, b).
                    let r = |a: usize, b: usize| &zs[(2 * a + b) * tiles..(2 * a + b + 1) * tiles];
                    for b in 0..2 {
                        map3(
                            &mut ys[b * tiles..(b + 1) * tiles],
                            r(0, b),
                            r(1, b),
                            r(2, b),
                            |a, b, c| a + b + c,
                        );
                        map3(
                            &mut ys[(2 + b) * tiles..(3 + b) * tiles],
                            r(1, b),
                            r(2, b),
                            r(3, b),
                            |a, b, c| a - b - c,
                        );
                    }
                    for (r, line) in dst.chunks_exact_mut(w).enumerate() {
                        let (a, at) = (r % 2, r / 2 * tw);
                        let (even, odd) =
                            (&ys[2 * a * tiles + at..], &ys[(2 * a + 1) * tiles + at..]);
                        interleave(line, even, odd);
                        if w % 2 == 1 {
                            line[w - 1] = even[w / 2];
                        }
                    }
                },
            );
        },
    );
}

/// The weight transform: `weight` `[co, c, 3, 3]` → `U` `[16][co][c]`, `U[4α+β][k][ch] = (G g Gᵀ)[α][β]`
/// with `G` along one axis mapping `(a, b, c)` to `(a, (a + b + c)/2, (a − b + c)/2, c)`. One task per
/// output channel; its filters first regrouped tap by tap so that the arithmetic runs on contiguous
/// values.
fn weight_transform<T: Float>(weight: &[T], co: usize, c: usize) -> Vec<T> {
    let mut u = zeros::<T>(co * 16 * c);
    let zero = T::default();
    let half = T::from_f64(0.5);
    rows_of_blocks(&mut u, co, c)
        .into_par_iter()
        .enumerate()
        .for_each_init(
            || vec![zero; 21 * c],
            |scratch, (k, mut uk)| {
                simd(
                    #[inline(always)]
                    || {
                        let (taps, rowed) = scratch.split_at_mut(9 * c);
                        let filters = &weight[k * 9 * c..(k + 1) * 9 * c];
                        // Tap by tap (value by value, a scattered store with a bounds check each, the
                        // transform took 1.7 ms at 512 channels where it now takes 1.3).
                        for (tap, row) in taps.chunks_exact_mut(c).enumerate() {
                            for (d, f) in row.iter_mut().zip(filters.chunks_exact(9)) {
                                *d = f[tap];
                            }
                        }
                        // G down the rows, for each filter column j: rowed[4j + α].
                        for j in 0..3 {
                            let g = |i: usize| &taps[(3 * i + j) * c..(3 * i + j + 1) * c];
                            let out = |a: usize| (4 * j + a) * c..(4 * j + a + 1) * c;
                            rowed[out(0)].copy_from_slice(g(0));
                            map3(&mut rowed[out(1)], g(0), g(1), g(2), |a, b, c| {
                                (a + b + c) * half
                            });
                            map3(&mut rowed[out(2)], g(0), g(1), g(2), |a, b, c| {
                                (a - b + c) * half
                            });
                            rowed[out(3)].copy_from_slice(g(2));
                        }
                        // G along the columns.
                        for alpha in 0..4 {
                            let r = |j: usize| &rowed[(4 * j + alpha) * c..(4 * j + alpha + 1) * c];
                            let d = &mut uk[4 * alpha..4 * alpha + 4];
                            d[0].copy_from_slice(r(0));
                            map3(d[1], r(0), r(1), r(2), |a, b, c| (a + b + c) * half);
                            map3(d[2], r(0), r(1), r(2), |a, b, c| (a - b + c) * half);
                            d[3].copy_from_slice(r(2));
                        }
                    },
                );
            },
        );
    u
}

/// The output gradient transformed (the adjoint of [`output_transform`]): `dy` `[n, co, h, w]` → `dM`
/// `[16][co][n·tiles]`, `dM[4α+β][k][tile] = (A dY Aᵀ)[α][β]` for the tile's 2×2 gradient (zeros outside
/// an odd side), `A` along one axis mapping `(y0, y1)` to `(y0, y0 + y1, y0 − y1, −y1)`. One task per
/// output channel; each pass one loop over an image's tiles.
fn grad_transform<T: Float>(dy: &[T], n: usize, co: usize, t: Tiles) -> Vec<T> {
    let (h, w, th, tw) = (t.h, t.w, t.th, t.tw);
    let tiles = t.count();
    let bt = n * tiles;
    let pairs = w / 2;
    let zero = T::default();
    let mut dm = take_buffer::<T>(co * 16 * bt);
    rows_of_blocks(&mut dm, co, bt)
        .into_par_iter()
        .enumerate()
        .for_each_init(
            || vec![zero; 10 * tiles],
            |scratch, (k, mut dmk)| {
                simd(
                    #[inline(always)]
                    || {
                        // split[2a + b]: the tiles' gradient at pixel (a, b); q[4a + β] after A along the
                        // columns (β = 0 is split[2a] itself).
                        let (split, q) = scratch.split_at_mut(4 * tiles);
                        for img in 0..n {
                            let src = &dy[(img * co + k) * h * w..(img * co + k + 1) * h * w];
                            for (r, line) in src.chunks_exact(w).enumerate() {
                                let (a, at) = (r % 2, r / 2 * tw);
                                let (e, o) =
                                    split[2 * a * tiles..(2 * a + 2) * tiles].split_at_mut(tiles);
                                deinterleave(&mut e[at..at + pairs], &mut o[at..at + pairs], line);
                                if w % 2 == 1 {
                                    e[at + pairs] = line[w - 1];
                                    o[at + pairs] = zero;
                                }
                            }
                            if h % 2 == 1 {
                                // The last row of tiles has no second row of pixels.
                                for b in 2..4 {
                                    split[b * tiles + (th - 1) * tw..(b + 1) * tiles].fill(zero);
                                }
                            }
                            for a in 0..2 {
                                let (e, o) = (
                                    &split[2 * a * tiles..(2 * a + 1) * tiles],
                                    &split[(2 * a + 1) * tiles..(2 * a + 2) * tiles],
                                );
                                let out = |b: usize| (3 * a + b - 1) * tiles..(3 * a + b) * tiles;
                                map2(&mut q[out(1)], e, o, |e, o| e + o);
                                map2(&mut q[out(2)], e, o, |e, o| e - o);
                                map1(&mut q[out(3)], o, |o| zero - o);
                            }
                            // A down the rows: dM[4α+β] = (q0β, q0β + q1β, q0β − q1β, −q1β).
                            let at = img * tiles;
                            for beta in 0..4 {
                                let qrow = |a: usize| match beta {
                                    0 => &split[2 * a * tiles..(2 * a + 1) * tiles],
                                    b => &q[(3 * a + b - 1) * tiles..(3 * a + b) * tiles],
                                };
                                let (q0, q1) = (qrow(0), qrow(1));
                                dmk[beta][at..at + tiles].copy_from_slice(q0);
                                map2(&mut dmk[4 + beta][at..at + tiles], q0, q1, |a, b| a + b);
                                map2(&mut dmk[8 + beta][at..at + tiles], q0, q1, |a, b| a - b);
                                map1(&mut dmk[12 + beta][at..at + tiles], q1, |b| zero - b);
                            }
                        }
                    },
                );
            },
        );
    dm
}

/// The adjoint of [`input_transform`]: `dv` `[16][c][n·tiles]` → the input gradient `[n, c, h, w]`, each
/// tile's `B dV Bᵀ` summed into the zero-padded plane's 4×4 patch (patches overlap by two rows and
/// columns), the padding then dropped; `B` along one axis maps `(v0, v1, v2, v3)` to
/// `(v0, v1 − v2 + v3, v1 + v2 − v0, −v3)`. One task per input plane, on the parity-split layout of
/// [`input_transform`]: each pass one loop over the plane.
fn input_grad_transform<T: Float>(dv: &[T], n: usize, c: usize, t: Tiles) -> Vec<T> {
    let (h, w, th, tw) = (t.h, t.w, t.th, t.tw);
    let tiles = t.count();
    let bt = n * tiles;
    let n1 = tw + 1;
    // Row-of-tiles-major results, one value longer (index 0 holds the value "before" the first tile).
    let ee = th * n1 + 1;
    let gg = th * n1;
    let pp = (th + 1) * n1;
    let zero = T::default();
    let mut dx = zeros::<T>(n * c * h * w);
    dx.par_chunks_mut(h * w).enumerate().for_each_init(
        || vec![zero; 4 * ee + 8 * gg + gg + 4 * pp],
        |scratch, (plane, dst)| {
            let (img, ch) = (plane / c, plane % c);
            simd(
                #[inline(always)]
                || {
                    let (ev, rest) = scratch.split_at_mut(4 * ee);
                    let (wv, rest) = rest.split_at_mut(8 * gg);
                    let (tmp, acc) = rest.split_at_mut(gg);
                    let v = |xi: usize| &dv[(xi * c + ch) * bt + img * tiles..][..tiles];
                    // B along the columns of row α, into wv[2α + cp] (padded column parity cp):
                    // even[j] = v0[j] + (v1 + v2 − v0)[j−1], odd[j] = (v1 − v2 + v3)[j] − v3[j−1].
                    ev.fill(zero);
                    for alpha in 0..4 {
                        // ev[β][1 + ti·n1 + tj] = v_β[ti·tw + tj]; the column past each row's last
                        // tile, and ev[β][0], stay zero.
                        for beta in 0..4 {
                            let e = &mut ev[beta * ee + 1..(beta + 1) * ee];
                            for (d, s) in e
                                .chunks_exact_mut(n1)
                                .zip(v(4 * alpha + beta).chunks_exact(tw))
                            {
                                d[..tw].copy_from_slice(s);
                            }
                        }
                        let e =
                            |beta: usize, shift: usize| &ev[beta * ee + 1 - shift..(beta + 1) * ee];
                        let (we, wo) = wv[2 * alpha * gg..(2 * alpha + 2) * gg].split_at_mut(gg);
                        map3(tmp, e(0, 1), e(1, 1), e(2, 1), |a, b, c| b + c - a);
                        map2(we, e(0, 0), tmp, |a, b| a + b);
                        map3(tmp, e(1, 0), e(2, 0), e(3, 0), |a, b, c| a - b + c);
                        map2(wo, tmp, e(3, 1), |a, b| a - b);
                    }
                    // B down the rows into the padded rows of parity rp: acc[2·rp + cp],
                    // even rows: w0[g] + (w1 + w2 − w0)[g − n1], odd rows: (w1 − w2 + w3)[g] − w3[g − n1].
                    for cp in 0..2 {
                        let wr =
                            |alpha: usize| &wv[(2 * alpha + cp) * gg..(2 * alpha + cp + 1) * gg];
                        let (even, rest) = acc[cp * pp..].split_at_mut(pp);
                        let odd = &mut rest[pp..2 * pp];
                        even[..gg].copy_from_slice(wr(0));
                        even[gg..].fill(zero);
                        update3(&mut even[n1..], wr(1), wr(2), wr(0), |o, a, b, c| {
                            o + (a + b - c)
                        });
                        map3(&mut odd[..gg], wr(1), wr(2), wr(3), |a, b, c| a - b + c);
                        odd[gg..].fill(zero);
                        update1(&mut odd[n1..], wr(3), |o, a| o - a);
                    }
                    // Image pixel (r, x) is padded (r + 1, x + 1): even x at an odd padded column.
                    for (r, line) in dst.chunks_exact_mut(w).enumerate() {
                        let padded = r + 1;
                        let (rp, at) = (padded % 2, padded / 2 * n1);
                        let even = &acc[2 * rp * pp + at..][..n1];
                        let odd = &acc[(2 * rp + 1) * pp + at..][..n1];
                        interleave(line, odd, &even[1..]);
                        if w % 2 == 1 {
                            line[w - 1] = odd[w / 2];
                        }
                    }
                },
            );
        },
    );
    dx
}

/// The adjoint of [`weight_transform`]: `dU` `[16][co][c]` → the weight gradient `[co, c, 3, 3]`,
/// `Gᵀ dU G` with `Gᵀ` along one axis mapping `(a, b, c, d)` to `(a + (b + c)/2, (b − c)/2, (b + c)/2 + d)`.
/// One task per output channel.
fn weight_grad_transform<T: Float>(du: &[T], co: usize, c: usize) -> Vec<T> {
    let zero = T::default();
    let half = T::from_f64(0.5);
    let mut dw = zeros::<T>(co * c * 9);
    dw.par_chunks_mut(9 * c).enumerate().for_each_init(
        || vec![zero; 21 * c],
        |scratch, (k, dwk)| {
            simd(
                #[inline(always)]
                || {
                    let (rowed, taps) = scratch.split_at_mut(12 * c);
                    // Gᵀ along one axis from rows a, b, c, d into out[0..3] (each c values).
                    let gt = |out: &mut [T], [a, b, cc, d]: [&[T]; 4]| {
                        let (o0, rest) = out.split_at_mut(c);
                        let (o1, o2) = rest.split_at_mut(c);
                        map3(o0, a, b, cc, |a, b, c| a + (b + c) * half);
                        map2(o1, b, cc, |b, c| (b - c) * half);
                        map3(&mut o2[..c], b, cc, d, |b, c, d| (b + c) * half + d);
                    };
                    let du = |xi: usize| &du[(xi * co + k) * c..(xi * co + k + 1) * c];
                    // Gᵀ down the rows, for each column β: rowed[3β + i].
                    for beta in 0..4 {
                        gt(
                            &mut rowed[3 * beta * c..3 * (beta + 1) * c],
                            [du(beta), du(4 + beta), du(8 + beta), du(12 + beta)],
                        );
                    }
                    // Gᵀ along the columns: taps[3i + j].
                    for i in 0..3 {
                        let r = |beta: usize| &rowed[(3 * beta + i) * c..(3 * beta + i + 1) * c];
                        gt(
                            &mut taps[3 * i * c..3 * (i + 1) * c],
                            [r(0), r(1), r(2), r(3)],
                        );
                    }
                    for (tap, row) in taps.chunks_exact(c).enumerate() {
                        for (f, &value) in dwk.chunks_exact_mut(9).zip(row) {
                            f[tap] = value;
                        }
                    }
                },
            );
        },
    );
    dw
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::conv2d_with;
    use crate::model::cpu::tests::on_both_paths;
    use candle_core::{DType, Device, Var};

    fn seeded(dims: &[usize], seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = dims.iter().product::<usize>();
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, dims, &Device::Cpu).expect("tensor")
    }

    /// A 3×3 stride-1 padding-1 geometry (the one the op fits).
    fn geometry(channels: usize, height: usize, width: usize) -> Geometry {
        Geometry {
            channels,
            height,
            width,
            k: 3,
            stride: 1,
            padding: 1,
        }
    }

    fn rel(a: &Tensor, b: &Tensor) -> f64 {
        let scale = b
            .abs()
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.max(0))
            .and_then(|t| t.to_scalar::<f64>())
            .expect("scale");
        crate::model::cpu::tests::max_abs_diff(a, b) / scale.max(1e-300)
    }

    /// `(y, dx, dw)` of `Σ conv(x, w) · r` by `f`.
    fn run(
        x: &Tensor,
        w: &Tensor,
        f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> (Tensor, Tensor, Tensor) {
        let xv = Var::from_tensor(x).expect("x");
        let wv = Var::from_tensor(w).expect("w");
        let y = f(xv.as_tensor(), wv.as_tensor()).expect("conv");
        let r = seeded(y.dims(), 99);
        let g = (&y * &r)
            .and_then(|t| t.sum_all())
            .and_then(|l| l.backward())
            .expect("backward");
        let dx = g.get(xv.as_tensor()).expect("dx").clone();
        let dw = g.get(wv.as_tensor()).expect("dw").clone();
        (y, dx, dw)
    }

    /// Forward and both gradients equal the im2col path's in f64 (relative 1e-12) over odd and even
    /// sides down to 1×1, batches of 1–3, channel counts not multiples of 16, and forward chunks of one
    /// tile (every image alone), of a few tiles and of the whole batch; the vectorised code equals the
    /// baseline code to the bit.
    #[test]
    fn winograd_equals_im2col_in_f64_for_every_side_and_chunk() {
        for &(n, c, co, h, w) in &[
            (1usize, 1usize, 1usize, 1usize, 1usize),
            (3, 5, 7, 6, 6),
            (2, 3, 4, 5, 7),
            (1, 17, 19, 9, 4),
            (3, 2, 3, 2, 1),
            (2, 20, 33, 11, 13),
        ] {
            let x = seeded(&[n, c, h, w], 1 + (h * w) as u64);
            let wt = seeded(&[co, c, 3, 3], 2 + (c * co) as u64);
            let want = run(&x, &wt, |x, w| conv2d_with(x, w, (1, 1), false));
            let g = geometry(c, h, w);
            for chunk_tiles in [1, 5, CHUNK_TILES] {
                let op = Winograd {
                    chunk_tiles,
                    ..Winograd::new(g, co)
                };
                let (fast, base) = on_both_paths(|| run(&x, &wt, |x, w| x.apply_op2(w, op)));
                let what = format!("n{n} c{c}→{co} {h}×{w}, chunks of {chunk_tiles} tiles");
                for (name, got, want, base) in [
                    ("forward", &fast.0, &want.0, &base.0),
                    ("input gradient", &fast.1, &want.1, &base.1),
                    ("weight gradient", &fast.2, &want.2, &base.2),
                ] {
                    assert_eq!(got.dims(), want.dims(), "{name} {what}");
                    assert!(rel(got, want) < 1e-12, "{name} {what}: {}", rel(got, want));
                    assert_eq!(
                        got.flatten_all()
                            .and_then(|t| t.to_vec1::<f64>())
                            .expect("v"),
                        base.flatten_all()
                            .and_then(|t| t.to_vec1::<f64>())
                            .expect("v"),
                        "{name} {what}: vectorised and baseline code differ"
                    );
                }
            }
        }
    }

    /// In f32 at a ResNet-like shape the rounding stays within 1e-5 of candle's stock convolution
    /// (relative to the largest value), forward and both gradients, as the issue asks of every op.
    #[test]
    fn winograd_in_f32_stays_near_the_stock_convolution() {
        let x = seeded(&[2, 64, 14, 14], 3).to_dtype(DType::F32).expect("x");
        let wt = (seeded(&[48, 64, 3, 3], 4) * 0.05)
            .and_then(|t| t.to_dtype(DType::F32))
            .expect("w");
        let g = geometry(64, 14, 14);
        let op = Winograd::new(g, 48);
        let f32_run = |f: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>| {
            run(
                &x.to_dtype(DType::F64).expect("x"),
                &wt.to_dtype(DType::F64).expect("w"),
                |x, w| f(&x.to_dtype(DType::F32)?, &w.to_dtype(DType::F32)?)?.to_dtype(DType::F64),
            )
        };
        let fast = f32_run(&|x, w| x.apply_op2(w, op));
        let stock = f32_run(&|x, w| x.conv2d(w, 1, 1, 1, 1));
        assert!(
            rel(&fast.0, &stock.0) < 1e-5,
            "forward {}",
            rel(&fast.0, &stock.0)
        );
        assert!(
            rel(&fast.1, &stock.1) < 1e-5,
            "dx {}",
            rel(&fast.1, &stock.1)
        );
        assert!(
            rel(&fast.2, &stock.2) < 1e-5,
            "dw {}",
            rel(&fast.2, &stock.2)
        );
    }

    /// Where the time of the 3×3 stride-1 shapes of ResNet-50 at 224² batch 8 goes: each transform and
    /// the products (fastest of six runs; the products' GFLOP/s). A benchmark, not a test:
    /// `PARTS=1 benches/conv_layers.sh`.
    #[test]
    #[ignore = "a benchmark: PARTS=1 benches/conv_layers.sh"]
    fn print_winograd_parts() -> Result<()> {
        fn time<R>(mut f: impl FnMut() -> Result<R>) -> Result<f64> {
            let mut best = f64::INFINITY;
            for _ in 0..6 {
                let t = std::time::Instant::now();
                drop(f()?);
                best = best.min(t.elapsed().as_secs_f64());
            }
            Ok(best * 1e3)
        }
        let n = 8;
        println!(
            "shape,weight_tf_ms,input_tf_ms,products_ms,products_gflops,output_tf_ms,grad_tf_ms,dU_products_ms,weight_grad_tf_ms,dV_products_ms,input_grad_tf_ms"
        );
        for (c, side) in [(64usize, 56usize), (128, 28), (256, 14), (512, 7)] {
            let co = c;
            let x: Vec<f32> = (0..n * c * side * side)
                .map(|i| (i % 7) as f32 * 0.1)
                .collect();
            let w: Vec<f32> = (0..co * c * 9).map(|i| (i % 5) as f32 * 0.01).collect();
            let t = Tiles::new(side, side);
            let bt = n * t.count();
            let wtf = time(|| Ok(weight_transform(&w, co, c)))?;
            let u = weight_transform(&w, co, c);
            let mut v = zeros::<f32>(16 * c * bt);
            let itf = time(|| {
                input_transform(&x, 0..n, c, t, &mut v);
                Ok(())
            })?;
            let mut m = zeros::<f32>(16 * co * bt);
            let prod = time(|| products_forward(&u, &v, &mut m, (co, c, bt)))?;
            let mut y = zeros::<f32>(n * co * side * side);
            let otf = time(|| {
                output_transform(&m, co, n, t, &mut y);
                Ok(())
            })?;
            let gtf = time(|| Ok(grad_transform(&y, n, co, t)))?;
            let dm = grad_transform(&y, n, co, t);
            let mut du = zeros::<f32>(16 * co * c);
            let dup = time(|| products_weight_grad(&dm, &v, &mut du, (co, c, bt)))?;
            let wgtf = time(|| Ok(weight_grad_transform(&du, co, c)))?;
            let mut dv = zeros::<f32>(16 * c * bt);
            let dvp = time(|| products_input_grad(&u, &dm, &mut dv, (co, c, bt)))?;
            let igtf = time(|| Ok(input_grad_transform(&dv, n, c, t)))?;
            let flops = 2.0 * 16.0 * (co * c * bt) as f64;
            println!(
                "{c}-{side},{wtf:.2},{itf:.2},{prod:.2},{:.0},{otf:.2},{gtf:.2},{dup:.2},{wgtf:.2},{dvp:.2},{igtf:.2}",
                flops / prod / 1e6
            );
        }
        Ok(())
    }

    /// Asked for one gradient, the backward pass returns that one, equal to the one it returns beside
    /// the other, and nothing when asked for none.
    #[test]
    fn either_gradient_alone_equals_the_pair() -> Result<()> {
        let (n, c, co, h, w) = (2, 3, 5, 7, 6);
        let g = geometry(c, h, w);
        let op = Winograd::new(g, co);
        let (x, wt, dy) = (
            seeded(&[n, c, h, w], 1),
            seeded(&[co, c, 3, 3], 2),
            seeded(&[n, co, h, w], 3),
        );
        let (Some(dx), Some(dw)) = op.backward(&x, &wt, &dy, true, true)? else {
            panic!("both gradients asked for");
        };
        let (Some(dx_alone), None) = op.backward(&x, &wt, &dy, true, false)? else {
            panic!("the input gradient alone");
        };
        let (None, Some(dw_alone)) = op.backward(&x, &wt, &dy, false, true)? else {
            panic!("the weight gradient alone");
        };
        assert!(matches!(
            op.backward(&x, &wt, &dy, false, false)?,
            (None, None)
        ));
        assert_eq!(dx.dims(), [n, c, h, w]);
        assert_eq!(dw.dims(), [co, c, 3, 3]);
        assert_eq!(crate::model::cpu::tests::max_abs_diff(&dx, &dx_alone), 0.0);
        assert_eq!(crate::model::cpu::tests::max_abs_diff(&dw, &dw_alone), 0.0);
        Ok(())
    }

    /// Shapes that do not fit are errors, not panics.
    #[test]
    fn mismatched_shapes_are_errors() {
        let g = geometry(3, 5, 5);
        let op = Winograd::new(g, 4);
        let w = seeded(&[4, 3, 3, 3], 1);
        let bad = seeded(&[1, 2, 5, 5], 2);
        assert!(bad.apply_op2(&w, op).is_err());
        let bad = seeded(&[1, 3, 5, 6], 2);
        assert!(bad.apply_op2(&w, op).is_err());
        let x = seeded(&[1, 3, 5, 5], 2);
        assert!(x.apply_op2(&seeded(&[5, 3, 3, 3], 1), op).is_err());
        let strided = Winograd::new(Geometry { stride: 2, ..g }, 4);
        assert!(x.apply_op2(&w, strided).is_err());
        assert!(x.apply_op2(&w, op).is_ok());
    }
}
