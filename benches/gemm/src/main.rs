//! GFLOP/s of `gemm::gemm` (as candle calls it: `Parallelism::Rayon(threads)`) on the matrix products of
//! ResNet-50's convolutions: the forward products at 224² batch 1 (im2col layout, y[co, p] = W[co, k]·cols[k, p])
//! and the backward products of a training step at 224² batch 8 (weight gradient G·colsᵀ, input gradient
//! Wᵀ·G), operands laid out as Sacro's convolution op has them. Prints CSV: name,m,n,k,seconds,gflops.

use std::time::Instant;

/// (name, m, n, k, lhs transposed, rhs transposed): lhs is stored [m, k] (or [k, m] when transposed),
/// rhs [k, n] (or [n, k]).
fn shapes() -> Vec<(&'static str, usize, usize, usize, bool, bool)> {
    let fwd = [
        ("stem7x7", 64, 12544, 147),
        ("l1_1x1_in", 64, 3136, 256),
        ("l1_3x3", 64, 3136, 576),
        ("l1_1x1_out", 256, 3136, 64),
        ("l2_1x1_in", 128, 784, 512),
        ("l2_3x3", 128, 784, 1152),
        ("l2_1x1_out", 512, 784, 128),
        ("l3_1x1_in", 256, 196, 1024),
        ("l3_3x3", 256, 196, 2304),
        ("l3_1x1_out", 1024, 196, 256),
        ("l4_1x1_in", 512, 49, 2048),
        ("l4_3x3", 512, 49, 4608),
        ("l4_1x1_out", 2048, 49, 512),
    ];
    let mut v: Vec<_> = fwd
        .iter()
        .map(|&(s, m, n, k)| (s, m, n, k, false, false))
        .collect();
    // Backward of the 3×3 convolutions at batch 8 (pixels·8 = np): dW = G[co, np]·colsᵀ, dcols = Wᵀ·G.
    for (s, co, np, kk) in [
        ("bwd_l1_3x3", 64, 8 * 3136, 576),
        ("bwd_l2_3x3", 128, 8 * 784, 1152),
        ("bwd_l3_3x3", 256, 8 * 196, 2304),
        ("bwd_l4_3x3", 512, 8 * 49, 4608),
        ("bwd_stem7x7", 64, 8 * 12544, 147),
    ] {
        v.push((leak(format!("{s}_dw")), co, kk, np, false, true));
        v.push((leak(format!("{s}_dx")), kk, np, co, true, false));
    }
    // Backward of the 1×1 convolutions, per image (Conv1x1: dW_img = G_img[co, p]·X_imgᵀ).
    for (s, co, c, p) in [
        ("bwd_l1_1x1_out", 256, 64, 3136),
        ("bwd_l1_1x1_in", 64, 256, 3136),
        ("bwd_l2_1x1_out", 512, 128, 784),
        ("bwd_l2_1x1_in", 128, 512, 784),
        ("bwd_l3_1x1_out", 1024, 256, 196),
        ("bwd_l3_1x1_in", 256, 1024, 196),
        ("bwd_l4_1x1_out", 2048, 512, 49),
        ("bwd_l4_1x1_in", 512, 2048, 49),
    ] {
        v.push((leak(format!("{s}_dw_img")), co, c, p, false, true));
    }
    v
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// An operand as stored: its elements and (column stride, row stride).
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    cs: isize,
    rs: isize,
}

impl<'a> Operand<'a> {
    /// A matrix stored row-major with rows `ld` apart, or (`transposed`) stored as its transpose: its
    /// columns `ld` apart.
    fn new(data: &'a [f32], ld: usize, transposed: bool) -> Self {
        let (cs, rs) = if transposed {
            (ld as isize, 1)
        } else {
            (1, ld as isize)
        };
        Self { data, cs, rs }
    }
}

