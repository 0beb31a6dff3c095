//! A training step to time (`sacro bench model`): train-mode forward of the study's ResNet-50 with fastai's
//! head, cross-entropy, backward and a step of the trainer's Adam (decoupled weight decay, as AdamW), on
//! random inputs. PyTorch does the same in `benches/model_pytorch.py` (with its AdamW).

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::TrainError;
use super::optim::{Adam, AdamConfig};
use crate::model::{Network, NetworkConfig};

/// A network, a batch and an optimiser, ready to step.
pub struct StepBench {
    net: Network,
    x: Tensor,
    y: Tensor,
    opt: Adam,
    varmap: VarMap,
}

impl std::fmt::Debug for StepBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepBench")
            .field("x", &self.x.shape())
            .finish()
    }
}

impl StepBench {
    /// A batch of `batch` random `size²` inputs with alternating labels.
    pub fn new(batch: usize, size: usize, device: &Device) -> Result<Self, TrainError> {
        let (net, varmap) = Network::initialised(NetworkConfig::sacroiliitis(), device)?;
        let x = crate::model::random_input(batch, size, device)?;
        let labels: Vec<u32> = (0..batch as u32).map(|i| i % 2).collect();
        let y = Tensor::new(labels.as_slice(), device)?;
        let opt = Adam::new(&varmap, false, AdamConfig::default());
        Ok(Self {
            net,
            x,
            y,
            opt,
            varmap,
        })
    }

    /// Steps of a frozen phase (head and batch norms train) or not, as the trainer sets them.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.net.set_frozen_convolutions(frozen);
        self.opt = Adam::new(&self.varmap, frozen, AdamConfig::default());
    }

    /// Gradient checkpointing of the network's blocks (see [`crate::model::checkpoint`]).
    pub fn set_checkpointing(&mut self, on: bool) {
        self.net.set_checkpointing(on);
    }

    /// One step.
    pub fn step(&mut self) -> Result<(), TrainError> {
        let logits = self.net.forward_t(&self.x, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &self.y)?;
        let grads = self.net.backward(&loss)?;
        self.opt.accumulate(&grads)?;
        self.opt.step(&[1e-4; 3], 0.9)?;
        Ok(())
    }
}
