//! The whole analysis of the seed study for one data set: model discrimination, cut-offs and what they
//! give, readers' operating points, agreement between every pair of raters, and the readers'
//! disagreement subset. Pure computation over the matched inputs; rendering is in `render`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::inputs::ReaderRow;
use crate::stats::agreement::{
    Weights, binary_kappa_table, binary_table, cohen_kappa, fleiss_kappa, pabak, percent_agreement,
};
use crate::stats::bootstrap::{self, BootstrapEstimate};
use crate::stats::confusion::{ConfusionMatrix, Metrics};
use crate::stats::cutoffs::{self, Cutoffs, Targets};
use crate::stats::delong::{self, DelongTest};
use crate::stats::roc::{self, PrCurve, RocCurve};
use crate::stats::{Estimate, StatsError};

/// Matched data: cases with a truth label and a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// Case IDs.
    pub cases: Vec<String>,
    /// Truth (consensus) labels.
    pub truth: Vec<bool>,
    /// Model probabilities.
    pub scores: Vec<f64>,
    /// A second model's probabilities on the same cases, for the DeLong test.
    pub comparison: Option<(String, Vec<f64>)>,
    /// Reader calls on these cases.
    pub readers: Vec<ReaderRow>,
    /// Cases left out because the truth has no label (unresolved).
    pub excluded_unlabelled: usize,
}

/// Where the cut-offs come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CutoffSource {
    /// Given by the user or read from a JSON file.
    Given(Cutoffs),
    /// The model card's: chosen on the model's own validation set when it was trained.
    ModelCard(Cutoffs),
    /// Chosen on a validation set (labels, scores) by repeated cross-validation, then applied here.
    Validation(Vec<bool>, Vec<f64>),
    /// Chosen on this data set by repeated cross-validation (optimistic: say so).
    ThisSet,
}

/// Analysis settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Confidence level.
    pub level: f64,
    /// Bootstrap resamples for the AUC.
    pub auc_resamples: usize,
    /// Bootstrap resamples for kappa.
    pub kappa_resamples: usize,
    /// Seed of every resampling.
    pub seed: u64,
    /// Cut-off source.
    pub cutoffs: CutoffSource,
    /// Targets of the one-sided cut-offs.
    pub targets: Targets,
    /// Cross-validation folds and repeats.
    pub cv: (usize, usize),
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            level: 0.95,
            auc_resamples: 2000,
            kappa_resamples: 1000,
            seed: 1,
            cutoffs: CutoffSource::ThisSet,
            targets: Targets::default(),
            cv: (5, 10),
        }
    }
}

/// Results at one cut-off.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AtCutoff {
    /// sensitive / balanced / specific.
    pub name: String,
    /// The cut-off.
    pub cutoff: f64,
    /// Confusion matrix against the truth.
    pub confusion: ConfusionMatrix,
    /// Sensitivity, specificity, PPV, NPV, accuracy with Wilson intervals.
    pub metrics: Metrics,
    /// Cohen's kappa against the truth with a bootstrap interval (None when undefined).
    pub kappa: Option<BootstrapEstimate>,
}

/// One reader against the truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReaderResult {
    /// Reader.
    pub reader: String,
    /// Cases the reader called (not assessable left out).
    pub n: usize,
    /// Confusion matrix against the truth.
    pub confusion: ConfusionMatrix,
    /// Metrics with Wilson intervals.
    pub metrics: Metrics,
}

/// Agreement of two raters.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairAgreement {
    /// First rater.
    pub a: String,
    /// Second rater.
    pub b: String,
    /// Cases both called.
    pub n: usize,
    /// Proportion of agreement.
    pub agreement: Option<f64>,
    /// PABAK.
    pub pabak: Option<f64>,
    /// Cohen's kappa with a bootstrap interval.
    pub kappa: Option<BootstrapEstimate>,
    /// Why kappa is missing, if it is.
    pub note: Option<String>,
}

/// Weighted kappa of two readers' joint grades (left and right joints pooled).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GradeAgreement {
    /// First reader.
    pub a: String,
    /// Second reader.
    pub b: String,
    /// Joints both graded.
    pub joints: usize,
    /// Linear-weighted kappa.
    pub linear: Option<f64>,
    /// Quadratic-weighted kappa.
    pub quadratic: Option<f64>,
}

/// Fleiss' kappa of all readers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FleissResult {
    /// Readers.
    pub readers: Vec<String>,
    /// Cases every reader called.
    pub n: usize,
    /// Kappa.
    pub kappa: Option<f64>,
}

