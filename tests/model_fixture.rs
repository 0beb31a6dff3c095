//! The candle ResNet against PyTorch: torchvision's own ResNet code (reduced configuration) and fastai's
//! own head with seeded random weights, made by `tests/reference/make_resnet_fixture.py`
//! (`tests/fixtures/resnet_small.safetensors`). Outputs must match within 1e-4 relative.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use sacro::model::weights::{self, from_tensors};
use sacro::model::{HeadKind, NetworkConfig, ResNetConfig};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/resnet_small.safetensors"
);

fn small(head: HeadKind, classes: usize) -> NetworkConfig {
    NetworkConfig {
        resnet: ResNetConfig {
            layers: [2, 1, 2, 1],
            width_per_group: 16,
            expansion: 1,
        },
        head,
        classes,
    }
}

fn fixture() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(FIXTURE, &Device::Cpu).expect("fixture")
}

fn weights_without(all: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    all.iter()
        .filter(|(k, _)| !k.starts_with(prefix) && !k.starts_with("expected.") && *k != "input")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The error of a load that must fail (the loaded network has no `Debug`).
fn refused<T>(r: Result<T, sacro::model::ModelError>) -> String {
    match r {
        Ok(_) => panic!("loading was expected to fail"),
        Err(e) => e.to_string(),
    }
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let g: Vec<f32> = got.flatten_all().expect("flat").to_vec1().expect("vec");
    let w: Vec<f32> = want.flatten_all().expect("flat").to_vec1().expect("vec");
    let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-4 * scale,
        "{what}: worst difference {worst} (scale {scale})"
    );
}

#[test]
fn torchvision_resnet_eval_and_train_match_pytorch() {
    let all = fixture();
    let tensors = weights_without(&all, "head.");
    let (net, varmap) = from_tensors(
        Path::new(FIXTURE),
        small(HeadKind::Torchvision, 5),
        &tensors,
        &Device::Cpu,
    )
    .expect("load");
    let x = &all["input"];
    assert_close(
        &net.forward_t(x, false).expect("eval"),
        &all["expected.eval_logits"],
        "eval logits",
    );
    assert_close(
        &net.features(x, false).expect("features"),
        &all["expected.features"],
        "layer4 features",
    );
    assert_close(
        &net.forward_t(x, true).expect("train"),
        &all["expected.train_logits"],
        "train logits",
    );
    let data = varmap.data().lock().expect("vars");
    assert_close(
        data["bn1.running_mean"].as_tensor(),
        &all["expected.train_running_mean"],
        "bn1 running mean after train step",
    );
    assert_close(
        data["bn1.running_var"].as_tensor(),
        &all["expected.train_running_var"],
        "bn1 running var after train step",
    );
}

#[test]
fn fastai_head_matches_fastai() {
    let all = fixture();
    let tensors = weights_without(&all, "fc.");
    let (net, _) = from_tensors(
        Path::new(FIXTURE),
        small(HeadKind::Fastai { hidden: 512 }, 2),
        &tensors,
        &Device::Cpu,
    )
    .expect("load");
    let logits = net.forward_t(&all["input"], false).expect("forward");
    assert_close(
        &logits,
        &all["expected.fastai_logits"],
        "fastai head logits",
    );
}

#[test]
fn wrong_weights_are_refused_with_the_tensor_named() {
    let all = fixture();
    let path = Path::new(FIXTURE);
    // The fixture is not a ResNet-50: a missing tensor is named.
    let err = refused(from_tensors(
        path,
        NetworkConfig::imagenet_resnet50(),
        &weights_without(&all, "head."),
        &Device::Cpu,
    ));
    assert!(
        err.contains("missing") && err.contains("resnet_small.safetensors"),
        "{err}"
    );
    // Extra tensors (the fastai head given to a torchvision-head network).
    let err = refused(from_tensors(
        path,
        small(HeadKind::Torchvision, 5),
        &weights_without(&all, "nothing"),
        &Device::Cpu,
    ));
    assert!(
        err.contains("does not have") && err.contains("head."),
        "{err}"
    );
    // A wrong shape.
    let mut t = weights_without(&all, "head.");
    t.insert(
        "fc.bias".into(),
        Tensor::zeros(7, candle_core::DType::F32, &Device::Cpu).expect("zeros"),
    );
    let err = refused(from_tensors(
        path,
        small(HeadKind::Torchvision, 5),
        &t,
        &Device::Cpu,
    ));
    assert!(err.contains("fc.bias") && err.contains("[7]"), "{err}");
    // NaN weights.
    let mut t = weights_without(&all, "head.");
    let nan = Tensor::new(&[f32::NAN; 5], &Device::Cpu).expect("nan");
    t.insert("fc.bias".into(), nan);
    let err = refused(from_tensors(
        path,
        small(HeadKind::Torchvision, 5),
        &t,
        &Device::Cpu,
    ));
    assert!(err.contains("fc.bias") && err.contains("NaN"), "{err}");
    // A truncated file.
    let tmp = tempfile::tempdir().expect("tmp");
    let cut = tmp.path().join("cut.safetensors");
    let bytes = std::fs::read(FIXTURE).expect("read");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let err = refused(weights::load_safetensors(
        &cut,
        small(HeadKind::Torchvision, 5),
        &Device::Cpu,
    ));
    assert!(
        err.contains("cut.safetensors") && err.contains("safetensors"),
        "{err}"
    );
}

#[test]
fn gradcam_matches_torch_autograd() {
    use sacro::model::gradcam::{CamMethod, cam};
    let all = fixture();
    let tensors = weights_without(&all, "fc.");
    let (net, _) = from_tensors(
        Path::new(FIXTURE),
        small(HeadKind::Fastai { hidden: 512 }, 2),
        &tensors,
        &Device::Cpu,
    )
    .expect("load");
    let first = all["input"].narrow(0, 0, 1).expect("first input");
    let c = cam(&net, &first, 1, CamMethod::GradCam).expect("cam");
    let got = Tensor::from_vec(c.values, (c.height, c.width), &Device::Cpu).expect("tensor");
    assert_close(&got, &all["expected.gradcam"], "Grad-CAM");
    assert!(
        cam(&net, &first, 2, CamMethod::GradCam).is_err(),
        "class out of range"
    );
}
