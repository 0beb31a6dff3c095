//! DICOM decoding through dicom-rs, with the checks and corrections dicom-rs leaves to the caller:
//! bounds of every declared length (see `guard`), files without a file meta header, the pixel limit,
//! Bits Stored masking and sign extension, the Modality LUT, and the VOI attributes.

use std::io::Read;
use std::path::Path;

use dicom_core::Tag;
use dicom_core::header::HasLength;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_object::meta::{FileMetaTable, FileMetaTableBuilder};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use rayon::prelude::*;

use super::guard::{self, Encoding};
use super::modality::{LookupTable, ModalityLut, StoredLayout};
use super::voi::{VoiFunction, Window, WindowPreset};
use super::{
    GreyImage, Identity, ImagingError, LoadOptions, Photometric, Radiograph, Source, SourceFormat,
};

const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
const JPEG_EXTENDED_12BIT: &str = "1.2.840.10008.1.2.4.51";

/// True if the bytes look like a DICOM data set without preamble or meta header (old CD exports).
pub(super) fn looks_like_bare_dataset(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        return false;
    }
    let enc = guard::sniff_encoding(bytes);
    let group = if enc.little_endian {
        u16::from_le_bytes([bytes[0], bytes[1]])
    } else {
        u16::from_be_bytes([bytes[0], bytes[1]])
    };
    // Data sets start with a low group (0008 identifying, sometimes 0002/0004/0018/0028).
    (2..=0x0028).contains(&group) && group % 2 == 0
}

type Object = dicom_object::FileDicomObject<InMemDicomObject>;

/// The parsed object and how it was found.
struct Parsed {
    obj: Object,
    ts_uid: String,
    ts_name: String,
    meta_inferred: bool,
}

fn ts_encoding(uid: &str) -> Encoding {
    match uid {
        IMPLICIT_VR_LE => Encoding {
            explicit: false,
            little_endian: true,
        },
        EXPLICIT_VR_BE => Encoding {
            explicit: true,
            little_endian: false,
        },
        _ => Encoding::EXPLICIT_LE,
    }
}

fn sniffed_uid(enc: Encoding) -> &'static str {
    match (enc.explicit, enc.little_endian) {
        (false, _) => IMPLICIT_VR_LE,
        (true, true) => EXPLICIT_VR_LE,
        (true, false) => EXPLICIT_VR_BE,
    }
}

