//! Values of interest: window center/width with the LINEAR, LINEAR_EXACT and SIGMOID functions of
//! DICOM PS3.3 C.11.2.1.2–3, VOI LUT Sequences, automatic windows from the histogram, named presets,
//! and the final mapping to display grey levels (with MONOCHROME1 inversion).
//!
//! This module is the reference the GUI's window/level shader is tested against: every window maps
//! modality values to `[0, 1]` (PS3.3's `y_min`..`y_max` normalised), and only then to 8 or 16 bits.

use rayon::prelude::*;

use super::ImagingError;
use super::modality::LookupTable;

/// VOI LUT Function (0028,1056).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum VoiFunction {
    /// PS3.3 C.11.2.1.2.1, the default.
    #[default]
    Linear,
    /// PS3.3 C.11.2.1.3.2.
    LinearExact,
    /// PS3.3 C.11.2.1.3.1.
    Sigmoid,
}

impl VoiFunction {
    /// Parses the DICOM defined term (case-insensitive, surrounding spaces ignored).
    pub fn from_dicom(term: &str) -> Option<Self> {
        match term.trim().to_ascii_uppercase().as_str() {
            "LINEAR" | "" => Some(Self::Linear),
            "LINEAR_EXACT" => Some(Self::LinearExact),
            "SIGMOID" => Some(Self::Sigmoid),
            _ => None,
        }
    }

    /// The DICOM defined term.
    pub fn as_dicom(&self) -> &'static str {
        match self {
            Self::Linear => "LINEAR",
            Self::LinearExact => "LINEAR_EXACT",
            Self::Sigmoid => "SIGMOID",
        }
    }
}

/// How a film is windowed for a model (recorded in the model card, so that prediction follows training).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowPolicy {
    /// Display-ready 8-bit images (PNG, JPEG, 8-bit TIFF or DICOM with no window, VOI LUT or rescaling of
    /// their own) go as stored, `v / 255`, as torchvision's `ToTensor` and fastai feed them; other films
    /// as [`WindowPolicy::FileOrAuto`].
    #[default]
    #[serde(rename = "as_stored_8bit")]
    AsStored8Bit,
    /// The file's window, else its VOI LUT, else the automatic window, for every film (what Sacro did for
    /// all films before the policy was recorded: cards without it).
    FileOrAuto,
}

impl WindowPolicy {
    /// The policy of a card written before the field existed.
    pub fn legacy() -> Self {
        Self::FileOrAuto
    }

    /// Parses `as-stored` or `file-or-auto`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "as-stored" | "as_stored_8bit" => Ok(Self::AsStored8Bit),
            "file-or-auto" | "file_or_auto" => Ok(Self::FileOrAuto),
            other => Err(format!("{other:?}: as-stored or file-or-auto")),
        }
    }
}

/// A window: center and width in modality units, and the VOI function that shapes it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Window Center (0028,1050).
    pub center: f64,
    /// Window Width (0028,1051).
    pub width: f64,
    /// VOI LUT Function (0028,1056).
    pub function: VoiFunction,
}

impl Window {
    /// A LINEAR window, checked: width must be ≥ 1 (PS3.3 C.11.2.1.2.1) and both finite.
    pub fn linear(center: f64, width: f64) -> Result<Self, ImagingError> {
        Self::new(center, width, VoiFunction::Linear)
    }

    /// A window with the given function, checked against the width rule of that function.
    pub fn new(center: f64, width: f64, function: VoiFunction) -> Result<Self, ImagingError> {
        if !center.is_finite() || !width.is_finite() {
            return Err(ImagingError::InvalidParameter(format!(
                "window center {center} / width {width} must be finite numbers"
            )));
        }
        let ok = match function {
            VoiFunction::Linear => width >= 1.0,
            VoiFunction::LinearExact | VoiFunction::Sigmoid => width > 0.0,
        };
        if !ok {
            return Err(ImagingError::InvalidParameter(format!(
                "window width {width} is not allowed for {} (LINEAR needs ≥ 1, others > 0)",
                function.as_dicom()
            )));
        }
        Ok(Self {
            center,
            width,
            function,
        })
    }

    /// Maps a modality value to `[0, 1]` by PS3.3 C.11.2.1.2 with `y_min = 0`, `y_max = 1`.
    #[inline]
    pub fn apply(&self, x: f64) -> f64 {
        match self.linear_constants() {
            Some(k) => k.apply(x),
            None => 1.0 / (1.0 + (-4.0 * (x - self.center) / self.width).exp()),
        }
    }

