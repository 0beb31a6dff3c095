//! Reading sessions: a study's cases, readers with roles, their readings, blinding, adjudication,
//! consensus and an append-only audit trail, kept in a durable store.
//!
//! Blinding is enforced here, by the store API, not by the GUI: a reader's work list holds only the cases
//! assigned to them, and until a reader has committed their own reading of a case they cannot obtain
//! other readers' readings of it nor the model's output for it.

mod consensus;
pub mod csv_io;
pub mod dump;
pub mod joint_boxes;
mod open;
mod postgres;
pub mod reader_study;
pub(crate) mod rules;
mod sqlite;
pub(crate) mod trail;

use std::path::PathBuf;

pub use consensus::{
    CaseConsensus, ConsensusMethod, JointConsensus, JointRule, assigned, consensus_for_case,
    joint_consensus,
};
pub use open::Study;
pub use postgres::{PgStore, SERVER_SCHEMA_VERSION, ServerLogin, is_server_url};
pub use reader_study::{Arm, ArmCommit, ArmPlan, ArmReadingRecord, Design};
pub use sqlite::{SCHEMA_VERSION, SqliteStore};

use crate::grading::Reading;

/// How a study reaches its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// PROOF: local reader and central reader 1 read every case; where they disagree on definite
    /// sacroiliitis, central reader 2 reads it; the label is the majority of the three.
    Adjudicated,
    /// GESPIC: two central readers read every case; agreement gives the label, disagreement leaves the
    /// case unresolved unless the coordinator adds an adjudicator.
    TwoCentral,
    /// One reader per case (a clinic reading day to day); extra readers are allowed and compared.
    Single,
}

impl Protocol {
    /// The name used on the command line and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adjudicated => "adjudicated",
            Self::TwoCentral => "two-central",
            Self::Single => "single",
        }
    }

    /// Parses the command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "adjudicated" => Some(Self::Adjudicated),
            "two-central" => Some(Self::TwoCentral),
            "single" => Some(Self::Single),
            _ => None,
        }
    }

    /// Roles a reader may have in this protocol.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Self::Adjudicated => &[Role::Local, Role::Central1, Role::Central2, Role::Reader],
            Self::TwoCentral => &[
                Role::Central1,
                Role::Central2,
                Role::Adjudicator,
                Role::Reader,
            ],
            Self::Single => &[Role::Reader],
        }
    }
}

/// A reader's role in a study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Local (site) reader.
    Local,
    /// Central reader 1.
    Central1,
    /// Central reader 2 (the adjudicator in the adjudicated protocol).
    Central2,
    /// Third reader who resolves disagreements in the two-central protocol.
    Adjudicator,
    /// A reader who reads every case (single-reader studies, or extra readers for agreement studies).
    Reader,
}

impl Role {
    /// The name used on the command line and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Central1 => "central1",
            Self::Central2 => "central2",
            Self::Adjudicator => "adjudicator",
            Self::Reader => "reader",
        }
    }

    /// Parses the command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "central1" => Some(Self::Central1),
            "central2" => Some(Self::Central2),
            "adjudicator" => Some(Self::Adjudicator),
            "reader" => Some(Self::Reader),
            _ => None,
        }
    }
}

/// Study-wide settings the coordinator controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StudySettings {
    /// After committing a case, a reader may see other readers' readings of it.
    pub reveal_readers_after_commit: bool,
    /// After committing a case, a reader may see the model's output for it.
    pub reveal_model_after_commit: bool,
}

/// What the store says about a study.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StudyInfo {
    /// Protocol.
    pub protocol: Protocol,
    /// Seed of the per-reader case order.
    pub seed: u64,
    /// Locked by the coordinator: nothing changes any more.
    pub locked: bool,
    /// Settings.
    pub settings: StudySettings,
    /// Schema version of the store.
    pub schema_version: i64,
}

/// A reader.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReaderInfo {
    /// Store identifier.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A case to add: a radiograph by path and/or SOP Instance UID, with an optional pseudonymous ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCase {
    /// Path of the radiograph (stored relative to the study file when it lies below it).
    pub path: Option<PathBuf>,
    /// SOP Instance UID.
    pub sop_instance_uid: Option<String>,
    /// Pseudonymous case ID; generated (`C0001`…) when absent.
    pub case_id: Option<String>,
    /// Where the film is fetched from when it is not a local file (then `sop_instance_uid` names it).
    pub archive: Option<ArchiveRef>,
}

/// A film in a DICOMweb archive: the archive's root URL and the instance's study and series (its SOP
/// Instance UID is the case's). Fetched on demand into the local film cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveRef {
    /// The DICOMweb root, e.g. `https://archive.example.org/dicom-web` (no credentials in it).
    pub url: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
}

