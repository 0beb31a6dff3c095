//! fastai's schedules as plain functions of the training position `pos` ∈ [0, 1]: cosine annealing,
//! `combined_cos` (one-cycle learning rate and momentum), the LR finder's exponential sweep and its
//! "valley" suggestion, and `even_mults` (what `slice(a, b)` means for parameter groups).

/// Cosine annealing from `start` to `end` (fastai's `sched_cos`).
pub fn sched_cos(start: f64, end: f64, pos: f64) -> f64 {
    start + (1.0 + (std::f64::consts::PI * (1.0 - pos)).cos()) * (end - start) / 2.0
}

/// Exponential sweep from `start` to `end` (fastai's `sched_exp`).
pub fn sched_exp(start: f64, end: f64, pos: f64) -> f64 {
    start * (end / start).powf(pos)
}

/// Two cosine phases: `start → middle` over the first `pct` of training, then `middle → end`
/// (fastai's `combined_cos`).
pub fn combined_cos(pct: f64, start: f64, middle: f64, end: f64, pos: f64) -> f64 {
    if pos < pct {
        sched_cos(start, middle, pos / pct)
    } else {
        sched_cos(middle, end, ((pos - pct) / (1.0 - pct)).min(1.0))
    }
}

/// fastai's `fit_one_cycle` defaults.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OneCycle {
    /// Peak learning rate.
    pub lr_max: f64,
    /// Warm-up starts at `lr_max / div` (25).
    pub div: f64,
    /// Annealing ends at `lr_max / div_final` (1e5).
    pub div_final: f64,
    /// Share of the warm-up (0.25).
    pub pct_start: f64,
    /// Momentum (β1) at start, middle and end (0.95, 0.85, 0.95).
    pub moms: (f64, f64, f64),
}

impl OneCycle {
    /// The defaults with the given peak rate.
    pub fn new(lr_max: f64) -> Self {
        Self {
            lr_max,
            div: 25.0,
            div_final: 1e5,
            pct_start: 0.25,
            moms: (0.95, 0.85, 0.95),
        }
    }

    /// Learning rate at `pos`.
    pub fn lr(&self, pos: f64) -> f64 {
        combined_cos(
            self.pct_start,
            self.lr_max / self.div,
            self.lr_max,
            self.lr_max / self.div_final,
            pos,
        )
    }

    /// Momentum (Adam's β1) at `pos`.
    pub fn momentum(&self, pos: f64) -> f64 {
        combined_cos(self.pct_start, self.moms.0, self.moms.1, self.moms.2, pos)
    }
}

/// `n` rates spread geometrically from `start` to `stop` (fastai's `even_mults`, the meaning of
/// `slice(start, stop)` over `n` parameter groups).
pub fn even_mults(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![stop];
    }
    let step = (stop / start).powf(1.0 / (n - 1) as f64);
    (0..n).map(|i| start * step.powi(i as i32)).collect()
}

/// fastai's "valley" suggestion from an LR-finder curve: the start of the longest decreasing run of
/// losses, moved half-way into its first two thirds. Returns the index into `lrs`.
pub fn valley(losses: &[f64]) -> Option<usize> {
    let n = losses.len();
    if n == 0 {
        return None;
    }
    // Signed, as in fastai's Python: the start is one before the run when the run begins at index 0.
    let (mut max_start, mut max_end) = (0i64, 0usize);
    let mut lds = vec![1usize; n];
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end as i64 - lds[max_end] as i64;
            }
        }
    }
    let sections = (max_end as i64 - max_start) as f64 / 3.0;
    let idx = max_start + sections as i64 + (sections / 2.0) as i64;
    // A negative index counts from the end, as Python's indexing does.
    let idx = if idx < 0 { n as i64 + idx } else { idx };
    usize::try_from(idx).ok().filter(|&i| i < n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_values() {
        assert_eq!(sched_cos(1.0, 3.0, 0.0), 1.0);
        assert!((sched_cos(1.0, 3.0, 0.5) - 2.0).abs() < 1e-12);
        assert!((sched_cos(1.0, 3.0, 1.0) - 3.0).abs() < 1e-12);
        let one = OneCycle::new(1e-3);
        assert!((one.lr(0.0) - 4e-5).abs() < 1e-15, "starts at lr_max / 25");
        assert!((one.lr(0.25) - 1e-3).abs() < 1e-15, "peaks after 25 %");
        assert!((one.lr(1.0) - 1e-8).abs() < 1e-18, "ends at lr_max / 1e5");
        assert!((one.momentum(0.25) - 0.85).abs() < 1e-12);
        assert_eq!(even_mults(1e-5, 1e-3, 1), vec![1e-3]);
        assert_eq!(valley(&[]), None);
        // A steadily falling curve (fastai: valley(range(10), [10 - i …], 10) gives index 3).
        let falling: Vec<f64> = (0..10).map(|i| 10.0 - f64::from(i)).collect();
        assert_eq!(valley(&falling), Some(3));
    }
}
