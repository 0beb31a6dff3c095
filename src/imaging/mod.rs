//! Radiographs in, correct numbers out: DICOM (every transfer syntax dicom-rs decodes with Sacro's
//! features), TIFF, PNG and JPEG decoded into modality values (`f32`), with the file's window presets,
//! VOI LUTs and identifying metadata kept apart from the pixels.
//!
//! Never sees candle or egui. The window/level functions in [`voi`] are the reference for the viewer's
//! shader, and [`geometry`] holds the crop/resize/pad the model's pre-processing uses.

pub mod batch;
pub mod deid;
mod dicom;
pub mod dicom_write;
mod error;
pub mod export;
pub mod geometry;
mod guard;
mod j2k;
pub mod joint_crop;
mod jpeg12;
pub mod modality;
pub mod overlay;
mod raster;
pub mod voi;

use std::path::{Path, PathBuf};

pub use error::ImagingError;
pub use geometry::{GreyImage, Rect};
pub use modality::{LookupTable, ModalityLut};
pub use raster::burn_text;
pub use voi::{
    DisplayTransform, NamedPreset, Voi, VoiFunction, Window, WindowPolicy, WindowPreset,
};

/// Photometric Interpretation of the source, after decoding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Photometric {
    /// Lowest value is white (shown inverted).
    Monochrome1,
    /// Lowest value is black.
    Monochrome2,
    /// Colour (RGB or YBR) reduced to luminance 0.299 R + 0.587 G + 0.114 B.
    ColourAsLuminance(String),
}

impl Photometric {
    /// Whether the file held a colour image (shown as its luminance).
    pub fn is_colour(&self) -> bool {
        matches!(self, Self::ColourAsLuminance(_))
    }

    /// The DICOM term, e.g. `MONOCHROME1`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Monochrome1 => "MONOCHROME1",
            Self::Monochrome2 => "MONOCHROME2",
            Self::ColourAsLuminance(s) => s,
        }
    }
}

/// Which container a radiograph came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SourceFormat {
    /// DICOM Part 10 file (with or without the file meta header).
    Dicom,
    /// TIFF.
    Tiff,
    /// PNG.
    Png,
    /// JPEG (JFIF/Exif).
    Jpeg,
}

/// Where the pixels came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Source {
    /// Path of the file.
    pub path: PathBuf,
    /// Container format.
    pub format: SourceFormat,
    /// Transfer Syntax UID (DICOM only).
    pub transfer_syntax: Option<String>,
    /// Transfer syntax name (DICOM only).
    pub transfer_syntax_name: Option<String>,
    /// True when the DICOM file had no file meta header and the encoding was inferred.
    pub meta_inferred: bool,
    /// Number of frames in the file.
    pub frames: u32,
    /// The frame that was decoded (0-based).
    pub frame: u32,
}

/// Identifying and descriptive metadata, kept apart from the pixels so that exports can leave it out.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Identity {
    /// Patient's Name (0010,0010): protected health information.
    pub patient_name: Option<String>,
    /// Patient ID (0010,0020): protected health information.
    pub patient_id: Option<String>,
    /// Study Instance UID.
    pub study_uid: Option<String>,
    /// Series Instance UID.
    pub series_uid: Option<String>,
    /// SOP Instance UID.
    pub sop_instance_uid: Option<String>,
    /// Study Date (YYYYMMDD).
    pub study_date: Option<String>,
    /// Body Part Examined.
    pub body_part: Option<String>,
    /// View Position.
    pub view_position: Option<String>,
    /// Modality, e.g. CR or DX.
    pub modality: Option<String>,
    /// Series Description.
    pub series_description: Option<String>,
    /// Burned In Annotation (0028,0301): YES where text (names, dates) is burned into the pixels.
    pub burned_in_annotation: Option<String>,
    /// SOP Class UID (what kind of object: CR, DX, secondary capture…).
    pub sop_class_uid: Option<String>,
}

