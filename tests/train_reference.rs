//! Training schedule and loss against fastai's own code
//! (`tests/reference/make_fastai_schedule_reference.py` made `tests/reference/fastai_schedule.json`).

use candle_core::{Device, Tensor};
use sacro::train::loss::label_smoothing_cross_entropy;
use sacro::train::schedule::{OneCycle, even_mults, sched_exp, valley};
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/fastai_schedule.json"
    ))
    .expect("reference");
    serde_json::from_str(&text).expect("json")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// fastai computes the phase position in float32, so agreement is to about 1e-6 of the schedule's scale.
fn close_to_scale(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 2e-6 * scale
}

fn close(a: f64, b: f64) -> bool {
    close_to_scale(a, b, b.abs())
}

#[test]
fn one_cycle_and_lr_finder_match_fastai() {
    let r = reference();
    let positions = floats(&r["positions"]);
    let one = OneCycle::new(r["lr_max"].as_f64().expect("lr_max"));
    for ((p, lr), mom) in positions
        .iter()
        .zip(floats(&r["one_cycle_lr"]))
        .zip(floats(&r["one_cycle_mom"]))
    {
        assert!(
            close_to_scale(one.lr(*p), lr, one.lr_max),
            "lr at {p}: {} vs fastai {lr}",
            one.lr(*p)
        );
        assert!(
            close_to_scale(one.momentum(*p), mom, 1.0),
            "mom at {p}: {} vs fastai {mom}",
            one.momentum(*p)
        );
    }
    for (p, v) in positions.iter().zip(floats(&r["lr_find_exp"])) {
        assert!(close(sched_exp(1e-7, 10.0, *p), v), "lr_find at {p}");
    }
    let em = even_mults(1e-5, 1e-3, 3);
    for (a, b) in em.iter().zip(floats(&r["even_mults"])) {
        assert!(close(*a, b), "{em:?}");
    }
    let v = &r["valley"];
    let idx = valley(&floats(&v["losses"])).expect("suggestion");
    assert_eq!(
        floats(&v["lrs"])[idx],
        v["suggestion"].as_f64().expect("suggestion")
    );
}

#[test]
fn label_smoothing_matches_fastai() {
    let r = reference();
    let ls = &r["label_smoothing"];
    let logits: Vec<f32> = ls["logits"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|row| floats(row).into_iter().map(|v| v as f32))
        .collect();
    let targets: Vec<u32> = ls["targets"]
        .as_array()
        .expect("t")
        .iter()
        .map(|v| v.as_u64().expect("t") as u32)
        .collect();
    let n = targets.len();
    let logits = Tensor::from_vec(logits, (n, 2), &Device::Cpu).expect("logits");
    let targets = Tensor::from_vec(targets, n, &Device::Cpu).expect("targets");
    let loss: f32 = label_smoothing_cross_entropy(&logits, &targets, 0.1)
        .expect("loss")
        .to_scalar()
        .expect("scalar");
    let want = ls["loss"].as_f64().expect("loss") as f32;
    assert!((loss - want).abs() < 1e-6, "{loss} vs fastai {want}");
}
