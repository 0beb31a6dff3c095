//! Reading the statistics command's CSV inputs, with errors that name the file, the row and the column.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::stats::cutoffs::Cutoffs;

/// A bad input file.
#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {detail}", row.map(|r| format!(", row {r}")).unwrap_or_default())]
pub struct InputError {
    /// File.
    pub path: PathBuf,
    /// 1-based row (the header is row 1), if the problem is in one row.
    pub row: Option<u64>,
    /// What is wrong.
    pub detail: String,
}

fn err(path: &Path, row: Option<u64>, detail: impl Into<String>) -> InputError {
    InputError {
        path: path.to_path_buf(),
        row,
        detail: detail.into(),
    }
}

/// Predictions by case ID: (row, probability).
pub type Predictions = BTreeMap<String, (u64, f64)>;
/// Truth by case ID: (row, label; None when the case has no consensus label).
pub type TruthLabels = BTreeMap<String, (u64, Option<bool>)>;

/// One reader's call on a case.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderRow {
    /// Case ID.
    pub case: String,
    /// Reader.
    pub reader: String,
    /// Definite sacroiliitis (None when not assessable / empty).
    pub label: Option<bool>,
    /// Left joint grade 0–4, if given.
    pub left: Option<u8>,
    /// Right joint grade 0–4, if given.
    pub right: Option<u8>,
}

struct Table {
    path: PathBuf,
    columns: HashMap<String, usize>,
    rows: Vec<(u64, csv::StringRecord)>,
}

impl Table {
    fn read(path: &Path, required: &[&str]) -> Result<Self, InputError> {
        let mut r = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(false)
            .from_path(path)
            .map_err(|e| err(path, None, format!("cannot read: {e}")))?;
        let headers = r
            .headers()
            .map_err(|e| err(path, Some(1), e.to_string()))?
            .clone();
        let columns: HashMap<String, usize> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.to_ascii_lowercase(), i))
            .collect();
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|c| !columns.contains_key(*c))
            .collect();
        if !missing.is_empty() {
            return Err(err(
                path,
                Some(1),
                format!(
                    "missing column(s) {}; found: {}",
                    missing.join(", "),
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let row = i as u64 + 2;
            rows.push((row, rec.map_err(|e| err(path, Some(row), e.to_string()))?));
        }
        if rows.is_empty() {
            return Err(err(path, None, "no data rows"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            columns,
            rows,
        })
    }

    fn get<'a>(&self, rec: &'a csv::StringRecord, col: &str) -> Option<&'a str> {
        self.columns
            .get(col)
            .and_then(|&i| rec.get(i))
            .filter(|s| !s.is_empty())
    }

    fn case(&self, row: u64, rec: &csv::StringRecord) -> Result<String, InputError> {
        self.get(rec, "case")
            .map(str::to_string)
            .ok_or_else(|| err(&self.path, Some(row), "empty case ID"))
    }

    fn probability(&self, row: u64, rec: &csv::StringRecord) -> Result<f64, InputError> {
        let text = self.get(rec, "probability").unwrap_or("");
        let p: f64 = text.parse().map_err(|_| {
            err(
                &self.path,
                Some(row),
                format!("probability {text:?} is not a number"),
            )
        })?;
        if !(0.0..=1.0).contains(&p) {
            return Err(err(
                &self.path,
                Some(row),
                format!("probability {p} is not in [0, 1]"),
            ));
        }
        Ok(p)
    }

    fn label(&self, row: u64, rec: &csv::StringRecord) -> Result<Option<bool>, InputError> {
        match self.get(rec, "label") {
            None => Ok(None),
            Some("1") => Ok(Some(true)),
            Some("0") => Ok(Some(false)),
            Some(other) => Err(err(
                &self.path,
                Some(row),
                format!("label {other:?} must be 0, 1 or empty"),
            )),
        }
    }

    fn grade(
        &self,
        row: u64,
        rec: &csv::StringRecord,
        col: &str,
    ) -> Result<Option<u8>, InputError> {
        match self.get(rec, col) {
            None => Ok(None),
            Some(t) => match t.parse::<u8>() {
                Ok(g) if g <= 4 => Ok(Some(g)),
                _ => Err(err(
                    &self.path,
                    Some(row),
                    format!("{col} {t:?} is not a grade 0–4"),
                )),
            },
        }
    }

    fn no_duplicates(&self, keys: impl Iterator<Item = (u64, String)>) -> Result<(), InputError> {
        let mut seen = HashMap::new();
        for (row, key) in keys {
            if let Some(first) = seen.insert(key.clone(), row) {
                return Err(err(
                    &self.path,
                    Some(row),
                    format!("{key} repeats row {first}"),
                ));
            }
        }
        Ok(())
    }
}

/// Predictions: `case,probability` (other columns, such as those `sacro predict` writes, are ignored).
pub fn read_predictions(path: &Path) -> Result<Predictions, InputError> {
    let t = Table::read(path, &["case", "probability"])?;
    let mut out = BTreeMap::new();
    for (row, rec) in &t.rows {
        out.insert(t.case(*row, rec)?, (*row, t.probability(*row, rec)?));
    }
    t.no_duplicates(
        t.rows
            .iter()
            .map(|(r, rec)| (*r, format!("case {}", t.get(rec, "case").unwrap_or("")))),
    )?;
    Ok(out)
}

/// Truth: `case,label` with label 0/1, or empty for cases without a consensus label.
pub fn read_truth(path: &Path) -> Result<TruthLabels, InputError> {
    let t = Table::read(path, &["case", "label"])?;
    t.no_duplicates(
        t.rows
            .iter()
            .map(|(r, rec)| (*r, format!("case {}", t.get(rec, "case").unwrap_or("")))),
    )?;
    let mut out = BTreeMap::new();
    for (row, rec) in &t.rows {
        out.insert(t.case(*row, rec)?, (*row, t.label(*row, rec)?));
    }
    Ok(out)
}

