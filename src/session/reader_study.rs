//! Reader studies in the aided design: does the model help readers? Every reader with the role `reader`
//! reads every case twice, in two arms: **unaided** (the film alone) and **aided** (the model's
//! probability, calls and heatmap shown before grading), each reading with a confidence score 0–100
//! (the reader's probability of definite sacroiliitis) for ROC analysis.
//!
//! The rules, the same for every store (pure functions over the study's rows and a clock the caller
//! gives):
//! - **counterbalanced arm order**: the 1st, 3rd, 5th… arm reader (by the order readers were added)
//!   reads unaided first, the 2nd, 4th… aided first;
//! - **separate sessions**: a reader's work list holds their first arm until every case is read in it,
//!   then their second arm; a case's order is randomised per reader and per arm;
//! - **washout**: a case's second-arm reading is offered only once the washout (days) has passed since
//!   its first-arm reading was committed (or last changed);
//! - **no carry-over**: a reader is never shown their own other-arm reading of a case; a first-arm
//!   reading cannot change once the second-arm reading of that case exists;
//! - **the model**: shown to an arm reader for a case only while its aided reading is due, and after both
//!   arms are read (where the study reveals the model after commit).
//!
//! Other roles (central readers, adjudicator) read as in any study: their consensus can be the truth of
//! the reader study, or a reference file gives it (`sacro study export --mrmc`).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::rules::{mix, order_key};
use super::{ReaderInfo, Role, StoreError, StoreResult, StudySettings, WorklistEntry};
use crate::grading::Reading;

/// An arm of the aided design.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// The film alone.
    Unaided,
    /// The model's output shown before grading.
    Aided,
}

impl Arm {
    /// Both arms.
    pub const ALL: [Arm; 2] = [Arm::Unaided, Arm::Aided];

    /// Name in the store, on the command line and in exports (the MRMC modality).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unaided => "unaided",
            Self::Aided => "aided",
        }
    }

    /// Parses the name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unaided" => Some(Self::Unaided),
            "aided" => Some(Self::Aided),
            _ => None,
        }
    }

    /// The other arm.
    pub fn other(self) -> Self {
        match self {
            Self::Unaided => Self::Aided,
            Self::Aided => Self::Unaided,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a study's readings are organised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Design {
    /// Each reader reads each case once (the default).
    #[default]
    Standard,
    /// Readers with the role `reader` read every case unaided and aided, with a washout between.
    Aided {
        /// Days between a case's first-arm and second-arm reading.
        washout_days: u32,
    },
}

impl Design {
    /// The washout of the aided design.
    pub fn washout(self) -> Option<Duration> {
        match self {
            Self::Standard => None,
            Self::Aided { washout_days } => Some(Duration::days(i64::from(washout_days))),
        }
    }

    /// Whether this reader reads in arms in this design.
    pub fn reads_in_arms(self, reader: &ReaderInfo) -> bool {
        matches!(self, Self::Aided { .. }) && reader.role == Role::Reader
    }
}

/// Longest washout accepted (a year).
pub const MAX_WASHOUT_DAYS: u32 = 366;

/// A committed reading in one arm.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArmReadingRecord {
    /// Case ID.
    pub case_id: String,
    /// Reader name.
    pub reader: String,
    /// The arm.
    pub arm: Arm,
    /// The grades (or not assessable).
    pub reading: Reading,
    /// The reader's confidence of definite sacroiliitis, 0–100.
    pub confidence: u8,
    /// When committed or last changed (UTC, RFC 3339).
    pub committed_at: String,
}

/// An arm reading to commit.
#[derive(Debug, Clone, Copy)]
pub struct ArmCommit<'a> {
    /// The arm.
    pub arm: Arm,
    /// The grades (or not assessable).
    pub reading: &'a Reading,
    /// The reader's confidence of definite sacroiliitis, 0–100.
    pub confidence: u8,
    /// Why an earlier reading in this arm is changed (needed for a change).
    pub reason: Option<&'a str>,
    /// When (decides the washout; recorded as the reading's time).
    pub now: DateTime<Utc>,
}

