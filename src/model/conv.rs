//! The one place where the network's convolutions are made. Today it is candle's stock `Conv2d`; the
//! fast CPU convolution of a later issue replaces this file's internals without touching `resnet.rs`.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2dConfig, Module, VarBuilder};

/// A bias-free 2-D convolution (every convolution in a ResNet is followed by batch norm).
#[derive(Debug, Clone)]
pub struct Conv {
    inner: candle_nn::Conv2d,
}

impl Conv {
    /// A `k × k` convolution from `cin` to `cout` channels with the given stride and padding; its weight
    /// is `vb`'s `weight` (torchvision's layout `[cout, cin, k, k]`).
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding,
            stride,
            dilation: 1,
            groups: 1,
            cudnn_fwd_algo: None,
        };
        Ok(Self {
            inner: candle_nn::conv2d_no_bias(cin, cout, k, cfg, vb)?,
        })
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x)
    }
}
