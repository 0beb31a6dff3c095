//! Batch work over files and folders: gathering inputs recursively and converting one radiograph to a
//! windowed image or raw float TIFF, as the seed study did by hand before training.

use std::path::{Path, PathBuf};

use super::export::{self, GreyLevels, OutputFormat};
use super::{ImagingError, LoadOptions, NamedPreset, Radiograph, Voi, Window};

/// How to window a converted image.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowChoice {
    /// The file's first preset, else its VOI LUT, else the automatic window.
    FileDefault,
    /// A fixed window.
    Fixed(Window),
    /// A named preset.
    Preset(NamedPreset),
}

/// What `sacro convert` does to each file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertSettings {
    /// Window choice (ignored with `raw`).
    pub window: WindowChoice,
    /// Output container (ignored with `raw`: always TIFF).
    pub format: OutputFormat,
    /// 8 or 16 bits.
    pub bits: u8,
    /// Write post-Modality-LUT values as 32-bit float TIFF, unwindowed, not inverted.
    pub raw: bool,
    /// Loading limits and frame.
    pub load: LoadOptions,
}

/// Files under the given paths: files as given, folders walked recursively (hidden entries skipped,
/// only names that look like images), sorted. Each input is paired with the root it was found under.
pub fn gather_inputs(paths: &[PathBuf]) -> Result<Vec<(PathBuf, PathBuf)>, ImagingError> {
    let mut out = Vec::new();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|source| ImagingError::Io {
            path: root.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(root, &mut found)?;
            found.sort();
            out.extend(found.into_iter().map(|f| (root.clone(), f)));
        } else {
            let parent = root.parent().map(Path::to_path_buf).unwrap_or_default();
            out.push((parent, root.clone()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ImagingError> {
    let io = |source| ImagingError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            walk(&path, found)?;
        } else if kind.is_file() && super::has_image_extension(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// The output path for `input` found under `root`: the same relative folder under `out_dir`, the file's
/// stem, and the output extension.
pub fn output_path(root: &Path, input: &Path, out_dir: &Path, extension: &str) -> PathBuf {
    let rel = input.strip_prefix(root).unwrap_or(input);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    out_dir.join(parent).join(format!("{stem}.{extension}"))
}

/// The VOI stage a choice gives for one radiograph.
pub fn voi_for(radiograph: &Radiograph, choice: &WindowChoice) -> Result<Voi, ImagingError> {
    match choice {
        WindowChoice::FileDefault => Ok(radiograph.default_voi()),
        WindowChoice::Fixed(w) => Ok(Voi::Window(*w)),
        WindowChoice::Preset(p) => radiograph.voi_for(p),
    }
}

/// Converts one file; returns the path written.
pub fn convert_one(
    root: &Path,
    input: &Path,
    out_dir: &Path,
    settings: &ConvertSettings,
) -> Result<PathBuf, ImagingError> {
    let radiograph = super::load(input, &settings.load)?;
    let ext = if settings.raw {
        "tiff"
    } else {
        settings.format.extension()
    };
    let out = output_path(root, input, out_dir, ext);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ImagingError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    if settings.raw {
        export::write_raw_f32_tiff(&out, &radiograph.image)?;
    } else {
        let display = radiograph.display(voi_for(&radiograph, &settings.window)?);
        let levels = GreyLevels::render(&radiograph.image, &display, settings.bits);
        export::write_grey(
            &out,
            radiograph.width(),
            radiograph.height(),
            &levels,
            settings.format,
        )?;
    }
    Ok(out)
}
