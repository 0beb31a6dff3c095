//! Pixel values against pydicom on every real file in ../shared/testdata/dicom/real.
//!
//! The reference `tests/reference/dicom_pixels.json` was made by `tests/reference/make_dicom_reference.py`
//! (pydicom 3 + pylibjpeg, apply_modality_lut / apply_voi_lut). Lossless syntaxes must match exactly
//! (SHA-256 of the float32 values); the lossy JPEG 2000 file within a stated tolerance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sacro::imaging::{self, LoadOptions, Voi};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Summary {
    sha256: String,
    min: f64,
    max: f64,
    mean: f64,
    rows: BTreeMap<String, Vec<f64>>,
}

#[derive(Deserialize)]
struct Entry {
    transfer_syntax: String,
    rows: u32,
    columns: u32,
    frames: u32,
    photometric: String,
    pydicom_error: Option<String>,
    modality: Option<Summary>,
    voi_normalised: Option<Summary>,
    window: Option<[f64; 2]>,
}

/// dcmtk's values of the 12-bit JPEG Extended files (`tests/reference/make_jpeg12_reference.py`).
#[derive(Deserialize)]
struct Jpeg12 {
    rows: u32,
    columns: u32,
    sha256: String,
    min: f64,
    max: f64,
}

fn jpeg12_reference() -> BTreeMap<String, Jpeg12> {
    let text = include_str!("reference/jpeg12_dcmtk.json");
    serde_json::from_str(text).expect("jpeg12 reference")
}

#[test]
fn twelve_bit_jpeg_equals_dcmtk() {
    let reference = jpeg12_reference();
    assert_eq!(reference.len(), 3);
    for (name, want) in &reference {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
        let r =
            imaging::load(&path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((r.width(), r.height()), (want.columns, want.rows), "{name}");
        let (lo, hi) = r
            .image
            .pixels
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!(
            sha256_f32(&r.image.pixels),
            want.sha256,
            "{name}: values differ from dcmtk's (min {lo} max {hi}, dcmtk {} {})",
            want.min,
            want.max
        );
    }
}

/// pydicom + pylibjpeg-openjpeg's values of the HTJ2K copies (`tests/fixtures/htj2k/make.py`).
#[derive(Deserialize)]
struct Htj2k {
    transfer_syntax: String,
    rows: u32,
    columns: u32,
    sha256: String,
    min: f64,
    max: f64,
    mean: f64,
}

/// Sacro decodes JPEG 2000 and HTJ2K with OpenJPEG's thread pool on every core; pydicom's
/// pylibjpeg-openjpeg decodes with one thread (its time does not change with cores or with
/// OPJ_NUM_THREADS). Equal values here, and in `every_real_file_matches_pydicom` for the J2K films, are
/// the check that the parallel decoder gives the single-threaded one's values, bit for bit.
#[test]
fn htj2k_equals_pydicom_openjpeg() {
    let reference: BTreeMap<String, Htj2k> =
        serde_json::from_str(include_str!("reference/htj2k_pydicom.json"))
            .expect("htj2k reference");
    assert_eq!(reference.len(), 2);
    for (name, want) in &reference {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/htj2k")
            .join(name);
        let r =
            imaging::load(&path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((r.width(), r.height()), (want.columns, want.rows), "{name}");
        assert_eq!(
            r.source.transfer_syntax.as_deref(),
            Some(want.transfer_syntax.as_str())
        );
        let (lo, hi, sum) = r
            .image
            .pixels
            .iter()
            .fold((f32::MAX, f32::MIN, 0f64), |(a, b, s), &v| {
                (a.min(v), b.max(v), s + f64::from(v))
            });
        let mean = sum / r.image.pixels.len() as f64;
        // Both decoders are exact for the reversible (lossless) wavelet and, as measured here, for the
        // irreversible one too; the SHA-256 of the values is compared, the figures help if it fails.
        assert_eq!(
            sha256_f32(&r.image.pixels),
            want.sha256,
            "{name}: min {lo} max {hi} mean {mean} (pydicom {} {} {})",
            want.min,
            want.max,
            want.mean
        );
    }
    // The lossless copy holds the region of the uncompressed film exactly.
    let full =
        imaging::load(&testdata().join("RG3_UNCR.dcm"), &LoadOptions::default()).expect("RG3");
    let crop = imaging::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/htj2k/RG3_crop_HTJ2KR.dcm"),
        &LoadOptions::default(),
    )
    .expect("crop");
    let w = full.width() as usize;
    for y in 0..768 {
        let row = &full.image.pixels[(496 + y) * w + 496..(496 + y) * w + 496 + 768];
        assert_eq!(row, &crop.image.pixels[y * 768..(y + 1) * 768], "row {y}");
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/dicom/real")
}

fn reference() -> BTreeMap<String, Entry> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/dicom_pixels.json"),
    )
    .expect("reference file");
    serde_json::from_str(&text).expect("reference JSON")
}

