//! The seed study's three cut-offs on the model's probability: one favouring sensitivity, the balanced one
//! (Youden's J = sensitivity + specificity − 1 at its maximum) and one favouring specificity. They can be
//! chosen on one set, by repeated stratified k-fold cross-validation on it (choose on the training folds,
//! average over folds and repeats, as the study did), or given by the user, and are then applied
//! unchanged to another set. A case is called positive when its probability is ≥ the cut-off.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::roc::roc_curve;
use super::{StatsError, check_binary};

/// How one cut-off is chosen.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CutoffRule {
    /// Maximum of sensitivity + specificity (the highest such threshold on ties).
    Youden,
    /// The highest threshold whose sensitivity is at least this (best specificity at that sensitivity).
    MinSensitivity(f64),
    /// The lowest threshold whose specificity is at least this (best sensitivity at that specificity).
    MinSpecificity(f64),
}

/// Targets of the two one-sided cut-offs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Targets {
    /// Minimum sensitivity of the sensitivity-favouring cut-off.
    pub sensitivity: f64,
    /// Minimum specificity of the specificity-favouring cut-off.
    pub specificity: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            sensitivity: 0.95,
            specificity: 0.95,
        }
    }
}

/// The three cut-offs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cutoffs {
    /// Favouring sensitivity (lowest).
    pub sensitive: f64,
    /// Balanced (Youden).
    pub balanced: f64,
    /// Favouring specificity (highest).
    pub specific: f64,
}

impl Cutoffs {
    /// Checked cut-offs: probabilities in [0, 1], in order sensitive ≤ balanced ≤ specific (a more
    /// sensitive call needs a lower cut-off); the error says which rule they break.
    pub fn new(sensitive: f64, balanced: f64, specific: f64) -> Result<Self, String> {
        let c = Self {
            sensitive,
            balanced,
            specific,
        };
        c.check().map(|()| c)
    }

    /// Parses `SENSITIVE,BALANCED,SPECIFIC` and checks it ([`Cutoffs::new`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: Vec<f64> = text
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{text:?}: expected three numbers SENSITIVE,BALANCED,SPECIFIC"))?;
        match v[..] {
            [sensitive, balanced, specific] => {
                Self::new(sensitive, balanced, specific).map_err(|e| format!("{text:?}: {e}"))
            }
            _ => Err(format!(
                "{text:?}: expected three numbers SENSITIVE,BALANCED,SPECIFIC, got {}",
                v.len()
            )),
        }
    }

    /// Whether the cut-offs are probabilities in order (see [`Cutoffs::new`]).
    pub fn check(&self) -> Result<(), String> {
        if let Some((name, v)) = self
            .named()
            .into_iter()
            .find(|(_, v)| !(0.0..=1.0).contains(v))
        {
            return Err(format!(
                "the {name} cut-off {v} is not a probability in [0, 1]"
            ));
        }
        if !(self.sensitive <= self.balanced && self.balanced <= self.specific) {
            return Err(format!(
                "cut-offs out of order: sensitive {} ≤ balanced {} ≤ specific {} must hold (a more \
                 sensitive call uses a lower cut-off)",
                self.sensitive, self.balanced, self.specific
            ));
        }
        Ok(())
    }

    /// The cut-offs as (name, value) pairs, in report order.
    pub fn named(&self) -> [(&'static str, f64); 3] {
        [
            ("sensitive", self.sensitive),
            ("balanced", self.balanced),
            ("specific", self.specific),
        ]
    }
}

/// One cut-off chosen on `labels`/`scores` by `rule`.
pub fn choose(labels: &[bool], scores: &[f64], rule: CutoffRule) -> Result<f64, StatsError> {
    let c = roc_curve(labels, scores, false)?;
    let points = 1..c.thresholds.len(); // skip the +∞ start
    let chosen = match rule {
        CutoffRule::Youden => points
            .max_by(|&a, &b| {
                let (ja, jb) = (c.tpr[a] - c.fpr[a], c.tpr[b] - c.fpr[b]);
                // On ties prefer the earlier (higher) threshold: max_by keeps the last maximum, so compare reversed index.
                ja.total_cmp(&jb).then(b.cmp(&a))
            })
            .map(|i| c.thresholds[i]),
        CutoffRule::MinSensitivity(t) => points
            .clone()
            .find(|&i| c.tpr[i] >= t)
            .map(|i| c.thresholds[i]),
        CutoffRule::MinSpecificity(t) => {
            let last_ok = (0..c.thresholds.len()).rev().find(|&i| 1.0 - c.fpr[i] >= t);
            match last_ok {
                Some(0) | None => {
                    // Only "call nothing positive" reaches the specificity: a cut-off above every score.
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    Some(max.next_up())
                }
                Some(i) => Some(c.thresholds[i]),
            }
        }
    };
    chosen.ok_or_else(|| StatsError::Undefined(format!("no threshold satisfies {rule:?}")))
}

