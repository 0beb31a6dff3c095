//! ResNet with bottleneck blocks, torchvision's tensor names (`conv1`, `bn1`, `layerN.i.convK`,
//! `layerN.i.bnK`, `layerN.0.downsample.{0,1}`), `ModuleT` train/eval, and the body split into
//! [`ResNet::features`] (through layer4) so that Grad-CAM can take the gradient at layer4's output.
//!
//! [`ResNetConfig::resnet50`] is torchvision's `resnet50`; smaller configurations (fewer blocks, narrower
//! bottlenecks, expansion 1) exist for tests and fixtures.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Module, ModuleT, VarBuilder};

use super::block;
use super::checkpoint::{ParamGrads, checkpointed};
use super::conv::Conv;
use super::conv::{ConvPath, conv_path};
use super::norm::Norm;
use super::pool;

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

fn bn(c: usize, vb: VarBuilder) -> Result<Norm> {
    Norm::new(c, vb)
}

/// torchvision's `Bottleneck`: 1×1 → 3×3 (stride) → 1×1, each with batch norm, plus the shortcut.
#[derive(Debug, Clone)]
pub struct Bottleneck {
    conv1: Conv,
    bn1: Norm,
    conv2: Conv,
    bn2: Norm,
    conv3: Conv,
    bn3: Norm,
    downsample: Option<(Conv, Norm)>,
}

impl Bottleneck {
    fn new(
        cin: usize,
        planes: usize,
        stride: usize,
        cfg: &ResNetConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        let width = planes * cfg.width_per_group / 64;
        let cout = planes * cfg.expansion;
        let downsample = if stride != 1 || cin != cout {
            Some((
                Conv::new(cin, cout, 1, stride, 0, vb.pp("downsample.0"))?,
                bn(cout, vb.pp("downsample.1"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: Conv::new(cin, width, 1, 1, 0, vb.pp("conv1"))?,
            bn1: bn(width, vb.pp("bn1"))?,
            conv2: Conv::new(width, width, 3, stride, 1, vb.pp("conv2"))?,
            bn2: bn(width, vb.pp("bn2"))?,
            conv3: Conv::new(width, cout, 1, 1, 0, vb.pp("conv3"))?,
            bn3: bn(cout, vb.pp("bn3"))?,
            downsample,
        })
    }
}

impl Bottleneck {
    fn norms(&self) -> Vec<&Norm> {
        let mut v = vec![&self.bn1, &self.bn2, &self.bn3];
        v.extend(self.downsample.as_ref().map(|(_, bn)| bn));
        v
    }

    /// The block's trained tensors: convolution weights, batch-norm scales and shifts.
    pub fn parameters(&self) -> Vec<Tensor> {
        let mut v: Vec<Tensor> = [&self.conv1, &self.conv2, &self.conv3]
            .into_iter()
            .chain(self.downsample.as_ref().map(|(conv, _)| conv))
            .map(|c| c.weight().clone())
            .collect();
        v.extend(self.norms().into_iter().flat_map(Norm::parameters));
        v
    }

    /// Copies of every batch norm's running statistics.
    pub fn running_statistics(&self) -> Result<Vec<[Tensor; 2]>> {
        self.norms()
            .into_iter()
            .map(Norm::running_statistics)
            .collect()
    }

    /// Sets them back (from [`Bottleneck::running_statistics`]).
    pub fn set_running_statistics(&self, saved: &[[Tensor; 2]]) -> Result<()> {
        for (norm, s) in self.norms().into_iter().zip(saved) {
            norm.set_running_statistics(s)?;
        }
        Ok(())
    }
}

impl Bottleneck {
    /// The parts, for [`block`]'s one-node chain.
    fn parts(&self) -> block::Parts<'_> {
        block::Parts {
            conv1: &self.conv1,
            bn1: &self.bn1,
            conv2: &self.conv2,
            bn2: &self.bn2,
            conv3: &self.conv3,
            bn3: &self.bn3,
            downsample: self.downsample.as_ref().map(|(c, n)| (c, n)),
        }
    }
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_conv(&self.conv1, x, train, true)?;
        let y = self.bn2.forward_conv(&self.conv2, &y, train, true)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward_conv(conv, x, train, false)?,
            None => x.clone(),
        };
        self.bn3
            .forward_add_relu(&self.conv3.forward(&y)?, &shortcut, train)
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
        let bn1 = bn(64, vb.pp("bn1"))?;
        let mut cin = 64;
        let mut stages = Vec::with_capacity(4);
        for (s, (&blocks, planes)) in config.layers.iter().zip([64, 128, 256, 512]).enumerate() {
            let vb_stage = vb.pp(format!("layer{}", s + 1));
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                stage.push(Bottleneck::new(
                    cin,
                    planes,
                    stride,
                    &config,
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
