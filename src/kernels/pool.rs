//! Pooling with gradients: ResNet's 3×3 stride-2 max pool (candle's `max_pool2d` has no backward when
//! kernel ≠ stride), and global average / max pooling.
//!
//! The max pool has two implementations, chosen with the convolutions' path ([`super::conv::conv_path`]):
//! on the CPU, one op ([`MaxPool3x3S2`]) whose backward sends each output's gradient to the first maximum
//! of its window, as PyTorch does, and keeps nothing but the input; elsewhere (GPUs, `SACRO_CONV=stock`),
//! strided slices and elementwise maxima in candle's own operations, whose graph keeps about twenty
//! copies of the input (1.5 GB of a 768² batch of 2).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{Float, by_float, contiguous, simd, zeros};
use super::path::{ConvPath, conv_path};

/// 3×3 max pool, stride 2, padding 1 (torchvision's stem pool), differentiable. Padding never wins a
/// maximum.
pub fn max_pool_3x3_s2(x: &Tensor) -> Result<Tensor> {
    max_pool_3x3_s2_on(conv_path(), x)
}

/// [`max_pool_3x3_s2`] on the given path (the op only where it applies: CPU, f32 or f64), for tests
/// that compare the two.
pub fn max_pool_3x3_s2_on(path: ConvPath, x: &Tensor) -> Result<Tensor> {
    let op = path == ConvPath::Im2Col
        && x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64);
    if op {
        x.dims4()?;
        x.contiguous()?.apply_op1(MaxPool3x3S2)
    } else {
        max_pool_by_slices(x)
    }
}

/// The graph version: the input padded with its own minimum minus one, nine strided windows, eight
/// elementwise maxima (on ties candle splits the gradient).
fn max_pool_by_slices(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
    let floor = (x.min_all()?.detach() - 1.0)?;
    let padded = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    // Replace the zero border by `floor`: a mask of the interior.
    let mask = Tensor::ones((h, w), x.dtype(), x.device())?
        .pad_with_zeros(0, 1, 1)?
        .pad_with_zeros(1, 1, 1)?;
    let border = (mask.ones_like()? - &mask)?;
    let padded = padded.broadcast_add(&border.broadcast_mul(&floor)?)?;
    let mut out: Option<Tensor> = None;
    for dy in 0..3 {
        for dx in 0..3 {
            // Rows dy, dy+2, …, dy+2(oh-1); columns likewise.
            let rows = padded.narrow(2, dy, 2 * (oh - 1) + 1)?;
            let win = rows.narrow(3, dx, 2 * (ow - 1) + 1)?;
            let win = strided(&strided(&win, 2, oh)?, 3, ow)?;
            out = Some(match out {
                None => win,
                Some(o) => o.maximum(&win)?,
            });
        }
    }
    out.ok_or_else(|| candle_core::Error::Msg("empty pooling window".into()))
}

/// Every second element along `dim`, `n` of them (index_select keeps gradients).
fn strided(x: &Tensor, dim: usize, n: usize) -> Result<Tensor> {
    let idx: Vec<u32> = (0..n as u32).map(|i| 2 * i).collect();
    let idx = Tensor::new(idx.as_slice(), x.device())?;
    x.contiguous()?.index_select(&idx, dim)
}

/// The 3×3 stride-2 padding-1 max pool of `[n, c, h, w]` as one op.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool3x3S2;

/// Its backward pass: `(x, dy)` → `dx`.
#[derive(Debug, Clone, Copy)]
struct MaxPoolGrad;

/// Output side for an input side (stride 2, padding 1, kernel 3).
fn pooled(side: usize) -> usize {
    (side + 2 - 3) / 2 + 1
}

/// Whether `later`, met after `best` in a window's row-major order, takes its place: when greater, or a NaN
/// where `best` is none (PyTorch's rule: the first maximum, a NaN winning).
#[inline(always)]
#[allow(clippy::eq_op)] // x != x: NaN
fn replaces<T: Float>(best: T, later: T) -> bool {
    later > best || (later != later && best == best)
}

/// Index in `plane` (`h × w`) of the first maximum of output `(oi, oj)`'s window, in row-major order; a
/// NaN wins (PyTorch's rule).
#[inline]
fn argmax<T: Float>(plane: &[T], h: usize, w: usize, oi: usize, oj: usize) -> usize {
    let rows = (2 * oi).saturating_sub(1)..(2 * oi + 2).min(h);
    let cols = (2 * oj).saturating_sub(1)..(2 * oj + 2).min(w);
    let mut best = rows.start * w + cols.start;
    for i in rows {
        for j in cols.clone() {
            if replaces(plane[best], plane[i * w + j]) {
                best = i * w + j;
            }
        }
    }
    best
}

/// `best`, or `later` where it [`replaces`] it.
#[inline(always)]
fn pick<T: Float>(best: T, later: T) -> T {
    if replaces(best, later) { later } else { best }
}

