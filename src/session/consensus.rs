//! Who reads which case, and the consensus label of a case, from the readings alone (pure functions).

use super::{Protocol, ReaderInfo, ReadingRecord, Role};
use crate::grading::{JointGrade, JointGrades};

/// How a case's label was reached (or why it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ConsensusMethod {
    /// The primary readers agree.
    Agreement,
    /// Majority of three readers (adjudicated protocol).
    Majority,
    /// An adjudicator's reading decides (two-central protocol with an adjudicator).
    Adjudication,
    /// The only reader's call (single-reader protocol).
    Single,
    /// Not every primary reader has read the case yet.
    AwaitingReadings,
    /// The primary readers disagree and the adjudicating reading is missing.
    AwaitingAdjudication,
    /// No label: readers disagree with no adjudication, or the deciding reader found it not assessable.
    Unresolved,
}

impl ConsensusMethod {
    /// Name used in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agreement => "agreement",
            Self::Majority => "majority",
            Self::Adjudication => "adjudication",
            Self::Single => "single",
            Self::AwaitingReadings => "awaiting_readings",
            Self::AwaitingAdjudication => "awaiting_adjudication",
            Self::Unresolved => "unresolved",
        }
    }
}

/// One reader's call on a case, as shown in the consensus.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReaderCall {
    /// Reader.
    pub reader: String,
    /// Role.
    pub role: Role,
    /// Left joint grade (None if not assessable).
    pub left: Option<JointGrade>,
    /// Right joint grade.
    pub right: Option<JointGrade>,
    /// Definite sacroiliitis call (None if not assessable).
    pub definite: Option<bool>,
}

/// The consensus of one case.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseConsensus {
    /// Case ID.
    pub case_id: String,
    /// Final label: definite radiographic sacroiliitis, if reached.
    pub label: Option<bool>,
    /// How.
    pub method: ConsensusMethod,
    /// Every reader's call on the case.
    pub calls: Vec<ReaderCall>,
}

fn call_of(readings: &[&ReadingRecord], role: Role) -> Option<Option<bool>> {
    readings
        .iter()
        .find(|r| r.role == role)
        .map(|r| r.reading.definite())
}

/// Both primary readers have read the case and do not agree on a definite call (not assessable counts as
/// disagreement, since it gives no label).
fn primary_disagree(readings: &[&ReadingRecord], a: Role, b: Role) -> bool {
    match (call_of(readings, a), call_of(readings, b)) {
        (Some(x), Some(y)) => x.is_none() || y.is_none() || x != y,
        _ => false,
    }
}

/// Whether a case is on a reader's work list, given the case's readings so far. A case the reader has
/// already read stays on their list.
pub fn assigned(protocol: Protocol, reader: &ReaderInfo, readings: &[&ReadingRecord]) -> bool {
    if readings.iter().any(|r| r.reader == reader.name) {
        return true;
    }
    match (protocol, reader.role) {
        (_, Role::Reader) => true,
        (Protocol::Adjudicated, Role::Local | Role::Central1) => true,
        (Protocol::Adjudicated, Role::Central2) => {
            primary_disagree(readings, Role::Local, Role::Central1)
        }
        (Protocol::TwoCentral, Role::Central1 | Role::Central2) => true,
        (Protocol::TwoCentral, Role::Adjudicator) => {
            primary_disagree(readings, Role::Central1, Role::Central2)
        }
        _ => false,
    }
}

/// The consensus of one case from its readings.
pub fn consensus_for_case(
    protocol: Protocol,
    case_id: &str,
    readings: &[&ReadingRecord],
    readers: &[ReaderInfo],
) -> CaseConsensus {
    let calls = readings
        .iter()
        .map(|r| {
            let g = r.reading.grades();
            ReaderCall {
                reader: r.reader.clone(),
                role: r.role,
                left: g.map(|g| g.left),
                right: g.map(|g| g.right),
                definite: r.reading.definite(),
            }
        })
        .collect();
    let (label, method) = match protocol {
        Protocol::Single => single(readings),
        Protocol::Adjudicated => adjudicated(readings),
        Protocol::TwoCentral => two_central(
            readings,
            readers.iter().any(|r| r.role == Role::Adjudicator),
        ),
    };
    CaseConsensus {
        case_id: case_id.to_string(),
        label,
        method,
        calls,
    }
}

