//! fastai's Adam with decoupled weight decay (`Adam(mom, sqr_mom=0.99, eps=1e-5, wd=0.01,
//! decouple_wd=True)`), with a learning rate per parameter group, the momentum (β1) set every step by the
//! one-cycle schedule, no decay on batch-norm parameters and biases, gradient accumulation over
//! micro-batches, and its state (moments, step) saved and restored so that `--resume` continues exactly.
//!
//! The arithmetic is candle-nn's `AdamW` step (a test checks that they agree); it is written here because
//! candle's optimiser keeps its moments private (no resume) and has one learning rate and one weight decay
//! for all its variables. On the CPU a parameter's step is two parallel passes (moments; weights, both
//! updated in place) instead of candle's fourteen tensor operations, several of them on one thread;
//! elsewhere (GPUs) it is those tensor operations. Both do the same floating-point operations in the same order (a test checks
//! that they agree to the bit).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;

use crate::kernels::adam::{StepConstants, update};

use super::groups::{self, Group};

/// Settings that stay fixed during a phase.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// β2 (fastai's `sqr_mom`).
    pub beta2: f64,
    /// ε added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (θ ← θ·(1 − lr·wd)), not applied to batch norm or biases.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta2: 0.99,
            eps: 1e-5,
            weight_decay: 0.01,
        }
    }
}

struct Param {
    name: String,
    var: Var,
    group: Group,
    decays: bool,
    /// The moments: `[2, numel]`, the first moment then the second, flattened.
    moments: Option<Tensor>,
    acc: Option<Tensor>,
}

/// The optimiser over the trainable parameters of a `VarMap`.
pub struct Adam {
    params: Vec<Param>,
    step: usize,
    config: AdamConfig,
}

impl std::fmt::Debug for Adam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adam")
            .field("params", &self.params.len())
            .field("step", &self.step)
            .field("config", &self.config)
            .finish()
    }
}

impl Adam {
    /// An optimiser over every parameter that trains in this phase (see [`groups::trains`]); running
    /// statistics are never optimised. Parameters are kept in name order, so the state is reproducible.
    pub fn new(varmap: &VarMap, frozen: bool, config: AdamConfig) -> Self {
        let data = varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut names: Vec<&String> = data.keys().filter(|n| groups::trains(n, frozen)).collect();
        names.sort();
        let params = names
            .into_iter()
            .map(|name| Param {
                name: name.clone(),
                var: data[name].clone(),
                group: groups::group_of(name),
                decays: groups::decays(name),
                moments: None,
                acc: None,
            })
            .collect();
        Self {
            params,
            step: 0,
            config,
        }
    }

