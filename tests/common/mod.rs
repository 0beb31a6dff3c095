//! Helpers shared by integration tests.

use std::path::{Path, PathBuf};

use sacro::phantom::{self, PhantomConfig, PhantomFormat};

use candle_core::{Device, Tensor};
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
