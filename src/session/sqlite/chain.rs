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

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::SqliteStore;
use crate::grading::Reading;
use crate::session::{AuditRow, StoreResult};

/// The fields of an audit row that its hash covers, in order.
pub(super) struct Fields<'a> {
    pub at: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub case_id: Option<&'a str>,
    pub old: Option<&'a str>,
    pub new: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// The hash of a row after `prev` (hex SHA-256 of the JSON array of `prev` and the row's fields).
pub(super) fn link(prev: &str, f: &Fields<'_>) -> String {
    let json = serde_json::json!([
        prev, f.at, f.actor, f.action, f.case_id, f.old, f.new, f.reason
    ]);
    let digest = Sha256::digest(json.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

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

/// The fields of a stored row.
fn fields(a: &AuditRow) -> Fields<'_> {
    Fields {
        at: &a.at,
        actor: &a.actor,
        action: &a.action,
        case_id: a.case_id.as_deref(),
        old: a.old_value.as_deref(),
        new: a.new_value.as_deref(),
        reason: a.reason.as_deref(),
    }
}

/// A row as the findings name it.
fn describe(a: &AuditRow) -> String {
    format!(
        "audit row {} ({} by {}{})",
        a.seq,
        a.action,
        a.actor,
        a.case_id
            .as_deref()
            .map(|c| format!(", case {c}"))
            .unwrap_or_default()
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
        let mut problems = Vec::new();
        let rows = rows(&conn).map_err(|e| self.db(e))?;
        let mut prev = String::new();
        for (row, stored) in &rows {
            let expected = link(&prev, &fields(row));
            if stored.as_deref() != Some(expected.as_str()) {
                problems.push(format!(
                    "{} does not match the audit chain: the trail was changed outside Sacro",
                    describe(row)
                ));
            }
            // Go on from the stored link, so that each break is reported once, where it is.
            prev = stored.clone().unwrap_or(expected);
        }
        let meta = |key: &str| -> StoreResult<Option<String>> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(|e| self.db(e))
        };
        if meta("audit_head")?.unwrap_or_default() != prev {
            problems.push(
                "the audit trail's head differs from the one recorded: rows were removed or added \
                 outside Sacro"
                    .into(),
            );
        }
        let locked = meta("locked")?.as_deref() == Some("1");
        let lock_row = rows.iter().find(|(r, _)| r.action == "lock");
        match (lock_row, locked) {
            (Some((r, _)), false) => problems.push(format!(
                "the study was locked ({}) but is marked unlocked: unlocked outside Sacro",
                describe(r)
            )),
            (None, true) => {
                problems.push("the study is marked locked but its audit trail has no lock".into())
            }
            (Some((r, hash)), true) => {
                if meta("lock_head")? != *hash {
                    problems
                        .push("the lock's recorded chain head differs from its audit row".into());
                }
                if let Some((after, _)) = rows.iter().find(|(x, _)| x.seq > r.seq) {
                    problems.push(format!("{} comes after the lock", describe(after)));
                }
            }
            (None, false) => {}
        }
        // The readings the trail says were committed, replayed in order.
        let mut replay: BTreeMap<(String, String), Reading> = BTreeMap::new();
        for (r, _) in &rows {
            let Some(case) = r.case_id.clone() else {
                continue;
            };
            match r.action.as_str() {
                "create_reading" | "change_reading" => {
                    match r.new_value.as_deref().map(serde_json::from_str::<Reading>) {
                        Some(Ok(reading)) => {
                            replay.insert((case, r.actor.clone()), reading);
                        }
                        _ => problems.push(format!("{} holds no readable reading", describe(r))),
                    }
                }
                "delete_reading" => {
                    replay.remove(&(case, r.actor.clone()));
                }
                _ => {}
            }
        }
        let stored = self.readings_in(&conn, None)?;
        for rec in &stored {
            let key = (rec.case_id.clone(), rec.reader.clone());
            match replay.remove(&key) {
                Some(r) if r == rec.reading => {}
                Some(_) => problems.push(format!(
                    "the reading of case {} by {} differs from its audit trail: changed outside Sacro",
                    rec.case_id, rec.reader
                )),
                None => problems.push(format!(
                    "the reading of case {} by {} has no audit row: added outside Sacro",
                    rec.case_id, rec.reader
                )),
            }
        }
        for (case, reader) in replay.keys() {
            problems.push(format!(
                "the reading of case {case} by {reader} in the audit trail is missing: removed outside \
                 Sacro"
            ));
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_covers_every_field_and_the_previous_hash() {
        let f = Fields {
            at: "2026-12-07T10:00:00.000Z",
            actor: "ann",
            action: "create_reading",
            case_id: Some("C0001"),
            old: None,
            new: Some("{}"),
            reason: None,
        };
        let base = link("", &f);
        assert_eq!(base.len(), 64);
        assert_ne!(link("x", &f), base);
        for changed in [
            Fields { actor: "bob", ..f },
            Fields { case_id: None, ..f },
            Fields {
                new: Some("{ }"),
                ..f
            },
            Fields {
                reason: Some(""),
                ..f
            },
            Fields {
                at: "2026-12-07T10:00:00.001Z",
                ..f
            },
        ] {
            assert_ne!(link("", &changed), base);
        }
    }
}