fn parse(path: &Path, bytes: &[u8], options: &LoadOptions) -> Result<Parsed, ImagingError> {
    let meta_start = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Some(128)
    } else if bytes.starts_with(b"DICM") {
        Some(0)
    } else {
        None
    };
    let (dataset_start, meta) = match meta_start {
        Some(start) => {
            let end = guard::meta_group_end(bytes, start + 4)
                .map_err(|e| ImagingError::malformed(path, e))?;
            let meta = FileMetaTable::from_reader(&bytes[start..end]).ok();
            (end, meta)
        }
        None => (0, None),
    };
    let dataset = &bytes[dataset_start..];
    let (ts_uid, meta_inferred) = match meta.as_ref().map(|m| {
        m.transfer_syntax()
            .trim_end_matches(['\0', ' '])
            .to_string()
    }) {
        Some(uid) if !uid.is_empty() => (uid, false),
        _ => {
            let enc = guard::sniff_encoding(dataset);
            tracing::warn!(
                "{}: no usable file meta header, data set read as {}",
                path.display(),
                sniffed_uid(enc)
            );
            (sniffed_uid(enc).to_string(), true)
        }
    };
    let ts = TransferSyntaxRegistry.get(&ts_uid).ok_or_else(|| {
        ImagingError::UnsupportedTransferSyntax {
            path: path.to_path_buf(),
            uid: ts_uid.clone(),
            name: "unknown".into(),
            detail: "not a transfer syntax this build knows".into(),
        }
    })?;
    let ts_name = ts.name().to_string();

    // A deflated data set is inflated here, within a bound, and then read as explicit VR little endian.
    let inflated;
    let (dataset, parse_uid) = if ts_uid == DEFLATED_EXPLICIT_VR_LE {
        let limit = options
            .max_pixels
            .saturating_mul(4)
            .saturating_add(64 << 20);
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(dataset)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                ImagingError::malformed(path, format!("deflated data set does not inflate: {e}"))
            })?;
        if out.len() as u64 > limit {
            return Err(ImagingError::malformed(
                path,
                format!("deflated data set inflates beyond {limit} bytes"),
            ));
        }
        inflated = out;
        (&inflated[..], EXPLICIT_VR_LE)
    } else {
        (dataset, ts_uid.as_str())
    };
    guard::check_dataset(dataset, ts_encoding(parse_uid), dataset_start)
        .map_err(|e| ImagingError::malformed(path, e))?;
    let parse_ts = TransferSyntaxRegistry.get(parse_uid).ok_or_else(|| {
        ImagingError::malformed(
            path,
            format!("transfer syntax {parse_uid} missing from registry"),
        )
    })?;
    let obj = InMemDicomObject::read_dataset_with_ts(dataset, parse_ts)
        .map_err(|e| ImagingError::malformed(path, error_chain(&e)))?;

    let sop_class = string(&obj, tags::SOP_CLASS_UID)
        .or_else(|| {
            meta.as_ref()
                .map(|m| m.media_storage_sop_class_uid().to_string())
        })
        .unwrap_or_else(|| "1.2.840.10008.5.1.4.1.1.7".into());
    let sop_instance = string(&obj, tags::SOP_INSTANCE_UID)
        .or_else(|| {
            meta.as_ref()
                .map(|m| m.media_storage_sop_instance_uid().to_string())
        })
        .unwrap_or_else(|| "2.25.0".into());
    let new_meta = FileMetaTableBuilder::new()
        .transfer_syntax(parse_uid)
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .implementation_class_uid("2.25.0")
        .build()
        .map_err(|e| ImagingError::malformed(path, format!("cannot build file meta group: {e}")))?;
    Ok(Parsed {
        obj: obj.with_exact_meta(new_meta),
        ts_uid,
        ts_name,
        meta_inferred,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

fn string(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let v = obj.get(tag)?.to_str().ok()?;
    let v = v.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!v.is_empty()).then(|| v.to_string())
}

fn uint(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    obj.get(tag)?.to_int::<u32>().ok()
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag)?.to_multi_float64().ok()
}

fn required_uint(
    path: &Path,
    obj: &InMemDicomObject,
    tag: Tag,
    name: &str,
) -> Result<u32, ImagingError> {
    let el = obj
        .get(tag)
        .ok_or_else(|| ImagingError::attribute(path, name, "missing"))?;
    el.to_int::<u32>()
        .map_err(|e| ImagingError::attribute(path, name, format!("not a valid number: {e}")))
}

