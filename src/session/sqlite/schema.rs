//! The SQLite study file's schema: its version, the migrations that build it step by step (tables,
//! indexes and the triggers that keep the audit trail append-only and a locked study unchanged), and the
//! connection settings every open applies.

use rusqlite::Connection;

/// Newest schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 6;
pub(super) const COORDINATOR: &str = "coordinator";
pub(super) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

/// Migrations: entry `i` brings a study from schema version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // The audit trail as a hash chain (chain.rs): the column, filled for existing rows by
    // `chain::seal_existing` with the append-only trigger dropped around it (`AUDIT_APPEND_ONLY`).
    r#"
DROP TRIGGER audit_no_update;
ALTER TABLE audit ADD COLUMN hash TEXT;
"#,
    // Cases that refer to a film in a DICOMweb archive (its root, study and series; the SOP Instance
    // UID is the case's own column).
    r#"
ALTER TABLE cases ADD COLUMN archive_url TEXT;
ALTER TABLE cases ADD COLUMN study_uid TEXT;
ALTER TABLE cases ADD COLUMN series_uid TEXT;
"#,
    // Reader studies (the aided design): each arm reader's reading of a case in each arm, with the
    // confidence score; the design itself is the `design` row of `meta` (absent: standard).
    r#"
CREATE TABLE arm_readings (
    case_id TEXT NOT NULL REFERENCES cases(id),
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    arm TEXT NOT NULL CHECK (arm IN ('unaided', 'aided')),
    left_grade INTEGER CHECK (left_grade BETWEEN 0 AND 4),
    right_grade INTEGER CHECK (right_grade BETWEEN 0 AND 4),
    not_assessable TEXT,
    comment TEXT,
    confidence INTEGER NOT NULL CHECK (confidence BETWEEN 0 AND 100),
    committed_at TEXT NOT NULL,
    PRIMARY KEY (case_id, reader_id, arm),
    CHECK ((left_grade IS NOT NULL AND right_grade IS NOT NULL AND not_assessable IS NULL)
        OR (left_grade IS NULL AND right_grade IS NULL AND not_assessable IS NOT NULL))
);
CREATE TRIGGER arm_readings_locked_insert BEFORE INSERT ON arm_readings
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
CREATE TRIGGER arm_readings_locked_update BEFORE UPDATE ON arm_readings
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
CREATE TRIGGER arm_readings_locked_delete BEFORE DELETE ON arm_readings
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
"#,
    // Joint boxes: each reader's box around each sacroiliac joint of a film (a localiser's labels).
    r#"
CREATE TABLE joint_boxes (
    case_id TEXT NOT NULL REFERENCES cases(id),
    reader_id INTEGER NOT NULL REFERENCES readers(id),
    side TEXT NOT NULL CHECK (side IN ('left', 'right')),
    x INTEGER NOT NULL CHECK (x >= 0),
    y INTEGER NOT NULL CHECK (y >= 0),
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    set_at TEXT NOT NULL,
    PRIMARY KEY (case_id, reader_id, side)
);
CREATE TRIGGER joint_boxes_locked_insert BEFORE INSERT ON joint_boxes
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
CREATE TRIGGER joint_boxes_locked_update BEFORE UPDATE ON joint_boxes
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
CREATE TRIGGER joint_boxes_locked_delete BEFORE DELETE ON joint_boxes
    WHEN (SELECT value FROM meta WHERE key = 'locked') = '1' BEGIN SELECT RAISE(ABORT, 'study is locked'); END;
"#,
];

/// The schema version from which audit rows carry their hash link.
pub(super) const CHAINED_FROM: i64 = 3;

/// The append-only rule on audit rows' updates, restored after the chain's migration.
pub(super) const AUDIT_APPEND_ONLY: &str = "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;";

pub(super) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}
