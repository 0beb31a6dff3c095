//! Sacro's convolution (`src/model/conv.rs`: im2col, 1×1 as a plain product, and 3×3 stride-1 padding-1
//! by Winograd F(2×2, 3×3), `src/model/winograd.rs`) against candle's stock `conv2d` (forward, input
//! gradient, weight gradient) over a grid of shapes — kernels 1/3/7, strides 1/2, paddings 0/1/3, odd sizes, batch 1
//! and 3, channel counts that are not multiples of 16 — and against central finite differences in f64.
//!
//! Candle's stock backward takes the output padding of `conv_transpose2d` from the height only, so it fails
//! on inputs whose height and width leave different remainders under the stride (e.g. 9×10 at stride 2);
//! the stock comparison uses sizes it handles, and the finite-difference test covers a 9×8 input.

use candle_core::{DType, Device, Tensor, Var};
use sacro::kernels::conv::conv2d_im2col;

mod common;
use common::{max_rel, seeded};

/// Forward and both gradients of `loss = Σ conv(x, w) · r` by both paths.
fn both(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> [(Tensor, Tensor); 3] {
    let run = |fast: bool| {
        let xv = Var::from_tensor(x).expect("x");
        let wv = Var::from_tensor(w).expect("w");
        let y = if fast {
            conv2d_im2col(xv.as_tensor(), wv.as_tensor(), stride, padding)
        } else {
            xv.as_tensor().conv2d(wv.as_tensor(), padding, stride, 1, 1)
        }
        .expect("conv");
        let r = seeded(y.dims(), 99, y.dtype());
        let loss = (&y * &r).and_then(|t| t.sum_all()).expect("loss");
        let g = loss.backward().expect("backward");
        (
            y,
            g.get(xv.as_tensor()).expect("dx").clone(),
            g.get(wv.as_tensor()).expect("dw").clone(),
        )
    };
    let (a, b) = (run(true), run(false));
    [(a.0, b.0), (a.1, b.1), (a.2, b.2)]
}

#[test]
fn im2col_convolution_equals_candle_stock_over_a_grid_of_shapes() {
    let mut checked = 0;
    for (k, strides, paddings) in [
        (1usize, &[1usize, 2][..], &[0usize][..]),
        (3, &[1, 2], &[0, 1]),
        (7, &[2], &[3]),
    ] {
        for &stride in strides {
            for &padding in paddings {
                // The third and fourth have long products (k ≥ 128 and ≥ 2·max(m, n)), split in two
                // halves: a 1×1 convolution's forward product (k: the 150 input channels) and its input
                // gradient's (k: the 160 output channels). The last, at stride 1, has outputs of at least
                // 128 pixels per image: its forward pass runs image by image.
                for (n, c, co, h, w) in [
                    (1usize, 3usize, 5usize, 13usize, 11usize),
                    (3, 17, 6, 9, 11),
                    (3, 150, 6, 5, 7),
                    (2, 17, 160, 5, 7),
                    (2, 5, 4, 17, 19),
                ] {
                    if h + 2 * padding < k || w + 2 * padding < k {
                        continue;
                    }
                    let x = seeded(&[n, c, h, w], 1 + checked, DType::F32);
                    let wt = seeded(&[co, c, k, k], 50 + checked, DType::F32);
                    let [y, dx, dw] = both(&x, &wt, stride, padding);
                    let what = format!("k{k} s{stride} p{padding} n{n} c{c}→{co} {h}×{w}");
                    assert_eq!(y.0.dims(), y.1.dims(), "{what}");
                    assert!(
                        max_rel(&y.0, &y.1) < 1e-5,
                        "forward {what}: {}",
                        max_rel(&y.0, &y.1)
                    );
                    assert!(
                        max_rel(&dx.0, &dx.1) < 1e-5,
                        "input grad {what}: {}",
                        max_rel(&dx.0, &dx.1)
                    );
                    assert!(
                        max_rel(&dw.0, &dw.1) < 1e-5,
                        "weight grad {what}: {}",
                        max_rel(&dw.0, &dw.1)
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 35);
}

#[test]
fn im2col_gradients_equal_finite_differences_in_f64() {
    // The 2×3 images are so small that some kernel taps see nothing but padding (candle's stock backward
    // fails on the 7×7 one with a shape mismatch, so they are checked here and not against it).
    for (k, stride, padding, [ih, iw]) in [
        (3usize, 2usize, 1usize, [9usize, 8usize]),
        (1, 2, 0, [9, 8]),
        (1, 1, 0, [9, 8]),
        (7, 2, 3, [9, 8]),
        (3, 1, 1, [9, 8]),
        (7, 2, 3, [2, 3]),
        (3, 2, 1, [2, 3]),
        (3, 1, 1, [2, 3]),
        (3, 1, 1, [5, 7]),
        (3, 1, 1, [1, 1]),
    ] {
        let x = seeded(&[2, 3, ih, iw], 7, DType::F64);
        let w = seeded(&[4, 3, k, k], 8, DType::F64);
        let loss_of = |x: &Tensor, w: &Tensor| -> f64 {
            let y = conv2d_im2col(x, w, stride, padding).expect("conv");
            let r = seeded(y.dims(), 99, DType::F64);
            (&y * &r)
                .and_then(|t| t.sum_all())
                .and_then(|t| t.to_scalar::<f64>())
                .expect("loss")
        };
        let xv = Var::from_tensor(&x).expect("x");
        let wv = Var::from_tensor(&w).expect("w");
        let y = conv2d_im2col(xv.as_tensor(), wv.as_tensor(), stride, padding).expect("conv");
        let stock = x.conv2d(&w, padding, stride, 1, 1).expect("stock conv");
        assert!(
            max_rel(&y, &stock) < 1e-12,
            "forward k{k} s{stride} {ih}×{iw}: {}",
            max_rel(&y, &stock)
        );
        let r = seeded(y.dims(), 99, DType::F64);
        let g = (&y * &r)
            .and_then(|t| t.sum_all())
            .and_then(|l| l.backward())
            .expect("backward");
        let dx: Vec<f64> = g
            .get(xv.as_tensor())
            .expect("dx")
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("dx");
        let dw: Vec<f64> = g
            .get(wv.as_tensor())
            .expect("dw")
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("dw");
        let eps = 1e-6;
        let numeric = |t: &Tensor, i: usize, on_x: bool| -> f64 {
            let mut v: Vec<f64> = t.flatten_all().and_then(|t| t.to_vec1()).expect("v");
            let bump = |v: &mut Vec<f64>, d: f64| {
                v[i] += d;
                Tensor::from_vec(v.clone(), t.dims(), &Device::Cpu).expect("t")
            };
            let plus = bump(&mut v, eps);
            let minus = bump(&mut v, -2.0 * eps);
            let (lp, lm) = if on_x {
                (loss_of(&plus, &w), loss_of(&minus, &w))
            } else {
                (loss_of(&x, &plus), loss_of(&x, &minus))
            };
            (lp - lm) / (2.0 * eps)
        };
        for i in (0..dx.len()).step_by(7) {
            let n = numeric(&x, i, true);
            assert!(
                (n - dx[i]).abs() < 1e-6 * (1.0 + n.abs()),
                "k{k} s{stride} {ih}×{iw}: dx[{i}] {} vs {n}",
                dx[i]
            );
        }
        for i in (0..dw.len()).step_by(3) {
            let n = numeric(&w, i, false);
            assert!(
                (n - dw[i]).abs() < 1e-6 * (1.0 + n.abs()),
                "k{k} s{stride} {ih}×{iw}: dw[{i}] {} vs {n}",
                dw[i]
            );
        }
    }
}

/// A constant input (the network's image batch) gets no gradient, which spares the stem its input
/// gradient; the weight's gradient is the same as when the input is a variable.
#[test]
fn a_constant_input_gets_no_gradient_and_the_same_weight_gradient() {
    for (k, stride, padding) in [(7usize, 2usize, 3usize), (3, 1, 1), (1, 1, 0), (1, 2, 0)] {
        let x = seeded(&[2, 3, 9, 8], 3, DType::F32);
        let w = seeded(&[4, 3, k, k], 4, DType::F32);
        let weight_grad = |x: &Tensor| {
            let wv = Var::from_tensor(&w).expect("w");
            let y = conv2d_im2col(x, wv.as_tensor(), stride, padding).expect("conv");
            let r = seeded(y.dims(), 99, DType::F32);
            let g = (&y * &r)
                .and_then(|t| t.sum_all())
                .and_then(|l| l.backward())
                .expect("backward");
            (
                g.get(x).is_some(),
                g.get(wv.as_tensor()).expect("dw").clone(),
            )
        };
        let (constant_has_grad, dw_constant) = weight_grad(&x);
        let xv = Var::from_tensor(&x).expect("x");
        let (variable_has_grad, dw_variable) = weight_grad(xv.as_tensor());
        assert!(
            !constant_has_grad,
            "k{k} s{stride}: a constant got a gradient"
        );
        assert!(variable_has_grad, "k{k} s{stride}: a variable got none");
        assert!(
            max_rel(&dw_constant, &dw_variable) < 1e-6,
            "k{k} s{stride}: weight gradients differ"
        );
    }
}

#[test]
fn bad_geometry_is_an_error_not_a_panic() {
    let x = seeded(&[1, 3, 4, 4], 1, DType::F32);
    let w = seeded(&[2, 3, 7, 7], 2, DType::F32);
    assert!(
        conv2d_im2col(&x, &w, 1, 0).is_err(),
        "kernel larger than the padded input"
    );
    let w = seeded(&[2, 4, 3, 3], 2, DType::F32);
    assert!(conv2d_im2col(&x, &w, 1, 1).is_err(), "channel mismatch");
    let w = seeded(&[2, 3, 3, 3], 2, DType::F32);
    assert!(conv2d_im2col(&x, &w, 0, 1).is_err(), "stride 0");
}
