//! One TOML file describes a whole training run. Its defaults are the seed study's schedule (fastai's
//! defaults where the paper is silent): ResNet-50 with fastai's head, 85/15 stratified split, stages
//! 224 → 512 → 768 px with batch sizes 64/32/84, each stage frozen then unfrozen for 100 + 100 epochs,
//! one-cycle with `lr_max` 2e-3 frozen and `slice(1e-5, 1e-3)` unfrozen (fastai's `fine_tune`
//! rates), Adam with decoupled weight decay 0.01, MixUp α 0.4, label smoothing 0.1 and `aug_transforms`.

use std::path::{Path, PathBuf};

use super::TrainError;
use super::augment::AugmentConfig;
use super::optim::AdamConfig;
use crate::imaging::WindowPolicy;
use crate::model::NetworkConfig;
use crate::model::preprocess::Fit;

/// One progressive-resizing stage.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Square input side in pixels.
    pub size: u32,
    /// Effective batch size (reached by gradient accumulation when a smaller micro-batch must be used).
    pub batch: usize,
    /// Epochs with the body frozen (head and batch norm train).
    pub frozen_epochs: usize,
    /// Epochs with everything trainable.
    pub unfrozen_epochs: usize,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of the split, the shuffles, augmentation and MixUp.
    pub seed: u64,
    /// Fraction of cases held out for validation (stratified), when the data has no split column.
    pub valid_pct: f64,
    /// Network to train.
    pub architecture: NetworkConfig,
    /// Start from these weights (a model folder or a `.safetensors` file); random initialisation if absent
    /// (the seed study started from ImageNet weights: import them with `sacro model import`).
    pub base_weights: Option<PathBuf>,
    /// Pad or crop non-square films.
    pub fit: Fit,
    /// How films are windowed: display-ready 8-bit images as stored (`v / 255`, the default) or every film
    /// through its file window or the automatic one (recorded in the model card).
    pub window: WindowPolicy,
    /// Progressive resizing stages, in order.
    pub stages: Vec<Stage>,
    /// One-cycle maximum learning rate while frozen.
    pub lr_frozen: f64,
    /// `slice(low, high)` of the unfrozen phases: the three groups' maxima spread geometrically.
    pub lr_unfrozen: [f64; 2],
    /// Optimiser.
    pub adam: AdamConfig,
    /// MixUp α; 0 switches MixUp off.
    pub mixup_alpha: f64,
    /// Label-smoothing ε; 0 is plain cross-entropy.
    pub label_smoothing: f64,
    /// Augment training images.
    pub augment_enabled: bool,
    /// Augmentation parameters.
    pub augment: AugmentConfig,
    /// Largest micro-batch; 0 = choose from the memory available.
    pub max_micro_batch: usize,
    /// Recompute each bottleneck block in the backward pass instead of keeping its intermediates
    /// (gradient checkpointing, CPU only): less memory for about a third more arithmetic per step.
    pub checkpoint_blocks: bool,
    /// Stop a phase after this many epochs without a better validation AUC.
    pub early_stopping_patience: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let stage = |size, batch| Stage {
            size,
            batch,
            frozen_epochs: 100,
            unfrozen_epochs: 100,
        };
        Self {
            seed: 42,
            valid_pct: 0.15,
            architecture: NetworkConfig::sacroiliitis(),
            base_weights: None,
            fit: Fit::Pad,
            window: WindowPolicy::AsStored8Bit,
            stages: vec![stage(224, 64), stage(512, 32), stage(768, 84)],
            lr_frozen: 2e-3,
            lr_unfrozen: [1e-5, 1e-3],
            adam: AdamConfig::default(),
            mixup_alpha: 0.4,
            label_smoothing: 0.1,
            augment_enabled: true,
            augment: AugmentConfig::default(),
            max_micro_batch: 0,
            checkpoint_blocks: false,
            early_stopping_patience: None,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file (missing keys take the defaults; unknown keys are errors).
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|detail| TrainError::Config {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot serialise: {e}\n"))
    }

    /// Rejects values that cannot work, naming the key.
    pub fn check(&self) -> Result<(), String> {
        if !(self.valid_pct > 0.0 && self.valid_pct < 1.0) {
            return Err(format!("valid_pct {} must be in (0, 1)", self.valid_pct));
        }
        if self.stages.is_empty() {
            return Err("stages: at least one stage is needed".into());
        }
        for (i, s) in self.stages.iter().enumerate() {
            if !(32..=2048).contains(&s.size) {
                return Err(format!(
                    "stages[{i}].size {} must be 32–2048 pixels",
                    s.size
                ));
            }
            if s.batch < 2 {
                return Err(format!(
                    "stages[{i}].batch {} must be at least 2 (batch norm)",
                    s.batch
                ));
            }
        }
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} {v} must be a positive number"))
            }
        };
        positive("lr_frozen", self.lr_frozen)?;
        positive("lr_unfrozen[0]", self.lr_unfrozen[0])?;
        positive("lr_unfrozen[1]", self.lr_unfrozen[1])?;
        if self.lr_unfrozen[0] > self.lr_unfrozen[1] {
            return Err("lr_unfrozen: [low, high] with low ≤ high".into());
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!(
                "label_smoothing {} must be in [0, 1)",
                self.label_smoothing
            ));
        }
        if !(self.mixup_alpha >= 0.0 && self.mixup_alpha.is_finite()) {
            return Err(format!("mixup_alpha {} must be ≥ 0", self.mixup_alpha));
        }
        if !(0.0..1.0).contains(&self.adam.beta2) || self.adam.eps <= 0.0 {
            return Err("adam: beta2 in [0, 1) and eps > 0".into());
        }
        if self.architecture.classes != 2 {
            return Err(format!(
                "architecture.classes {} : training is binary (definite sacroiliitis no/yes)",
                self.architecture.classes
            ));
        }
        Ok(())
    }

    /// The largest stage size: images are cached at this size.
    pub fn cache_size(&self) -> u32 {
        self.stages.iter().map(|s| s.size).max().unwrap_or(224)
    }

    /// The phases in order: each stage frozen (if it has frozen epochs), then unfrozen.
    pub fn phases(&self) -> Vec<Phase> {
        let mut out = Vec::new();
        for (i, s) in self.stages.iter().enumerate() {
            for (frozen, epochs) in [(true, s.frozen_epochs), (false, s.unfrozen_epochs)] {
                if epochs > 0 {
                    out.push(Phase {
                        index: out.len(),
                        stage: i,
                        size: s.size,
                        batch: s.batch,
                        frozen,
                        epochs,
                    });
                }
            }
        }
        out
    }

    /// Maximum learning rate of each group in a phase.
    pub fn rates(&self, frozen: bool) -> [f64; 3] {
        if frozen {
            [self.lr_frozen; 3]
        } else {
            super::groups::discriminative(self.lr_unfrozen[0], self.lr_unfrozen[1])
        }
    }
}

