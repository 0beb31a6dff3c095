//! The fused batch norm (+ ReLU) of `src/model/norm.rs` against candle's stock `BatchNorm` followed by
//! `relu()`: outputs, running statistics and the gradients of the input, scale and shift, in training and
//! evaluation, over shapes with odd sizes, one image, channel counts that are not multiples of 16 and
//! `[n, c]` inputs; and against central finite differences in f64.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use sacro::model::conv::ConvPath;
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
    running: [Tensor; 2],
}

fn run(path: ConvPath, x: &Tensor, train: bool, relu: bool, seed: u64) -> Run {
    let c = x.dim(1).expect("channels");
    let (norm, vm) = layer(c, x.dtype(), seed);
    let xv = Var::from_tensor(x).expect("x");
    let y = norm
        .forward_on(path, xv.as_tensor(), train, relu)
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
        running: [var(&vm, "running_mean"), var(&vm, "running_var")],
        y,
    }
}

#[test]
fn fused_batch_norm_equals_candle_stock_in_training_and_evaluation() {
    let shapes: [&[usize]; 6] = [
        &[1, 5, 7, 9],
        &[3, 6, 4, 5],
        &[2, 17, 3, 3],
        &[4, 3, 1, 1],
        &[8, 33],
        &[2, 4, 5, 6, 3],
    ];
    for (i, shape) in shapes.iter().enumerate() {
        // Scaled and shifted, so that the statistics are not trivially 0 and 1.
        let x = seeded(shape, 10 + i as u64, DType::F32)
            .affine(3.0, 0.4)
            .expect("x");
        for train in [true, false] {
            for relu in [false, true] {
                let a = run(ConvPath::Im2Col, &x, train, relu, 5);
                let b = run(ConvPath::Stock, &x, train, relu, 5);
                let what = format!("{shape:?} train {train} relu {relu}");
                for (name, p, q) in [
                    ("output", &a.y, &b.y),
                    ("input gradient", &a.dx, &b.dx),
                    ("scale gradient", &a.dweight, &b.dweight),
                    ("shift gradient", &a.dbias, &b.dbias),
                    ("running mean", &a.running[0], &b.running[0]),
                    ("running variance", &a.running[1], &b.running[1]),
                ] {
                    let e = max_rel(p, q);
                    assert!(e < 2e-5, "{what}: {name} differs by {e:e}");
                }
                assert_eq!(a.y.dims(), *shape);
            }
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
fn training_with_one_value_per_channel_is_refused() {
    let x = seeded(&[1, 3, 1, 1], 1, DType::F32);
    let (norm, _vm) = layer(3, DType::F32, 1);
    let err = norm
        .forward_on(ConvPath::Im2Col, &x, true, true)
        .expect_err("one value per channel")
        .to_string();
    assert!(err.contains("more than one value per channel"), "{err}");
}