impl Identity {
    /// Why the pixels may carry identifying text that no header change removes: Burned In Annotation
    /// YES, or, without that attribute, an ultrasound or secondary-capture object (PS3.15 E.1.1 and the
    /// usual practice of de-identification tools). None: no sign of burned-in text.
    pub fn burned_in_text(&self) -> Option<String> {
        match self.burned_in_annotation.as_deref().map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("YES") => Some("Burned In Annotation is YES".into()),
            Some(_) => None,
            None => {
                let sc = self
                    .sop_class_uid
                    .as_deref()
                    .is_some_and(|u| u.starts_with("1.2.840.10008.5.1.4.1.1.7"));
                let us = self
                    .modality
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case("US"));
                (sc || us).then(|| {
                    format!(
                        "a {} without Burned In Annotation (such objects often carry burned-in text)",
                        if us { "ultrasound" } else { "secondary capture" }
                    )
                })
            }
        }
    }
}

/// One decoded radiograph: modality values plus what is needed to display and describe them.
#[derive(Debug, Clone)]
pub struct Radiograph {
    /// Post-Modality-LUT values, row-major.
    pub image: GreyImage,
    /// Photometric interpretation.
    pub photometric: Photometric,
    /// Bits Stored (8 or 16 for raster files).
    pub bits_stored: u16,
    /// Pixel Representation 1 (signed stored values).
    pub signed: bool,
    /// The Modality LUT stage that was applied.
    pub modality_lut: ModalityLut,
    /// Range the modality values can take (the output range of windowing in PS3.3 terms).
    pub value_range: (f64, f64),
    /// Pixel spacing (row, column) in mm, from Pixel Spacing or Imager Pixel Spacing.
    pub pixel_spacing_mm: Option<(f64, f64)>,
    /// Window presets stored in the file.
    pub presets: Vec<WindowPreset>,
    /// VOI LUT Sequence items stored in the file.
    pub voi_luts: Vec<LookupTable>,
    /// Where it came from.
    pub source: Source,
    /// Identifying metadata.
    pub identity: Identity,
}

