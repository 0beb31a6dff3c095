//! A whole study as plain rows, store-neutral: what `sacro study push` and `pull` copy between a study
//! file and a server database, verbatim (IDs, timestamps and the audit trail's hashes included), and what
//! they compare after the copy.

use super::AuditRow;

/// A reader's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderRow {
    /// Store identifier (the per-reader case order depends on it: kept).
    pub id: i64,
    /// Name.
    pub name: String,
    /// Role (as stored).
    pub role: String,
    /// When added.
    pub created_at: String,
}

/// A case's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    /// Case ID.
    pub id: String,
    /// Path as stored.
    pub path: Option<String>,
    /// SOP Instance UID.
    pub sop_instance_uid: Option<String>,
    /// The archive (DICOMweb root, study and series UIDs) of a case that refers to one.
    pub archive: Option<super::ArchiveRef>,
    /// When added.
    pub added_at: String,
}

/// A reading's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingRow {
    /// Case ID.
    pub case_id: String,
    /// Reader ID.
    pub reader_id: i64,
    /// Left grade.
    pub left_grade: Option<i64>,
    /// Right grade.
    pub right_grade: Option<i64>,
    /// Reason the film is not assessable.
    pub not_assessable: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// When committed.
    pub committed_at: String,
}

/// A recorded model output.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    /// Case ID.
    pub case_id: String,
    /// Model's SHA-256.
    pub model_sha256: String,
    /// Probability.
    pub probability: f64,
    /// When recorded.
    pub created_at: String,
}

/// A crop rectangle's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CropRow {
    /// Case ID.
    pub case_id: String,
    /// Left, top, width, height.
    pub rect: [i64; 4],
    /// Who set it.
    pub set_by: String,
    /// When.
    pub set_at: String,
}

/// Every row of a study.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StudyDump {
    /// Study settings (`protocol`, `seed`, `locked`, `settings`, `audit_head`, `lock_head`), by key.
    pub meta: Vec<(String, String)>,
    /// Readers by ID.
    pub readers: Vec<ReaderRow>,
    /// Cases by ID.
    pub cases: Vec<CaseRow>,
    /// Readings by case and reader.
    pub readings: Vec<ReadingRow>,
    /// The audit trail in order, each row with its stored hash.
    pub audit: Vec<(AuditRow, Option<String>)>,
    /// Model outputs by case and model.
    pub predictions: Vec<PredictionRow>,
    /// Crops by case.
    pub crops: Vec<CropRow>,
}

/// The study-setting keys a copy carries (the schema version is the target's own).
pub const META_KEYS: &[&str] = &[
    "protocol",
    "seed",
    "locked",
    "settings",
    "audit_head",
    "lock_head",
];

impl StudyDump {
    /// One line of counts, for the copy's report.
    pub fn summary(&self) -> String {
        format!(
            "{} readers, {} cases, {} readings, {} audit rows, {} predictions, {} crops",
            self.readers.len(),
            self.cases.len(),
            self.readings.len(),
            self.audit.len(),
            self.predictions.len(),
            self.crops.len()
        )
    }

    /// A study setting.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// What differs between two dumps, one line per table (empty: equal).
    pub fn differences(&self, other: &StudyDump) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: &str, equal: bool, a: usize, b: usize| {
            if !equal {
                out.push(format!("{what} differ ({a} rows here, {b} there)"));
            }
        };
        check(
            "study settings",
            self.meta == other.meta,
            self.meta.len(),
            other.meta.len(),
        );
        check(
            "readers",
            self.readers == other.readers,
            self.readers.len(),
            other.readers.len(),
        );
        check(
            "cases",
            self.cases == other.cases,
            self.cases.len(),
            other.cases.len(),
        );
        check(
            "readings",
            self.readings == other.readings,
            self.readings.len(),
            other.readings.len(),
        );
        check(
            "audit rows",
            self.audit == other.audit,
            self.audit.len(),
            other.audit.len(),
        );
        check(
            "predictions",
            self.predictions == other.predictions,
            self.predictions.len(),
            other.predictions.len(),
        );
        check(
            "crops",
            self.crops == other.crops,
            self.crops.len(),
            other.crops.len(),
        );
        out
    }
}