fn single(readings: &[&ReadingRecord]) -> (Option<bool>, ConsensusMethod) {
    let calls: Vec<Option<bool>> = readings
        .iter()
        .filter(|r| r.role == Role::Reader)
        .map(|r| r.reading.definite())
        .collect();
    if calls.is_empty() {
        return (None, ConsensusMethod::AwaitingReadings);
    }
    let yes = calls.iter().filter(|c| **c == Some(true)).count();
    let no = calls.iter().filter(|c| **c == Some(false)).count();
    match (calls.len(), yes, no) {
        (1, 1, 0) => (Some(true), ConsensusMethod::Single),
        (1, 0, 1) => (Some(false), ConsensusMethod::Single),
        (n, y, 0) if y == n => (Some(true), ConsensusMethod::Agreement),
        (n, 0, m) if m == n => (Some(false), ConsensusMethod::Agreement),
        (n, y, _) if 2 * y > n => (Some(true), ConsensusMethod::Majority),
        (n, _, m) if 2 * m > n => (Some(false), ConsensusMethod::Majority),
        _ => (None, ConsensusMethod::Unresolved),
    }
}

fn adjudicated(readings: &[&ReadingRecord]) -> (Option<bool>, ConsensusMethod) {
    let (Some(local), Some(c1)) = (
        call_of(readings, Role::Local),
        call_of(readings, Role::Central1),
    ) else {
        return (None, ConsensusMethod::AwaitingReadings);
    };
    if local.is_some() && local == c1 {
        return (local, ConsensusMethod::Agreement);
    }
    let Some(c2) = call_of(readings, Role::Central2) else {
        return (None, ConsensusMethod::AwaitingAdjudication);
    };
    let votes: Vec<bool> = [local, c1, c2].into_iter().flatten().collect();
    let yes = votes.iter().filter(|v| **v).count();
    let no = votes.len() - yes;
    if yes > no && yes >= 2 {
        (Some(true), ConsensusMethod::Majority)
    } else if no > yes && no >= 2 {
        (Some(false), ConsensusMethod::Majority)
    } else {
        (None, ConsensusMethod::Unresolved)
    }
}

fn two_central(
    readings: &[&ReadingRecord],
    has_adjudicator: bool,
) -> (Option<bool>, ConsensusMethod) {
    let (Some(a), Some(b)) = (
        call_of(readings, Role::Central1),
        call_of(readings, Role::Central2),
    ) else {
        return (None, ConsensusMethod::AwaitingReadings);
    };
    if a.is_some() && a == b {
        return (a, ConsensusMethod::Agreement);
    }
    if !has_adjudicator {
        return (None, ConsensusMethod::Unresolved);
    }
    match call_of(readings, Role::Adjudicator) {
        None => (None, ConsensusMethod::AwaitingAdjudication),
        Some(None) => (None, ConsensusMethod::Unresolved),
        Some(Some(call)) => (Some(call), ConsensusMethod::Adjudication),
    }
}

/// How a case's per-joint consensus grades were reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum JointRule {
    /// The adjudicating reader's grades (central 2 in the adjudicated protocol, the adjudicator in the
    /// two-central one), where they read the case.
    Adjudicator,
    /// Each joint's median over this many graded readings (for an even count, the lower middle grade).
    Median(usize),
}

/// A case's consensus grade of each joint, the label of a per-joint grader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct JointConsensus {
    /// The grades.
    pub grades: JointGrades,
    /// How they were reached.
    pub rule: JointRule,
}

