//! TIFF (8/16-bit integer and 32-bit float greyscale, RGB), PNG and JPEG, as exported by viewers.
//! TIFF goes through the `tiff` crate (it keeps float samples and WhiteIsZero), PNG and JPEG through `image`.

use std::io::Cursor;
use std::path::Path;

use super::modality::ModalityLut;
use super::{
    GreyImage, Identity, ImagingError, LoadOptions, Photometric, Radiograph, Source, SourceFormat,
};

fn luminance(r: f32, g: f32, b: f32) -> f32 {
    (f64::from(r) * 0.299 + f64::from(g) * 0.587 + f64::from(b) * 0.114) as f32
}

fn check_pixels(
    path: &Path,
    width: u32,
    height: u32,
    options: &LoadOptions,
) -> Result<(), ImagingError> {
    if width == 0 || height == 0 {
        return Err(ImagingError::decode(
            path,
            format!("image is {width}×{height}"),
        ));
    }
    if u64::from(width) * u64::from(height) > options.max_pixels {
        return Err(ImagingError::TooManyPixels {
            path: path.to_path_buf(),
            width: width.into(),
            height: height.into(),
            frames: 1,
            limit: options.max_pixels,
        });
    }
    Ok(())
}

/// Greyscale values from interleaved samples with `channels` per pixel (1–4; alpha ignored).
fn to_grey<T: Copy>(
    samples: &[T],
    channels: usize,
    n: usize,
    f: impl Fn(T) -> f32,
) -> Option<Vec<f32>> {
    if samples.len() < n * channels {
        return None;
    }
    Some(match channels {
        1 | 2 => samples
            .chunks_exact(channels)
            .take(n)
            .map(|c| f(c[0]))
            .collect(),
        3 | 4 => samples
            .chunks_exact(channels)
            .take(n)
            .map(|c| luminance(f(c[0]), f(c[1]), f(c[2])))
            .collect(),
        _ => return None,
    })
}

fn radiograph(
    path: &Path,
    format: SourceFormat,
    image: GreyImage,
    photometric: Photometric,
    bits: u16,
    value_range: (f64, f64),
) -> Radiograph {
    Radiograph {
        image,
        photometric,
        bits_stored: bits,
        signed: false,
        modality_lut: ModalityLut::Identity,
        value_range,
        pixel_spacing_mm: None,
        presets: Vec::new(),
        voi_luts: Vec::new(),
        source: Source {
            path: path.to_path_buf(),
            format,
            transfer_syntax: None,
            transfer_syntax_name: None,
            meta_inferred: false,
            frames: 1,
            frame: 0,
        },
        identity: Identity::default(),
    }
}

pub(super) fn load(
    path: &Path,
    bytes: &[u8],
    format: SourceFormat,
    options: &LoadOptions,
) -> Result<Radiograph, ImagingError> {
    match format {
        SourceFormat::Tiff => load_tiff(path, bytes, options),
        _ => load_image(path, bytes, format, options),
    }
}

fn load_tiff(path: &Path, bytes: &[u8], options: &LoadOptions) -> Result<Radiograph, ImagingError> {
    use tiff::decoder::{Decoder, DecodingResult, Limits};
    let err = |e: tiff::TiffError| ImagingError::decode(path, format!("TIFF: {e}"));
    let mut limits = Limits::default();
    limits.decoding_buffer_size =
        usize::try_from(options.max_pixels.saturating_mul(16)).unwrap_or(usize::MAX);
    let mut dec = Decoder::new(Cursor::new(bytes))
        .map_err(err)?
        .with_limits(limits);
    let (width, height) = dec.dimensions().map_err(err)?;
    check_pixels(path, width, height, options)?;
    let colour = dec.colortype().map_err(err)?;
    let white_is_zero = dec
        .find_tag_unsigned::<u16>(tiff::tags::Tag::PhotometricInterpretation)
        .map_err(err)?
        == Some(0);
    let (channels, bits) = match colour {
        tiff::ColorType::Gray(b) => (1, b),
        tiff::ColorType::GrayA(b) => (2, b),
        tiff::ColorType::RGB(b) => (3, b),
        tiff::ColorType::RGBA(b) => (4, b),
        other => {
            return Err(ImagingError::decode(
                path,
                format!("TIFF colour type {other:?} is not supported (greyscale or RGB)"),
            ));
        }
    };
    let n = width as usize * height as usize;
    let data = dec.read_image().map_err(err)?;
    let short = || ImagingError::decode(path, "TIFF holds fewer samples than its dimensions need");
    let (pixels, range) = match &data {
        DecodingResult::U8(v) => (to_grey(v, channels, n, f32::from), (0.0, 255.0)),
        DecodingResult::U16(v) => (to_grey(v, channels, n, f32::from), (0.0, 65535.0)),
        DecodingResult::I16(v) => (to_grey(v, channels, n, f32::from), (-32768.0, 32767.0)),
        DecodingResult::U32(v) => (
            to_grey(v, channels, n, |x| x as f32),
            (0.0, f64::from(u32::MAX)),
        ),
        DecodingResult::F32(v) => {
            let px = to_grey(v, channels, n, |x| x);
            let range = px.as_ref().map_or((0.0, 1.0), |p| finite_range(p));
            (px, range)
        }
        DecodingResult::F64(v) => {
            let px = to_grey(v, channels, n, |x| x as f32);
            let range = px.as_ref().map_or((0.0, 1.0), |p| finite_range(p));
            (px, range)
        }
        _ => {
            return Err(ImagingError::decode(
                path,
                "TIFF sample format is not supported",
            ));
        }
    };
    let pixels = pixels.ok_or_else(short)?;
    let photometric = if channels >= 3 {
        Photometric::ColourAsLuminance("RGB".into())
    } else if white_is_zero {
        Photometric::Monochrome1
    } else {
        Photometric::Monochrome2
    };
    Ok(radiograph(
        path,
        SourceFormat::Tiff,
        GreyImage {
            width,
            height,
            pixels,
        },
        photometric,
        u16::from(bits),
        range,
    ))
}

