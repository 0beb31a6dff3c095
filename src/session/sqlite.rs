//! The embedded study store: one SQLite file per study, WAL mode, `synchronous=FULL`, foreign keys on,
//! a versioned schema, a busy timeout so two Sacro windows can share a file, and every write in one
//! `BEGIN IMMEDIATE` transaction together with its audit row. Triggers keep the audit trail append-only
//! and refuse changes to readings once the study is locked, below the API as well as in it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::consensus::assigned;
use super::{
    AuditRow, CaseInfo, CommitOutcome, CropRect, NewCase, PredictionRecord, Protocol, ReaderInfo,
    ReadingRecord, Role, StoreError, StoreResult, StudyInfo, StudySettings, StudyStore,
    WorklistEntry,
};
use crate::grading::{Assessment, JointGrade, JointGrades, Reading};

/// Newest schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 2;
const COORDINATOR: &str = "coordinator";
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

/// Migrations: entry `i` brings a study from schema version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE readers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE cases (
    id TEXT PRIMARY KEY,
    path TEXT,
    sop_instance_uid TEXT,
    added_at TEXT NOT NULL,
    CHECK (path IS NOT NULL OR sop_instance_uid IS NOT NULL)
);
CREATE TABLE readings (
    case_id TEXT NOT NULL REFERENCES cases(id),
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    left_grade INTEGER CHECK (left_grade BETWEEN 0 AND 4),
    right_grade INTEGER CHECK (right_grade BETWEEN 0 AND 4),
    not_assessable TEXT,
    comment TEXT,
    committed_at TEXT NOT NULL,
    PRIMARY KEY (case_id, reader_id),
    CHECK ((left_grade IS NOT NULL AND right_grade IS NOT NULL AND not_assessable IS NULL)
        OR (left_grade IS NULL AND right_grade IS NULL AND not_assessable IS NOT NULL))
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    case_id TEXT,
    old_value TEXT,
    new_value TEXT,
    reason TEXT
);
CREATE TABLE predictions (
    case_id TEXT NOT NULL REFERENCES cases(id),
    model_sha256 TEXT NOT NULL,
    probability REAL NOT NULL CHECK (probability >= 0.0 AND probability <= 1.0),
    created_at TEXT NOT NULL,
    PRIMARY KEY (case_id, model_sha256)
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE TRIGGER readings_locked_insert BEFORE INSERT ON readings
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
CREATE TRIGGER readings_locked_update BEFORE UPDATE ON readings
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
CREATE TRIGGER readings_locked_delete BEFORE DELETE ON readings
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
"#,
    r#"
CREATE TABLE crops (
    case_id TEXT PRIMARY KEY REFERENCES cases(id),
    x INTEGER NOT NULL CHECK (x >= 0),
    y INTEGER NOT NULL CHECK (y >= 0),
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
);
CREATE TRIGGER crops_locked_insert BEFORE INSERT ON crops
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
CREATE TRIGGER crops_locked_update BEFORE UPDATE ON crops
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
CREATE TRIGGER crops_locked_delete BEFORE DELETE ON crops
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
"#,
];

/// A study kept in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// A 64-bit mix (splitmix64 finaliser), for the reproducible per-reader case order.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Position key of a case in a reader's order: depends only on the study seed, the reader and the case,
/// so the order is reproducible and adding cases does not reshuffle the ones already listed.
fn order_key(seed: u64, reader_id: i64, case_id: &str) -> u64 {
    let h = case_id.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    });
    mix(mix(seed ^ mix(reader_id as u64)) ^ h)
}

fn valid_case_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn reading_to_row(r: &Reading) -> (Option<i64>, Option<i64>, Option<String>) {
    match &r.assessment {
        Assessment::Graded(g) => (
            Some(i64::from(g.left.value())),
            Some(i64::from(g.right.value())),
            None,
        ),
        Assessment::NotAssessable { reason } => (None, None, Some(reason.clone())),
    }
}

