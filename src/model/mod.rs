//! The network: a candle ResNet-50 body with torchvision's names and a classification head (fastai's, as
//! the seed study trained, or torchvision's `fc`), split into [`Network::features`] (through layer4) and
//! [`Network::head`] for Grad-CAM. Weights are loaded tensor by tensor with checks of names, shapes and
//! values, so that a wrong file says which tensor is missing or wrong. Never sees DICOM or egui: the model
//! takes plain pixel buffers.

pub(crate) mod block;
pub mod bottleneck;
pub mod card;
pub mod checkpoint;
pub mod conv;
pub mod gradcam;
pub mod grads;
pub mod head;
pub mod init;
pub mod norm;
pub mod pickle;
pub mod predict;
pub mod preprocess;
pub mod pth;
pub mod resnet;
pub mod weights;

use candle_core::{DType, Result};
pub use candle_core::{Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::kernels::cpu;
pub use crate::kernels::set_passes_on_pool;
pub use head::{Head, HeadKind};
pub use resnet::{ResNet, ResNetConfig};

/// Why a model could not be built, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading a file failed.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// File.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The weights do not fit the architecture (missing, unexpected or mis-shaped tensors) or are not usable.
    #[error("{path}: {detail}")]
    Weights {
        /// File.
        path: std::path::PathBuf,
        /// Which tensor and what is wrong.
        detail: String,
    },
    /// A tensor operation failed.
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Architecture of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkConfig {
    /// The body.
    pub resnet: ResNetConfig,
    /// The head.
    pub head: HeadKind,
    /// Number of outputs (2 for definite sacroiliitis: [no, yes]; 1000 for ImageNet).
    pub classes: usize,
}

impl NetworkConfig {
    /// ResNet-50 with fastai's head and two classes, as the seed study.
    pub fn sacroiliitis() -> Self {
        Self {
            resnet: ResNetConfig::resnet50(),
            head: HeadKind::Fastai { hidden: 512 },
            classes: 2,
        }
    }

    /// torchvision's ImageNet ResNet-50.
    pub fn imagenet_resnet50() -> Self {
        Self {
            resnet: ResNetConfig::resnet50(),
            head: HeadKind::Torchvision,
            classes: 1000,
        }
    }
}

/// Body and head.
#[derive(Debug, Clone)]
pub struct Network {
    body: ResNet,
    head: Head,
    config: NetworkConfig,
}

impl Network {
    /// Builds the network from a `VarBuilder` (the same code loads weights or initialises for training).
    pub fn new(config: NetworkConfig, vb: VarBuilder) -> Result<Self> {
        let body = ResNet::new(config.resnet, vb.clone())?;
        let head = Head::new(
            config.head,
            config.resnet.feature_channels(),
            config.classes,
            vb,
        )?;
        Ok(Self { body, head, config })
    }

    /// A network with freshly initialised weights in a new `VarMap` (every parameter trainable).
    pub fn initialised(config: NetworkConfig, device: &Device) -> Result<(Self, VarMap)> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let net = Self::new(config, vb)?;
        Ok((net, varmap))
    }

    /// A network initialised reproducibly from `seed` (see [`init::seeded`]).
    pub fn initialised_seeded(
        config: NetworkConfig,
        device: &Device,
        seed: u64,
    ) -> Result<(Self, VarMap)> {
        let (net, varmap) = Self::initialised(config, device)?;
        init::seeded(&varmap, seed)?;
        Ok((net, varmap))
    }

    /// The architecture.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Layer4's output for a batch `[n, 3, h, w]`.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        cpu::on_pool(x.device(), || self.body.features(x, train))
    }

    /// Logits from layer4's output.
    pub fn head(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        self.head.forward_t(features, train)
    }

    /// Logits for a batch in training mode, dropout seeded (reproducible training).
    pub fn forward_train(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        self.head.forward_seeded(&self.features(x, true)?, seed)
    }

    /// Logits for a batch.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.head(&self.features(x, train)?, train)
    }

    /// Gradient checkpointing of the body's blocks in training (see [`checkpoint`]).
    pub fn set_checkpointing(&mut self, on: bool) {
        self.body.set_checkpointing(on);
    }

    /// Convolution weights frozen or not (see [`resnet::ResNet::set_frozen_convolutions`]).
    pub fn set_frozen_convolutions(&mut self, frozen: bool) {
        self.body.set_frozen_convolutions(frozen);
    }

    /// Training with the blocks as one graph node (default) or as the per-op graph (see [`block`]).
    pub fn set_one_node_blocks(&mut self, on: bool) {
        self.body.set_one_node_blocks(on);
    }

    /// The gradients of `loss` with respect to every variable, those of blocks that compute their own
    /// (checkpointed or one-node blocks) included:
    /// use this, not `loss.backward()`, for a loss computed by this network.
    pub fn backward(&self, loss: &Tensor) -> Result<candle_core::backprop::GradStore> {
        cpu::on_pool(loss.device(), || {
            let mut grads = loss.backward()?;
            self.body.param_grads().merge(&mut grads)?;
            Ok(grads)
        })
    }
}

/// A batch of standard-normal inputs `[n, 3, size, size]` (benchmarks and tests).
pub fn random_input(n: usize, size: usize, device: &Device) -> Result<Tensor> {
    Tensor::randn(0f32, 1f32, (n, 3, size, size), device)
}
