//! Predictions: the probability of definite radiographic sacroiliitis for windowed radiographs, and the
//! calls at the card's three cut-offs.

use candle_core::{D, Device, Tensor};

use super::card::{self, ModelCard};
use super::gradcam::{self, Cam, CamMethod};
use super::{ModelError, Network};

/// A loaded model ready to predict.
#[derive(Debug)]
pub struct Predictor {
    /// The network.
    pub network: Network,
    /// Its card.
    pub card: ModelCard,
    /// SHA-256 of its weights.
    pub sha256: String,
    /// Where it runs.
    pub device: Device,
}

/// One prediction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Probability of the positive class (softmax).
    pub probability: f32,
    /// Raw outputs.
    pub logits: Vec<f32>,
    /// Calls at the sensitive, balanced and specific cut-offs (probability ≥ cut-off), if the card has them.
    pub calls: Option<[bool; 3]>,
}

/// The compute device: CPU, or the first CUDA GPU when built with the `cuda` feature and one is present.
pub fn default_device() -> Device {
    Device::cuda_if_available(0).unwrap_or(Device::Cpu)
}

impl Predictor {
    /// Loads a model folder.
    pub fn load(dir: &std::path::Path, device: Device) -> Result<Self, ModelError> {
        let (card, loaded) = card::load(dir, &device)?;
        let sha256 = loaded.sha256.clone();
        Ok(Self {
            network: loaded.into_inference()?,
            card,
            sha256,
            device,
        })
    }

    /// Pre-processes one windowed radiograph (values in [0, 1]) into the model's input `[3, s, s]`.
    pub fn input(&self, unit: &[f32], width: u32, height: u32) -> Result<Tensor, ModelError> {
        Ok(self
            .card
            .preprocess
            .tensor(unit, width, height, &self.device)?)
    }

    /// Predicts a batch of inputs (each `[3, s, s]`).
    pub fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Prediction>, ModelError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let batch = Tensor::stack(inputs, 0)?;
        let logits = self.network.forward_t(&batch, false)?;
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?;
        let logits: Vec<Vec<f32>> = logits.to_vec2()?;
        let probs: Vec<Vec<f32>> = probs.to_vec2()?;
        Ok(logits
            .into_iter()
            .zip(probs)
            .map(|(l, p)| {
                let probability = p[self.card.positive_class];
                let calls = self.card.cutoffs.map(|c| {
                    let p = f64::from(probability);
                    [p >= c.sensitive, p >= c.balanced, p >= c.specific]
                });
                Prediction {
                    probability,
                    logits: l,
                    calls,
                }
            })
            .collect())
    }

    /// Grad-CAM (or Grad-CAM++) of `class` for one input `[3, s, s]`, on layer4's grid.
    pub fn explain(
        &self,
        input: &Tensor,
        class: usize,
        method: CamMethod,
    ) -> Result<Cam, ModelError> {
        Ok(gradcam::cam(
            &self.network,
            &input.unsqueeze(0)?,
            class,
            method,
        )?)
    }

    /// [`Predictor::explain`] mapped back onto the `width × height` film the input was made from (the
    /// pre-processing's padding and resizing undone): one value per film pixel.
    pub fn explain_on_film(
        &self,
        input: &Tensor,
        class: usize,
        method: CamMethod,
        (width, height): (u32, u32),
    ) -> Result<crate::imaging::GreyImage, ModelError> {
        let cam = self.explain(input, class, method)?;
        let grid = crate::imaging::GreyImage {
            width: cam.width as u32,
            height: cam.height as u32,
            pixels: cam.values,
        };
        Ok(self.card.preprocess.back_to_image(&grid, width, height)?)
    }
}
