//! Grading rules of the modified New York criteria: a grade 0–4 per sacroiliac joint, the derived call
//! of definite radiographic sacroiliitis (grade ≥ 2 on both sides or ≥ 3 on one), and the r-axSpA /
//! nr-axSpA classification. Pure and synchronous: no I/O, no other module of the crate.

use std::fmt;

/// A sacroiliac joint grade by the modified New York criteria (van der Linden et al., 1984).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub enum JointGrade {
    /// 0: normal.
    Normal = 0,
    /// 1: suspicious changes.
    Suspicious = 1,
    /// 2: minimal abnormality.
    Minimal = 2,
    /// 3: unequivocal abnormality.
    Unequivocal = 3,
    /// 4: severe abnormality (total ankylosis).
    Ankylosis = 4,
}

/// A grade outside 0–4.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("joint grade {0} is not a modified New York grade (0–4)")]
pub struct InvalidGrade(pub i64);

impl JointGrade {
    /// All grades in order.
    pub const ALL: [JointGrade; 5] = [
        JointGrade::Normal,
        JointGrade::Suspicious,
        JointGrade::Minimal,
        JointGrade::Unequivocal,
        JointGrade::Ankylosis,
    ];

    /// The grade as a number 0–4.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The grade for a number, if it is 0–4.
    pub fn from_value(v: i64) -> Result<Self, InvalidGrade> {
        match v {
            0 => Ok(Self::Normal),
            1 => Ok(Self::Suspicious),
            2 => Ok(Self::Minimal),
            3 => Ok(Self::Unequivocal),
            4 => Ok(Self::Ankylosis),
            other => Err(InvalidGrade(other)),
        }
    }

    /// Short name, e.g. "minimal abnormality".
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Suspicious => "suspicious changes",
            Self::Minimal => "minimal abnormality",
            Self::Unequivocal => "unequivocal abnormality",
            Self::Ankylosis => "severe abnormality",
        }
    }

    /// The criterion's description, shown to readers as help.
    pub fn description(self) -> &'static str {
        match self {
            Self::Normal => "Normal joint.",
            Self::Suspicious => "Suspicious changes.",
            Self::Minimal => {
                "Minimal abnormality: small localised areas with erosion or sclerosis, without alteration in the joint width."
            }
            Self::Unequivocal => {
                "Unequivocal abnormality: moderate or advanced sacroiliitis with one or more of erosions, evidence of \
                 sclerosis, widening, narrowing, or partial ankylosis."
            }
            Self::Ankylosis => "Severe abnormality: total ankylosis.",
        }
    }
}

impl TryFrom<u8> for JointGrade {
    type Error = InvalidGrade;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Self::from_value(i64::from(v))
    }
}

impl From<JointGrade> for u8 {
    fn from(g: JointGrade) -> u8 {
        g.value()
    }
}

impl fmt::Display for JointGrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value())
    }
}

/// Side of the patient (the patient's left is on the viewer's right in an AP film).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Side {
    /// Patient's left.
    Left,
    /// Patient's right.
    Right,
}

/// Grades of both sacroiliac joints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct JointGrades {
    /// Left sacroiliac joint.
    pub left: JointGrade,
    /// Right sacroiliac joint.
    pub right: JointGrade,
}

impl JointGrades {
    /// Both grades.
    pub fn new(left: JointGrade, right: JointGrade) -> Self {
        Self { left, right }
    }

    /// The grade of one side.
    pub fn side(&self, side: Side) -> JointGrade {
        match side {
            Side::Left => self.left,
            Side::Right => self.right,
        }
    }

    /// Definite radiographic sacroiliitis by the modified New York criteria.
    pub fn definite_sacroiliitis(&self) -> bool {
        definite_sacroiliitis(self.left, self.right)
    }

    /// The classification these grades give.
    pub fn classification(&self) -> Classification {
        Classification::from_definite(self.definite_sacroiliitis())
    }

    /// Left and right swapped (a horizontally mirrored film).
    pub fn mirrored(&self) -> Self {
        Self {
            left: self.right,
            right: self.left,
        }
    }
}

