//! Simulated readers: each joint's true grade is misread by one grade with probability `p_one` and by two
//! grades with probability `p_two` (direction random, clamped to 0–4). The defaults make two simulated
//! central readers agree on definite sacroiliitis with Cohen's kappa ≈ 0.53, the agreement reported
//! between real central readers.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::grading::{JointGrade, JointGrades};

/// A reader's noise model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedReader {
    /// Probability of a one-grade error per joint.
    pub p_one: f64,
    /// Probability of a two-grade error per joint.
    pub p_two: f64,
}

impl Default for SimulatedReader {
    fn default() -> Self {
        Self {
            p_one: 0.55,
            p_two: 0.08,
        }
    }
}

impl SimulatedReader {
    fn misread(&self, g: JointGrade, rng: &mut ChaCha8Rng) -> JointGrade {
        let u: f64 = rng.random();
        let step = if u < self.p_two {
            2
        } else if u < self.p_two + self.p_one {
            1
        } else {
            0
        };
        let dir = if rng.random_bool(0.5) { 1 } else { -1 };
        let v = (i64::from(g.value()) + dir * step).clamp(0, 4);
        JointGrade::from_value(v).unwrap_or(g)
    }

    /// This reader's grades of a film whose true grades are `truth`; deterministic in `seed`.
    pub fn read(&self, truth: JointGrades, seed: u64) -> JointGrades {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        JointGrades::new(
            self.misread(truth.left, &mut rng),
            self.misread(truth.right, &mut rng),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::agreement::binary_kappa;

    #[test]
    fn two_simulated_central_readers_agree_like_real_ones() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let reader = SimulatedReader::default();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..6000u64 {
            let g = |rng: &mut ChaCha8Rng| JointGrade::from_value(rng.random_range(0..5)).unwrap();
            let truth = JointGrades::new(g(&mut rng), g(&mut rng));
            a.push(reader.read(truth, i * 2).definite_sacroiliitis());
            b.push(reader.read(truth, i * 2 + 1).definite_sacroiliitis());
        }
        let k = binary_kappa(&a, &b).unwrap();
        assert!((k - 0.53).abs() < 0.04, "kappa {k}");
    }
}
