//! Multi-reader multi-case (MRMC) analysis of a fully crossed reader study: every reader rates every case
//! in every modality (e.g. unaided and aided by the model).
//!
//! - Figures of merit per reader and modality: the empirical AUC (ties count half), or sensitivity /
//!   specificity of binary calls (rating ≥ a threshold).
//! - Obuchowski–Rockette (OR): the error covariances Var, Cov1 (same reader, other modality), Cov2 (other
//!   reader, same modality), Cov3 (other reader and modality), estimated by the jackknife (default),
//!   DeLong's structural components, or a stratified bootstrap; the test of equal modalities for random
//!   readers and random cases with Hillis's (2007) denominator degrees of freedom, and the
//!   fixed-readers (random cases) and fixed-cases (random readers) variants; a confidence interval for each
//!   pairwise difference and for each modality.
//! - Dorfman–Berbaum–Metz (DBM) on jackknife pseudovalues with Hillis's (2008) denominator, computed
//!   from the pseudovalues' three-way ANOVA (an independent route to the OR–jackknife result).
//!
//! Formulas: Obuchowski & Rockette (1995); Hillis, Obuchowski, Schartz & Berbaum (2005); Hillis (2007,
//! 2008); DeLong, DeLong & Clarke-Pearson (1988). Checked against an independent numpy/scipy
//! implementation and against the Van Dyke et al. (1993) example as published (MRMCaov's README).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor, Normal, StudentsT};

use super::StatsError;

/// A fully crossed reader study: `ratings[(i * readers + j) * cases + k]` is reader `j`'s rating of case
/// `k` in modality `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    /// Modality names, in order.
    pub modalities: Vec<String>,
    /// Reader names, in order.
    pub readers: Vec<String>,
    /// Case IDs, in order.
    pub cases: Vec<String>,
    /// Truth of each case.
    pub truth: Vec<bool>,
    /// Ratings, modality-major, then reader, then case.
    pub ratings: Vec<f64>,
}

impl Study {
    fn rating(&self, i: usize, j: usize, k: usize) -> f64 {
        self.ratings[(i * self.readers.len() + j) * self.cases.len() + k]
    }
}

/// The figure of merit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Fom {
    /// Empirical (trapezoidal) AUC, ties counted half.
    Auc,
    /// Sensitivity of the call `rating ≥ threshold`.
    Sensitivity(f64),
    /// Specificity of the call `rating ≥ threshold`.
    Specificity(f64),
}

impl Fom {
    /// A short name.
    pub fn name(&self) -> String {
        match self {
            Fom::Auc => "AUC".into(),
            Fom::Sensitivity(t) => format!("sensitivity (rating ≥ {t})"),
            Fom::Specificity(t) => format!("specificity (rating ≥ {t} is positive)"),
        }
    }
}

/// How the error covariances are estimated.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum CovMethod {
    /// Jackknife over cases.
    Jackknife,
    /// DeLong's structural components.
    DeLong,
    /// Stratified bootstrap over cases (positives and negatives resampled separately).
    Bootstrap {
        /// Resamples.
        resamples: usize,
        /// Seed.
        seed: u64,
    },
}

/// A figure of merit of one reader in one modality, with what the covariance estimators need.
struct Parts {
    value: f64,
    /// Leave-one-case-out values, one per case.
    loo: Vec<f64>,
    /// Structural components over the positive cases (DeLong's V10; a sensitivity's indicators).
    pos: Vec<f64>,
    /// Over the negative cases (V01; a specificity's indicators).
    neg: Vec<f64>,
}