/// Commits an arm reader's reading now, in `arm` or (None) the arm their work list holds: the one
/// path of the command line and the app. A missing confidence is refused with what to give.
#[allow(clippy::too_many_arguments)]
pub fn commit_now(
    store: &dyn super::StudyStore,
    reader: &str,
    case_id: &str,
    arm: Option<Arm>,
    reading: &Reading,
    confidence: Option<u8>,
    reason: Option<&str>,
) -> StoreResult<(Arm, super::CommitOutcome)> {
    let confidence = confidence.ok_or_else(|| {
        StoreError::Invalid(format!(
            "{reader} reads in the reader study's arms: a reading needs the confidence 0–100 that \
             the film shows definite sacroiliitis (--confidence N; in the app the digit keys or the \
             slider)"
        ))
    })?;
    let now = Utc::now();
    let arm = match arm {
        Some(a) => a,
        None => store.arm_plan(reader, now)?.current,
    };
    let commit = ArmCommit {
        arm,
        reading,
        confidence,
        reason,
        now,
    };
    Ok((arm, store.commit_arm_reading(reader, case_id, &commit)?))
}

/// Parses a store timestamp.
pub fn parse_time(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Invalid(format!("timestamp {s:?} unreadable: {e}")))
}

/// A timestamp as the stores write it (UTC, milliseconds).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Checks a confidence score.
pub fn validate_confidence(confidence: u8) -> StoreResult<()> {
    if confidence > 100 {
        return Err(StoreError::Invalid(format!(
            "confidence {confidence}: 0–100 needed (the probability of definite sacroiliitis, in %)"
        )));
    }
    Ok(())
}

/// The arm a reader reads first: counterbalanced by their place among the study's arm readers.
pub fn first_arm(readers: &[ReaderInfo], reader: &ReaderInfo) -> Arm {
    let place = readers
        .iter()
        .filter(|r| r.role == Role::Reader && r.id < reader.id)
        .count();
    if place % 2 == 0 {
        Arm::Unaided
    } else {
        Arm::Aided
    }
}

/// Position key of a case in a reader's order within one arm.
fn arm_key(seed: u64, reader_id: i64, arm: Arm, case_id: &str) -> u64 {
    order_key(seed ^ mix(0xA5A5 + arm.index() as u64), reader_id, case_id)
}

/// Where an arm reader stands at a given time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArmPlan {
    /// The reader.
    pub reader: String,
    /// The arm they read first.
    pub first: Arm,
    /// The arm their work list holds now.
    pub current: Arm,
    /// The work list: the current arm's cases that are read or may be read now, in this reader's order
    /// for the arm.
    #[serde(skip)]
    pub entries: Vec<WorklistEntry>,
    /// Cases in the study.
    pub cases: usize,
    /// Cases read unaided.
    pub unaided_done: usize,
    /// Cases read aided.
    pub aided_done: usize,
    /// Second-arm readings not yet offered because the washout has not passed.
    pub waiting: usize,
    /// When the next waiting case is offered (UTC, RFC 3339).
    pub next_open: Option<String>,
    /// When the last waiting case is offered.
    pub last_open: Option<String>,
}

impl ArmPlan {
    /// Cases read in an arm.
    pub fn done(&self, arm: Arm) -> usize {
        match arm {
            Arm::Unaided => self.unaided_done,
            Arm::Aided => self.aided_done,
        }
    }

    /// One line: the arm order, progress per arm, and when the cases waiting for the washout open.
    pub fn summary(&self) -> String {
        let minute = |t: &str| t.get(..16).unwrap_or(t).replace('T', " ") + " UTC";
        let waiting = match (&self.next_open, &self.last_open) {
            (Some(next), Some(last)) if next != last => format!(
                "; {} wait for the washout (first opens {}, last {})",
                self.waiting,
                minute(next),
                minute(last)
            ),
            (Some(next), _) => format!(
                "; {} wait for the washout (open {})",
                self.waiting,
                minute(next)
            ),
            _ => String::new(),
        };
        format!(
            "{} first; unaided {}/{}, aided {}/{}; now reading {}{waiting}",
            self.first.as_str(),
            self.unaided_done,
            self.cases,
            self.aided_done,
            self.cases,
            self.current.as_str()
        )
    }

    /// Whether the reader may read (or change) this case in this arm now.
    pub fn offers(&self, case_id: &str, arm: Arm) -> bool {
        arm == self.current && self.entries.iter().any(|e| e.case_id == case_id)
    }
}

/// Everything the rules need about one study, as the store read it.
pub struct ArmContext<'a> {
    /// Design (must be aided).
    pub design: Design,
    /// Seed of the case order.
    pub seed: u64,
    /// All readers.
    pub readers: &'a [ReaderInfo],
    /// All case IDs.
    pub case_ids: &'a [String],
    /// The arm readings (at least those of the reader the rules are asked about).
    pub readings: &'a [ArmReadingRecord],
    /// The time to decide at.
    pub now: DateTime<Utc>,
}

