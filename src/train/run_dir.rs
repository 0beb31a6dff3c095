//! The run folder: atomic writes of tensors and text, the metrics history, the checkpoint's state file,
//! the prediction files and the names of what a run leaves (`metrics.csv`, `train.toml`, `checkpoint/`,
//! `model/`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::TrainError;
use super::data::Dataset;
use super::events::EpochRecord;
use crate::stats::cutoffs::Cutoffs;

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Saves tensors atomically (temporary file, then rename).
pub(super) fn save_tensors(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
) -> Result<(), TrainError> {
    crate::imaging::export::write_via_temp(path, |tmp| {
        candle_core::safetensors::save(tensors, tmp).map_err(|e| e.to_string())
    })
    .map_err(|e| TrainError::Data(e.to_string()))
}

pub(super) fn write_text(path: &Path, text: &str) -> Result<(), TrainError> {
    crate::imaging::export::write_via_temp(path, |tmp| {
        std::fs::write(tmp, text).map_err(|e| e.to_string())
    })
    .map_err(|e| TrainError::Data(e.to_string()))
}

pub(super) fn load_tensors(
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, TrainError> {
    candle_core::safetensors::load(path, device)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
}

pub(super) const METRICS_FILE: &str = "metrics.csv";
pub(super) const CONFIG_FILE: &str = "train.toml";
pub(super) const CHECKPOINT_DIR: &str = "checkpoint";

/// The run state the checkpoint of a run in `out` keeps (phase, epochs done, best AUC).
pub(super) fn state_path(out: &Path) -> PathBuf {
    out.join(CHECKPOINT_DIR).join("state.json")
}

/// Whether `out` holds a run that `--resume` can continue (an epoch of it was checkpointed).
pub fn resumable(out: &Path) -> bool {
    state_path(out).is_file()
}

/// Folder of the trained model inside the output folder.
pub const MODEL_DIR: &str = "model";

pub(super) fn append_metrics(out: &Path, r: &EpochRecord) -> Result<(), TrainError> {
    let path = out.join(METRICS_FILE);
    let new = !path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut w = csv::WriterBuilder::new().has_headers(new).from_writer(file);
    w.serialize(r)
        .and_then(|()| w.flush().map_err(csv::Error::from))
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
}

/// Writes a split's predictions (`case_id,label,probability` and the calls at `cutoffs`) for the examples
/// `idx` of `data`.
pub(super) fn write_predictions(
    path: &Path,
    data: &Dataset,
    idx: &[usize],
    probs: &[f64],
    cutoffs: Option<Cutoffs>,
) -> Result<(), TrainError> {
    // The calls at the validation set's cut-offs (probability ≥ cut-off), as `sacro predict` writes them.
    let mut text =
        String::from("case_id,label,probability,call_sensitive,call_balanced,call_specific\n");
    for (&i, p) in idx.iter().zip(probs) {
        let ex = &data.examples[i];
        let calls = match cutoffs {
            Some(c) => format!(
                "{},{},{}",
                u8::from(*p >= c.sensitive),
                u8::from(*p >= c.balanced),
                u8::from(*p >= c.specific)
            ),
            None => ",,".to_string(),
        };
        text.push_str(&format!(
            "{},{},{p},{calls}\n",
            csv_field(&ex.id),
            u8::from(ex.label)
        ));
    }
    write_text(path, &text)
}

/// A CSV field: neutralised for spreadsheets ([`crate::escape::csv_cell`]), quoted where needed.
pub(super) fn csv_field(s: &str) -> String {
    let s = crate::escape::csv_cell(s);
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
