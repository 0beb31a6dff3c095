//! The network's convolution layer: a bias-free weight and the kernel path it takes
//! ([`crate::kernels::path`]): im2col/1×1/Winograd ops on the CPU ([`crate::kernels::conv`]), tensor
//! operations with a GEMM backward where `SACRO_CONV=tensor`, candle's `conv2d` otherwise.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};

use crate::kernels::conv::{conv2d_im2col, conv2d_im2col_bn_eval, tensor::conv2d_gemm};
use crate::kernels::path::{ConvPath, conv_path};

/// A bias-free 2-D convolution (every convolution in a ResNet is followed by batch norm).
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv {
    /// A `k × k` convolution from `cin` to `cout` channels with the given stride and padding; its weight
    /// is `vb`'s `weight` (torchvision's layout `[cout, cin, k, k]`, Kaiming-normal when created).
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (cout, cin, k, k),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        Ok(Self {
            weight,
            stride,
            padding,
        })
    }
}

impl Conv {
    /// The weight `[cout, cin, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Stride and zero padding.
    pub fn stride_padding(&self) -> (usize, usize) {
        (self.stride, self.padding)
    }

    /// The same convolution on its weight detached: no gradient for the weight (a frozen body).
    pub fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            ..self.clone()
        }
    }
}

impl Conv {
    /// `x` through this convolution and evaluation-mode batch norm `params = [scale; shift]` (+ ReLU)
    /// as one op ([`conv2d_im2col_bn_eval`]); `None` where that op does not apply (not the CPU path,
    /// not f32/f64, or something here carries a graph), and the caller takes the separate ops.
    pub fn forward_bn_eval(
        &self,
        x: &Tensor,
        params: &Tensor,
        relu: bool,
    ) -> Result<Option<Tensor>> {
        let applies = conv_path() == ConvPath::Im2Col
            && x.device().is_cpu()
            && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
            && params.dtype() == x.dtype()
            && !(x.track_op() || self.weight.track_op() || params.track_op());
        if !applies {
            return Ok(None);
        }
        conv2d_im2col_bn_eval(x, &self.weight, self.stride, self.padding, params, relu).map(Some)
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match (conv_path(), x.device()) {
            (ConvPath::Im2Col, candle_core::Device::Cpu) => {
                conv2d_im2col(x, &self.weight, self.stride, self.padding)
            }
            // Matrix multiplies in the backward pass, not candle's direct `conv_transpose2d` kernel;
            // without a graph candle's forward is as fast and keeps nothing.
            (ConvPath::Tensor, _) if x.track_op() || self.weight.track_op() => {
                conv2d_gemm(x, &self.weight, self.stride, self.padding)
            }
            _ => x.conv2d(&self.weight, self.padding, self.stride, 1, 1),
        }
    }
}