fn finite_range(p: &[f32]) -> (f64, f64) {
    let (lo, hi) = p
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if lo.is_finite() {
        (lo.into(), hi.into())
    } else {
        (0.0, 1.0)
    }
}

fn load_image(
    path: &Path,
    bytes: &[u8],
    format: SourceFormat,
    options: &LoadOptions,
) -> Result<Radiograph, ImagingError> {
    let fmt = match format {
        SourceFormat::Png => image::ImageFormat::Png,
        _ => image::ImageFormat::Jpeg,
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), fmt);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(options.max_pixels.saturating_mul(16));
    reader.limits(limits);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| ImagingError::decode(path, e.to_string()))?;
    check_pixels(path, width, height, options)?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), fmt);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(options.max_pixels.saturating_mul(16));
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| ImagingError::decode(path, e.to_string()))?;
    let n = width as usize * height as usize;
    let colour = img.color();
    let channels = usize::from(colour.channel_count());
    let (pixels, bits, range) = match &img {
        image::DynamicImage::ImageLuma8(b) => {
            (to_grey(b.as_raw(), 1, n, f32::from), 8, (0.0, 255.0))
        }
        image::DynamicImage::ImageLumaA8(b) => {
            (to_grey(b.as_raw(), 2, n, f32::from), 8, (0.0, 255.0))
        }
        image::DynamicImage::ImageRgb8(b) => {
            (to_grey(b.as_raw(), 3, n, f32::from), 8, (0.0, 255.0))
        }
        image::DynamicImage::ImageRgba8(b) => {
            (to_grey(b.as_raw(), 4, n, f32::from), 8, (0.0, 255.0))
        }
        image::DynamicImage::ImageLuma16(b) => {
            (to_grey(b.as_raw(), 1, n, f32::from), 16, (0.0, 65535.0))
        }
        image::DynamicImage::ImageLumaA16(b) => {
            (to_grey(b.as_raw(), 2, n, f32::from), 16, (0.0, 65535.0))
        }
        image::DynamicImage::ImageRgb16(b) => {
            (to_grey(b.as_raw(), 3, n, f32::from), 16, (0.0, 65535.0))
        }
        image::DynamicImage::ImageRgba16(b) => {
            (to_grey(b.as_raw(), 4, n, f32::from), 16, (0.0, 65535.0))
        }
        other => {
            let rgb = other.to_rgb32f();
            let px = to_grey(rgb.as_raw(), 3, n, |x| x);
            (px, 32, (0.0, 1.0))
        }
    };
    let pixels = pixels.ok_or_else(|| {
        ImagingError::decode(path, "decoded image is shorter than its dimensions")
    })?;
    let photometric = if channels >= 3 {
        Photometric::ColourAsLuminance("RGB".into())
    } else {
        Photometric::Monochrome2
    };
    Ok(radiograph(
        path,
        format,
        GreyImage {
            width,
            height,
            pixels,
        },
        photometric,
        bits,
        range,
    ))
}

/// Draws `text` into `image` at (x, y) (top-left, pixels) with a height of `px` pixels, setting covered
/// pixels towards `value`.
pub fn burn_text(image: &mut GreyImage, text: &str, x: f32, y: f32, px: f32, value: f32) {
    use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
    let Ok(font) = FontRef::try_from_slice(crate::assets::DEJAVU_SANS) else {
        return;
    };
    let scale = PxScale::from(px);
    let scaled = font.as_scaled(scale);
    let mut caret = point(x, y + scaled.ascent());
    for c in text.chars() {
        let id = font.glyph_id(c);
        let glyph = id.with_scale_and_position(scale, caret);
        caret.x += scaled.h_advance(id);
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let (ix, iy) = (
                    b.min.x as i64 + i64::from(gx),
                    b.min.y as i64 + i64::from(gy),
                );
                if ix >= 0 && iy >= 0 && (ix as u32) < image.width && (iy as u32) < image.height {
                    let i = iy as usize * image.width as usize + ix as usize;
                    let p = &mut image.pixels[i];
                    *p = *p * (1.0 - coverage) + value * coverage;
                }
            });
        }
    }
}