/// The model on the cases where readers disagree.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DisagreementSubset {
    /// Cases where at least two readers called the case and not all agree.
    pub n: usize,
    /// Per cut-off: (name, model positive, model negative, model agrees with truth).
    pub per_cutoff: Vec<(String, usize, usize, usize)>,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Analysis {
    /// Cases analysed.
    pub n: usize,
    /// Positive cases.
    pub positives: usize,
    /// Negative cases.
    pub negatives: usize,
    /// Cases without a truth label, left out.
    pub excluded_unlabelled: usize,
    /// AUC with DeLong interval.
    pub auc_delong: Estimate,
    /// AUC with stratified bootstrap interval.
    pub auc_bootstrap: BootstrapEstimate,
    /// Average precision (scikit-learn's step definition, no interpolation).
    pub average_precision: f64,
    /// ROC curve (scikit-learn's points, collinear points dropped).
    pub roc: RocCurve,
    /// Precision–recall curve.
    pub pr: PrCurve,
    /// The cut-offs.
    pub cutoffs: Cutoffs,
    /// How they were chosen.
    pub cutoff_method: String,
    /// Results at each cut-off.
    pub at_cutoffs: Vec<AtCutoff>,
    /// Readers against the truth.
    pub readers: Vec<ReaderResult>,
    /// Every pair of raters.
    pub agreement: Vec<PairAgreement>,
    /// Weighted kappa on joint grades, every pair of readers with grades.
    pub grade_agreement: Vec<GradeAgreement>,
    /// Fleiss' kappa, with three or more readers.
    pub fleiss: Option<FleissResult>,
    /// The model on the readers' disagreement subset.
    pub disagreement: Option<DisagreementSubset>,
    /// DeLong test against a second model.
    pub comparison: Option<(String, DelongTest)>,
    /// Confidence level.
    pub level: f64,
    /// Seed of the resampling.
    pub seed: u64,
}

/// Counts finished resamples against the total an analysis will draw.
struct Work<'a> {
    total: usize,
    done: AtomicUsize,
    report: &'a (dyn Fn(usize, usize) + Sync),
}

impl Work<'_> {
    fn tick(&self, n: usize) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        (self.report)(done.min(self.total), self.total);
    }
}

