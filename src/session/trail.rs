//! The audit trail as a hash chain, whatever store keeps it: the link of each row
//! (`hash = SHA-256(previous hash, its own fields)`, hex, over a compact JSON array) and the checks of a
//! whole trail against the study it describes ([`findings`]). The SQLite store computes links here; the
//! PostgreSQL store computes the same links inside the database (`sacro_append_audit`), and a study
//! pulled from a server into a file is verified by this code.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::grading::Reading;
use crate::session::{ArmReadingRecord, AuditRow, ReadingRecord};

/// The fields of an audit row that its hash covers, in order.
pub(crate) struct Fields<'a> {
    pub at: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub case_id: Option<&'a str>,
    pub old: Option<&'a str>,
    pub new: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// The hash of a row after `prev` (hex SHA-256 of the JSON array of `prev` and the row's fields).
pub(crate) fn link(prev: &str, f: &Fields<'_>) -> String {
    let json = serde_json::json!([
        prev, f.at, f.actor, f.action, f.case_id, f.old, f.new, f.reason
    ]);
    let digest = Sha256::digest(json.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fields of a stored row.
pub(crate) fn fields(a: &AuditRow) -> Fields<'_> {
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

/// Checks a study against its audit trail: the hash chain, its head (`meta("audit_head")`), the lock
/// (`meta("locked")`, `meta("lock_head")`), and that `readings` are the replay of the trail. Returns what
/// does not hold, one line each (empty: intact).
pub(crate) fn findings(
    rows: &[(AuditRow, Option<String>)],
    meta: impl Fn(&str) -> Option<String>,
    readings: &[ReadingRecord],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut prev = String::new();
    for (row, stored) in rows {
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
    if meta("audit_head").unwrap_or_default() != prev {
        problems.push(
            "the audit trail's head differs from the one recorded: rows were removed or added \
             outside Sacro"
                .into(),
        );
    }
    let locked = meta("locked").as_deref() == Some("1");
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
            if meta("lock_head") != *hash {
                problems.push("the lock's recorded chain head differs from its audit row".into());
            }
            if let Some((after, _)) = rows.iter().find(|(x, _)| x.seq > r.seq) {
                problems.push(format!("{} comes after the lock", describe(after)));
            }
        }
        (None, false) => {}
    }
    // The readings the trail says were committed, replayed in order.
    let mut replay: BTreeMap<(String, String), Reading> = BTreeMap::new();
    for (r, _) in rows {
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
    let stored = readings
        .iter()
        .map(|r| ((r.case_id.clone(), r.reader.clone()), r.reading.clone()));
    problems.extend(compare_replay(replay, stored, |(case, reader)| {
        format!("the reading of case {case} by {reader}")
    }));
    problems
}

/// What a table holds against the trail's replay of it (both keyed alike): each stored value must equal
/// its replayed one; one the replay lacks was added outside Sacro, a replayed one left over was removed.
/// `what` names an entry in the findings.
fn compare_replay<K: Ord, V: PartialEq>(
    mut replay: BTreeMap<K, V>,
    stored: impl IntoIterator<Item = (K, V)>,
    what: impl Fn(&K) -> String,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, value) in stored {
        match replay.remove(&key) {
            Some(v) if v == value => {}
            Some(_) => problems.push(format!(
                "{} differs from its audit trail: changed outside Sacro",
                what(&key)
            )),
            None => problems.push(format!(
                "{} has no audit row: added outside Sacro",
                what(&key)
            )),
        }
    }
    for key in replay.keys() {
        problems.push(format!(
            "{} in the audit trail is missing: removed outside Sacro",
            what(key)
        ));
    }
    problems
}

/// Checks a reader study against its audit trail: the design is the last one the trail set, and the arm
/// readings (grades, arm, confidence) are the replay of the trail's arm rows.
pub(crate) fn arm_findings(
    rows: &[(AuditRow, Option<String>)],
    design: Option<&str>,
    arms: &[ArmReadingRecord],
) -> Vec<String> {
    let mut problems = Vec::new();
    let set = rows
        .iter()
        .rev()
        .find(|(r, _)| r.action == "design")
        .and_then(|(r, _)| r.new_value.as_deref());
    let standard = |d: Option<&str>| d.is_none_or(|d| d.contains("\"standard\""));
    if set != design && !(standard(set) && standard(design)) {
        problems.push(
            "the study's design differs from the one its audit trail set: changed outside Sacro"
                .into(),
        );
    }
    type Key = (String, String, String);
    let mut replay: BTreeMap<Key, (Reading, u64)> = BTreeMap::new();
    for (r, _) in rows {
        let (Some(case), "create_arm_reading" | "change_arm_reading") =
            (r.case_id.clone(), r.action.as_str())
        else {
            continue;
        };
        let parsed = r
            .new_value
            .as_deref()
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
            .and_then(|v| {
                let arm = v.get("arm")?.as_str()?.to_string();
                let confidence = v.get("confidence")?.as_u64()?;
                let reading = serde_json::from_value::<Reading>(v).ok()?;
                Some((arm, reading, confidence))
            });
        match parsed {
            Some((arm, reading, confidence)) => {
                replay.insert((case, r.actor.clone(), arm), (reading, confidence));
            }
            None => problems.push(format!("{} holds no readable arm reading", describe(r))),
        }
    }
    let stored = arms.iter().map(|a| {
        let key = (
            a.case_id.clone(),
            a.reader.clone(),
            a.arm.as_str().to_string(),
        );
        (key, (a.reading.clone(), u64::from(a.confidence)))
    });
    problems.extend(compare_replay(replay, stored, |(case, reader, arm)| {
        format!("the {arm} reading of case {case} by {reader}")
    }));
    problems
}

/// Checks the joint boxes against the trail's `set_left_joint_box` / `set_right_joint_box` rows replayed
/// in order (a box changed, added or removed outside Sacro is reported).
pub(crate) fn box_findings(
    rows: &[(AuditRow, Option<String>)],
    boxes: &[crate::session::joint_boxes::JointBoxRecord],
) -> Vec<String> {
    let mut replay: BTreeMap<(String, String, &str), String> = BTreeMap::new();
    for (r, _) in rows {
        let side = match r.action.as_str() {
            "set_left_joint_box" => "left",
            "set_right_joint_box" => "right",
            _ => continue,
        };
        let key = (r.case_id.clone().unwrap_or_default(), r.actor.clone(), side);
        match &r.new_value {
            Some(v) => replay.insert(key, v.clone()),
            None => replay.remove(&key),
        };
    }
    let stored = boxes.iter().map(|b| {
        let key = (b.case_id.clone(), b.reader.clone(), b.side.as_str());
        (key, crate::session::joint_boxes::box_text(&b.rect))
    });
    compare_replay(replay, stored, |(case, reader, side)| {
        format!("the {side} joint box of case {case} by {reader}")
    })
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