fn parts(scores: &[f64], truth: &[bool], fom: Fom) -> Parts {
    let pos: Vec<f64> = scores
        .iter()
        .zip(truth)
        .filter(|t| *t.1)
        .map(|t| *t.0)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(truth)
        .filter(|t| !*t.1)
        .map(|t| *t.0)
        .collect();
    let (n1, n0) = (pos.len() as f64, neg.len() as f64);
    match fom {
        Fom::Auc => {
            let mut sorted_neg = neg.clone();
            sorted_neg.sort_by(f64::total_cmp);
            let mut sorted_pos = pos.clone();
            sorted_pos.sort_by(f64::total_cmp);
            // ψ summed over the other class: below + ties / 2.
            let count = |sorted: &[f64], v: f64| {
                let lo = sorted.partition_point(|x| *x < v);
                let hi = sorted.partition_point(|x| *x <= v);
                lo as f64 + 0.5 * (hi - lo) as f64
            };
            let v10: Vec<f64> = pos.iter().map(|&x| count(&sorted_neg, x) / n0).collect();
            // V01 for a negative y: positives above y + ties / 2.
            let v01: Vec<f64> = neg
                .iter()
                .map(|&y| (n1 - count(&sorted_pos, y)) / n1)
                .collect();
            let total: f64 = v10.iter().sum::<f64>() * n0; // Σ ψ over all pairs
            let value = total / (n1 * n0);
            let (mut ip, mut ineg) = (0, 0);
            let loo = truth
                .iter()
                .map(|&t| {
                    if t {
                        let s = v10[ip] * n0;
                        ip += 1;
                        (total - s) / ((n1 - 1.0) * n0)
                    } else {
                        let s = v01[ineg] * n1;
                        ineg += 1;
                        (total - s) / (n1 * (n0 - 1.0))
                    }
                })
                .collect();
            Parts {
                value,
                loo,
                pos: v10,
                neg: v01,
            }
        }
        Fom::Sensitivity(t) | Fom::Specificity(t) => {
            let sens = matches!(fom, Fom::Sensitivity(_));
            let ind: Vec<f64> = if sens { &pos } else { &neg }
                .iter()
                .map(|&x| f64::from(u8::from((x >= t) == sens)))
                .collect();
            let n = ind.len() as f64;
            let sum: f64 = ind.iter().sum();
            let value = sum / n;
            let loo = scores
                .iter()
                .zip(truth)
                .map(|(&x, &tr)| {
                    if tr == sens {
                        let v = f64::from(u8::from((x >= t) == sens));
                        (sum - v) / (n - 1.0)
                    } else {
                        value
                    }
                })
                .collect();
            let (pos, neg) = if sens {
                (ind, Vec::new())
            } else {
                (Vec::new(), ind)
            };
            Parts {
                value,
                loo,
                pos,
                neg,
            }
        }
    }
}

fn fom_value(scores: &[f64], truth: &[bool], fom: Fom) -> f64 {
    parts(scores, truth, fom).value
}

fn sample_cov(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len();
    if n < 2 {
        return 0.0;
    }
    let (ma, mb) = (
        a.iter().sum::<f64>() / n as f64,
        b.iter().sum::<f64>() / n as f64,
    );
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (n - 1) as f64
}

/// The OR error covariances, averaged by kind.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Covariances {
    /// Error variance.
    pub var: f64,
    /// Same reader, different modality.
    pub cov1: f64,
    /// Different reader, same modality.
    pub cov2: f64,
    /// Different reader and modality.
    pub cov3: f64,
}

/// A test of equal modalities.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GlobalTest {
    /// Test statistic (F, or χ² for fixed readers).
    pub statistic: f64,
    /// Numerator degrees of freedom.
    pub df1: f64,
    /// Denominator degrees of freedom (None for the χ² test).
    pub df2: Option<f64>,
    /// p-value.
    pub p: f64,
}

/// A difference between two modalities' reader-averaged figures of merit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    /// "A − B".
    pub comparison: String,
    /// Estimate.
    pub estimate: f64,
    /// Standard error.
    pub std_err: f64,
    /// Degrees of freedom (None: normal).
    pub df: Option<f64>,
    /// Confidence interval.
    pub lower: f64,
    /// Confidence interval.
    pub upper: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// One modality's reader-averaged figure of merit with its interval (that modality's data only).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModalityEstimate {
    /// Modality.
    pub modality: String,
    /// Reader-averaged figure of merit.
    pub estimate: f64,
    /// Standard error.
    pub std_err: f64,
    /// Degrees of freedom.
    pub df: Option<f64>,
    /// Confidence interval.
    pub lower: f64,
    /// Confidence interval.
    pub upper: f64,
}

/// One analysis (random readers and cases, fixed readers, or fixed cases).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Inference {
    /// What is random.
    pub factors: String,
    /// The global test (None with the reason when undefined).
    pub test: Option<GlobalTest>,
    /// Why the test is undefined.
    pub undefined: Option<String>,
    /// Pairwise differences.
    pub differences: Vec<Difference>,
    /// Each modality alone.
    pub modalities: Vec<ModalityEstimate>,
}