/// The three cut-offs chosen on one set, always in order: the sensitivity-favouring one is never above
/// the balanced one and the specificity-favouring one never below it. A good model's Youden point can
/// already have more than the target specificity (or sensitivity); the target's own threshold would then
/// lie on the other side of it and call more (fewer) cases positive than the balanced cut-off, so the
/// balanced cut-off is taken instead: it meets the target too, with the better other rate.
pub fn choose_all(
    labels: &[bool],
    scores: &[f64],
    targets: Targets,
) -> Result<Cutoffs, StatsError> {
    let balanced = choose(labels, scores, CutoffRule::Youden)?;
    let sensitive = choose(
        labels,
        scores,
        CutoffRule::MinSensitivity(targets.sensitivity),
    )?;
    let specific = choose(
        labels,
        scores,
        CutoffRule::MinSpecificity(targets.specificity),
    )?;
    Ok(Cutoffs {
        sensitive: sensitive.min(balanced),
        balanced,
        specific: specific.max(balanced),
    })
}

/// Repeated stratified k-fold cross-validation of the cut-offs: for every repeat the positives and the
/// negatives are shuffled (seeded) and dealt into `folds` folds; each cut-off is chosen on the other folds
/// (the training folds), and the chosen values are averaged over all folds and repeats.
pub fn cross_validated(
    labels: &[bool],
    scores: &[f64],
    targets: Targets,
    folds: usize,
    repeats: usize,
    seed: u64,
) -> Result<Cutoffs, StatsError> {
    let (pos, neg) = check_binary(labels, scores, "cross-validated cut-offs")?;
    if folds < 2 || repeats == 0 {
        return Err(StatsError::BadInput(format!(
            "cross-validation needs ≥ 2 folds and ≥ 1 repeat ({folds}, {repeats})"
        )));
    }
    if pos < folds || neg < folds {
        return Err(StatsError::BadInput(format!(
            "{folds}-fold cross-validation needs at least {folds} positive and {folds} negative cases ({pos} and {neg})"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut sum, mut count) = ([0.0f64; 3], 0usize);
    for _ in 0..repeats {
        let mut fold_of = vec![0usize; labels.len()];
        for class in [true, false] {
            let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
            idx.shuffle(&mut rng);
            for (k, i) in idx.into_iter().enumerate() {
                fold_of[i] = k % folds;
            }
        }
        for f in 0..folds {
            let (y, s): (Vec<bool>, Vec<f64>) = (0..labels.len())
                .filter(|&i| fold_of[i] != f)
                .map(|i| (labels[i], scores[i]))
                .unzip();
            let c = choose_all(&y, &s, targets)?;
            sum[0] += c.sensitive;
            sum[1] += c.balanced;
            sum[2] += c.specific;
            count += 1;
        }
    }
    let n = count as f64;
    Ok(Cutoffs {
        sensitive: sum[0] / n,
        balanced: sum[1] / n,
        specific: sum[2] / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::confusion::ConfusionMatrix;

    #[test]
    fn rules_on_a_small_set() {
        // scores sorted: positives at 0.9, 0.8, 0.6, 0.3; negatives at 0.7, 0.4, 0.2, 0.1.
        let y = [true, true, false, true, false, true, false, false];
        let s = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1];
        // Youden: at 0.8 J = 0.5; at 0.6 J = 0.75 - 0.25 = 0.5; at 0.3 J = 1 - 0.5 = 0.5 -> highest, 0.8.
        assert_eq!(choose(&y, &s, CutoffRule::Youden).unwrap(), 0.8);
        assert_eq!(
            choose(&y, &s, CutoffRule::MinSensitivity(1.0)).unwrap(),
            0.3
        );
        assert_eq!(
            choose(&y, &s, CutoffRule::MinSpecificity(1.0)).unwrap(),
            0.8
        );
        assert_eq!(
            choose(&y, &s, CutoffRule::MinSpecificity(0.75)).unwrap(),
            0.6
        );
        let all_neg_top = [false, true];
        let c = choose(&all_neg_top, &[0.9, 0.1], CutoffRule::MinSpecificity(1.0)).unwrap();
        assert!(c > 0.9);
    }

    /// A well-separated set whose Youden point has specificity 1 (and sensitivity below the target), and
    /// its mirror whose Youden point has sensitivity 1: the one-sided cut-offs stay on their side of the
    /// balanced one and still meet their targets (the order was broken on a trained phantom model's
    /// validation set: sensitive 0.207, balanced 0.787, specific 0.643).
    #[test]
    fn one_sided_cut_offs_never_cross_the_balanced_one() {
        // 20 negatives at 0.00..0.19; positives: 18 at 0.80..0.97, 2 low at 0.05 and 0.10.
        let mut y = vec![false; 20];
        let mut s: Vec<f64> = (0..20).map(|i| f64::from(i) / 100.0).collect();
        y.extend([true; 20]);
        s.extend((0..18).map(|i| 0.8 + f64::from(i) / 100.0));
        s.extend([0.05, 0.10]);
        let t = Targets::default();
        let c = choose_all(&y, &s, t).unwrap();
        assert_eq!(c.balanced, 0.8); // sensitivity 0.90, specificity 1
        assert!(choose(&y, &s, CutoffRule::MinSpecificity(0.95)).unwrap() < c.balanced);
        assert_eq!(c.specific, c.balanced);
        assert_eq!(c.sensitive, 0.1); // 19 of 20 positives
        let at = |cut: f64| ConfusionMatrix::at_cutoff(&y, &s, cut).unwrap();
        let m = at(c.specific);
        assert!(m.tn as f64 / (m.tn + m.fp) as f64 >= t.specificity);
        let m = at(c.sensitive);
        assert!(m.tp as f64 / (m.tp + m.fn_) as f64 >= t.sensitivity);
        // The mirror image: scores 1 − s and labels flipped; the Youden point has sensitivity 1.
        let y2: Vec<bool> = y.iter().map(|l| !l).collect();
        let s2: Vec<f64> = s.iter().map(|p| 1.0 - p).collect();
        let c2 = choose_all(&y2, &s2, t).unwrap();
        assert!(choose(&y2, &s2, CutoffRule::MinSensitivity(0.95)).unwrap() > c2.balanced);
        assert_eq!(c2.sensitive, c2.balanced);
        assert!(
            c2.sensitive <= c2.balanced && c2.balanced <= c2.specific,
            "{c2:?}"
        );
    }

    #[test]
    fn cross_validation_is_reproducible_and_ordered() {
        let y: Vec<bool> = (0..80).map(|i| i % 2 == 0).collect();
        let s: Vec<f64> = (0..80)
            .map(|i| ((i * 53) % 80) as f64 / 100.0 + if i % 2 == 0 { 0.25 } else { 0.0 })
            .collect();
        let t = Targets::default();
        let a = cross_validated(&y, &s, t, 5, 10, 3).unwrap();
        assert_eq!(a, cross_validated(&y, &s, t, 5, 10, 3).unwrap());
        assert!(
            a.sensitive <= a.balanced && a.balanced <= a.specific,
            "{a:?}"
        );
        assert!(cross_validated(&y[..6], &s[..6], t, 5, 1, 0).is_err());
    }

    #[test]
    fn given_cutoffs_must_be_probabilities_in_order() {
        assert!(Cutoffs::parse("0.2,0.5,0.8").is_ok());
        assert!(Cutoffs::parse("0.5,0.5,0.5").is_ok());
        let e = Cutoffs::parse("0.9,0.5,0.1").unwrap_err();
        assert!(e.contains("out of order"), "{e}");
        assert!(
            Cutoffs::parse("0.2,0.5,1.5")
                .unwrap_err()
                .contains("specific")
        );
        assert!(Cutoffs::parse("0.2,NaN,0.8").is_err());
        assert!(Cutoffs::parse("0.2,0.5").unwrap_err().contains("got 2"));
        assert!(Cutoffs::parse("a,b,c").is_err());
    }
}
