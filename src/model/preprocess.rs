//! Pre-processing exactly as training does it: windowed values in [0, 1] → the model's input size
//! (aspect kept and padded, or centre-cropped) → grey replicated to three channels → ImageNet mean/std.

use candle_core::{Device, Result, Tensor};

use crate::imaging::{GreyImage, WindowPolicy};

/// How a non-square film becomes square.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fit {
    /// Keep the aspect ratio and pad with black (0) to a square.
    Pad,
    /// Keep the aspect ratio and crop the centre square.
    Crop,
}

/// Pre-processing settings (stored in the model card).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocess {
    /// Square input side (224, 512 or 768 in the seed study's schedule).
    pub size: u32,
    /// Pad or crop.
    pub fit: Fit,
    /// Per-channel mean (ImageNet's by default).
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
    /// How films were windowed for training, so prediction does the same (cards written before the
    /// field: the file's window or the automatic one, for every film).
    #[serde(default = "WindowPolicy::legacy")]
    pub window: WindowPolicy,
}

impl Preprocess {
    /// ImageNet normalisation at `size`, padded.
    pub fn imagenet(size: u32) -> Self {
        Self {
            size,
            fit: Fit::Pad,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            window: WindowPolicy::AsStored8Bit,
        }
    }

    /// The square `size × size` grey image in [0, 1] a film becomes.
    pub fn square(&self, unit: &[f32], width: u32, height: u32) -> Result<GreyImage> {
        let err = |e: crate::imaging::ImagingError| candle_core::Error::Msg(e.to_string());
        if unit.len() != width as usize * height as usize || width == 0 || height == 0 {
            candle_core::bail!("{} values for a {width}×{height} image", unit.len());
        }
        let img = GreyImage {
            width,
            height,
            pixels: unit.to_vec(),
        };
        let squared = match self.fit {
            Fit::Pad => img.pad_to_square(0.0),
            Fit::Crop => {
                let side = width.min(height);
                img.crop(crate::imaging::Rect {
                    x: (width - side) / 2,
                    y: (height - side) / 2,
                    width: side,
                    height: side,
                })
                .map_err(err)?
            }
        };
        squared.resize(self.size, self.size).map_err(err)
    }

    /// Maps a map over the model's input square (any grid size, e.g. layer4's) back onto the original
    /// `width × height` image: the inverse of the pad or crop and the resize, bilinear.
    pub fn back_to_image(&self, map: &GreyImage, width: u32, height: u32) -> Result<GreyImage> {
        let err = |e: crate::imaging::ImagingError| candle_core::Error::Msg(e.to_string());
        match self.fit {
            Fit::Pad => {
                let side = width.max(height);
                let full = map.resize(side, side).map_err(err)?;
                full.crop(crate::imaging::Rect {
                    x: (side - width) / 2,
                    y: (side - height) / 2,
                    width,
                    height,
                })
                .map_err(err)
            }
            Fit::Crop => {
                let side = width.min(height);
                let inner = map.resize(side, side).map_err(err)?;
                let mut out = GreyImage::filled(width, height, 0.0);
                let (ox, oy) = ((width - side) / 2, (height - side) / 2);
                for y in 0..side {
                    let src = (y * side) as usize;
                    let dst = ((y + oy) * width + ox) as usize;
                    out.pixels[dst..dst + side as usize]
                        .copy_from_slice(&inner.pixels[src..src + side as usize]);
                }
                Ok(out)
            }
        }
    }

    /// A `[3, size, size]` tensor, normalised.
    pub fn tensor(&self, unit: &[f32], width: u32, height: u32, device: &Device) -> Result<Tensor> {
        let sq = self.square(unit, width, height)?;
        let n = (self.size * self.size) as usize;
        let mut data = Vec::with_capacity(3 * n);
        for c in 0..3 {
            data.extend(sq.pixels.iter().map(|&v| (v - self.mean[c]) / self.std[c]));
        }
        Tensor::from_vec(data, (3, self.size as usize, self.size as usize), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_replicates_and_normalises() {
        let p = Preprocess::imagenet(4);
        // A 4×2 image of ones: padded to 4×4 with a zero row above and below.
        let t = p.tensor(&[1.0; 8], 4, 2, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[3, 4, 4]);
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert!((v[0] - (0.0 - 0.485) / 0.229).abs() < 1e-6, "padding row");
        assert!((v[4] - (1.0 - 0.485) / 0.229).abs() < 1e-6, "image row");
        assert!(
            (v[16 + 4] - (1.0 - 0.456) / 0.224).abs() < 1e-6,
            "second channel"
        );
        assert!(p.tensor(&[1.0; 7], 4, 2, &Device::Cpu).is_err());
    }
}