fn row_to_reading(
    left: Option<i64>,
    right: Option<i64>,
    not_assessable: Option<String>,
    comment: Option<String>,
) -> Result<Reading, String> {
    let assessment = match (left, right, not_assessable) {
        (Some(l), Some(r), None) => Assessment::Graded(JointGrades::new(
            JointGrade::from_value(l).map_err(|e| e.to_string())?,
            JointGrade::from_value(r).map_err(|e| e.to_string())?,
        )),
        (None, None, Some(reason)) => Assessment::NotAssessable { reason },
        _ => return Err("reading row is neither graded nor not assessable".into()),
    };
    Ok(Reading {
        assessment,
        comment,
    })
}

impl SqliteStore {
    /// Creates a new study file (refuses to overwrite anything).
    pub fn create(path: &Path, protocol: Protocol, seed: u64) -> StoreResult<Self> {
        if path.exists() {
            return Err(StoreError::AlreadyExists(path.to_path_buf()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Database {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        {
            let mut conn = store.conn();
            configure(&conn).map_err(|e| store.db(e))?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| store.db(e))?;
            for sql in MIGRATIONS {
                tx.execute_batch(sql).map_err(|e| store.db(e))?;
            }
            let settings = StudySettings {
                reveal_readers_after_commit: protocol == Protocol::Single,
                reveal_model_after_commit: true,
            };
            for (k, v) in [
                ("protocol", protocol.as_str().to_string()),
                ("seed", seed.to_string()),
                ("locked", "0".to_string()),
                (
                    "settings",
                    serde_json::to_string(&settings).unwrap_or_default(),
                ),
            ] {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    params![k, v],
                )
                .map_err(|e| store.db(e))?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(|e| store.db(e))?;
            audit(
                &tx,
                COORDINATOR,
                "create_study",
                None,
                None,
                Some(&format!(
                    "{{\"protocol\":\"{}\",\"seed\":{seed}}}",
                    protocol.as_str()
                )),
                None,
            )
            .map_err(|e| store.db(e))?;
            tx.commit().map_err(|e| store.db(e))?;
        }
        Ok(store)
    }

    /// Opens an existing study file, checking that it is an intact Sacro study of a known schema, and
    /// migrating an older schema in place.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if !path.is_file() {
            return Err(StoreError::NotFound(path.to_path_buf()));
        }
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| corrupt(e.to_string()))?;
        configure(&conn).map_err(|e| corrupt(e.to_string()))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| corrupt(e.to_string()))?;
        if check != "ok" {
            return Err(corrupt(format!("integrity check: {check}")));
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| corrupt(e.to_string()))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            return Err(corrupt(
                "no Sacro schema in this database (another application's file?)".into(),
            ));
        }
        let has_meta: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| corrupt(e.to_string()))?
            == 1;
        if !has_meta {
            return Err(corrupt(
                "schema version set but the study tables are missing".into(),
            ));
        }
        let store = Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        store.migrate(version)?;
        store.info()?;
        Ok(store)
    }

    fn migrate(&self, from: i64) -> StoreResult<()> {
        if from >= SCHEMA_VERSION {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        for sql in &MIGRATIONS[from as usize..] {
            tx.execute_batch(sql).map_err(|e| self.db(e))?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| self.db(e))?;
        tx.commit().map_err(|e| self.db(e))
    }

    /// The study file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder case paths are relative to (the study file's folder).
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The file of a case, resolved against the study's folder.
    pub fn resolve(&self, case: &CaseInfo) -> Option<PathBuf> {
        case.path.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                self.base_dir().join(p)
            }
        })
    }

    /// SQLite's full integrity check ("ok" when intact).
    pub fn integrity_check(&self) -> StoreResult<String> {
        self.conn()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.db(e))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn db(&self, source: rusqlite::Error) -> StoreError {
        if let rusqlite::Error::SqliteFailure(_, Some(msg)) = &source
            && msg.contains("study is locked")
        {
            return StoreError::Locked;
        }
        if let rusqlite::Error::SqliteFailure(e, _) = &source
            && matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        {
            return StoreError::Busy(self.path.clone());
        }
        StoreError::Database {
            path: self.path.clone(),
            source,
        }
    }

    /// How long a write waits for another program's write lock before failing with
    /// [`StoreError::Busy`] (30 s by default; the desktop app uses a short wait so that its window never
    /// freezes).
    pub fn set_busy_timeout(&self, timeout: std::time::Duration) -> StoreResult<()> {
        self.conn().busy_timeout(timeout).map_err(|e| self.db(e))
    }

    /// Runs `f` in one IMMEDIATE write transaction; any error rolls everything back.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(value)
    }

    fn meta(&self, conn: &Connection, key: &str) -> StoreResult<String> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("study setting {key:?} missing: {e}"),
            })
    }

    fn info_in(&self, conn: &Connection) -> StoreResult<StudyInfo> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        };
        let protocol = self.meta(conn, "protocol")?;
        let protocol = Protocol::parse(&protocol)
            .ok_or_else(|| corrupt(format!("unknown protocol {protocol:?}")))?;
        let seed = self
            .meta(conn, "seed")?
            .parse()
            .map_err(|_| corrupt("seed is not a number".into()))?;
        let settings = serde_json::from_str(&self.meta(conn, "settings")?)
            .map_err(|e| corrupt(format!("settings unreadable: {e}")))?;
        Ok(StudyInfo {
            protocol,
            seed,
            locked: self.meta(conn, "locked")? == "1",
            settings,
            schema_version: SCHEMA_VERSION,
        })
    }

    fn ensure_unlocked(&self, conn: &Connection) -> StoreResult<()> {
        if self.meta(conn, "locked")? == "1" {
            return Err(StoreError::Locked);
        }
        Ok(())
    }

    fn reader_in(&self, conn: &Connection, name: &str) -> StoreResult<ReaderInfo> {
        conn.query_row(
            "SELECT id, name, role FROM readers WHERE name = ?1",
            [name],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()
        .map_err(|e| self.db(e))?
        .ok_or_else(|| StoreError::UnknownReader(name.to_string()))
        .and_then(|(id, name, role)| {
            let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("reader {name:?} has unknown role {role:?}"),
            })?;
            Ok(ReaderInfo { id, name, role })
        })
    }

    fn readers_in(&self, conn: &Connection) -> StoreResult<Vec<ReaderInfo>> {
        let mut stmt = conn
            .prepare("SELECT name FROM readers ORDER BY id")
            .map_err(|e| self.db(e))?;
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.db(e))?;
        names.iter().map(|n| self.reader_in(conn, n)).collect()
    }

    fn ensure_case(&self, conn: &Connection, case_id: &str) -> StoreResult<()> {
        let n: i64 = conn
            .query_row("SELECT count(*) FROM cases WHERE id = ?1", [case_id], |r| {
                r.get(0)
            })
            .map_err(|e| self.db(e))?;
        if n == 0 {
            return Err(StoreError::UnknownCase(case_id.to_string()));
        }
        Ok(())
    }

    fn readings_in(
        &self,
        conn: &Connection,
        case_id: Option<&str>,
    ) -> StoreResult<Vec<ReadingRecord>> {
        let mut stmt = conn
            .prepare(
                "SELECT r.case_id, d.name, d.role, r.left_grade, r.right_grade, r.not_assessable, r.comment, r.committed_at
                 FROM readings r JOIN readers d ON d.id = r.reader_id
                 WHERE (?1 IS NULL OR r.case_id = ?1) ORDER BY r.case_id, d.id",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([case_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| self.db(e))?;
        rows.into_iter()
            .map(|(case_id, reader, role, l, r, na, comment, at)| {
                let corrupt = |detail: String| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail,
                };
                Ok(ReadingRecord {
                    role: Role::parse(&role)
                        .ok_or_else(|| corrupt(format!("unknown role {role:?}")))?,
                    reading: row_to_reading(l, r, na, comment)
                        .map_err(|e| corrupt(format!("reading of {case_id} by {reader}: {e}")))?,
                    case_id,
                    reader,
                    committed_at: at,
                })
            })
            .collect()
    }

    fn own_in(
        &self,
        conn: &Connection,
        reader: &ReaderInfo,
        case_id: &str,
    ) -> StoreResult<Option<ReadingRecord>> {
        Ok(self
            .readings_in(conn, Some(case_id))?
            .into_iter()
            .find(|r| r.reader == reader.name))
    }

    fn case_ids(&self, conn: &Connection) -> StoreResult<Vec<String>> {
        let mut stmt = conn
            .prepare("SELECT id FROM cases ORDER BY id")
            .map_err(|e| self.db(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.db(e))
    }

    /// Stores a path relative to the study's folder when it lies below it.
    fn stored_path(&self, p: &Path) -> String {
        let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let base = std::fs::canonicalize(self.base_dir()).unwrap_or_else(|_| self.base_dir());
        let rel = abs
            .strip_prefix(&base)
            .map(Path::to_path_buf)
            .unwrap_or(abs);
        rel.to_string_lossy().replace('\\', "/")
    }
}