/// Loads the chosen frame of a DICOM file into a radiograph.
pub(super) fn load(
    path: &Path,
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<Radiograph, ImagingError> {
    let Parsed {
        obj,
        ts_uid,
        ts_name,
        meta_inferred,
    } = parse(path, bytes, options)?;

    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(ImagingError::NoPixelData {
            path: path.to_path_buf(),
            sop_class: string(&obj, tags::SOP_CLASS_UID).unwrap_or_else(|| "unknown".into()),
        });
    }
    let rows = required_uint(path, &obj, tags::ROWS, "Rows (0028,0010)")?;
    let cols = required_uint(path, &obj, tags::COLUMNS, "Columns (0028,0011)")?;
    let samples = uint(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits_allocated = required_uint(
        path,
        &obj,
        tags::BITS_ALLOCATED,
        "Bits Allocated (0028,0100)",
    )?;
    let bits_stored = uint(&obj, tags::BITS_STORED).unwrap_or(bits_allocated);
    let signed = uint(&obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    let frames = match obj.get(tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(el) => el.to_int::<u32>().map_err(|e| {
            ImagingError::attribute(
                path,
                "Number of Frames (0028,0008)",
                format!("not a valid number: {e}"),
            )
        })?,
    }
    .max(1);
    let photometric_term =
        string(&obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| "MONOCHROME2".into());

    if rows == 0 || cols == 0 {
        return Err(ImagingError::attribute(
            path,
            "Rows/Columns",
            format!("image is {cols}×{rows}"),
        ));
    }
    if !matches!(samples, 1 | 3) {
        return Err(ImagingError::attribute(
            path,
            "Samples per Pixel (0028,0002)",
            format!("{samples} is not supported (1 or 3)"),
        ));
    }
    if !matches!(bits_allocated, 8 | 16 | 32) {
        return Err(ImagingError::attribute(
            path,
            "Bits Allocated (0028,0100)",
            format!("{bits_allocated} is not supported (8, 16 or 32)"),
        ));
    }
    if bits_stored == 0 || bits_stored > bits_allocated {
        return Err(ImagingError::attribute(
            path,
            "Bits Stored (0028,0101)",
            format!("{bits_stored} with Bits Allocated {bits_allocated}"),
        ));
    }
    let total = u64::from(rows) * u64::from(cols) * u64::from(frames);
    if total > options.max_pixels {
        return Err(ImagingError::TooManyPixels {
            path: path.to_path_buf(),
            width: cols.into(),
            height: rows.into(),
            frames: frames.into(),
            limit: options.max_pixels,
        });
    }
    if options.frame >= frames {
        return Err(ImagingError::InvalidParameter(format!(
            "{}: frame {} asked for, the file has {frames}",
            path.display(),
            options.frame + 1
        )));
    }
    let ts = TransferSyntaxRegistry.get(&ts_uid);
    let encapsulated = ts.is_some_and(|t| t.is_encapsulated_pixel_data());
    if !encapsulated {
        let frame_bytes =
            u64::from(rows) * u64::from(cols) * u64::from(samples) * u64::from(bits_allocated / 8);
        let needed = frame_bytes * u64::from(options.frame + 1);
        let have = obj
            .get(tags::PIXEL_DATA)
            .and_then(|el| el.length().get().map(u64::from))
            .unwrap_or(0);
        if have < needed {
            return Err(ImagingError::malformed(
                path,
                format!(
                    "Pixel Data holds {have} bytes but {cols}×{rows}×{samples} sample(s) at {bits_allocated} bits for frame {} need {needed} (truncated file?)",
                    options.frame + 1
                ),
            ));
        }
    }
    // 12-bit JPEG Extended goes to libjpeg-turbo (`jpeg12`); everything else to dicom-rs's decoders.
    let twelve_bit = ts_uid == JPEG_EXTENDED_12BIT && bits_allocated > 8;
    if twelve_bit && samples != 1 {
        return Err(ImagingError::UnsupportedTransferSyntax {
            path: path.to_path_buf(),
            uid: ts_uid,
            name: ts_name,
            detail: format!("{samples}-sample (colour) 12-bit JPEG; greyscale films only"),
        });
    }
    if !twelve_bit && ts.is_none_or(|t| !t.can_decode_all()) {
        return Err(ImagingError::UnsupportedTransferSyntax {
            path: path.to_path_buf(),
            uid: ts_uid,
            name: ts_name,
            detail: "no pixel data decoder for it in this build".into(),
        });
    }
    if super::j2k::TRANSFER_SYNTAXES.contains(&ts_uid.as_str()) {
        check_j2k_size(path, &obj, (options.frame, frames), (cols, rows, samples))?;
    }
    // The decoded samples stay where the decoder put them (borrowed below, never copied).
    let twelve_bit_samples: Vec<u8>;
    let dicom_rs_frame;
    let decoded = if twelve_bit {
        let jpeg = encapsulated_frame(path, &obj, options.frame, frames)?;
        let (w, h, values) = super::jpeg12::decode_grey(&jpeg, options.max_pixels)
            .map_err(|e| ImagingError::decode(path, e))?;
        if (w, h) != (cols, rows) {
            return Err(ImagingError::decode(
                path,
                format!("the JPEG stream is {w}×{h}, the data set says {cols}×{rows}"),
            ));
        }
        twelve_bit_samples = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Frame {
            bits: 16,
            samples: 1,
            data: &twelve_bit_samples,
            pixel_first: true,
            photometric: photometric_term.clone(),
        }
    } else {
        // A decoder bug on hostile input must not take the application down: a panic becomes an error.
        dicom_rs_frame = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            obj.decode_pixel_data_frame(options.frame)
        }))
        .map_err(|_| {
            ImagingError::decode(
                path,
                "the pixel data decoder failed on this file (internal panic)",
            )
        })?
        .map_err(|e| ImagingError::decode(path, error_chain(&e)))?;
        let d = &dicom_rs_frame;
        Frame {
            bits: d.bits_allocated(),
            samples: u32::from(d.samples_per_pixel()),
            pixel_first: d.planar_configuration()
                == dicom_pixeldata::PlanarConfiguration::PixelFirst,
            photometric: d.photometric_interpretation().as_str().to_string(),
            data: d.data(),
        }
    };
    let d_bits = decoded.bits;
    let d_samples = decoded.samples;
    let n = rows as usize * cols as usize;
    let data = decoded.data;
    let bytes_per_sample = usize::from(d_bits / 8).max(1);
    if data.len() < n * d_samples as usize * bytes_per_sample {
        return Err(ImagingError::decode(
            path,
            format!(
                "decoder returned {} bytes, {cols}×{rows}×{d_samples} samples at {d_bits} bits need {}",
                data.len(),
                n * d_samples as usize * bytes_per_sample
            ),
        ));
    }
    let raw = |i: usize| -> u32 {
        let o = i * bytes_per_sample;
        match bytes_per_sample {
            1 => u32::from(data[o]),
            2 => u32::from(u16::from_le_bytes([data[o], data[o + 1]])),
            _ => u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]),
        }
    };
    let layout = StoredLayout {
        bits_allocated: d_bits,
        bits_stored: (bits_stored as u16).min(d_bits),
        signed,
    };

    let (pixels, photometric, modality_lut) = if d_samples == 1 {
        let photometric = match photometric_term.as_str() {
            "MONOCHROME1" => Photometric::Monochrome1,
            "MONOCHROME2" => Photometric::Monochrome2,
            other => {
                return Err(ImagingError::attribute(
                    path,
                    "Photometric Interpretation (0028,0004)",
                    format!("{other} is not a greyscale interpretation Sacro can show"),
                ));
            }
        };
        let lut = modality_lut(path, &obj)?;
        let pixels = if bytes_per_sample <= 2 {
            // Samples of at most 16 bits: every raw value's result computed once, then looked up (the
            // same function per value, so the same f32s; a film is millions of samples, a table 65,536).
            let table: Vec<f32> = (0..1u32 << (8 * bytes_per_sample))
                .map(|r| lut.apply(layout.value(r)))
                .collect();
            looked_up(&data[..n * bytes_per_sample], bytes_per_sample, &table)
        } else {
            (0..n)
                .into_par_iter()
                .with_min_len(1 << 14)
                .map(|i| lut.apply(layout.value(raw(i))))
                .collect()
        };
        (pixels, photometric, lut)
    } else {
        let planar = decoded.pixel_first;
        let ybr = decoded.photometric.starts_with("YBR_FULL");
        let sample = |i: usize, c: usize| -> f64 {
            let idx = if planar { c * n + i } else { i * 3 + c };
            layout.value(raw(idx)) as f64
        };
        let pixels = (0..n)
            .map(|i| {
                let (mut r, mut g, mut b) = (sample(i, 0), sample(i, 1), sample(i, 2));
                if ybr {
                    // PS3.3 C.7.6.3.1.2, YBR_FULL to RGB.
                    let (y, cb, cr) = (r, g, b);
                    let half = f64::from(1u32 << (layout.bits_stored - 1));
                    r = y + 1.402 * (cr - half);
                    g = y - 0.344_136 * (cb - half) - 0.714_136 * (cr - half);
                    b = y + 1.772 * (cb - half);
                }
                (r * 0.299 + g * 0.587 + b * 0.114) as f32
            })
            .collect();
        (
            pixels,
            Photometric::ColourAsLuminance(decoded.photometric.clone()),
            ModalityLut::Identity,
        )
    };
    let value_range = modality_lut.output_range(&layout);
    Ok(Radiograph {
        image: GreyImage {
            width: cols,
            height: rows,
            pixels,
        },
        photometric,
        bits_stored: layout.bits_stored,
        signed,
        modality_lut,
        value_range,
        pixel_spacing_mm: pixel_spacing(&obj),
        presets: window_presets(path, &obj),
        voi_luts: voi_luts(path, &obj),
        source: Source {
            path: path.to_path_buf(),
            format: SourceFormat::Dicom,
            transfer_syntax: Some(ts_uid),
            transfer_syntax_name: Some(ts_name),
            meta_inferred,
            frames,
            frame: options.frame,
        },
        identity: identity(&obj),
    })
}

