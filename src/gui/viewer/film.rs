//! What the viewer shows: a decoded film ready for the GPU (downsampled past the device's texture limit),
//! an optional heatmap, and the view state (zoom, centre, window, inversion) of the current film.

use std::sync::Arc;

use egui::Pos2;

use crate::imaging::voi::{NamedPreset, Voi, VoiFunction, Window};
use crate::imaging::{GreyImage, Radiograph};

/// The largest texture side uploaded; larger films are shown downsampled (the readout still reads the
/// original values).
pub const MAX_TEXTURE_SIDE: u32 = 8192;

/// The device's limit on texture sides (set when the pipeline is installed; some GPUs allow only 2048 or
/// 4096), capped at [`MAX_TEXTURE_SIDE`].
pub(super) static DEVICE_MAX_SIDE: std::sync::atomic::AtomicU32 =
    std::sync::atomic::AtomicU32::new(MAX_TEXTURE_SIDE);

/// A decoded film ready to show.
#[derive(Debug)]
pub struct Film {
    /// Unique key (changes whenever the pixels change).
    pub key: u64,
    /// The decoded radiograph.
    pub radiograph: Radiograph,
    /// What is uploaded: modality values, or VOI-applied values in [0, 1] when the film's VOI is a table.
    pub texture_values: Arc<GreyImage>,
    /// The texture holds values already windowed by the film's VOI LUT.
    pub table_voi: bool,
}

impl Film {
    /// Prepares a radiograph for display.
    pub fn new(key: u64, radiograph: Radiograph) -> Self {
        let (values, table_voi) = match radiograph.default_voi() {
            Voi::Table(_) => (radiograph.default_unit(), true),
            Voi::Window(_) => (radiograph.image.clone(), false),
        };
        let max_side = DEVICE_MAX_SIDE.load(std::sync::atomic::Ordering::Relaxed);
        let values = if values.width.max(values.height) > max_side {
            let f = f64::from(max_side) / f64::from(values.width.max(values.height));
            let (w, h) = (
                ((f64::from(values.width) * f).round() as u32).max(1),
                ((f64::from(values.height) * f).round() as u32).max(1),
            );
            values.resize(w, h).unwrap_or(values)
        } else {
            values
        };
        Self {
            key,
            radiograph,
            texture_values: Arc::new(values),
            table_voi,
        }
    }
}

/// An optional heatmap over the film: RGBA8 (colour and alpha), any size, stretched over the film.
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// Unique key.
    pub key: u64,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// RGBA bytes.
    pub rgba: Arc<Vec<u8>>,
}

/// Window/level and view settings of the current film.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewState {
    /// Points per image pixel; `None` fits the film into the view.
    pub zoom: Option<f32>,
    /// Image point shown at the centre of the view.
    pub center: Pos2,
    /// Current window.
    pub window: Window,
    /// Inverted display.
    pub invert: bool,
    /// Name of the window's origin (preset, auto, manual).
    pub window_name: String,
    /// Heatmap opacity (0 = hidden).
    pub heat_opacity: f32,
}

impl ViewState {
    /// The film's default view: fitted, its first window preset (or auto), inverted if MONOCHROME1.
    pub fn for_film(film: &Film) -> Self {
        let r = &film.radiograph;
        let (window, name) = if film.table_voi {
            (
                Window {
                    center: 0.5,
                    width: 1.0,
                    function: VoiFunction::LinearExact,
                },
                "VOI LUT".to_string(),
            )
        } else {
            match r.default_voi() {
                Voi::Window(w) => (
                    w,
                    if r.presets.is_empty() {
                        "auto".into()
                    } else {
                        r.preset_names().first().cloned().unwrap_or_default()
                    },
                ),
                Voi::Table(_) => (r.auto_window(), "auto".into()),
            }
        };
        Self {
            zoom: None,
            center: Pos2::new(r.width() as f32 / 2.0, r.height() as f32 / 2.0),
            window,
            invert: r.inverted_by_default(),
            window_name: name,
            heat_opacity: 0.0,
        }
    }

    /// Applies preset `n` (1–5): 1–2 the film's presets (or auto), 3 auto, 4 full range, 5 contrast.
    pub fn apply_preset(&mut self, film: &Film, n: usize) -> Result<(), String> {
        if film.table_voi {
            return Err("this film is windowed by its VOI LUT".into());
        }
        let r = &film.radiograph;
        let preset = match n {
            1 | 2 if r.presets.len() >= n => NamedPreset::File(n - 1),
            1..=3 => NamedPreset::Auto,
            4 => NamedPreset::Full,
            _ => NamedPreset::Contrast,
        };
        let name = match &preset {
            NamedPreset::File(i) => r.preset_names().get(*i).cloned().unwrap_or_default(),
            NamedPreset::Auto => "auto".into(),
            NamedPreset::Full => "full range".into(),
            _ => "contrast".into(),
        };
        match r.voi_for(&preset).map_err(|e| e.to_string())? {
            Voi::Window(w) => {
                self.window = w;
                self.window_name = name;
                Ok(())
            }
            Voi::Table(_) => Err("preset is a table".into()),
        }
    }
}
