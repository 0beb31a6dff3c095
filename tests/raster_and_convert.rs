//! TIFF/PNG/JPEG loading, and `sacro convert` / `sacro info` end to end through the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use sacro::imaging::export::{self, GreyLevels, OutputFormat};
use sacro::imaging::{self, GreyImage, LoadOptions, Photometric, SourceFormat};

fn real(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/dicom/real")
        .join(name)
}

fn sacro(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args(args)
        .output()
        .expect("run sacro")
}

#[test]
fn raw_float_tiff_round_trips_modality_values() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = imaging::load(&real("CT_small.dcm"), &LoadOptions::default()).expect("CT");
    let out = tmp.path().join("ct.tiff");
    export::write_raw_f32_tiff(&out, &r.image).expect("write");
    let back = imaging::load(&out, &LoadOptions::default()).expect("read back");
    assert_eq!(back.source.format, SourceFormat::Tiff);
    assert_eq!(back.bits_stored, 32);
    assert_eq!(back.image, r.image, "float TIFF keeps negative HU exactly");
}

#[test]
fn eight_and_sixteen_bit_tiff_and_png_read_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = GreyImage {
        width: 7,
        height: 3,
        pixels: (0..21).map(|i| (i * 12) as f32).collect(),
    };
    let eight: Vec<u8> = img.pixels.iter().map(|&v| v as u8).collect();
    let sixteen: Vec<u16> = img.pixels.iter().map(|&v| v as u16 * 257).collect();
    for format in [OutputFormat::Tiff, OutputFormat::Png] {
        let p8 = tmp.path().join(format!("a8.{}", format.extension()));
        export::write_grey(&p8, 7, 3, &GreyLevels::Eight(eight.clone()), format).expect("write 8");
        let r8 = imaging::load(&p8, &LoadOptions::default()).expect("read 8");
        assert_eq!(r8.bits_stored, 8);
        assert_eq!(r8.image.pixels, img.pixels);
        assert_eq!(r8.photometric, Photometric::Monochrome2);
        let p16 = tmp.path().join(format!("a16.{}", format.extension()));
        export::write_grey(&p16, 7, 3, &GreyLevels::Sixteen(sixteen.clone()), format)
            .expect("write 16");
        let r16 = imaging::load(&p16, &LoadOptions::default()).expect("read 16");
        assert_eq!(r16.bits_stored, 16);
        let want: Vec<f32> = sixteen.iter().map(|&v| f32::from(v)).collect();
        assert_eq!(r16.image.pixels, want, "{format:?}");
    }
}

#[test]
fn rgb_png_and_jpeg_become_luminance() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rgb = image::RgbImage::from_fn(4, 2, |x, y| {
        image::Rgb([(x * 60) as u8, (y * 100) as u8, 30])
    });
    let png = tmp.path().join("c.png");
    rgb.save(&png).expect("png");
    let r = imaging::load(&png, &LoadOptions::default()).expect("png");
    let px = rgb.get_pixel(3, 1);
    let want =
        (f64::from(px[0]) * 0.299 + f64::from(px[1]) * 0.587 + f64::from(px[2]) * 0.114) as f32;
    assert_eq!(r.image.get(3, 1), want);
    let grey = image::GrayImage::from_fn(16, 16, |x, _| image::Luma([(x * 16) as u8]));
    let jpg = tmp.path().join("g.jpg");
    grey.save(&jpg).expect("jpeg");
    let j = imaging::load(&jpg, &LoadOptions::default()).expect("jpeg");
    assert_eq!(j.source.format, SourceFormat::Jpeg);
    // Lossy: within a few grey levels of the original ramp.
    assert!(
        j.image
            .pixels
            .iter()
            .zip(grey.as_raw())
            .all(|(a, &b)| (a - f32::from(b)).abs() <= 8.0)
    );
}

#[test]
fn white_is_zero_tiff_is_monochrome1() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("wiz.tiff");
    {
        use tiff::encoder::{TiffEncoder, colortype};
        let f = std::fs::File::create(&path).expect("create");
        let mut enc = TiffEncoder::new(std::io::BufWriter::new(f)).expect("enc");
        let mut image = enc.new_image::<colortype::Gray16>(2, 2).expect("image");
        image
            .encoder()
            .write_tag(tiff::tags::Tag::PhotometricInterpretation, 0u16)
            .expect("tag");
        image.write_data(&[0u16, 1, 2, 3]).expect("data");
    }
    let r = imaging::load(&path, &LoadOptions::default()).expect("load");
    assert_eq!(r.photometric, Photometric::Monochrome1);
    assert!(r.inverted_by_default());
}

