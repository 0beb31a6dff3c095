//! Errors of the imaging layer: every message names the file and says what is wrong with it.

use std::path::PathBuf;

/// Why a radiograph could not be read, converted or written.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// The file could not be opened or read from disk.
    #[error("{path}: cannot read the file: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is larger than the configured limit, so it is not read into memory.
    #[error("{path}: file is {size} bytes, over the limit of {limit} bytes")]
    FileTooLarge {
        /// File concerned.
        path: PathBuf,
        /// Size on disk.
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The file is not a format Sacro reads (DICOM, TIFF, PNG, JPEG).
    #[error("{path}: not a DICOM, TIFF, PNG or JPEG file ({detail})")]
    UnknownFormat {
        /// File concerned.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The DICOM structure is broken (bad lengths, truncated elements, invalid meta group).
    #[error("{path}: malformed DICOM: {detail}")]
    MalformedDicom {
        /// File concerned.
        path: PathBuf,
        /// What is wrong and where.
        detail: String,
    },
    /// A required attribute is missing or has a value Sacro cannot use.
    #[error("{path}: {attribute}: {detail}")]
    BadAttribute {
        /// File concerned.
        path: PathBuf,
        /// DICOM keyword and tag, e.g. "Rows (0028,0010)".
        attribute: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The file holds no image (no Pixel Data), e.g. a structured report or RT plan.
    #[error(
        "{path}: no Pixel Data (7FE0,0010): this DICOM object holds no image (SOP class {sop_class})"
    )]
    NoPixelData {
        /// File concerned.
        path: PathBuf,
        /// SOP Class UID, or "unknown".
        sop_class: String,
    },
    /// The pixel data are encoded in a transfer syntax that no available decoder handles.
    #[error("{path}: transfer syntax {uid} ({name}) cannot be decoded: {detail}")]
    UnsupportedTransferSyntax {
        /// File concerned.
        path: PathBuf,
        /// Transfer Syntax UID.
        uid: String,
        /// Its name.
        name: String,
        /// Why.
        detail: String,
    },
    /// The pixel data could not be decoded.
    #[error("{path}: cannot decode pixel data: {detail}")]
    Decode {
        /// File concerned.
        path: PathBuf,
        /// Decoder message.
        detail: String,
    },
    /// The image is larger than the configured pixel limit.
    #[error(
        "{path}: image of {width}×{height}×{frames} frame(s) is over the limit of {limit} pixels"
    )]
    TooManyPixels {
        /// File concerned.
        path: PathBuf,
        /// Columns.
        width: u64,
        /// Rows.
        height: u64,
        /// Number of frames.
        frames: u64,
        /// Configured limit.
        limit: u64,
    },
    /// A window, crop or other parameter is invalid.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// Writing an output image failed.
    #[error("{path}: cannot write: {detail}")]
    Write {
        /// File concerned.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl ImagingError {
    pub(crate) fn malformed(path: &std::path::Path, detail: impl Into<String>) -> Self {
        Self::MalformedDicom {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    pub(crate) fn attribute(
        path: &std::path::Path,
        attribute: &str,
        detail: impl Into<String>,
    ) -> Self {
        Self::BadAttribute {
            path: path.to_path_buf(),
            attribute: attribute.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn decode(path: &std::path::Path, detail: impl Into<String>) -> Self {
        Self::Decode {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}
