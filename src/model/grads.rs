//! Parameter gradients that candle's backward pass cannot return: ops whose backward pass runs a whole
//! block (one-node blocks, recomputed blocks) leave their parameters' gradients here, and the network
//! merges them into the gradient store after the pass.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

/// Parameter gradients computed by ops whose backward pass runs a whole block (recomputed blocks here,
/// [`super::block`]'s one-node blocks), which candle's backward pass cannot return (it gives gradients
/// to an op's inputs only): one network's sink, merged into the gradient store after the pass.
#[derive(Debug, Clone, Default)]
pub struct ParamGrads {
    sink: Arc<Mutex<Vec<(Tensor, Tensor)>>>,
}

impl ParamGrads {
    /// Leaves `grad` for the variable `param`, detached, in its type. (A view into a larger buffer would
    /// keep that buffer alive while it waits: copy such gradients first, with `force_contiguous`.)
    pub(crate) fn push(&self, param: &Tensor, grad: Tensor) -> Result<()> {
        let grad = grad.detach().to_dtype(param.dtype())?;
        self.sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((param.clone(), grad));
        Ok(())
    }

    /// Drops gradients left by a backward pass that was not merged (a failed or abandoned step).
    pub fn clear(&self) {
        self.sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Adds the parameter gradients left here to `grads`.
    pub fn merge(&self, grads: &mut GradStore) -> Result<()> {
        let left = std::mem::take(&mut *self.sink.lock().unwrap_or_else(PoisonError::into_inner));
        for (param, g) in left {
            let g = match grads.remove(&param) {
                Some(other) => (other + g)?,
                None => g,
            };
            grads.insert(&param, g);
        }
        Ok(())
    }
}
