//! Seeded, reproducible bootstrap confidence intervals (percentile method): the AUC by stratified
//! resampling (positives and negatives resampled separately, as pROC does) and any paired statistic
//! (e.g. kappa) by resampling cases.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;
use rayon::prelude::*;

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

/// Called as resamples finish, with how many just finished (from any thread).
pub type Tick<'a> = &'a (dyn Fn(usize) + Sync);

/// The random stream of one resample: seeded by `seed`, one ChaCha stream per resample, so the result
/// does not depend on how many threads draw them or in which order.
fn rng_for(seed: u64, resample: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(resample as u64);
    rng
}

/// Scores replaced by their rank among the distinct scores, by class: a resample's AUC is then a
/// counting pass over the ranks (no sort), `O(n + distinct)`.
struct Ranked {
    pos: Vec<u32>,
    neg: Vec<u32>,
    levels: usize,
}

impl Ranked {
    fn new(pos: &[f64], neg: &[f64]) -> Self {
        let mut all: Vec<f64> = pos.iter().chain(neg).copied().collect();
        all.sort_by(f64::total_cmp);
        all.dedup_by(|a, b| a.total_cmp(b).is_eq());
        let rank = |v: &f64| all.partition_point(|x| x.total_cmp(v).is_lt()) as u32;
        Self {
            pos: pos.iter().map(rank).collect(),
            neg: neg.iter().map(rank).collect(),
            levels: all.len(),
        }
    }

    /// The AUC of one stratified resample (ties count half), drawing positives then negatives.
    fn resample_auc(&self, rng: &mut ChaCha8Rng, pos_n: &mut [u64], neg_n: &mut [u64]) -> f64 {
        pos_n.fill(0);
        neg_n.fill(0);
        for _ in 0..self.pos.len() {
            pos_n[self.pos[rng.random_range(0..self.pos.len())] as usize] += 1;
        }
        for _ in 0..self.neg.len() {
            neg_n[self.neg[rng.random_range(0..self.neg.len())] as usize] += 1;
        }
        let (mut below, mut sum) = (0u64, 0.0f64);
        for (&p, &n) in pos_n.iter().zip(neg_n.iter()) {
            if p > 0 {
                sum += p as f64 * (below as f64 + 0.5 * n as f64);
            }
            below += n;
        }
        sum / (self.pos.len() as f64 * self.neg.len() as f64)
    }
}

