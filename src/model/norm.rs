//! Batch normalisation of the ResNet's activations (the layer: scale, shift and running statistics with
//! torchvision's names), fused with the ReLU that follows it where there is one.
//!
//! Two paths, chosen with the convolutions' ([`crate::kernels::path::conv_path`]; `SACRO_CONV=stock`
//! keeps candle's):
//! - **fused** (CPU, f32 and f64): [`crate::kernels::norm`]'s passes, in training and in evaluation.
//! - **stock**: `candle_nn::BatchNorm` then `relu()`; also used on GPUs.
//!
//! Both update the running statistics as PyTorch does (momentum 0.1, unbiased variance).

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{BatchNorm, ModuleT, VarBuilder};

use super::conv::Conv;
use crate::kernels::norm::{self as kernel, BatchStats, BlockEnd, NormTrain};
use crate::kernels::path::{ConvPath, conv_path};

/// Batch norm over dimension 1 of `[n, c, …]` inputs (BatchNorm2d, or BatchNorm1d on `[n, c]`), with
/// torchvision's tensor names (`weight`, `bias`, `running_mean`, `running_var`).
#[derive(Debug, Clone)]
pub struct Norm {
    stock: BatchNorm,
    running_mean: Var,
    running_var: Var,
}

impl Norm {
    /// The layer for `channels` channels (PyTorch's defaults: eps 1e-5, momentum 0.1, affine).
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let stock = candle_nn::batch_norm(channels, candle_nn::BatchNormConfig::default(), vb)?;
        // The running statistics are the VarMap's variables: setting them here updates what is saved.
        let running_mean = Var::from_tensor(stock.running_mean())?;
        let running_var = Var::from_tensor(stock.running_var())?;
        Ok(Self {
            stock,
            running_mean,
            running_var,
        })
    }

    /// Normalises `x` (batch statistics when `train`, running statistics otherwise), then applies the
    /// ReLU when `relu`.
    pub fn forward(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        self.forward_on(conv_path(), x, train, relu)
    }

    /// `relu(norm(x) + residual)`: the end of a bottleneck block, one pass on the fused path (neither the
    /// normalised `x` nor the sum is kept for the backward pass).
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_add_relu_on(conv_path(), x, residual, train)
    }

    /// [`Norm::forward_add_relu`] on the given path.
    pub fn forward_add_relu_on(
        &self,
        path: ConvPath,
        x: &Tensor,
        residual: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        if !Self::fused(path, x) || residual.dims() != x.dims() || residual.dtype() != x.dtype() {
            return (self.stock.forward_t(x, train)? + residual)?.relu();
        }
        self.fused_forward(&x.contiguous()?, Some(&residual.contiguous()?), train, true)
    }

    /// Scale and shift (the trained parameters).
    pub fn parameters(&self) -> Vec<Tensor> {
        self.stock
            .weight_and_bias()
            .map(|(w, b)| vec![w.clone(), b.clone()])
            .unwrap_or_default()
    }

    /// Copies of the running mean and variance.
    pub fn running_statistics(&self) -> Result<[Tensor; 2]> {
        Ok([
            self.running_mean.as_tensor().copy()?,
            self.running_var.as_tensor().copy()?,
        ])
    }

    /// Sets the running mean and variance (from [`Norm::running_statistics`]).
    pub fn set_running_statistics(&self, [mean, var]: &[Tensor; 2]) -> Result<()> {
        self.running_mean.set(mean)?;
        self.running_var.set(var)
    }

    fn fused(path: ConvPath, x: &Tensor) -> bool {
        path == ConvPath::Im2Col
            && x.device().is_cpu()
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && x.rank() >= 2
    }

    /// [`Norm::forward`] on the given path (the fused one only where it applies: CPU, f32 or f64), for
    /// tests and benchmarks that compare the two in one process.
    pub fn forward_on(
        &self,
        path: ConvPath,
        x: &Tensor,
        train: bool,
        relu: bool,
    ) -> Result<Tensor> {
        if !Self::fused(path, x) {
            let y = self.stock.forward_t(x, train)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        self.fused_forward(&x.contiguous()?, None, train, relu)
    }

    /// The fused path on a contiguous `x` (and residual, added before the ReLU).
    fn fused_forward(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        train: bool,
        relu: bool,
    ) -> Result<Tensor> {
        let Some((weight, bias)) = self.stock.weight_and_bias() else {
            candle_core::bail!("batch norm without scale and shift");
        };
        if train {
            return self.forward_train(x, weight, bias, residual, relu);
        }
        let params = self.eval_params(x.dtype())?;
        kernel::eval_forward(x, &params, residual, relu)
    }

    /// `self(conv(x))`, then the ReLU when `relu`: in evaluation mode, where nothing carries a graph
    /// (inference), one op that normalises the convolution's product in place
    /// ([`Conv::forward_bn_eval`]); otherwise the two ops.
    pub fn forward_conv(&self, conv: &Conv, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        if !train && Self::fused(conv_path(), x) {
            let params = self.eval_params(x.dtype())?;
            if let Some(y) = conv.forward_bn_eval(x, &params, relu)? {
                return Ok(y);
            }
        }
        self.forward(&candle_nn::Module::forward(conv, x)?, train, relu)
    }

    /// Evaluation mode's `[scale; shift]` (`[2, c]`) in `dtype`.
    fn eval_params(&self, dtype: DType) -> Result<Tensor> {
        let Some((weight, bias)) = self.stock.weight_and_bias() else {
            candle_core::bail!("batch norm without scale and shift");
        };
        // The running statistics are buffers, not parameters: detached, so that a forward pass of plain
        // (loaded, not trained) weights builds no graph, which would keep every activation alive until the
        // output is dropped.
        let (mean, var) = (
            self.running_mean.as_tensor().detach(),
            self.running_var.as_tensor().detach(),
        );
        let scale = (weight / (var + self.stock.eps())?.sqrt()?)?;
        let shift = (bias - (mean * &scale)?)?;
        Tensor::stack(&[&scale, &shift], 0)?.to_dtype(dtype)
    }

    fn forward_train(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> Result<Tensor> {
        let (weight, bias) = (weight.to_dtype(x.dtype())?, bias.to_dtype(x.dtype())?);
        let (y, stats) =
            kernel::train_forward(x, &weight, &bias, residual, self.stock.eps(), relu)?;
        self.update_running(&stats)?;
        Ok(y)
    }

    /// Moves the running statistics towards a training batch's (PyTorch's momentum, unbiased variance).
    pub(crate) fn update_running(&self, stats: &BatchStats) -> Result<()> {
        let c = stats.mean.len();
        let m = stats.count as f64;
        let momentum = self.stock.momentum();
        let dtype = self.running_mean.dtype();
        let device = self.running_mean.device();
        let mean = Tensor::from_slice(&stats.mean, c, device)?.to_dtype(dtype)?;
        let unbiased =
            Tensor::from_slice(&stats.var, c, device)?.to_dtype(dtype)? * (m / (m - 1.0));
        self.running_mean
            .set(&((self.running_mean.as_tensor() * (1.0 - momentum))? + (mean * momentum)?)?)?;
        self.running_var
            .set(&((self.running_var.as_tensor() * (1.0 - momentum))? + (unbiased? * momentum)?)?)
    }

    /// Scale and shift as `[2, c]` in `dtype`, detached (for ops that compute their own gradients).
    fn gamma_beta_detached(&self, dtype: DType) -> Result<Tensor> {
        let Some((weight, bias)) = self.stock.weight_and_bias() else {
            candle_core::bail!("batch norm without scale and shift");
        };
        Tensor::stack(&[weight.detach(), bias.detach()], 0)?.to_dtype(dtype)
    }

    /// Training-mode batch norm (+ ReLU) of a contiguous `x` on the fused path, building no graph (scale
    /// and shift detached), the running statistics updated: the output and what its backward pass needs,
    /// for a caller that runs that pass itself ([`super::block`]).
    pub(crate) fn train_detached(&self, x: &Tensor, relu: bool) -> Result<(Tensor, NormTrain)> {
        let gamma_beta = self.gamma_beta_detached(x.dtype())?;
        let (y, train) = kernel::train_detached(x, gamma_beta, self.stock.eps(), relu)?;
        self.update_running(train.stats())?;
        Ok((y, train))
    }

    /// Training-mode `relu(norm(x) + residual)` for an op that ends a block and runs its backward pass
    /// itself ([`super::block`]): the op's forward pass calls [`BlockEnd::forward`] on its storages, then
    /// its creator [`Norm::update_running`] with [`BlockEnd::stats`].
    pub(crate) fn block_end(&self, dtype: DType) -> Result<BlockEnd> {
        Ok(BlockEnd::new(
            self.stock.eps(),
            self.gamma_beta_detached(dtype)?,
        ))
    }

    /// The scale and shift tensors (the variables' own, for gradients keyed by them).
    pub(crate) fn scale_and_shift(&self) -> Result<(Tensor, Tensor)> {
        self.stock
            .weight_and_bias()
            .map(|(w, b)| (w.clone(), b.clone()))
            .ok_or_else(|| candle_core::Error::Msg("batch norm without scale and shift".into()))
    }
}
