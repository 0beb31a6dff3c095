//! Winograd against im2col in f64 and candle's stock convolution in f32, the scalar baseline, each
//! gradient alone, and bad shapes.

use super::*;
use crate::kernels::conv::conv2d_with;
use crate::kernels::cpu::tests::on_both_paths;
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
    crate::kernels::cpu::tests::max_abs_diff(a, b) / scale.max(1e-300)
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
    assert_eq!(
        crate::kernels::cpu::tests::max_abs_diff(&dx, &dx_alone),
        0.0
    );
    assert_eq!(
        crate::kernels::cpu::tests::max_abs_diff(&dw, &dw_alone),
        0.0
    );
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