fn pixel_spacing(obj: &InMemDicomObject) -> Option<(f64, f64)> {
    [tags::PIXEL_SPACING, tags::IMAGER_PIXEL_SPACING]
        .iter()
        .find_map(|&tag| {
            let v = floats(obj, tag)?;
            (v.len() == 2 && v.iter().all(|x| x.is_finite() && *x > 0.0)).then(|| (v[0], v[1]))
        })
}

/// The data set of a DICOM file (checked as `load` checks it) and the transfer syntax its values are
/// to be written in (a deflated data set is inflated: explicit VR little endian), for rewriting it
/// (de-identification).
pub(super) fn parse_object(
    path: &Path,
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<(InMemDicomObject, String), ImagingError> {
    let parsed = parse(path, bytes, options)?;
    let ts = parsed
        .obj
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    Ok((parsed.obj.into_inner(), ts))
}

/// One decoded frame: its samples as little-endian bytes and how they are laid out.
struct Frame<'a> {
    bits: u16,
    samples: u32,
    data: &'a [u8],
    pixel_first: bool,
    photometric: String,
}

/// The compressed stream of one frame of encapsulated pixel data: all fragments for a single-frame
/// file, else fragment `frame` when there is one per frame, else the basic offset table's span.
/// A JPEG 2000 frame must declare the image the data set describes (checked on the codestream's SIZ
/// before the decoder allocates anything for it).
fn check_j2k_size(
    path: &Path,
    obj: &InMemDicomObject,
    (frame, frames): (u32, u32),
    (cols, rows, samples): (u32, u32, u32),
) -> Result<(), ImagingError> {
    // A frame's codestream starts in its first fragment.
    let fragments = frame_fragments(path, obj, frame, frames)?;
    let head = fragments.first().ok_or_else(|| {
        ImagingError::malformed(
            path,
            format!("Pixel Data has no fragment for frame {}", frame + 1),
        )
    })?;
    let s = super::j2k::size(head).map_err(|e| ImagingError::decode(path, e))?;
    if (s.width, s.height, u32::from(s.components)) != (cols, rows, samples) {
        return Err(ImagingError::decode(
            path,
            format!(
                "the JPEG 2000 codestream is {}×{} with {} component(s), the data set says {cols}×{rows} with {samples}",
                s.width, s.height, s.components
            ),
        ));
    }
    Ok(())
}

