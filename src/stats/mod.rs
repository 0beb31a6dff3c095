//! The seed study's statistics, pure functions over slices (no I/O): ROC and precision–recall curves
//! with scikit-learn's conventions, AUC with DeLong and bootstrap confidence intervals, the DeLong test of
//! two correlated AUCs, cut-offs (Youden, sensitivity/specificity targets, repeated cross-validation),
//! confusion matrices with Wilson intervals, and agreement (Cohen's kappa plain and weighted, PABAK,
//! Fleiss' kappa) with seeded bootstrap intervals.

pub mod agreement;
pub mod bootstrap;
pub mod confusion;
pub mod cutoffs;
pub mod delong;
pub mod mrmc;
pub mod roc;

/// Why a statistic cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// Only one class among the labels: ROC/AUC and sensitivity/specificity are undefined.
    #[error(
        "only {present} cases among the {n} labels: {what} needs both positive and negative cases"
    )]
    OneClass {
        /// What was asked for.
        what: &'static str,
        /// "positive" or "negative".
        present: &'static str,
        /// Number of labels.
        n: usize,
    },
    /// Inputs of different lengths or empty.
    #[error("{0}")]
    BadInput(String),
    /// A score is NaN or infinite.
    #[error("score at position {index} is not a finite number ({value})")]
    NonFinite {
        /// 0-based position.
        index: usize,
        /// The value.
        value: f64,
    },
    /// The statistic is undefined for these data (e.g. kappa when expected agreement is 1).
    #[error("{0}")]
    Undefined(String),
}

/// Checks labels and scores: same non-zero length, finite scores, both classes present.
pub(crate) fn check_binary(
    labels: &[bool],
    scores: &[f64],
    what: &'static str,
) -> Result<(usize, usize), StatsError> {
    if labels.len() != scores.len() {
        return Err(StatsError::BadInput(format!(
            "{what}: {} labels but {} scores",
            labels.len(),
            scores.len()
        )));
    }
    if labels.is_empty() {
        return Err(StatsError::BadInput(format!("{what}: no cases")));
    }
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(StatsError::NonFinite { index, value });
    }
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return Err(StatsError::OneClass {
            what,
            present: if pos == 0 { "negative" } else { "positive" },
            n: labels.len(),
        });
    }
    Ok((pos, neg))
}

/// Scores of the positive and of the negative cases.
pub(crate) fn split_by_class(labels: &[bool], scores: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let pick = |class: bool| {
        labels
            .iter()
            .zip(scores)
            .filter(|(l, _)| **l == class)
            .map(|(_, s)| *s)
            .collect()
    };
    (pick(true), pick(false))
}

/// The standard normal quantile for a two-sided interval of the given level (e.g. 0.95 → 1.959964).
pub fn z_for_level(level: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(0.5 + level / 2.0)
}

/// Two-sided p-value of a standard normal statistic.
pub fn two_sided_p(z: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    2.0 * (1.0 - Normal::standard().cdf(z.abs()))
}

/// A point estimate with a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// Point estimate.
    pub value: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}
