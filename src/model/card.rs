//! A model folder is self-describing: `model.json` (the card: architecture, pre-processing, classes,
//! cut-offs, training data, intended use, SHA-256 of the weights) beside `weights.safetensors`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_nn::VarMap;

use super::preprocess::Preprocess;
use super::weights::{self, LoadedNetwork, sha256_hex};
use super::{ModelError, NetworkConfig};
use crate::stats::cutoffs::Cutoffs;

/// File name of the card in a model folder.
pub const CARD_FILE: &str = "model.json";
/// File name of the weights in a model folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// What a model is, how to feed it, and what it may be used for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelCard {
    /// Short name.
    pub name: String,
    /// Architecture.
    pub architecture: NetworkConfig,
    /// Pre-processing of the windowed radiograph.
    pub preprocess: Preprocess,
    /// Class names, in output order.
    pub class_names: Vec<String>,
    /// Index of the class whose probability is "definite radiographic sacroiliitis".
    pub positive_class: usize,
    /// The three cut-offs on that probability, if chosen (validation set of the training run).
    pub cutoffs: Option<Cutoffs>,
    /// What the model was trained on.
    pub training_data: String,
    /// Intended use and limits.
    pub intended_use: String,
    /// SHA-256 of `weights.safetensors`.
    pub weights_sha256: String,
    /// Sacro version that wrote the card.
    pub sacro_version: String,
    /// The films the model is for (cards written before this field: Sacro's pelvic radiographs).
    #[serde(default)]
    pub scope: Scope,
}

/// The films a model is for, by their DICOM attributes: a film whose attributes say otherwise still gets
/// a result, but never without a plain warning beside it ([`Scope::warning`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scope {
    /// Body Part Examined values (DICOM defined terms, upper case).
    pub body_parts: Vec<String>,
    /// Modalities.
    pub modalities: Vec<String>,
}

impl Default for Scope {
    /// Sacro's models: radiographs (CR, DX, RG) of the pelvis, sacrum or sacroiliac joints.
    fn default() -> Self {
        Self {
            body_parts: [
                "PELVIS",
                "SACRUM",
                "SIJOINT",
                "SI JOINT",
                "SACROILIAC",
                "HIP",
            ]
            .map(String::from)
            .to_vec(),
            modalities: ["CR", "DX", "RG"].map(String::from).to_vec(),
        }
    }
}

impl Scope {
    /// Why the model should not be trusted on a film with these attributes (none when they fit or are
    /// not known: a PNG says nothing): another body part, another modality, a colour image.
    pub fn warning(&self, identity: &crate::imaging::Identity, colour: bool) -> Option<String> {
        let mut why = Vec::new();
        let norm = |s: &str| s.trim().to_uppercase();
        if let Some(b) = identity.body_part.as_deref().map(norm)
            && !b.is_empty()
            && !self.body_parts.iter().any(|p| norm(p) == b)
        {
            why.push(format!(
                "Body Part Examined {b} (the model is for {})",
                self.body_parts.join(", ")
            ));
        }
        if let Some(m) = identity.modality.as_deref().map(norm)
            && !m.is_empty()
            && !self.modalities.iter().any(|x| norm(x) == m)
        {
            why.push(format!(
                "modality {m} (the model is for {})",
                self.modalities.join(", ")
            ));
        }
        if colour {
            why.push("a colour image (the model is for grey radiographs)".into());
        }
        (!why.is_empty()).then(|| {
            format!(
                "outside what the model is for: {}; its result may mean nothing here",
                why.join("; ")
            )
        })
    }
}