    /// The constants of a LINEAR or LINEAR_EXACT window (None for SIGMOID): LINEAR's centre and width
    /// are `c − 0.5` and `w − 1`.
    fn linear_constants(&self) -> Option<Linear> {
        let (c, w) = match self.function {
            VoiFunction::Linear => (self.center - 0.5, self.width - 1.0),
            VoiFunction::LinearExact => (self.center, self.width),
            VoiFunction::Sigmoid => return None,
        };
        Some(Linear {
            c,
            w,
            lo: c - w / 2.0,
            hi: c + w / 2.0,
        })
    }

    /// Parses "C/W" as given on the command line, e.g. `550/1024` or `-600/1500`.
    pub fn parse(text: &str) -> Result<Self, ImagingError> {
        let bad = || {
            ImagingError::InvalidParameter(format!(
                "window {text:?}: expected CENTER/WIDTH, e.g. 550/1024"
            ))
        };
        let (c, w) = text.split_once('/').ok_or_else(bad)?;
        let c: f64 = c.trim().parse().map_err(|_| bad())?;
        let w: f64 = w.trim().parse().map_err(|_| bad())?;
        Self::linear(c, w)
    }
}

/// A linear window's constants, computed once per film.
#[derive(Debug, Clone, Copy)]
struct Linear {
    c: f64,
    w: f64,
    lo: f64,
    hi: f64,
}

impl Linear {
    #[inline]
    fn apply(&self, x: f64) -> f64 {
        if x <= self.lo {
            0.0
        } else if x > self.hi {
            1.0
        } else {
            (x - self.c) / self.w + 0.5
        }
    }
}

/// A window preset stored in the file, with its Window Center & Width Explanation (0028,1055).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowPreset {
    /// The window.
    pub window: Window,
    /// The explanation, e.g. "BONE", if the file gives one.
    pub explanation: Option<String>,
}

/// The VOI stage chosen for display.
#[derive(Debug, Clone, PartialEq)]
pub enum Voi {
    /// A window (from the file, the user, or the histogram).
    Window(Window),
    /// A VOI LUT Sequence item.
    Table(LookupTable),
}

impl Voi {
    /// Maps a modality value to `[0, 1]`.
    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        match self {
            Voi::Window(w) => w.apply(f64::from(x)) as f32,
            Voi::Table(t) => (f64::from(t.lookup(x.round() as i64)) / t.max_output()) as f32,
        }
    }
}

/// Window presets by name, for the command line and the viewer's number keys.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedPreset {
    /// The automatic window: 0.5–99.5 percentiles inside the collimated area.
    Auto,
    /// The whole range of pixel values.
    Full,
    /// A high-contrast window: 5–95 percentiles inside the collimated area.
    Contrast,
    /// The file's n-th window preset (0-based).
    File(usize),
    /// The file's preset whose explanation matches (case-insensitive).
    FileNamed(String),
}

impl NamedPreset {
    /// Parses `auto`, `full`, `contrast`, `file1`…`fileN` (1-based), or a file preset's explanation.
    pub fn parse(name: &str) -> Self {
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "auto" => Self::Auto,
            "full" => Self::Full,
            "contrast" => Self::Contrast,
            _ => match lower
                .strip_prefix("file")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) if n >= 1 => Self::File(n - 1),
                _ => Self::FileNamed(name.trim().to_string()),
            },
        }
    }
}

/// The percentile window: values between the `lo` and `hi` fractions of the pixels inside the
/// collimated area, i.e. excluding pixels equal to the image's minimum or maximum (collimator blades,
/// padding and burned-out background sit at the extremes). Falls back to all pixels if that leaves none.
pub fn percentile_window(pixels: &[f32], lo: f64, hi: f64) -> Option<Window> {
    let finite = pixels.iter().copied().filter(|v| v.is_finite());
    let (min, max) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !min.is_finite() {
        return None;
    }
    // A strided sample keeps this O(n) with a bounded buffer on very large images.
    let stride = (pixels.len() / 2_000_000).max(1);
    let mut inside: Vec<f32> = pixels
        .iter()
        .step_by(stride)
        .copied()
        .filter(|&v| v.is_finite() && v > min && v < max)
        .collect();
    if inside.len() < 16 {
        inside = pixels
            .iter()
            .step_by(stride)
            .copied()
            .filter(|v| v.is_finite())
            .collect();
    }
    let a = quantile(&mut inside, lo)?;
    let b = quantile(&mut inside, hi)?;
    let (lo_v, hi_v) = (f64::from(a), f64::from(b));
    // LINEAR_EXACT only needs a positive width, so float data in [0, 1] keeps its own scale.
    let width = if hi_v > lo_v { hi_v - lo_v } else { 1.0 };
    Window::new((lo_v + hi_v) / 2.0, width, VoiFunction::LinearExact).ok()
}

