//! ResNet with bottleneck blocks, torchvision's tensor names (`conv1`, `bn1`, `layerN.i.convK`,
//! `layerN.i.bnK`, `layerN.0.downsample.{0,1}`), `ModuleT` train/eval, and the body split into
//! [`ResNet::features`] (through layer4) so that Grad-CAM can take the gradient at layer4's output.
//!
//! [`ResNetConfig::resnet50`] is torchvision's `resnet50`; smaller configurations (fewer blocks, narrower
//! bottlenecks, expansion 1) exist for tests and fixtures.

use candle_core::{DType, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};

use super::block;
use super::bottleneck::Bottleneck;
use super::checkpoint::checkpointed;
use super::conv::Conv;
use super::grads::ParamGrads;
use super::norm::Norm;
use crate::kernels::path::{ConvPath, conv_path};
use crate::kernels::pool;

/// Shape of a bottleneck ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResNetConfig {
    /// Blocks per stage (ResNet-50: 3, 4, 6, 3).
    pub layers: [usize; 4],
    /// torchvision's `width_per_group` (64): bottleneck width = planes × width_per_group / 64.
    pub width_per_group: usize,
    /// Output channels per plane (torchvision's `Bottleneck.expansion`, 4).
    pub expansion: usize,
}

impl ResNetConfig {
    /// torchvision's ResNet-50.
    pub fn resnet50() -> Self {
        Self {
            layers: [3, 4, 6, 3],
            width_per_group: 64,
            expansion: 4,
        }
    }

    /// Channels of layer4's output (2048 for ResNet-50).
    pub fn feature_channels(&self) -> usize {
        512 * self.expansion
    }
}

/// The convolutional body of a ResNet (no pooling or classifier).
#[derive(Debug, Clone)]
pub struct ResNet {
    conv1: Conv,
    bn1: Norm,
    stages: Vec<Vec<Bottleneck>>,
    config: ResNetConfig,
    /// Gradient checkpointing of the blocks in training.
    checkpoint_blocks: bool,
    /// The blocks as one graph node in training where that applies ([`block`]); off: the per-op graph.
    one_node_blocks: bool,
    /// Where blocks that compute their parameters' gradients themselves leave them.
    param_grads: ParamGrads,
    /// Convolution weights frozen (fastai's frozen body): where the CPU path allows, no gradient is
    /// computed for them.
    frozen_convolutions: bool,
}

impl ResNet {
    /// Builds the body under `vb` (names at its root, as in torchvision's state dict).
    pub fn new(config: ResNetConfig, vb: VarBuilder) -> Result<Self> {
        let conv1 = Conv::new(3, 64, 7, 2, 3, vb.pp("conv1"))?;
        let bn1 = Norm::new(64, vb.pp("bn1"))?;
        let mut cin = 64;
        let mut stages = Vec::with_capacity(4);
        for (s, (&blocks, planes)) in config.layers.iter().zip([64, 128, 256, 512]).enumerate() {
            let vb_stage = vb.pp(format!("layer{}", s + 1));
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                let (width, cout) = (
                    planes * config.width_per_group / 64,
                    planes * config.expansion,
                );
                stage.push(Bottleneck::new(
                    (cin, width, cout),
                    stride,
                    vb_stage.pp(b.to_string()),
                )?);
                cin = planes * config.expansion;
            }
            stages.push(stage);
        }
        Ok(Self {
            conv1,
            bn1,
            stages,
            config,
            checkpoint_blocks: false,
            one_node_blocks: true,
            param_grads: ParamGrads::default(),
            frozen_convolutions: false,
        })
    }

    /// Whether training recomputes each block in the backward pass instead of keeping its intermediates
    /// (see [`super::checkpoint`]; CPU only, ignored elsewhere).
    pub fn set_checkpointing(&mut self, on: bool) {
        self.checkpoint_blocks = on;
    }

    /// Whether training runs the blocks as one graph node with its own backward pass (on by default;
    /// CPU, f32/f64, the im2col path; see [`block`]) or as the per-op graph: for tests that compare them.
    pub fn set_one_node_blocks(&mut self, on: bool) {
        self.one_node_blocks = on;
    }

    /// Whether the convolutions' weights are frozen (fastai's frozen phase: head and batch norms train).
    /// Then training computes no gradient for them where it can skip it (the stem, and one-node blocks:
    /// no weight-gradient products, no column matrices rebuilt); elsewhere they are computed and the
    /// optimiser leaves them unused, as before.
    pub fn set_frozen_convolutions(&mut self, frozen: bool) {
        self.frozen_convolutions = frozen;
    }

    /// Parameter gradients left by blocks that compute them themselves (merge them after a backward
    /// pass: [`super::Network::backward`]).
    pub fn param_grads(&self) -> &ParamGrads {
        &self.param_grads
    }

    /// The configuration.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// Stem and the four stages: `[n, 3, h, w]` → layer4's output `[n, C, h/32, w/32]`.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = if train && self.frozen_convolutions {
            self.bn1
                .forward_conv(&self.conv1.detached(), x, train, true)?
        } else {
            self.bn1.forward_conv(&self.conv1, x, train, true)?
        };
        let mut y = pool::max_pool_3x3_s2(&y)?;
        let cpu_train = train && x.device().is_cpu();
        let checkpoint = cpu_train && self.checkpoint_blocks;
        let one_node = cpu_train
            && self.one_node_blocks
            && conv_path() == ConvPath::Im2Col
            && matches!(y.dtype(), DType::F32 | DType::F64);
        if checkpoint || one_node {
            self.param_grads.clear();
        }
        if one_node && !checkpoint {
            let parts: Vec<block::Parts> = self
                .stages
                .iter()
                .flatten()
                .map(Bottleneck::parts)
                .collect();
            return block::forward(&parts, &y, &self.param_grads, !self.frozen_convolutions);
        }
        for stage in &self.stages {
            for block in stage {
                y = if checkpoint {
                    checkpointed(block, &y, &self.param_grads)?
                } else {
                    block.forward_t(&y, train)?
                };
            }
        }
        Ok(y)
    }
}
