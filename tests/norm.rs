//! The fused batch norm (+ ReLU) of `src/model/norm.rs` against candle's stock `BatchNorm` followed by
//! `relu()`: outputs, running statistics and the gradients of the input, scale and shift, in training and
//! evaluation, over shapes with odd sizes, one image, channel counts that are not multiples of 16 and
//! `[n, c]` inputs; and against central finite differences in f64. The same for the block end
//! `relu(norm(x) + residual)`, the residual's gradient included.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use sacro::kernels::path::ConvPath;
use sacro::model::norm::Norm;

mod common;
use common::{max_rel, seeded};

/// A layer with seeded scale, shift and running statistics (variance positive).
fn layer(c: usize, dtype: DType, seed: u64) -> (Norm, VarMap) {
    let mut vm = VarMap::new();
    let norm = Norm::new(c, VarBuilder::from_varmap(&vm, dtype, &Device::Cpu)).expect("layer");
    let positive = |s| (seeded(&[c], s, dtype).abs().expect("abs") + 0.5).expect("add");
    vm.set_one("weight", seeded(&[c], seed, dtype))
        .expect("weight");
    vm.set_one("bias", seeded(&[c], seed + 1, dtype))
        .expect("bias");
    vm.set_one("running_mean", seeded(&[c], seed + 2, dtype))
        .expect("mean");
    vm.set_one("running_var", positive(seed + 3)).expect("var");
    (norm, vm)
}

fn var(vm: &VarMap, name: &str) -> Tensor {
    vm.data().lock().expect("lock")[name].as_tensor().clone()
}

struct Run {
    y: Tensor,
    dx: Tensor,
    dweight: Tensor,
    dbias: Tensor,
    /// The residual's gradient, when there is one.
    dr: Option<Tensor>,
    running: [Tensor; 2],
}

fn run(path: ConvPath, x: &Tensor, train: bool, relu: bool, seed: u64) -> Run {
    run_with(path, x, None, train, relu, seed)
}

/// One forward and backward pass of `sum(y · r)` for a seeded `r`; `relu(norm(x) + residual)` when a
/// residual is given.
fn run_with(
    path: ConvPath,
    x: &Tensor,
    residual: Option<&Tensor>,
    train: bool,
    relu: bool,
    seed: u64,
) -> Run {
    let c = x.dim(1).expect("channels");
    let (norm, vm) = layer(c, x.dtype(), seed);
    let xv = Var::from_tensor(x).expect("x");
    let rv = residual.map(|r| Var::from_tensor(r).expect("residual"));
    let y = match &rv {
        None => norm.forward_on(path, xv.as_tensor(), train, relu),
        Some(r) => norm.forward_add_relu_on(path, xv.as_tensor(), r.as_tensor(), train),
    }
    .expect("forward");
    let r = seeded(y.dims(), 77, y.dtype());
    let grads = (&y * &r)
        .and_then(|t| t.sum_all())
        .and_then(|l| l.backward())
        .expect("backward");
    let grad = |t: &Tensor| grads.get(t).cloned().expect("gradient");
    Run {
        dx: grad(xv.as_tensor()),
        dweight: grad(&var(&vm, "weight")),
        dbias: grad(&var(&vm, "bias")),
        dr: rv.as_ref().map(|r| grad(r.as_tensor())),
        running: [var(&vm, "running_mean"), var(&vm, "running_var")],
        y,
    }
}

const SHAPES: [&[usize]; 6] = [
    &[1, 5, 7, 9],
    &[3, 6, 4, 5],
    &[2, 17, 3, 3],
    &[4, 3, 1, 1],
    &[8, 33],
    &[2, 4, 5, 6, 3],
];

/// Asserts that two runs agree within `tol` (relative to the largest value) in everything they hold.
fn assert_same(a: &Run, b: &Run, tol: f64, what: &str) {
    for (name, p, q) in [
        ("output", &a.y, &b.y),
        ("input gradient", &a.dx, &b.dx),
        ("scale gradient", &a.dweight, &b.dweight),
        ("shift gradient", &a.dbias, &b.dbias),
        ("running mean", &a.running[0], &b.running[0]),
        ("running variance", &a.running[1], &b.running[1]),
    ] {
        let e = max_rel(p, q);
        assert!(e < tol, "{what}: {name} differs by {e:e}");
    }
    match (&a.dr, &b.dr) {
        (Some(p), Some(q)) => {
            let e = max_rel(p, q);
            assert!(e < tol, "{what}: residual gradient differs by {e:e}");
        }
        (None, None) => {}
        _ => panic!("{what}: only one run has a residual"),
    }
}

#[test]
fn fused_batch_norm_equals_candle_stock_in_training_and_evaluation() {
    for (i, shape) in SHAPES.iter().enumerate() {
        // Scaled and shifted, so that the statistics are not trivially 0 and 1.
        let x = seeded(shape, 10 + i as u64, DType::F32)
            .affine(3.0, 0.4)
            .expect("x");
        for train in [true, false] {
            for relu in [false, true] {
                let a = run(ConvPath::Im2Col, &x, train, relu, 5);
                let b = run(ConvPath::Stock, &x, train, relu, 5);
                assert_same(
                    &a,
                    &b,
                    2e-5,
                    &format!("{shape:?} train {train} relu {relu}"),
                );
                assert_eq!(a.y.dims(), *shape);
            }
        }
    }
}

