//! End-to-end training on a few small phantoms with a tiny ResNet (same code as ResNet-50, fewer and
//! narrower blocks): the run writes a loadable model folder with its card, history and validation
//! predictions; a run cancelled after an epoch and resumed ends with exactly the weights of an
//! uninterrupted run; bad data is refused with the file or row named.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sacro::model::Device;
use sacro::model::predict::Predictor;
use sacro::train::data::{self, Dataset};
use sacro::train::{Event, TrainConfig, TrainError};

mod common;
use common::{TINY, phantoms};

fn dataset(csv: &Path, cfg: &TrainConfig) -> Dataset {
    let entries = data::read_csv(csv).expect("labels");
    let mut ds = data::load(
        &entries,
        cfg.cache_size(),
        cfg.fit,
        cfg.window,
        "test phantoms",
        &|_, _| {},
        &AtomicBool::new(false),
    )
    .expect("films");
    ds.split(cfg.valid_pct, cfg.seed);
    ds
}

/// A run with no events listened to and no cancel.
fn quiet_run(
    cfg: &TrainConfig,
    ds: &Dataset,
    out: &Path,
    resume: bool,
) -> Result<sacro::train::Summary, TrainError> {
    sacro::train::train(
        cfg,
        ds,
        out,
        resume,
        &Device::Cpu,
        &mut |_| {},
        &AtomicBool::new(false),
    )
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model").join("weights.safetensors")).expect("weights")
}

