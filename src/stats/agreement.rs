//! Agreement between raters: percentage agreement, Cohen's kappa (plain, linear- and quadratic-weighted,
//! as scikit-learn's `cohen_kappa_score` with explicit labels), PABAK, and Fleiss' kappa for several raters
//! (as statsmodels' `fleiss_kappa`).

use super::StatsError;

/// Weighting of disagreements for ordinal categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Weights {
    /// Every disagreement counts fully (plain kappa).
    None,
    /// Disagreement weighted by |i − j|.
    Linear,
    /// Disagreement weighted by (i − j)².
    Quadratic,
}

/// Cohen's kappa of two raters over categories `0..k` (each rating must be `< k`).
pub fn cohen_kappa(
    a: &[usize],
    b: &[usize],
    k: usize,
    weights: Weights,
) -> Result<f64, StatsError> {
    if a.len() != b.len() || a.is_empty() {
        return Err(StatsError::BadInput(format!(
            "kappa needs two equally long, non-empty rating lists ({} and {})",
            a.len(),
            b.len()
        )));
    }
    if let Some(bad) = a.iter().chain(b).find(|&&x| x >= k) {
        return Err(StatsError::BadInput(format!(
            "rating {bad} outside the {k} categories"
        )));
    }
    let mut observed = vec![0.0f64; k * k];
    for (&x, &y) in a.iter().zip(b) {
        observed[x * k + y] += 1.0;
    }
    kappa_from_table(&observed, k, weights)
}

/// Cohen's kappa from a `k × k` table of counts (row: the first rater's category, column: the second's).
pub fn kappa_from_table(observed: &[f64], k: usize, weights: Weights) -> Result<f64, StatsError> {
    if observed.len() != k * k {
        return Err(StatsError::BadInput(format!(
            "a {k}×{k} table needs {} counts, not {}",
            k * k,
            observed.len()
        )));
    }
    let n: f64 = observed.iter().sum();
    if n <= 0.0 {
        return Err(StatsError::BadInput("kappa of an empty table".into()));
    }
    let row: Vec<f64> = (0..k)
        .map(|i| (0..k).map(|j| observed[i * k + j]).sum())
        .collect();
    let col: Vec<f64> = (0..k)
        .map(|j| (0..k).map(|i| observed[i * k + j]).sum())
        .collect();
    let w = |i: usize, j: usize| -> f64 {
        let d = (i as f64 - j as f64).abs();
        match weights {
            Weights::None => f64::from(u8::from(i != j)),
            Weights::Linear => d,
            Weights::Quadratic => d * d,
        }
    };
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..k {
        for j in 0..k {
            num += w(i, j) * observed[i * k + j];
            den += w(i, j) * row[i] * col[j] / n;
        }
    }
    if den == 0.0 {
        return Err(StatsError::Undefined(
            "kappa is undefined: both raters used a single category, so chance agreement is 1"
                .into(),
        ));
    }
    Ok(1.0 - num / den)
}

/// The 2×2 table of two binary raters: `[no/no, no/yes, yes/no, yes/yes]`.
pub fn binary_table(a: &[bool], b: &[bool]) -> [u64; 4] {
    let mut t = [0u64; 4];
    for (&x, &y) in a.iter().zip(b) {
        t[usize::from(x) * 2 + usize::from(y)] += 1;
    }
    t
}

/// Cohen's kappa of a 2×2 table ([`binary_table`]).
pub fn binary_kappa_table(t: &[u64; 4]) -> Result<f64, StatsError> {
    let observed = t.map(|c| c as f64);
    kappa_from_table(&observed, 2, Weights::None)
}

/// Cohen's kappa of two binary raters.
pub fn binary_kappa(a: &[bool], b: &[bool]) -> Result<f64, StatsError> {
    let to = |v: &[bool]| v.iter().map(|&x| usize::from(x)).collect::<Vec<_>>();
    cohen_kappa(&to(a), &to(b), 2, Weights::None)
}

/// Proportion of cases on which two raters agree.
pub fn percent_agreement<T: PartialEq>(a: &[T], b: &[T]) -> Result<f64, StatsError> {
    if a.len() != b.len() || a.is_empty() {
        return Err(StatsError::BadInput(
            "agreement needs two equally long, non-empty rating lists".into(),
        ));
    }
    Ok(a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64)
}

/// Prevalence- and bias-adjusted kappa for two binary raters: 2·p₀ − 1 (Byrt, Bishop & Carlin 1993).
pub fn pabak(a: &[bool], b: &[bool]) -> Result<f64, StatsError> {
    Ok(2.0 * percent_agreement(a, b)? - 1.0)
}

/// Fleiss' kappa from a table of counts: one row per subject, one column per category, every row summing
/// to the same number of raters (≥ 2).
pub fn fleiss_kappa(table: &[Vec<u64>]) -> Result<f64, StatsError> {
    let Some(first) = table.first() else {
        return Err(StatsError::BadInput(
            "Fleiss' kappa needs at least one subject".into(),
        ));
    };
    let raters: u64 = first.iter().sum();
    if raters < 2 {
        return Err(StatsError::BadInput(
            "Fleiss' kappa needs at least two ratings per subject".into(),
        ));
    }
    if let Some(i) = table
        .iter()
        .position(|r| r.iter().sum::<u64>() != raters || r.len() != first.len())
    {
        return Err(StatsError::BadInput(format!(
            "Fleiss' kappa: subject {} has a different number of ratings or categories than the first",
            i + 1
        )));
    }
    let (n_sub, r) = (table.len() as f64, raters as f64);
    let k = first.len();
    let p_j: Vec<f64> = (0..k)
        .map(|j| table.iter().map(|row| row[j] as f64).sum::<f64>() / (n_sub * r))
        .collect();
    let p_bar = table
        .iter()
        .map(|row| (row.iter().map(|&c| (c * c) as f64).sum::<f64>() - r) / (r * (r - 1.0)))
        .sum::<f64>()
        / n_sub;
    let p_e: f64 = p_j.iter().map(|p| p * p).sum();
    if p_e >= 1.0 {
        return Err(StatsError::Undefined(
            "Fleiss' kappa is undefined: every rating is in one category".into(),
        ));
    }
    Ok((p_bar - p_e) / (1.0 - p_e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_study_validation_kappa() {
        // Bressem et al. 2021, validation set, balanced cut-off: 132 TP, 18 FN, 75 TN, 4 FP.
        let truth: Vec<bool> = [vec![true; 150], vec![false; 79]].concat();
        let calls: Vec<bool> = [
            vec![true; 132],
            vec![false; 18],
            vec![false; 75],
            vec![true; 4],
        ]
        .concat();
        let k = binary_kappa(&truth, &calls).unwrap();
        assert!((k - 0.796).abs() < 5e-4, "{k}");
    }

    #[test]
    fn degenerate_kappa() {
        assert!(binary_kappa(&[true, true], &[true, true]).is_err());
        assert!(cohen_kappa(&[0, 5], &[0, 1], 5, Weights::None).is_err());
        assert_eq!(binary_kappa(&[true, false], &[true, false]).unwrap(), 1.0);
        assert_eq!(pabak(&[true, false], &[true, true]).unwrap(), 0.0);
    }
}