/// `dst = lhs · rhs` for an m × n × k product through `gemm::gemm`, as candle calls it; `dst` has the
/// strides `dst_strides` (column, row). Every operand must hold the product's elements at its strides.
fn product(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_cs, dst_rs): (isize, isize),
    lhs: Operand,
    rhs: Operand,
    parallelism: gemm::Parallelism,
) {
    let reach = |o: &Operand, rows: usize, cols: usize| {
        (rows.max(1) - 1) as isize * o.rs + (cols.max(1) - 1) as isize * o.cs
    };
    assert!(
        reach(&lhs, m, k) < lhs.data.len() as isize && reach(&rhs, k, n) < rhs.data.len() as isize
    );
    assert!(((m - 1) as isize * dst_rs + (n - 1) as isize * dst_cs) < dst.len() as isize);
    // SAFETY: checked just above, every element the product reads or writes lies inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs,
            dst_rs,
            false,
            lhs.data.as_ptr(),
            lhs.cs,
            lhs.rs,
            rhs.data.as_ptr(),
            rhs.cs,
            rhs.rs,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The best of five rounds of `reps` calls of `f`: seconds per call.
fn best_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

/// The CSV line of one measurement.
fn report(name: &str, (m, n, k): (usize, usize, usize), seconds: f64) {
    println!(
        "{name},{m},{n},{k},{seconds:.6},{:.1}",
        2.0 * (m * n * k) as f64 / seconds / 1e9
    );
}

/// Operands of an m × n × k product filled with small repeating values.
fn operands(m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    (
        (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect(),
        (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect(),
    )
}

/// `--faer`: the same products through faer's safe `matmul` (a trial, 2026-12-05: not adopted, see
/// `results_2026-12-05-faer.txt`).
fn faer_mode() {
    use faer::linalg::matmul::matmul;
    use faer::{Accum, MatMut, MatRef, Par};
    let threads = rayon::current_num_threads();
    println!("name,m,n,k,seconds,gflops");
    for (name, m, n, k, lt, rt) in shapes() {
        let (lhs, rhs) = operands(m, n, k);
        let mut dst = vec![0f32; m * n];
        let reps = ((2e9 / (2.0 * (m * n * k) as f64)) as usize).clamp(3, 200);
        let secs = best_seconds(reps, || {
            let a = if lt {
                MatRef::from_row_major_slice(&lhs, k, m).transpose()
            } else {
                MatRef::from_row_major_slice(&lhs, m, k)
            };
            let b = if rt {
                MatRef::from_row_major_slice(&rhs, n, k).transpose()
            } else {
                MatRef::from_row_major_slice(&rhs, k, n)
            };
            let c = MatMut::from_row_major_slice_mut(&mut dst, m, n);
            matmul(c, Accum::Replace, a, b, 1.0f32, Par::rayon(threads));
        });
        report(name, (m, n, k), secs);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--faer") {
        faer_mode();
        return;
    }
    if std::env::args().any(|a| a == "--split-forward") {
        split_forward_main();
        return;
    }
    if std::env::args().any(|a| a == "--split") {
        split_main();
        return;
    }
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    println!("name,m,n,k,seconds,gflops");
    for (name, m, n, k, ta, tb) in shapes() {
        let (a, b) = operands(m, n, k);
        let mut c = vec![0f32; m * n];
        let lhs = Operand::new(&a, if ta { m } else { k }, ta);
        let rhs = Operand::new(&b, if tb { k } else { n }, tb);
        let reps = (2e9 / (2.0 * (m * n * k) as f64)).clamp(3.0, 200.0) as usize;
        for (orient, dst_strides) in [("", (1isize, n as isize)), ("_dstT", (m as isize, 1))] {
            let best = best_seconds(reps, || {
                product((m, n, k), &mut c, dst_strides, lhs, rhs, parallelism)
            });
            report(&format!("{name}{orient}"), (m, n, k), best);
        }
    }
}

/// `lhs · rhs` with k split into `parts` chunks computed in parallel (each a `gemm` call with the given
/// parallelism into its own buffer, the output transposed when `dst_t`), then summed: what an op can do
/// with candle's safe matmul on strided views. `lhs` is stored [m, k]; `rhs` [n, k] when `rhs_t` (a
/// weight gradient's colsᵀ), else [k, n] (a forward product's columns).
fn split_k(
    (m, n, k): (usize, usize, usize),
    (a, b): (&[f32], &[f32]),
    (rhs_t, dst_t): (bool, bool),
    parts: usize,
    inner: gemm::Parallelism,
) -> Vec<f32> {
    use rayon::prelude::*;
    let partial: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|i| {
            let (k0, k1) = (i * k / parts, (i + 1) * k / parts);
            let mut c = vec![0f32; m * n];
            let dst_strides = if dst_t {
                (m as isize, 1)
            } else {
                (1, n as isize)
            };
            let lhs = Operand::new(&a[k0..], k, false);
            let rhs = if rhs_t {
                Operand::new(&b[k0..], k, true)
            } else {
                Operand::new(&b[k0 * n..], n, false)
            };
            product((m, n, k1 - k0), &mut c, dst_strides, lhs, rhs, inner);
            c
        })
        .collect();
    let mut out = partial[0].clone();
    for p in &partial[1..] {
        out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
    }
    out
}

/// The weight gradients' long-k products split over the threads, both output orientations: `--split`.
fn split_main() {
    for (name, m, n, k) in [
        ("bwd_l1_3x3_dw", 64usize, 576usize, 8 * 3136usize),
        ("bwd_stem7x7_dw", 64, 147, 8 * 12544),
        ("bwd_l2_3x3_dw", 128, 1152, 8 * 784),
    ] {
        let (a, b) = operands(m, n, k);
        for (label, parts, inner, dst_t) in [
            ("split2_none", 2, gemm::Parallelism::None, false),
            ("split2_rayon", 2, gemm::Parallelism::Rayon(2), false),
            ("split2_none_dstT", 2, gemm::Parallelism::None, true),
            ("split2_rayon_dstT", 2, gemm::Parallelism::Rayon(2), true),
            ("split4_rayon_dstT", 4, gemm::Parallelism::Rayon(2), true),
        ] {
            let best = best_seconds(10, || {
                std::hint::black_box(split_k((m, n, k), (&a, &b), (true, dst_t), parts, inner));
            });
            report(&format!("{name}_{label}"), (m, n, k), best);
        }
    }
}

/// The forward products of layers 3 and 4 (k long against a small output) with k split over the
/// threads, each chunk one single-threaded `gemm` call, summed: `--split-forward`.
fn split_forward_main() {
    for (name, m, n, k) in [
        ("l3_3x3", 256usize, 196usize, 2304usize),
        ("l3_1x1_in", 256, 196, 1024),
        ("l4_3x3", 512, 49, 4608),
        ("l4_1x1_in", 512, 49, 2048),
        ("l2_3x3", 128, 784, 1152),
        ("l1_3x3", 64, 3136, 576),
    ] {
        let (a, b) = operands(m, n, k);
        for parts in [2usize, 4] {
            let best = best_seconds(20, || {
                std::hint::black_box(split_k(
                    (m, n, k),
                    (&a, &b),
                    (false, false),
                    parts,
                    gemm::Parallelism::None,
                ));
            });
            report(&format!("{name}_split{parts}"), (m, n, k), best);
        }
    }
}