#[test]
fn tiny_run_writes_a_model_and_resume_continues_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = phantoms(tmp.path(), 20);
    let cfg = TrainConfig::parse(TINY).unwrap();
    let ds = dataset(&csv, &cfg);
    assert_eq!(ds.indices(data::Split::Valid).len(), 5);

    // Uninterrupted.
    let a = tmp.path().join("a");
    let mut epochs = 0;
    let mut batches = 0;
    let summary = sacro::train::train(
        &cfg,
        &ds,
        &a,
        false,
        &Device::Cpu,
        &mut |e| match e {
            Event::Epoch(_) => epochs += 1,
            Event::Batch { .. } => batches += 1,
            _ => {}
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!((epochs, summary.epochs_run), (3, 3));
    // 15 training films in batches of 6: two full batches per epoch (the last partial one is dropped).
    assert_eq!(batches, 6);
    assert!(summary.valid_auc.is_finite());
    let predictor = Predictor::load(&summary.model_dir, Device::Cpu).unwrap();
    assert_eq!(predictor.card.preprocess.size, 48);
    assert!(
        predictor
            .card
            .training_data
            .contains("15 training, 5 validation")
    );
    let metrics = std::fs::read_to_string(a.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 4, "{metrics}");
    assert!(metrics.starts_with("phase,size,frozen,epoch,train_loss,valid_loss,valid_auc"));
    let preds = std::fs::read_to_string(a.join("valid_predictions.csv")).unwrap();
    for f in ["train.toml", "metrics.csv", "valid_predictions.csv"] {
        assert!(a.join("model").join(f).is_file(), "model/{f}");
    }
    assert_eq!(preds.lines().count(), 6);
    // The saved configuration is the one used.
    assert_eq!(
        TrainConfig::load(&a.join("train.toml")).unwrap(),
        cfg,
        "train.toml round trip"
    );
    // The same run with the blocks checkpointed (recomputed in the backward pass) learns the same: the
    // losses of every epoch agree (here: bit for bit; the same operations in the same order).
    let mut checkpointed = cfg.clone();
    checkpointed.checkpoint_blocks = true;
    let c = tmp.path().join("c");
    quiet_run(&checkpointed, &ds, &c, false).unwrap();
    let losses = |dir: &Path| -> Vec<f64> {
        let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        text.lines()
            .skip(1)
            .flat_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                [f[4].parse::<f64>().unwrap(), f[5].parse::<f64>().unwrap()]
            })
            .collect()
    };
    for (p, q) in losses(&a).iter().zip(losses(&c)) {
        assert!((p - q).abs() <= 1e-6 * p.abs().max(1.0), "{p} vs {q}");
    }
    assert!(
        std::fs::read_to_string(c.join("train.toml"))
            .unwrap()
            .contains("checkpoint_blocks = true")
    );
    // The output folder is not overwritten by a new run.
    let again = quiet_run(&cfg, &ds, &a, false);
    assert!(again.unwrap_err().to_string().contains("--resume"));

    // Cancelled after the second epoch (the first of the unfrozen phase), then resumed.
    let b = tmp.path().join("b");
    let cancel = AtomicBool::new(false);
    let mut seen = 0;
    let err = sacro::train::train(
        &cfg,
        &ds,
        &b,
        false,
        &Device::Cpu,
        &mut |e| {
            if let Event::Epoch(_) = e {
                seen += 1;
                if seen == 2 {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Cancelled), "{err}");
    assert!(!b.join("model").exists());
    let resumed = quiet_run(&cfg, &ds, &b, true).unwrap();
    assert_eq!(resumed.epochs_run, 1, "only the missing epoch is run");
    assert_eq!(
        std::fs::read_to_string(b.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        4
    );
    assert!(
        weights(&a) == weights(&b),
        "a resumed run must end with the weights of an uninterrupted one"
    );

    // A changed configuration cannot resume the run.
    let mut other = cfg.clone();
    other.seed = 6;
    let err = quiet_run(&other, &ds, &b, true).unwrap_err();
    assert!(err.to_string().contains("configuration"), "{err}");
}

#[test]
fn lr_find_restores_the_weights_and_suggests_a_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = phantoms(tmp.path(), 12);
    let cfg = TrainConfig::parse(TINY).unwrap();
    let ds = dataset(&csv, &cfg);
    let mut steps = 0;
    let r = sacro::train::lr_find(
        &cfg,
        &ds,
        &Device::Cpu,
        (1e-7, 10.0, 30),
        &mut |e| {
            if let Event::LrStep { .. } = e {
                steps += 1;
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(steps, r.lrs.len());
    assert!(r.lrs.len() >= 10 && r.lrs.len() <= 30);
    // Exponential from 1e-7: lr_i = 1e-7 · (1e8)^(i/30).
    assert!((r.lrs[0] - 1e-7).abs() < 1e-20);
    assert!((r.lrs[3] / r.lrs[2] - 1e8f64.powf(1.0 / 30.0)).abs() < 1e-9);
    assert!(r.suggestion.is_some_and(|s| s > 1e-7 && s < 10.0));
    let png = tmp.path().join("lr.png");
    sacro::report::plots::write_lr_find(
        &tmp.path().join("lr.csv"),
        &png,
        &r.lrs,
        &r.losses,
        r.suggestion,
    )
    .unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}

#[test]
fn bad_label_files_name_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    for (text, needle) in [
        ("name,label\na.dcm,1\n", "no `file` column"),
        ("file\na.dcm\n", "`label` column"),
        ("file,label\na.dcm,2\n", "row 2: label `2`"),
        ("file,label\na.dcm,1\nb.dcm,yes\n", "row 3"),
        (
            "file,left_grade,right_grade\na.dcm,1,7\n",
            "row 2: right_grade",
        ),
        ("file,left_grade\na.dcm,1\n", "`label` column"),
        (
            "file,label,left_grade,right_grade\na.dcm,1,0,1\n",
            "contradicts",
        ),
        ("file,label,split\na.dcm,1,holdout\n", "split `holdout`"),
        ("file,label\n", "no rows"),
    ] {
        let p = write("labels.csv", text);
        let err = data::read_csv(&p).unwrap_err().to_string();
        assert!(
            err.contains("labels.csv") && err.contains(needle),
            "{text}: {err}"
        );
    }
    // A film that cannot be read names the file.
    let p = write("labels.csv", "file,label\nmissing.dcm,1\n");
    let entries = data::read_csv(&p).unwrap();
    let err = data::load(
        &entries,
        64,
        sacro::model::preprocess::Fit::Pad,
        sacro::imaging::WindowPolicy::AsStored8Bit,
        "x",
        &|_, _| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing.dcm"), "{err}");
}

/// A `split` column is honoured, and the test set is evaluated once at the end with the validation
/// cut-offs (its calls equal probability ≥ the card's cut-offs).
#[test]
fn a_given_split_with_a_test_set() {
    let tmp = tempfile::tempdir().expect("tmp");
    let csv = phantoms(tmp.path(), 16);
    let text = std::fs::read_to_string(&csv).expect("csv");
    let mut lines = text.lines();
    let mut out = format!("{},split\n", lines.next().expect("header"));
    // Two films of each class to validation and two to test, the rest to training.
    let mut seen = [0usize; 2];
    for l in lines {
        let g: Vec<u8> = l
            .split(',')
            .skip(1)
            .map(|v| v.parse().expect("grade"))
            .collect();
        let definite = (g[0] >= 2 && g[1] >= 2) || g[0] >= 3 || g[1] >= 3;
        let k = &mut seen[usize::from(definite)];
        let split = match *k {
            0 | 1 => "valid",
            2 | 3 => "test",
            _ => "train",
        };
        *k += 1;
        out.push_str(&format!("{l},{split}\n"));
    }
    assert!(
        seen[0] >= 5 && seen[1] >= 5,
        "both classes in every set: {seen:?}"
    );
    std::fs::write(&csv, out).expect("write");
    let mut cfg = TrainConfig::parse(TINY).expect("cfg");
    cfg.stages[0].unfrozen_epochs = 0;
    let ds = dataset(&csv, &cfg);
    assert_eq!(ds.indices(data::Split::Test).len(), 4);
    assert_eq!(ds.indices(data::Split::Valid).len(), 4);
    let dir = tmp.path().join("run");
    let summary = quiet_run(&cfg, &ds, &dir, false).expect("trained");
    assert!(summary.test_auc.is_some());
    let preds =
        std::fs::read_to_string(dir.join("test_predictions.csv")).expect("test predictions");
    let mut rows = preds.lines();
    assert_eq!(
        rows.next(),
        Some("case_id,label,probability,call_sensitive,call_balanced,call_specific")
    );
    let rows: Vec<&str> = rows.collect();
    assert_eq!(rows.len(), 4);
    if let Some(c) = summary.cutoffs {
        for r in rows {
            let f: Vec<&str> = r.split(',').collect();
            let p: f64 = f[2].parse().expect("probability");
            assert_eq!(f[3] == "1", p >= c.sensitive, "{r}");
            assert_eq!(f[4] == "1", p >= c.balanced, "{r}");
            assert_eq!(f[5] == "1", p >= c.specific, "{r}");
        }
    }
}

/// `sacro train` interrupted by Ctrl-C (SIGINT) after its first epoch stops before the next batch with
/// status 130 and says how to resume; `--resume` then finishes the run and writes the model.
#[test]
fn ctrl_c_stops_the_command_line_run_and_resume_finishes_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let csv = phantoms(tmp.path(), 20);
    // Enough epochs that the run is still going when the signal arrives.
    let config = tmp.path().join("tiny.toml");
    std::fs::write(
        &config,
        TINY.replace("unfrozen_epochs = 2", "unfrozen_epochs = 30"),
    )
    .unwrap();
    let out = tmp.path().join("run");
    let train = |resume: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sacro"));
        c.arg("train")
            .arg("--data")
            .arg(&csv)
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&out);
        if resume {
            c.arg("--resume");
        }
        c
    };
    let mut child = train(false)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sacro train");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).expect("stderr");
        assert!(n > 0, "the run ended before its first epoch: {seen}");
        seen.push_str(&line);
        if line.trim_start().starts_with("epoch   1:") {
            break;
        }
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("stderr");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(
        rest.contains("cancelled") && rest.contains("--resume"),
        "{rest}"
    );
    assert!(!out.join("model").join("weights.safetensors").exists());
    let o = train(true).output().expect("resume");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    // The frozen phase's epoch was checkpointed: the run goes on with the unfrozen phase.
    assert!(
        err.contains("resuming at phase 2") && !err.contains("phase 1/2"),
        "{err}"
    );
    assert!(out.join("model").join("weights.safetensors").exists());
}