impl ArmContext<'_> {
    fn washout(&self) -> StoreResult<Duration> {
        self.design.washout().ok_or_else(|| {
            StoreError::Invalid("this study is not a reader study (no --design aided)".into())
        })
    }

    fn own<'r>(&'r self, reader: &str) -> HashMap<(&'r str, Arm), &'r ArmReadingRecord> {
        self.readings
            .iter()
            .filter(|r| r.reader == reader)
            .map(|r| ((r.case_id.as_str(), r.arm), r))
            .collect()
    }

    /// The reader's plan.
    pub fn plan(&self, reader: &ReaderInfo) -> StoreResult<ArmPlan> {
        let washout = self.washout()?;
        if reader.role != Role::Reader {
            return Err(StoreError::Invalid(format!(
                "{} reads as {} in this study, not in the reader study's arms (only the role reader \
                 does)",
                reader.name,
                reader.role.as_str()
            )));
        }
        let first = first_arm(self.readers, reader);
        let second = first.other();
        let own = self.own(&reader.name);
        let done_in = |arm: Arm| {
            self.case_ids
                .iter()
                .filter(|c| own.contains_key(&(c.as_str(), arm)))
                .count()
        };
        let first_complete = done_in(first) == self.case_ids.len();
        let current = if first_complete { second } else { first };
        let mut entries: Vec<(u64, WorklistEntry)> = Vec::new();
        let (mut waiting, mut next_open, mut last_open) = (0, None::<DateTime<Utc>>, None);
        for case_id in self.case_ids {
            let done = own.contains_key(&(case_id.as_str(), current));
            let open = if current == first || done {
                true
            } else {
                let at = own
                    .get(&(case_id.as_str(), first))
                    .map(|r| parse_time(&r.committed_at))
                    .transpose()?
                    .map(|t| t + washout);
                match at {
                    Some(at) if at <= self.now => true,
                    Some(at) => {
                        waiting += 1;
                        next_open = Some(next_open.map_or(at, |n: DateTime<Utc>| n.min(at)));
                        last_open = Some(last_open.map_or(at, |n: DateTime<Utc>| n.max(at)));
                        false
                    }
                    None => false,
                }
            };
            if open {
                entries.push((
                    arm_key(self.seed, reader.id, current, case_id),
                    WorklistEntry {
                        case_id: case_id.clone(),
                        done,
                        arm: Some(current),
                    },
                ));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.case_id.cmp(&b.1.case_id)));
        Ok(ArmPlan {
            reader: reader.name.clone(),
            first,
            current,
            entries: entries.into_iter().map(|(_, e)| e).collect(),
            cases: self.case_ids.len(),
            unaided_done: done_in(Arm::Unaided),
            aided_done: done_in(Arm::Aided),
            waiting,
            next_open: next_open.map(format_time),
            last_open: last_open.map(format_time),
        })
    }

    /// Whether the reader may commit (or change) their reading of `case_id` in `arm` now; returns their
    /// earlier reading in that arm, if any. Each refusal says why.
    pub fn check_commit(
        &self,
        reader: &ReaderInfo,
        case_id: &str,
        arm: Arm,
    ) -> StoreResult<Option<&ArmReadingRecord>> {
        let washout = self.washout()?;
        if !self.case_ids.iter().any(|c| c == case_id) {
            return Err(StoreError::UnknownCase(case_id.to_string()));
        }
        let plan = self.plan(reader)?;
        let own = self.own(&reader.name);
        let old = own.get(&(case_id, arm)).copied();
        if plan.offers(case_id, arm) {
            return Ok(old);
        }
        let name = &reader.name;
        let why = if arm == plan.first && !own.contains_key(&(case_id, arm.other())) {
            format!(
                "{name} has read every case {}: that arm is closed, {} is read now",
                arm.as_str(),
                arm.other().as_str()
            )
        } else if arm == plan.first {
            format!(
                "the {} reading of case {case_id} by {name} is committed: its {} reading can no longer \
                 change",
                arm.other().as_str(),
                arm.as_str()
            )
        } else if plan.current == plan.first {
            format!(
                "{name} reads {} first: {} case(s) are still to be read in that arm before the {} arm \
                 opens",
                plan.first.as_str(),
                plan.cases - plan.done(plan.first),
                arm.as_str()
            )
        } else {
            let opens = own
                .get(&(case_id, plan.first))
                .map(|r| parse_time(&r.committed_at))
                .transpose()?
                .map(|t| format_time(t + washout))
                .unwrap_or_default();
            format!(
                "case {case_id}: the {} reading by {name} opens at {opens}, after the washout since its \
                 {} reading",
                arm.as_str(),
                plan.first.as_str()
            )
        };
        Err(StoreError::Invalid(why))
    }

    /// Whether the reader may see the model's output for a case now: while its aided reading is offered,
    /// and once both arms are read if the study reveals the model after commit.
    pub fn model_visible(
        &self,
        reader: &ReaderInfo,
        case_id: &str,
        settings: &StudySettings,
    ) -> StoreResult<Result<(), &'static str>> {
        let plan = self.plan(reader)?;
        if plan.offers(case_id, Arm::Aided) {
            return Ok(Ok(()));
        }
        let own = self.own(&reader.name);
        let both = Arm::ALL.iter().all(|a| own.contains_key(&(case_id, *a)));
        Ok(if !both {
            Err(
                "outside the aided arm of the reader study (the model is shown only while reading aided)",
            )
        } else if settings.reveal_model_after_commit {
            Ok(())
        } else {
            Err("in this study (coordinator setting)")
        })
    }
}

