//! torchvision's bottleneck block (1×1 → 3×3 → 1×1, each with batch norm, plus the shortcut) with its
//! tensor names, on the per-op path; [`super::block`] runs the same parts as one node and
//! [`super::checkpoint`] recomputes them.

use candle_core::{Result, Tensor};
use candle_nn::{Module, ModuleT, VarBuilder};

use super::block;
use super::conv::Conv;
use super::norm::Norm;

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
    /// `cin` channels in, `width` inside the bottleneck, `cout` out; the 3×3 convolution (and the
    /// shortcut's 1×1, where the shape changes) with `stride`.
    pub(crate) fn new(
        (cin, width, cout): (usize, usize, usize),
        stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
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
    pub(crate) fn parts(&self) -> block::Parts<'_> {
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