fn encapsulated_frame(
    path: &Path,
    obj: &InMemDicomObject,
    frame: u32,
    frames: u32,
) -> Result<Vec<u8>, ImagingError> {
    Ok(frame_fragments(path, obj, frame, frames)?.concat())
}

/// The fragments that hold one frame of encapsulated Pixel Data, borrowed.
fn frame_fragments<'a>(
    path: &Path,
    obj: &'a InMemDicomObject,
    frame: u32,
    frames: u32,
) -> Result<Vec<&'a [u8]>, ImagingError> {
    let seq = obj
        .get(tags::PIXEL_DATA)
        .map(|e| e.value())
        .and_then(|v| v.fragments().map(|f| (f, v.offset_table().unwrap_or(&[]))))
        .ok_or_else(|| {
            ImagingError::malformed(path, "Pixel Data is not encapsulated".to_string())
        })?;
    let (fragments, offsets) = seq;
    if frames == 1 {
        return Ok(fragments.iter().map(Vec::as_slice).collect());
    }
    if fragments.len() == frames as usize {
        return Ok(vec![fragments[frame as usize].as_slice()]);
    }
    // The offset table counts bytes from the first fragment's item header (8 bytes per item).
    let start = offsets.get(frame as usize).copied();
    let end = offsets.get(frame as usize + 1).copied();
    let Some(start) = start else {
        return Err(ImagingError::malformed(
            path,
            format!(
                "cannot find frame {} among {} fragments",
                frame + 1,
                fragments.len()
            ),
        ));
    };
    let mut out = Vec::new();
    let mut at = 0u32;
    for f in fragments {
        if at >= start && end.is_none_or(|e| at < e) {
            out.push(f.as_slice());
        }
        at = at.saturating_add(8).saturating_add(f.len() as u32);
    }
    Ok(out)
}