#[test]
fn convert_windows_real_radiographs_and_reports_failures() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(input.join("sub")).expect("mkdir");
    std::fs::copy(real("RG3_UNCR.dcm"), input.join("RG3_UNCR.dcm")).expect("copy");
    std::fs::copy(
        real("CR_spine_6154.dcm"),
        input.join("sub/CR_spine_6154.dcm"),
    )
    .expect("copy");
    std::fs::write(input.join("sub/broken.dcm"), b"DICM but not really").expect("write");
    let out = tmp.path().join("out");
    let o = sacro(&[
        "convert",
        input.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success(),
        "a failed file makes the exit code non-zero"
    );
    assert!(stdout.contains("converted 2, failed 1"), "{stdout}");
    assert!(stdout.contains("broken.dcm"), "{stdout}");

    // The output equals the library's window of the file's first preset, inverted (MONOCHROME1).
    let written =
        imaging::load(&out.join("RG3_UNCR.tiff"), &LoadOptions::default()).expect("output");
    let r = imaging::load(&real("RG3_UNCR.dcm"), &LoadOptions::default()).expect("input");
    let expect = r.display(r.default_voi()).to_u8(&r.image.pixels);
    let got: Vec<u8> = written.image.pixels.iter().map(|&v| v as u8).collect();
    assert_eq!(got, expect);
    // MONOCHROME1: the lowest stored value must be shown white.
    let (imin, _) = r
        .image
        .pixels
        .iter()
        .enumerate()
        .fold(
            (0, f32::MAX),
            |(bi, bv), (i, &v)| if v < bv { (i, v) } else { (bi, bv) },
        );
    assert_eq!(got[imin], 255);
    assert!(
        out.join("sub/CR_spine_6154.tiff").exists(),
        "folder structure kept"
    );
}

#[test]
fn convert_options_window_auto_preset_raw_png16() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = real("RG3_UNCR.dcm");
    let f = file.to_str().expect("utf8");
    for (args, name) in [
        (vec!["--window", "500/800"], "RG3_UNCR.tiff"),
        (vec!["--auto"], "RG3_UNCR.tiff"),
        (vec!["--preset", "file1"], "RG3_UNCR.tiff"),
        (vec!["--format", "png", "--bits", "16"], "RG3_UNCR.png"),
        (vec!["--raw"], "RG3_UNCR.tiff"),
    ] {
        let out = tmp.path().join(args.join("_").replace('/', "-"));
        let mut all = vec!["convert", f, "--out", out.to_str().expect("utf8")];
        all.extend(&args);
        let o = sacro(&all);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let back = imaging::load(&out.join(name), &LoadOptions::default()).expect("output");
        if args == ["--raw"] {
            let r = imaging::load(&file, &LoadOptions::default()).expect("input");
            assert_eq!(back.image, r.image);
        }
    }
    let bad = sacro(&[
        "convert",
        f,
        "--out",
        tmp.path().to_str().expect("utf8"),
        "--window",
        "500",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("CENTER/WIDTH"));
    let bad = sacro(&[
        "convert",
        f,
        "--out",
        tmp.path().to_str().expect("utf8"),
        "--preset",
        "nonesuch",
    ]);
    assert!(String::from_utf8_lossy(&bad.stdout).contains("no window preset named"));
}

#[test]
fn info_hides_patient_identity_unless_asked() {
    let f = real("CT_small.dcm");
    let r = imaging::load(&f, &LoadOptions::default()).expect("CT");
    let name = r
        .identity
        .patient_name
        .clone()
        .expect("CT_small has a patient name");
    let plain = sacro(&["info", "--json", f.to_str().expect("utf8")]);
    assert!(plain.status.success());
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(!text.contains(&name), "patient name leaked: {text}");
    let json: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(json["width"], 128);
    let phi = sacro(&["info", "--show-phi", f.to_str().expect("utf8")]);
    assert!(String::from_utf8_lossy(&phi.stdout).contains(&name));
}

/// Folder commands decode several films at once: with one thread or two, `info` prints the same lines
/// in the same order and `convert` writes byte-identical files; a bad file in the middle fails alone
/// and the films after it are still converted.
#[test]
fn folders_decode_in_parallel_in_order_and_identically() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("dir");
    let films = [
        "RG3_J2KR.dcm",
        "MR_small_jp2klossless.dcm",
        "CR_spine_6154.dcm",
        "RG1_J2KI.dcm",
        "MR_small_RLE.dcm",
    ];
    for (i, f) in films.iter().enumerate() {
        std::fs::copy(real(f), input.join(format!("{i}_{f}"))).expect("copy");
    }
    std::fs::write(input.join("2a_broken.dcm"), b"DICM but not really").expect("bad");
    let run = |threads: &str, args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_sacro"))
            .env("RAYON_NUM_THREADS", threads)
            .args(args)
            .output()
            .expect("run");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let dir = input.to_str().expect("utf-8");
    let (ok1, info1) = run("1", &["info", "--json", dir]);
    let (ok2, info2) = run("2", &["info", "--json", dir]);
    assert!(!ok1 && !ok2, "the broken file fails the command");
    assert_eq!(info1, info2);
    let lines: Vec<&str> = info1.lines().collect();
    assert_eq!(lines.len(), 6);
    assert!(
        lines[3].contains("2a_broken") && lines[3].contains("error"),
        "{info1}"
    );
    assert!(lines[1].contains("1_MR_small_jp2klossless") && lines[2].contains("2_CR_spine"));
    assert!(lines[4].contains("3_RG1_J2KI") && lines[5].contains("4_MR_small_RLE"));
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        let out = tmp.path().join(format!("out{threads}"));
        let (ok, text) = run(
            threads,
            &["convert", dir, "--out", out.to_str().expect("utf-8")],
        );
        assert!(!ok, "{text}");
        assert!(text.contains("converted 5, failed 1"), "{text}");
        outs.push(out);
    }
    for (i, film) in films.iter().enumerate() {
        let name = format!("{i}_{}", film.replace(".dcm", ".tiff"));
        let a = std::fs::read(outs[0].join(&name)).expect("one thread");
        let b = std::fs::read(outs[1].join(&name)).expect("two threads");
        assert!(a == b, "{name} differs between 1 and 2 threads");
    }
}