/// Definite radiographic sacroiliitis: grade ≥ 2 bilaterally or grade ≥ 3 unilaterally.
pub fn definite_sacroiliitis(left: JointGrade, right: JointGrade) -> bool {
    let (l, r) = (left.value(), right.value());
    (l >= 2 && r >= 2) || l >= 3 || r >= 3
}

/// The probability of definite radiographic sacroiliitis when the two joints' grades are independent with
/// the distributions `left[g]` and `right[g]` (g = 0–4), exactly by the mNY rule: the film is not definite
/// only where both grades are ≤ 2 and not both 2, so P = 1 − (L≤2 · R≤2 − L=2 · R=2). A per-joint model's
/// film-level probability computed this way always agrees with its joint grades. Each distribution must
/// hold non-negative finite numbers summing to 1 (within 1e-6).
pub fn definite_probability(left: &[f64; 5], right: &[f64; 5]) -> Result<f64, String> {
    for (side, p) in [("left", left), ("right", right)] {
        let sum: f64 = p.iter().sum();
        if p.iter().any(|v| !v.is_finite() || *v < 0.0) || (sum - 1.0).abs() > 1e-6 {
            return Err(format!(
                "the {side} joint's grade probabilities {p:?} are not a distribution (non-negative, \
                 summing to 1)"
            ));
        }
    }
    let at_most_2 = |p: &[f64; 5]| p[0] + p[1] + p[2];
    let not_definite = at_most_2(left) * at_most_2(right) - left[2] * right[2];
    Ok((1.0 - not_definite).clamp(0.0, 1.0))
}

/// Axial spondyloarthritis by radiographic status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Classification {
    /// Radiographic axSpA: definite radiographic sacroiliitis.
    Radiographic,
    /// Non-radiographic axSpA: no definite radiographic sacroiliitis.
    NonRadiographic,
}

impl Classification {
    /// From the definite-sacroiliitis call.
    pub fn from_definite(definite: bool) -> Self {
        if definite {
            Self::Radiographic
        } else {
            Self::NonRadiographic
        }
    }

    /// "r-axSpA" or "nr-axSpA".
    pub fn abbreviation(self) -> &'static str {
        match self {
            Self::Radiographic => "r-axSpA",
            Self::NonRadiographic => "nr-axSpA",
        }
    }
}

/// What a reader concluded about a film.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Assessment {
    /// Both joints graded.
    Graded(JointGrades),
    /// The film cannot be assessed (e.g. rotated, overexposed, joints not in the field), with a reason.
    NotAssessable {
        /// Why.
        reason: String,
    },
}

/// One reader's reading of one film.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    /// The assessment.
    pub assessment: Assessment,
    /// Free-text comment.
    pub comment: Option<String>,
}

impl Reading {
    /// A graded reading without comment.
    pub fn graded(left: JointGrade, right: JointGrade) -> Self {
        Self {
            assessment: Assessment::Graded(JointGrades::new(left, right)),
            comment: None,
        }
    }

    /// The grades, if graded.
    pub fn grades(&self) -> Option<JointGrades> {
        match &self.assessment {
            Assessment::Graded(g) => Some(*g),
            Assessment::NotAssessable { .. } => None,
        }
    }