/// Dorfman–Berbaum–Metz on jackknife pseudovalues, Hillis's denominator.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dbm {
    /// Mean squares of the pseudovalues' ANOVA.
    pub ms_t: f64,
    /// Treatment × reader.
    pub ms_tr: f64,
    /// Treatment × case.
    pub ms_tc: f64,
    /// Treatment × reader × case.
    pub ms_trc: f64,
    /// The random-readers random-cases test.
    pub test: Option<GlobalTest>,
}

/// The whole MRMC analysis.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Mrmc {
    /// Figure of merit.
    pub fom: String,
    /// Covariance method.
    pub covariance_method: CovMethod,
    /// Confidence level.
    pub level: f64,
    /// Modalities.
    pub modalities: Vec<String>,
    /// Readers.
    pub readers: Vec<String>,
    /// Cases with truth, positive, negative.
    pub cases: (usize, usize, usize),
    /// Figure of merit per modality (rows) and reader (columns).
    pub foms: Vec<Vec<f64>>,
    /// Reader-averaged figure of merit per modality.
    pub modality_means: Vec<f64>,
    /// OR covariances.
    pub covariances: Covariances,
    /// Mean squares of the figures of merit: treatment, reader, treatment × reader.
    pub ms_t: f64,
    /// Reader mean square.
    pub ms_r: f64,
    /// Treatment × reader mean square.
    pub ms_tr: f64,
    /// OR variance components: reader, treatment × reader.
    pub var_r: f64,
    /// Treatment × reader variance component.
    pub var_tr: f64,
    /// Random readers, random cases (Hillis ddf).
    pub rrrc: Inference,
    /// Fixed readers, random cases.
    pub frrc: Inference,
    /// Random readers, fixed cases.
    pub rrfc: Inference,
    /// DBM (jackknife pseudovalues) with Hillis's denominator.
    pub dbm: Dbm,
}

fn check(study: &Study) -> Result<(usize, usize, usize), StatsError> {
    let (i, j, k) = (
        study.modalities.len(),
        study.readers.len(),
        study.cases.len(),
    );
    if i < 2 {
        return Err(StatsError::BadInput(format!(
            "an MRMC comparison needs at least two modalities; the ratings have {i} ({})",
            study.modalities.join(", ")
        )));
    }
    if j < 1 || k == 0 || study.ratings.len() != i * j * k || study.truth.len() != k {
        return Err(StatsError::BadInput(
            "the ratings do not form a complete modality × reader × case table".into(),
        ));
    }
    let pos = study.truth.iter().filter(|&&t| t).count();
    if pos < 2 || k - pos < 2 {
        return Err(StatsError::BadInput(format!(
            "an MRMC analysis needs at least two positive and two negative cases ({pos} and {})",
            k - pos
        )));
    }
    if let Some(bad) = study.ratings.iter().find(|v| !v.is_finite()) {
        return Err(StatsError::BadInput(format!(
            "a rating {bad} that is not a number"
        )));
    }
    Ok((i, j, k))
}