/// The automatic window (0.5–99.5 percentiles inside the collimated area).
pub fn auto_window(pixels: &[f32]) -> Option<Window> {
    percentile_window(pixels, 0.005, 0.995)
}

/// The window covering every pixel value.
pub fn full_window(pixels: &[f32]) -> Option<Window> {
    let (min, max) = pixels
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !min.is_finite() {
        return None;
    }
    let width = if max > min {
        f64::from(max) - f64::from(min)
    } else {
        1.0
    };
    Window::new(
        (f64::from(min) + f64::from(max)) / 2.0,
        width,
        VoiFunction::LinearExact,
    )
    .ok()
}

fn quantile(values: &mut [f32], q: f64) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let k = ((values.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    let (_, v, _) = values.select_nth_unstable_by(k, f32::total_cmp);
    Some(*v)
}

/// Modality values to display grey levels: a VOI stage, then inversion for MONOCHROME1 (or by choice).
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayTransform {
    /// The VOI stage.
    pub voi: Voi,
    /// Invert after the VOI stage (true for MONOCHROME1 shown as usual, or the user's choice).
    pub invert: bool,
}

impl DisplayTransform {
    /// One value to `[0, 1]`.
    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        let y = self.voi.apply(x);
        if self.invert { 1.0 - y } else { y }
    }

    /// All values to 8-bit grey levels (rounded to nearest).
    pub fn to_u8(&self, pixels: &[f32]) -> Vec<u8> {
        const CHUNK: usize = 1 << 14;
        let mut out = vec![0u8; pixels.len()];
        let chunks = out.par_chunks_mut(CHUNK).zip(pixels.par_chunks(CHUNK));
        let linear = match &self.voi {
            Voi::Window(w) => w.linear_constants(),
            Voi::Table(_) => None,
        };
        match linear {
            // A linear window, the usual case: its constants and the inversion chosen once per film,
            // not per pixel (the same arithmetic as `apply`, so the same bytes), in loops the compiler
            // can vectorise.
            Some(k) => {
                let invert = self.invert;
                chunks.for_each(|(out, px)| {
                    for (o, &x) in out.iter_mut().zip(px) {
                        let y = k.apply(f64::from(x)) as f32;
                        *o = round_to_u8(if invert { 1.0 - y } else { y } * 255.0);
                    }
                });
            }
            None => chunks.for_each(|(out, px)| {
                for (o, &x) in out.iter_mut().zip(px) {
                    *o = round_to_u8(self.apply(x) * 255.0);
                }
            }),
        }
        out
    }

    /// All values to 16-bit grey levels (rounded to nearest).
    pub fn to_u16(&self, pixels: &[f32]) -> Vec<u16> {
        pixels
            .par_iter()
            .with_min_len(4096)
            .map(|&x| (self.apply(x) * 65535.0).round().clamp(0.0, 65535.0) as u16)
            .collect()
    }

    /// All values to `[0, 1]` floats (the model's input before normalisation).
    pub fn to_unit(&self, pixels: &[f32]) -> Vec<f32> {
        pixels
            .par_iter()
            .with_min_len(4096)
            .map(|&x| self.apply(x))
            .collect()
    }
}

