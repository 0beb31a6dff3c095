//! `sacro predict` and `sacro explain` end to end with a small model folder built from the PyTorch fixture
//! weights (a stand-in until the demo model is trained), on the bundled phantoms.

use std::path::Path;
use std::process::Command;

use candle_core::Device;
use sacro::model::card;
use sacro::model::predict::Predictor;

mod common;
use common::model_folder;

fn demo(name: &str) -> String {
    format!("{}/assets/demo/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn predict_writes_the_statistics_csv_and_matches_the_library() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("model");
    let card = model_folder(&dir);
    assert_eq!(card.weights_sha256.len(), 64);
    let out = tmp.path().join("pred.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args([
            "predict",
            "--model",
            dir.to_str().expect("utf8"),
            "--logits",
            "--batch",
            "2",
            // The test loads each film again from the `file` column (by default only its name).
            "--show-paths",
            "--out",
        ])
        .arg(&out)
        .args([demo("P0001.dcm"), demo("P0002.dcm"), demo("P0003.dcm")])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut r = csv::Reader::from_path(&out).expect("csv");
    assert_eq!(
        r.headers().expect("header").iter().collect::<Vec<_>>(),
        [
            "case",
            "file",
            "probability",
            "call_sensitive",
            "call_balanced",
            "call_specific",
            "logit_0",
            "logit_1",
            "scope_warning",
            "sop_instance_uid"
        ]
    );
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
    assert_eq!(rows.len(), 3);
    // The same through the library, one at a time (batching must not change results).
    let predictor = Predictor::load(&dir, Device::Cpu).expect("load");
    for row in &rows {
        let file = &row[1];
        let rad = sacro::imaging::load(Path::new(file), &Default::default()).expect("load");
        let unit = rad.model_unit(predictor.card.preprocess.window);
        let input = predictor
            .input(&unit.pixels, unit.width, unit.height)
            .expect("input");
        let p = predictor.predict(&[input]).expect("predict").remove(0);
        let csv_p: f32 = row[2].parse().expect("probability");
        assert!(
            (csv_p - p.probability).abs() < 2e-6,
            "{file}: {csv_p} vs {}",
            p.probability
        );
        assert!((0.0..=1.0).contains(&csv_p));
        assert_eq!(&row[4], if p.probability >= 0.5 { "1" } else { "0" });
    }
}

#[test]
fn explain_writes_a_heatmap_of_the_radiographs_size() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("model");
    model_folder(&dir);
    let png = tmp.path().join("heat.png");
    let o = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args([
            "explain",
            "--model",
            dir.to_str().expect("utf8"),
            &demo("P0004.dcm"),
            "--class",
            "1",
            "--out",
        ])
        .arg(&png)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&png).expect("png").to_rgb8();
    assert_eq!(img.dimensions(), (512, 512));
    // (With the fixture's random weights the map itself may be empty: the overlay's colouring is tested in
    // src/imaging/overlay.rs and Grad-CAM's values against torch autograd in tests/model_fixture.rs.)
}

#[test]
fn a_changed_weights_file_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("model");
    model_folder(&dir);
    let w = dir.join(card::WEIGHTS_FILE);
    let mut bytes = std::fs::read(&w).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&w, bytes).expect("write");
    let err = Predictor::load(&dir, Device::Cpu)
        .expect_err("tampered")
        .to_string();
    assert!(
        err.contains("SHA-256") && err.contains("weights.safetensors"),
        "{err}"
    );
    std::fs::write(dir.join(card::CARD_FILE), "{not json").expect("write");
    let err = Predictor::load(&dir, Device::Cpu)
        .expect_err("bad card")
        .to_string();
    assert!(err.contains("model.json"), "{err}");
}

/// `sacro model half DIR --out HALF`.
fn model_half(dir: &Path, half: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args(["model", "half"])
        .arg(dir)
        .arg("--out")
        .arg(half)
        .output()
        .expect("run")
}