/// Whether a parsed data set holds Pixel Data.
pub(super) fn has_pixel_data(obj: &InMemDicomObject) -> bool {
    obj.get(tags::PIXEL_DATA).is_some()
}

/// The identifying attributes of a parsed data set.
pub(super) fn identity(obj: &InMemDicomObject) -> Identity {
    Identity {
        patient_name: string(obj, tags::PATIENT_NAME),
        patient_id: string(obj, tags::PATIENT_ID),
        study_uid: string(obj, tags::STUDY_INSTANCE_UID),
        series_uid: string(obj, tags::SERIES_INSTANCE_UID),
        sop_instance_uid: string(obj, tags::SOP_INSTANCE_UID),
        study_date: string(obj, tags::STUDY_DATE),
        body_part: string(obj, tags::BODY_PART_EXAMINED),
        view_position: string(obj, tags::VIEW_POSITION),
        modality: string(obj, tags::MODALITY),
        series_description: string(obj, tags::SERIES_DESCRIPTION),
        burned_in_annotation: string(obj, tags::BURNED_IN_ANNOTATION),
        sop_class_uid: string(obj, tags::SOP_CLASS_UID),
    }
}

/// Reads a LUT (descriptor + data) from a sequence item (PS3.3 C.11.1.1).
fn lookup_table(
    path: &Path,
    item: &InMemDicomObject,
    what: &str,
) -> Result<LookupTable, ImagingError> {
    let desc_el = item.get(tags::LUT_DESCRIPTOR).ok_or_else(|| {
        ImagingError::attribute(path, what, "item without LUT Descriptor (0028,3002)")
    })?;
    let desc = desc_el.to_multi_int::<i64>().map_err(|e| {
        ImagingError::attribute(path, what, format!("LUT Descriptor unreadable: {e}"))
    })?;
    if desc.len() != 3 {
        return Err(ImagingError::attribute(
            path,
            what,
            format!("LUT Descriptor has {} values, 3 needed", desc.len()),
        ));
    }
    let entries = if desc[0] == 0 {
        65_536
    } else {
        desc[0].rem_euclid(65_536) as usize
    };
    // The first mapped value is US or SS; a value stored unsigned above 32767 is negative when SS was meant.
    let first_mapped = desc[1];
    let bits = desc[2].clamp(1, 16) as u16;
    let data_el = item
        .get(tags::LUT_DATA)
        .ok_or_else(|| ImagingError::attribute(path, what, "item without LUT Data (0028,3006)"))?;
    let bytes = data_el
        .to_bytes()
        .map_err(|e| ImagingError::attribute(path, what, format!("LUT Data unreadable: {e}")))?;
    let data: Vec<u16> = if bytes.len() >= entries * 2 {
        bytes
            .chunks_exact(2)
            .take(entries)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    } else if bytes.len() >= entries && bits <= 8 {
        bytes.iter().take(entries).map(|&b| u16::from(b)).collect()
    } else {
        return Err(ImagingError::attribute(
            path,
            what,
            format!(
                "LUT Data holds {} bytes for {entries} entries of {bits} bits",
                bytes.len()
            ),
        ));
    };
    Ok(LookupTable {
        first_mapped,
        bits,
        data,
        explanation: string(item, tags::LUT_EXPLANATION),
    })
}

