//! The whole network on Sacro's CPU kernels (im2col convolutions, fused batch norm) against candle's stock
//! operations (`SACRO_CONV=stock`) and against the GPU's training path run on the CPU
//! (`SACRO_CONV=tensor`: convolutions as tensor operations with a GEMM backward, candle's batch norm):
//! training-mode logits and the gradient of every parameter for the same seeded weights, input, dropout
//! and labels. The path is chosen once per process, so the test runs itself again with `SACRO_CONV` set
//! and compares with what each child writes. And gradient
//! checkpointing of the blocks against keeping every intermediate: the same logits, gradients and running
//! statistics; and the blocks as one graph node with its own backward pass (the default) against the
//! per-op graph: the same bits.

use std::collections::HashMap;
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sacro::kernels::path::{ConvPath, conv_path};
use sacro::model::{HeadKind, Network, NetworkConfig, ResNetConfig};

mod common;
use common::{max_rel, seeded};

const CHILD_OUT: &str = "SACRO_TEST_PATHS_OUT";

fn small_config() -> NetworkConfig {
    NetworkConfig {
        resnet: ResNetConfig {
            layers: [2, 1, 2, 1],
            width_per_group: 16,
            expansion: 4,
        },
        head: HeadKind::Fastai { hidden: 24 },
        classes: 2,
    }
}

/// The small network in `dtype`, set up by `configure`, its weights seeded with `seed`.
fn small_network(
    dtype: DType,
    seed: u64,
    configure: impl FnOnce(&mut Network),
) -> (Network, VarMap) {
    let varmap = VarMap::new();
    let mut net = Network::new(
        small_config(),
        VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu),
    )
    .expect("network");
    configure(&mut net);
    sacro::model::init::seeded(&varmap, seed).expect("weights");
    (net, varmap)
}

/// One training-mode pass (dropout seeded with `seed`), cross-entropy on `labels`, backward through
/// `Network::backward`: the logits and every variable's gradient by name.
fn train_step(
    net: &Network,
    varmap: &VarMap,
    x: &Tensor,
    labels: &[u32],
    seed: u64,
) -> (Tensor, Vec<(String, Tensor)>) {
    let y = Tensor::new(labels, &Device::Cpu).expect("labels");
    let logits = net.forward_train(x, seed).expect("forward");
    let loss = candle_nn::loss::cross_entropy(&logits, &y).expect("loss");
    let grads = net.backward(&loss).expect("backward");
    let named = varmap
        .data()
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|(name, var)| {
            grads
                .get(var.as_tensor())
                .map(|g| (name.clone(), g.clone()))
        })
        .collect();
    (logits, named)
}

/// Logits (`logits`) and every parameter's gradient (`grad.NAME`) of a small bottleneck ResNet with
/// fastai's head, training mode, cross-entropy on fixed labels, computed in `dtype`.
fn logits_and_gradients(dtype: DType) -> HashMap<String, Tensor> {
    let (net, varmap) = small_network(dtype, 7, |_| {});
    // Square: candle's stock backward fails where height and width leave different remainders under a
    // stride (see tests/conv.rs).
    let x = seeded(&[3, 3, 65, 65], 11, dtype);
    let (logits, grads) = train_step(&net, &varmap, &x, &[1, 0, 1], 5);
    let mut out = HashMap::from([("logits".to_string(), logits)]);
    out.extend(
        grads
            .into_iter()
            .map(|(name, g)| (format!("grad.{name}"), g)),
    );
    out.into_iter()
        .map(|(k, v)| (format!("{dtype:?}.{k}"), v))
        .collect()
}