/// A crop rectangle in image pixels (the seed study cropped films to the pelvis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CropRect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A case in a study.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseInfo {
    /// Pseudonymous case ID.
    pub id: String,
    /// Path as stored (relative to the study's folder, or absolute).
    pub path: Option<PathBuf>,
    /// SOP Instance UID.
    pub sop_instance_uid: Option<String>,
    /// The archive the film is fetched from, for a case that refers to one.
    pub archive: Option<ArchiveRef>,
}

/// One entry of a reader's work list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorklistEntry {
    /// Case ID.
    pub case_id: String,
    /// The reader has committed a reading of it (in this arm).
    pub done: bool,
    /// In a reader study (aided design): the arm this entry is read in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<Arm>,
}

/// A committed reading with who and when.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReadingRecord {
    /// Case ID.
    pub case_id: String,
    /// Reader name.
    pub reader: String,
    /// Reader role.
    pub role: Role,
    /// The reading.
    pub reading: Reading,
    /// When it was last committed (UTC, RFC 3339).
    pub committed_at: String,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CommitOutcome {
    /// First reading of this case by this reader.
    Created,
    /// An earlier reading was changed (and the change audited).
    Changed,
    /// Same as the reading already committed: nothing written.
    Unchanged,
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRow {
    /// Sequence number (strictly increasing).
    pub seq: i64,
    /// When (UTC, RFC 3339).
    pub at: String,
    /// Who did it (reader name, or "coordinator").
    pub actor: String,
    /// What: create_study, add_reader, add_case, create_reading, change_reading, delete_reading, settings, lock.
    pub action: String,
    /// Case concerned.
    pub case_id: Option<String>,
    /// Old value (JSON).
    pub old_value: Option<String>,
    /// New value (JSON).
    pub new_value: Option<String>,
    /// Reason given.
    pub reason: Option<String>,
}

/// A model's output for a case, recorded with the model's SHA-256.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PredictionRecord {
    /// Case ID.
    pub case_id: String,
    /// SHA-256 of the model weights.
    pub model_sha256: String,
    /// Probability of definite radiographic sacroiliitis.
    pub probability: f64,
}

