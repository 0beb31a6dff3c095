//! The SQL behind the store: reading rows to and from [`Reading`]s, the audit row every write adds,
//! and the queries the store's methods share (study settings, readers, cases, readings, blinding).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::schema::NOW;
use super::schema::SCHEMA_VERSION;
use crate::session::rules::{reveal, row_to_reading};
use crate::session::{
    CaseInfo, Protocol, ReaderInfo, ReadingRecord, Role, StoreError, StoreResult, StudyInfo,
    StudySettings,
};

/// Appends an audit row, linked to the chain ([`super::chain`]), and records the new head.
pub(super) fn audit(
    tx: &Connection,
    actor: &str,
    action: &str,
    case_id: Option<&str>,
    old: Option<&str>,
    new: Option<&str>,
    reason: Option<&str>,
) -> rusqlite::Result<usize> {
    let at: String = tx.query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))?;
    let prev = super::chain::head(tx)?;
    let fields = super::chain::Fields {
        at: &at,
        actor,
        action,
        case_id,
        old,
        new,
        reason,
    };
    let hash = super::chain::link(&prev, &fields);
    let n = tx.execute(
        "INSERT INTO audit (at, actor, action, case_id, old_value, new_value, reason, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![at, actor, action, case_id, old, new, reason, hash],
    )?;
    super::chain::set_meta(tx, "audit_head", &hash)?;
    Ok(n)
}

impl SqliteStore {
    pub(super) fn meta(&self, conn: &Connection, key: &str) -> StoreResult<String> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("study setting {key:?} missing: {e}"),
            })
    }

    pub(super) fn info_in(&self, conn: &Connection) -> StoreResult<StudyInfo> {
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

    pub(super) fn ensure_unlocked(&self, conn: &Connection) -> StoreResult<()> {
        if self.meta(conn, "locked")? == "1" {
            return Err(StoreError::Locked);
        }
        Ok(())
    }

    pub(super) fn reader_in(&self, conn: &Connection, name: &str) -> StoreResult<ReaderInfo> {
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

    pub(super) fn readers_in(&self, conn: &Connection) -> StoreResult<Vec<ReaderInfo>> {
        let mut stmt = conn
            .prepare("SELECT name FROM readers ORDER BY id")
            .map_err(|e| self.db(e))?;
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.db(e))?;
        names.iter().map(|n| self.reader_in(conn, n)).collect()
    }

    pub(super) fn ensure_case(&self, conn: &Connection, case_id: &str) -> StoreResult<()> {
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

    pub(super) fn readings_in(
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

    /// The readings of a case on the reader's work list; refused when it is not on it.
    pub(super) fn assigned_readings(
        &self,
        conn: &Connection,
        protocol: crate::session::Protocol,
        reader: &ReaderInfo,
        case_id: &str,
    ) -> StoreResult<Vec<ReadingRecord>> {
        let of_case = self.readings_in(conn, Some(case_id))?;
        let refs: Vec<&ReadingRecord> = of_case.iter().collect();
        if !crate::session::consensus::assigned(protocol, reader, &refs) {
            return Err(StoreError::NotAssigned {
                reader: reader.name.clone(),
                case: case_id.to_string(),
            });
        }
        Ok(of_case)
    }

    pub(super) fn own_in(
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

    pub(super) fn case_ids(&self, conn: &Connection) -> StoreResult<Vec<String>> {
        let mut stmt = conn
            .prepare("SELECT id FROM cases ORDER BY id")
            .map_err(|e| self.db(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.db(e))
    }

    /// Stores a path relative to the study's folder when it lies below it.
    pub(super) fn stored_path(&self, p: &Path) -> String {
        let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let base = std::fs::canonicalize(self.base_dir()).unwrap_or_else(|_| self.base_dir());
        let rel = abs
            .strip_prefix(&base)
            .map(Path::to_path_buf)
            .unwrap_or(abs);
        rel.to_string_lossy().replace('\\', "/")
    }

    /// Blinding: a reader sees `what` for a case only after committing their own reading of it, and only
    /// if the study's settings allow (`allowed` returns why not).
    pub(super) fn reveal_gate(
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
        let has_own = self.own_in(conn, &reader, case_id)?.is_some();
        reveal(&reader, case_id, has_own, &info.settings, what, allowed)?;
        Ok(reader)
    }

    pub(super) fn cases_in(&self, conn: &Connection) -> StoreResult<Vec<CaseInfo>> {
        let mut stmt = conn
            .prepare("SELECT id, path, sop_instance_uid, archive_url, study_uid, series_uid FROM cases ORDER BY id")
            .map_err(|e| self.db(e))?;
        stmt.query_map([], |r| {
            Ok(CaseInfo {
                id: r.get(0)?,
                path: r.get::<_, Option<String>>(1)?.map(PathBuf::from),
                sop_instance_uid: r.get(2)?,
                archive: crate::session::rules::archive_ref(r.get(3)?, r.get(4)?, r.get(5)?),
            })
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.db(e))
    }
}