/// `v.round().clamp(0.0, 255.0) as u8`, exactly (ties away from zero, NaN to 0), without the call to the
/// C library's `roundf` that `f32::round` compiles to: the integer part by truncation, then up where the
/// exact remainder is at least one half.
#[inline]
fn round_to_u8(v: f32) -> u8 {
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= 255.0 {
        255
    } else {
        let i = v as u32;
        (i + u32::from(v - i as f32 >= 0.5)) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast rounding equals `round().clamp() as u8` on every f32 in and around 0–255 (and the
    /// special values).
    #[test]
    fn fast_rounding_equals_the_standard_one() {
        let reference = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        let mut bits = (-2.0f32).to_bits();
        let mut n = 0u64;
        // Every f32 from -2 down to -0 and from +0 up to 258 (about 1.1e9 + …: too many; step through
        // every 97th bit pattern, plus each value at and next to every half).
        while bits > 0x8000_0000 {
            let v = f32::from_bits(bits);
            assert_eq!(round_to_u8(v), reference(v), "{v}");
            bits = bits.saturating_sub(97);
            n += 1;
        }
        let mut v = 0.0f32;
        while v < 258.0 {
            assert_eq!(round_to_u8(v), reference(v), "{v}");
            v = f32::from_bits(v.to_bits() + 97);
            n += 1;
        }
        for k in 0..=520 {
            let half = k as f32 * 0.5;
            for v in [half, half.next_down(), half.next_up()] {
                assert_eq!(round_to_u8(v), reference(v), "{v}");
            }
        }
        for v in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            f32::MIN_POSITIVE,
        ] {
            assert_eq!(round_to_u8(v), reference(v), "{v}");
        }
        assert!(n > 10_000_000);
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    // Hand-computed from the formulas of PS3.3 C.11.2.1.2.1 (LINEAR), with c = 40, w = 400:
    // below c - 0.5 - (w-1)/2 = -160 -> y_min; above c - 0.5 + (w-1)/2 = 239 -> y_max;
    // else ((x - (c - 0.5)) / (w - 1) + 0.5).
    #[test]
    fn linear_matches_ps3_3() {
        let w = Window::linear(40.0, 400.0).unwrap();
        assert_eq!(w.apply(-160.0), 0.0);
        assert!(w.apply(-159.9) > 0.0);
        assert_eq!(w.apply(239.5), 1.0);
        assert!(close(w.apply(39.5), 0.5));
        assert!(close(w.apply(0.0), (0.0 - 39.5) / 399.0 + 0.5));
        assert!(close(w.apply(239.0), 1.0));
    }

    // PS3.3 C.11.2.1.3.2 (LINEAR_EXACT): below c - w/2 -> 0, above c + w/2 -> 1, else (x - c)/w + 0.5.
    #[test]
    fn linear_exact_matches_ps3_3() {
        let w = Window::new(40.0, 400.0, VoiFunction::LinearExact).unwrap();
        assert_eq!(w.apply(-160.0), 0.0);
        assert_eq!(w.apply(240.1), 1.0);
        assert!(close(w.apply(40.0), 0.5));
        assert!(close(w.apply(0.0), 0.4));
        assert!(close(w.apply(240.0), 1.0));
    }

    // PS3.3 C.11.2.1.3.1 (SIGMOID): y = 1 / (1 + exp(-4 (x - c) / w)).
    #[test]
    fn sigmoid_matches_ps3_3() {
        let w = Window::new(40.0, 400.0, VoiFunction::Sigmoid).unwrap();
        assert!(close(w.apply(40.0), 0.5));
        assert!(close(w.apply(140.0), 1.0 / (1.0 + (-1.0f64).exp())));
        assert!((w.apply(140.0) - 0.731_058_578_630_004_9).abs() < 1e-12);
    }

    #[test]
    fn width_rules_are_enforced() {
        assert!(Window::linear(0.0, 0.5).is_err());
        assert!(Window::linear(0.0, 1.0).is_ok());
        assert!(Window::new(0.0, 0.0, VoiFunction::Sigmoid).is_err());
        assert!(Window::new(f64::NAN, 10.0, VoiFunction::Linear).is_err());
        assert!(Window::parse("550/1024").is_ok());
        assert!(Window::parse("550").is_err());
        assert!(Window::parse("a/b").is_err());
    }

    #[test]
    fn width_one_is_a_threshold() {
        let w = Window::linear(100.0, 1.0).unwrap();
        assert_eq!(w.apply(99.5), 0.0);
        assert_eq!(w.apply(99.6), 1.0);
    }

    #[test]
    fn voi_table_and_inversion() {
        let t = Voi::Table(LookupTable {
            first_mapped: 0,
            bits: 8,
            data: vec![0, 51, 255],
            explanation: None,
        });
        assert_eq!(t.apply(1.0), 0.2);
        let d = DisplayTransform {
            voi: t,
            invert: true,
        };
        assert_eq!(d.to_u8(&[0.0, 2.0, 7.0]), vec![255, 0, 0]);
    }

    #[test]
    fn auto_window_ignores_collimation() {
        // 1000 pixels: 300 at the collimator value 0, 700 spread over 1000..1700.
        let mut px = vec![0.0f32; 300];
        px.extend((0..700).map(|i| 1000.0 + i as f32));
        px.push(4095.0);
        let w = auto_window(&px).unwrap();
        assert!(w.center > 1300.0 && w.center < 1400.0, "{w:?}");
        assert!(w.width > 650.0 && w.width < 700.0, "{w:?}");
    }

    #[test]
    fn named_presets_parse() {
        assert_eq!(NamedPreset::parse("AUTO"), NamedPreset::Auto);
        assert_eq!(NamedPreset::parse("file2"), NamedPreset::File(1));
        assert_eq!(
            NamedPreset::parse("Bone"),
            NamedPreset::FileNamed("Bone".into())
        );
    }
}
