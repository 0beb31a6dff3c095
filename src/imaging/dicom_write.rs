//! Writing a greyscale radiograph as a DICOM Part 10 file (CR or DX image storage), used by the phantom
//! generator. Explicit VR little endian, or deflated explicit VR little endian for compact demo files.

use std::path::Path;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

use super::{ImagingError, Photometric, WindowPreset};

/// CR Image Storage.
pub const CR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
/// Digital X-Ray Image Storage – For Presentation.
pub const DX_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1.1";

/// Everything written into the file.
#[derive(Debug, Clone)]
pub struct DicomImageSpec<'a> {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Stored values, row-major, each < 2^bits_stored.
    pub pixels: &'a [u16],
    /// Bits Stored (≤ 16; Bits Allocated is 16).
    pub bits_stored: u16,
    /// MONOCHROME1 or MONOCHROME2.
    pub photometric: Photometric,
    /// "CR" or "DX".
    pub modality: &'a str,
    /// SOP Class UID.
    pub sop_class_uid: &'a str,
    /// Study Instance UID.
    pub study_uid: &'a str,
    /// Series Instance UID.
    pub series_uid: &'a str,
    /// SOP Instance UID.
    pub sop_instance_uid: &'a str,
    /// Patient's Name.
    pub patient_name: &'a str,
    /// Patient ID.
    pub patient_id: &'a str,
    /// Series Description.
    pub series_description: &'a str,
    /// Body Part Examined.
    pub body_part: &'a str,
    /// View Position.
    pub view_position: &'a str,
    /// Study Date (YYYYMMDD).
    pub study_date: &'a str,
    /// Imager Pixel Spacing and Pixel Spacing, mm (row, column).
    pub pixel_spacing_mm: (f64, f64),
    /// Window presets.
    pub windows: &'a [WindowPreset],
    /// Burned In Annotation YES (text drawn into the pixels).
    pub burned_in_annotation: bool,
    /// Deflated explicit VR little endian instead of explicit VR little endian.
    pub deflate: bool,
}

fn text(tag: Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

fn ds_list(values: impl Iterator<Item = f64>) -> String {
    values
        .map(|v| {
            // DS: at most 16 characters.
            let s = format!("{v:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        })
        .collect::<Vec<_>>()
        .join("\\")
}

/// Writes the image; the file appears under its name only when complete.
pub fn write_dicom(path: &Path, spec: &DicomImageSpec<'_>) -> Result<(), ImagingError> {
    let n = spec.width as usize * spec.height as usize;
    let wrong = |detail: String| ImagingError::Write {
        path: path.to_path_buf(),
        detail,
    };
    if spec.pixels.len() != n || spec.bits_stored == 0 || spec.bits_stored > 16 {
        return Err(wrong(format!(
            "{} pixels for {}×{}, {} bits stored",
            spec.pixels.len(),
            spec.width,
            spec.height,
            spec.bits_stored
        )));
    }
    let photometric = match spec.photometric {
        Photometric::Monochrome1 => "MONOCHROME1",
        Photometric::Monochrome2 => "MONOCHROME2",
        Photometric::ColourAsLuminance(_) => {
            return Err(wrong("only greyscale images are written".into()));
        }
    };
    let mut obj = InMemDicomObject::new_empty();
    obj.put(text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
    obj.put(text(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY"));
    obj.put(text(tags::SOP_CLASS_UID, VR::UI, spec.sop_class_uid));
    obj.put(text(tags::SOP_INSTANCE_UID, VR::UI, spec.sop_instance_uid));
    obj.put(text(tags::STUDY_DATE, VR::DA, spec.study_date));
    obj.put(text(tags::MODALITY, VR::CS, spec.modality));
    obj.put(text(tags::MANUFACTURER, VR::LO, "Sacro phantom generator"));
    obj.put(text(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        spec.series_description,
    ));
    obj.put(text(tags::PATIENT_NAME, VR::PN, spec.patient_name));
    obj.put(text(tags::PATIENT_ID, VR::LO, spec.patient_id));
    obj.put(text(tags::BODY_PART_EXAMINED, VR::CS, spec.body_part));
    obj.put(text(tags::VIEW_POSITION, VR::CS, spec.view_position));
    obj.put(text(tags::STUDY_INSTANCE_UID, VR::UI, spec.study_uid));
    obj.put(text(tags::SERIES_INSTANCE_UID, VR::UI, spec.series_uid));
    obj.put(text(tags::SERIES_NUMBER, VR::IS, "1"));
    obj.put(text(tags::INSTANCE_NUMBER, VR::IS, "1"));
    obj.put(text(
        tags::BURNED_IN_ANNOTATION,
        VR::CS,
        if spec.burned_in_annotation {
            "YES"
        } else {
            "NO"
        },
    ));
    obj.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    obj.put(text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric));
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(spec.height as u16),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(spec.width as u16),
    ));
    let spacing = ds_list([spec.pixel_spacing_mm.0, spec.pixel_spacing_mm.1].into_iter());
    obj.put(text(tags::IMAGER_PIXEL_SPACING, VR::DS, &spacing));
    obj.put(text(tags::PIXEL_SPACING, VR::DS, &spacing));
    obj.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    obj.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(spec.bits_stored),
    ));
    obj.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(spec.bits_stored - 1),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    if !spec.windows.is_empty() {
        obj.put(text(
            tags::WINDOW_CENTER,
            VR::DS,
            &ds_list(spec.windows.iter().map(|w| w.window.center)),
        ));
        obj.put(text(
            tags::WINDOW_WIDTH,
            VR::DS,
            &ds_list(spec.windows.iter().map(|w| w.window.width)),
        ));
        let names: Vec<String> = spec
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                w.explanation
                    .clone()
                    .unwrap_or_else(|| format!("WINDOW{}", i + 1))
            })
            .collect();
        obj.put(text(
            tags::WINDOW_CENTER_WIDTH_EXPLANATION,
            VR::LO,
            &names.join("\\"),
        ));
    }
    if spec.width > u32::from(u16::MAX) || spec.height > u32::from(u16::MAX) {
        return Err(wrong("image larger than 65535 pixels on a side".into()));
    }
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        Value::Primitive(PrimitiveValue::U16(spec.pixels.iter().copied().collect())),
    ));
    let ts = if spec.deflate {
        "1.2.840.10008.1.2.1.99"
    } else {
        "1.2.840.10008.1.2.1"
    };
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(ts)
                .media_storage_sop_class_uid(spec.sop_class_uid)
                .media_storage_sop_instance_uid(spec.sop_instance_uid)
                .implementation_class_uid("2.25.293756195613371049151206521431474541567")
                .implementation_version_name("SACRO_0_1"),
        )
        .map_err(|e| wrong(e.to_string()))?;
    super::export::write_via_temp(path, |tmp| {
        file.write_to_file(tmp).map_err(|e| e.to_string())
    })
}