    /// The definite-sacroiliitis call, if graded.
    pub fn definite(&self) -> Option<bool> {
        self.grades().map(|g| g.definite_sacroiliitis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Point masses give the mNY rule on all 25 grade pairs; a hand-computed mixture; and random
    /// distributions equal the sum over all 25 pairs of P(l)·P(r)·[definite(l, r)].
    #[test]
    fn definite_probability_is_exact() {
        let point = |g: usize| {
            let mut p = [0.0; 5];
            p[g] = 1.0;
            p
        };
        for l in 0..5 {
            for r in 0..5 {
                let want = definite_sacroiliitis(
                    JointGrade::from_value(l as i64).unwrap(),
                    JointGrade::from_value(r as i64).unwrap(),
                );
                let p = definite_probability(&point(l), &point(r)).unwrap();
                assert_eq!(p, f64::from(u8::from(want)), "{l}/{r}");
            }
        }
        // Left 0 or 2 (half each), right 2: definite exactly when left is 2.
        let p = definite_probability(&[0.5, 0.0, 0.5, 0.0, 0.0], &point(2)).unwrap();
        assert!((p - 0.5).abs() < 1e-15);
        // Left 1 or 3 (0.7/0.3), right 0 or 2 (0.6/0.4): definite iff left is 3 → 0.3.
        let p =
            definite_probability(&[0.0, 0.7, 0.0, 0.3, 0.0], &[0.6, 0.0, 0.4, 0.0, 0.0]).unwrap();
        assert!((p - 0.3).abs() < 1e-15);
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64) / ((1u64 << 53) as f64)
        };
        for _ in 0..1000 {
            let mut dist = || {
                let v: [f64; 5] = std::array::from_fn(|_| next());
                let s: f64 = v.iter().sum();
                v.map(|x| x / s)
            };
            let (a, b) = (dist(), dist());
            let mut brute = 0.0;
            for (l, pl) in a.iter().enumerate() {
                for (r, pr) in b.iter().enumerate() {
                    if (l >= 2 && r >= 2) || l >= 3 || r >= 3 {
                        brute += pl * pr;
                    }
                }
            }
            assert!((definite_probability(&a, &b).unwrap() - brute).abs() < 1e-12);
        }
        assert!(definite_probability(&[0.5; 5], &point(0)).is_err());
        assert!(definite_probability(&[f64::NAN, 1.0, 0.0, 0.0, 0.0], &point(0)).is_err());
        assert!(definite_probability(&[-0.5, 1.5, 0.0, 0.0, 0.0], &point(0)).is_err());
    }

    /// All 25 grade pairs against the rule written out as a table (rows: left 0–4, columns: right 0–4).
    #[test]
    fn definite_over_all_25_pairs() {
        const TABLE: [[bool; 5]; 5] = [
            [false, false, false, true, true],
            [false, false, false, true, true],
            [false, false, true, true, true],
            [true, true, true, true, true],
            [true, true, true, true, true],
        ];
        for l in JointGrade::ALL {
            for r in JointGrade::ALL {
                let want = TABLE[l.value() as usize][r.value() as usize];
                let g = JointGrades::new(l, r);
                assert_eq!(g.definite_sacroiliitis(), want, "left {l} right {r}");
                assert_eq!(g.mirrored().definite_sacroiliitis(), want, "symmetric");
                assert_eq!(
                    g.classification(),
                    if want {
                        Classification::Radiographic
                    } else {
                        Classification::NonRadiographic
                    }
                );
            }
        }
        let positives = JointGrade::ALL
            .iter()
            .flat_map(|&l| {
                JointGrade::ALL
                    .iter()
                    .map(move |&r| definite_sacroiliitis(l, r))
            })
            .filter(|&d| d)
            .count();
        assert_eq!(
            positives,
            16 + 1,
            "the 16 pairs with a 3 or 4 on either side, plus 2/2"
        );
    }

    #[test]
    fn grades_outside_range_are_refused() {
        assert_eq!(JointGrade::from_value(5), Err(InvalidGrade(5)));
        assert_eq!(JointGrade::from_value(-1), Err(InvalidGrade(-1)));
        assert!(serde_json::from_str::<JointGrade>("7").is_err());
        assert_eq!(
            serde_json::from_str::<JointGrade>("3").unwrap(),
            JointGrade::Unequivocal
        );
    }

    #[test]
    fn not_assessable_has_no_call() {
        let r = Reading {
            assessment: Assessment::NotAssessable {
                reason: "joints outside the field".into(),
            },
            comment: None,
        };
        assert_eq!(r.definite(), None);
        assert_eq!(
            Reading::graded(JointGrade::Minimal, JointGrade::Minimal).definite(),
            Some(true)
        );
        assert_eq!(Classification::Radiographic.abbreviation(), "r-axSpA");
    }
}