/// Why a store operation was refused or failed. Every refusal changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The study file is missing.
    #[error("{0}: no such study file")]
    NotFound(PathBuf),
    /// A study file already exists where one was to be created.
    #[error("{0}: a file already exists there")]
    AlreadyExists(PathBuf),
    /// The file is not a readable Sacro study (not SQLite, damaged, or another application's database).
    #[error("{path}: not a readable Sacro study: {detail}")]
    Corrupt {
        /// Study file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// Written by a newer Sacro.
    #[error(
        "{path}: study schema version {found} is newer than this Sacro supports ({supported}); update Sacro"
    )]
    NewerSchema {
        /// Study file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The study file cannot be written (its permissions, another user's file, or opened read-only):
    /// it can be read, nothing can be committed.
    #[error("{0}: the study is open read-only (no permission to write it): nothing was written")]
    ReadOnly(PathBuf),
    /// Another process (another reader's window, a CLI command) holds the study's write lock longer than
    /// the busy timeout: nothing was written; try again.
    #[error(
        "{0}: the study is busy (another program is writing to it); nothing was written, try again"
    )]
    Busy(PathBuf),
    /// Database error.
    #[error("{path}: database error: {source}")]
    Database {
        /// Study file.
        path: PathBuf,
        /// Underlying error.
        source: rusqlite::Error,
    },
    /// No reader of that name.
    #[error("no reader named {0:?} in this study")]
    UnknownReader(String),
    /// No case with that ID.
    #[error("no case {0:?} in this study")]
    UnknownCase(String),
    /// A reader of that name exists already.
    #[error("a reader named {0:?} exists already")]
    DuplicateReader(String),
    /// A case with that ID exists already.
    #[error("a case {0:?} exists already")]
    DuplicateCase(String),
    /// The role is not part of the study's protocol (or is taken).
    #[error("role {role} is not available in a {protocol} study: {detail}")]
    RoleNotAllowed {
        /// Role asked for.
        role: &'static str,
        /// Protocol.
        protocol: &'static str,
        /// Why.
        detail: String,
    },
    /// The study is locked.
    #[error("the study is locked: nothing can change")]
    Locked,
    /// The case is not on the reader's work list.
    #[error("case {case} is not assigned to reader {reader}")]
    NotAssigned {
        /// Reader.
        reader: String,
        /// Case.
        case: String,
    },
    /// Blinding: the reader may not see this yet.
    #[error("blinded: {reader} cannot see {what} for case {case} {why}")]
    Blinded {
        /// Reader.
        reader: String,
        /// Case.
        case: String,
        /// What was asked for.
        what: &'static str,
        /// Why not.
        why: &'static str,
    },
    /// Invalid input (bad grade, empty name, bad CSV…), naming what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// A study server could not be reached or refused the login, or the connection was lost.
    #[error("{target}: {detail}")]
    Server {
        /// The study URL (without any password).
        target: String,
        /// What happened and what to do.
        detail: String,
    },
    /// The login may not do this (a reader asking for what only the coordinator may do, or for
    /// another reader's work): nothing was changed.
    #[error("not permitted: {0}")]
    NotPermitted(String),
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// The durable store behind a study. SQLite now; a PostgreSQL store for multi-site studies later.
pub trait StudyStore {
    /// Protocol, seed, lock state, settings.
    fn info(&self) -> StoreResult<StudyInfo>;
    /// Changes the coordinator's settings (audited).
    fn set_settings(&self, settings: StudySettings) -> StoreResult<()>;
    /// Adds a reader (audited).
    fn add_reader(&self, name: &str, role: Role) -> StoreResult<ReaderInfo>;
    /// All readers.
    fn readers(&self) -> StoreResult<Vec<ReaderInfo>>;
    /// Adds cases in one transaction (audited); all or nothing.
    fn add_cases(&self, cases: &[NewCase]) -> StoreResult<Vec<CaseInfo>>;
    /// All cases, by ID.
    fn cases(&self) -> StoreResult<Vec<CaseInfo>>;
    /// One case.
    fn case(&self, case_id: &str) -> StoreResult<CaseInfo>;
    /// The reader's work list in their own randomised order.
    fn worklist(&self, reader: &str) -> StoreResult<Vec<WorklistEntry>>;
    /// Commits (creates or changes) the reader's reading of a case, audited in the same transaction.
    fn commit_reading(
        &self,
        reader: &str,
        case_id: &str,
        reading: &Reading,
        reason: Option<&str>,
    ) -> StoreResult<CommitOutcome>;
    /// Deletes the reader's reading of a case (audited, with reason).
    fn delete_reading(&self, reader: &str, case_id: &str, reason: &str) -> StoreResult<()>;
    /// The reader's own reading of a case.
    fn own_reading(&self, reader: &str, case_id: &str) -> StoreResult<Option<ReadingRecord>>;
    /// Other readers' readings of a case; refused until the reader has committed their own.
    fn others_readings(&self, reader: &str, case_id: &str) -> StoreResult<Vec<ReadingRecord>>;
    /// Every reading (the coordinator's view, for consensus and export).
    fn all_readings(&self) -> StoreResult<Vec<ReadingRecord>>;
    /// Records a model's output for a case.
    fn record_prediction(
        &self,
        case_id: &str,
        model_sha256: &str,
        probability: f64,
    ) -> StoreResult<()>;
    /// Every case's recorded output of one model (the coordinator's view: compare table, statistics).
    fn predictions(&self, model_sha256: &str) -> StoreResult<Vec<PredictionRecord>>;
    /// The model's output for a case, for a reader; refused until the reader has committed their own.
    fn prediction_for_reader(
        &self,
        reader: &str,
        case_id: &str,
        model_sha256: &str,
    ) -> StoreResult<Option<PredictionRecord>>;
    /// Locks the study.
    fn lock(&self) -> StoreResult<()>;
    /// Sets (or clears) the crop rectangle of a case: the region the model and the viewer use; the film
    /// itself is never changed (audited).
    fn set_crop(&self, actor: &str, case_id: &str, crop: Option<CropRect>) -> StoreResult<()>;
    /// The crop rectangle of a case, if set.
    fn crop(&self, case_id: &str) -> StoreResult<Option<CropRect>>;
    /// The audit trail, oldest first.
    fn audit(&self) -> StoreResult<Vec<AuditRow>>;