/// The pooled plane `out` (`oh × ow`) of `plane` (`h × w`): the value at [`argmax`] of each window,
/// computed row by row: each input row's maxima over the windows' three columns ([`row_maxima`]), then
/// those of the window's rows combined in order. The first maximum of the earliest row that holds one is
/// the window's first in row-major order, so the values are those of `argmax` to the bit (the sign of a
/// zero, a NaN's payload); without its per-pixel branches, which the processor mispredicts.
fn pool_plane<T: Float>(plane: &[T], h: usize, w: usize, out: &mut [T], ow: usize) {
    let mut even = vec![T::default(); w.div_ceil(2)];
    let mut odd = vec![T::default(); w / 2];
    let mut maxima = vec![T::default(); ow];
    for (oi, orow) in out.chunks_exact_mut(ow).enumerate() {
        for (k, r) in ((2 * oi).saturating_sub(1)..(2 * oi + 2).min(h)).enumerate() {
            let line = &plane[r * w..(r + 1) * w];
            for (j, e) in even.iter_mut().enumerate() {
                *e = line[2 * j];
            }
            for (j, o) in odd.iter_mut().enumerate() {
                *o = line[2 * j + 1];
            }
            row_maxima(&even, &odd, &mut maxima);
            if k == 0 {
                orow.copy_from_slice(&maxima);
            } else {
                for (o, &m) in orow.iter_mut().zip(&maxima) {
                    *o = pick(*o, m);
                }
            }
        }
    }
}

/// For one input row split into its even and odd columns, each output column's window maximum: window
/// `j` holds columns 2j − 1, 2j, 2j + 1, i.e. `odd[j − 1]`, `even[j]`, `odd[j]` where they exist
/// (`maxima.len() == even.len()`).
fn row_maxima<T: Float>(even: &[T], odd: &[T], maxima: &mut [T]) {
    let ow = maxima.len();
    maxima[0] = match odd.first() {
        Some(&o) => pick(even[0], o),
        None => even[0],
    };
    if let Some(middle) = maxima.get_mut(1..odd.len()) {
        for ((m, (&a, &b)), &c) in middle
            .iter_mut()
            .zip(odd.iter().zip(&even[1..]))
            .zip(&odd[1..])
        {
            *m = pick(pick(a, b), c);
        }
    }
    // An odd width: the last window has no column right of its centre.
    if even.len() > odd.len() && ow >= 2 {
        maxima[ow - 1] = pick(odd[ow - 2], even[ow - 1]);
    }
}

/// `(n, c, h, w)` of a 4-D layout, checked to have at least one pixel.
fn dims4(l: &Layout, what: &str) -> Result<(usize, usize, usize, usize)> {
    let d = l.shape().dims4()?;
    if d.2 == 0 || d.3 == 0 {
        candle_core::bail!("{what}: empty input {:?}", l.dims());
    }
    Ok(d)
}

impl CustomOp1 for MaxPool3x3S2 {
    fn name(&self) -> &'static str {
        "sacro-max-pool-3x3-s2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(l, "max pool")?;
        let (oh, ow) = (pooled(h), pooled(w));
        let out = by_float!(s.dtype(), "max pool", T => {
            let x = contiguous::<T>(s, l, "max pool: input")?;
            let mut y = zeros::<T>(n * c * oh * ow);
            y.par_chunks_mut(oh * ow).enumerate().for_each(|(p, out)| {
                let plane = &x[p * h * w..(p + 1) * h * w];
                simd(
                    #[inline(always)]
                    || pool_plane(plane, h, w, out, ow),
                );
            });
            T::wrap(y)
        });
        Ok((out, Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            x.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &MaxPoolGrad)?,
        ))
    }
}

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "sacro-max-pool-3x3-s2-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = dims4(l1, "max pool gradient")?;
        let (oh, ow) = (pooled(h), pooled(w));
        if l2.dims() != [n, c, oh, ow] {
            candle_core::bail!(
                "max pool gradient: {:?} for an input {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let out = by_float!(s1.dtype(), "max pool gradient", T => {
            let x = contiguous::<T>(s1, l1, "max pool gradient: input")?;
            let dy = contiguous::<T>(s2, l2, "max pool gradient: gradient")?;
            let mut dx = zeros::<T>(x.len());
            dx.par_chunks_mut(h * w).enumerate().for_each(|(p, dplane)| {
                let plane = &x[p * h * w..(p + 1) * h * w];
                let g = &dy[p * oh * ow..(p + 1) * oh * ow];
                for oi in 0..oh {
                    for oj in 0..ow {
                        dplane[argmax(plane, h, w, oi, oj)] += g[oi * ow + oj];
                    }
                }
            });
            T::wrap(dx)
        });
        Ok((out, l1.shape().clone()))
    }
}

/// Global average pool: `[n, c, h, w]` → `[n, c]`.
pub fn global_avg(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus1)?.mean(D::Minus1)
}