#[test]
fn whole_network_logits_and_gradients_equal_on_every_path() {
    let mut ours = logits_and_gradients(DType::F32);
    ours.extend(logits_and_gradients(DType::F64));
    if let Ok(path) = std::env::var(CHILD_OUT) {
        candle_core::safetensors::save(&ours, path).expect("save");
        return;
    }
    assert_eq!(conv_path(), ConvPath::Im2Col, "run without SACRO_CONV");
    // candle's stock operations, and the GPU's training path (convolutions as tensor operations with a
    // GEMM backward, candle's batch norm and pooling) run on the CPU.
    for other in ["stock", "tensor"] {
        let theirs = child_results(
            "whole_network_logits_and_gradients_equal_on_every_path",
            other,
        );
        assert_eq!(ours.len(), theirs.len(), "{other}");
        // Every convolution, batch norm and head parameter has a gradient.
        assert!(ours.len() > 120, "{} tensors", ours.len());
        // In f64 the paths compute the same function up to rounding; in f32, summation order (the GEMM
        // kernels' blocking — AVX-512 or AVX2 — and the fused batch norm's f64 sums) leaves differences
        // of up to about 2e-3 of a tensor's largest gradient (measured: 1.8e-3 in a downsample weight).
        for (name, g) in &ours {
            let (tolerance, what) = match (name.starts_with("F64"), name.ends_with("logits")) {
                (true, _) => (1e-9, "f64"),
                (false, true) => (1e-4, "f32 logits"),
                (false, false) => (5e-3, "f32 gradients"),
            };
            let e = max_rel(g, &theirs[name]);
            assert!(
                e < tolerance,
                "{other}: {name} differs by {e:e} ({what}: {tolerance:e})"
            );
        }
    }
}

/// What this test binary's `test` writes when run again with `SACRO_CONV=path`.
fn child_results(test: &str, path: &str) -> HashMap<String, Tensor> {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("child.safetensors");
    let o = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", test])
        .env("SACRO_CONV", path)
        .env(CHILD_OUT, &file)
        .output()
        .expect("child");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    candle_core::safetensors::load(&file, &Device::Cpu).expect("child results")
}

/// Two training steps' logits, gradients (through `Network::backward`) and the running statistics after
/// both, with the blocks checkpointed or not, as one graph node or not, in `dtype`.
fn two_steps(checkpoint: bool, one_node: bool, dtype: DType) -> HashMap<String, Tensor> {
    let (net, varmap) = small_network(dtype, 3, |net| {
        net.set_checkpointing(checkpoint);
        net.set_one_node_blocks(one_node);
    });
    let mut out = HashMap::new();
    for step in 0..2u64 {
        let x = seeded(&[2, 3, 47, 47], 20 + step, dtype);
        let (logits, grads) = train_step(&net, &varmap, &x, &[1, 0], step);
        out.insert(format!("logits{step}"), logits);
        for (name, g) in grads {
            // Sacro's kernels return gradients without a graph of their own: one would hold the
            // activations it was computed from for as long as the gradient lives (candle's stock
            // backward rules, used by the head, do not guarantee this).
            assert!(
                name.starts_with("head") || !g.track_op(),
                "the gradient of {name} carries a graph (checkpointing {checkpoint})"
            );
            out.insert(format!("grad{step}.{name}"), g);
        }
    }
    for (name, var) in varmap.data().lock().expect("lock").iter() {
        if name.contains("running") {
            out.insert(name.clone(), var.as_tensor().clone());
        }
    }
    out
}

#[test]
fn checkpointed_blocks_give_the_same_gradients_and_running_statistics() {
    let kept = two_steps(false, false, DType::F64);
    let recomputed = two_steps(true, false, DType::F64);
    assert_eq!(
        kept.keys().collect::<std::collections::BTreeSet<_>>(),
        recomputed.keys().collect(),
        "the same tensors have gradients"
    );
    // Every parameter of every block (not only the head) has a gradient in both steps.
    let block_grads = kept.keys().filter(|k| k.starts_with("grad1.layer")).count();
    assert!(block_grads > 60, "{block_grads}");
    assert!(kept.keys().filter(|k| k.contains("running")).count() > 30);
    for (name, t) in &kept {
        let e = max_rel(t, &recomputed[name]);
        assert!(e < 1e-10, "{name} differs by {e:e}");
    }
}

/// The blocks as one graph node (`model::block`, the default in CPU training) compute what the per-op
/// graph computes, to the bit: logits, every gradient, running statistics, in f32 and f64, over two steps
/// (a chain of six blocks, with and without a downsampling shortcut, strides 1 and 2).
#[test]
fn one_node_blocks_equal_the_per_op_graph_to_the_bit() {
    for dtype in [DType::F32, DType::F64] {
        let per_op = two_steps(false, false, dtype);
        let one_node = two_steps(false, true, dtype);
        assert_same_bits(&per_op, &one_node, &format!("{dtype:?}"));
    }
}

/// `two_steps` results with the same tensors (every block's parameters among them) to the bit.
fn assert_same_bits(want: &HashMap<String, Tensor>, got: &HashMap<String, Tensor>, what: &str) {
    assert_eq!(
        want.keys().collect::<std::collections::BTreeSet<_>>(),
        got.keys().collect(),
        "the same tensors have gradients"
    );
    assert!(want.keys().filter(|k| k.starts_with("grad1.layer")).count() > 60);
    for (name, t) in want {
        assert!(bits(t) == bits(&got[name]), "{what} {name} differs");
    }
}