/// One row of the long format of a reader study: `reader,modality,case,truth,rating`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MrmcRow {
    /// Reader.
    pub reader: String,
    /// Modality: the arm.
    pub modality: &'static str,
    /// Case ID.
    pub case: String,
    /// Truth (None where the case has none).
    pub truth: Option<bool>,
    /// The confidence score.
    pub rating: u8,
}

/// The arm readings as MRMC rows, by reader (in the order readers were added), arm and case.
pub fn mrmc_rows(
    readers: &[ReaderInfo],
    readings: &[ArmReadingRecord],
    truth: &HashMap<String, bool>,
) -> Vec<MrmcRow> {
    let place: HashMap<&str, i64> = readers.iter().map(|r| (r.name.as_str(), r.id)).collect();
    let mut rows: Vec<&ArmReadingRecord> = readings.iter().collect();
    rows.sort_by(|a, b| {
        (place.get(a.reader.as_str()), a.arm, &a.case_id).cmp(&(
            place.get(b.reader.as_str()),
            b.arm,
            &b.case_id,
        ))
    });
    rows.into_iter()
        .map(|r| MrmcRow {
            reader: r.reader.clone(),
            modality: r.arm.as_str(),
            case: r.case_id.clone(),
            truth: truth.get(&r.case_id).copied(),
            rating: r.confidence,
        })
        .collect()
}

/// The truth of each case from the study's consensus (cases without a consensus label have none).
pub fn consensus_truth(store: &dyn super::StudyStore) -> StoreResult<HashMap<String, bool>> {
    Ok(super::consensus(store)?
        .into_iter()
        .filter_map(|c| c.label.map(|l| (c.case_id, l)))
        .collect())
}

/// A reader study ready for [`crate::stats::mrmc::analyse`], with what was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossedStudy {
    /// Arm readers × both arms × the cases kept.
    pub study: crate::stats::mrmc::Study,
    /// Cases left out for want of a truth.
    pub without_truth: usize,
    /// Cases left out because not every arm reader has read them in both arms yet.
    pub incomplete: usize,
}