impl Radiograph {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.image.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.image.height
    }

    /// Whether display inverts values (MONOCHROME1).
    pub fn inverted_by_default(&self) -> bool {
        self.photometric == Photometric::Monochrome1
    }

    /// The VOI stage a viewer starts with: the file's first window, else its first VOI LUT, else auto.
    pub fn default_voi(&self) -> Voi {
        if let Some(p) = self.presets.first() {
            return Voi::Window(p.window);
        }
        if let Some(t) = self.voi_luts.first() {
            return Voi::Table(t.clone());
        }
        Voi::Window(self.auto_window())
    }

    /// The automatic window (0.5–99.5 percentiles inside the collimated area).
    pub fn auto_window(&self) -> Window {
        voi::auto_window(&self.image.pixels).unwrap_or(Window {
            center: 0.5,
            width: 1.0,
            function: VoiFunction::LinearExact,
        })
    }

    /// The VOI stage for a named preset.
    pub fn voi_for(&self, preset: &NamedPreset) -> Result<Voi, ImagingError> {
        let px = &self.image.pixels;
        let none = || ImagingError::InvalidParameter("the image has no finite pixel values".into());
        Ok(match preset {
            NamedPreset::Auto => Voi::Window(voi::auto_window(px).ok_or_else(none)?),
            NamedPreset::Full => Voi::Window(voi::full_window(px).ok_or_else(none)?),
            NamedPreset::Contrast => {
                Voi::Window(voi::percentile_window(px, 0.05, 0.95).ok_or_else(none)?)
            }
            NamedPreset::File(i) => Voi::Window(
                self.presets
                    .get(*i)
                    .ok_or_else(|| {
                        ImagingError::InvalidParameter(format!(
                            "{}: has {} window preset(s), preset file{} asked for",
                            self.source.path.display(),
                            self.presets.len(),
                            i + 1
                        ))
                    })?
                    .window,
            ),
            NamedPreset::FileNamed(name) => Voi::Window(
                self.presets
                    .iter()
                    .find(|p| {
                        p.explanation
                            .as_deref()
                            .is_some_and(|e| e.trim().eq_ignore_ascii_case(name))
                    })
                    .ok_or_else(|| {
                        ImagingError::InvalidParameter(format!(
                            "{}: no window preset named {name:?} (has: {})",
                            self.source.path.display(),
                            self.preset_names().join(", ")
                        ))
                    })?
                    .window,
            ),
        })
    }

    /// Names of the file's presets (explanations, or `file1`, `file2`…).
    pub fn preset_names(&self) -> Vec<String> {
        self.presets
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.explanation
                    .clone()
                    .unwrap_or_else(|| format!("file{}", i + 1))
            })
            .collect()
    }

    /// The film as the model and the viewer see it by default: the file's window (else its VOI LUT, else
    /// automatic), MONOCHROME1 inverted, values in [0, 1].
    pub fn default_unit(&self) -> GreyImage {
        GreyImage {
            width: self.width(),
            height: self.height(),
            pixels: self.display(self.default_voi()).to_unit(&self.image.pixels),
        }
    }

    /// Whether the stored values are display-ready 8-bit grey levels: at most 8 bits, unsigned, no
    /// rescaling, and no window or VOI LUT of the file's own (a PNG, a JPEG, an 8-bit TIFF or DICOM export).
    pub fn is_display_ready_8bit(&self) -> bool {
        self.bits_stored <= 8
            && !self.signed
            && matches!(self.modality_lut, ModalityLut::Identity)
            && self.presets.is_empty()
            && self.voi_luts.is_empty()
    }

    /// The film as a model sees it under `policy`: display-ready 8-bit images as stored (`v / 255`,
    /// MONOCHROME1 inverted) with [`WindowPolicy::AsStored8Bit`], else [`Radiograph::default_unit`].
    pub fn model_unit(&self, policy: WindowPolicy) -> GreyImage {
        if policy == WindowPolicy::AsStored8Bit && self.is_display_ready_8bit() {
            let invert = self.inverted_by_default();
            return GreyImage {
                width: self.width(),
                height: self.height(),
                pixels: self
                    .image
                    .pixels
                    .iter()
                    .map(|&v| {
                        let u = (v / 255.0).clamp(0.0, 1.0);
                        if invert { 1.0 - u } else { u }
                    })
                    .collect(),
            };
        }
        self.default_unit()
    }

    /// The display transform for a VOI stage, inverted for MONOCHROME1.
    pub fn display(&self, voi: Voi) -> DisplayTransform {
        DisplayTransform {
            voi,
            invert: self.inverted_by_default(),
        }
    }
}

/// Limits and choices for loading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadOptions {
    /// Refuse images with more pixels than this (all frames counted). Default 100 megapixels.
    pub max_pixels: u64,
    /// Refuse files larger than this. Default 2 GiB.
    pub max_file_bytes: u64,
    /// Frame to decode from a multi-frame file (0-based).
    pub frame: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            max_pixels: 100_000_000,
            max_file_bytes: 2 << 30,
            frame: 0,
        }
    }
}

/// Loads a radiograph from a file of any supported format, decided by content, not by name.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Radiograph, ImagingError> {
    let io = |source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > options.max_file_bytes {
        return Err(ImagingError::FileTooLarge {
            path: path.to_path_buf(),
            size,
            limit: options.max_file_bytes,
        });
    }
    let bytes = read_bounded(path, options.max_file_bytes)?;
    load_bytes(path, &bytes, options)
}

/// Bytes read to tell a file's type before anything else is read.
const HEAD_BYTES: u64 = 1024;