    /// The study's design: standard, or a reader study with unaided and aided arms
    /// ([`reader_study`]).
    fn design(&self) -> StoreResult<Design> {
        Ok(Design::Standard)
    }
    /// Makes the study a reader study (or changes its washout) before any arm reading exists (audited).
    fn set_design(&self, design: Design) -> StoreResult<()> {
        let _ = design;
        Err(StoreError::NotPermitted(
            "reader studies (--design aided) are kept in a study file; this store has no reader-study \
             arms"
                .into(),
        ))
    }
    /// Every arm reading (the coordinator's view: export, statistics).
    fn arm_readings(&self) -> StoreResult<Vec<ArmReadingRecord>> {
        Ok(Vec::new())
    }
    /// Where an arm reader stands at `now`: their current arm's work list, progress, washout dates.
    fn arm_plan(&self, reader: &str, now: chrono::DateTime<chrono::Utc>) -> StoreResult<ArmPlan> {
        let _ = (reader, now);
        Err(StoreError::Invalid(
            "this study is not a reader study (no --design aided)".into(),
        ))
    }
    /// The reader's own reading of a case in one arm (never the other arm's).
    fn own_arm_reading(
        &self,
        reader: &str,
        case_id: &str,
        arm: Arm,
    ) -> StoreResult<Option<ArmReadingRecord>> {
        let _ = (reader, case_id, arm);
        Ok(None)
    }
    /// Commits (creates or changes, with a reason) an arm reader's reading of a case, if the design
    /// offers it in that arm at the commit's time (arm order, washout); audited.
    fn commit_arm_reading(
        &self,
        reader: &str,
        case_id: &str,
        commit: &ArmCommit<'_>,
    ) -> StoreResult<CommitOutcome> {
        let _ = (reader, case_id, commit);
        Err(StoreError::Invalid(
            "this study is not a reader study (no --design aided)".into(),
        ))
    }
    /// Sets (or, with None, removes) the reader's box around one joint of a case on their work list
    /// (audited with the old and new box).
    fn set_joint_box(
        &self,
        reader: &str,
        case_id: &str,
        side: joint_boxes::Side,
        rect: Option<CropRect>,
    ) -> StoreResult<()> {
        let _ = (reader, case_id, side, rect);
        Err(StoreError::NotPermitted(
            "joint boxes are kept in study files; this store has none yet".into(),
        ))
    }
    /// The joint boxes of a case a reader may see: their own, and other readers' once they have
    /// committed their own reading and the study reveals readers (blinding as for readings).
    fn joint_boxes(
        &self,
        reader: &str,
        case_id: &str,
    ) -> StoreResult<Vec<joint_boxes::JointBoxRecord>> {
        let _ = (reader, case_id);
        Ok(Vec::new())
    }
    /// Every joint box (the coordinator's view: export, training labels).
    fn all_joint_boxes(&self) -> StoreResult<Vec<joint_boxes::JointBoxRecord>> {
        Ok(Vec::new())
    }
    /// The model's output for a case, for a reader, decided at `now` (in a reader study the arms
    /// decide; otherwise as [`StudyStore::prediction_for_reader`]).
    fn prediction_for_reader_at(
        &self,
        reader: &str,
        case_id: &str,
        model_sha256: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<PredictionRecord>> {
        let _ = now;
        self.prediction_for_reader(reader, case_id, model_sha256)
    }
}

/// Per-reader progress, for `sacro study status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReaderProgress {
    /// Reader.
    pub reader: String,
    /// Role.
    pub role: Role,
    /// Cases on the work list.
    pub assigned: usize,
    /// Cases read.
    pub done: usize,
    /// In a reader study: the reader's arms (progress per arm, washout dates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arms: Option<ArmPlan>,
}

/// Progress of a study.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StudyStatus {
    /// Study info.
    pub info: StudyInfo,
    /// Standard, or a reader study.
    pub design: Design,
    /// Number of cases.
    pub cases: usize,
    /// Per reader.
    pub readers: Vec<ReaderProgress>,
    /// Cases whose readers disagree and wait for an adjudicating reading.
    pub awaiting_adjudication: Vec<String>,
    /// Cases with a final label.
    pub labelled: usize,
}

/// Consensus for every case (computed on demand from the readings).
pub fn consensus(store: &dyn StudyStore) -> StoreResult<Vec<CaseConsensus>> {
    let info = store.info()?;
    let readings = store.all_readings()?;
    let readers = store.readers()?;
    Ok(store
        .cases()?
        .iter()
        .map(|c| {
            let of_case: Vec<&ReadingRecord> =
                readings.iter().filter(|r| r.case_id == c.id).collect();
            consensus_for_case(info.protocol, &c.id, &of_case, &readers)
        })
        .collect())
}

/// Progress per reader and cases awaiting adjudication.
pub fn status(store: &dyn StudyStore) -> StoreResult<StudyStatus> {
    let info = store.info()?;
    let cons = consensus(store)?;
    let design = store.design()?;
    let now = chrono::Utc::now();
    let readers = store
        .readers()?
        .into_iter()
        .map(|r| {
            if design.reads_in_arms(&r) {
                let plan = store.arm_plan(&r.name, now)?;
                return Ok(ReaderProgress {
                    done: plan.unaided_done + plan.aided_done,
                    assigned: 2 * plan.cases,
                    reader: r.name,
                    role: r.role,
                    arms: Some(plan),
                });
            }
            let list = store.worklist(&r.name)?;
            Ok(ReaderProgress {
                done: list.iter().filter(|e| e.done).count(),
                assigned: list.len(),
                reader: r.name,
                role: r.role,
                arms: None,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(StudyStatus {
        design,
        cases: cons.len(),
        awaiting_adjudication: cons
            .iter()
            .filter(|c| c.method == ConsensusMethod::AwaitingAdjudication)
            .map(|c| c.case_id.clone())
            .collect(),
        labelled: cons.iter().filter(|c| c.label.is_some()).count(),
        readers,
        info,
    })
}
