//! Synthetic pelvic radiographs with known per-joint grades ("phantoms"), simulated readers, and the
//! bundled demo study. Real sacroiliac radiographs with consensus labels cannot be shipped, yet a new user
//! must see Sacro work at once and tests need images whose truth is known exactly. Every phantom says it
//! is synthetic: in its DICOM Series Description, its patient name, and text burned into the pixels.
//!
//! Side convention: an AP film shows the patient's right on the viewer's left; `left`/`right` grades are
//! the patient's.

mod reader;
mod render;

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use crate::imaging::burn_text;
pub use reader::SimulatedReader;
pub use render::{JointLook, Scene};

use crate::grading::{JointGrade, JointGrades};
use crate::imaging::dicom_write::{self, DicomImageSpec};
use crate::imaging::export::{self, GreyLevels, OutputFormat};
use crate::imaging::{ImagingError, Photometric, Rect, VoiFunction, Window, WindowPreset, voi};

/// The Series Description of every phantom.
pub const SERIES_DESCRIPTION: &str = "SYNTHETIC PHANTOM — NOT A PATIENT";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhantomConfig {
    /// Image side in pixels.
    pub size: u32,
    /// Probability of definite radiographic sacroiliitis (the seed study's cohort: about 0.66).
    pub prevalence: f64,
    /// Seed: same seed, same phantoms, byte for byte.
    pub seed: u64,
}

/// Per-side grade distribution q(g) ∝ exp(θ·g), with θ chosen so that P(definite) equals the prevalence
/// when the two sides are drawn independently.
pub fn side_distribution(prevalence: f64) -> [f64; 5] {
    let dist = |theta: f64| {
        let w: Vec<f64> = (0..5).map(|g| (theta * f64::from(g)).exp()).collect();
        let s: f64 = w.iter().sum();
        [w[0] / s, w[1] / s, w[2] / s, w[3] / s, w[4] / s]
    };
    let p_definite = |q: &[f64; 5]| {
        let le2 = q[0] + q[1] + q[2];
        1.0 - (le2 * le2 - q[2] * q[2])
    };
    let target = prevalence.clamp(0.001, 0.999);
    let (mut lo, mut hi) = (-12.0, 12.0);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if p_definite(&dist(mid)) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    dist((lo + hi) / 2.0)
}

fn draw_grade(q: &[f64; 5], rng: &mut ChaCha8Rng) -> JointGrade {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (g, p) in q.iter().enumerate() {
        acc += p;
        if u < acc {
            return JointGrade::from_value(g as i64).unwrap_or(JointGrade::Ankylosis);
        }
    }
    JointGrade::Ankylosis
}

/// A 64-bit mix for per-case seeds (splitmix64 finaliser).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic "2.25." UID from a seed and a purpose.
fn uid(seed: u64, what: u64) -> String {
    let hi = mix(seed ^ mix(what));
    let lo = mix(hi ^ 0x5AC0);
    format!("2.25.{}", (u128::from(hi) << 64 | u128::from(lo)) >> 1)
}

/// One generated film and its truth.
#[derive(Debug, Clone)]
pub struct Phantom {
    /// 1-based index.
    pub index: usize,
    /// Pseudonymous case ID, `P0001`…
    pub case_id: String,
    /// True grades (the patient's left and right).
    pub grades: JointGrades,
    /// Values in display orientation (high = bright = attenuating, as MONOCHROME2).
    pub pixels: Vec<u16>,
    /// Side in pixels.
    pub size: u32,
    /// Bits stored (12–16).
    pub bits_stored: u16,
    /// Written to DICOM as MONOCHROME1 (values and window centres inverted in the file).
    pub monochrome1: bool,
    /// CR or DX.
    pub modality: &'static str,
    /// Pixel rectangle of the patient's left joint (viewer's right).
    pub left_region: Rect,
    /// Pixel rectangle of the patient's right joint (viewer's left).
    pub right_region: Rect,
    /// Pixel spacing in mm.
    pub pixel_spacing_mm: f64,
    /// Window presets (in display-oriented values).
    pub windows: Vec<WindowPreset>,
}

/// Generates phantom number `index` (1-based) of a series.
pub fn generate(config: &PhantomConfig, index: usize) -> Phantom {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed) ^ mix(index as u64));
    let q = side_distribution(config.prevalence);
    let left = draw_grade(&q, &mut rng);
    let right = draw_grade(&q, &mut rng);
    let scene = Scene::new(config.size, right, left, &mut rng);
    let mut image = scene.render();
    // Burned-in side marker (a lead "R" on the patient's right, the viewer's left) and the synthetic label.
    let s = config.size as f32;
    burn_text(&mut image, "R", s * 0.06, s * 0.05, s * 0.05, 1.0);
    burn_text(
        &mut image,
        "SYNTHETIC PHANTOM - NOT A PATIENT",
        s * 0.06,
        s * 0.93,
        s * 0.022,
        1.0,
    );
    let bits_stored: u16 = [12, 12, 14, 15, 16][rng.random_range(0..5)];
    let monochrome1 = rng.random_bool(0.3);
    let modality = if rng.random_bool(0.5) { "CR" } else { "DX" };
    let max = f32::from(((1u32 << bits_stored) - 1) as u16);
    let pixels: Vec<u16> = image
        .pixels
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * max).round() as u16)
        .collect();
    // Window presets from the exposed anatomy: collimation (0.97) and burned-in text (1.0) left out.
    let anatomy: Vec<f32> = image.pixels.iter().copied().filter(|&v| v < 0.95).collect();
    let mut windows = Vec::new();
    for (name, lo, hi) in [("PHANTOM", 0.005, 0.995), ("BONE", 0.3, 0.999)] {
        if let Some(w) = voi::percentile_window(&anatomy, lo, hi) {
            let (c, wd) = (
                w.center * f64::from(max),
                (w.width * f64::from(max)).max(2.0),
            );
            if let Ok(window) = Window::new(c.round(), wd.round(), VoiFunction::Linear) {
                windows.push(WindowPreset {
                    window,
                    explanation: Some(name.into()),
                });
            }
        }
    }
    Phantom {
        index,
        case_id: format!("P{index:04}"),
        grades: JointGrades::new(left, right),
        pixels,
        size: config.size,
        bits_stored,
        monochrome1,
        modality,
        left_region: scene.joint_region(1),
        right_region: scene.joint_region(0),
        pixel_spacing_mm: 400.0 / f64::from(config.size),
        windows,
    }
}