/// The per-joint consensus of a case from its readings: the adjudicating reader's grades where the
/// protocol adjudicates and they graded the case; else, joint by joint, the median of every graded
/// reading (the lower middle grade for an even count, so that two readers' 1 and 3 give 1: a joint is
/// not called worse than half its readers saw it). None when no reading grades the film.
pub fn joint_consensus(protocol: Protocol, readings: &[&ReadingRecord]) -> Option<JointConsensus> {
    let adjudicator = match protocol {
        Protocol::Adjudicated => Some(Role::Central2),
        Protocol::TwoCentral => Some(Role::Adjudicator),
        Protocol::Single => None,
    };
    if let Some(g) = adjudicator
        .and_then(|role| readings.iter().find(|r| r.role == role))
        .and_then(|r| r.reading.grades())
    {
        return Some(JointConsensus {
            grades: g,
            rule: JointRule::Adjudicator,
        });
    }
    let graded: Vec<JointGrades> = readings.iter().filter_map(|r| r.reading.grades()).collect();
    if graded.is_empty() {
        return None;
    }
    let median = |side: fn(&JointGrades) -> JointGrade| {
        let mut v: Vec<JointGrade> = graded.iter().map(side).collect();
        v.sort();
        v[(v.len() - 1) / 2]
    };
    Some(JointConsensus {
        grades: JointGrades::new(median(|g| g.left), median(|g| g.right)),
        rule: JointRule::Median(graded.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graded(reader: &str, role: Role, l: i64, r: i64) -> ReadingRecord {
        let g = |v| JointGrade::from_value(v).unwrap();
        rec(reader, role, g(l), g(r))
    }

    #[test]
    fn joint_consensus_is_the_adjudicator_else_the_lower_median() {
        let (a, b) = (
            graded("a", Role::Central1, 1, 4),
            graded("b", Role::Central2, 3, 2),
        );
        // Two central readers: lower middle grade per joint.
        let c = joint_consensus(Protocol::TwoCentral, &[&a, &b]).unwrap();
        assert_eq!((c.grades.left.value(), c.grades.right.value()), (1, 2));
        assert_eq!(c.rule, JointRule::Median(2));
        // The adjudicator decides where they read the case.
        let adj = graded("c", Role::Adjudicator, 2, 2);
        let c = joint_consensus(Protocol::TwoCentral, &[&a, &b, &adj]).unwrap();
        assert_eq!(
            (c.grades.left.value(), c.grades.right.value(), c.rule),
            (2, 2, JointRule::Adjudicator)
        );
        // Adjudicated protocol: central 2 is the adjudicator.
        let local = graded("l", Role::Local, 0, 0);
        let c = joint_consensus(Protocol::Adjudicated, &[&local, &a, &b]).unwrap();
        assert_eq!((c.grades.left.value(), c.rule), (3, JointRule::Adjudicator));
        // Three readers: the middle one.
        let r: Vec<ReadingRecord> = [(0, 4), (2, 1), (4, 3)]
            .iter()
            .enumerate()
            .map(|(i, (l, r))| graded(&format!("r{i}"), Role::Reader, *l, *r))
            .collect();
        let refs: Vec<&ReadingRecord> = r.iter().collect();
        let c = joint_consensus(Protocol::Single, &refs).unwrap();
        assert_eq!((c.grades.left.value(), c.grades.right.value()), (2, 3));
        assert!(joint_consensus(Protocol::Single, &[]).is_none());
    }
    use crate::grading::{Assessment, JointGrade as G, Reading};

    fn rec(reader: &str, role: Role, l: G, r: G) -> ReadingRecord {
        ReadingRecord {
            case_id: "C1".into(),
            reader: reader.into(),
            role,
            reading: Reading::graded(l, r),
            committed_at: String::new(),
        }
    }

    fn na(reader: &str, role: Role) -> ReadingRecord {
        ReadingRecord {
            case_id: "C1".into(),
            reader: reader.into(),
            role,
            reading: Reading {
                assessment: Assessment::NotAssessable {
                    reason: "rotated".into(),
                },
                comment: None,
            },
            committed_at: String::new(),
        }
    }

    fn reader(name: &str, role: Role) -> ReaderInfo {
        ReaderInfo {
            id: 0,
            name: name.into(),
            role,
        }
    }

    #[test]
    fn adjudicated_protocol() {
        let pos = rec("L", Role::Local, G::Minimal, G::Minimal);
        let neg = rec("C1", Role::Central1, G::Suspicious, G::Minimal);
        let c2_pos = rec("C2", Role::Central2, G::Unequivocal, G::Normal);
        let readers = [
            reader("L", Role::Local),
            reader("C1", Role::Central1),
            reader("C2", Role::Central2),
        ];
        let c =
            |rs: &[&ReadingRecord]| consensus_for_case(Protocol::Adjudicated, "C1", rs, &readers);
        assert_eq!(c(&[&pos]).method, ConsensusMethod::AwaitingReadings);
        let agree = rec("C1", Role::Central1, G::Unequivocal, G::Normal);
        assert_eq!(c(&[&pos, &agree]).label, Some(true));
        assert_eq!(c(&[&pos, &agree]).method, ConsensusMethod::Agreement);
        assert_eq!(
            c(&[&pos, &neg]).method,
            ConsensusMethod::AwaitingAdjudication
        );
        assert!(assigned(Protocol::Adjudicated, &readers[2], &[&pos, &neg]));
        assert!(!assigned(
            Protocol::Adjudicated,
            &readers[2],
            &[&pos, &agree]
        ));
        assert!(!assigned(Protocol::Adjudicated, &readers[2], &[&pos]));
        let done = c(&[&pos, &neg, &c2_pos]);
        assert_eq!(
            (done.label, done.method),
            (Some(true), ConsensusMethod::Majority)
        );
        assert_eq!(done.calls.len(), 3);
        // Local not assessable: central 2 reads; two agreeing votes make a majority.
        let l_na = na("L", Role::Local);
        assert!(assigned(Protocol::Adjudicated, &readers[2], &[&l_na, &neg]));
        let c2_neg = rec("C2", Role::Central2, G::Normal, G::Normal);
        assert_eq!(c(&[&l_na, &neg, &c2_neg]).label, Some(false));
        assert_eq!(
            c(&[&l_na, &neg, &c2_pos]).method,
            ConsensusMethod::Unresolved
        );
    }

    #[test]
    fn two_central_protocol() {
        let a = rec("A", Role::Central1, G::Ankylosis, G::Ankylosis);
        let b = rec("B", Role::Central2, G::Normal, G::Normal);
        let no_adj = [reader("A", Role::Central1), reader("B", Role::Central2)];
        let r = consensus_for_case(Protocol::TwoCentral, "C1", &[&a, &b], &no_adj);
        assert_eq!((r.label, r.method), (None, ConsensusMethod::Unresolved));
        let with_adj = [
            reader("A", Role::Central1),
            reader("B", Role::Central2),
            reader("X", Role::Adjudicator),
        ];
        let r = consensus_for_case(Protocol::TwoCentral, "C1", &[&a, &b], &with_adj);
        assert_eq!(r.method, ConsensusMethod::AwaitingAdjudication);
        assert!(assigned(Protocol::TwoCentral, &with_adj[2], &[&a, &b]));
        let x = rec("X", Role::Adjudicator, G::Minimal, G::Normal);
        let r = consensus_for_case(Protocol::TwoCentral, "C1", &[&a, &b, &x], &with_adj);
        assert_eq!(
            (r.label, r.method),
            (Some(false), ConsensusMethod::Adjudication)
        );
        let b2 = rec("B", Role::Central2, G::Unequivocal, G::Normal);
        let r = consensus_for_case(Protocol::TwoCentral, "C1", &[&a, &b2], &no_adj);
        assert_eq!(
            (r.label, r.method),
            (Some(true), ConsensusMethod::Agreement)
        );
    }

    #[test]
    fn single_protocol() {
        let a = rec("A", Role::Reader, G::Minimal, G::Minimal);
        let readers = [reader("A", Role::Reader)];
        let r = consensus_for_case(Protocol::Single, "C1", &[&a], &readers);
        assert_eq!((r.label, r.method), (Some(true), ConsensusMethod::Single));
        let r = consensus_for_case(Protocol::Single, "C1", &[], &readers);
        assert_eq!(r.method, ConsensusMethod::AwaitingReadings);
        let b = rec("B", Role::Reader, G::Normal, G::Minimal);
        let r = consensus_for_case(Protocol::Single, "C1", &[&a, &b], &readers);
        assert_eq!(r.method, ConsensusMethod::Unresolved);
    }
}