    /// Number of optimised tensors.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether nothing is optimised.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Adds one micro-batch's gradients to the accumulated ones (the loss of each micro-batch should be
    /// scaled by its share of the batch, so that the sum is the batch mean).
    pub fn accumulate(&mut self, grads: &GradStore) -> Result<()> {
        for p in &mut self.params {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                p.acc = Some(match p.acc.take() {
                    Some(a) => (a + g)?,
                    None => g.detach(),
                });
            }
        }
        Ok(())
    }

    /// One Adam step with the accumulated gradients (then cleared), learning rate `lrs[group]` and β1.
    pub fn step(&mut self, lrs: &[f64; 3], beta1: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (beta2, eps) = (self.config.beta2, self.config.eps);
        for p in &mut self.params {
            let Some(g) = p.acc.take() else { continue };
            let c = StepConstants {
                beta1,
                beta2,
                scale_m: 1.0 / (1.0 - beta1.powi(t)),
                scale_v: 1.0 / (1.0 - beta2.powi(t)),
                eps,
                lr: lrs[p.group as usize],
                weight_decay: if p.decays {
                    self.config.weight_decay
                } else {
                    0.0
                },
            };
            let theta = p.var.as_tensor();
            let fused = theta.device().is_cpu()
                && matches!(
                    theta.dtype(),
                    candle_core::DType::F32 | candle_core::DType::F64
                );
            update(&p.var, &g, &mut p.moments, &c, fused)?;
        }
        Ok(())
    }

    /// Drops accumulated gradients (a cancelled batch).
    pub fn clear_gradients(&mut self) {
        for p in &mut self.params {
            p.acc = None;
        }
    }

    /// The state as named tensors (`m.NAME`, `v.NAME`, and `step` as a one-element tensor). The moments
    /// are views of the optimiser's own, which the next CPU step updates in place: save (or copy) them
    /// before stepping again.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for p in &self.params {
            if let Some(moments) = &p.moments {
                let shape = p.var.shape();
                out.insert(format!("m.{}", p.name), moments.get(0)?.reshape(shape)?);
                out.insert(format!("v.{}", p.name), moments.get(1)?.reshape(shape)?);
            }
        }
        let device = self
            .params
            .first()
            .map(|p| p.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        out.insert(
            "step".to_string(),
            Tensor::new(&[self.step as u32], &device)?,
        );
        Ok(out)
    }

    /// Restores a state saved by [`Adam::state`] for the same parameters.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let step = state
            .get("step")
            .ok_or_else(|| candle_core::Error::Msg("optimiser state has no step".into()))?
            .to_vec1::<u32>()?;
        self.step = step.first().copied().unwrap_or(0) as usize;
        for p in &mut self.params {
            let shape = p.var.shape().clone();
            let get = |k: &str| -> Result<Option<Tensor>> {
                match state.get(&format!("{k}.{}", p.name)) {
                    Some(t) if t.shape() == &shape => {
                        Ok(Some(t.to_device(p.var.device())?.to_dtype(p.var.dtype())?))
                    }
                    Some(t) => candle_core::bail!(
                        "optimiser state {k}.{} has shape {:?}, the parameter {:?}",
                        p.name,
                        t.shape(),
                        shape
                    ),
                    None => Ok(None),
                }
            };
            p.moments = match (get("m")?, get("v")?) {
                (Some(m), Some(v)) => {
                    Some(Tensor::stack(&[m.flatten_all()?, v.flatten_all()?], 0)?)
                }
                (None, None) => None,
                _ => candle_core::bail!("optimiser state has only one moment of {}", p.name),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::adam::CHUNK;
    use candle_core::{DType, Device};
    use candle_nn::Optimizer;

    /// The same quadratic problem optimised by this Adam (one group, no decay exemptions apply to a name
    /// without `.bias`) and by candle-nn's AdamW agrees step by step.
    #[test]
    fn agrees_with_candle_adamw() {
        let dev = Device::Cpu;
        let target = Tensor::new(&[[1.0f32, -2.0, 0.5], [3.0, 0.0, -1.0]], &dev).unwrap();
        let start = Tensor::new(&[[0.1f32, 0.2, 0.3], [0.4, 0.5, 0.6]], &dev).unwrap();
        let mut varmap = VarMap::new();
        {
            let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &dev);
            let w = vb
                .get_with_hints((2, 3), "head.8.weight", candle_nn::Init::Const(0.0))
                .unwrap();
            drop(w);
        }
        varmap.set_one("head.8.weight", &start).unwrap();
        let ours_var = varmap.data().lock().unwrap()["head.8.weight"].clone();
        let theirs_var = Var::from_tensor(&start).unwrap();
        let cfg = AdamConfig {
            beta2: 0.99,
            eps: 1e-5,
            weight_decay: 0.01,
        };
        let mut ours = Adam::new(&varmap, false, cfg);
        assert_eq!(ours.len(), 1);
        let mut theirs = candle_nn::AdamW::new(
            vec![theirs_var.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.05,
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-5,
                weight_decay: 0.01,
            },
        )
        .unwrap();
        for _ in 0..20 {
            let loss = (ours_var.as_tensor() - &target).unwrap().sqr().unwrap();
            let g = loss.sum_all().unwrap().backward().unwrap();
            ours.accumulate(&g).unwrap();
            ours.step(&[0.05; 3], 0.9).unwrap();
            let loss = (theirs_var.as_tensor() - &target).unwrap().sqr().unwrap();
            theirs.backward_step(&loss.sum_all().unwrap()).unwrap();
        }
        let a: Vec<f32> = ours_var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = theirs_var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
        // And it moved towards the target.
        assert!((a[0] - 0.1).abs() > 0.5);
    }

    /// The two fused CPU passes give the tensor operations' results to the bit (weights and both
    /// moments), over several steps from the first, with and without weight decay, in f32 and f64, on a
    /// tensor large enough to be split into parallel tasks (with a ragged last one).
    #[test]
    fn fused_passes_equal_the_tensor_operations_to_the_bit() {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            for weight_decay in [0.0, 0.01] {
                let n = 3 * CHUNK + 123;
                let start = Tensor::randn(0f32, 1.0, n, &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                // Two variables with their own storage (the fused passes write in place).
                let theta = [
                    Var::from_tensor(&start).unwrap(),
                    Var::from_tensor(&start).unwrap(),
                ];
                let mut moments: [Option<Tensor>; 2] = [None, None];
                for t in 1..=4 {
                    let g = Tensor::randn(0f32, 0.1, n, &dev)
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap();
                    let (beta1, beta2) = (0.85 + 0.02 * f64::from(t), 0.99);
                    let c = StepConstants {
                        beta1,
                        beta2,
                        scale_m: 1.0 / (1.0 - beta1.powi(t)),
                        scale_v: 1.0 / (1.0 - beta2.powi(t)),
                        eps: 1e-5,
                        lr: 3e-3,
                        weight_decay,
                    };
                    for (i, fused) in [true, false].into_iter().enumerate() {
                        update(&theta[i], &g, &mut moments[i], &c, fused).unwrap();
                    }
                    let bits = |t: &Tensor| -> Vec<u64> {
                        let v = t.flatten_all().unwrap().to_dtype(DType::F64).unwrap();
                        v.to_vec1::<f64>()
                            .unwrap()
                            .iter()
                            .map(|x| x.to_bits())
                            .collect()
                    };
                    let what = format!("{dtype:?} wd {weight_decay} step {t}");
                    assert!(bits(&theta[0]) == bits(&theta[1]), "weights differ: {what}");
                    let (a, b) = (moments[0].as_ref().unwrap(), moments[1].as_ref().unwrap());
                    assert_eq!(a.dims(), [2, n], "{what}");
                    assert!(bits(a) == bits(b), "moments differ: {what}");
                }
            }
        }
    }

    /// Saving and restoring the state continues exactly as an uninterrupted run; accumulating two halves
    /// equals one whole gradient.
    #[test]
    fn state_round_trip_and_accumulation() {
        let dev = Device::Cpu;
        let make = || {
            let varmap = VarMap::new();
            let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &dev);
            vb.get_with_hints(4, "layer1.0.conv1.weight", candle_nn::Init::Const(1.0))
                .unwrap();
            vb.get_with_hints(4, "layer1.0.bn1.running_mean", candle_nn::Init::Const(0.0))
                .unwrap();
            varmap
        };
        let run = |varmap: &VarMap, adam: &mut Adam, steps: usize| {
            let var = varmap.data().lock().unwrap()["layer1.0.conv1.weight"].clone();
            for _ in 0..steps {
                let x = var.as_tensor();
                let half = (x.sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
                adam.accumulate(&half.backward().unwrap()).unwrap();
                adam.accumulate(&half.backward().unwrap()).unwrap();
                adam.step(&[0.1; 3], 0.85).unwrap();
            }
            var.as_tensor().to_vec1::<f32>().unwrap()
        };
        let a = make();
        let mut adam_a = Adam::new(&a, false, AdamConfig::default());
        assert_eq!(adam_a.len(), 1, "running statistics are not optimised");
        let whole = run(&a, &mut adam_a, 6);

        let b = make();
        let mut adam_b = Adam::new(&b, false, AdamConfig::default());
        run(&b, &mut adam_b, 3);
        let state = adam_b.state().unwrap();
        let mut adam_c = Adam::new(&b, false, AdamConfig::default());
        adam_c.load_state(&state).unwrap();
        assert_eq!(adam_c.steps(), 3);
        let resumed = run(&b, &mut adam_c, 3);
        assert_eq!(whole, resumed);
    }
}