/// Global max pool: `[n, c, h, w]` → `[n, c]`.
pub fn global_max(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(2)?.max(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The op and the graph version agree on values and gradients where no window has a tie (odd and
    /// even sizes, one-pixel images), and the op's gradient goes to the first maximum of a tied window.
    #[test]
    fn the_op_equals_the_graph_version_and_breaks_ties_as_pytorch() {
        let dev = Device::Cpu;
        for (i, &(h, w)) in [(7usize, 6usize), (8, 8), (1, 1), (2, 5), (9, 3)]
            .iter()
            .enumerate()
        {
            // Distinct values (a permutation), so that no window has a tie.
            let len = 2 * 3 * h * w;
            let data: Vec<f64> = (0..len)
                .map(|k| ((k * 7919 + i) % len) as f64 - 5.0)
                .collect();
            let x = Var::from_vec(data, (2, 3, h, w), &dev).unwrap();
            let dy = Tensor::randn(0f64, 1.0, (2, 3, pooled(h), pooled(w)), &dev).unwrap();
            let run = |path| {
                let y = max_pool_3x3_s2_on(path, x.as_tensor()).unwrap();
                let g = (&y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
                (y, g.get(&x).unwrap().clone())
            };
            let (y1, g1) = run(ConvPath::Im2Col);
            let (y2, g2) = run(ConvPath::Stock);
            let diff = |a: &Tensor, b: &Tensor| -> f64 {
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            assert_eq!(diff(&y1, &y2), 0.0, "{h}x{w} values");
            assert!(diff(&g1, &g2) < 1e-12, "{h}x{w} gradients");
        }
        // A window of equal values: the whole gradient goes to its first (top-left) pixel.
        let x = Var::from_vec(vec![1f32; 4], (1, 1, 2, 2), &dev).unwrap();
        let y = max_pool_3x3_s2_on(ConvPath::Im2Col, x.as_tensor()).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(g, [1.0, 0.0, 0.0, 0.0]);
    }

    /// The row-by-row forward pass gives the value at `argmax` of every window (the previous forward
    /// pass, and the backward pass's rule) to the bit, on planes full of ties, signed zeros and NaNs, for
    /// odd and even sides down to one pixel.
    #[test]
    fn rows_then_columns_equal_the_first_maximum_to_the_bit() {
        use rand::{Rng, SeedableRng};
        let values = [-0.0f32, 0.0, 1.0, -1.0, f32::NAN, -f32::NAN, 1.0, 0.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (h, w) in [
            (1, 1),
            (1, 2),
            (2, 1),
            (3, 3),
            (7, 6),
            (8, 9),
            (6, 7),
            (2, 5),
        ] {
            for _ in 0..20 {
                let plane: Vec<f32> = (0..h * w)
                    .map(|_| values[rng.random_range(0..values.len())])
                    .collect();
                let (oh, ow) = (pooled(h), pooled(w));
                let mut out = vec![0f32; oh * ow];
                pool_plane(&plane, h, w, &mut out, ow);
                for oi in 0..oh {
                    for oj in 0..ow {
                        let want = plane[argmax(&plane, h, w, oi, oj)];
                        assert_eq!(
                            out[oi * ow + oj].to_bits(),
                            want.to_bits(),
                            "{h}×{w} ({oi}, {oj}) of {plane:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn matches_a_direct_max_pool_and_has_a_gradient() {
        let dev = Device::Cpu;
        let data: Vec<f32> = (0..2 * 3 * 7 * 6)
            .map(|i| ((i * 37) % 23) as f32 - 11.0)
            .collect();
        let x = Var::from_vec(data.clone(), (2, 3, 7, 6), &dev).unwrap();
        let y = max_pool_3x3_s2(x.as_tensor()).unwrap();
        assert_eq!(y.dims(), &[2, 3, 4, 3]);
        // Direct reference: padded with -inf.
        let at = |n: usize, c: usize, i: i64, j: i64| -> f32 {
            if i < 0 || j < 0 || i >= 7 || j >= 6 {
                f32::NEG_INFINITY
            } else {
                data[((n * 3 + c) * 7 + i as usize) * 6 + j as usize]
            }
        };
        let got = y.to_vec3::<f32>().ok();
        let y4: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let _ = got;
        let mut k = 0;
        for n in 0..2 {
            for c in 0..3 {
                for oi in 0..4i64 {
                    for oj in 0..3i64 {
                        let mut m = f32::NEG_INFINITY;
                        for di in 0..3 {
                            for dj in 0..3 {
                                m = m.max(at(n, c, 2 * oi - 1 + di, 2 * oj - 1 + dj));
                            }
                        }
                        assert_eq!(y4[k], m);
                        k += 1;
                    }
                }
            }
        }
        // Gradient of the sum: each output's maximum gets 1 (unique maxima in this input per window
        // are not guaranteed, so check the total mass and non-negativity).
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(g.iter().all(|&v| v >= 0.0));
        assert!(
            (g.iter().sum::<f32>() - y4.len() as f32).abs() < 1e-3,
            "each window routes one unit of gradient"
        );
    }
}
