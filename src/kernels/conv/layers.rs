//! Per-layer timings of ResNet-50's convolutions at 224² batch 8 (forward, and the backward pass's input
//! and weight gradients), for `benches/conv_layers.sh`, which runs PyTorch's on the same shapes beside
//! them: where the network's time against PyTorch's goes, layer by layer. An ignored test that prints (no
//! timed assertion); compiled for tests only.

use candle_core::{Device, Result, Tensor};

use super::{conv2d_im2col, conv2d_im2col_backward};

/// (in channels, out channels, kernel, stride, input side, convolutions of this shape in the network),
/// shared with `benches/conv_layers.py`.
const SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (3, 64, 7, 2, 224, 1),
    (64, 64, 1, 1, 56, 1),
    (64, 64, 3, 1, 56, 3),
    (64, 256, 1, 1, 56, 4),
    (256, 64, 1, 1, 56, 2),
    (256, 128, 1, 1, 56, 1),
    (128, 128, 3, 2, 56, 1),
    (128, 512, 1, 1, 28, 4),
    (256, 512, 1, 2, 56, 1),
    (512, 128, 1, 1, 28, 3),
    (128, 128, 3, 1, 28, 3),
    (512, 256, 1, 1, 28, 1),
    (256, 256, 3, 2, 28, 1),
    (256, 1024, 1, 1, 14, 6),
    (512, 1024, 1, 2, 28, 1),
    (1024, 256, 1, 1, 14, 5),
    (256, 256, 3, 1, 14, 5),
    (1024, 512, 1, 1, 14, 1),
    (512, 512, 3, 2, 14, 1),
    (512, 2048, 1, 1, 7, 3),
    (1024, 2048, 1, 2, 14, 1),
    (2048, 512, 1, 1, 7, 2),
    (512, 512, 3, 1, 7, 2),
];

/// The median of the timings after the first (a warm-up): of 10.
fn median(v: &[f64]) -> f64 {
    let mut v = v[1..].to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "a benchmark: benches/conv_layers.sh"]
fn print_layer_times() -> Result<()> {
    let dev = Device::Cpu;
    // BATCH (default 8): the batch size, e.g. 1 for the inference a reader runs.
    let n = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(8);
    let (mut total_f, mut total_b) = (0.0, 0.0);
    println!("layer,count,forward_ms,backward_ms");
    for &(ci, co, k, s, side, count) in SHAPES {
        let pad = k / 2;
        let x = Tensor::randn(0f32, 1., (n, ci, side, side), &dev)?;
        let w = Tensor::randn(0f32, 0.05, (co, ci, k, k), &dev)?;
        let g = Tensor::randn_like(&conv2d_im2col(&x, &w, s, pad)?, 0., 1.)?;
        // The stem's input needs no gradient, as in training.
        let needs_dx = ci != 3;
        let (mut f, mut b) = (vec![], vec![]);
        for _ in 0..11 {
            let t = std::time::Instant::now();
            drop(conv2d_im2col(&x, &w, s, pad)?);
            f.push(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            drop(conv2d_im2col_backward(
                &x,
                &w,
                (s, pad),
                &g,
                needs_dx,
                true,
            )?);
            b.push(t.elapsed().as_secs_f64());
        }
        let (f, b) = (median(&f), median(&b));
        total_f += f * count as f64;
        total_b += b * count as f64;
        println!(
            "{ci}-{co}-k{k}-s{s}-{side},{count},{:.2},{:.2}",
            f * 1e3,
            b * 1e3
        );
    }
    println!("total (× count),,{:.1},{:.1}", total_f * 1e3, total_b * 1e3);
    Ok(())
}
