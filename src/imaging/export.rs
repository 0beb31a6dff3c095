//! Writing converted images: windowed 8/16-bit greyscale TIFF or PNG, and 32-bit float TIFF of raw
//! modality values. Files are written to a temporary name beside the target and renamed into place,
//! so an interrupted conversion never leaves a half-written image under the final name.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::{DisplayTransform, GreyImage, ImagingError};

/// Output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// TIFF (baseline, uncompressed).
    Tiff,
    /// PNG.
    Png,
}

impl OutputFormat {
    /// File extension.
    pub fn extension(&self) -> &'static str {
        match self {
            Self::Tiff => "tiff",
            Self::Png => "png",
        }
    }
}

/// Grey levels of a windowed image, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub enum GreyLevels {
    /// 8 bits per pixel.
    Eight(Vec<u8>),
    /// 16 bits per pixel.
    Sixteen(Vec<u16>),
}

impl GreyLevels {
    /// Windowed grey levels of `image` through `display` at the given depth (8 or 16).
    pub fn render(image: &GreyImage, display: &DisplayTransform, bits: u8) -> Self {
        if bits == 16 {
            Self::Sixteen(display.to_u16(&image.pixels))
        } else {
            Self::Eight(display.to_u8(&image.pixels))
        }
    }
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ImagingError {
    ImagingError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// The first bytes of every SQLite database file (a Sacro study is one).
pub const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Why `path` may not be replaced by an output: a folder, or a database (a Sacro study is an SQLite
/// file: no export, report or conversion may write over one, its own input included).
pub fn refuse_to_replace(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("is a folder".into());
    }
    let mut head = [0u8; 16];
    let is_database = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| &head == SQLITE_HEADER);
    if is_database {
        return Err("is a database (a study?): refusing to write over it".into());
    }
    Ok(())
}

/// Runs `write` on a temporary path beside `path` (same folder, so the rename is atomic), then renames
/// it into place; on failure the temporary file is removed and nothing appears under `path`. Refuses
/// to replace a folder or a database ([`refuse_to_replace`]) before writing anything.
pub fn write_via_temp(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), ImagingError> {
    refuse_to_replace(path).map_err(|e| write_err(path, e))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.partial"));
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| write_err(path, e))
}

/// Writes through a buffered, synced temporary file (see [`write_via_temp`]).
fn atomic_write(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut std::fs::File>) -> Result<(), String>,
) -> Result<(), ImagingError> {
    write_via_temp(path, |tmp| {
        let mut file = std::fs::File::create(tmp).map_err(|e| e.to_string())?;
        {
            let mut w = BufWriter::new(&mut file);
            write(&mut w)?;
            w.flush().map_err(|e| e.to_string())?;
        }
        file.sync_all().map_err(|e| e.to_string())
    })
}

/// Writes windowed grey levels as TIFF or PNG.
pub fn write_grey(
    path: &Path,
    width: u32,
    height: u32,
    levels: &GreyLevels,
    format: OutputFormat,
) -> Result<(), ImagingError> {
    atomic_write(path, |w| match format {
        OutputFormat::Tiff => {
            use tiff::encoder::{TiffEncoder, colortype};
            let mut enc = TiffEncoder::new(w).map_err(|e| e.to_string())?;
            match levels {
                GreyLevels::Eight(v) => enc.write_image::<colortype::Gray8>(width, height, v),
                GreyLevels::Sixteen(v) => enc.write_image::<colortype::Gray16>(width, height, v),
            }
            .map_err(|e| e.to_string())
        }
        OutputFormat::Png => {
            use image::ImageEncoder;
            let enc = image::codecs::png::PngEncoder::new(w);
            match levels {
                GreyLevels::Eight(v) => {
                    enc.write_image(v, width, height, image::ExtendedColorType::L8)
                }
                GreyLevels::Sixteen(v) => {
                    // PNG stores 16-bit samples big endian; image's encoder takes native-endian bytes.
                    let bytes: Vec<u8> = v.iter().flat_map(|s| s.to_ne_bytes()).collect();
                    enc.write_image(&bytes, width, height, image::ExtendedColorType::L16)
                }
            }
            .map_err(|e| e.to_string())
        }
    })
}

/// Writes modality values unwindowed and uninverted as a 32-bit float greyscale TIFF.
pub fn write_raw_f32_tiff(path: &Path, image: &GreyImage) -> Result<(), ImagingError> {
    atomic_write(path, |w| {
        use tiff::encoder::{TiffEncoder, colortype};
        let mut enc = TiffEncoder::new(w).map_err(|e| e.to_string())?;
        enc.write_image::<colortype::Gray32Float>(image.width, image.height, &image.pixels)
            .map_err(|e| e.to_string())
    })
}