/// The values of `t` as bit patterns (of f64; exact for f32 too).
fn bits(t: &Tensor) -> Vec<u64> {
    let flat = t
        .flatten_all()
        .expect("flat")
        .to_dtype(DType::F64)
        .expect("f64");
    flat.to_vec1::<f64>()
        .expect("values")
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// Forward and backward passes run on rayon's pool (`set_passes_on_pool`, on in `sacro`'s model
/// commands) compute the same bits as from the calling thread: logits, gradients, running statistics.
#[test]
fn passes_on_the_thread_pool_give_the_same_bits() {
    let caller = two_steps(false, true, DType::F32);
    sacro::model::set_passes_on_pool(true);
    let pool = two_steps(false, true, DType::F32);
    sacro::model::set_passes_on_pool(false);
    assert_same_bits(&caller, &pool, "on the pool:");
}

/// A frozen phase (fastai's: head and batch norms train) computes no gradient for the convolutions'
/// weights where it can skip them, and the same bits as an unfrozen step for everything else.
#[test]
fn frozen_convolutions_get_no_gradient_and_change_nothing_else() {
    let step = |frozen: bool| -> HashMap<String, Tensor> {
        let (net, varmap) = small_network(DType::F32, 4, |net| net.set_frozen_convolutions(frozen));
        let x = seeded(&[2, 3, 47, 47], 9, DType::F32);
        let (logits, grads) = train_step(&net, &varmap, &x, &[0, 1], 1);
        let mut out = HashMap::from([("logits".to_string(), logits)]);
        out.extend(grads);
        out
    };
    let (unfrozen, frozen) = (step(false), step(true));
    let is_conv = |name: &str| {
        !name.starts_with("head")
            && name.ends_with(".weight")
            && (name.contains("conv") || name.contains("downsample.0"))
    };
    let convs = unfrozen.keys().filter(|k| is_conv(k)).count();
    assert!(convs > 20, "{convs} convolution weights");
    for (name, t) in &unfrozen {
        match frozen.get(name) {
            None => assert!(is_conv(name), "{name} lost its gradient"),
            Some(f) => {
                assert!(!is_conv(name), "{name} has a gradient while frozen");
                let (a, b): (Vec<f32>, Vec<f32>) = (
                    t.flatten_all().and_then(|t| t.to_vec1()).expect("a"),
                    f.flatten_all().and_then(|t| t.to_vec1()).expect("b"),
                );
                assert!(a == b, "{name} differs");
            }
        }
    }
}

/// The inference network (`sacro predict`'s: the weights as plain tensors) gives the trained network's
/// evaluation logits to the bit and the same Grad-CAM, and builds no autograd graph (which would keep
/// every activation alive until the output is dropped). It also takes the inference-only op that
/// normalises a convolution's product in place (1×1, 3×3 and strided 7×7, with and without ReLU), which
/// the trainable network does not.
#[test]
fn the_inference_network_equals_the_trainable_one_and_builds_no_graph() {
    use sacro::model::gradcam::{CamMethod, cam};
    let (net, varmap) =
        Network::initialised_seeded(small_config(), &Device::Cpu, 11).expect("network");
    let x = seeded(&[3, 3, 48, 40], 5, DType::F32);
    // A training-mode pass moves the running statistics off their initial values.
    net.forward_t(&x, true).expect("train forward");
    let inference =
        sacro::model::weights::inference_network(small_config(), &varmap).expect("inference");
    let (a, b) = (
        net.forward_t(&x, false).expect("eval"),
        inference.forward_t(&x, false).expect("inference"),
    );
    assert!(
        a.track_op(),
        "the trainable network's output carries its graph"
    );
    assert!(
        !b.track_op(),
        "the inference network's output carries no graph"
    );
    let (a, b): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (a.to_vec2().expect("a"), b.to_vec2().expect("b"));
    assert_eq!(a, b);
    let one = x.narrow(0, 1, 1).expect("one");
    for method in [CamMethod::GradCam, CamMethod::GradCamPlusPlus] {
        assert_eq!(
            cam(&net, &one, 1, method).expect("cam"),
            cam(&inference, &one, 1, method).expect("cam")
        );
    }
}
