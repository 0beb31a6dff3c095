//! A study file to and from a [`StudyDump`]: every row read verbatim, and a new file written from a dump
//! in one transaction beside its final name, checked, then renamed into place (a copy that fails leaves
//! nothing behind).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::SqliteStore;
use super::chain::rows;
use super::schema::{AUDIT_APPEND_ONLY, MIGRATIONS, SCHEMA_VERSION, configure};
use crate::session::dump::{
    CaseRow, CropRow, META_KEYS, PredictionRow, ReaderRow, ReadingRow, StudyDump,
};
use crate::session::{StoreError, StoreResult};

impl SqliteStore {
    /// Every row of the study.
    pub fn dump(&self) -> StoreResult<StudyDump> {
        let conn = self.conn();
        if self.design_in(&conn)? != crate::session::Design::Standard {
            return Err(StoreError::Invalid(format!(
                "{}: a reader study (aided design) stays in its study file: the server store has no \
                 reader-study arms, so it cannot be copied there",
                self.path.display()
            )));
        }
        let boxes = self.boxes_in(&conn, None)?.len();
        if boxes > 0 {
            return Err(StoreError::Invalid(format!(
                "{}: the study holds {boxes} joint box(es), which the server store has no place for yet: \
                 it cannot be copied there without losing them",
                self.path.display()
            )));
        }
        read_all(&conn).map_err(|e| self.db(e))
    }

    /// Writes a new study file holding exactly `dump` (refuses to overwrite anything). The file is
    /// written under a temporary name beside `path`, read back and compared with `dump`, and renamed to
    /// `path` only when equal.
    pub fn create_from(path: &Path, dump: &StudyDump) -> StoreResult<()> {
        if path.exists() {
            return Err(StoreError::AlreadyExists(path.to_path_buf()));
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".sacro-copy-")
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(|e| {
                StoreError::Invalid(format!("{}: cannot write here: {e}", dir.display()))
            })?;
        let db = |source| StoreError::Database {
            path: path.to_path_buf(),
            source,
        };
        {
            let mut conn = Connection::open_with_flags(
                tmp.path(),
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(db)?;
            configure(&conn).map_err(db)?;
            let tx = conn.transaction().map_err(db)?;
            for sql in MIGRATIONS {
                tx.execute_batch(sql).map_err(db)?;
            }
            tx.execute_batch(AUDIT_APPEND_ONLY).map_err(db)?;
            write_all(&tx, dump).map_err(db)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(db)?;
            tx.commit().map_err(db)?;
            let back = read_all(&conn).map_err(db)?;
            let diff = dump.differences(&back);
            if !diff.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "{}: the copy does not read back equal ({}); nothing written",
                    path.display(),
                    diff.join("; ")
                )));
            }
            conn.pragma_update(None, "journal_mode", "DELETE")
                .map_err(db)?;
        }
        tmp.persist_noclobber(path).map_err(|e| {
            StoreError::Invalid(format!(
                "{}: cannot create the study file: {}",
                path.display(),
                e.error
            ))
        })?;
        Ok(())
    }
}

