//! Malformed and unsupported input: every case gets an error naming the file, never a panic.

use std::path::{Path, PathBuf};

use sacro::imaging::{self, ImagingError, LoadOptions};

fn shared(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata")
        .join(sub)
}

#[test]
fn every_malformed_file_is_refused_or_read_without_panic() {
    let dir = shared("dicom/malformed");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("malformed dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        seen += 1;
        match imaging::load(&path, &LoadOptions::default()) {
            // pydicom reads bad_sequence.dcm's image too (its defect is in a private sequence).
            Ok(r) => assert_eq!(
                name,
                "bad_sequence.dcm",
                "{name} unexpectedly decoded: {:?}",
                r.summary(false)
            ),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&name),
                    "{name}: message does not name the file: {msg}"
                );
                assert!(
                    msg.len() > name.len() + 20,
                    "{name}: message does not say what is wrong: {msg}"
                );
            }
        }
    }
    assert_eq!(seen, 8);
}

#[test]
fn malformed_files_say_what_is_wrong() {
    let dir = shared("dicom/malformed");
    let err = |n: &str| {
        imaging::load(&dir.join(n), &LoadOptions::default())
            .expect_err(n)
            .to_string()
    };
    assert!(err("MR_truncated.dcm").contains("declares 8192 bytes but only 8130 remain"));
    assert!(err("rtplan_truncated.dcm").contains("malformed DICOM"));
    assert!(err("empty_charset_LEI.dcm").contains("no Pixel Data"));
    assert!(err("badVR.dcm").contains("Number of Frames"));
    assert!(err("no_meta.dcm").contains("not a DICOM"));
}

/// MR_small.dcm with its preamble and file meta group removed, as on old CD exports.
fn bare_dataset(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(shared("dicom/real").join(name)).expect("read");
    assert_eq!(&bytes[128..132], b"DICM");
    // Group length (0002,0000) UL is the first meta element: 12 bytes header+value at 132.
    let group_len = u32::from_le_bytes([bytes[140], bytes[141], bytes[142], bytes[143]]) as usize;
    bytes[144 + group_len..].to_vec()
}

#[test]
fn a_dataset_without_meta_header_opens() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (name, ts) in [
        ("MR_small.dcm", "1.2.840.10008.1.2.1"),
        ("MR_small_implicit.dcm", "1.2.840.10008.1.2"),
    ] {
        let bare = tmp.path().join(format!("bare_{name}"));
        std::fs::write(&bare, bare_dataset(name)).expect("write");
        let r = imaging::load(&bare, &LoadOptions::default()).expect("bare dataset opens");
        let full = imaging::load(&shared("dicom/real").join(name), &LoadOptions::default())
            .expect("original");
        assert!(r.source.meta_inferred);
        assert_eq!(r.source.transfer_syntax.as_deref(), Some(ts));
        assert_eq!(r.image, full.image);
    }
}

#[test]
fn pixel_limit_is_enforced_before_decoding() {
    let opts = LoadOptions {
        max_pixels: 1_000_000,
        ..LoadOptions::default()
    };
    let err = imaging::load(&shared("dicom/real/RG3_UNCR.dcm"), &opts).expect_err("over limit");
    assert!(matches!(err, ImagingError::TooManyPixels { .. }), "{err}");
    assert!(err.to_string().contains("1760×1760"));
}

#[test]
fn a_huge_declared_length_is_refused_without_allocating() {
    let mut bytes = std::fs::read(shared("dicom/real/MR_small.dcm")).expect("read");
    // Find Pixel Data (7FE0,0010) OW and declare 4 GB - 16 for it.
    let pos = bytes
        .windows(6)
        .position(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'])
        .expect("pixel data tag");
    bytes[pos + 8..pos + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("huge.dcm");
    std::fs::write(&path, &bytes).expect("write");
    let err = imaging::load(&path, &LoadOptions::default()).expect_err("refused");
    assert!(
        err.to_string().contains("(7FE0,0010)") && err.to_string().contains("huge.dcm"),
        "{err}"
    );
}

#[test]
fn non_images_and_missing_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "not an image at all").expect("write");
    let err = imaging::load(&text, &LoadOptions::default()).expect_err("text");
    assert!(err.to_string().contains("notes.txt"));
    let empty = tmp.path().join("empty.dcm");
    std::fs::write(&empty, b"").expect("write");
    assert!(imaging::load(&empty, &LoadOptions::default()).is_err());
    let missing = tmp.path().join("missing.dcm");
    let err = imaging::load(&missing, &LoadOptions::default()).expect_err("missing");
    assert!(err.to_string().contains("missing.dcm"));
    let trunc_png = tmp.path().join("trunc.png");
    std::fs::write(&trunc_png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").expect("write");
    let err = imaging::load(&trunc_png, &LoadOptions::default()).expect_err("png");
    assert!(err.to_string().contains("trunc.png"), "{err}");
}

/// A JPEG 2000 codestream that declares another image than the data set (here 60000 × 60000 samples
/// inside a 64 × 64 MR film) is refused from its SIZ marker, before the decoder allocates for it.
#[test]
fn a_jpeg2000_stream_larger_than_its_data_set_is_refused_before_decoding() {
    let mut bytes = std::fs::read(shared("dicom/real/MR_small_jp2klossless.dcm")).expect("read");
    let siz = bytes
        .windows(4)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
        .expect("SOC and SIZ");
    for at in [siz + 8, siz + 12] {
        bytes[at..at + 4].copy_from_slice(&60_000u32.to_be_bytes());
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("big_codestream.dcm");
    std::fs::write(&path, &bytes).expect("write");
    let err = imaging::load(&path, &LoadOptions::default()).expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("big_codestream.dcm")
            && text.contains("codestream is 60000×60000")
            && text.contains("the data set says 64×64"),
        "{text}"
    );
}