fn covariance_matrix(study: &Study, fom: Fom, method: CovMethod, all: &[Parts]) -> Vec<Vec<f64>> {
    let n = all.len();
    let k = study.cases.len() as f64;
    match method {
        CovMethod::Jackknife => {
            let means: Vec<f64> = all.iter().map(|p| p.loo.iter().sum::<f64>() / k).collect();
            (0..n)
                .map(|a| {
                    (0..n)
                        .map(|b| {
                            all[a]
                                .loo
                                .iter()
                                .zip(&all[b].loo)
                                .map(|(x, y)| (x - means[a]) * (y - means[b]))
                                .sum::<f64>()
                                * (k - 1.0)
                                / k
                        })
                        .collect()
                })
                .collect()
        }
        CovMethod::DeLong => (0..n)
            .map(|a| {
                (0..n)
                    .map(|b| {
                        let p = &all[a].pos;
                        let q = &all[b].pos;
                        let s10 = if p.is_empty() || q.is_empty() {
                            0.0
                        } else {
                            sample_cov(p, q) / p.len() as f64
                        };
                        let (p, q) = (&all[a].neg, &all[b].neg);
                        let s01 = if p.is_empty() || q.is_empty() {
                            0.0
                        } else {
                            sample_cov(p, q) / p.len() as f64
                        };
                        s10 + s01
                    })
                    .collect()
            })
            .collect(),
        CovMethod::Bootstrap { resamples, seed } => {
            let pos: Vec<usize> = (0..study.cases.len()).filter(|&c| study.truth[c]).collect();
            let neg: Vec<usize> = (0..study.cases.len())
                .filter(|&c| !study.truth[c])
                .collect();
            let (mi, mj) = (study.modalities.len(), study.readers.len());
            let draws: Vec<Vec<f64>> = (0..resamples)
                .into_par_iter()
                .map(|r| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(r as u64);
                    let mut idx: Vec<usize> = (0..pos.len())
                        .map(|_| pos[rng.random_range(0..pos.len())])
                        .collect();
                    idx.extend((0..neg.len()).map(|_| neg[rng.random_range(0..neg.len())]));
                    let truth: Vec<bool> = idx.iter().map(|&c| study.truth[c]).collect();
                    let mut out = Vec::with_capacity(mi * mj);
                    for i in 0..mi {
                        for j in 0..mj {
                            let s: Vec<f64> = idx.iter().map(|&c| study.rating(i, j, c)).collect();
                            out.push(fom_value(&s, &truth, fom));
                        }
                    }
                    out
                })
                .collect();
            let b = resamples as f64;
            let means: Vec<f64> = (0..n)
                .map(|a| draws.iter().map(|d| d[a]).sum::<f64>() / b)
                .collect();
            (0..n)
                .map(|a| {
                    (0..n)
                        .map(|c| {
                            draws
                                .iter()
                                .map(|d| (d[a] - means[a]) * (d[c] - means[c]))
                                .sum::<f64>()
                                / (b - 1.0)
                        })
                        .collect()
                })
                .collect()
        }
    }
}

// statrs panics on some arguments outside its domain (a NaN or an infinite degree of freedom); every
// call goes through these, which answer NaN there instead (and the normal for df = ∞).
fn t_quantile(df: f64, p: f64) -> f64 {
    if df.is_infinite() && df > 0.0 {
        return z_quantile(p);
    }
    if !(df.is_finite() && df > 0.0 && p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    StudentsT::new(0.0, 1.0, df)
        .map(|t| t.inverse_cdf(p))
        .unwrap_or(f64::NAN)
}

fn z_quantile(p: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    Normal::new(0.0, 1.0)
        .map(|n| n.inverse_cdf(p))
        .unwrap_or(f64::NAN)
}

/// Two-sided p of a t (or, with df = ∞ or None, normal) statistic.
fn two_sided(x: f64, df: Option<f64>) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.is_infinite() {
        return 0.0;
    }
    match df {
        Some(df) if df.is_finite() => {
            if df > 0.0 {
                StudentsT::new(0.0, 1.0, df)
                    .map(|t| 2.0 * t.sf(x.abs()))
                    .unwrap_or(f64::NAN)
            } else {
                f64::NAN
            }
        }
        _ => Normal::new(0.0, 1.0)
            .map(|n| 2.0 * n.sf(x.abs()))
            .unwrap_or(f64::NAN),
    }
}

fn f_test(f: f64, df1: f64, df2: f64) -> Option<GlobalTest> {
    if !(f.is_finite() && f >= 0.0 && df1 > 0.0 && df2 > 0.0 && df2.is_finite()) {
        return None;
    }
    let p = FisherSnedecor::new(df1, df2).ok().map(|d| d.sf(f))?;
    Some(GlobalTest {
        statistic: f,
        df1,
        df2: Some(df2),
        p,
    })
}

