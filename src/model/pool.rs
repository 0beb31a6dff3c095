//! Pooling with gradients: ResNet's 3×3 stride-2 max pool written with strided slices and elementwise
//! maxima (candle's `max_pool2d` has no backward when kernel ≠ stride), and global average / max pooling.

use candle_core::{D, Result, Tensor};

/// 3×3 max pool, stride 2, padding 1 (torchvision's stem pool), differentiable.
///
/// The input is padded with its own minimum minus one, so padding never wins a maximum (the stem applies
/// it after a ReLU, where zeros would do, but this holds for any input).
pub fn max_pool_3x3_s2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
    let floor = (x.min_all()?.detach() - 1.0)?;
    let padded = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    // Replace the zero border by `floor`: a mask of the interior.
    let mask = Tensor::ones((h, w), x.dtype(), x.device())?
        .pad_with_zeros(0, 1, 1)?
        .pad_with_zeros(1, 1, 1)?;
    let border = (mask.ones_like()? - &mask)?;
    let padded = padded.broadcast_add(&border.broadcast_mul(&floor)?)?;
    let mut out: Option<Tensor> = None;
    for dy in 0..3 {
        for dx in 0..3 {
            // Rows dy, dy+2, …, dy+2(oh-1); columns likewise.
            let rows = padded.narrow(2, dy, 2 * (oh - 1) + 1)?;
            let win = rows.narrow(3, dx, 2 * (ow - 1) + 1)?;
            let win = strided(&strided(&win, 2, oh)?, 3, ow)?;
            out = Some(match out {
                None => win,
                Some(o) => o.maximum(&win)?,
            });
        }
    }
    out.ok_or_else(|| candle_core::Error::Msg("empty pooling window".into()))
}

/// Every second element along `dim`, `n` of them (index_select keeps gradients).
fn strided(x: &Tensor, dim: usize, n: usize) -> Result<Tensor> {
    let idx: Vec<u32> = (0..n as u32).map(|i| 2 * i).collect();
    let idx = Tensor::new(idx.as_slice(), x.device())?;
    x.contiguous()?.index_select(&idx, dim)
}

/// Global average pool: `[n, c, h, w]` → `[n, c]`.
pub fn global_avg(x: &Tensor) -> Result<Tensor> {
    x.mean(D::Minus1)?.mean(D::Minus1)
}

/// Global max pool: `[n, c, h, w]` → `[n, c]`.
pub fn global_max(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(2)?.max(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_a_direct_max_pool_and_has_a_gradient() {
        let dev = Device::Cpu;
        let data: Vec<f32> = (0..2 * 3 * 7 * 6)
            .map(|i| ((i * 37) % 23) as f32 - 11.0)
            .collect();
        let x = Var::from_vec(data.clone(), (2, 3, 7, 6), &dev).unwrap();
        let y = max_pool_3x3_s2(x.as_tensor()).unwrap();
        assert_eq!(y.dims(), &[2, 3, 4, 3]);
        // Direct reference: padded with -inf.
        let at = |n: usize, c: usize, i: i64, j: i64| -> f32 {
            if i < 0 || j < 0 || i >= 7 || j >= 6 {
                f32::NEG_INFINITY
            } else {
                data[((n * 3 + c) * 7 + i as usize) * 6 + j as usize]
            }
        };
        let got = y.to_vec3::<f32>().ok();
        let y4: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let _ = got;
        let mut k = 0;
        for n in 0..2 {
            for c in 0..3 {
                for oi in 0..4i64 {
                    for oj in 0..3i64 {
                        let mut m = f32::NEG_INFINITY;
                        for di in 0..3 {
                            for dj in 0..3 {
                                m = m.max(at(n, c, 2 * oi - 1 + di, 2 * oj - 1 + dj));
                            }
                        }
                        assert_eq!(y4[k], m);
                        k += 1;
                    }
                }
            }
        }
        // Gradient of the sum: each output's maximum gets 1 (unique maxima in this input per window
        // are not guaranteed, so check the total mass and non-negativity).
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(g.iter().all(|&v| v >= 0.0));
        assert!(
            (g.iter().sum::<f32>() - y4.len() as f32).abs() < 1e-3,
            "each window routes one unit of gradient"
        );
    }
}
