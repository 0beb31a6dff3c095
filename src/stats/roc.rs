//! ROC and precision–recall curves, AUC and average precision, with scikit-learn's definitions
//! (`roc_curve`, `roc_auc_score`, `precision_recall_curve`, `average_precision_score`): a case is called
//! positive when its score is ≥ the threshold; tied scores move together.

use super::{StatsError, check_binary};

/// Cumulative true and false positives at each distinct score, highest first (scikit-learn's
/// `_binary_clf_curve`): returns (fps, tps, thresholds).
fn binary_clf_curve(labels: &[bool], scores: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Stable sort, descending score.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut fps, mut tps, mut thr) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_value = k + 1 == order.len() || scores[order[k + 1]] != scores[i];
        if last_of_value {
            fps.push(fp);
            tps.push(tp);
            thr.push(scores[i]);
        }
    }
    (fps, tps, thr)
}

/// A ROC curve: false and true positive rates at decreasing thresholds, starting at (0, 0) with an
/// infinite threshold.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RocCurve {
    /// False positive rate (1 − specificity).
    pub fpr: Vec<f64>,
    /// True positive rate (sensitivity).
    pub tpr: Vec<f64>,
    /// Thresholds (score ≥ threshold is positive); the first is +∞.
    pub thresholds: Vec<f64>,
}

/// The ROC curve; `drop_intermediate` removes collinear points as scikit-learn's default does.
pub fn roc_curve(
    labels: &[bool],
    scores: &[f64],
    drop_intermediate: bool,
) -> Result<RocCurve, StatsError> {
    check_binary(labels, scores, "a ROC curve")?;
    let (mut fps, mut tps, mut thr) = binary_clf_curve(labels, scores);
    if drop_intermediate && fps.len() > 2 {
        let keep: Vec<usize> = (0..fps.len())
            .filter(|&i| {
                i == 0
                    || i == fps.len() - 1
                    || (fps[i + 1] - 2.0 * fps[i] + fps[i - 1]) != 0.0
                    || (tps[i + 1] - 2.0 * tps[i] + tps[i - 1]) != 0.0
            })
            .collect();
        fps = keep.iter().map(|&i| fps[i]).collect();
        tps = keep.iter().map(|&i| tps[i]).collect();
        thr = keep.iter().map(|&i| thr[i]).collect();
    }
    let (p, n) = (tps[tps.len() - 1], fps[fps.len() - 1]);
    let mut curve = RocCurve {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    curve.fpr.extend(fps.iter().map(|f| f / n));
    curve.tpr.extend(tps.iter().map(|t| t / p));
    curve.thresholds.extend(thr);
    Ok(curve)
}

/// Area under the ROC curve (trapezoidal over all thresholds; equals the Mann–Whitney statistic with
/// ties counted one half).
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64, StatsError> {
    let c = roc_curve(labels, scores, false)?;
    Ok(c.fpr
        .windows(2)
        .zip(c.tpr.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0)
        .sum())
}

/// A precision–recall curve, scikit-learn's layout: recall decreasing, ending at (recall 0, precision 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PrCurve {
    /// Precision (PPV).
    pub precision: Vec<f64>,
    /// Recall (sensitivity).
    pub recall: Vec<f64>,
    /// Thresholds, increasing; one fewer than the points.
    pub thresholds: Vec<f64>,
}

/// The precision–recall curve.
pub fn pr_curve(labels: &[bool], scores: &[f64]) -> Result<PrCurve, StatsError> {
    check_binary(labels, scores, "a precision-recall curve")?;
    let (fps, tps, thr) = binary_clf_curve(labels, scores);
    let p = tps[tps.len() - 1];
    let mut precision: Vec<f64> = tps
        .iter()
        .zip(&fps)
        .map(|(t, f)| if t + f > 0.0 { t / (t + f) } else { 0.0 })
        .rev()
        .collect();
    let mut recall: Vec<f64> = tps.iter().map(|t| t / p).rev().collect();
    precision.push(1.0);
    recall.push(0.0);
    Ok(PrCurve {
        precision,
        recall,
        thresholds: thr.into_iter().rev().collect(),
    })
}

/// Average precision with scikit-learn's step definition: Σ (Rₙ − Rₙ₋₁) Pₙ (no interpolation).
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Result<f64, StatsError> {
    let c = pr_curve(labels, scores)?;
    Ok(-c
        .recall
        .windows(2)
        .zip(&c.precision)
        .map(|(r, p)| (r[1] - r[0]) * p)
        .sum::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_small_case() {
        // scikit-learn docs example: y = [0, 0, 1, 1], scores = [0.1, 0.4, 0.35, 0.8].
        let y = [false, false, true, true];
        let s = [0.1, 0.4, 0.35, 0.8];
        let c = roc_curve(&y, &s, true).unwrap();
        assert_eq!(c.fpr, vec![0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(c.tpr, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(&c.thresholds[1..], &[0.8, 0.4, 0.35, 0.1]);
        assert_eq!(roc_auc(&y, &s).unwrap(), 0.75);
        // average_precision_score docs: 0.8333…
        assert!((average_precision(&y, &s).unwrap() - 0.833_333_333_333_333_3).abs() < 1e-12);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(matches!(
            roc_auc(&[true, true], &[0.1, 0.2]),
            Err(StatsError::OneClass { .. })
        ));
        assert!(matches!(
            roc_auc(&[true, false], &[f64::NAN, 0.2]),
            Err(StatsError::NonFinite { .. })
        ));
        assert!(roc_auc(&[], &[]).is_err());
        assert_eq!(
            roc_auc(&[true, false], &[0.5, 0.5]).unwrap(),
            0.5,
            "all tied"
        );
        assert_eq!(
            roc_auc(&[true, false], &[0.9, 0.1]).unwrap(),
            1.0,
            "perfect, n = 2"
        );
        assert_eq!(roc_auc(&[true, false], &[0.1, 0.9]).unwrap(), 0.0);
    }
}