fn modality_lut(path: &Path, obj: &InMemDicomObject) -> Result<ModalityLut, ImagingError> {
    if let Some(item) = obj
        .get(tags::MODALITY_LUT_SEQUENCE)
        .and_then(|el| el.items())
        .and_then(|i| i.first())
    {
        return Ok(ModalityLut::Table(lookup_table(
            path,
            item,
            "Modality LUT Sequence (0028,3000)",
        )?));
    }
    let slope = obj.get(tags::RESCALE_SLOPE).map(|el| el.to_float64());
    let intercept = obj.get(tags::RESCALE_INTERCEPT).map(|el| el.to_float64());
    match (slope, intercept) {
        (None, None) => Ok(ModalityLut::Identity),
        (s, i) => {
            let s = s.transpose().map_err(|e| {
                ImagingError::attribute(path, "Rescale Slope (0028,1053)", e.to_string())
            })?;
            let i = i.transpose().map_err(|e| {
                ImagingError::attribute(path, "Rescale Intercept (0028,1052)", e.to_string())
            })?;
            let (slope, intercept) = (s.unwrap_or(1.0), i.unwrap_or(0.0));
            if !slope.is_finite() || !intercept.is_finite() || slope == 0.0 {
                return Err(ImagingError::attribute(
                    path,
                    "Rescale Slope/Intercept",
                    format!("slope {slope}, intercept {intercept} cannot be used"),
                ));
            }
            Ok(ModalityLut::Rescale { slope, intercept })
        }
    }
}

fn window_presets(path: &Path, obj: &InMemDicomObject) -> Vec<WindowPreset> {
    let (Some(centers), Some(widths)) = (
        floats(obj, tags::WINDOW_CENTER),
        floats(obj, tags::WINDOW_WIDTH),
    ) else {
        if obj.get(tags::WINDOW_CENTER).is_some() {
            tracing::warn!(
                "{}: Window Center/Width present but unreadable; ignored",
                path.display()
            );
        }
        return Vec::new();
    };
    let function = string(obj, tags::VOILUT_FUNCTION)
        .and_then(|t| {
            let f = VoiFunction::from_dicom(&t);
            if f.is_none() {
                tracing::warn!(
                    "{}: unknown VOI LUT Function {t:?}; LINEAR used",
                    path.display()
                );
            }
            f
        })
        .unwrap_or_default();
    let explanations: Vec<String> = obj
        .get(tags::WINDOW_CENTER_WIDTH_EXPLANATION)
        .and_then(|el| el.to_multi_str().ok().map(|v| v.to_vec()))
        .unwrap_or_default();
    centers
        .iter()
        .zip(&widths)
        .enumerate()
        .filter_map(|(i, (&c, &w))| match Window::new(c, w, function) {
            Ok(window) => Some(WindowPreset {
                window,
                explanation: explanations
                    .get(i)
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            }),
            Err(e) => {
                tracing::warn!("{}: window preset {} ignored: {e}", path.display(), i + 1);
                None
            }
        })
        .collect()
}

fn voi_luts(path: &Path, obj: &InMemDicomObject) -> Vec<LookupTable> {
    obj.get(tags::VOILUT_SEQUENCE)
        .and_then(|el| el.items())
        .map(|items| {
            items
                .iter()
                .filter_map(
                    |item| match lookup_table(path, item, "VOI LUT Sequence (0028,3010)") {
                        Ok(t) => Some(t),
                        Err(e) => {
                            tracing::warn!("{e}; VOI LUT ignored");
                            None
                        }
                    },
                )
                .collect()
        })
        .unwrap_or_default()
}

/// Each little-endian sample of `data` (1 or 2 bytes) replaced by its entry in `table` (of
/// `1 << (8 * bytes)` entries), on all cores.
fn looked_up(data: &[u8], bytes: usize, table: &[f32]) -> Vec<f32> {
    const CHUNK: usize = 1 << 15;
    let mut out = vec![0f32; data.len() / bytes];
    out.par_chunks_mut(CHUNK)
        .zip(data.par_chunks(CHUNK * bytes))
        .for_each(|(out, data)| {
            if bytes == 1 {
                for (o, &b) in out.iter_mut().zip(data) {
                    *o = table[usize::from(b)];
                }
            } else {
                for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
                    *o = table[usize::from(u16::from_le_bytes([b[0], b[1]]))];
                }
            }
        });
    out
}
