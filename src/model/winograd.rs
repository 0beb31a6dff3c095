//! 3×3 stride-1 convolutions (padding 1: thirteen of ResNet-50's sixteen 3×3 convolutions) by Winograd's
//! minimal filtering algorithm F(2×2, 3×3) (Lavin & Gray, "Fast algorithms for convolutional neural
//! networks", CVPR 2016), forward and both gradients.
//!
//! Each 2×2 block of output pixels ("tile") of one output channel is `Aᵀ [Σ_c U_c ⊙ V_c] A`, where
//! `V_c = Bᵀ d_c B` transforms the 4×4 input patch the tile sees in channel c and `U_c = G g_c Gᵀ` the
//! 3×3 filter. For each of the 16 transformed positions ξ the sum over channels is a matrix product,
//! `M_ξ = U_ξ · V_ξ` (`[co, c]` by `[c, tiles]`), so the convolution is 16 products with 4 multiplies per
//! output pixel and channel pair where im2col's product has 9: 2.25 times less arithmetic, for three
//! memory-bound transforms (each a pass over at most four times the input or output, where im2col's
//! column matrix is nine times the input). The backward pass is the exact adjoint of these linear
//! steps: the output gradient transformed by `A · Aᵀ` (`dM`), the input gradient `Bᵀᵀ (U_ξᵀ · dM_ξ) Bᵀ`
//! scattered back over the overlapping patches, and the weight gradient `Gᵀ (dM_ξ · V_ξᵀ) G` summed
//! over the tiles by the product itself.
//!
//! The transforms' coefficients are 0, ±1 and ±½ (exact in binary floating point); the rounding differs
//! from a direct sum by a few units in the last place, which the tests bound against candle's stock
//! convolution and finite differences in f64. oneDNN, which PyTorch calls on the CPU, computes these
//! convolutions directly; Winograd is the algorithm cuDNN and NNPACK offer for them.
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
//! No `unsafe` here: the products are [`super::gemm`]'s.

use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
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
        let (x, weight, grad) = (x.detach(), weight.detach(), grad.detach().contiguous()?);
        let dw = if needs_dw {
            let dw = x
                .contiguous()?
                .apply_op2_no_bwd(&grad, &WeightGrad(*self))?;
            Some(dw.reshape(weight.shape())?)
        } else {
            None
        };
        let dx = if needs_dx {
            Some(
                weight
                    .contiguous()?
                    .apply_op2_no_bwd(&grad, &InputGrad(*self))?,
            )
        } else {
            None
        };
        Ok((dx, dw))
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
        // M_ξ = U_ξ · V_ξ: [co, c] by [c, bt].
        m.par_chunks_mut(co * bt)
            .enumerate()
            .try_for_each(|(xi, dst)| {
                gemm::products_into(
                    dst,
                    (1, co, bt, c),
                    MatRef::row_major(&u, xi * co * c, c),
                    MatRef::row_major(v, xi * c * bt, bt),
                    Threads::One,
                )
            })?;
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

/// `out = (a0 − a2, a1 + a2, a2 − a1, a1 − a3)` element by element (`Bᵀ` along one axis), each output a
/// slice of the same length as the inputs.
#[inline(always)]
fn bt_rows<T: Float>(a: [&[T]; 4], out: [&mut [T]; 4]) {
    let [o0, o1, o2, o3] = out;
    let len = o0.len();
    let (a0, a1, a2, a3) = (&a[0][..len], &a[1][..len], &a[2][..len], &a[3][..len]);
    let (o1, o2, o3) = (&mut o1[..len], &mut o2[..len], &mut o3[..len]);
    for j in 0..len {
        o0[j] = a0[j] - a2[j];
        o1[j] = a1[j] + a2[j];
        o2[j] = a2[j] - a1[j];
        o3[j] = a1[j] - a3[j];
    }
}

