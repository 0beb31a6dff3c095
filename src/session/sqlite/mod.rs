//! The embedded study store: one SQLite file per study, WAL mode, `synchronous=FULL`, foreign keys on,
//! a versioned schema, a busy timeout so two Sacro windows can share a file, and every write in one
//! `BEGIN IMMEDIATE` transaction together with its audit row. Triggers keep the audit trail append-only
//! and refuse changes to readings once the study is locked, below the API as well as in it.

//!
//! Files: [`schema`] (version, migrations, connection settings), `queries` (rows and shared SQL), `store`
//! (the [`StudyStore`] implementation); the rules any store shares are in [`super::rules`].

mod arms;
mod boxes;
mod chain;
mod copy;
mod queries;
pub mod schema;
mod store;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, params};

use super::rules::{created_json, initial_meta};
use super::{CaseInfo, Protocol, StoreError, StoreResult, StudyStore};

use queries::audit;
pub use schema::SCHEMA_VERSION;
use schema::{AUDIT_APPEND_ONLY, CHAINED_FROM, COORDINATOR, MIGRATIONS, configure};

/// A study kept in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Opened without write access: reads work, every write is refused.
    read_only: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
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
            read_only: false,
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
            chain::seal_existing(&tx).map_err(|e| store.db(e))?;
            tx.execute_batch(AUDIT_APPEND_ONLY)
                .map_err(|e| store.db(e))?;
            for (k, v) in initial_meta(protocol, seed) {
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
                Some(&created_json(protocol, seed)),
                None,
            )
            .map_err(|e| store.db(e))?;
            tx.commit().map_err(|e| store.db(e))?;
        }
        Ok(store)
    }

    /// Opens an existing study file, checking that it is an intact Sacro study of a known schema, and
    /// migrating an older schema in place. Nothing is written to the file until it is known to be a
    /// Sacro study (the checks run on a read-only connection): a foreign database or an empty file is
    /// refused unchanged. A file this user may not write opens read-only ([`SqliteStore::is_read_only`]).
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, false)
    }

    /// Opens a study for reading only: every write is refused with [`StoreError::ReadOnly`].
    pub fn open_read_only(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, read_only: bool) -> StoreResult<Self> {
        if !path.is_file() {
            return Err(StoreError::NotFound(path.to_path_buf()));
        }
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let mut head = Vec::with_capacity(16);
        std::fs::File::open(path)
            .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 16), &mut head))
            .map_err(|e| corrupt(format!("cannot read: {e}")))?;
        if head.len() < 16 {
            return Err(corrupt(format!(
                "not an SQLite database ({} bytes: empty or too short)",
                head.len()
            )));
        }
        if head[..] != crate::imaging::export::SQLITE_HEADER[..] {
            return Err(corrupt("not an SQLite database".into()));
        }
        let version = Self::check_read_only(path)?;
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| corrupt(e.to_string()))?;
        // SQLite opens a file it may not write read-only even when asked for read-write.
        let read_only = read_only || conn.is_readonly("main").unwrap_or(true);
        if read_only {
            conn.busy_timeout(std::time::Duration::from_secs(30))
                .map_err(|e| corrupt(e.to_string()))?;
            if version < SCHEMA_VERSION {
                return Err(StoreError::ReadOnly(path.to_path_buf()));
            }
        } else {
            configure(&conn).map_err(|e| corrupt(e.to_string()))?;
        }
        let store = Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            read_only,
        };
        store.migrate(version)?;
        store.info()?;
        Ok(store)
    }

    /// The checks that make a file a Sacro study, on a read-only connection (nothing is written): its
    /// integrity, a known schema version and the study tables. Returns the schema version.
    fn check_read_only(path: &Path) -> StoreResult<i64> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| corrupt(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| corrupt(e.to_string()))?;
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
        Ok(version)
    }

    /// Whether the study was opened without write access (every write is refused).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub(super) fn migrate(&self, from: i64) -> StoreResult<()> {
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
        if from < CHAINED_FROM {
            chain::seal_existing(&tx).map_err(|e| self.db(e))?;
            tx.execute_batch(AUDIT_APPEND_ONLY)
                .map_err(|e| self.db(e))?;
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

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn db(&self, source: rusqlite::Error) -> StoreError {
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
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        if self.read_only {
            return Err(StoreError::ReadOnly(self.path.clone()));
        }
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(value)
    }
}