/// AUC with a stratified bootstrap percentile interval.
pub fn auc(
    labels: &[bool],
    scores: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<BootstrapEstimate, StatsError> {
    auc_with(labels, scores, resamples, level, seed, &|_| {})
}

/// [`auc`] on all threads, reporting each finished resample to `tick`.
pub fn auc_with(
    labels: &[bool],
    scores: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
    tick: Tick<'_>,
) -> Result<BootstrapEstimate, StatsError> {
    check_binary(labels, scores, "a bootstrap AUC")?;
    let value = roc_auc(labels, scores)?;
    let (pos, neg) = super::split_by_class(labels, scores);
    let ranked = Ranked::new(&pos, &neg);
    let stats: Vec<f64> = (0..resamples)
        .into_par_iter()
        .map_init(
            || (vec![0u64; ranked.levels], vec![0u64; ranked.levels]),
            |(pos_n, neg_n), r| {
                let v = ranked.resample_auc(&mut rng_for(seed, r), pos_n, neg_n);
                tick(1);
                v
            },
        )
        .collect();
    interval(value, stats, resamples, level)
}

/// A statistic of a table of counts (e.g. kappa of a 2×2 table) with a case-resampling bootstrap
/// percentile interval, on all threads, reporting each finished resample to `tick` (all of them at once
/// when the statistic is undefined on the data itself and nothing is resampled).
///
/// Resampling `n` cases with replacement and tabulating them gives a multinomial draw of `n` over the
/// cells with the observed proportions, so each resample is drawn as that multinomial (one binomial per
/// cell, `O(cells)`) rather than case by case (`O(n)`): the same distribution, for any `n`.
pub fn table_with<const K: usize>(
    table: &[u64; K],
    statistic: impl Fn(&[u64; K]) -> Result<f64, StatsError> + Sync,
    resamples: usize,
    level: f64,
    seed: u64,
    tick: Tick<'_>,
) -> Result<BootstrapEstimate, StatsError> {
    let value = statistic(table).inspect_err(|_| tick(resamples))?;
    let n: u64 = table.iter().sum();
    let stats: Vec<f64> = (0..resamples)
        .into_par_iter()
        .map(|r| {
            let mut rng = rng_for(seed, r);
            let mut draw = [0u64; K];
            let (mut left_n, mut left_cells) = (n, n);
            for (i, &c) in table.iter().enumerate() {
                if left_n == 0 || left_cells == 0 {
                    break;
                }
                draw[i] = if c == left_cells {
                    left_n
                } else {
                    let p = c as f64 / left_cells as f64;
                    rand_distr::Binomial::new(left_n, p)
                        .map(|b| b.sample(&mut rng))
                        .unwrap_or(0)
                };
                left_n -= draw[i];
                left_cells -= c;
            }
            tick(1);
            statistic(&draw).ok()
        })
        .flatten()
        .collect();
    interval(value, stats, resamples, level)
}

/// A statistic of paired ratings with a case-resampling bootstrap percentile interval, on all threads;
/// resamples where the statistic is undefined are counted and left out. (Kappa of two binary raters
/// is drawn faster by [`table_with`], which this checks in the tests.)
pub fn paired<T: Clone + Send + Sync>(
    a: &[T],
    b: &[T],
    statistic: impl Fn(&[T], &[T]) -> Result<f64, StatsError> + Sync,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<BootstrapEstimate, StatsError> {
    let value = statistic(a, b)?;
    let n = a.len();
    let stats: Vec<f64> = (0..resamples)
        .into_par_iter()
        .map_init(
            || (Vec::with_capacity(n), Vec::with_capacity(n)),
            |(ra, rb): &mut (Vec<T>, Vec<T>), r| {
                let mut rng = rng_for(seed, r);
                ra.clear();
                rb.clear();
                for _ in 0..n {
                    let i = rng.random_range(0..n);
                    ra.push(a[i].clone());
                    rb.push(b[i].clone());
                }
                statistic(ra, rb).ok()
            },
        )
        .flatten()
        .collect();
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

    #[test]
    fn a_resample_s_counted_auc_equals_the_sorted_one() {
        // Ties within and across classes.
        let y: Vec<bool> = (0..90).map(|i| i % 4 == 0).collect();
        let s: Vec<f64> = (0..90)
            .map(|i| f64::from((i * 7) % 11) + if i % 4 == 0 { 2.0 } else { 0.0 })
            .collect();
        let (pos, neg) = crate::stats::split_by_class(&y, &s);
        let ranked = Ranked::new(&pos, &neg);
        let mut yy = vec![true; pos.len()];
        yy.extend(std::iter::repeat_n(false, neg.len()));
        for r in 0..20 {
            let (mut pn, mut nn) = (vec![0; ranked.levels], vec![0; ranked.levels]);
            let fast = ranked.resample_auc(&mut rng_for(3, r), &mut pn, &mut nn);
            // The same draws, materialised and sorted.
            let mut rng = rng_for(3, r);
            let mut ss: Vec<f64> = (0..pos.len())
                .map(|_| pos[rng.random_range(0..pos.len())])
                .collect();
            ss.extend((0..neg.len()).map(|_| neg[rng.random_range(0..neg.len())]));
            let slow = roc_auc(&yy, &ss).unwrap();
            assert!((fast - slow).abs() < 1e-12, "{r}: {fast} vs {slow}");
        }
    }

    #[test]
    fn the_multinomial_table_bootstrap_matches_case_resampling() {
        use crate::stats::agreement::{binary_kappa_table, binary_table};
        // Two raters over 400 cases; the kappa intervals by case resampling and by multinomial tables
        // (different draws, same distribution) agree to within Monte-Carlo error.
        let a: Vec<bool> = (0..400).map(|i| (i * 7) % 10 < 4).collect();
        let b: Vec<bool> = (0..400).map(|i| (i * 7 + i / 3) % 10 < 4).collect();
        let cases = paired(&a, &b, binary_kappa, 4000, 0.95, 5).unwrap();
        let table = table_with(
            &binary_table(&a, &b),
            binary_kappa_table,
            4000,
            0.95,
            5,
            &|_| {},
        )
        .unwrap();
        assert!((cases.estimate.value - table.estimate.value).abs() < 1e-12);
        assert!(
            (cases.estimate.lower - table.estimate.lower).abs() < 0.01,
            "{cases:?} {table:?}"
        );
        assert!(
            (cases.estimate.upper - table.estimate.upper).abs() < 0.01,
            "{cases:?} {table:?}"
        );
        // The table of every resample still sums to n.
        let sums = std::sync::Mutex::new(Vec::new());
        table_with(
            &[3, 0, 5, 392],
            |t| {
                sums.lock().unwrap().push(t.iter().sum::<u64>());
                Ok(0.0)
            },
            50,
            0.95,
            1,
            &|_| {},
        )
        .unwrap();
        assert!(sums.into_inner().unwrap().iter().all(|&s| s == 400));
    }

    #[test]
    fn threads_do_not_change_the_interval() {
        let y: Vec<bool> = (0..200).map(|i| i % 3 == 0).collect();
        let s: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64).collect();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| auc(&y, &s, 300, 0.95, 9).unwrap());
        let many = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap()
            .install(|| auc(&y, &s, 300, 0.95, 9).unwrap());
        assert_eq!(one, many);
        let ticks = std::sync::atomic::AtomicUsize::new(0);
        auc_with(&y, &s, 300, 0.95, 9, &|n| {
            ticks.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(ticks.into_inner(), 300);
    }
}