#[test]
fn a_half_precision_copy_predicts_as_the_original_within_f16_rounding() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("model");
    model_folder(&dir);
    std::fs::write(dir.join("metrics.csv"), "epoch\n1\n").expect("write");
    let half = tmp.path().join("half");
    let o = model_half(&dir, &half);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The other files travel, the weights shrink to about half, and the card names the new weights.
    assert_eq!(
        std::fs::read_to_string(half.join("metrics.csv")).expect("copied"),
        "epoch\n1\n"
    );
    let size = |d: &Path| {
        std::fs::metadata(d.join(card::WEIGHTS_FILE))
            .expect("weights")
            .len() as f64
    };
    // Both folders' weights readable as their cards are (not the safetensors writer's owner-only mode).
    for d in [&dir, &half] {
        let perm = |f: &str| std::fs::metadata(d.join(f)).expect("file").permissions();
        assert_eq!(
            perm(card::WEIGHTS_FILE),
            perm(card::CARD_FILE),
            "{}",
            d.display()
        );
    }
    let ratio = size(&half) / size(&dir);
    assert!((0.45..0.56).contains(&ratio), "size ratio {ratio}");
    let (full, small) = (
        Predictor::load(&dir, Device::Cpu).expect("f32"),
        Predictor::load(&half, Device::Cpu).expect("f16 copy loads and its SHA-256 matches"),
    );
    assert_ne!(full.sha256, small.sha256);
    for name in ["P0001.dcm", "P0002.dcm", "P0003.dcm"] {
        let rad = sacro::imaging::load(Path::new(&demo(name)), &Default::default()).expect("load");
        let unit = rad.default_unit();
        let p = |m: &Predictor| {
            let input = m
                .input(&unit.pixels, unit.width, unit.height)
                .expect("input");
            m.predict(&[input]).expect("predict").remove(0)
        };
        let (a, b) = (p(&full), p(&small));
        for (x, y) in a.logits.iter().zip(&b.logits) {
            assert!(
                (x - y).abs() <= 2e-2 * (1.0 + x.abs()),
                "{name}: {x} vs {y}"
            );
        }
        assert!((a.probability - b.probability).abs() < 1e-2, "{name}");
    }
}

#[test]
fn weights_outside_f16_range_are_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("model");
    let card0 = model_folder(&dir);
    // A running variance of 1e6 is a legal f32 weight that f16 (max 65504) cannot hold.
    let w = dir.join(card::WEIGHTS_FILE);
    let mut tensors = candle_core::safetensors::load(&w, &Device::Cpu).expect("load");
    let name = tensors
        .keys()
        .find(|k| k.ends_with("running_var"))
        .expect("a batch-norm")
        .clone();
    let t = &tensors[&name];
    let big = (t.ones_like().expect("ones") * 1e6).expect("scale");
    tensors.insert(name.clone(), big);
    candle_core::safetensors::save(&tensors, &w).expect("save");
    let bytes = std::fs::read(&w).expect("read");
    let card1 = sacro::model::card::ModelCard {
        weights_sha256: sacro::model::weights::sha256_hex(&bytes),
        ..card0
    };
    std::fs::write(
        dir.join(card::CARD_FILE),
        serde_json::to_string(&card1).expect("json"),
    )
    .expect("card");
    let half = tmp.path().join("half");
    let o = model_half(&dir, &half);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&name) && err.contains("f16"), "{err}");
    assert!(!half.exists());
}

/// `sacro predict` without `--model` on phantoms the demo model never saw (seed 2029; it was trained on
/// seed 2028): the bundled demo model is used, says so, and ranks them as it did when
/// `models/demo-phantom/evaluate.sh 60` scored its predictions with scikit-learn (AUC 0.999; 0.963 on 300).
#[test]
fn predict_without_a_model_uses_the_bundled_demo_model() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ph = tmp.path().join("ph");
    let sacro = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sacro"));
        c.env_remove("SACRO_DEMO_MODEL");
        c
    };
    let o = sacro()
        .args([
            "phantom", "--n", "60", "--size", "512", "--seed", "2029", "--out",
        ])
        .arg(&ph)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.path().join("pred.csv");
    let o = sacro()
        .args(["predict", "--batch", "6", "--out"])
        .arg(&out)
        .arg(&ph)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("demo-phantom") && err.contains("not for clinical use"),
        "{err}"
    );
    let truth: std::collections::HashMap<String, bool> =
        csv::Reader::from_path(ph.join("truth.csv"))
            .expect("truth")
            .deserialize::<std::collections::HashMap<String, String>>()
            .map(|r| {
                let r = r.expect("row");
                (r["case"].clone(), r["definite"] == "1")
            })
            .collect();
    let (mut labels, mut scores) = (Vec::new(), Vec::new());
    for r in csv::Reader::from_path(&out).expect("csv").records() {
        let r = r.expect("row");
        labels.push(truth[&r[0]]);
        scores.push(r[2].parse::<f64>().expect("probability"));
    }
    assert_eq!(labels.len(), 60);
    let auc = sacro::stats::roc::roc_auc(&labels, &scores).expect("auc");
    assert!((auc - 0.9988).abs() < 0.01, "AUC {auc}");
}