/// The arm readings as a fully crossed study (the analysis needs every reader's rating of every case in
/// both arms): the arm readers who have read anything, both arms, and the cases with a truth that every
/// one of them has read in both arms. While the study runs this is the interim analysis of the cases
/// complete so far.
pub fn crossed_study(
    readers: &[ReaderInfo],
    readings: &[ArmReadingRecord],
    truth: &HashMap<String, bool>,
    case_ids: &[String],
) -> CrossedStudy {
    let arm_readers: Vec<&ReaderInfo> = readers
        .iter()
        .filter(|r| r.role == Role::Reader && readings.iter().any(|a| a.reader == r.name))
        .collect();
    let rating: HashMap<(&str, Arm, &str), f64> = readings
        .iter()
        .map(|a| {
            (
                (a.reader.as_str(), a.arm, a.case_id.as_str()),
                f64::from(a.confidence),
            )
        })
        .collect();
    let (mut without_truth, mut incomplete) = (0, 0);
    let mut kept = Vec::new();
    for c in case_ids {
        if !truth.contains_key(c) {
            without_truth += 1;
        } else if arm_readers.iter().all(|r| {
            Arm::ALL
                .iter()
                .all(|a| rating.contains_key(&(r.name.as_str(), *a, c.as_str())))
        }) {
            kept.push(c.clone());
        } else {
            incomplete += 1;
        }
    }
    let mut ratings = Vec::with_capacity(2 * arm_readers.len() * kept.len());
    for arm in Arm::ALL {
        for r in &arm_readers {
            for c in &kept {
                ratings.push(
                    rating
                        .get(&(r.name.as_str(), arm, c.as_str()))
                        .copied()
                        .unwrap_or(f64::NAN),
                );
            }
        }
    }
    CrossedStudy {
        study: crate::stats::mrmc::Study {
            modalities: Arm::ALL.iter().map(|a| a.as_str().to_string()).collect(),
            readers: arm_readers.iter().map(|r| r.name.clone()).collect(),
            truth: kept.iter().map(|c| truth[c]).collect(),
            cases: kept,
            ratings,
        },
        without_truth,
        incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(id: i64, role: Role) -> ReaderInfo {
        ReaderInfo {
            id,
            name: format!("r{id}"),
            role,
        }
    }

    fn reading(reader: &str, case: &str, arm: Arm, at: &str) -> ArmReadingRecord {
        ArmReadingRecord {
            case_id: case.into(),
            reader: reader.into(),
            arm,
            reading: Reading::graded(
                crate::grading::JointGrade::Normal,
                crate::grading::JointGrade::Normal,
            ),
            confidence: 10,
            committed_at: at.into(),
        }
    }

    #[test]
    fn arm_order_is_counterbalanced_among_arm_readers() {
        let readers = [
            reader(1, Role::Central1),
            reader(2, Role::Reader),
            reader(3, Role::Reader),
            reader(4, Role::Reader),
        ];
        let firsts: Vec<Arm> = readers[1..]
            .iter()
            .map(|r| first_arm(&readers, r))
            .collect();
        assert_eq!(firsts, [Arm::Unaided, Arm::Aided, Arm::Unaided]);
    }

    #[test]
    fn second_arm_waits_for_the_whole_first_arm_and_the_washout() {
        let readers = [reader(1, Role::Reader)];
        let cases: Vec<String> = (1..=3).map(|i| format!("C{i}")).collect();
        let t0 = "2026-01-01T10:00:00.000Z";
        let mut readings = vec![reading("r1", "C1", Arm::Unaided, t0)];
        let ctx = |readings: &[ArmReadingRecord], now: &str| {
            let readings = readings.to_vec();
            let now = parse_time(now).unwrap();
            (readings, now)
        };
        let (rs, now) = ctx(&readings, "2026-03-01T00:00:00Z");
        let c = ArmContext {
            design: Design::Aided { washout_days: 28 },
            seed: 1,
            readers: &readers,
            case_ids: &cases,
            readings: &rs,
            now,
        };
        let plan = c.plan(&readers[0]).unwrap();
        assert_eq!(plan.current, Arm::Unaided);
        assert_eq!(plan.entries.len(), 3);
        assert!(c.check_commit(&readers[0], "C1", Arm::Aided).is_err());
        readings.push(reading(
            "r1",
            "C2",
            Arm::Unaided,
            "2026-01-10T10:00:00.000Z",
        ));
        readings.push(reading(
            "r1",
            "C3",
            Arm::Unaided,
            "2026-01-20T10:00:00.000Z",
        ));
        let (rs, now) = ctx(&readings, "2026-02-08T10:00:00Z");
        let c = ArmContext {
            readings: &rs,
            now,
            ..c
        };
        let plan = c.plan(&readers[0]).unwrap();
        assert_eq!(plan.current, Arm::Aided);
        // C1 opened on 29 Jan, C2 on 7 Feb; C3 opens on 17 Feb.
        assert_eq!(plan.entries.len(), 2);
        assert_eq!(plan.waiting, 1);
        assert_eq!(plan.next_open.as_deref(), Some("2026-02-17T10:00:00.000Z"));
        assert!(c.check_commit(&readers[0], "C2", Arm::Aided).is_ok());
        let err = c.check_commit(&readers[0], "C3", Arm::Aided).unwrap_err();
        assert!(err.to_string().contains("2026-02-17"), "{err}");
        // The first arm is closed to changes once the second arm of the case exists.
        readings.push(reading("r1", "C1", Arm::Aided, "2026-02-08T10:00:00.000Z"));
        let (rs, now) = ctx(&readings, "2026-02-08T11:00:00Z");
        let c = ArmContext {
            readings: &rs,
            now,
            ..c
        };
        assert!(c.check_commit(&readers[0], "C1", Arm::Unaided).is_err());
        let settings = StudySettings {
            reveal_readers_after_commit: false,
            reveal_model_after_commit: true,
        };
        assert!(
            c.model_visible(&readers[0], "C2", &settings)
                .unwrap()
                .is_ok()
        );
        assert!(
            c.model_visible(&readers[0], "C3", &settings)
                .unwrap()
                .is_err()
        );
        assert!(
            c.model_visible(&readers[0], "C1", &settings)
                .unwrap()
                .is_ok()
        );
    }
}
