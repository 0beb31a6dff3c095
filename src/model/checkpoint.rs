//! Gradient checkpointing of bottleneck blocks: in training, a block's forward pass keeps nothing but its
//! output, and its backward pass runs the block forward again (from its input, with the same batch
//! statistics) to get the gradients. About a third more arithmetic for a training step; the intermediates
//! of all sixteen blocks of a ResNet-50 (two thirds of the activations) are no longer held at once, so
//! large images train in much less memory. CPU only (the op has no GPU kernel; GPUs have the memory).
//!
//! candle's backward pass gives gradients only to an op's inputs, and a block has up to eight parameter
//! tensors besides its input: the op's backward pass puts their gradients into a [`ParamGrads`] sink,
//! which [`ParamGrads::merge`] moves into the gradient store of the whole backward pass
//! ([`super::Network::backward`] does both).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor, Var};
use candle_nn::ModuleT;

use super::bottleneck::Bottleneck;
use super::grads::ParamGrads;
use crate::kernels::cpu::{Float, by_float, contiguous};

/// `block` applied to `x` in training mode, its intermediates recomputed in the backward pass, which
/// leaves the parameters' gradients in `sink`.
pub fn checkpointed(block: &Bottleneck, x: &Tensor, sink: &ParamGrads) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Recompute {
        block: block.clone(),
        sink: sink.clone(),
    })
}

/// A bottleneck block as one op on its input.
#[derive(Debug)]
struct Recompute {
    block: Bottleneck,
    sink: ParamGrads,
}

impl CustomOp1 for Recompute {
    fn name(&self) -> &'static str {
        "sacro-checkpointed-bottleneck"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        // The block's own ops build a graph here (its parameters are variables); it is dropped on return,
        // and with it every intermediate.
        let (out, shape) = by_float!(s.dtype(), "checkpointed block", T => {
            let x = Tensor::from_slice(
                contiguous::<T>(s, l, "checkpointed block: input")?,
                l.shape(),
                &Device::Cpu,
            )?;
            let y = self.block.forward_t(&x, true)?;
            let shape = y.shape().clone();
            (T::wrap(y.flatten_all()?.to_vec1::<T>()?), shape)
        });
        Ok((out, shape))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        // The forward pass updated the running statistics once; the recomputation must not again.
        let running = self.block.running_statistics()?;
        let input = Var::from_tensor(&x.detach())?;
        let y = self.block.forward_t(input.as_tensor(), true);
        self.block.set_running_statistics(&running)?;
        let grads = (y? * grad.detach())?.sum_all()?.backward()?;
        for param in self.block.parameters() {
            if let Some(g) = grads.get(&param) {
                // Detached (by `push`): a gradient must not hold the recomputed block's graph while it
                // waits.
                self.sink.push(&param, g.clone())?;
            }
        }
        Ok(grads.get(input.as_tensor()).map(Tensor::detach))
    }
}