fn sha256_f32(values: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Lossy transfer syntaxes: JPEG baseline/extended and JPEG 2000 (lossy). Decoders may differ slightly.
fn is_lossy(ts: &str) -> bool {
    matches!(
        ts,
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.91"
    )
}

fn compare_rows(
    name: &str,
    what: &str,
    width: usize,
    ours: &[f32],
    theirs: &Summary,
    tol: f64,
) -> f64 {
    let mut worst = 0.0f64;
    for (row, values) in &theirs.rows {
        let r: usize = row.parse().expect("row index");
        let got = &ours[r * width..(r + 1) * width];
        assert_eq!(got.len(), values.len(), "{name}: {what} row {r} length");
        for (x, (a, b)) in got.iter().zip(values).enumerate() {
            let d = (f64::from(*a) - b).abs();
            worst = worst.max(d);
            assert!(
                d <= tol,
                "{name}: {what} row {r} col {x}: sacro {a}, pydicom {b} (tolerance {tol})"
            );
        }
    }
    let n = ours.len() as f64;
    let mean = ours.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    assert!(
        (mean - theirs.mean).abs() <= tol.max(1e-6) * 1.0 + 1e-9 * theirs.mean.abs(),
        "{name}: {what} mean {mean} vs {}",
        theirs.mean
    );
    let (min, max) = ours
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    assert!(
        (f64::from(min) - theirs.min).abs() <= tol && (f64::from(max) - theirs.max).abs() <= tol,
        "{name}: {what} range"
    );
    worst
}

#[test]
fn every_real_file_matches_pydicom() {
    let reference = reference();
    assert!(reference.len() >= 18, "reference covers the test data");
    for (name, entry) in &reference {
        let path = testdata().join(name);
        let result = imaging::load(&path, &LoadOptions::default());
        if let Some(pyerr) = &entry.pydicom_error {
            // pydicom + pylibjpeg cannot decode it (12-bit JPEG Extended): dcmtk is the reference there
            // (`twelve_bit_jpeg_equals_dcmtk`); any other such file Sacro must refuse, saying why.
            if jpeg12_reference()
                .keys()
                .any(|k| k.ends_with(&format!("/{name}")))
            {
                continue;
            }
            let err = result.expect_err(name).to_string();
            assert!(
                err.contains(&entry.transfer_syntax) && err.contains(name),
                "{name}: {err} (pydicom: {pyerr})"
            );
            continue;
        }
        let r = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (r.width(), r.height()),
            (entry.columns, entry.rows),
            "{name}: size"
        );
        assert_eq!(r.source.frames, entry.frames, "{name}: frames");
        assert_eq!(
            r.source.transfer_syntax.as_deref(),
            Some(entry.transfer_syntax.as_str()),
            "{name}"
        );
        if entry.photometric.starts_with("MONOCHROME") {
            assert_eq!(
                r.photometric.as_str(),
                entry.photometric,
                "{name}: photometric"
            );
        }
        let modality = entry.modality.as_ref().expect("modality summary");
        let w = r.width() as usize;
        if is_lossy(&entry.transfer_syntax) {
            // Lossy JPEG 2000: OpenJPEG (pydicom) and openjp2 (Rust port of OpenJPEG) should agree to within
            // one stored unit; we allow 1.0 and report the worst difference.
            let worst = compare_rows(name, "modality", w, &r.image.pixels, modality, 1.0);
            eprintln!("{name}: lossy, worst difference {worst}");
        } else {
            let ours = sha256_f32(&r.image.pixels);
            if ours != modality.sha256 {
                compare_rows(name, "modality", w, &r.image.pixels, modality, 0.0);
                panic!("{name}: modality values differ from pydicom's (checksum)");
            }
            compare_rows(name, "modality", w, &r.image.pixels, modality, 0.0);
        }
        if let Some(voi) = &entry.voi_normalised {
            let window = entry.window.expect("window");
            let Voi::Window(ours) = r.default_voi() else {
                panic!("{name}: expected the file's window");
            };
            assert_eq!(
                [ours.center, ours.width],
                window,
                "{name}: first window preset"
            );
            let transform = sacro::imaging::DisplayTransform {
                voi: Voi::Window(ours),
                invert: false,
            };
            let unit = transform.to_unit(&r.image.pixels);
            let tol = if is_lossy(&entry.transfer_syntax) {
                1.0 / ours.width
            } else {
                1e-6
            };
            compare_rows(name, "VOI", w, &unit, voi, tol);
        }
    }
}

#[test]
fn multiframe_frames_are_selectable() {
    let path = testdata().join("emri_small_RLE.dcm");
    let first = imaging::load(&path, &LoadOptions::default()).expect("frame 1");
    let last = imaging::load(
        &path,
        &LoadOptions {
            frame: 9,
            ..LoadOptions::default()
        },
    )
    .expect("frame 10");
    assert_eq!(last.source.frame, 9);
    assert_ne!(first.image.pixels, last.image.pixels);
    let err = imaging::load(
        &path,
        &LoadOptions {
            frame: 10,
            ..LoadOptions::default()
        },
    )
    .expect_err("frame 11 does not exist");
    assert!(err.to_string().contains("has 10"), "{err}");
}

#[test]
fn lossless_encodings_of_one_image_agree() {
    // MR_small in six encodings: every decoder must give identical modality values.
    let names = [
        "MR_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ];
    let base =
        imaging::load(&testdata().join(names[0]), &LoadOptions::default()).expect("MR_small");
    for n in &names[1..] {
        let r = imaging::load(&testdata().join(n), &LoadOptions::default()).expect(n);
        assert_eq!(r.image, base.image, "{n}");
    }
    let a =
        imaging::load(&testdata().join("RG3_UNCR.dcm"), &LoadOptions::default()).expect("RG3_UNCR");
    let b =
        imaging::load(&testdata().join("RG3_J2KR.dcm"), &LoadOptions::default()).expect("RG3_J2KR");
    assert_eq!(a.image, b.image, "RG3 uncompressed vs JPEG 2000 lossless");
}
