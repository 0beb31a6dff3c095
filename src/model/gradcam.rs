//! Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) on layer4: run the body,
//! wrap its output in a `Var`, run the head, backpropagate the chosen class's logit, weight the feature
//! maps by their gradients. The map is made non-negative and normalised to [0, 1]; [`concentration`]
//! measures how much of it falls inside a rectangle (the sacroiliac joints, for phantoms).

use candle_core::{D, Result, Tensor, Var};

use super::Network;

/// Which weighting of the feature maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CamMethod {
    /// Grad-CAM: channel weights = spatial mean of the gradient.
    GradCam,
    /// Grad-CAM++: second/third-order weighting of positive gradients.
    GradCamPlusPlus,
}

/// A class activation map on layer4's grid, values in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Cam {
    /// Grid width.
    pub width: usize,
    /// Grid height.
    pub height: usize,
    /// Row-major values.
    pub values: Vec<f32>,
    /// The logits of the input.
    pub logits: Vec<f32>,
}

/// The class activation map of `class` for one input `[1, 3, h, w]`.
pub fn cam(net: &Network, input: &Tensor, class: usize, method: CamMethod) -> Result<Cam> {
    let features = net.features(input, false)?.detach();
    let var = Var::from_tensor(&features)?;
    let logits = net.head(var.as_tensor(), false)?;
    let classes = logits.dim(1)?;
    if class >= classes {
        candle_core::bail!("class {class} asked for, the model has {classes}");
    }
    let score = logits.narrow(1, class, 1)?.sum_all()?;
    let grads = score.backward()?;
    let g = grads
        .get(var.as_tensor())
        .ok_or_else(|| candle_core::Error::Msg("no gradient reached layer4".into()))?
        .squeeze(0)?;
    let (width, height, values) = cam_from_parts(&features.squeeze(0)?, &g, method)?;
    Ok(Cam {
        width,
        height,
        values,
        logits: logits.flatten_all()?.to_vec1()?,
    })
}

/// The map from layer4's activations `a` and the gradient `g` of the class score, both `[c, h, w]`:
/// returns (width, height, values normalised to a maximum of 1).
pub fn cam_from_parts(
    a: &Tensor,
    g: &Tensor,
    method: CamMethod,
) -> Result<(usize, usize, Vec<f32>)> {
    let (c, h, w) = a.dims3()?;
    let weights = match method {
        CamMethod::GradCam => g.mean(D::Minus1)?.mean(D::Minus1)?, // [c]
        CamMethod::GradCamPlusPlus => {
            let g2 = g.sqr()?;
            let g3 = (&g2 * g)?;
            let sum_a = a.sum(D::Minus1)?.sum(D::Minus1)?.reshape((c, 1, 1))?;
            let denom = ((&g2 * 2.0)? + g3.broadcast_mul(&sum_a)?)?;
            let denom_safe = denom.ne(0.0)?.where_cond(&denom, &denom.ones_like()?)?;
            let alpha = (g2 / denom_safe)?;
            (alpha * g.relu()?)?.sum(D::Minus1)?.sum(D::Minus1)?
        }
    };
    let map = a
        .broadcast_mul(&weights.reshape((c, 1, 1))?)?
        .sum(0)?
        .relu()?; // [h, w]
    let mut values: Vec<f32> = map.flatten_all()?.to_vec1()?;
    let max = values.iter().copied().fold(0.0f32, f32::max);
    if max > 0.0 {
        values.iter_mut().for_each(|v| *v /= max);
    }
    Ok((w, h, values))
}

/// Share of a heatmap's mass inside the rectangle `(x, y, w, h)` (same grid as the map).
pub fn concentration(map: &[f32], width: usize, rect: (usize, usize, usize, usize)) -> f64 {
    let total: f64 = map.iter().map(|&v| f64::from(v.max(0.0))).sum();
    if total == 0.0 {
        return 0.0;
    }
    let (x0, y0, w, h) = rect;
    let inside: f64 = (y0..y0 + h)
        .flat_map(|y| (x0..x0 + w).map(move |x| (x, y)))
        .filter(|&(x, _)| x < width)
        .map(|(x, y)| f64::from(map.get(y * width + x).copied().unwrap_or(0.0).max(0.0)))
        .sum();
    inside / total
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_head_that_looks_at_one_position_puts_the_peak_there() {
        // Channel 2 fires only at (row 1, col 3); the class score is that channel's average (a linear
        // head weighting only channel 2), so its gradient is uniform over space on channel 2.
        let (c, h, w) = (4, 3, 5);
        let mut a = vec![0.1f32; c * h * w];
        a[(2 * h + 1) * w + 3] = 5.0;
        let a = Tensor::from_vec(a, (c, h, w), &Device::Cpu).unwrap();
        let mut g = vec![0.0f32; c * h * w];
        g[2 * h * w..3 * h * w]
            .iter_mut()
            .for_each(|v| *v = 1.0 / (h * w) as f32);
        let g = Tensor::from_vec(g, (c, h, w), &Device::Cpu).unwrap();
        for method in [CamMethod::GradCam, CamMethod::GradCamPlusPlus] {
            let (width, _, values) = cam_from_parts(&a, &g, method).unwrap();
            let peak = values
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0;
            assert_eq!((peak / width, peak % width), (1, 3), "{method:?}");
            assert_eq!(values[peak], 1.0);
            assert!(concentration(&values, width, (3, 1, 1, 1)) > 0.5);
        }
    }
}