#[test]
fn without_a_model_and_without_the_demo_model_predict_says_what_is_missing() {
    let o = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .env("SACRO_DEMO_MODEL", "")
        .args(["predict", &demo("P0001.dcm")])
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no --model given"), "{err}");
}

#[test]
fn bench_memory_reports_the_peak_and_bench_model_refuses_a_missing_gpu() {
    let o = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args([
            "bench", "memory", "--size", "32", "--batch", "2", "--steps", "1",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out.lines().nth(1).expect("a result line");
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(fields[0], "train_step_32_b2");
    // ResNet-50 with its gradients and Adam's two moments alone is over 400 MB.
    let mb: f64 = fields[1].parse().expect("MB");
    assert!(mb > 400.0, "{line}");
    // This test build has no CUDA: asking for it is an error that says so, not a panic.
    let o = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args(["bench", "model", "--device", "cuda", "--repeat", "1"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--device cuda"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The model's commands start again with glibc tunables that keep freed memory for reuse (see
/// `keep_freed_memory` in `src/main.rs`), and leave a `GLIBC_TUNABLES` the user set, and other commands,
/// as they are.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn model_commands_keep_freed_memory_unless_the_user_set_glibc_tunables() {
    let says_so = |args: &[&str], tunables: Option<&str>| -> bool {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sacro"));
        c.args(args).arg("-v").env_remove("RUST_LOG");
        match tunables {
            Some(t) => c.env("GLIBC_TUNABLES", t),
            None => c.env_remove("GLIBC_TUNABLES"),
        };
        let o = c.output().expect("run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).contains("glibc keeps freed memory for reuse")
    };
    let bench = [
        "bench", "memory", "--size", "32", "--batch", "2", "--steps", "1",
    ];
    assert!(says_so(&bench, None));
    assert!(!says_so(&bench, Some("")));
    assert!(!says_so(&["info", &demo("P0001.dcm")], None));
}

/// `sacro model localisation`: the share of the bundled demo model's Grad-CAM inside the true joint
/// boxes of demo phantoms, film by film, and a truth file without box columns refused by name.
#[test]
fn localisation_reports_the_heatmap_mass_inside_the_joint_boxes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let demo_truth = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/truth.csv"),
    )
    .expect("demo truth");
    // The first three films, their paths made absolute.
    let mut lines = demo_truth.lines();
    let mut truth = format!("{}\n", lines.next().expect("header"));
    for line in lines.take(3) {
        let (case, rest) = line.split_once(',').expect("row");
        let (file, rest) = rest.split_once(',').expect("row");
        truth.push_str(&format!("{case},{},{rest}\n", demo(file)));
    }
    let truth_path = tmp.path().join("truth.csv");
    std::fs::write(&truth_path, truth).expect("write");
    let out = tmp.path().join("loc.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args(["model", "localisation"])
        .arg(&truth_path)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("share of Grad-CAM mass inside the two joint boxes"),
        "{text}"
    );
    let rows: Vec<csv::StringRecord> = csv::Reader::from_path(&out)
        .expect("csv")
        .records()
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let mass: f64 = r[2].parse().expect("mass");
        let area: f64 = r[3].parse().expect("area");
        assert!(
            (0.0..=1.0 + 1e-9).contains(&mass) && area > 0.0 && area < 0.5,
            "{r:?}"
        );
    }
    std::fs::write(&truth_path, "case,file,definite\nP1,P0001.dcm,1\n").expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args(["model", "localisation"])
        .arg(&truth_path)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("no column \"left_x\""),
        "{err}"
    );
}