/// The file's bytes, read only if its first bytes are a format Sacro reads, and never more than
/// `limit`: what the size on disk says is not trusted (a device such as `/dev/zero` or a pipe has
/// none, and a file can grow while it is read).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ImagingError> {
    use std::io::Read;
    let io = |source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(HEAD_BYTES.min(limit))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if sniff(&bytes).is_none() && !dicom::looks_like_bare_dataset(&bytes) {
        return Err(ImagingError::UnknownFormat {
            path: path.to_path_buf(),
            detail: format!("first bytes {:02X?}", &bytes[..bytes.len().min(8)]),
        });
    }
    let left = (limit + 1).saturating_sub(bytes.len() as u64);
    (&mut file).take(left).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ImagingError::FileTooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Loads a radiograph from bytes already in memory; `path` is used for messages and the source record.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<Radiograph, ImagingError> {
    match sniff(bytes) {
        Some(SourceFormat::Dicom) => dicom::load(path, bytes, options),
        Some(format) => raster::load(path, bytes, format, options),
        None if dicom::looks_like_bare_dataset(bytes) => dicom::load(path, bytes, options),
        None => Err(ImagingError::UnknownFormat {
            path: path.to_path_buf(),
            detail: format!("first bytes {:02X?}", &bytes[..bytes.len().min(8)]),
        }),
    }
}

/// A DICOM UID (PS3.5 9.1): 1–64 characters, components of digits separated by dots, none empty.
/// What Sacro accepts wherever a UID names a file, a request or a case.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

/// The identifying attributes of a DICOM object in memory, after the same structural checks as
/// [`load`] (every declared length within the data, the data set parses) but without decoding the
/// pixels: for checking what an archive sent before it is kept. Refuses an object without Pixel Data.
pub fn dicom_identity(path: &Path, bytes: &[u8]) -> Result<Identity, ImagingError> {
    if sniff(bytes) != Some(SourceFormat::Dicom) && !dicom::looks_like_bare_dataset(bytes) {
        return Err(ImagingError::UnknownFormat {
            path: path.to_path_buf(),
            detail: format!("first bytes {:02X?}", &bytes[..bytes.len().min(8)]),
        });
    }
    let (obj, _) = dicom::parse_object(path, bytes, &LoadOptions::default())?;
    let identity = dicom::identity(&obj);
    if !dicom::has_pixel_data(&obj) {
        return Err(ImagingError::NoPixelData {
            path: path.to_path_buf(),
            sop_class: identity
                .sop_class_uid
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        });
    }
    Ok(identity)
}

fn sniff(bytes: &[u8]) -> Option<SourceFormat> {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" || bytes.starts_with(b"DICM") {
        Some(SourceFormat::Dicom)
    } else if bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || bytes.starts_with(b"II+\0")
    {
        Some(SourceFormat::Tiff)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(SourceFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(SourceFormat::Jpeg)
    } else {
        None
    }
}

/// True when a path's extension suggests an image file Sacro can read (used when walking folders).
pub fn has_image_extension(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    matches!(
        ext.as_str(),
        "dcm" | "dicom" | "dic" | "ima" | "tif" | "tiff" | "png" | "jpg" | "jpeg" | ""
    )
}

/// A one-file summary for `sacro info` (patient identity only when asked for).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageSummary {
    /// File path.
    pub path: PathBuf,
    /// Container format.
    pub format: SourceFormat,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frames in the file.
    pub frames: u32,
    /// Bits stored.
    pub bits_stored: u16,
    /// Signed stored values.
    pub signed: bool,
    /// Photometric interpretation.
    pub photometric: String,
    /// Transfer syntax UID.
    pub transfer_syntax: Option<String>,
    /// Transfer syntax name.
    pub transfer_syntax_name: Option<String>,
    /// The file had no meta header; encoding inferred.
    pub meta_inferred: bool,
    /// Modality.
    pub modality: Option<String>,
    /// Body part examined.
    pub body_part: Option<String>,
    /// View position.
    pub view_position: Option<String>,
    /// Pixel spacing in mm (row, column).
    pub pixel_spacing_mm: Option<(f64, f64)>,
    /// Modality LUT description.
    pub modality_lut: String,
    /// Window presets.
    pub presets: Vec<WindowPreset>,
    /// Number of VOI LUTs.
    pub voi_luts: usize,
    /// Smallest and largest modality value.
    pub value_min_max: (f32, f32),
    /// Patient's name (only with `--show-phi`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    /// Patient ID (only with `--show-phi`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<String>,
}