/// Readers: `case,reader,label` and optionally `left_grade,right_grade`.
pub fn read_readers(path: &Path) -> Result<Vec<(u64, ReaderRow)>, InputError> {
    let t = Table::read(path, &["case", "reader", "label"])?;
    t.no_duplicates(t.rows.iter().map(|(r, rec)| {
        (
            *r,
            format!(
                "case {} reader {}",
                t.get(rec, "case").unwrap_or(""),
                t.get(rec, "reader").unwrap_or("")
            ),
        )
    }))?;
    t.rows
        .iter()
        .map(|(row, rec)| {
            Ok((
                *row,
                ReaderRow {
                    case: t.case(*row, rec)?,
                    reader: t
                        .get(rec, "reader")
                        .map(str::to_string)
                        .ok_or_else(|| err(path, Some(*row), "empty reader name"))?,
                    label: t.label(*row, rec)?,
                    left: t.grade(*row, rec, "left_grade")?,
                    right: t.grade(*row, rec, "right_grade")?,
                },
            ))
        })
        .collect()
}

/// A validation set for choosing cut-offs: `case,probability,label`.
pub fn read_validation(path: &Path) -> Result<(Vec<bool>, Vec<f64>), InputError> {
    let t = Table::read(path, &["case", "probability", "label"])?;
    let mut labels = Vec::new();
    let mut scores = Vec::new();
    for (row, rec) in &t.rows {
        if let Some(l) = t.label(*row, rec)? {
            labels.push(l);
            scores.push(t.probability(*row, rec)?);
        }
    }
    Ok((labels, scores))
}

/// Cut-offs from JSON: `{"sensitive": 0.2, "balanced": 0.5, "specific": 0.8}`.
pub fn read_cutoffs_json(path: &Path) -> Result<Cutoffs, InputError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err(path, None, format!("cannot read: {e}")))?;
    let c: Cutoffs =
        serde_json::from_str(&text).map_err(|e| err(path, Some(e.line() as u64), e.to_string()))?;
    for (name, v) in c.named() {
        if !v.is_finite() || !(0.0..=1.0 + 1e-9).contains(&v) {
            return Err(err(
                path,
                None,
                format!("cut-off {name} = {v} is not a probability"),
            ));
        }
    }
    Ok(c)
}

/// A reader study in long format, `reader,modality,case,truth,rating` (one row per reader, modality and
/// case): every reader must rate every case in every modality. Cases whose truth is empty are left out
/// (returned as a count); a case's truth must agree across its rows.
pub fn read_mrmc(path: &Path) -> Result<(crate::stats::mrmc::Study, usize), InputError> {
    let t = Table::read(path, &["reader", "modality", "case", "truth", "rating"])?;
    let need = |row: u64, rec: &csv::StringRecord, col: &str| -> Result<String, InputError> {
        t.get(rec, col)
            .map(str::to_string)
            .ok_or_else(|| err(path, Some(row), format!("empty {col}")))
    };
    let (mut readers, mut modalities, mut cases) = (Vec::new(), Vec::new(), Vec::new());
    let mut truth: HashMap<String, (u64, Option<bool>)> = HashMap::new();
    let mut ratings: HashMap<(String, String, String), (u64, f64)> = HashMap::new();
    for (row, rec) in &t.rows {
        let row = *row;
        let (reader, modality, case) = (
            need(row, rec, "reader")?,
            need(row, rec, "modality")?,
            need(row, rec, "case")?,
        );
        let tr = match t.get(rec, "truth") {
            None => None,
            Some("1") => Some(true),
            Some("0") => Some(false),
            Some(other) => {
                return Err(err(
                    path,
                    Some(row),
                    format!("truth {other:?} must be 0, 1 or empty"),
                ));
            }
        };
        let text = t.get(rec, "rating").unwrap_or("");
        let rating: f64 = text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| err(path, Some(row), format!("rating {text:?} is not a number")))?;
        match truth.get(&case) {
            Some(&(first, other)) if other != tr => {
                return Err(err(
                    path,
                    Some(row),
                    format!("case {case}: truth differs from row {first}"),
                ));
            }
            Some(_) => {}
            None => {
                truth.insert(case.clone(), (row, tr));
                cases.push(case.clone());
            }
        }
        if !readers.contains(&reader) {
            readers.push(reader.clone());
        }
        if !modalities.contains(&modality) {
            modalities.push(modality.clone());
        }
        let key = (reader.clone(), modality.clone(), case.clone());
        if let Some((first, _)) = ratings.insert(key, (row, rating)) {
            return Err(err(
                path,
                Some(row),
                format!("reader {reader}, modality {modality}, case {case} repeats row {first}"),
            ));
        }
    }
    let kept: Vec<String> = cases
        .iter()
        .filter(|c| truth[*c].1.is_some())
        .cloned()
        .collect();
    let excluded = cases.len() - kept.len();
    let mut values = Vec::with_capacity(modalities.len() * readers.len() * kept.len());
    for m in &modalities {
        for r in &readers {
            for c in &kept {
                match ratings.get(&(r.clone(), m.clone(), c.clone())) {
                    Some(&(_, v)) => values.push(v),
                    None => {
                        return Err(err(
                            path,
                            None,
                            format!(
                                "reader {r} has no rating of case {c} in modality {m}: every reader must rate \
                                 every case in every modality"
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok((
        crate::stats::mrmc::Study {
            modalities,
            readers,
            truth: kept.iter().map(|c| truth[c].1 == Some(true)).collect(),
            cases: kept,
            ratings: values,
        },
        excluded,
    ))
}
