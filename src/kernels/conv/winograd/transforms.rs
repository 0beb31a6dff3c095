//! Winograd F(2×2, 3×3)'s transforms: input tiles `Bᵀ d B`, outputs `Aᵀ m A`, filters `G g Gᵀ`, and the
//! adjoints of all three for the backward pass, each a loop over whole planes.

use std::ops::Range;

use rayon::prelude::*;

use super::Tiles;
use super::products::rows_of_blocks;
use crate::kernels::cpu::{Float, simd, take_buffer, zeros};

// The element-wise loops below each write one slice, passed as its own `&mut` argument to an
// always-inlined helper, so that the compiler knows the output aliases none of the inputs and needs no
// run-time overlap checks to vectorise the loop.

/// `out[j] = f(a[j])`.
#[inline(always)]
pub(super) fn map1<T: Float>(out: &mut [T], a: &[T], f: impl Fn(T) -> T) {
    let a = &a[..out.len()];
    for (o, &a) in out.iter_mut().zip(a) {
        *o = f(a);
    }
}

/// `out[j] = f(a[j], b[j])`.
#[inline(always)]
pub(super) fn map2<T: Float>(out: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    let (a, b) = (&a[..out.len()], &b[..out.len()]);
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = f(a, b);
    }
}

/// `out[j] = f(a[j], b[j], c[j])`.
#[inline(always)]
pub(super) fn map3<T: Float>(out: &mut [T], a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T) {
    let (a, b, c) = (&a[..out.len()], &b[..out.len()], &c[..out.len()]);
    for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(a, b, c);
    }
}

/// `out[j] = f(out[j], a[j])`.
#[inline(always)]
pub(super) fn update1<T: Float>(out: &mut [T], a: &[T], f: impl Fn(T, T) -> T) {
    let a = &a[..out.len()];
    for (o, &a) in out.iter_mut().zip(a) {
        *o = f(*o, a);
    }
}

/// `out[j] = f(out[j], a[j], b[j], c[j])`.
#[inline(always)]
pub(super) fn update3<T: Float>(
    out: &mut [T],
    a: &[T],
    b: &[T],
    c: &[T],
    f: impl Fn(T, T, T, T) -> T,
) {
    let (a, b, c) = (&a[..out.len()], &b[..out.len()], &c[..out.len()]);
    for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(*o, a, b, c);
    }
}

/// `even[j] = line[2j]`, `odd[j] = line[2j + 1]` for the `even.len()` pairs of `line`.
#[inline(always)]
pub(super) fn deinterleave<T: Float>(even: &mut [T], odd: &mut [T], line: &[T]) {
    let odd = &mut odd[..even.len()];
    let line = &line[..2 * even.len()];
    for ((e, o), pair) in even.iter_mut().zip(odd).zip(line.chunks_exact(2)) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// `line[2j] = even[j]`, `line[2j + 1] = odd[j]` for the pairs of `line`.
#[inline(always)]
pub(super) fn interleave<T: Float>(line: &mut [T], even: &[T], odd: &[T]) {
    let pairs = line.len() / 2;
    let (even, odd) = (&even[..pairs], &odd[..pairs]);
    for ((pair, &e), &o) in line.chunks_exact_mut(2).zip(even).zip(odd) {
        pair[0] = e;
        pair[1] = o;
    }
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
pub(super) fn input_transform<T: Float>(
    x: &[T],
    images: Range<usize>,
    c: usize,
    t: Tiles,
    v: &mut [T],
) {
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
pub(super) fn output_transform<T: Float>(m: &[T], co: usize, images: usize, t: Tiles, y: &mut [T]) {
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
pub(super) fn weight_transform<T: Float>(weight: &[T], co: usize, c: usize) -> Vec<T> {
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
pub(super) fn grad_transform<T: Float>(dy: &[T], n: usize, co: usize, t: Tiles) -> Vec<T> {
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
pub(super) fn input_grad_transform<T: Float>(dv: &[T], n: usize, c: usize, t: Tiles) -> Vec<T> {
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
pub(super) fn weight_grad_transform<T: Float>(du: &[T], co: usize, c: usize) -> Vec<T> {
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