/// One `fit_one_cycle` call of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Phase {
    /// 0-based position in the run.
    pub index: usize,
    /// Stage it belongs to.
    pub stage: usize,
    /// Input side.
    pub size: u32,
    /// Effective batch.
    pub batch: usize,
    /// Body frozen.
    pub frozen: bool,
    /// Epochs.
    pub epochs: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_study_schedule_and_round_trip() {
        let cfg = TrainConfig::default();
        let phases = cfg.phases();
        assert_eq!(phases.len(), 6);
        assert_eq!(
            phases
                .iter()
                .map(|p| (p.size, p.frozen))
                .collect::<Vec<_>>(),
            vec![
                (224, true),
                (224, false),
                (512, true),
                (512, false),
                (768, true),
                (768, false)
            ]
        );
        assert_eq!(cfg.cache_size(), 768);
        let text = cfg.to_toml();
        assert_eq!(TrainConfig::parse(&text).unwrap(), cfg);
        // Missing keys take the defaults.
        let small = TrainConfig::parse(
            "seed = 7\n[[stages]]\nsize = 64\nbatch = 4\nfrozen_epochs = 1\nunfrozen_epochs = 0\n",
        )
        .unwrap();
        assert_eq!(small.seed, 7);
        assert_eq!(small.phases().len(), 1);
        assert_eq!(small.mixup_alpha, 0.4);
        let r = cfg.rates(false);
        assert!((r[0] - 1e-5).abs() < 1e-18 && (r[1] - 1e-4).abs() < 1e-15);
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (text, needle) in [
            ("valid_pct = 1.5", "valid_pct"),
            ("stages = []", "stages"),
            (
                "[[stages]]\nsize = 8\nbatch = 4\nfrozen_epochs = 1\nunfrozen_epochs = 0",
                "stages[0].size",
            ),
            ("lr_frozen = -1.0", "lr_frozen"),
            ("lr_unfrozen = [1e-3, 1e-5]", "lr_unfrozen"),
            ("learning_rate = 3", "learning_rate"),
            ("label_smoothing = 1.0", "label_smoothing"),
        ] {
            let err = TrainConfig::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