/// `buf` as blocks of `rows` rows of `len` values each (one block per ξ), regrouped by row: item `r`
/// holds row `r` of every block, so that one task can write its row of each ξ.
fn rows_of_blocks<T>(buf: &mut [T], rows: usize, len: usize) -> Vec<Vec<&mut [T]>> {
    let mut out: Vec<Vec<&mut [T]>> = (0..rows).map(|_| Vec::with_capacity(16)).collect();
    for block in buf.chunks_mut(rows * len) {
        for (r, row) in block.chunks_mut(len).enumerate() {
            out[r].push(row);
        }
    }
    out
}

/// The first four of `rows`, reborrowed (empty slices for missing ones).
#[inline(always)]
fn four<'a, T>(rows: &'a mut [&mut [T]]) -> [&'a mut [T]; 4] {
    let mut it = rows.iter_mut();
    std::array::from_fn(|_| match it.next() {
        Some(r) => &mut **r,
        None => &mut [],
    })
}

/// The first four consecutive rows of `len` values in `b`.
#[inline(always)]
fn four_rows<T>(b: &[T], len: usize) -> [&[T]; 4] {
    std::array::from_fn(|i| &b[i * len..(i + 1) * len])
}

/// Splits `buf` into `N` consecutive slices of `len` values.
#[inline(always)]
fn rows_mut<T, const N: usize>(buf: &mut [T], len: usize) -> [&mut [T]; N] {
    let mut rest = &mut buf[..N * len];
    std::array::from_fn(|_| {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        rest = tail;
        head
    })
}

