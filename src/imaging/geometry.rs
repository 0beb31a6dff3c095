//! Geometry on greyscale float images: crop to a rectangle, resize (area averaging when shrinking,
//! bilinear when enlarging, both through `fast_image_resize` with half-pixel centres), pad to square.

use fast_image_resize as fir;

use super::ImagingError;

/// A greyscale image of `f32` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height` values.
    pub pixels: Vec<f32>,
}

/// A rectangle in pixel coordinates: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl GreyImage {
    /// An image filled with one value.
    pub fn filled(width: u32, height: u32, value: f32) -> Self {
        Self {
            width,
            height,
            pixels: vec![value; width as usize * height as usize],
        }
    }

    /// The value at (x, y). Panics if out of bounds (callers index within `width`/`height`).
    #[inline]
    pub fn get(&self, x: u32, y: u32) -> f32 {
        self.pixels[y as usize * self.width as usize + x as usize]
    }

    /// The part of the image inside `rect`, which must lie within the image.
    pub fn crop(&self, rect: Rect) -> Result<GreyImage, ImagingError> {
        let fits = rect.width > 0
            && rect.height > 0
            && u64::from(rect.x) + u64::from(rect.width) <= u64::from(self.width)
            && u64::from(rect.y) + u64::from(rect.height) <= u64::from(self.height);
        if !fits {
            return Err(ImagingError::InvalidParameter(format!(
                "crop {}×{} at ({}, {}) does not lie inside the {}×{} image",
                rect.width, rect.height, rect.x, rect.y, self.width, self.height
            )));
        }
        let w = self.width as usize;
        let mut pixels = Vec::with_capacity(rect.width as usize * rect.height as usize);
        for row in rect.y..rect.y + rect.height {
            let start = row as usize * w + rect.x as usize;
            pixels.extend_from_slice(&self.pixels[start..start + rect.width as usize]);
        }
        Ok(GreyImage {
            width: rect.width,
            height: rect.height,
            pixels,
        })
    }

    /// Resized to `width × height`: area averaging when the image shrinks, bilinear when it grows.
    pub fn resize(&self, width: u32, height: u32) -> Result<GreyImage, ImagingError> {
        if width == 0 || height == 0 || self.width == 0 || self.height == 0 {
            return Err(ImagingError::InvalidParameter(format!(
                "cannot resize {}×{} to {width}×{height}",
                self.width, self.height
            )));
        }
        if (width, height) == (self.width, self.height) {
            return Ok(self.clone());
        }
        let shrinking =
            u64::from(width) * u64::from(height) < u64::from(self.width) * u64::from(self.height);
        let filter = if shrinking {
            fir::FilterType::Box
        } else {
            fir::FilterType::Bilinear
        };
        let mut src_buf = self.pixels.clone();
        let src = fir::images::Image::from_slice_u8(
            self.width,
            self.height,
            bytemuck::cast_slice_mut(&mut src_buf),
            fir::PixelType::F32,
        )
        .map_err(|e| ImagingError::InvalidParameter(format!("resize source: {e}")))?;
        let mut out = vec![0f32; width as usize * height as usize];
        let mut dst = fir::images::Image::from_slice_u8(
            width,
            height,
            bytemuck::cast_slice_mut(&mut out),
            fir::PixelType::F32,
        )
        .map_err(|e| ImagingError::InvalidParameter(format!("resize target: {e}")))?;
        fir::Resizer::new()
            .resize(
                &src,
                &mut dst,
                &fir::ResizeOptions::new().resize_alg(fir::ResizeAlg::Convolution(filter)),
            )
            .map_err(|e| ImagingError::InvalidParameter(format!("resize: {e}")))?;
        Ok(GreyImage {
            width,
            height,
            pixels: out,
        })
    }

    /// Padded with `value` to a square whose side is the larger dimension, the image centred.
    pub fn pad_to_square(&self, value: f32) -> GreyImage {
        let side = self.width.max(self.height);
        let mut out = GreyImage::filled(side, side, value);
        let (ox, oy) = ((side - self.width) / 2, (side - self.height) / 2);
        for row in 0..self.height {
            let src = row as usize * self.width as usize;
            let dst = (row + oy) as usize * side as usize + ox as usize;
            out.pixels[dst..dst + self.width as usize]
                .copy_from_slice(&self.pixels[src..src + self.width as usize]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> GreyImage {
        GreyImage {
            width: w,
            height: h,
            pixels: (0..w * h).map(|i| i as f32).collect(),
        }
    }

    #[test]
    fn crop_takes_the_rectangle() {
        let img = ramp(4, 3);
        let c = img
            .crop(Rect {
                x: 1,
                y: 1,
                width: 2,
                height: 2,
            })
            .unwrap();
        assert_eq!(c.pixels, vec![5.0, 6.0, 9.0, 10.0]);
        assert!(
            img.crop(Rect {
                x: 3,
                y: 0,
                width: 2,
                height: 1
            })
            .is_err()
        );
    }

    #[test]
    fn halving_averages_2x2_blocks() {
        let img = ramp(4, 4);
        let r = img.resize(2, 2).unwrap();
        // Block means: (0+1+4+5)/4 = 2.5, (2+3+6+7)/4 = 4.5, 10.5, 12.5.
        let want = [2.5, 4.5, 10.5, 12.5];
        for (a, b) in r.pixels.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{:?}", r.pixels);
        }
    }

    #[test]
    fn area_averaging_keeps_the_mean() {
        let img = GreyImage {
            width: 30,
            height: 21,
            pixels: (0..630).map(|i| ((i * 37) % 101) as f32).collect(),
        };
        let mean = |p: &[f32]| p.iter().map(|&v| f64::from(v)).sum::<f64>() / p.len() as f64;
        let r = img.resize(10, 7).unwrap();
        assert!((mean(&r.pixels) - mean(&img.pixels)).abs() < 1e-3);
    }

    #[test]
    fn doubling_interpolates_bilinearly() {
        let img = GreyImage {
            width: 2,
            height: 1,
            pixels: vec![0.0, 4.0],
        };
        let r = img.resize(4, 1).unwrap();
        // Half-pixel centres: outputs at source x = -0.25, 0.25, 0.75, 1.25 -> 0, 1, 3, 4 (edges clamped).
        let want = [0.0, 1.0, 3.0, 4.0];
        for (a, b) in r.pixels.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{:?}", r.pixels);
        }
    }

    #[test]
    fn pad_centres_the_image() {
        let img = ramp(2, 1);
        let p = img.pad_to_square(-1.0);
        assert_eq!((p.width, p.height), (2, 2));
        assert_eq!(p.pixels, vec![0.0, 1.0, -1.0, -1.0]);
        let tall = GreyImage::filled(1, 3, 7.0).pad_to_square(0.0);
        assert_eq!(
            tall.pixels,
            vec![0.0, 7.0, 0.0, 0.0, 7.0, 0.0, 0.0, 7.0, 0.0]
        );
    }
}