/// Runs the analysis.
pub fn analyse(study: &Study, fom: Fom, method: CovMethod, level: f64) -> Result<Mrmc, StatsError> {
    let (ni, nj, nk) = check(study)?;
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::BadInput(format!("confidence level {level}")));
    }
    if let CovMethod::Bootstrap { resamples, .. } = method
        && resamples < 2
    {
        return Err(StatsError::BadInput(
            "a bootstrap needs at least 2 resamples".into(),
        ));
    }
    let all: Vec<Parts> = (0..ni * nj)
        .into_par_iter()
        .map(|ij| {
            let (i, j) = (ij / nj, ij % nj);
            let s: Vec<f64> = (0..nk).map(|k| study.rating(i, j, k)).collect();
            parts(&s, &study.truth, fom)
        })
        .collect();
    let theta = |i: usize, j: usize| all[i * nj + j].value;
    let foms: Vec<Vec<f64>> = (0..ni)
        .map(|i| (0..nj).map(|j| theta(i, j)).collect())
        .collect();
    let (fi, fj) = (ni as f64, nj as f64);
    let m_i: Vec<f64> = foms.iter().map(|r| r.iter().sum::<f64>() / fj).collect();
    let m_j: Vec<f64> = (0..nj)
        .map(|j| (0..ni).map(|i| theta(i, j)).sum::<f64>() / fi)
        .collect();
    let m = m_i.iter().sum::<f64>() / fi;
    let ms_t = fj * m_i.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (fi - 1.0);
    let ms_r = if nj > 1 {
        fi * m_j.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (fj - 1.0)
    } else {
        f64::NAN
    };
    let ms_tr = if nj > 1 {
        (0..ni)
            .flat_map(|i| (0..nj).map(move |j| (i, j)))
            .map(|(i, j)| (theta(i, j) - m_i[i] - m_j[j] + m).powi(2))
            .sum::<f64>()
            / ((fi - 1.0) * (fj - 1.0))
    } else {
        f64::NAN
    };

    let cov = covariance_matrix(study, fom, method, &all);
    let (mut sums, mut counts) = ([0.0f64; 4], [0usize; 4]);
    for (a, row) in cov.iter().enumerate() {
        for (b, &v) in row.iter().enumerate() {
            let (ia, ja, ib, jb) = (a / nj, a % nj, b / nj, b % nj);
            let kind = match (ia == ib, ja == jb) {
                (true, true) => 0,
                (false, true) => 1,
                (true, false) => 2,
                (false, false) => 3,
            };
            sums[kind] += v;
            counts[kind] += 1;
        }
    }
    let avg = |k: usize| {
        if counts[k] == 0 {
            0.0
        } else {
            sums[k] / counts[k] as f64
        }
    };
    let c = Covariances {
        var: avg(0),
        cov1: avg(1),
        cov2: avg(2),
        cov3: avg(3),
    };
    // E[MS(R)] = I σ²_R + σ²_TR + Var + (I − 1) Cov1 − Cov2 − (I − 1) Cov3 and
    // E[MS(TR)] = σ²_TR + Var − Cov1 − Cov2 + Cov3.
    let var_r = (ms_r - ms_tr) / fi - c.cov1 + c.cov3;
    let var_tr = ms_tr - c.var + c.cov1 + c.cov2 - c.cov3;

    let alpha = 1.0 - level;
    let pairs: Vec<(usize, usize)> = (0..ni)
        .flat_map(|a| (a + 1..ni).map(move |b| (a, b)))
        .collect();
    let difference = |a: usize, b: usize, se: f64, df: Option<f64>| {
        let est = m_i[a] - m_i[b];
        let q = match df {
            Some(df) => t_quantile(df, 1.0 - alpha / 2.0),
            None => z_quantile(1.0 - alpha / 2.0),
        };
        let p = two_sided(est / se, df);
        Difference {
            comparison: format!("{} − {}", study.modalities[a], study.modalities[b]),
            estimate: est,
            std_err: se,
            df,
            lower: est - q * se,
            upper: est + q * se,
            p,
        }
    };
    // Each modality alone: its readers' mean square and Cov2 (that modality's covariances only).
    let single = |i: usize, fixed_readers: bool, fixed_cases: bool| -> ModalityEstimate {
        let ms_ri = if nj > 1 {
            foms[i].iter().map(|x| (x - m_i[i]).powi(2)).sum::<f64>() / (fj - 1.0)
        } else {
            f64::NAN
        };
        let (mut var_i, mut cov2_i, mut n2) = (0.0, 0.0, 0usize);
        for ja in 0..nj {
            var_i += cov[i * nj + ja][i * nj + ja] / fj;
            for jb in 0..nj {
                if ja != jb {
                    cov2_i += cov[i * nj + ja][i * nj + jb];
                    n2 += 1;
                }
            }
        }
        let cov2_i = if n2 > 0 { cov2_i / n2 as f64 } else { 0.0 };
        let (var, df) = if fixed_readers {
            ((var_i + (fj - 1.0) * cov2_i) / fj, None)
        } else if fixed_cases {
            (ms_ri / fj, Some(fj - 1.0))
        } else {
            let den = ms_ri + fj * cov2_i.max(0.0);
            (den / fj, Some(den * den / (ms_ri * ms_ri / (fj - 1.0))))
        };
        let se = var.sqrt();
        let q = match df {
            Some(df) => t_quantile(df, 1.0 - alpha / 2.0),
            None => z_quantile(1.0 - alpha / 2.0),
        };
        ModalityEstimate {
            modality: study.modalities[i].clone(),
            estimate: m_i[i],
            std_err: se,
            df,
            lower: m_i[i] - q * se,
            upper: m_i[i] + q * se,
        }
    };

    // Random readers, random cases: Hillis's ddf.
    let rrrc = if nj < 2 {
        Inference {
            factors: "random readers, random cases".into(),
            test: None,
            undefined: Some("one reader: readers cannot be treated as random".into()),
            differences: Vec::new(),
            modalities: Vec::new(),
        }
    } else {
        let den = ms_tr + fj * (c.cov2 - c.cov3).max(0.0);
        let ddf = den * den / (ms_tr * ms_tr / ((fi - 1.0) * (fj - 1.0)));
        let test = f_test(ms_t / den, fi - 1.0, ddf);
        let se = (2.0 * den / fj).sqrt();
        Inference {
            factors: "random readers, random cases".into(),
            undefined: test
                .is_none()
                .then(|| "the denominator is zero (identical figures of merit?)".into()),
            test,
            differences: pairs
                .iter()
                .map(|&(a, b)| difference(a, b, se, Some(ddf)))
                .collect(),
            modalities: (0..ni).map(|i| single(i, false, false)).collect(),
        }
    };
    // Fixed readers, random cases: χ² with I − 1 degrees of freedom.
    let frrc = {
        let den = c.var - c.cov1 + (fj - 1.0) * (c.cov2 - c.cov3);
        let chi = (fi - 1.0) * ms_t / den;
        let test = (chi.is_finite() && chi >= 0.0 && den > 0.0)
            .then(|| {
                ChiSquared::new(fi - 1.0).ok().map(|d| GlobalTest {
                    statistic: chi,
                    df1: fi - 1.0,
                    df2: None,
                    p: d.sf(chi),
                })
            })
            .flatten();
        let se = (2.0 * den / fj).sqrt();
        Inference {
            factors: "fixed readers, random cases".into(),
            undefined: test
                .is_none()
                .then(|| "the error variance is zero (all ratings tied?)".into()),
            test,
            differences: pairs
                .iter()
                .map(|&(a, b)| difference(a, b, se, None))
                .collect(),
            modalities: (0..ni).map(|i| single(i, true, false)).collect(),
        }
    };
    // Random readers, fixed cases: F with (I − 1, (I − 1)(J − 1)) degrees of freedom.
    let rrfc = if nj < 2 {
        Inference {
            factors: "random readers, fixed cases".into(),
            test: None,
            undefined: Some("one reader: readers cannot be treated as random".into()),
            differences: Vec::new(),
            modalities: Vec::new(),
        }
    } else {
        let df2 = (fi - 1.0) * (fj - 1.0);
        let test = f_test(ms_t / ms_tr, fi - 1.0, df2);
        let se = (2.0 * ms_tr / fj).sqrt();
        Inference {
            factors: "random readers, fixed cases".into(),
            undefined: test
                .is_none()
                .then(|| "the treatment × reader mean square is zero".into()),
            test,
            differences: pairs
                .iter()
                .map(|&(a, b)| difference(a, b, se, Some(df2)))
                .collect(),
            modalities: (0..ni).map(|i| single(i, false, true)).collect(),
        }
    };

    let dbm = dbm(&all, ni, nj, nk);
    let pos = study.truth.iter().filter(|&&t| t).count();
    Ok(Mrmc {
        fom: fom.name(),
        covariance_method: method,
        level,
        modalities: study.modalities.clone(),
        readers: study.readers.clone(),
        cases: (nk, pos, nk - pos),
        foms,
        modality_means: m_i,
        covariances: c,
        ms_t,
        ms_r,
        ms_tr,
        var_r,
        var_tr,
        rrrc,
        frrc,
        rrfc,
        dbm,
    })
}