impl Radiograph {
    /// The summary `sacro info` prints; patient name and ID only when `show_phi`.
    pub fn summary(&self, show_phi: bool) -> ImageSummary {
        let (min, max) = self
            .image
            .pixels
            .iter()
            .filter(|v| v.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        ImageSummary {
            path: self.source.path.clone(),
            format: self.source.format,
            width: self.width(),
            height: self.height(),
            frames: self.source.frames,
            bits_stored: self.bits_stored,
            signed: self.signed,
            photometric: self.photometric.as_str().to_string(),
            transfer_syntax: self.source.transfer_syntax.clone(),
            transfer_syntax_name: self.source.transfer_syntax_name.clone(),
            meta_inferred: self.source.meta_inferred,
            modality: self.identity.modality.clone(),
            body_part: self.identity.body_part.clone(),
            view_position: self.identity.view_position.clone(),
            pixel_spacing_mm: self.pixel_spacing_mm,
            modality_lut: match &self.modality_lut {
                ModalityLut::Identity => "none".into(),
                ModalityLut::Rescale { slope, intercept } => {
                    format!("rescale slope {slope} intercept {intercept}")
                }
                ModalityLut::Table(t) => {
                    format!("LUT of {} entries, {} bits", t.data.len(), t.bits)
                }
            },
            presets: self.presets.clone(),
            voi_luts: self.voi_luts.len(),
            value_min_max: (min, max),
            patient_name: show_phi
                .then(|| self.identity.patient_name.clone())
                .flatten(),
            patient_id: show_phi.then(|| self.identity.patient_id.clone()).flatten(),
        }
    }
}

impl std::fmt::Display for ImageSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}×{}", self.path.display(), self.width, self.height)?;
        if self.frames > 1 {
            write!(f, "×{} frames", self.frames)?;
        }
        write!(
            f,
            ", {} bits{}, {}",
            self.bits_stored,
            if self.signed { " signed" } else { "" },
            self.photometric
        )?;
        match (&self.transfer_syntax, &self.transfer_syntax_name) {
            (Some(uid), Some(name)) => write!(f, ", {name} ({uid})")?,
            _ => write!(f, ", {:?}", self.format)?,
        }
        if self.meta_inferred {
            write!(f, " [no meta header]")?;
        }
        if let Some(m) = &self.modality {
            write!(f, ", {m}")?;
        }
        if let Some(b) = &self.body_part {
            write!(f, " {b}")?;
        }
        if let Some(v) = &self.view_position {
            write!(f, " {v}")?;
        }
        if self.modality_lut != "none" {
            write!(f, ", {}", self.modality_lut)?;
        }
        if self.presets.is_empty() {
            write!(f, ", no window presets")?;
        } else {
            let presets: Vec<String> = self
                .presets
                .iter()
                .map(|p| {
                    let name = p
                        .explanation
                        .as_deref()
                        .map(|e| format!(" {e}"))
                        .unwrap_or_default();
                    format!("{}/{}{name}", p.window.center, p.window.width)
                })
                .collect();
            write!(f, ", windows {}", presets.join("; "))?;
        }
        if let Some(n) = &self.patient_name {
            write!(f, ", patient {n}")?;
        }
        if let Some(id) = &self.patient_id {
            write!(f, " ({id})")?;
        }
        Ok(())
    }
}
