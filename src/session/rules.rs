//! Rules every study store applies the same way, whatever keeps the data: the reproducible per-reader
//! case order, which case IDs are valid, and what a reading must satisfy before it is stored.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{
    CaseInfo, NewCase, Protocol, ReaderInfo, Role, StoreError, StoreResult, StudyInfo,
    StudySettings,
};
use crate::grading::{Assessment, JointGrade, JointGrades, Reading};

/// A 64-bit mix (splitmix64 finaliser), for the reproducible per-reader case order.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Position key of a case in a reader's order: depends only on the study seed, the reader and the case,
/// so the order is reproducible and adding cases does not reshuffle the ones already listed.
pub(crate) fn order_key(seed: u64, reader_id: i64, case_id: &str) -> u64 {
    let h = case_id.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    });
    mix(mix(seed ^ mix(reader_id as u64)) ^ h)
}

pub(crate) fn valid_case_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A text field typed by a user: no control or bidirectional-override character (line breaks and tabs
/// only where `multiline`), at most `max` bytes.
pub(crate) fn validate_text(
    what: &str,
    text: &str,
    multiline: bool,
    max: usize,
) -> StoreResult<()> {
    if text.len() > max {
        return Err(StoreError::Invalid(format!(
            "{what} longer than {max} characters"
        )));
    }
    if let Some(c) = crate::escape::refused_char(text, multiline) {
        return Err(StoreError::Invalid(format!(
            "{what} contains the character U+{:04X} (a control or bidirectional-override character): \
             refused",
            u32::from(c)
        )));
    }
    Ok(())
}

/// A reader's name: 1–100 characters, nothing that hides or reorders text, no space around it.
pub(crate) fn validate_reader_name(name: &str) -> StoreResult<()> {
    if name.trim().is_empty() || name.trim() != name {
        return Err(StoreError::Invalid(format!(
            "reader name {:?}: 1–100 printable characters needed, without spaces around them",
            crate::escape::terminal(name)
        )));
    }
    validate_text("reader name", name, false, 100)
}

/// Whether two reader names would be taken for one another: equal but for case.
pub(crate) fn same_reader_name(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// The `meta` rows a new study starts with, in every store: its protocol, seed, unlocked, and the
/// default reveal settings (readers see each other after their commit only in single-reader studies;
/// the model after their commit always).
pub(crate) fn initial_meta(protocol: Protocol, seed: u64) -> [(&'static str, String); 4] {
    let settings = StudySettings {
        reveal_readers_after_commit: protocol == Protocol::Single,
        reveal_model_after_commit: true,
    };
    [
        ("protocol", protocol.as_str().to_string()),
        ("seed", seed.to_string()),
        ("locked", "0".to_string()),
        (
            "settings",
            serde_json::to_string(&settings).unwrap_or_default(),
        ),
    ]
}

/// The new value of a `create_study` audit row.
pub(crate) fn created_json(protocol: Protocol, seed: u64) -> String {
    format!("{{\"protocol\":\"{}\",\"seed\":{seed}}}", protocol.as_str())
}

/// The new value of an `add_reader` audit row.
pub(crate) fn reader_json(name: &str, role: Role) -> String {
    format!(
        "{{\"name\":{},\"role\":\"{}\"}}",
        serde_json::Value::from(name),
        role.as_str()
    )
}

/// Whether a reader of this name and role may join the study: a role of its protocol, a name not taken
/// (ignoring case), and each role but `reader` held by one reader only.
pub(crate) fn check_new_reader(
    info: &StudyInfo,
    readers: &[ReaderInfo],
    name: &str,
    role: Role,
) -> StoreResult<()> {
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
    if readers.iter().any(|r| same_reader_name(&r.name, name)) {
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
    Ok(())
}

/// The cases to add, checked against the study's `existing` ones and each other: IDs valid and free
/// (generated `C0001`… where absent), no file or SOP Instance UID twice. `stored_path` gives the path as
/// the store keeps it. All or nothing: the first problem refuses the whole list.
pub(crate) fn plan_cases(
    existing: &[CaseInfo],
    cases: &[NewCase],
    stored_path: impl Fn(&Path) -> String,
) -> StoreResult<Vec<CaseInfo>> {
    let mut next = existing
        .iter()
        .filter_map(|c| c.id.strip_prefix('C').and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(0)
        + 1;
    let mut taken: HashSet<String> = existing.iter().map(|c| c.id.clone()).collect();
    let mut known_paths: HashMap<String, String> = existing
        .iter()
        .filter_map(|c| {
            c.path
                .as_ref()
                .map(|p| (p.to_string_lossy().into_owned(), c.id.clone()))
        })
        .collect();
    let mut known_uids: HashMap<String, String> = existing
        .iter()
        .filter_map(|c| c.sop_instance_uid.clone().map(|u| (u, c.id.clone())))
        .collect();
    let mut planned = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        if case.path.is_none() && case.sop_instance_uid.is_none() {
            return Err(StoreError::Invalid(format!(
                "case {}: needs a path or a SOP Instance UID",
                i + 1
            )));
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
        let path = case.path.as_deref().map(&stored_path);
        if let Some(p) = &path
            && let Some(other) = known_paths.insert(p.clone(), id.clone())
        {
            return Err(StoreError::Invalid(format!(
                "{p}: already in the study as case {other}"
            )));
        }
        if let Some(u) = &case.sop_instance_uid
            && let Some(other) = known_uids.insert(u.clone(), id.clone())
        {
            return Err(StoreError::Invalid(format!(
                "SOP Instance UID {u}: already in the study as case {other}"
            )));
        }
        if let Some(a) = &case.archive {
            check_archive_ref(a, case.sop_instance_uid.as_deref())
                .map_err(|e| StoreError::Invalid(format!("case {id}: {e}")))?;
        }
        planned.push(CaseInfo {
            id,
            path: path.map(PathBuf::from),
            sop_instance_uid: case.sop_instance_uid.clone(),
            archive: case.archive.clone(),
        });
    }
    Ok(planned)
}

pub(crate) fn validate_reading(reading: &Reading) -> StoreResult<()> {
    if let Assessment::NotAssessable { reason } = &reading.assessment
        && reason.trim().is_empty()
    {
        return Err(StoreError::Invalid(
            "\"not assessable\" needs a reason".into(),
        ));
    }
    if let Assessment::NotAssessable { reason } = &reading.assessment {
        validate_text("the \"not assessable\" reason", reason, false, 1_000)?;
    }
    if let Some(c) = &reading.comment {
        validate_text("comment", c, true, 10_000)?;
    }
    Ok(())
}

/// Blinding, as every store decides it: a reader sees `what` for a case only after committing their own
/// reading of it (`has_own`), and only if the study's settings allow (`allowed` says why not).
pub(crate) fn reveal(
    reader: &ReaderInfo,
    case_id: &str,
    has_own: bool,
    settings: &StudySettings,
    what: &'static str,
    allowed: impl FnOnce(&StudySettings) -> Result<(), &'static str>,
) -> StoreResult<()> {
    let blinded = |why| StoreError::Blinded {
        reader: reader.name.clone(),
        case: case_id.to_string(),
        what,
        why,
    };
    if !has_own {
        return Err(blinded("before committing their own reading"));
    }
    allowed(settings).map_err(blinded)
}

/// A reading as a row: left grade, right grade, the "not assessable" reason.
pub(crate) fn reading_to_row(r: &Reading) -> (Option<i64>, Option<i64>, Option<String>) {
    match &r.assessment {
        Assessment::Graded(g) => (
            Some(i64::from(g.left.value())),
            Some(i64::from(g.right.value())),
            None,
        ),
        Assessment::NotAssessable { reason } => (None, None, Some(reason.clone())),
    }
}

/// A row as a reading (an error says why a row is neither graded nor not assessable).
pub(crate) fn row_to_reading(
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

/// An archive reference from a row's three columns (all or nothing).
pub(crate) fn archive_ref(
    url: Option<String>,
    study_uid: Option<String>,
    series_uid: Option<String>,
) -> Option<crate::session::ArchiveRef> {
    Some(crate::session::ArchiveRef {
        url: url?,
        study_uid: study_uid?,
        series_uid: series_uid?,
    })
}

/// Checks a case's archive reference: an http(s) URL without credentials, valid UIDs, and the SOP
/// Instance UID that names the film.
pub fn check_archive_ref(
    a: &crate::session::ArchiveRef,
    sop_instance_uid: Option<&str>,
) -> Result<(), String> {
    let rest = a
        .url
        .strip_prefix("https://")
        .or_else(|| a.url.strip_prefix("http://"))
        .ok_or_else(|| format!("archive URL {:?}: not http:// or https://", a.url))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty()
        || authority.contains('@')
        || a.url.len() > 2048
        || a.url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "archive URL {:?}: needs a host, and no credentials, spaces or control characters",
            a.url
        ));
    }
    for (what, uid) in [
        ("Study Instance UID", Some(a.study_uid.as_str())),
        ("Series Instance UID", Some(a.series_uid.as_str())),
        ("SOP Instance UID", sop_instance_uid),
    ] {
        match uid {
            Some(u) if crate::imaging::valid_uid(u) => {}
            Some(u) => return Err(format!("{what} {u:?} is not a valid UID")),
            None => return Err(format!("a film in an archive needs its {what}")),
        }
    }
    Ok(())
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
