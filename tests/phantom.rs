//! Phantoms: determinism, truth, read-back through Sacro's loader, the study with simulated readings,
//! and the separation sanity checks (joints informative, whole image not).

use std::path::Path;
use std::process::Command;

use sacro::imaging::{self, LoadOptions, Photometric};
use sacro::phantom::{self, Phantom, PhantomConfig, PhantomFormat};
use sacro::session::{self, SqliteStore, StudyStore};
use sacro::stats::roc::roc_auc;

fn config(size: u32, seed: u64) -> PhantomConfig {
    PhantomConfig {
        size,
        prevalence: 0.66,
        seed,
    }
}

#[test]
fn same_seed_same_bytes() {
    let c = config(192, 99);
    let (a, b) = (phantom::generate(&c, 3), phantom::generate(&c, 3));
    assert_eq!(a.pixels, b.pixels);
    assert_eq!(a.grades, b.grades);
    assert_ne!(phantom::generate(&c, 4).pixels, a.pixels);
    let tmp = tempfile::tempdir().expect("tmp");
    for format in [
        PhantomFormat::Dicom,
        PhantomFormat::DicomDeflated,
        PhantomFormat::Tiff,
    ] {
        let (d1, d2) = (tmp.path().join("1"), tmp.path().join("2"));
        std::fs::create_dir_all(&d1).expect("mkdir");
        std::fs::create_dir_all(&d2).expect("mkdir");
        let f1 = phantom::write(&d1, &c, &a, format).expect("write");
        let f2 = phantom::write(&d2, &c, &b, format).expect("write");
        assert_eq!(
            std::fs::read(f1).expect("read"),
            std::fs::read(f2).expect("read"),
            "{format:?}"
        );
        std::fs::remove_dir_all(&d1).expect("rm");
        std::fs::remove_dir_all(&d2).expect("rm");
    }
}

#[test]
fn cli_writes_images_truth_and_a_study_that_read_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("ph");
    let o = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args([
            "phantom",
            "--n",
            "6",
            "--size",
            "256",
            "--seed",
            "5",
            "--readers",
            "central1,central2,adjudicator",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = config(256, 5);
    let mut reader = csv::Reader::from_path(out.join("truth.csv")).expect("truth.csv");
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        phantom::TRUTH_HEADER.to_vec()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 6);
    for (i, row) in rows.iter().enumerate() {
        let p: Phantom = phantom::generate(&c, i + 1);
        assert_eq!(
            row.iter().map(str::to_string).collect::<Vec<_>>(),
            phantom::truth_row(&p, &format!("{}.dcm", p.case_id))
        );
        let r = imaging::load(
            &out.join(format!("{}.dcm", p.case_id)),
            &LoadOptions::default(),
        )
        .expect("loads");
        assert_eq!((r.width(), r.height()), (256, 256));
        assert_eq!(
            r.identity.series_description.as_deref(),
            Some(phantom::SERIES_DESCRIPTION)
        );
        assert_eq!(
            r.identity.patient_name.as_deref(),
            Some(format!("PHANTOM^{:04}", i + 1).as_str())
        );
        assert_eq!(r.identity.body_part.as_deref(), Some("PELVIS"));
        let max = f32::from(((1u32 << p.bits_stored) - 1) as u16);
        let display: Vec<f32> = if p.monochrome1 {
            assert_eq!(r.photometric, Photometric::Monochrome1);
            r.image.pixels.iter().map(|&v| max - v).collect()
        } else {
            assert_eq!(r.photometric, Photometric::Monochrome2);
            r.image.pixels.clone()
        };
        let want: Vec<f32> = p.pixels.iter().map(|&v| f32::from(v)).collect();
        assert_eq!(display, want, "{}", p.case_id);
        assert_eq!(r.presets.len(), 2);
        assert!((r.pixel_spacing_mm.expect("spacing").0 - 400.0 / 256.0).abs() < 1e-3);
    }
    let store = SqliteStore::open(&out.join("study.sacro")).expect("study");
    assert_eq!(store.cases().expect("cases").len(), 6);
    assert_eq!(store.readers().expect("readers").len(), 3);
    let status = session::status(&store).expect("status");
    assert!(status.readers.iter().all(|r| r.done == r.assigned));
    assert!(status.awaiting_adjudication.is_empty());
    assert_eq!(
        status.labelled, 6,
        "every case labelled by agreement or adjudication"
    );
    let case = store.case("P0001").expect("case");
    assert!(store.resolve(&case).expect("path").is_file());
}

