//! DeLong's method: the variance of an AUC and the covariance of two AUCs on the same cases, with the
//! fast midrank algorithm of Sun & Xu (IEEE Signal Processing Letters 21(11), 2014), which gives exactly
//! the structural components of DeLong, DeLong & Clarke-Pearson (Biometrics 44(3), 1988).

use super::{Estimate, StatsError, check_binary, two_sided_p, z_for_level};

/// Midranks (1-based, ties averaged) of `values`.
fn midranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Structural components: V10 (one per positive) and V01 (one per negative).
fn components(labels: &[bool], scores: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (pos, neg) = super::split_by_class(labels, scores);
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let all: Vec<f64> = pos.iter().chain(&neg).copied().collect();
    let r_all = midranks(&all);
    let r_pos = midranks(&pos);
    let r_neg = midranks(&neg);
    let v10 = (0..pos.len()).map(|i| (r_all[i] - r_pos[i]) / n).collect();
    let v01 = (0..neg.len())
        .map(|j| 1.0 - (r_all[pos.len() + j] - r_neg[j]) / m)
        .collect();
    (v10, v01)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample covariance (n − 1 in the denominator); 0 for a single value.
fn cov(a: &[f64], b: &[f64]) -> f64 {
    if a.len() < 2 {
        return 0.0;
    }
    let (ma, mb) = (mean(a), mean(b));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (a.len() - 1) as f64
}

/// AUC and its DeLong variance.
pub fn auc_variance(labels: &[bool], scores: &[f64]) -> Result<(f64, f64), StatsError> {
    check_binary(labels, scores, "DeLong's AUC variance")?;
    let (v10, v01) = components(labels, scores);
    let var = cov(&v10, &v10) / v10.len() as f64 + cov(&v01, &v01) / v01.len() as f64;
    Ok((mean(&v10), var))
}

/// AUC with a DeLong confidence interval (normal approximation, clipped to [0, 1], as pROC does).
pub fn auc_ci(labels: &[bool], scores: &[f64], level: f64) -> Result<Estimate, StatsError> {
    let (auc, var) = auc_variance(labels, scores)?;
    let half = z_for_level(level) * var.sqrt();
    Ok(Estimate {
        value: auc,
        lower: (auc - half).max(0.0),
        upper: (auc + half).min(1.0),
    })
}

/// The DeLong test of two correlated AUCs (two scores on the same cases).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DelongTest {
    /// AUC of the first score.
    pub auc_a: f64,
    /// AUC of the second score.
    pub auc_b: f64,
    /// Variance of the difference.
    pub variance: f64,
    /// z statistic of (a − b).
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Compares two scores of the same cases.
pub fn compare(labels: &[bool], a: &[f64], b: &[f64]) -> Result<DelongTest, StatsError> {
    check_binary(labels, a, "the DeLong test")?;
    check_binary(labels, b, "the DeLong test")?;
    let (a10, a01) = components(labels, a);
    let (b10, b01) = components(labels, b);
    let (m, n) = (a10.len() as f64, a01.len() as f64);
    let var_a = cov(&a10, &a10) / m + cov(&a01, &a01) / n;
    let var_b = cov(&b10, &b10) / m + cov(&b01, &b01) / n;
    let cov_ab = cov(&a10, &b10) / m + cov(&a01, &b01) / n;
    let variance = var_a + var_b - 2.0 * cov_ab;
    let (auc_a, auc_b) = (mean(&a10), mean(&b10));
    let z = if variance > 0.0 {
        (auc_a - auc_b) / variance.sqrt()
    } else if auc_a == auc_b {
        0.0
    } else {
        f64::INFINITY.copysign(auc_a - auc_b)
    };
    Ok(DelongTest {
        auc_a,
        auc_b,
        variance,
        z,
        p: two_sided_p(z),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midranks_average_ties() {
        assert_eq!(midranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn auc_agrees_with_mann_whitney() {
        let y = [true, false, true, false, true, false, false];
        let s = [0.9, 0.3, 0.4, 0.4, 0.8, 0.1, 0.85];
        let (auc, var) = auc_variance(&y, &s).unwrap();
        assert!((auc - super::super::roc::roc_auc(&y, &s).unwrap()).abs() < 1e-12);
        assert!(var > 0.0);
        let t = compare(&y, &s, &s).unwrap();
        assert_eq!((t.z, t.p), (0.0, 1.0));
    }
}
