//! A heatmap (e.g. Grad-CAM) over a windowed radiograph, with a perceptual colour map (turbo), written as PNG.

use std::path::Path;

use super::ImagingError;

/// Blends `heat` (values in [0, 1], same size as the image) over grey levels with the given opacity; the
/// opacity is scaled by the heat so that cold regions show the film unchanged.
pub fn heatmap_overlay(
    grey: &[u8],
    heat: &[f32],
    width: u32,
    height: u32,
    opacity: f32,
) -> Result<image::RgbImage, ImagingError> {
    let n = width as usize * height as usize;
    if grey.len() != n || heat.len() != n {
        return Err(ImagingError::InvalidParameter(format!(
            "overlay of {} grey levels and {} heat values on a {width}×{height} image",
            grey.len(),
            heat.len()
        )));
    }
    let opacity = opacity.clamp(0.0, 1.0);
    let mut out = image::RgbImage::new(width, height);
    for (i, px) in out.pixels_mut().enumerate() {
        let h = heat[i].clamp(0.0, 1.0);
        let c = colorous::TURBO.eval_continuous(f64::from(h));
        let a = opacity * h.sqrt();
        let g = f32::from(grey[i]);
        let mix = |v: u8| (g * (1.0 - a) + f32::from(v) * a).round().clamp(0.0, 255.0) as u8;
        *px = image::Rgb([mix(c.r), mix(c.g), mix(c.b)]);
    }
    Ok(out)
}

/// A heatmap as RGBA bytes for a GPU overlay: turbo colour, alpha √heat (the same law as
/// [`heatmap_overlay`], whose opacity is then applied by the renderer).
pub fn heat_rgba(heat: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(heat.len() * 4);
    for &h in heat {
        let h = h.clamp(0.0, 1.0);
        let c = colorous::TURBO.eval_continuous(f64::from(h));
        out.extend([c.r, c.g, c.b, (h.sqrt() * 255.0).round() as u8]);
    }
    out
}

/// Writes an RGB image as PNG (through a temporary file).
pub fn write_png(path: &Path, img: &image::RgbImage) -> Result<(), ImagingError> {
    super::export::write_via_temp(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_colours_only_where_it_is_hot() {
        let grey = vec![100u8; 4];
        let heat = [0.0, 0.2, 0.8, 1.0];
        let img = heatmap_overlay(&grey, &heat, 2, 2, 0.5).unwrap();
        assert_eq!(
            img.get_pixel(0, 0).0,
            [100, 100, 100],
            "cold: the film unchanged"
        );
        let hot = img.get_pixel(1, 1).0;
        assert!(
            hot[0] != hot[1] || hot[1] != hot[2],
            "hot: coloured {hot:?}"
        );
        assert!(heatmap_overlay(&grey, &heat[..3], 2, 2, 0.5).is_err());
    }
}
