//! Reproducible initialisation. candle draws initial weights from an unseeded generator, so two training
//! runs from scratch would differ; this re-draws every parameter from a generator seeded per run and per
//! tensor name, with the schemes of the seed study's code: torchvision's ResNet (convolutions Kaiming-normal
//! with fan-out and ReLU gain, batch norm γ = 1, β = 0) and fastai's head (linear layers Kaiming-normal with
//! fan-in, as `apply_init(head, nn.init.kaiming_normal_)`; a torchvision `fc` as PyTorch's `nn.Linear`).

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

fn name_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xC0FF_EE00_D15E_A5E5, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Re-initialises every tensor of a Sacro network's `VarMap` from `seed`.
pub fn seeded(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (name, var) in data.iter() {
        let dims = var.dims().to_vec();
        let n = var.elem_count();
        let mut rng = ChaCha8Rng::seed_from_u64(name_seed(seed, name));
        let module = name.rsplit_once('.').map_or("", |(m, _)| m);
        let is_bn = super::weights::is_batch_norm_module(module);
        let values: Vec<f32> = if name.ends_with("running_var")
            || (is_bn && name.ends_with(".weight"))
        {
            vec![1.0; n]
        } else if name.ends_with("running_mean") || name.ends_with(".bias") && is_bn {
            vec![0.0; n]
        } else if dims.len() == 4 {
            // Kaiming normal, fan_out = out_channels · kh · kw, gain √2.
            let fan_out = (dims[0] * dims[2] * dims[3]) as f64;
            let normal = Normal::new(0.0, (2.0 / fan_out).sqrt())
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
        } else if dims.len() == 2 {
            let fan_in = dims[1] as f64;
            if name.starts_with("fc.") {
                let bound = 1.0 / fan_in.sqrt();
                let u = Uniform::new_inclusive(-bound, bound)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                (0..n).map(|_| u.sample(&mut rng) as f32).collect()
            } else {
                let normal = Normal::new(0.0, (2.0 / fan_in).sqrt())
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
            }
        } else if name.ends_with(".bias") {
            // A linear layer's bias (torchvision's fc): PyTorch's uniform ±1/√fan_in.
            let fan_in =
                data.get(&format!("{module}.weight"))
                    .map_or(1, |w| w.dims().get(1).copied().unwrap_or(1)) as f64;
            let bound = 1.0 / fan_in.sqrt();
            let u = Uniform::new_inclusive(-bound, bound)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            (0..n).map(|_| u.sample(&mut rng) as f32).collect()
        } else {
            continue;
        };
        var.set(&Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::{Device, Network, NetworkConfig};

    #[test]
    fn same_seed_same_weights_with_the_right_scale() {
        let cfg = NetworkConfig::sacroiliitis();
        let get = |seed| {
            let (_, vm) = Network::initialised_seeded(cfg, &Device::Cpu, seed).unwrap();
            let d = vm.data().lock().unwrap();
            let conv: Vec<f32> = d["layer4.0.conv2.weight"]
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let head: Vec<f32> = d["head.4.weight"].flatten_all().unwrap().to_vec1().unwrap();
            let bn: Vec<f32> = d["layer1.0.bn1.weight"].to_vec1().unwrap();
            (conv, head, bn)
        };
        let (a, h, bn) = get(1);
        assert_eq!(get(1).0, a);
        assert_ne!(get(2).0, a);
        assert!(bn.iter().all(|&v| v == 1.0));
        let sd = |v: &[f32]| {
            (v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        // layer4.0.conv2: 512 out × 3 × 3 → std √(2/4608); head.4: fan-in 4096 → √(2/4096).
        assert!((sd(&a) / (2.0f64 / 4608.0).sqrt() - 1.0).abs() < 0.01);
        assert!((sd(&h) / (2.0f64 / 4096.0).sqrt() - 1.0).abs() < 0.01);
    }
}
