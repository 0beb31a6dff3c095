//! Loading and saving weights. Safetensors files are read tensor by tensor into the network's `VarMap`,
//! checking that every parameter is present with the right shape, that nothing unexpected is left over
//! (a different architecture), and that every value is finite; the file's SHA-256 identifies the model.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use sha2::{Digest, Sha256};

use super::{ModelError, Network, NetworkConfig};

/// A network with its weights and where they came from.
pub struct LoadedNetwork {
    /// The network.
    pub network: Network,
    /// Its parameters (and batch-norm statistics).
    pub varmap: VarMap,
    /// SHA-256 of the weights file (hex).
    pub sha256: String,
}

impl std::fmt::Debug for LoadedNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedNetwork")
            .field("network", &self.network)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl LoadedNetwork {
    /// The network for inference ([`inference_network`]).
    pub fn into_inference(self) -> candle_core::Result<Network> {
        inference_network(*self.network.config(), &self.varmap)
    }
}

/// A network of `config` for inference on `varmap`'s weights as plain tensors rather than trainable
/// variables (shared, not copied), so that a forward pass builds no autograd graph — a graph keeps every
/// activation alive until the output is dropped — and takes the inference-only fused operations.
/// Grad-CAM still works: it differentiates the head from layer4's output, not the weights.
pub fn inference_network(config: NetworkConfig, varmap: &VarMap) -> candle_core::Result<Network> {
    let tensors: HashMap<String, Tensor> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("parameter table poisoned".into()))?;
        data.iter()
            .map(|(k, var)| (k.clone(), var.as_tensor().detach()))
            .collect()
    };
    let device = tensors
        .values()
        .next()
        .map_or(Device::Cpu, |t| t.device().clone());
    let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &device);
    Network::new(config, vb)
}

/// Names in PyTorch state dicts that carry no weights Sacro uses.
fn ignorable(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Whether a module (tensor name without its last part) is a batch norm of a Sacro network: the body's
/// `bn*` and `downsample.1`, and the fastai head's `head.2` and `head.6`.
pub fn is_batch_norm_module(module: &str) -> bool {
    let last = module.rsplit('.').next().unwrap_or("");
    last.starts_with("bn")
        || module.ends_with("downsample.1")
        || module == "head.2"
        || module == "head.6"
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Copies `tensors` into a freshly built network of `config`, checking names, shapes and values.
pub fn from_tensors(
    path: &Path,
    config: NetworkConfig,
    tensors: &HashMap<String, Tensor>,
    device: &Device,
) -> Result<(Network, VarMap), ModelError> {
    let wrong = |detail: String| ModelError::Weights {
        path: path.to_path_buf(),
        detail,
    };
    let (network, mut varmap) = Network::initialised(config, device)?;
    let expected: Vec<(String, Vec<usize>)> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| wrong("parameter table poisoned".into()))?;
        let mut v: Vec<(String, Vec<usize>)> = data
            .iter()
            .map(|(k, var)| (k.clone(), var.dims().to_vec()))
            .collect();
        v.sort();
        v
    };
    let missing: Vec<&str> = expected
        .iter()
        .filter(|(k, _)| !tensors.contains_key(k))
        .map(|(k, _)| k.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(wrong(format!(
            "{} tensor(s) missing for this architecture, e.g. {} (is this a weights file for {}?)",
            missing.len(),
            missing
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            describe(&config)
        )));
    }
    let mut unexpected: Vec<&str> = tensors
        .keys()
        .filter(|k| !ignorable(k) && !expected.iter().any(|(e, _)| e == *k))
        .map(String::as_str)
        .collect();
    unexpected.sort();
    if !unexpected.is_empty() {
        return Err(wrong(format!(
            "{} tensor(s) this architecture does not have, e.g. {}",
            unexpected.len(),
            unexpected
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for (name, shape) in &expected {
        let t = &tensors[name];
        if t.dims() != shape.as_slice() {
            return Err(wrong(format!(
                "tensor {name} has shape {:?}, the architecture needs {shape:?}",
                t.dims()
            )));
        }
        let t = t.to_dtype(DType::F32)?.to_device(device)?;
        let finite = t
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|v| v.is_finite());
        if !finite {
            return Err(wrong(format!("tensor {name} holds NaN or infinite values")));
        }
        varmap.set_one(name, &t)?;
    }
    Ok((network, varmap))
}

fn describe(config: &NetworkConfig) -> String {
    format!(
        "ResNet layers {:?}, {:?} head, {} classes",
        config.resnet.layers, config.head, config.classes
    )
}

/// Loads a safetensors file.
pub fn load_safetensors(
    path: &Path,
    config: NetworkConfig,
    device: &Device,
) -> Result<LoadedNetwork, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let tensors =
        candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| ModelError::Weights {
            path: path.to_path_buf(),
            detail: format!("not a readable safetensors file: {e}"),
        })?;
    let (network, varmap) = from_tensors(path, config, &tensors, device)?;
    Ok(LoadedNetwork {
        network,
        varmap,
        sha256: sha256_hex(&bytes),
    })
}

/// Number of scalar parameters (weights and biases; batch-norm running statistics excluded).
pub fn parameter_count(varmap: &VarMap) -> usize {
    varmap
        .data()
        .lock()
        .map(|d| {
            d.iter()
                .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
                .map(|(_, v)| v.elem_count())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet50_has_torchvisions_parameter_count_and_names() {
        let (_, varmap) =
            Network::initialised(NetworkConfig::imagenet_resnet50(), &Device::Cpu).unwrap();
        assert_eq!(parameter_count(&varmap), 25_557_032);
        let data = varmap.data().lock().unwrap();
        for (name, shape) in [
            ("conv1.weight", vec![64, 3, 7, 7]),
            ("bn1.running_var", vec![64]),
            ("layer1.0.downsample.0.weight", vec![256, 64, 1, 1]),
            ("layer3.5.conv2.weight", vec![256, 256, 3, 3]),
            ("layer4.2.bn3.bias", vec![2048]),
            ("fc.weight", vec![1000, 2048]),
            ("fc.bias", vec![1000]),
        ] {
            assert_eq!(
                data.get(name).map(|v| v.dims().to_vec()),
                Some(shape),
                "{name}"
            );
        }
        // 53 conv + 53 bn (4 tensors each) + fc (2) = 53 + 212 + 2.
        assert_eq!(data.len(), 53 + 53 * 4 + 2);
    }

    #[test]
    fn fastai_head_shapes() {
        let (_, varmap) =
            Network::initialised(NetworkConfig::sacroiliitis(), &Device::Cpu).unwrap();
        let data = varmap.data().lock().unwrap();
        assert_eq!(
            data.get("head.2.weight").map(|v| v.dims().to_vec()),
            Some(vec![4096])
        );
        assert_eq!(
            data.get("head.4.weight").map(|v| v.dims().to_vec()),
            Some(vec![512, 4096])
        );
        assert_eq!(
            data.get("head.8.weight").map(|v| v.dims().to_vec()),
            Some(vec![2, 512])
        );
        assert!(
            data.get("head.4.bias").is_none(),
            "fastai's linear layers after batch norm have no bias"
        );
    }
}