/// The input transform of images `images` of `x` (`[n, c, h, w]`): `v` `[16][c][bt]` with `bt` the
/// chunk's tiles, `v[4α+β][ch][tile] = (Bᵀ d B)[α][β]` for the tile's 4×4 patch `d` of the zero-padded
/// plane (rows `2·ti − 1 ..`, columns `2·tj − 1 ..` of the image). One task per channel. Each patch row is
/// split into its even and odd padded columns first, so that the column pass runs on contiguous values.
fn input_transform<T: Float>(x: &[T], images: Range<usize>, c: usize, t: Tiles, v: &mut [T]) {
    let (h, w, tw) = (t.h, t.w, t.tw);
    let tiles = t.count();
    let bt = images.len() * tiles;
    let n1 = tw + 1;
    let zero = T::default();
    rows_of_blocks(v, c, bt).into_par_iter().enumerate().for_each_init(
        || vec![zero; 16 * n1],
        |scratch, (ch, mut vc)| {
            simd(
                #[inline(always)]
                || {
                    let (split, rowed) = scratch.split_at_mut(8 * n1);
                    for (i, img) in images.clone().enumerate() {
                        let src = &x[(img * c + ch) * h * w..(img * c + ch + 1) * h * w];
                        for ti in 0..t.th {
                            // Padded rows 2ti..2ti+4 (image rows 2ti−1..2ti+3): even padded columns
                            // (image columns 2j−1) in the first four rows of `split`, odd ones (2j) after.
                            let (even, odd) = split.split_at_mut(4 * n1);
                            for a in 0..4 {
                                let e = &mut even[a * n1..(a + 1) * n1];
                                let o = &mut odd[a * n1..(a + 1) * n1];
                                e.fill(zero);
                                o.fill(zero);
                                let Some(r) = (2 * ti + a).checked_sub(1).filter(|&r| r < h) else {
                                    continue;
                                };
                                let line = &src[r * w..(r + 1) * w];
                                for (j, pair) in line.chunks_exact(2).enumerate() {
                                    o[j] = pair[0];
                                    e[j + 1] = pair[1];
                                }
                                if w % 2 == 1 {
                                    o[w / 2] = line[w - 1];
                                }
                            }
                            // Bᵀ down the rows, for the even and the odd columns.
                            let (te, to) = rowed.split_at_mut(4 * n1);
                            bt_rows(four_rows(&split[..4 * n1], n1), rows_mut(te, n1));
                            bt_rows(four_rows(&split[4 * n1..], n1), rows_mut(to, n1));
                            // Bᵀ along the columns: tile j's columns are e[j], o[j], e[j+1], o[j+1].
                            let at = i * tiles + ti * tw;
                            for alpha in 0..4 {
                                let e = &te[alpha * n1..(alpha + 1) * n1];
                                let o = &to[alpha * n1..(alpha + 1) * n1];
                                let [d0, d1, d2, d3] = four(&mut vc[4 * alpha..]);
                                let (d0, d1, d2, d3) = (
                                    &mut d0[at..at + tw],
                                    &mut d1[at..at + tw],
                                    &mut d2[at..at + tw],
                                    &mut d3[at..at + tw],
                                );
                                let (e0, e1, o0, o1) = (&e[..tw], &e[1..], &o[..tw], &o[1..]);
                                for j in 0..tw {
                                    d0[j] = e0[j] - e1[j];
                                    d1[j] = o0[j] + e1[j];
                                    d2[j] = e1[j] - o0[j];
                                    d3[j] = o0[j] - o1[j];
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
/// `y[tile's 2×2] = Aᵀ m A` (the parts of the last tiles outside an odd side dropped). One task per
/// output plane.
fn output_transform<T: Float>(m: &[T], co: usize, images: usize, t: Tiles, y: &mut [T]) {
    let (h, w, tw) = (t.h, t.w, t.tw);
    let tiles = t.count();
    let bt = images * tiles;
    let zero = T::default();
    y.par_chunks_mut(h * w).enumerate().for_each_init(
        || vec![zero; 12 * tw],
        |z, (p, dst)| {
            let (i, k) = (p / co, p % co);
            simd(
                #[inline(always)]
                || {
                    for ti in 0..t.th {
                        let at = i * tiles + ti * tw;
                        let row = |xi: usize| &m[(xi * co + k) * bt + at..][..tw];
                        // Aᵀ along the columns: z[2α] and z[2α+1] from m[4α..4α+4].
                        let (zs, ys) = z.split_at_mut(8 * tw);
                        for alpha in 0..4 {
                            let (m0, m1, m2, m3) = (
                                row(4 * alpha),
                                row(4 * alpha + 1),
                                row(4 * alpha + 2),
                                row(4 * alpha + 3),
                            );
                            let [z0, z1] = rows_mut::<T, 2>(&mut zs[2 * alpha * tw..], tw);
                            for j in 0..tw {
                                z0[j] = m0[j] + m1[j] + m2[j];
                                z1[j] = m1[j] - m2[j] - m3[j];
                            }
                        }
                        // Aᵀ down the rows: ys = [y00, y01, y10, y11] (output row, column parity).
                        let [y00, y01, y10, y11] = rows_mut::<T, 4>(ys, tw);
                        let r = |a: usize, b: usize| &zs[(2 * a + b) * tw..(2 * a + b + 1) * tw];
                        for (b, (top, bottom)) in [(y00, y10), (y01, y11)].into_iter().enumerate() {
                            let (z0, z1, z2, z3) = (r(0, b), r(1, b), r(2, b), r(3, b));
                            for j in 0..tw {
                                top[j] = z0[j] + z1[j] + z2[j];
                                bottom[j] = z1[j] - z2[j] - z3[j];
                            }
                        }
                        let ys = &z[8 * tw..];
                        for a in 0..2 {
                            let r = 2 * ti + a;
                            if r >= h {
                                break;
                            }
                            let (even, odd) = (&ys[2 * a * tw..], &ys[(2 * a + 1) * tw..]);
                            let line = &mut dst[r * w..(r + 1) * w];
                            for (j, pair) in line.chunks_exact_mut(2).enumerate() {
                                pair[0] = even[j];
                                pair[1] = odd[j];
                            }
                            if w % 2 == 1 {
                                line[w - 1] = even[w / 2];
                            }
                        }
                    }
                },
            );
        },
    );
}

/// `(a, (a + b + c)/2, (a − b + c)/2, c)` element by element (`G` along one axis).
#[inline(always)]
fn g_rows<T: Float>(a: [&[T]; 3], out: [&mut [T]; 4]) {
    let half = T::from_f64(0.5);
    let [o0, o1, o2, o3] = out;
    let len = o0.len();
    let (a0, a1, a2) = (&a[0][..len], &a[1][..len], &a[2][..len]);
    let (o1, o2, o3) = (&mut o1[..len], &mut o2[..len], &mut o3[..len]);
    for j in 0..len {
        o0[j] = a0[j];
        o1[j] = (a0[j] + a1[j] + a2[j]) * half;
        o2[j] = (a0[j] - a1[j] + a2[j]) * half;
        o3[j] = a2[j];
    }
}

/// The weight transform: `weight` `[co, c, 3, 3]` → `U` `[16][co][c]`, `U[4α+β][k][ch] = (G g Gᵀ)[α][β]`.
/// One task per output channel; its filters first regrouped tap by tap so that the arithmetic runs on
/// contiguous values.
fn weight_transform<T: Float>(weight: &[T], co: usize, c: usize) -> Vec<T> {
    let mut u = zeros::<T>(co * 16 * c);
    let zero = T::default();
    rows_of_blocks(&mut u, co, c).into_par_iter().enumerate().for_each_init(
        || vec![zero; 21 * c],
        |scratch, (k, mut uk)| {
            simd(
                #[inline(always)]
                || {
                    let (taps, rowed) = scratch.split_at_mut(9 * c);
                    let filters = &weight[k * 9 * c..(k + 1) * 9 * c];
                    for (ch, f) in filters.chunks_exact(9).enumerate() {
                        for (tap, &value) in f.iter().enumerate() {
                            taps[tap * c + ch] = value;
                        }
                    }
                    // G down the rows, for each filter column j: rowed[4j + α].
                    for j in 0..3 {
                        let tap = |i: usize| &taps[(3 * i + j) * c..(3 * i + j + 1) * c];
                        g_rows(
                            [tap(0), tap(1), tap(2)],
                            rows_mut(&mut rowed[4 * j * c..], c),
                        );
                    }
                    // G along the columns.
                    for alpha in 0..4 {
                        let col = |j: usize| &rowed[(4 * j + alpha) * c..(4 * j + alpha + 1) * c];
                        g_rows(
                            [col(0), col(1), col(2)],
                            four(&mut uk[4 * alpha..]),
                        );
                    }
                },
            );
        },
    );
    u
}

/// The output gradient transformed (the adjoint of [`output_transform`]): `dy` `[n, co, h, w]` → `dM`
/// `[co][16][n·tiles]`, `dM[k][4α+β][tile] = (A dY Aᵀ)[α][β]` for the tile's 2×2 gradient (zeros outside
/// an odd side). One task per output channel.
fn grad_transform<T: Float>(dy: &[T], n: usize, co: usize, t: Tiles) -> Vec<T> {
    let (h, w, tw) = (t.h, t.w, t.tw);
    let tiles = t.count();
    let bt = n * tiles;
    let zero = T::default();
    let mut dm = take_buffer::<T>(co * 16 * bt);
    rows_of_blocks(&mut dm, co, bt).into_par_iter().enumerate().for_each_init(
        || vec![zero; 12 * tw],
        |scratch, (k, mut dmk)| {
            simd(
                #[inline(always)]
                || {
                    let (split, q) = scratch.split_at_mut(4 * tw);
                    for img in 0..n {
                        let src = &dy[(img * co + k) * h * w..(img * co + k + 1) * h * w];
                        for ti in 0..t.th {
                            // Output rows 2ti and 2ti+1 split into even and odd columns:
                            // split = [even row 0, odd row 0, even row 1, odd row 1].
                            split.fill(zero);
                            for a in 0..2 {
                                let r = 2 * ti + a;
                                if r >= h {
                                    break;
                                }
                                let line = &src[r * w..(r + 1) * w];
                                let (e, o) = split[2 * a * tw..(2 * a + 2) * tw].split_at_mut(tw);
                                for (j, pair) in line.chunks_exact(2).enumerate() {
                                    e[j] = pair[0];
                                    o[j] = pair[1];
                                }
                                if w % 2 == 1 {
                                    e[w / 2] = line[w - 1];
                                }
                            }
                            // A along the columns: q[4a + β] = (e, e + o, e − o, −o) of row a.
                            for a in 0..2 {
                                let (e, o) = (&split[2 * a * tw..], &split[(2 * a + 1) * tw..]);
                                let [q0, q1, q2, q3] = rows_mut::<T, 4>(&mut q[4 * a * tw..], tw);
                                for j in 0..tw {
                                    q0[j] = e[j];
                                    q1[j] = e[j] + o[j];
                                    q2[j] = e[j] - o[j];
                                    q3[j] = zero - o[j];
                                }
                            }
                            // A down the rows: dM[4α+β] = (q0β, q0β + q1β, q0β − q1β, −q1β).
                            let at = img * tiles + ti * tw;
                            for beta in 0..4 {
                                let (q0, q1) = (&q[beta * tw..][..tw], &q[(4 + beta) * tw..][..tw]);
                                for alpha in 0..4 {
                                    let d = &mut dmk[4 * alpha + beta][at..at + tw];
                                    match alpha {
                                        0 => d.copy_from_slice(q0),
                                        1 => (0..tw).for_each(|j| d[j] = q0[j] + q1[j]),
                                        2 => (0..tw).for_each(|j| d[j] = q0[j] - q1[j]),
                                        _ => (0..tw).for_each(|j| d[j] = zero - q1[j]),
                                    }
                                }
                            }
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
/// columns), the padding then dropped. One task per input plane, accumulating in even and odd padded
/// columns as the forward transform splits them.
fn input_grad_transform<T: Float>(dv: &[T], n: usize, c: usize, t: Tiles) -> Vec<T> {
    let (h, w, tw) = (t.h, t.w, t.tw);
    let tiles = t.count();
    let bt = n * tiles;
    let n1 = tw + 1;
    let rows = 2 * t.th + 2;
    let zero = T::default();
    let mut dx = zeros::<T>(n * c * h * w);
    dx.par_chunks_mut(h * w).enumerate().for_each_init(
        || vec![zero; (2 * rows + 8) * n1 + tw],
        |scratch, (p, dst)| {
            let (img, ch) = (p / c, p % c);
            simd(
                #[inline(always)]
                || {
                    let (acc, rest) = scratch.split_at_mut(2 * rows * n1);
                    let (wcol, tmp) = rest.split_at_mut(8 * n1);
                    let tmp = &mut tmp[..tw];
                    acc.fill(zero);
                    // acc: padded row r's even columns at [2r·n1..], odd ones at [(2r+1)·n1..].
                    for ti in 0..t.th {
                        let at = img * tiles + ti * tw;
                        let v = |xi: usize| &dv[(xi * c + ch) * bt + at..][..tw];
                        // B along the columns of row α: even padded columns wcol[2α], odd wcol[2α+1].
                        for alpha in 0..4 {
                            let (v0, v1, v2, v3) = (
                                v(4 * alpha),
                                v(4 * alpha + 1),
                                v(4 * alpha + 2),
                                v(4 * alpha + 3),
                            );
                            let [we, wo] = rows_mut::<T, 2>(&mut wcol[2 * alpha * n1..], n1);
                            we[..tw].copy_from_slice(v0);
                            we[tw] = zero;
                            for j in 0..tw {
                                tmp[j] = v1[j] + v2[j] - v0[j];
                            }
                            for j in 0..tw {
                                we[j + 1] += tmp[j];
                            }
                            for j in 0..tw {
                                wo[j] = v1[j] - v2[j] + v3[j];
                            }
                            wo[tw] = zero;
                            for j in 0..tw {
                                wo[j + 1] = wo[j + 1] - v3[j];
                            }
                        }
                        // B down the rows into padded rows 2ti..2ti+4:
                        // (w0, w1 − w2 + w3, w1 + w2 − w0, −w3).
                        for parity in 0..2 {
                            let wr = |alpha: usize| &wcol[(2 * alpha + parity) * n1..][..n1];
                            let (w0, w1, w2, w3) = (wr(0), wr(1), wr(2), wr(3));
                            let [a0, a1, a2, a3] = std::array::from_fn::<_, 4, _>(|a| {
                                (2 * (2 * ti + a) + parity) * n1
                            });
                            for j in 0..n1 {
                                acc[a0 + j] += w0[j];
                            }
                            for j in 0..n1 {
                                acc[a1 + j] += w1[j] - w2[j] + w3[j];
                            }
                            for j in 0..n1 {
                                acc[a2 + j] += w1[j] + w2[j] - w0[j];
                            }
                            for j in 0..n1 {
                                acc[a3 + j] = acc[a3 + j] - w3[j];
                            }
                        }
                    }
                    // Image pixel (r, x) is padded (r + 1, x + 1): even x at an odd padded column.
                    for r in 0..h {
                        let even = &acc[2 * (r + 1) * n1..][..n1];
                        let odd = &acc[(2 * (r + 1) + 1) * n1..][..n1];
                        let line = &mut dst[r * w..(r + 1) * w];
                        for (j, pair) in line.chunks_exact_mut(2).enumerate() {
                            pair[0] = odd[j];
                            pair[1] = even[j + 1];
                        }
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

/// `(a + (b + c)/2, (b − c)/2, (b + c)/2 + d)` element by element (`Gᵀ` along one axis).
#[inline(always)]
fn gt_rows<T: Float>(a: [&[T]; 4], out: [&mut [T]; 3]) {
    let half = T::from_f64(0.5);
    let [o0, o1, o2] = out;
    let len = o0.len();
    let (a0, a1, a2, a3) = (&a[0][..len], &a[1][..len], &a[2][..len], &a[3][..len]);
    let (o1, o2) = (&mut o1[..len], &mut o2[..len]);
    for j in 0..len {
        let s = (a1[j] + a2[j]) * half;
        o0[j] = a0[j] + s;
        o1[j] = (a1[j] - a2[j]) * half;
        o2[j] = s + a3[j];
    }
}

/// The adjoint of [`weight_transform`]: `dU` `[16][co][c]` → the weight gradient `[co, c, 3, 3]`,
/// `Gᵀ dU G`. One task per output channel.
fn weight_grad_transform<T: Float>(du: &[T], co: usize, c: usize) -> Vec<T> {
    let zero = T::default();
    let mut dw = zeros::<T>(co * c * 9);
    dw.par_chunks_mut(9 * c).enumerate().for_each_init(
        || vec![zero; 21 * c],
        |scratch, (k, dwk)| {
            simd(
                #[inline(always)]
                || {
                    let (rowed, taps) = scratch.split_at_mut(12 * c);
                    let du = |xi: usize| &du[(xi * co + k) * c..(xi * co + k + 1) * c];
                    // Gᵀ down the rows, for each column β: rowed[3β + i].
                    for beta in 0..4 {
                        gt_rows(
                            [du(beta), du(4 + beta), du(8 + beta), du(12 + beta)],
                            rows_mut(&mut rowed[3 * beta * c..], c),
                        );
                    }
                    // Gᵀ along the columns: taps[3i + j].
                    for i in 0..3 {
                        let r = |beta: usize| &rowed[(3 * beta + i) * c..(3 * beta + i + 1) * c];
                        gt_rows(
                            [r(0), r(1), r(2), r(3)],
                            rows_mut(&mut taps[3 * i * c..], c),
                        );
                    }
                    for (ch, f) in dwk.chunks_exact_mut(9).enumerate() {
                        for (tap, value) in f.iter_mut().enumerate() {
                            *value = taps[tap * c + ch];
                        }
                    }
                },
            );
        },
    );
    dw
}

/// The weight gradient, `(x [n, c, h, w], grad [n, co, h, w])` → `[co, c·9]`: `dU_ξ = dM_ξ · V_ξᵀ` (the
/// sum over the batch's tiles is the products' own), then `Gᵀ dU G`. No backward pass of its own.
#[derive(Debug, Clone, Copy)]
struct WeightGrad(Winograd);

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "sacro-conv3x3-winograd-weight-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = &self.0;
        let g = &op.geometry;
        let dims = xl.shape().dims4()?;
        op.check(dims, op.out_channels * g.rows())?;
        let (n, c, h, w) = dims;
        let co = op.out_channels;
        if gl.shape().dims() != [n, co, h, w] {
            candle_core::bail!("Winograd conv2d weight gradient: gradient {gl:?} for input {xl:?}");
        }
        let t = Tiles::new(h, w);
        let bt = n * t.count();
        let dw = by_float!(xs.dtype(), "Winograd conv2d weight gradient", T => {
            let x = contiguous::<T>(xs, xl, "Winograd conv2d weight gradient: input")?;
            let dy = contiguous::<T>(gs, gl, "Winograd conv2d weight gradient: gradient")?;
            let dm = grad_transform(dy, n, co, t);
            let mut v = zeros::<T>(16 * c * bt);
            input_transform(x, 0..n, c, t, &mut v);
            let mut du = zeros::<T>(16 * co * c);
            // dU_ξ = dM_ξ · V_ξᵀ: [co, bt] by [bt, c].
            du.par_chunks_mut(co * c).enumerate().try_for_each(|(xi, dst)| {
                gemm::products_into(
                    dst,
                    (1, co, c, bt),
                    MatRef::row_major(&dm, xi * co * bt, bt),
                    MatRef::transposed(&v, xi * c * bt, bt),
                    Threads::One,
                )
            })?;
            keep_buffer(dm);
            T::wrap(weight_grad_transform(&du, co, c))
        });
        Ok((dw, Shape::from((co, g.rows()))))
    }
}

/// The input gradient, `(weight [co, c, 3, 3], grad [n, co, h, w])` → `[n, c, h, w]`: `dV_ξ = U_ξᵀ ·
/// dM_ξ`, scattered back by the adjoint of the input transform. No backward pass of its own.
#[derive(Debug, Clone, Copy)]
struct InputGrad(Winograd);

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "sacro-conv3x3-winograd-input-grad"
    }

    fn cpu_fwd(
        &self,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = &self.0;
        let g = &op.geometry;
        let co = op.out_channels;
        let (n, gco, h, w) = gl.shape().dims4()?;
        op.check((n, g.channels, h, w), wl.shape().elem_count())?;
        if gco != co {
            candle_core::bail!("Winograd conv2d input gradient: gradient {gl:?} for {co} channels");
        }
        let c = g.channels;
        let t = Tiles::new(h, w);
        let bt = n * t.count();
        let dx = by_float!(gs.dtype(), "Winograd conv2d input gradient", T => {
            let weight = contiguous::<T>(ws, wl, "Winograd conv2d input gradient: weight")?;
            let dy = contiguous::<T>(gs, gl, "Winograd conv2d input gradient: gradient")?;
            let u = weight_transform(weight, co, c);
            let dm = grad_transform(dy, n, co, t);
            let mut dv = zeros::<T>(16 * c * bt);
            // dV_ξ = U_ξᵀ · dM_ξ: [c, co] by [co, bt].
            dv.par_chunks_mut(c * bt).enumerate().try_for_each(|(xi, dst)| {
                gemm::products_into(
                    dst,
                    (1, c, bt, co),
                    MatRef::transposed(&u, xi * co * c, c),
                    MatRef::row_major(&dm, xi * co * bt, bt),
                    Threads::One,
                )
            })?;
            keep_buffer(dm);
            T::wrap(input_grad_transform(&dv, n, c, t))
        });
        Ok((dx, Shape::from((n, c, h, w))))
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
            let g = Geometry {
                channels: c,
                height: h,
                width: w,
                k: 3,
                stride: 1,
                padding: 1,
            };
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
                        got.flatten_all().and_then(|t| t.to_vec1::<f64>()).expect("v"),
                        base.flatten_all().and_then(|t| t.to_vec1::<f64>()).expect("v"),
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
        let g = Geometry {
            channels: 64,
            height: 14,
            width: 14,
            k: 3,
            stride: 1,
            padding: 1,
        };
        let op = Winograd::new(g, 48);
        let f32_run = |f: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>| {
            let (y, dx, dw) = run(
                &x.to_dtype(DType::F64).expect("x"),
                &wt.to_dtype(DType::F64).expect("w"),
                |x, w| {
                    let y = f(&x.to_dtype(DType::F32)?, &w.to_dtype(DType::F32)?)?;
                    y.to_dtype(DType::F64)
                },
            );
            (y, dx, dw)
        };
        let fast = f32_run(&|x, w| x.apply_op2(w, op));
        let stock = f32_run(&|x, w| x.conv2d(w, 1, 1, 1, 1));
        assert!(rel(&fast.0, &stock.0) < 1e-5, "forward {}", rel(&fast.0, &stock.0));
        assert!(rel(&fast.1, &stock.1) < 1e-5, "dx {}", rel(&fast.1, &stock.1));
        assert!(rel(&fast.2, &stock.2) < 1e-5, "dw {}", rel(&fast.2, &stock.2));
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
            let x: Vec<f32> = (0..n * c * side * side).map(|i| (i % 7) as f32 * 0.1).collect();
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
            let prod = time(|| {
                m.par_chunks_mut(co * bt).enumerate().try_for_each(|(xi, dst)| {
                    gemm::products_into(
                        dst,
                        (1, co, bt, c),
                        MatRef::row_major(&u, xi * co * c, c),
                        MatRef::row_major(&v, xi * c * bt, bt),
                        Threads::One,
                    )
                })
            })?;
            let mut y = zeros::<f32>(n * co * side * side);
            let otf = time(|| {
                output_transform(&m, co, n, t, &mut y);
                Ok(())
            })?;
            let gtf = time(|| Ok(grad_transform(&y, n, co, t)))?;
            let dm = grad_transform(&y, n, co, t);
            let mut du = zeros::<f32>(16 * co * c);
            let dup = time(|| {
                du.par_chunks_mut(co * c).enumerate().try_for_each(|(xi, dst)| {
                    gemm::products_into(
                        dst,
                        (1, co, c, bt),
                        MatRef::row_major(&dm, xi * co * bt, bt),
                        MatRef::transposed(&v, xi * c * bt, bt),
                        Threads::One,
                    )
                })
            })?;
            let wgtf = time(|| Ok(weight_grad_transform(&du, co, c)))?;
            let mut dv = zeros::<f32>(16 * c * bt);
            let dvp = time(|| {
                dv.par_chunks_mut(c * bt).enumerate().try_for_each(|(xi, dst)| {
                    gemm::products_into(
                        dst,
                        (1, c, bt, co),
                        MatRef::transposed(&u, xi * co * c, c),
                        MatRef::row_major(&dm, xi * co * bt, bt),
                        Threads::One,
                    )
                })
            })?;
            let igtf = time(|| Ok(input_grad_transform(&dv, n, c, t)))?;
            let flops = 2.0 * 16.0 * (co * c * bt) as f64;
            println!(
                "{c}-{side},{wtf:.2},{itf:.2},{prod:.2},{:.0},{otf:.2},{gtf:.2},{dup:.2},{wgtf:.2},{dvp:.2},{igtf:.2}",
                flops / prod / 1e6
            );
        }
        Ok(())
    }

    /// Shapes that do not fit are errors, not panics.
    #[test]
    fn mismatched_shapes_are_errors() {
        let g = Geometry {
            channels: 3,
            height: 5,
            width: 5,
            k: 3,
            stride: 1,
            padding: 1,
        };
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