fn kappa_ci(
    a: &[bool],
    b: &[bool],
    s: &Settings,
    salt: u64,
    work: &Work<'_>,
) -> (Option<BootstrapEstimate>, Option<String>) {
    match bootstrap::table_with(
        &binary_table(a, b),
        binary_kappa_table,
        s.kappa_resamples,
        s.level,
        s.seed.wrapping_add(salt),
        &|n| work.tick(n),
    ) {
        Ok(k) => (Some(k), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Cut-offs by repeated stratified cross-validation where each class has a case for every fold;
/// otherwise chosen directly on the whole set, saying why (a tiny set still gets its AUC, intervals and
/// kappa rather than nothing).
fn cv_or_direct(y: &[bool], p: &[f64], s: &Settings) -> Result<(Cutoffs, String), StatsError> {
    let (folds, repeats) = s.cv;
    let pos = y.iter().filter(|&&v| v).count();
    let neg = y.len() - pos;
    if pos >= folds && neg >= folds {
        let c = cutoffs::cross_validated(y, p, s.targets, folds, repeats, s.seed)?;
        return Ok((
            c,
            format!("by {repeats}× repeated stratified {folds}-fold cross-validation"),
        ));
    }
    let c = cutoffs::choose_all(y, p, s.targets)?;
    Ok((
        c,
        format!(
            "directly, without cross-validation: too few cases for {folds}-fold cross-validation \
             ({pos} positive, {neg} negative; {folds} of each needed)"
        ),
    ))
}

/// Runs the analysis.
pub fn analyse(data: &Data, s: &Settings) -> Result<Analysis, StatsError> {
    analyse_with(data, s, &|_, _| {})
}

/// [`analyse`], reporting `(resamples done, resamples in all)` as the bootstraps run (on all threads).
pub fn analyse_with(
    data: &Data,
    s: &Settings,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Analysis, StatsError> {
    let (y, p) = (&data.truth, &data.scores);
    let readers_n = data
        .readers
        .iter()
        .map(|r| r.reader.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    // Kappa intervals: the model at three cut-offs against the truth, then every pair of raters
    // (the truth, each reader, the model at each cut-off).
    let raters_n = 1 + readers_n + 3;
    let work = Work {
        total: s.auc_resamples + s.kappa_resamples * (3 + raters_n * (raters_n - 1) / 2),
        done: AtomicUsize::new(0),
        report: progress,
    };
    let auc_delong = delong::auc_ci(y, p, s.level)?;
    let auc_bootstrap =
        bootstrap::auc_with(y, p, s.auc_resamples, s.level, s.seed, &|n| work.tick(n))?;
    let (cutoffs, cutoff_method) = match &s.cutoffs {
        CutoffSource::Given(c) => (*c, "given by the user".to_string()),
        CutoffSource::ModelCard(c) => (
            *c,
            "the model card's, chosen on the model's validation set".to_string(),
        ),
        CutoffSource::Validation(vy, vp) => {
            let (c, how) = cv_or_direct(vy, vp, s)?;
            (
                c,
                format!(
                    "chosen on the validation set ({} cases) {how} (sensitivity ≥ {}, Youden, specificity ≥ {}), \
                     applied unchanged here",
                    vy.len(),
                    s.targets.sensitivity,
                    s.targets.specificity
                ),
            )
        }
        CutoffSource::ThisSet => {
            let (c, how) = cv_or_direct(y, p, s)?;
            (
                c,
                format!(
                    "chosen on this data set {how} (sensitivity ≥ {}, Youden, specificity ≥ {}); optimistic, \
                     prefer --cutoffs-from a validation set",
                    s.targets.sensitivity, s.targets.specificity
                ),
            )
        }
    };
    let mut at_cutoffs = Vec::new();
    let mut model_calls: Vec<(String, Vec<bool>)> = Vec::new();
    for (i, (name, c)) in cutoffs.named().into_iter().enumerate() {
        let calls: Vec<bool> = p.iter().map(|&v| v >= c).collect();
        let confusion = ConfusionMatrix::from_calls(y, &calls)?;
        at_cutoffs.push(AtCutoff {
            name: name.to_string(),
            cutoff: c,
            confusion,
            metrics: confusion.metrics(s.level),
            kappa: kappa_ci(y, &calls, s, 100 + i as u64, &work).0,
        });
        model_calls.push((format!("model@{name}"), calls));
    }

    // Reader calls by case.
    let index: BTreeMap<&str, usize> = data
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let reader_names: BTreeSet<&str> = data.readers.iter().map(|r| r.reader.as_str()).collect();
    let mut calls_by_reader: BTreeMap<&str, Vec<Option<bool>>> = reader_names
        .iter()
        .map(|&r| (r, vec![None; data.cases.len()]))
        .collect();
    let mut grades_by_reader: BTreeMap<&str, Vec<Option<(u8, u8)>>> = reader_names
        .iter()
        .map(|&r| (r, vec![None; data.cases.len()]))
        .collect();
    for row in &data.readers {
        if let Some(&i) = index.get(row.case.as_str()) {
            if let Some(v) = calls_by_reader.get_mut(row.reader.as_str()) {
                v[i] = row.label;
            }
            if let (Some(l), Some(r), Some(g)) = (
                row.left,
                row.right,
                grades_by_reader.get_mut(row.reader.as_str()),
            ) {
                g[i] = Some((l, r));
            }
        }
    }
    let readers = calls_by_reader
        .iter()
        .map(|(name, calls)| {
            let (t, c): (Vec<bool>, Vec<bool>) = y
                .iter()
                .zip(calls)
                .filter_map(|(&t, c)| c.map(|c| (t, c)))
                .unzip();
            let confusion = ConfusionMatrix::from_calls(&t, &c)?;
            Ok(ReaderResult {
                reader: name.to_string(),
                n: t.len(),
                confusion,
                metrics: confusion.metrics(s.level),
            })
        })
        .collect::<Result<Vec<_>, StatsError>>()?;

    // Every pair of raters: reference, readers, model at each cut-off.
    let mut raters: Vec<(String, Vec<Option<bool>>)> =
        vec![("reference".into(), y.iter().map(|&v| Some(v)).collect())];
    raters.extend(
        calls_by_reader
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone())),
    );
    raters.extend(
        model_calls
            .iter()
            .map(|(n, c)| (n.clone(), c.iter().map(|&v| Some(v)).collect())),
    );
    let mut agreement = Vec::new();
    for i in 0..raters.len() {
        for j in i + 1..raters.len() {
            let (a, b): (Vec<bool>, Vec<bool>) = raters[i]
                .1
                .iter()
                .zip(&raters[j].1)
                .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
                .unzip();
            let (kappa, note) = if a.is_empty() {
                work.tick(s.kappa_resamples);
                (None, Some("no case rated by both".into()))
            } else {
                kappa_ci(&a, &b, s, (i * 1000 + j) as u64, &work)
            };
            agreement.push(PairAgreement {
                a: raters[i].0.clone(),
                b: raters[j].0.clone(),
                n: a.len(),
                agreement: percent_agreement(&a, &b).ok(),
                pabak: pabak(&a, &b).ok(),
                kappa,
                note,
            });
        }
    }

    type Grades = Vec<Option<(u8, u8)>>;
    let graders: Vec<(&&str, &Grades)> = grades_by_reader
        .iter()
        .filter(|(_, g)| g.iter().any(Option::is_some))
        .collect();
    let mut grade_agreement = Vec::new();
    for i in 0..graders.len() {
        for j in i + 1..graders.len() {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for (x, yv) in graders[i].1.iter().zip(graders[j].1) {
                if let (Some(x), Some(yv)) = (x, yv) {
                    a.extend([usize::from(x.0), usize::from(x.1)]);
                    b.extend([usize::from(yv.0), usize::from(yv.1)]);
                }
            }
            grade_agreement.push(GradeAgreement {
                a: graders[i].0.to_string(),
                b: graders[j].0.to_string(),
                joints: a.len(),
                linear: cohen_kappa(&a, &b, 5, Weights::Linear).ok(),
                quadratic: cohen_kappa(&a, &b, 5, Weights::Quadratic).ok(),
            });
        }
    }

    let fleiss = (calls_by_reader.len() >= 3).then(|| {
        let table: Vec<Vec<u64>> = (0..data.cases.len())
            .filter_map(|i| {
                let calls: Option<Vec<bool>> = calls_by_reader.values().map(|c| c[i]).collect();
                calls.map(|c| {
                    let pos = c.iter().filter(|&&v| v).count() as u64;
                    vec![c.len() as u64 - pos, pos]
                })
            })
            .collect();
        FleissResult {
            readers: calls_by_reader.keys().map(|s| s.to_string()).collect(),
            n: table.len(),
            kappa: fleiss_kappa(&table).ok(),
        }
    });

    let disagreement = (calls_by_reader.len() >= 2).then(|| {
        let subset: Vec<usize> = (0..data.cases.len())
            .filter(|&i| {
                let calls: Vec<bool> = calls_by_reader.values().filter_map(|c| c[i]).collect();
                calls.len() >= 2 && calls.iter().any(|&c| c != calls[0])
            })
            .collect();
        DisagreementSubset {
            n: subset.len(),
            per_cutoff: model_calls
                .iter()
                .map(|(name, calls)| {
                    let pos = subset.iter().filter(|&&i| calls[i]).count();
                    let agree = subset.iter().filter(|&&i| calls[i] == y[i]).count();
                    (
                        name.trim_start_matches("model@").to_string(),
                        pos,
                        subset.len() - pos,
                        agree,
                    )
                })
                .collect(),
        }
    });

    let comparison = match &data.comparison {
        Some((name, other)) => Some((name.clone(), delong::compare(y, p, other)?)),
        None => None,
    };
    let positives = y.iter().filter(|&&v| v).count();
    Ok(Analysis {
        n: y.len(),
        positives,
        negatives: y.len() - positives,
        excluded_unlabelled: data.excluded_unlabelled,
        auc_delong,
        auc_bootstrap,
        average_precision: roc::average_precision(y, p)?,
        roc: roc::roc_curve(y, p, true)?,
        pr: roc::pr_curve(y, p)?,
        cutoffs,
        cutoff_method,
        at_cutoffs,
        readers,
        agreement,
        grade_agreement,
        fleiss,
        disagreement,
        comparison,
        level: s.level,
        seed: s.seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_every_resample_once() {
        let n = 120;
        let data = Data {
            cases: (0..n).map(|i| format!("C{i}")).collect(),
            truth: (0..n).map(|i| i % 3 == 0).collect(),
            scores: (0..n)
                .map(|i| ((i * 37) % 100) as f64 / 100.0 + if i % 3 == 0 { 0.2 } else { 0.0 })
                .collect(),
            comparison: None,
            readers: (0..n)
                .flat_map(|i| {
                    ["ann", "bob"].map(|r| ReaderRow {
                        case: format!("C{i}"),
                        reader: r.into(),
                        label: Some((i * (r.len() + 5)) % 4 == 0),
                        left: None,
                        right: None,
                    })
                })
                .collect(),
            excluded_unlabelled: 0,
        };
        let s = Settings {
            auc_resamples: 200,
            kappa_resamples: 50,
            ..Settings::default()
        };
        let last = std::sync::Mutex::new((0usize, 0usize));
        let a = analyse_with(&data, &s, &|done, total| {
            let mut l = last.lock().unwrap();
            *l = (l.0.max(done), total);
        })
        .unwrap();
        // 3 kappas at the cut-offs and the pairs among truth, 2 readers and 3 cut-offs (15).
        let (done, total) = last.into_inner().unwrap();
        assert_eq!(total, 200 + 50 * (3 + 15));
        assert_eq!(done, total);
        assert_eq!(a, analyse(&data, &s).unwrap(), "progress changes nothing");
    }
}
