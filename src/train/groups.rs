//! Parameter groups of fastai's `cnn_learner` split for a ResNet: (stem … layer2), (layer3, layer4), (head),
//! with discriminative learning rates (`slice(a, b)` → geometric spread, see [`even_mults`]), freezing
//! (only the head trains, but batch norm everywhere stays trainable: fastai's `train_bn=True`), and weight
//! decay not applied to batch-norm parameters and biases.

use super::schedule::even_mults;

/// The three groups, in order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Group {
    /// conv1, bn1, layer1, layer2.
    Early,
    /// layer3, layer4.
    Late,
    /// The classification head.
    Head,
}

/// The group of a parameter, by its torchvision/Sacro name.
pub fn group_of(name: &str) -> Group {
    if name.starts_with("head.") || name.starts_with("fc.") {
        Group::Head
    } else if name.starts_with("layer3.") || name.starts_with("layer4.") {
        Group::Late
    } else {
        Group::Early
    }
}

/// Whether a tensor is a batch-norm parameter or statistic (the batch norms are `bn*`, `downsample.1`, and the
/// head's `head.2`/`head.6`).
pub fn is_batch_norm(name: &str) -> bool {
    crate::model::weights::is_batch_norm_module(name.rsplit_once('.').map_or("", |(m, _)| m))
}

/// Running statistics are buffers, never optimised.
pub fn is_running_statistic(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Whether weight decay applies (not to batch-norm parameters or biases, as fastai's `bn_bias` rule).
pub fn decays(name: &str) -> bool {
    !is_batch_norm(name) && !name.ends_with(".bias")
}

/// Whether a parameter trains: frozen means only the head, plus batch norm everywhere (`train_bn=True`).
pub fn trains(name: &str, frozen: bool) -> bool {
    !is_running_statistic(name) && (!frozen || group_of(name) == Group::Head || is_batch_norm(name))
}

/// Learning rate of each group for `slice(low, high)`: the three groups spread geometrically.
pub fn discriminative(low: f64, high: f64) -> [f64; 3] {
    let v = even_mults(low, high, 3);
    [v[0], v[1], v[2]]
}

/// The learning rate of a parameter.
pub fn lr_of(name: &str, rates: &[f64; 3]) -> f64 {
    rates[group_of(name) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_decay_and_freezing_follow_fastai() {
        assert_eq!(group_of("conv1.weight"), Group::Early);
        assert_eq!(group_of("layer2.3.conv2.weight"), Group::Early);
        assert_eq!(group_of("layer3.0.downsample.0.weight"), Group::Late);
        assert_eq!(group_of("head.4.weight"), Group::Head);
        assert!(is_batch_norm("bn1.weight") && is_batch_norm("layer1.0.bn3.bias"));
        assert!(is_batch_norm("layer4.0.downsample.1.weight") && is_batch_norm("head.6.bias"));
        assert!(!is_batch_norm("layer4.0.downsample.0.weight") && !is_batch_norm("head.4.weight"));
        assert!(decays("layer1.0.conv1.weight") && decays("head.8.weight"));
        assert!(!decays("bn1.weight") && !decays("fc.bias"));
        assert!(trains("head.4.weight", true) && trains("layer2.0.bn1.weight", true));
        assert!(!trains("layer2.0.conv1.weight", true) && trains("layer2.0.conv1.weight", false));
        assert!(!trains("bn1.running_mean", false));
        let r = discriminative(1e-5, 1e-3);
        assert!((r[1] - 1e-4).abs() < 1e-15);
        assert_eq!(lr_of("layer4.2.conv3.weight", &r), r[1]);
    }

    #[test]
    fn every_resnet50_parameter_is_classified() {
        use crate::model::{Device, Network, NetworkConfig};
        let (_, varmap) =
            Network::initialised(NetworkConfig::sacroiliitis(), &Device::Cpu).unwrap();
        let data = varmap.data().lock().unwrap();
        let bn = data.keys().filter(|k| is_batch_norm(k)).count();
        // 53 backbone batch norms and 2 in the head, 4 tensors each.
        assert_eq!(bn, (53 + 2) * 4);
        let frozen_trainable = data.keys().filter(|k| trains(k, true)).count();
        // Frozen: the head's two linear weights plus every batch norm's weight and bias.
        assert_eq!(frozen_trainable, 2 + (53 + 2) * 2);
    }
}
