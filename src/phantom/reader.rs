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
    /// A reader aided by the model, for simulated reader studies: the stated improvement is that a joint
    /// is misread by one grade with probability 0.35 instead of 0.55, and by two with 0.03 instead of
    /// 0.08.
    pub fn aided() -> Self {
        Self {
            p_one: 0.35,
            p_two: 0.03,
        }
    }

    /// The confidence (0–100) this reader gives definite sacroiliitis after grading `seen`: a logistic
    /// of the film's severity as read (the worse joint plus a third of the other; about 2.8 where the
    /// mNY rule turns definite) with the reader's own noise; deterministic in `seed`.
    pub fn confidence(&self, seen: JointGrades, seed: u64) -> u8 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0FF_EE00);
        let (l, r) = (f64::from(seen.left.value()), f64::from(seen.right.value()));
        let severity = l.max(r) + l.min(r) / 3.0;
        // A standard normal from two uniforms (Box–Muller).
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
        let noise = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let z = 1.6 * (severity - 2.8) + 0.6 * noise;
        (100.0 / (1.0 + (-z).exp())).round().clamp(0.0, 100.0) as u8
    }

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
