//! Importing PyTorch checkpoints: torchvision and fastai state dicts give the same tensors as the
//! safetensors fixture; a pickle that refers to code is refused without being run
//! (`tests/reference/make_pth_fixtures.py` made the files).

use std::path::Path;

use candle_core::Device;
use sacro::model::pth::{check_pth, read_pth};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    let a: Vec<f32> = a.flatten_all().expect("flat").to_vec1().expect("vec");
    let b: Vec<f32> = b.flatten_all().expect("flat").to_vec1().expect("vec");
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn torchvision_and_fastai_checkpoints_match_the_safetensors() {
    let reference =
        candle_core::safetensors::load(fixture("resnet_small.safetensors"), &Device::Cpu)
            .expect("fixture");
    let tv = read_pth(&fixture("resnet_small.pth")).expect("torchvision pth");
    assert!(tv.contains_key("layer2.0.downsample.0.weight") && tv.contains_key("fc.weight"));
    for (k, v) in &tv {
        assert_eq!(max_diff(v, &reference[k]), 0.0, "{k}");
    }
    let fa = read_pth(&fixture("fastai_small.pth")).expect("fastai pth");
    assert!(
        fa.contains_key("conv1.weight")
            && fa.contains_key("layer4.0.conv3.weight")
            && fa.contains_key("head.8.weight")
    );
    for (k, v) in &fa {
        assert_eq!(max_diff(v, &reference[k]), 0.0, "{k}");
    }
}

#[test]
fn a_checkpoint_with_code_is_refused_without_running_it() {
    let marker = std::env::temp_dir().join("sacro_pth_test_never_created");
    let err = check_pth(&fixture("malicious.pth"))
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("posix.system") || err.contains("os.system"),
        "{err}"
    );
    assert!(err.contains("refused"), "{err}");
    assert!(read_pth(&fixture("malicious.pth")).is_err());
    assert!(!marker.exists());
    // Not a checkpoint at all.
    let err = check_pth(&fixture("resnet_small.safetensors"))
        .expect_err("not a zip")
        .to_string();
    assert!(err.contains("not a PyTorch zip checkpoint"), "{err}");
}