fn read_all(conn: &Connection) -> rusqlite::Result<StudyDump> {
    let mut meta = Vec::new();
    for key in META_KEYS {
        let mut stmt = conn.prepare("SELECT value FROM meta WHERE key = ?1")?;
        let mut it = stmt.query_map([key], |r| r.get::<_, String>(0))?;
        if let Some(v) = it.next() {
            meta.push((key.to_string(), v?));
        }
    }
    let collect = |sql: &str| -> rusqlite::Result<rusqlite::Statement<'_>> { conn.prepare(sql) };
    let readers = collect("SELECT id, name, role, created_at FROM readers ORDER BY id")?
        .query_map([], |r| {
            Ok(ReaderRow {
                id: r.get(0)?,
                name: r.get(1)?,
                role: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let cases = collect("SELECT id, path, sop_instance_uid, added_at, archive_url, study_uid, series_uid FROM cases ORDER BY id")?
        .query_map([], |r| {
            Ok(CaseRow {
                id: r.get(0)?,
                path: r.get(1)?,
                sop_instance_uid: r.get(2)?,
                archive: crate::session::rules::archive_ref(r.get(4)?, r.get(5)?, r.get(6)?),
                added_at: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let readings = collect(
        "SELECT case_id, reader_id, left_grade, right_grade, not_assessable, comment, committed_at
         FROM readings ORDER BY case_id, reader_id",
    )?
    .query_map([], |r| {
        Ok(ReadingRow {
            case_id: r.get(0)?,
            reader_id: r.get(1)?,
            left_grade: r.get(2)?,
            right_grade: r.get(3)?,
            not_assessable: r.get(4)?,
            comment: r.get(5)?,
            committed_at: r.get(6)?,
        })
    })?
    .collect::<Result<_, _>>()?;
    let predictions = collect(
        "SELECT case_id, model_sha256, probability, created_at FROM predictions ORDER BY case_id, model_sha256",
    )?
    .query_map([], |r| {
        Ok(PredictionRow {
            case_id: r.get(0)?,
            model_sha256: r.get(1)?,
            probability: r.get(2)?,
            created_at: r.get(3)?,
        })
    })?
    .collect::<Result<_, _>>()?;
    let crops =
        collect("SELECT case_id, x, y, width, height, set_by, set_at FROM crops ORDER BY case_id")?
            .query_map([], |r| {
                Ok(CropRow {
                    case_id: r.get(0)?,
                    rect: [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?],
                    set_by: r.get(5)?,
                    set_at: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    Ok(StudyDump {
        meta,
        readers,
        cases,
        readings,
        audit: rows(conn)?,
        predictions,
        crops,
    })
}

/// Inserts every row of `dump` into an empty study schema; the lock last (its triggers refuse rows
/// after it).
fn write_all(tx: &Connection, dump: &StudyDump) -> rusqlite::Result<()> {
    for (k, v) in dump.meta.iter().filter(|(k, _)| k != "locked") {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            params![k, v],
        )?;
    }
    tx.execute("INSERT INTO meta (key, value) VALUES ('locked', '0')", [])?;
    for r in &dump.readers {
        tx.execute(
            "INSERT INTO readers (id, name, role, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![r.id, r.name, r.role, r.created_at],
        )?;
    }
    for c in &dump.cases {
        tx.execute(
            "INSERT INTO cases (id, path, sop_instance_uid, added_at, archive_url, study_uid, series_uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                c.id,
                c.path,
                c.sop_instance_uid,
                c.added_at,
                c.archive.as_ref().map(|a| &a.url),
                c.archive.as_ref().map(|a| &a.study_uid),
                c.archive.as_ref().map(|a| &a.series_uid),
            ],
        )?;
    }
    for r in &dump.readings {
        tx.execute(
            "INSERT INTO readings (case_id, reader_id, left_grade, right_grade, not_assessable, comment, committed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![r.case_id, r.reader_id, r.left_grade, r.right_grade, r.not_assessable, r.comment, r.committed_at],
        )?;
    }
    for (a, hash) in &dump.audit {
        tx.execute(
            "INSERT INTO audit (seq, at, actor, action, case_id, old_value, new_value, reason, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![a.seq, a.at, a.actor, a.action, a.case_id, a.old_value, a.new_value, a.reason, hash],
        )?;
    }
    for p in &dump.predictions {
        tx.execute(
            "INSERT INTO predictions (case_id, model_sha256, probability, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![p.case_id, p.model_sha256, p.probability, p.created_at],
        )?;
    }
    for c in &dump.crops {
        tx.execute(
            "INSERT INTO crops (case_id, x, y, width, height, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![c.case_id, c.rect[0], c.rect[1], c.rect[2], c.rect[3], c.set_by, c.set_at],
        )?;
    }
    if let Some(locked) = dump.meta("locked") {
        tx.execute("UPDATE meta SET value = ?1 WHERE key = 'locked'", [locked])?;
    }
    Ok(())
}
