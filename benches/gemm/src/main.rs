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

fn main() {
    let threads = rayon::current_num_threads();
    if std::env::args().any(|a| a == "--split-forward") {
        split_forward_main();
        return;
    }
    if std::env::args().any(|a| a == "--layout") {
        layout_main();
        return;
    }
    if std::env::args().any(|a| a == "--split") {
        split_main();
        return;
    }
    println!("name,m,n,k,seconds,gflops");
    for (name, m, n, k, ta, tb) in shapes() {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0f32; m * n];
        // (column stride, row stride) of each operand as stored.
        let (a_cs, a_rs) = if ta { (m as isize, 1) } else { (1, k as isize) };
        let (b_cs, b_rs) = if tb { (k as isize, 1) } else { (1, n as isize) };
        let reps = (2e9 / (2.0 * (m * n * k) as f64)).clamp(3.0, 200.0) as usize;
        for (orient, dst_cs, dst_rs) in [("", 1isize, n as isize), ("_dstT", m as isize, 1)] {
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..reps {
                    // SAFETY: the buffers are m·k, k·n and m·n long and the strides stay inside them.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            c.as_mut_ptr(),
                            dst_cs,
                            dst_rs,
                            false,
                            a.as_ptr(),
                            a_cs,
                            a_rs,
                            b.as_ptr(),
                            b_cs,
                            b_rs,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            if threads > 1 {
                                gemm::Parallelism::Rayon(threads)
                            } else {
                                gemm::Parallelism::None
                            },
                        );
                    }
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            println!(
                "{name}{orient},{m},{n},{k},{best:.6},{:.1}",
                2.0 * (m * n * k) as f64 / best / 1e9
            );
        }
    }
}

/// The weight-gradient product with its long k split into `parts` chunks computed in parallel (each a
/// `gemm` call with the given parallelism into its own buffer), then summed: what an op can do with
/// candle's safe matmul on strided views.
fn split_k(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    parts: usize,
    inner: gemm::Parallelism,
    dst_t: bool,
) -> Vec<f32> {
    use rayon::prelude::*;
    let chunk = k.div_ceil(parts);
    let partial: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|i| {
            let (k0, k1) = (i * chunk, ((i + 1) * chunk).min(k));
            let mut c = vec![0f32; m * n];
            // SAFETY: a is [m, k] row-major, b stored [n, k] (transposed operand); the views stay inside.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k1 - k0,
                    c.as_mut_ptr(),
                    if dst_t { m as isize } else { 1 },
                    if dst_t { 1 } else { n as isize },
                    false,
                    a[k0..].as_ptr(),
                    1,
                    k as isize,
                    b[k0..].as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    inner,
                );
            }
            c
        })
        .collect();
    let mut out = partial[0].clone();
    for p in &partial[1..] {
        out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
    }
    out
}

fn split_main() {
    for (name, m, n, k) in [
        ("bwd_l1_3x3_dw", 64usize, 576usize, 8 * 3136usize),
        ("bwd_stem7x7_dw", 64, 147, 8 * 12544),
        ("bwd_l2_3x3_dw", 128, 1152, 8 * 784),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        for (label, parts, inner, dst_t) in [
            ("split2_none", 2, gemm::Parallelism::None, false),
            ("split2_rayon", 2, gemm::Parallelism::Rayon(2), false),
            ("split2_none_dstT", 2, gemm::Parallelism::None, true),
            ("split2_rayon_dstT", 2, gemm::Parallelism::Rayon(2), true),
            ("split4_rayon_dstT", 4, gemm::Parallelism::Rayon(2), true),
        ] {
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..10 {
                    std::hint::black_box(split_k(m, n, k, &a, &b, parts, inner, dst_t));
                }
                best = best.min(t.elapsed().as_secs_f64() / 10.0);
            }
            println!(
                "{name}_{label},{m},{n},{k},{best:.6},{:.1}",
                2.0 * (m * n * k) as f64 / best / 1e9
            );
        }
    }
}

fn layout_main() {
    let (m, n, k) = (64usize, 576usize, 8 * 3136usize);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; m * n];
    for (label, dst_cs, dst_rs) in [
        ("dst_rowmajor", 1isize, n as isize),
        ("dst_colmajor", m as isize, 1),
    ] {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for _ in 0..5 {
                // SAFETY: as in split_k; dst m·n either way.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        dst_cs,
                        dst_rs,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        k as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
            best = best.min(t.elapsed().as_secs_f64() / 5.0);
        }
        println!(
            "dw_1thread_{label},{m},{n},{k},{best:.6},{:.1}",
            2.0 * (m * n * k) as f64 / best / 1e9
        );
    }
}

/// The forward products of layers 3 and 4 (k long against a small output) with k split over the
/// threads, each chunk one single-threaded `gemm` call, summed: `--split-forward`.
fn split_forward_main() {
    use rayon::prelude::*;
    for (name, m, n, k) in [
        ("l3_3x3", 256usize, 196usize, 2304usize),
        ("l3_1x1_in", 256, 196, 1024),
        ("l4_3x3", 512, 49, 4608),
        ("l4_1x1_in", 512, 49, 2048),
        ("l2_3x3", 128, 784, 1152),
        ("l1_3x3", 64, 3136, 576),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        for parts in [2usize, 4] {
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..20 {
                    let partial: Vec<Vec<f32>> = (0..parts)
                        .into_par_iter()
                        .map(|i| {
                            let (k0, k1) = (i * k / parts, (i + 1) * k / parts);
                            let mut c = vec![0f32; m * n];
                            // SAFETY: a is [m, k] and b [k, n], row-major; the chunk's views stay inside.
                            unsafe {
                                gemm::gemm(
                                    m,
                                    n,
                                    k1 - k0,
                                    c.as_mut_ptr(),
                                    1,
                                    n as isize,
                                    false,
                                    a[k0..].as_ptr(),
                                    1,
                                    k as isize,
                                    b[k0 * n..].as_ptr(),
                                    1,
                                    n as isize,
                                    0.0,
                                    1.0,
                                    false,
                                    false,
                                    false,
                                    gemm::Parallelism::None,
                                );
                            }
                            c
                        })
                        .collect();
                    let mut out = partial[0].clone();
                    for p in &partial[1..] {
                        out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
                    }
                    std::hint::black_box(out);
                }
                best = best.min(t.elapsed().as_secs_f64() / 20.0);
            }
            println!(
                "{name}_split{parts},{m},{n},{k},{best:.6},{:.1}",
                2.0 * (m * n * k) as f64 / best / 1e9
            );
        }
    }
}
