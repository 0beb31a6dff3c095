//! `sacro stats`: reading predictions, truth and readers, matching them by case, running the analysis and
//! writing the report (Markdown, self-contained HTML, CSV tables, ROC and PR plots as PNG and SVG, JSON).

pub mod analysis;
pub mod inputs;
pub mod mrmc;
pub mod plots;
mod render;
pub mod study;

use std::path::{Path, PathBuf};

pub use analysis::{Analysis, CutoffSource, Data, Settings, analyse, analyse_with};
pub use inputs::{InputError, Predictions, ReaderRow, TruthLabels};
pub use render::{markdown, write_report};

/// Matches predictions with truth (and readers, and a second model) by case ID. Every labelled truth case
/// needs a prediction; every prediction and reader row needs a truth row (an empty truth label marks an
/// unresolved case, left out and counted).
pub fn match_inputs(
    predictions: (&Path, &Predictions),
    truth: (&Path, &TruthLabels),
    readers: Option<(&Path, &[(u64, ReaderRow)])>,
    comparison: Option<(&Path, &Predictions)>,
) -> Result<Data, InputError> {
    let (ppath, preds) = predictions;
    let (tpath, truth_rows) = truth;
    let mismatch = |path: &Path, row: u64, detail: String| InputError {
        path: path.to_path_buf(),
        row: Some(row),
        detail,
    };
    for (case, (row, _)) in preds {
        if !truth_rows.contains_key(case) {
            return Err(mismatch(
                ppath,
                *row,
                format!("case {case} is not in the truth file {}", tpath.display()),
            ));
        }
    }
    let mut data = Data {
        cases: Vec::new(),
        truth: Vec::new(),
        scores: Vec::new(),
        comparison: None,
        readers: Vec::new(),
        excluded_unlabelled: 0,
    };
    let mut other_scores = Vec::new();
    for (case, (row, label)) in truth_rows {
        let Some(label) = label else {
            data.excluded_unlabelled += 1;
            continue;
        };
        let (_, p) = preds.get(case).ok_or_else(|| {
            mismatch(
                tpath,
                *row,
                format!("case {case} has no prediction in {}", ppath.display()),
            )
        })?;
        if let Some((cpath, other)) = comparison {
            let (_, q) = other.get(case).ok_or_else(|| {
                mismatch(
                    tpath,
                    *row,
                    format!("case {case} has no prediction in {}", cpath.display()),
                )
            })?;
            other_scores.push(*q);
        }
        data.cases.push(case.clone());
        data.truth.push(*label);
        data.scores.push(*p);
    }
    if let Some((cpath, _)) = comparison {
        data.comparison = Some((name_of(cpath), other_scores));
    }
    if let Some((rpath, rows)) = readers {
        for (row, r) in rows {
            match truth_rows.get(&r.case) {
                None => {
                    return Err(mismatch(
                        rpath,
                        *row,
                        format!(
                            "case {} is not in the truth file {}",
                            r.case,
                            tpath.display()
                        ),
                    ));
                }
                Some((_, None)) => {}
                Some((_, Some(_))) => data.readers.push(r.clone()),
            }
        }
    }
    Ok(data)
}

fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "comparison".into())
}

/// Files the report writes into its folder.
pub fn report_files(dir: &Path) -> Vec<PathBuf> {
    [
        "report.md",
        "report.html",
        "report.json",
        "roc.png",
        "roc.svg",
        "pr.png",
        "pr.svg",
        "roc.csv",
        "pr.csv",
        "cutoffs.csv",
        "readers.csv",
        "agreement.csv",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect()
}
