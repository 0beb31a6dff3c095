//! Helpers shared by integration tests.

use std::path::{Path, PathBuf};

use sacro::phantom::{self, PhantomConfig, PhantomFormat};

use candle_core::{DType, Device, Tensor};
use sacro::model::card::{self, ModelCard};
use sacro::model::preprocess::Preprocess;
use sacro::model::weights::from_tensors;
use sacro::model::{HeadKind, NetworkConfig, ResNetConfig};
use sacro::stats::cutoffs::Cutoffs;

/// The reduced ResNet of `tests/reference/make_resnet_fixture.py` (PyTorch, seeded random weights).
#[allow(dead_code)]
pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/resnet_small.safetensors"
);

/// Writes the fixture network with fastai's head as a model folder (64 px, cut-offs 0.3/0.5/0.7) into `dir`:
/// a stand-in model until a trained one is bundled.
#[allow(dead_code)]
pub fn model_folder(dir: &Path) -> ModelCard {
    let config = NetworkConfig {
        resnet: ResNetConfig {
            layers: [2, 1, 2, 1],
            width_per_group: 16,
            expansion: 1,
        },
        head: HeadKind::Fastai { hidden: 512 },
        classes: 2,
    };
    let all = candle_core::safetensors::load(FIXTURE, &Device::Cpu).expect("fixture");
    let weights: std::collections::HashMap<String, Tensor> = all
        .into_iter()
        .filter(|(k, _)| !k.starts_with("fc.") && !k.starts_with("expected.") && k != "input")
        .collect();
    let (_, varmap) = match from_tensors(Path::new(FIXTURE), config, &weights, &Device::Cpu) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let card = ModelCard {
        name: "fixture".into(),
        architecture: config,
        preprocess: Preprocess::imagenet(64),
        class_names: vec![
            "no definite sacroiliitis".into(),
            "definite radiographic sacroiliitis".into(),
        ],
        positive_class: 1,
        cutoffs: Some(Cutoffs {
            sensitive: 0.3,
            balanced: 0.5,
            specific: 0.7,
        }),
        training_data: "none: random weights from the PyTorch fixture (tests only)".into(),
        intended_use: "tests only".into(),
        weights_sha256: String::new(),
        sacro_version: String::new(),
        scope: Default::default(),
    };
    card::save(dir, &card, &varmap).expect("save")
}

/// A tiny ResNet (same code as ResNet-50, fewer and narrower blocks) and a 48 px schedule for
/// CI-sized training runs.
#[allow(dead_code)]
pub const TINY: &str = r#"
seed = 5
valid_pct = 0.25
max_micro_batch = 4

[architecture]
classes = 2
head = { Fastai = { hidden = 32 } }
[architecture.resnet]
layers = [1, 1, 1, 1]
expansion = 1
width_per_group = 16

[[stages]]
size = 48
batch = 6
frozen_epochs = 1
unfrozen_epochs = 2
"#;

/// Writes `n` phantoms (128 px) and their labels.csv into `dir`.
#[allow(dead_code)]
pub fn phantoms(dir: &Path, n: usize) -> PathBuf {
    let cfg = PhantomConfig {
        size: 128,
        prevalence: 0.5,
        seed: 11,
    };
    let mut csv = String::from("file,left_grade,right_grade\n");
    for i in 1..=n {
        let p = phantom::generate(&cfg, i);
        let file = phantom::write(dir, &cfg, &p, PhantomFormat::Dicom).expect("phantom");
        csv.push_str(&format!(
            "{},{},{}\n",
            file.file_name().expect("name").to_string_lossy(),
            p.grades.left.value(),
            p.grades.right.value()
        ));
    }
    let path = dir.join("labels.csv");
    std::fs::write(&path, csv).expect("labels");
    path
}

/// Reproducible values in [-1, 1) of the given shape and type.
#[allow(dead_code)]
pub fn seeded(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    // A small LCG: reproducible values in [-1, 1) without a dependency on candle's RNG.
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("tensor")
}

/// Largest absolute difference relative to the largest magnitude of `b`.
#[allow(dead_code)]
pub fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let a: Vec<f64> = a
        .flatten_all()
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec1())
        .expect("a");
    let b: Vec<f64> = b
        .flatten_all()
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec1())
        .expect("b");
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .fold(0.0, |m, (x, y)| m.max((x - y).abs() / scale))
}

/// Copies the first `n` bundled demo phantoms into `dir`, as new cases of a study.
#[allow(dead_code)]
pub fn demo_cases(dir: &Path, n: usize) -> Vec<sacro::session::NewCase> {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    (1..=n)
        .map(|i| {
            let name = format!("P{i:04}.dcm");
            std::fs::copy(demo.join(&name), dir.join(&name)).expect("copy film");
            sacro::session::NewCase {
                path: Some(dir.join(&name)),
                sop_instance_uid: None,
                case_id: None,
                archive: None,
            }
        })
        .collect()
}
