//! Confusion matrices at a cut-off, and sensitivity, specificity, PPV, NPV and accuracy with Wilson
//! score intervals (as statsmodels' `proportion_confint(method="wilson")`).

use super::{Estimate, StatsError, z_for_level};

/// Counts of a binary call against the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ConfusionMatrix {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    pub fn_: u64,
}

/// Wilson score interval of `k` successes in `n` trials; `None` when `n` is 0.
pub fn wilson(k: u64, n: u64, level: f64) -> Option<Estimate> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let z = z_for_level(level);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    Some(Estimate {
        value: p,
        lower: (centre - half).max(0.0),
        upper: (centre + half).min(1.0),
    })
}

/// The metrics of one confusion matrix (each `None` when its denominator is 0).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Sensitivity TP / (TP + FN).
    pub sensitivity: Option<Estimate>,
    /// Specificity TN / (TN + FP).
    pub specificity: Option<Estimate>,
    /// Positive predictive value TP / (TP + FP).
    pub ppv: Option<Estimate>,
    /// Negative predictive value TN / (TN + FN).
    pub npv: Option<Estimate>,
    /// Accuracy (absolute agreement) (TP + TN) / n.
    pub accuracy: Option<Estimate>,
}

impl ConfusionMatrix {
    /// From truth and calls.
    pub fn from_calls(truth: &[bool], calls: &[bool]) -> Result<Self, StatsError> {
        if truth.len() != calls.len() {
            return Err(StatsError::BadInput(format!(
                "{} truths but {} calls",
                truth.len(),
                calls.len()
            )));
        }
        let mut m = Self::default();
        for (&t, &c) in truth.iter().zip(calls) {
            match (t, c) {
                (true, true) => m.tp += 1,
                (false, true) => m.fp += 1,
                (false, false) => m.tn += 1,
                (true, false) => m.fn_ += 1,
            }
        }
        Ok(m)
    }

    /// Calls positive where score ≥ cut-off.
    pub fn at_cutoff(truth: &[bool], scores: &[f64], cutoff: f64) -> Result<Self, StatsError> {
        let calls: Vec<bool> = scores.iter().map(|&s| s >= cutoff).collect();
        Self::from_calls(truth, &calls)
    }

    /// Number of cases.
    pub fn n(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// Metrics with Wilson intervals at `level` (e.g. 0.95).
    pub fn metrics(&self, level: f64) -> Metrics {
        Metrics {
            sensitivity: wilson(self.tp, self.tp + self.fn_, level),
            specificity: wilson(self.tn, self.tn + self.fp, level),
            ppv: wilson(self.tp, self.tp + self.fp, level),
            npv: wilson(self.tn, self.tn + self.fn_, level),
            accuracy: wilson(self.tp + self.tn, self.n(), level),
        }
    }

    /// Cohen's kappa between the call and the truth.
    pub fn kappa(&self) -> Result<f64, StatsError> {
        let n = self.n() as f64;
        if n == 0.0 {
            return Err(StatsError::BadInput(
                "kappa of an empty confusion matrix".into(),
            ));
        }
        let po = (self.tp + self.tn) as f64 / n;
        let truth_pos = (self.tp + self.fn_) as f64 / n;
        let call_pos = (self.tp + self.fp) as f64 / n;
        let pe = truth_pos * call_pos + (1.0 - truth_pos) * (1.0 - call_pos);
        if pe >= 1.0 {
            return Err(StatsError::Undefined(
                "kappa is undefined: expected agreement is 1".into(),
            ));
        }
        Ok((po - pe) / (1.0 - pe))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_known_value() {
        // 132/150 at 95 %: statsmodels proportion_confint(132, 150, method="wilson") = (0.81829, 0.92273).
        let e = wilson(132, 150, 0.95).unwrap();
        assert!(
            (e.lower - 0.818_291_645).abs() < 1e-8 && (e.upper - 0.922_730_969).abs() < 1e-8,
            "{e:?}"
        );
        assert!(wilson(0, 0, 0.95).is_none());
        let zero = wilson(0, 10, 0.95).unwrap();
        assert!(zero.lower.abs() < 1e-12);
    }
}
