//! The audit trail as a hash chain, so that a study edited behind Sacro's back says so. Each audit row
//! carries `hash = SHA-256(previous hash, its own fields)`; the study's `meta` keeps the chain's head
//! (and, once locked, the lock row's hash). [`SqliteStore::verify`] recomputes the chain, compares the
//! head, checks the lock against the trail, and replays the trail's reading actions to check that the
//! `readings` table holds exactly what the trail says was committed.
//!
//! What this detects: any change, insertion or removal of audit rows, readings or the lock made by
//! someone who does not also recompute the chain from the changed row to the end and the head in `meta`
//! (e.g. `UPDATE readings …`, `UPDATE meta SET value='0' WHERE key='locked'`, or rewriting audit rows
//! after `DROP TRIGGER`). What it cannot: someone with the file and this code can recompute a whole
//! new chain; only a server that keeps the trail out of the readers' hands (a database with per-user
//! rights) can enforce that.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
pub(super) use crate::session::trail::{Fields, link};
use crate::session::trail::{fields, findings};
use crate::session::{AuditRow, StoreResult};

/// The chain's head (the last row's hash; empty before the first row).
pub(super) fn head(conn: &Connection) -> rusqlite::Result<String> {
    Ok(conn
        .query_row(
            "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten()
        .unwrap_or_default())
}

/// Records `hash` as the chain's head in `meta`.
pub(super) fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
}

/// Every audit row in order, with its stored link (none before the chain's migration).
pub(super) fn rows(conn: &Connection) -> rusqlite::Result<Vec<(AuditRow, Option<String>)>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, action, case_id, old_value, new_value, reason, hash FROM audit ORDER BY seq",
    )?;
    stmt.query_map([], |r| {
        Ok((
            AuditRow {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                case_id: r.get(4)?,
                old_value: r.get(5)?,
                new_value: r.get(6)?,
                reason: r.get(7)?,
            },
            r.get(8)?,
        ))
    })?
    .collect()
}

/// Gives every audit row without a hash its link (a study from before the chain: sealed as it is when
/// first opened by this version), and records the head. For the migration only: the append-only
/// trigger is dropped around it.
pub(super) fn seal_existing(conn: &Connection) -> rusqlite::Result<()> {
    let mut prev = String::new();
    let mut lock = None;
    for (row, stored) in rows(conn)? {
        let hash = match stored {
            Some(h) => h,
            None => {
                let h = link(&prev, &fields(&row));
                conn.execute(
                    "UPDATE audit SET hash = ?1 WHERE seq = ?2",
                    params![h, row.seq],
                )?;
                h
            }
        };
        if row.action == "lock" {
            lock = Some(hash.clone());
        }
        prev = hash;
    }
    set_meta(conn, "audit_head", &prev)?;
    if let Some(h) = lock {
        set_meta(conn, "lock_head", &h)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Checks the study against its audit trail: the hash chain, its head, the lock, and that the
    /// readings are the replay of the trail. Returns what does not hold, one line each (empty: intact).
    pub fn verify(&self) -> StoreResult<Vec<String>> {
        let conn = self.conn();
        let rows = rows(&conn).map_err(|e| self.db(e))?;
        let mut meta = std::collections::HashMap::new();
        for key in ["audit_head", "locked", "lock_head"] {
            let value: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(|e| self.db(e))?;
            if let Some(v) = value {
                meta.insert(key, v);
            }
        }
        let stored = self.readings_in(&conn, None)?;
        let mut problems = findings(&rows, |k| meta.get(k).cloned(), &stored);
        let design: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'design'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db(e))?;
        let boxes = self.boxes_in(&conn, None)?;
        problems.extend(crate::session::trail::box_findings(&rows, &boxes));
        let arms = self.arm_readings_in(&conn, None)?;
        problems.extend(crate::session::trail::arm_findings(
            &rows,
            design.as_deref(),
            &arms,
        ));
        Ok(problems)
    }
}