/// Writes `weights.safetensors` and `model.json` into `dir` (created), filling in the weights' SHA-256.
pub fn save(dir: &Path, card: &ModelCard, varmap: &VarMap) -> Result<ModelCard, ModelError> {
    let io = |path: PathBuf| move |source| ModelError::Io { path, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    varmap.save(&weights_path)?;
    let bytes = std::fs::read(&weights_path).map_err(io(weights_path.clone()))?;
    let card = ModelCard {
        weights_sha256: sha256_hex(&bytes),
        sacro_version: env!("CARGO_PKG_VERSION").to_string(),
        ..card.clone()
    };
    write_card(dir, &card)?;
    Ok(card)
}

/// Writes `card` as `dir`'s `model.json`, and gives the folder's weights the card's permissions: the
/// safetensors writer creates its file through a private temporary file (owner-only), which would keep a
/// model folder shared on a site's server from everyone but its author; the card, written normally,
/// carries the user's umask.
fn write_card(dir: &Path, card: &ModelCard) -> Result<(), ModelError> {
    let path = dir.join(CARD_FILE);
    let json = serde_json::to_string_pretty(card).map_err(|e| ModelError::Weights {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    std::fs::write(&path, json).map_err(|source| ModelError::Io {
        path: path.clone(),
        source,
    })?;
    let permissions = std::fs::metadata(&path)
        .map_err(|source| ModelError::Io { path, source })?
        .permissions();
    let weights = dir.join(WEIGHTS_FILE);
    std::fs::set_permissions(&weights, permissions).map_err(|source| ModelError::Io {
        path: weights,
        source,
    })
}

/// Name of the bundled demo model's folder (under `models/` in the source tree, `share/sacro/models/` in
/// an installed package).
pub const DEMO_MODEL: &str = "demo-phantom";

/// The bundled demo model (trained on synthetic phantoms only; not for clinical use), used when no model
/// is given: `$SACRO_DEMO_MODEL` (empty: none), an installed package's `share/sacro/models/demo-phantom`
/// beside the binary, or the source tree's `models/demo-phantom`; `None` where none of them holds a card.
pub fn bundled_demo() -> Option<PathBuf> {
    let has_card = |d: &Path| d.join(CARD_FILE).is_file();
    if let Some(p) = std::env::var_os("SACRO_DEMO_MODEL") {
        let p = PathBuf::from(p);
        return (!p.as_os_str().is_empty() && has_card(&p)).then_some(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(prefix) = exe.parent().and_then(Path::parent)
    {
        let installed = prefix.join("share/sacro/models").join(DEMO_MODEL);
        if has_card(&installed) {
            return Some(installed);
        }
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(DEMO_MODEL);
    has_card(&source).then_some(source)
}

/// Copies the model folder `src` to `dst` (created) with its weights stored as f16: half the size, for
/// shipping a model. Loading converts them back to f32, so predictions change only by f16 rounding. The
/// other files of the folder (training history, configuration, validation predictions) are copied as
/// they are; the card gets the new SHA-256. Fails, writing nothing, if a weight does not fit in f16.
pub fn save_half(src: &Path, dst: &Path) -> Result<ModelCard, ModelError> {
    let io = |path: PathBuf| move |source| ModelError::Io { path, source };
    let card = read_card(src)?;
    let weights_path = src.join(WEIGHTS_FILE);
    let loaded = weights::load_safetensors(&weights_path, card.architecture, &Device::Cpu)?;
    if loaded.sha256 != card.weights_sha256 {
        return Err(ModelError::Weights {
            path: weights_path,
            detail: "SHA-256 differs from the card's".into(),
        });
    }
    let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)?;
    let mut half = std::collections::HashMap::with_capacity(tensors.len());
    for (name, t) in tensors {
        let h = t.to_dtype(candle_core::DType::F16)?;
        let back = h
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if back.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Weights {
                path: weights_path,
                detail: format!("tensor {name} has values outside f16's range"),
            });
        }
        half.insert(name, h);
    }
    std::fs::create_dir_all(dst).map_err(io(dst.to_path_buf()))?;
    let entries = std::fs::read_dir(src).map_err(io(src.to_path_buf()))?;
    for entry in entries {
        let entry = entry.map_err(io(src.to_path_buf()))?;
        let name = entry.file_name();
        let is_file = entry.file_type().map_err(io(entry.path()))?.is_file();
        if is_file && name != WEIGHTS_FILE && name != CARD_FILE {
            std::fs::copy(entry.path(), dst.join(&name)).map_err(io(entry.path()))?;
        }
    }
    let out = dst.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&half, &out)?;
    let bytes = std::fs::read(&out).map_err(io(out.clone()))?;
    let card = ModelCard {
        weights_sha256: sha256_hex(&bytes),
        ..card
    };
    write_card(dst, &card)?;
    Ok(card)
}

/// Reads and checks a model folder's card only (no weights): what a caller needs to find the model's
/// recorded predictions by SHA-256, or its cut-offs.
pub fn read_card(dir: &Path) -> Result<ModelCard, ModelError> {
    let card_path = dir.join(CARD_FILE);
    let text = std::fs::read_to_string(&card_path).map_err(|source| ModelError::Io {
        path: card_path.clone(),
        source,
    })?;
    let card: ModelCard = serde_json::from_str(&text).map_err(|e| ModelError::Weights {
        path: card_path.clone(),
        detail: format!("not a Sacro model card: {e}"),
    })?;
    card.check().map_err(|detail| ModelError::Weights {
        path: card_path,
        detail,
    })?;
    Ok(card)
}

/// The largest input side a card may ask for (the seed study's schedule ends at 768).
pub const MAX_INPUT_SIDE: u32 = 2048;

impl ModelCard {
    /// Checks every field a program acts on before anything is allocated or computed from it: the
    /// architecture's sizes, the input side, the normalisation (finite, standard deviations above zero),
    /// the classes and the cut-offs (probabilities).
    pub fn check(&self) -> Result<(), String> {
        let a = &self.architecture;
        let r = &a.resnet;
        if r.layers.iter().any(|&n| n == 0 || n > 64)
            || !(1..=1024).contains(&r.width_per_group)
            || !(1..=16).contains(&r.expansion)
        {
            return Err(format!(
                "architecture {r:?} is outside what Sacro builds (1–64 blocks per stage, width per group \
                 1–1024, expansion 1–16)"
            ));
        }
        if let super::HeadKind::Fastai { hidden } = a.head
            && !(1..=65_536).contains(&hidden)
        {
            return Err(format!("head width {hidden} is outside 1–65536"));
        }
        if !(2..=10_000).contains(&a.classes) {
            return Err(format!("{} outputs: expected 2–10000", a.classes));
        }
        if self.positive_class >= a.classes || self.class_names.len() != a.classes {
            return Err(format!(
                "{} class names and positive class {} for a model with {} outputs",
                self.class_names.len(),
                self.positive_class,
                a.classes
            ));
        }
        let p = &self.preprocess;
        if !(16..=MAX_INPUT_SIDE).contains(&p.size) {
            return Err(format!(
                "input size {} is outside 16–{MAX_INPUT_SIDE} pixels",
                p.size
            ));
        }
        if p.mean.iter().any(|m| !m.is_finite()) {
            return Err(format!("normalisation mean {:?} is not finite", p.mean));
        }
        if p.std.iter().any(|s| !s.is_finite() || *s <= 1e-6) {
            return Err(format!(
                "normalisation standard deviation {:?}: each must be finite and above zero",
                p.std
            ));
        }
        if let Some(c) = &self.cutoffs
            && let Some((name, v)) = c
                .named()
                .into_iter()
                .find(|(_, v)| !(0.0..=1.0).contains(v))
        {
            return Err(format!(
                "the {name} cut-off {v} is not a probability in [0, 1]"
            ));
        }
        Ok(())
    }
}

/// Reads a model folder: the card, then the weights, checking their SHA-256 against the card.
pub fn load(dir: &Path, device: &Device) -> Result<(ModelCard, LoadedNetwork), ModelError> {
    let card = read_card(dir)?;
    let loaded = weights::load_safetensors(&dir.join(WEIGHTS_FILE), card.architecture, device)?;
    if loaded.sha256 != card.weights_sha256 {
        return Err(ModelError::Weights {
            path: dir.join(WEIGHTS_FILE),
            detail: format!(
                "SHA-256 {} differs from the card's {}: the weights changed after the card was written",
                loaded.sha256, card.weights_sha256
            ),
        });
    }
    Ok((card, loaded))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled demo model's card with one field changed, read back from a folder.
    fn read_changed(change: impl FnOnce(&mut serde_json::Value)) -> Result<ModelCard, ModelError> {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo-phantom/model.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(demo).expect("demo card")).expect("json");
        change(&mut v);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(CARD_FILE), v.to_string()).expect("write");
        read_card(dir.path())
    }

    /// Card values that made Sacro allocate 40 GB or divide by zero are refused with the field named.
    #[test]
    fn card_values_are_checked_on_load() {
        assert!(read_changed(|_| {}).is_ok());
        type Change = fn(&mut serde_json::Value);
        let cases: [(&str, Change); 5] = [
            ("input size", |v| v["preprocess"]["size"] = 100_000.into()),
            ("standard deviation", |v| {
                v["preprocess"]["std"] = serde_json::json!([0.0, 0.0, 0.0])
            }),
            (
                "cut-off",
                |v| {
                    v["cutoffs"] =
                        serde_json::json!({"sensitive": -1.0, "balanced": 0.5, "specific": 0.9})
                },
            ),
            ("architecture", |v| {
                v["architecture"]["resnet"]["layers"] = serde_json::json!([3, 4, 100000, 3])
            }),
            ("head width", |v| {
                v["architecture"]["head"] = serde_json::json!({"Fastai": {"hidden": 1_000_000_000}})
            }),
        ];
        for (what, change) in cases {
            let e = read_changed(change).expect_err(what).to_string();
            assert!(e.contains(what) && e.contains(CARD_FILE), "{what}: {e}");
        }
    }
}
