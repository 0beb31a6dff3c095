//! Seeded, reproducible bootstrap confidence intervals (percentile method): the AUC by stratified
//! resampling (positives and negatives resampled separately, as pROC does) and any paired statistic
//! (e.g. kappa) by resampling cases.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Estimate, StatsError, check_binary, roc::roc_auc};

/// A bootstrap result: the estimate, its percentile interval, and how many resamples were usable.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BootstrapEstimate {
    /// Point estimate on the original data and the interval.
    pub estimate: Estimate,
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples where the statistic was undefined (left out of the interval).
    pub undefined: usize,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    // Linear interpolation between order statistics (numpy's default).
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn interval(
    value: f64,
    mut stats: Vec<f64>,
    resamples: usize,
    level: f64,
) -> Result<BootstrapEstimate, StatsError> {
    if stats.is_empty() {
        return Err(StatsError::Undefined(
            "no bootstrap resample gave a defined value".into(),
        ));
    }
    stats.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    Ok(BootstrapEstimate {
        estimate: Estimate {
            value,
            lower: percentile(&stats, alpha),
            upper: percentile(&stats, 1.0 - alpha),
        },
        resamples,
        undefined: resamples - stats.len(),
    })
}

/// AUC with a stratified bootstrap percentile interval.
pub fn auc(
    labels: &[bool],
    scores: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<BootstrapEstimate, StatsError> {
    check_binary(labels, scores, "a bootstrap AUC")?;
    let value = roc_auc(labels, scores)?;
    let (pos, neg) = super::split_by_class(labels, scores);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut y = vec![true; pos.len()];
    y.extend(std::iter::repeat_n(false, neg.len()));
    let mut s = vec![0.0; y.len()];
    let mut stats = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for v in s.iter_mut().take(pos.len()) {
            *v = pos[rng.random_range(0..pos.len())];
        }
        for v in s.iter_mut().skip(pos.len()) {
            *v = neg[rng.random_range(0..neg.len())];
        }
        stats.push(roc_auc(&y, &s)?);
    }
    interval(value, stats, resamples, level)
}

/// A statistic of paired ratings with a case-resampling bootstrap percentile interval; resamples where
/// the statistic is undefined are counted and left out.
pub fn paired<T: Clone>(
    a: &[T],
    b: &[T],
    statistic: impl Fn(&[T], &[T]) -> Result<f64, StatsError>,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<BootstrapEstimate, StatsError> {
    let value = statistic(a, b)?;
    let n = a.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats = Vec::with_capacity(resamples);
    let (mut ra, mut rb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..resamples {
        ra.clear();
        rb.clear();
        for _ in 0..n {
            let i = rng.random_range(0..n);
            ra.push(a[i].clone());
            rb.push(b[i].clone());
        }
        if let Ok(v) = statistic(&ra, &rb) {
            stats.push(v);
        }
    }
    interval(value, stats, resamples, level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::agreement::binary_kappa;

    #[test]
    fn reproducible_and_contains_the_estimate() {
        let y: Vec<bool> = (0..60).map(|i| i % 3 == 0).collect();
        let s: Vec<f64> = (0..60)
            .map(|i| ((i * 37) % 60) as f64 / 60.0 + if i % 3 == 0 { 0.3 } else { 0.0 })
            .collect();
        let a = auc(&y, &s, 500, 0.95, 7).unwrap();
        let b = auc(&y, &s, 500, 0.95, 7).unwrap();
        assert_eq!(a, b);
        assert!(a.estimate.lower <= a.estimate.value && a.estimate.value <= a.estimate.upper);
        let calls: Vec<bool> = s.iter().map(|&v| v > 0.6).collect();
        let k = paired(&y, &calls, binary_kappa, 1000, 0.95, 1).unwrap();
        assert!(k.estimate.lower < k.estimate.upper);
        assert_ne!(
            paired(&y, &calls, binary_kappa, 1000, 0.95, 2).unwrap(),
            k,
            "the seed matters"
        );
    }
}