#[test]
fn fused_batch_norm_add_relu_equals_candle_stock() {
    for (i, shape) in SHAPES.iter().enumerate() {
        let x = seeded(shape, 20 + i as u64, DType::F32)
            .affine(2.0, -0.3)
            .expect("x");
        let r = seeded(shape, 40 + i as u64, DType::F32);
        for train in [true, false] {
            let a = run_with(ConvPath::Im2Col, &x, Some(&r), train, true, 6);
            let b = run_with(ConvPath::Stock, &x, Some(&r), train, true, 6);
            assert_same(
                &a,
                &b,
                2e-5,
                &format!("{shape:?} + residual, train {train}"),
            );
            // Both halves of the ReLU are exercised.
            let zeros =
                a.y.eq(0.0)
                    .and_then(|m| m.to_dtype(DType::F32))
                    .and_then(|m| m.mean_all())
                    .and_then(|m| m.to_scalar::<f32>())
                    .expect("zeros");
            assert!(
                zeros > 0.1 && zeros < 0.9,
                "{shape:?}: {zeros} of the outputs are 0"
            );
        }
    }
}

#[test]
fn fused_batch_norm_gradients_equal_finite_differences() {
    let shape = [2usize, 3, 3, 4];
    let x = seeded(&shape, 3, DType::F64);
    let loss = |x: &Tensor, vm_seed: u64| -> (f64, Run) {
        let run = run(ConvPath::Im2Col, x, true, false, vm_seed);
        let l = (&run.y * &seeded(run.y.dims(), 77, DType::F64))
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("loss");
        (l, run)
    };
    let (_, analytic) = loss(&x, 9);
    let dx: Vec<f64> = analytic
        .dx
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("dx");
    let xs: Vec<f64> = x.flatten_all().and_then(|t| t.to_vec1()).expect("x");
    let h = 1e-5;
    for i in (0..xs.len()).step_by(5) {
        let mut plus = xs.clone();
        plus[i] += h;
        let mut minus = xs.clone();
        minus[i] -= h;
        let f = |v: Vec<f64>| loss(&Tensor::from_vec(v, &shape, &Device::Cpu).expect("x"), 9).0;
        let numeric = (f(plus) - f(minus)) / (2.0 * h);
        assert!(
            (numeric - dx[i]).abs() < 1e-6 * (1.0 + numeric.abs()),
            "element {i}: finite differences {numeric}, backward {}",
            dx[i]
        );
    }
}

#[test]
fn fused_batch_norm_add_relu_gradients_equal_finite_differences() {
    let shape = [2usize, 3, 3, 4];
    let x = seeded(&shape, 4, DType::F64);
    let r = seeded(&shape, 5, DType::F64);
    let loss = |x: &Tensor, r: &Tensor| -> (f64, Run) {
        let run = run_with(ConvPath::Im2Col, x, Some(r), true, true, 9);
        let l = (&run.y * &seeded(run.y.dims(), 77, DType::F64))
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("loss");
        (l, run)
    };
    let (_, analytic) = loss(&x, &r);
    let flat =
        |t: &Tensor| -> Vec<f64> { t.flatten_all().and_then(|t| t.to_vec1()).expect("values") };
    let (xs, rs) = (flat(&x), flat(&r));
    let dx = flat(&analytic.dx);
    let dr = flat(analytic.dr.as_ref().expect("residual gradient"));
    let t = |v: &[f64]| Tensor::from_slice(v, &shape, &Device::Cpu).expect("tensor");
    let h = 1e-6;
    for i in 0..xs.len() {
        for (which, analytic) in [("input", dx[i]), ("residual", dr[i])] {
            let (mut plus, mut minus) = if which == "input" {
                (xs.clone(), xs.clone())
            } else {
                (rs.clone(), rs.clone())
            };
            plus[i] += h;
            minus[i] -= h;
            let f = |v: &[f64]| {
                if which == "input" {
                    loss(&t(v), &r).0
                } else {
                    loss(&x, &t(v)).0
                }
            };
            let numeric = (f(&plus) - f(&minus)) / (2.0 * h);
            assert!(
                (numeric - analytic).abs() < 1e-6 * (1.0 + numeric.abs()),
                "{which} element {i}: finite differences {numeric}, backward {analytic}"
            );
        }
    }
}

#[test]
fn training_with_one_value_per_channel_is_refused() {
    let x = seeded(&[1, 3, 1, 1], 1, DType::F32);
    let (norm, _vm) = layer(3, DType::F32, 1);
    let err = norm
        .forward_on(ConvPath::Im2Col, &x, true, true)
        .expect_err("one value per channel")
        .to_string();
    assert!(err.contains("more than one value per channel"), "{err}");
}