/// DBM: the three-way ANOVA of the jackknife pseudovalues `Y_ijk = K θ_ij − (K − 1) θ_ij(−k)`.
fn dbm(all: &[Parts], ni: usize, nj: usize, nk: usize) -> Dbm {
    let (fi, fj, fk) = (ni as f64, nj as f64, nk as f64);
    let y = |i: usize, j: usize, k: usize| {
        let p = &all[i * nj + j];
        fk * p.value - (fk - 1.0) * p.loo[k]
    };
    let mut m_ij = vec![0.0; ni * nj];
    let mut m_ik = vec![0.0; ni * nk];
    let mut m_jk = vec![0.0; nj * nk];
    let (mut m_i, mut m_j, mut m_k) = (vec![0.0; ni], vec![0.0; nj], vec![0.0; nk]);
    let mut m = 0.0;
    for i in 0..ni {
        for j in 0..nj {
            for k in 0..nk {
                let v = y(i, j, k);
                m_ij[i * nj + j] += v / fk;
                m_ik[i * nk + k] += v / fj;
                m_jk[j * nk + k] += v / fi;
                m_i[i] += v / (fj * fk);
                m_j[j] += v / (fi * fk);
                m_k[k] += v / (fi * fj);
                m += v / (fi * fj * fk);
            }
        }
    }
    let ms_t = fj * fk * m_i.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (fi - 1.0);
    let mut ss_tr = 0.0;
    for i in 0..ni {
        for j in 0..nj {
            ss_tr += (m_ij[i * nj + j] - m_i[i] - m_j[j] + m).powi(2);
        }
    }
    let ms_tr = fk * ss_tr / ((fi - 1.0) * (fj - 1.0));
    let mut ss_tc = 0.0;
    for i in 0..ni {
        for k in 0..nk {
            ss_tc += (m_ik[i * nk + k] - m_i[i] - m_k[k] + m).powi(2);
        }
    }
    let ms_tc = fj * ss_tc / ((fi - 1.0) * (fk - 1.0));
    let mut ss_trc = 0.0;
    for i in 0..ni {
        for j in 0..nj {
            for k in 0..nk {
                ss_trc += (y(i, j, k) - m_ij[i * nj + j] - m_ik[i * nk + k] - m_jk[j * nk + k]
                    + m_i[i]
                    + m_j[j]
                    + m_k[k]
                    - m)
                    .powi(2);
            }
        }
    }
    let ms_trc = ss_trc / ((fi - 1.0) * (fj - 1.0) * (fk - 1.0));
    let test = if nj > 1 {
        let den = ms_tr + (ms_tc - ms_trc).max(0.0);
        let ddf = den * den / (ms_tr * ms_tr / ((fi - 1.0) * (fj - 1.0)));
        f_test(ms_t / den, fi - 1.0, ddf)
    } else {
        None
    };
    Dbm {
        ms_t,
        ms_tr,
        ms_tc,
        ms_trc,
        test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_one_out_aucs_equal_recomputation() {
        let truth: Vec<bool> = (0..23).map(|i| i % 3 == 0).collect();
        let s: Vec<f64> = (0..23).map(|i| f64::from((i * 7) % 5)).collect();
        let p = parts(&s, &truth, Fom::Auc);
        for k in 0..23 {
            let (ss, tt): (Vec<f64>, Vec<bool>) = s
                .iter()
                .zip(&truth)
                .enumerate()
                .filter(|(c, _)| *c != k)
                .map(|(_, (a, b))| (*a, *b))
                .unzip();
            let direct = crate::stats::roc::roc_auc(&tt, &ss).unwrap();
            assert!((p.loo[k] - direct).abs() < 1e-12, "{k}");
        }
        assert!((p.value - crate::stats::roc::roc_auc(&truth, &s).unwrap()).abs() < 1e-12);
    }
}