/// Output format of phantom images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PhantomFormat {
    /// DICOM (CR/DX image storage, explicit VR little endian).
    Dicom,
    /// DICOM, deflated explicit VR little endian (smaller; used for the bundled demo).
    DicomDeflated,
    /// 16-bit greyscale TIFF (always MONOCHROME2 orientation).
    Tiff,
}

/// Writes one phantom into `dir`; returns the file written.
pub fn write(
    dir: &Path,
    config: &PhantomConfig,
    p: &Phantom,
    format: PhantomFormat,
) -> Result<PathBuf, ImagingError> {
    match format {
        PhantomFormat::Tiff => {
            let path = dir.join(format!("{}.tiff", p.case_id));
            export::write_grey(
                &path,
                p.size,
                p.size,
                &GreyLevels::Sixteen(p.pixels.clone()),
                OutputFormat::Tiff,
            )?;
            Ok(path)
        }
        PhantomFormat::Dicom | PhantomFormat::DicomDeflated => {
            let path = dir.join(format!("{}.dcm", p.case_id));
            let study = uid(config.seed, 1 << 32 | p.index as u64);
            let series = uid(config.seed, 2 << 32 | p.index as u64);
            let sop = uid(config.seed, 3 << 32 | p.index as u64);
            let name = format!("PHANTOM^{:04}", p.index);
            let id = format!("PHANTOM{:04}", p.index);
            let max = ((1u32 << p.bits_stored) - 1) as u16;
            let (pixels, windows) = if p.monochrome1 {
                let inverted: Vec<u16> = p.pixels.iter().map(|&v| max - v).collect();
                let windows: Vec<WindowPreset> = p
                    .windows
                    .iter()
                    .map(|w| WindowPreset {
                        window: Window {
                            center: f64::from(max) - w.window.center,
                            ..w.window
                        },
                        explanation: w.explanation.clone(),
                    })
                    .collect();
                (
                    std::borrow::Cow::Owned(inverted),
                    std::borrow::Cow::Owned(windows),
                )
            } else {
                (
                    std::borrow::Cow::Borrowed(&p.pixels),
                    std::borrow::Cow::Borrowed(&p.windows),
                )
            };
            let spec = DicomImageSpec {
                width: p.size,
                height: p.size,
                pixels: &pixels,
                bits_stored: p.bits_stored,
                photometric: if p.monochrome1 {
                    Photometric::Monochrome1
                } else {
                    Photometric::Monochrome2
                },
                modality: p.modality,
                sop_class_uid: if p.modality == "CR" {
                    dicom_write::CR_IMAGE_STORAGE
                } else {
                    dicom_write::DX_IMAGE_STORAGE
                },
                study_uid: &study,
                series_uid: &series,
                sop_instance_uid: &sop,
                patient_name: &name,
                patient_id: &id,
                series_description: SERIES_DESCRIPTION,
                body_part: "PELVIS",
                view_position: "AP",
                study_date: "20000101",
                pixel_spacing_mm: (p.pixel_spacing_mm, p.pixel_spacing_mm),
                windows: &windows,
                burned_in_annotation: true,
                deflate: format == PhantomFormat::DicomDeflated,
            };
            dicom_write::write_dicom(&path, &spec)?;
            Ok(path)
        }
    }
}

/// The header of `truth.csv`.
pub const TRUTH_HEADER: [&str; 13] = [
    "case",
    "file",
    "left_grade",
    "right_grade",
    "definite",
    "left_x",
    "left_y",
    "left_w",
    "left_h",
    "right_x",
    "right_y",
    "right_w",
    "right_h",
];

/// One row of `truth.csv`.
pub fn truth_row(p: &Phantom, file: &str) -> Vec<String> {
    let r = |r: Rect| [r.x, r.y, r.width, r.height].map(|v| v.to_string());
    let mut row = vec![
        p.case_id.clone(),
        file.to_string(),
        p.grades.left.to_string(),
        p.grades.right.to_string(),
        u8::from(p.grades.definite_sacroiliitis()).to_string(),
    ];
    row.extend(r(p.left_region));
    row.extend(r(p.right_region));
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prevalence_is_met_with_independent_sides() {
        for prevalence in [0.1, 0.5, 0.66, 0.9] {
            let q = side_distribution(prevalence);
            let le2 = q[0] + q[1] + q[2];
            let p = 1.0 - (le2 * le2 - q[2] * q[2]);
            assert!((p - prevalence).abs() < 1e-9, "{prevalence}: {p}");
            assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn uids_are_valid_and_distinct() {
        let a = uid(7, 1);
        assert!(
            a.len() <= 64 && a.starts_with("2.25.") && a[5..].chars().all(|c| c.is_ascii_digit()),
            "{a}"
        );
        assert_ne!(a, uid(7, 2));
        assert_eq!(a, uid(7, 1));
    }
}