/// Depth of the darkest narrow valley in each row of a region, the 10th percentile over rows: a crisp
/// joint line gives a deep valley in every row; erosions, bridging and ankylosis break it.
fn joint_line_feature(p: &Phantom, r: sacro::imaging::Rect) -> f64 {
    let w = p.size as usize;
    let px = |x: usize, y: usize| f64::from(p.pixels[y * w + x]);
    let mut region: Vec<f64> = Vec::new();
    for y in r.y..r.y + r.height {
        for x in r.x..r.x + r.width {
            region.push(px(x as usize, y as usize));
        }
    }
    let mut sorted = region.clone();
    sorted.sort_by(f64::total_cmp);
    let (lo, hi) = (sorted[sorted.len() / 20], sorted[sorted.len() * 19 / 20]);
    let norm = |v: f64| (v - lo) / (hi - lo).max(1e-9);
    let (k0, k1) = (3usize, 9usize);
    let mut depths: Vec<f64> = (0..r.height as usize)
        .map(|row| {
            let line: Vec<f64> = region[row * r.width as usize..(row + 1) * r.width as usize]
                .iter()
                .map(|&v| norm(v))
                .collect();
            (k1..line.len().saturating_sub(k1))
                .map(|i| {
                    let left = line[i - k1..i - k0].iter().sum::<f64>() / (k1 - k0) as f64;
                    let right = line[i + k0..i + k1].iter().sum::<f64>() / (k1 - k0) as f64;
                    left.min(right) - line[i]
                })
                .fold(0.0, f64::max)
        })
        .collect();
    depths.sort_by(f64::total_cmp);
    depths[depths.len() / 10]
}

#[test]
fn joints_separate_low_from_high_grades_but_whole_images_do_not_separate_definite() {
    // Joint feature at 512 px: grades 0–1 against 3–4.
    let c = config(512, 11);
    let (mut labels, mut feats) = (Vec::new(), Vec::new());
    for i in 1..=40 {
        let p = phantom::generate(&c, i);
        for (grade, region) in [
            (p.grades.left, p.left_region),
            (p.grades.right, p.right_region),
        ] {
            match grade.value() {
                0 | 1 => labels.push(true),
                3 | 4 => labels.push(false),
                _ => continue,
            }
            feats.push(joint_line_feature(&p, region));
        }
    }
    let auc = roc_auc(&labels, &feats).expect("auc");
    eprintln!(
        "joint-line feature AUC (0–1 vs 3–4): {auc:.3} on {} joints",
        labels.len()
    );
    assert!(auc >= 0.9, "joint-line feature AUC {auc}");

    // Whole-image statistics at 160 px: mean and three percentiles must not tell definite films apart.
    let c = config(160, 12);
    let mut definite = Vec::new();
    let mut stats: [Vec<f64>; 4] = Default::default();
    for i in 1..=300 {
        let p = phantom::generate(&c, i);
        definite.push(p.grades.definite_sacroiliitis());
        let mut v: Vec<f64> = p
            .pixels
            .iter()
            .map(|&x| f64::from(x) / f64::from(((1u32 << p.bits_stored) - 1) as u16))
            .collect();
        stats[0].push(v.iter().sum::<f64>() / v.len() as f64);
        v.sort_by(f64::total_cmp);
        for (k, q) in [0.1, 0.5, 0.9].iter().enumerate() {
            stats[k + 1].push(v[(q * (v.len() - 1) as f64) as usize]);
        }
    }
    for (name, s) in ["mean", "p10", "median", "p90"].iter().zip(&stats) {
        let auc = roc_auc(&definite, s).expect("auc");
        eprintln!("whole-image {name} AUC for definite: {auc:.3}");
        assert!(
            (0.4..=0.6).contains(&auc),
            "whole-image {name} separates definite films: AUC {auc}"
        );
    }
}

#[test]
fn every_phantom_says_it_is_synthetic() {
    let c = config(1024, 1);
    let p = phantom::generate(&c, 1);
    // The burned-in label sits in the bottom-left corner (from 6 % of the width, 93 % of the height).
    let w = p.size as usize;
    let max = ((1u32 << p.bits_stored) - 1) as u16;
    let text_pixels = (952..980)
        .flat_map(|y| (61..460).map(move |x| (x, y)))
        .filter(|&(x, y)| p.pixels[y * w + x] >= max - max / 50)
        .count();
    assert!(
        text_pixels > 30,
        "burned-in label present ({text_pixels} pixels)"
    );
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/fonts/DejaVu-LICENSE.txt")
            .is_file()
    );
}