fn audit(
    tx: &Connection,
    actor: &str,
    action: &str,
    case_id: Option<&str>,
    old: Option<&str>,
    new: Option<&str>,
    reason: Option<&str>,
) -> rusqlite::Result<usize> {
    tx.execute(
        &format!(
            "INSERT INTO audit (at, actor, action, case_id, old_value, new_value, reason) VALUES ({NOW}, ?1, ?2, ?3, ?4, ?5, ?6)"
        ),
        params![actor, action, case_id, old, new, reason],
    )
}

fn validate_reading(reading: &Reading) -> StoreResult<()> {
    if let Assessment::NotAssessable { reason } = &reading.assessment
        && reason.trim().is_empty()
    {
        return Err(StoreError::Invalid(
            "\"not assessable\" needs a reason".into(),
        ));
    }
    if reading.comment.as_ref().is_some_and(|c| c.len() > 10_000) {
        return Err(StoreError::Invalid(
            "comment longer than 10,000 characters".into(),
        ));
    }
    Ok(())
}

impl StudyStore for SqliteStore {
    fn info(&self) -> StoreResult<StudyInfo> {
        self.info_in(&self.conn())
    }

    fn set_settings(&self, settings: StudySettings) -> StoreResult<()> {
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let old = self.meta(tx, "settings")?;
            let new =
                serde_json::to_string(&settings).map_err(|e| StoreError::Invalid(e.to_string()))?;
            tx.execute("UPDATE meta SET value = ?1 WHERE key = 'settings'", [&new])
                .map_err(|e| self.db(e))?;
            audit(
                tx,
                COORDINATOR,
                "settings",
                None,
                Some(&old),
                Some(&new),
                None,
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn add_reader(&self, name: &str, role: Role) -> StoreResult<ReaderInfo> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(format!(
                "reader name {name:?}: 1–100 printable characters needed"
            )));
        }
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let info = self.info_in(tx)?;
            if !info.protocol.roles().contains(&role) {
                return Err(StoreError::RoleNotAllowed {
                    role: role.as_str(),
                    protocol: info.protocol.as_str(),
                    detail: format!(
                        "roles here: {}",
                        info.protocol
                            .roles()
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            let readers = self.readers_in(tx)?;
            if readers.iter().any(|r| r.name == name) {
                return Err(StoreError::DuplicateReader(name.to_string()));
            }
            if role != Role::Reader
                && let Some(other) = readers.iter().find(|r| r.role == role)
            {
                return Err(StoreError::RoleNotAllowed {
                    role: role.as_str(),
                    protocol: info.protocol.as_str(),
                    detail: format!("already taken by {:?}", other.name),
                });
            }
            tx.execute(
                &format!("INSERT INTO readers (name, role, created_at) VALUES (?1, ?2, {NOW})"),
                params![name, role.as_str()],
            )
            .map_err(|e| self.db(e))?;
            let id = tx.last_insert_rowid();
            audit(
                tx,
                COORDINATOR,
                "add_reader",
                None,
                None,
                Some(&format!(
                    "{{\"name\":{},\"role\":\"{}\"}}",
                    serde_json::Value::from(name),
                    role.as_str()
                )),
                None,
            )
            .map_err(|e| self.db(e))?;
            Ok(ReaderInfo {
                id,
                name: name.to_string(),
                role,
            })
        })
    }

    fn readers(&self) -> StoreResult<Vec<ReaderInfo>> {
        self.readers_in(&self.conn())
    }

    fn add_cases(&self, cases: &[NewCase]) -> StoreResult<Vec<CaseInfo>> {
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let existing = self.cases_in(tx)?;
            let mut next = existing
                .iter()
                .filter_map(|c| c.id.strip_prefix('C').and_then(|n| n.parse::<u64>().ok()))
                .max()
                .unwrap_or(0)
                + 1;
            let mut taken: std::collections::HashSet<String> = existing.iter().map(|c| c.id.clone()).collect();
            let mut known_paths: std::collections::HashMap<String, String> = existing
                .iter()
                .filter_map(|c| c.path.as_ref().map(|p| (p.to_string_lossy().into_owned(), c.id.clone())))
                .collect();
            let mut known_uids: std::collections::HashMap<String, String> = existing
                .iter()
                .filter_map(|c| c.sop_instance_uid.clone().map(|u| (u, c.id.clone())))
                .collect();
            let mut added = Vec::with_capacity(cases.len());
            for (i, case) in cases.iter().enumerate() {
                if case.path.is_none() && case.sop_instance_uid.is_none() {
                    return Err(StoreError::Invalid(format!("case {}: needs a path or a SOP Instance UID", i + 1)));
                }
                let id = match &case.case_id {
                    Some(id) => {
                        if !valid_case_id(id) {
                            return Err(StoreError::Invalid(format!(
                                "case ID {id:?}: 1–64 letters, digits, '-', '_' or '.' needed"
                            )));
                        }
                        id.clone()
                    }
                    None => loop {
                        let id = format!("C{next:04}");
                        next += 1;
                        if !taken.contains(&id) {
                            break id;
                        }
                    },
                };
                if !taken.insert(id.clone()) {
                    return Err(StoreError::DuplicateCase(id));
                }
                let path = case.path.as_deref().map(|p| self.stored_path(p));
                if let Some(p) = &path
                    && let Some(other) = known_paths.insert(p.clone(), id.clone()) {
                        return Err(StoreError::Invalid(format!("{p}: already in the study as case {other}")));
                    }
                if let Some(u) = &case.sop_instance_uid
                    && let Some(other) = known_uids.insert(u.clone(), id.clone()) {
                        return Err(StoreError::Invalid(format!(
                            "SOP Instance UID {u}: already in the study as case {other}"
                        )));
                    }
                tx.execute(
                    &format!("INSERT INTO cases (id, path, sop_instance_uid, added_at) VALUES (?1, ?2, ?3, {NOW})"),
                    params![id, path, case.sop_instance_uid],
                )
                .map_err(|e| self.db(e))?;
                audit(tx, COORDINATOR, "add_case", Some(&id), None, None, None).map_err(|e| self.db(e))?;
                added.push(CaseInfo {
                    id,
                    path: path.map(PathBuf::from),
                    sop_instance_uid: case.sop_instance_uid.clone(),
                });
            }
            Ok(added)
        })
    }

    fn cases(&self) -> StoreResult<Vec<CaseInfo>> {
        self.cases_in(&self.conn())
    }

    fn case(&self, case_id: &str) -> StoreResult<CaseInfo> {
        self.cases()?
            .into_iter()
            .find(|c| c.id == case_id)
            .ok_or_else(|| StoreError::UnknownCase(case_id.to_string()))
    }

    fn worklist(&self, reader: &str) -> StoreResult<Vec<WorklistEntry>> {
        let conn = self.conn();
        let info = self.info_in(&conn)?;
        let reader = self.reader_in(&conn, reader)?;
        let readings = self.readings_in(&conn, None)?;
        let mut list: Vec<(u64, WorklistEntry)> = self
            .case_ids(&conn)?
            .into_iter()
            .filter_map(|case_id| {
                let of_case: Vec<&ReadingRecord> =
                    readings.iter().filter(|r| r.case_id == case_id).collect();
                assigned(info.protocol, &reader, &of_case).then(|| {
                    let done = of_case.iter().any(|r| r.reader == reader.name);
                    (
                        order_key(info.seed, reader.id, &case_id),
                        WorklistEntry { case_id, done },
                    )
                })
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.case_id.cmp(&b.1.case_id)));
        Ok(list.into_iter().map(|(_, e)| e).collect())
    }

    fn commit_reading(
        &self,
        reader: &str,
        case_id: &str,
        reading: &Reading,
        reason: Option<&str>,
    ) -> StoreResult<CommitOutcome> {
        validate_reading(reading)?;
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let info = self.info_in(tx)?;
            let reader = self.reader_in(tx, reader)?;
            self.ensure_case(tx, case_id)?;
            let of_case = self.readings_in(tx, Some(case_id))?;
            let refs: Vec<&ReadingRecord> = of_case.iter().collect();
            if !assigned(info.protocol, &reader, &refs) {
                return Err(StoreError::NotAssigned {
                    reader: reader.name.clone(),
                    case: case_id.to_string(),
                });
            }
            let old = of_case.iter().find(|r| r.reader == reader.name);
            if old.is_some_and(|o| &o.reading == reading) {
                return Ok(CommitOutcome::Unchanged);
            }
            let (l, r, na) = reading_to_row(reading);
            tx.execute(
                &format!(
                    "INSERT INTO readings (case_id, reader_id, left_grade, right_grade, not_assessable, comment, committed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})
                     ON CONFLICT (case_id, reader_id) DO UPDATE SET left_grade = excluded.left_grade,
                       right_grade = excluded.right_grade, not_assessable = excluded.not_assessable,
                       comment = excluded.comment, committed_at = excluded.committed_at"
                ),
                params![case_id, reader.id, l, r, na, reading.comment],
            )
            .map_err(|e| self.db(e))?;
            let new_json = serde_json::to_string(reading).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let old_json = old
                .map(|o| serde_json::to_string(&o.reading))
                .transpose()
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let action = if old.is_some() { "change_reading" } else { "create_reading" };
            audit(tx, &reader.name, action, Some(case_id), old_json.as_deref(), Some(&new_json), reason)
                .map_err(|e| self.db(e))?;
            Ok(if old.is_some() { CommitOutcome::Changed } else { CommitOutcome::Created })
        })
    }

    fn delete_reading(&self, reader: &str, case_id: &str, reason: &str) -> StoreResult<()> {
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "deleting a reading needs a reason".into(),
            ));
        }
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let reader = self.reader_in(tx, reader)?;
            self.ensure_case(tx, case_id)?;
            let old = self.own_in(tx, &reader, case_id)?.ok_or_else(|| {
                StoreError::Invalid(format!(
                    "{} has no reading of case {case_id} to delete",
                    reader.name
                ))
            })?;
            tx.execute(
                "DELETE FROM readings WHERE case_id = ?1 AND reader_id = ?2",
                params![case_id, reader.id],
            )
            .map_err(|e| self.db(e))?;
            let old_json = serde_json::to_string(&old.reading)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            audit(
                tx,
                &reader.name,
                "delete_reading",
                Some(case_id),
                Some(&old_json),
                None,
                Some(reason),
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn own_reading(&self, reader: &str, case_id: &str) -> StoreResult<Option<ReadingRecord>> {
        let conn = self.conn();
        let reader = self.reader_in(&conn, reader)?;
        self.ensure_case(&conn, case_id)?;
        self.own_in(&conn, &reader, case_id)
    }

    fn others_readings(&self, reader: &str, case_id: &str) -> StoreResult<Vec<ReadingRecord>> {
        let conn = self.conn();
        let reader = self.reveal_gate(&conn, reader, case_id, "other readers' readings", |s| {
            s.reveal_readers_after_commit
                .then_some(())
                .ok_or("in this study: readers stay blinded to each other (coordinator setting)")
        })?;
        Ok(self
            .readings_in(&conn, Some(case_id))?
            .into_iter()
            .filter(|r| r.reader != reader.name)
            .collect())
    }

    fn all_readings(&self) -> StoreResult<Vec<ReadingRecord>> {
        self.readings_in(&self.conn(), None)
    }

    fn record_prediction(
        &self,
        case_id: &str,
        model_sha256: &str,
        probability: f64,
    ) -> StoreResult<()> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(StoreError::Invalid(format!(
                "probability {probability} is not in [0, 1]"
            )));
        }
        self.write(|tx| {
            self.ensure_case(tx, case_id)?;
            tx.execute(
                &format!(
                    "INSERT INTO predictions (case_id, model_sha256, probability, created_at) VALUES (?1, ?2, ?3, {NOW})
                     ON CONFLICT (case_id, model_sha256) DO UPDATE SET probability = excluded.probability"
                ),
                params![case_id, model_sha256, probability],
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn predictions(&self, model_sha256: &str) -> StoreResult<Vec<PredictionRecord>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT case_id, probability FROM predictions WHERE model_sha256 = ?1 ORDER BY case_id",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![model_sha256], |r| {
                Ok(PredictionRecord {
                    case_id: r.get(0)?,
                    model_sha256: model_sha256.to_string(),
                    probability: r.get(1)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.db(e))
    }

    fn prediction_for_reader(
        &self,
        reader: &str,
        case_id: &str,
        model_sha256: &str,
    ) -> StoreResult<Option<PredictionRecord>> {
        let conn = self.conn();
        self.reveal_gate(&conn, reader, case_id, "the model's output", |s| {
            s.reveal_model_after_commit
                .then_some(())
                .ok_or("in this study (coordinator setting)")
        })?;
        conn.query_row(
            "SELECT probability FROM predictions WHERE case_id = ?1 AND model_sha256 = ?2",
            params![case_id, model_sha256],
            |r| r.get::<_, f64>(0),
        )
        .optional()
        .map_err(|e| self.db(e))
        .map(|p| {
            p.map(|probability| PredictionRecord {
                case_id: case_id.to_string(),
                model_sha256: model_sha256.to_string(),
                probability,
            })
        })
    }

    fn lock(&self) -> StoreResult<()> {
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            tx.execute("UPDATE meta SET value = '1' WHERE key = 'locked'", [])
                .map_err(|e| self.db(e))?;
            audit(tx, COORDINATOR, "lock", None, None, None, None).map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn set_crop(&self, actor: &str, case_id: &str, crop: Option<CropRect>) -> StoreResult<()> {
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let exists: i64 = tx
                .query_row("SELECT count(*) FROM cases WHERE id = ?1", [case_id], |r| r.get(0))
                .map_err(|e| self.db(e))?;
            if exists == 0 {
                return Err(StoreError::UnknownCase(case_id.to_string()));
            }
            let old: Option<String> = tx
                .query_row(
                    "SELECT x || ',' || y || ',' || width || ',' || height FROM crops WHERE case_id = ?1",
                    [case_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.db(e))?;
            let new = crop.map(|c| format!("{},{},{},{}", c.x, c.y, c.width, c.height));
            if old == new {
                return Ok(());
            }
            match crop {
                Some(c) => {
                    if c.width == 0 || c.height == 0 {
                        return Err(StoreError::Invalid("a crop needs a non-zero size".into()));
                    }
                    tx.execute(
                        &format!(
                            "INSERT INTO crops (case_id, x, y, width, height, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})
                             ON CONFLICT(case_id) DO UPDATE SET x = ?2, y = ?3, width = ?4, height = ?5, set_by = ?6, set_at = {NOW}"
                        ),
                        params![case_id, c.x, c.y, c.width, c.height, actor],
                    )
                    .map_err(|e| self.db(e))?;
                }
                None => {
                    tx.execute("DELETE FROM crops WHERE case_id = ?1", [case_id])
                        .map_err(|e| self.db(e))?;
                }
            }
            audit(tx, actor, "set_crop", Some(case_id), old.as_deref(), new.as_deref(), None)
                .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn crop(&self, case_id: &str) -> StoreResult<Option<CropRect>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT x, y, width, height FROM crops WHERE case_id = ?1",
            [case_id],
            |r| {
                Ok(CropRect {
                    x: r.get(0)?,
                    y: r.get(1)?,
                    width: r.get(2)?,
                    height: r.get(3)?,
                })
            },
        )
        .optional()
        .map_err(|e| self.db(e))
    }

    fn audit(&self) -> StoreResult<Vec<AuditRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT seq, at, actor, action, case_id, old_value, new_value, reason FROM audit ORDER BY seq")
            .map_err(|e| self.db(e))?;
        stmt.query_map([], |r| {
            Ok(AuditRow {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                case_id: r.get(4)?,
                old_value: r.get(5)?,
                new_value: r.get(6)?,
                reason: r.get(7)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.db(e))
    }
}

impl SqliteStore {
    /// Blinding: a reader sees `what` for a case only after committing their own reading of it, and only
    /// if the study's settings allow (`allowed` returns why not).
    fn reveal_gate(
        &self,
        conn: &Connection,
        reader: &str,
        case_id: &str,
        what: &'static str,
        allowed: impl FnOnce(&StudySettings) -> Result<(), &'static str>,
    ) -> StoreResult<ReaderInfo> {
        let info = self.info_in(conn)?;
        let reader = self.reader_in(conn, reader)?;
        self.ensure_case(conn, case_id)?;
        let blinded = |why| StoreError::Blinded {
            reader: reader.name.clone(),
            case: case_id.to_string(),
            what,
            why,
        };
        if self.own_in(conn, &reader, case_id)?.is_none() {
            return Err(blinded("before committing their own reading"));
        }
        allowed(&info.settings).map_err(blinded)?;
        Ok(reader)
    }

    fn cases_in(&self, conn: &Connection) -> StoreResult<Vec<CaseInfo>> {
        let mut stmt = conn
            .prepare("SELECT id, path, sop_instance_uid FROM cases ORDER BY id")
            .map_err(|e| self.db(e))?;
        stmt.query_map([], |r| {
            Ok(CaseInfo {
                id: r.get(0)?,
                path: r.get::<_, Option<String>>(1)?.map(PathBuf::from),
                sop_instance_uid: r.get(2)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.db(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_reproducible_and_differs_between_readers() {
        let ids: Vec<String> = (1..=50).map(|i| format!("C{i:04}")).collect();
        let order = |reader: i64| {
            let mut v = ids.clone();
            v.sort_by_key(|c| order_key(7, reader, c));
            v
        };
        assert_eq!(order(1), order(1));
        assert_ne!(order(1), order(2));
        assert_ne!(order(1), ids, "shuffled");
    }
}
