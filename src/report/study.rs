//! A reading study as the analysis' inputs: its consensus (or one reader) as the reference, its readings as
//! the readers, and one model's recorded predictions. `sacro stats --study` and the app's statistics
//! dashboard both build their data here, so they give the same numbers.

use std::path::Path;

use super::inputs::{InputError, Predictions, ReaderRow, TruthLabels};
use crate::session::{self, StudyStore};

/// What the analysis takes as the truth.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reference {
    /// The study's consensus labels (cases without one are left out and counted).
    #[default]
    Consensus,
    /// One reader's calls (cases the reader did not call, or called not assessable, are left out); that
    /// reader is then not among the raters.
    Reader(String),
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> InputError {
    InputError {
        path: path.to_path_buf(),
        row: None,
        detail: e.to_string(),
    }
}

/// Truth labels and reader rows of a study. Row numbers count consensus cases and readings from 1, so
/// messages can point at them.
pub fn inputs(
    store: &dyn StudyStore,
    path: &Path,
    reference: &Reference,
) -> Result<(TruthLabels, Vec<(u64, ReaderRow)>), InputError> {
    let readers: Vec<(u64, ReaderRow)> = store
        .all_readings()
        .map_err(|e| store_err(path, e))?
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let g = r.reading.grades();
            (
                i as u64 + 1,
                ReaderRow {
                    case: r.case_id,
                    reader: r.reader,
                    label: r.reading.definite(),
                    left: g.map(|g| g.left.value()),
                    right: g.map(|g| g.right.value()),
                },
            )
        })
        .collect();
    match reference {
        Reference::Consensus => {
            let truth = session::consensus(store)
                .map_err(|e| store_err(path, e))?
                .into_iter()
                .enumerate()
                .map(|(i, c)| (c.case_id, (i as u64 + 1, c.label)))
                .collect();
            Ok((truth, readers))
        }
        Reference::Reader(name) => {
            if !readers.iter().any(|(_, r)| &r.reader == name) {
                return Err(store_err(path, format!("reader {name:?} has no readings")));
            }
            // Every case is in the truth; the reference reader's call, or none.
            let mut truth: TruthLabels = store
                .cases()
                .map_err(|e| store_err(path, e))?
                .into_iter()
                .enumerate()
                .map(|(i, c)| (c.id, (i as u64 + 1, None)))
                .collect();
            for (_, r) in readers.iter().filter(|(_, r)| &r.reader == name) {
                if let Some(entry) = truth.get_mut(&r.case) {
                    entry.1 = r.label;
                }
            }
            let others = readers
                .into_iter()
                .filter(|(_, r)| &r.reader != name)
                .collect();
            Ok((truth, others))
        }
    }
}

/// One model's recorded predictions in a study (by the SHA-256 of its weights).
pub fn predictions(
    store: &dyn StudyStore,
    path: &Path,
    model_sha256: &str,
) -> Result<Predictions, InputError> {
    Ok(store
        .predictions(model_sha256)
        .map_err(|e| store_err(path, e))?
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p.case_id, (i as u64 + 1, p.probability)))
        .collect())
}

/// The analysis' data for a study: `reference` as the truth, the other readers, and the predictions of
/// the model with `model_sha256`. Every labelled case needs the model's prediction.
pub fn data(
    store: &dyn StudyStore,
    path: &Path,
    reference: &Reference,
    model_sha256: &str,
) -> Result<super::Data, InputError> {
    let (truth, readers) = inputs(store, path, reference)?;
    let preds = predictions(store, path, model_sha256)?;
    super::match_inputs(
        (path, &preds),
        (path, &truth),
        Some((path, readers.as_slice())),
        None,
    )
}
