//! CSV in and out of a study: a case list to import, and exports of readings and consensus that carry
//! pseudonymous case IDs only (never file paths, patient names or patient IDs).

use std::path::{Path, PathBuf};

use super::{CaseConsensus, NewCase, ReadingRecord, StoreError, StoreResult};
use crate::grading::Assessment;

/// Reads a case list: a header with `path` and/or `uid` (SOP Instance UID), optionally `case_id`.
/// Relative paths are taken relative to the CSV file's folder.
pub fn read_case_list(csv_path: &Path) -> StoreResult<Vec<NewCase>> {
    let err = |row: Option<u64>, detail: String| {
        StoreError::Invalid(match row {
            Some(r) => format!("{}: row {r}: {detail}", csv_path.display()),
            None => format!("{}: {detail}", csv_path.display()),
        })
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(csv_path)
        .map_err(|e| err(None, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| err(None, e.to_string()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (path_col, uid_col, id_col) = (col("path"), col("uid"), col("case_id"));
    if path_col.is_none() && uid_col.is_none() {
        return Err(err(
            None,
            format!(
                "needs a 'path' or 'uid' column; found columns: {}",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let base = csv_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cases = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i as u64 + 2; // 1-based, after the header
        let record = record.map_err(|e| err(Some(row), e.to_string()))?;
        let get = |c: Option<usize>| {
            c.and_then(|c| record.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let path = get(path_col).map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
        });
        let uid = get(uid_col).map(str::to_string);
        if path.is_none() && uid.is_none() {
            return Err(err(Some(row), "neither path nor uid given".into()));
        }
        cases.push(NewCase {
            path,
            sop_instance_uid: uid,
            case_id: get(id_col).map(str::to_string),
        });
    }
    Ok(cases)
}

fn csv_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("{}: cannot write: {e}", path.display()))
}

/// Writes readings: `case,reader,role,label,left_grade,right_grade,not_assessable,comment,committed_at`
/// (`label` = definite radiographic sacroiliitis 0/1, empty when not assessable) — the readers CSV that
/// `sacro stats` reads.
pub fn write_readings(path: &Path, readings: &[ReadingRecord]) -> StoreResult<()> {
    let mut w = csv::Writer::from_path(path).map_err(|e| csv_err(path, e))?;
    w.write_record([
        "case",
        "reader",
        "role",
        "label",
        "left_grade",
        "right_grade",
        "not_assessable",
        "comment",
        "committed_at",
    ])
    .map_err(|e| csv_err(path, e))?;
    for r in readings {
        let g = r.reading.grades();
        let label = r
            .reading
            .definite()
            .map(|d| u8::from(d).to_string())
            .unwrap_or_default();
        let na = match &r.reading.assessment {
            Assessment::NotAssessable { reason } => reason.clone(),
            Assessment::Graded(_) => String::new(),
        };
        w.write_record([
            r.case_id.as_str(),
            r.reader.as_str(),
            r.role.as_str(),
            label.as_str(),
            &g.map(|g| g.left.to_string()).unwrap_or_default(),
            &g.map(|g| g.right.to_string()).unwrap_or_default(),
            na.as_str(),
            r.reading.comment.as_deref().unwrap_or(""),
            r.committed_at.as_str(),
        ])
        .map_err(|e| csv_err(path, e))?;
    }
    w.flush().map_err(|e| csv_err(path, e))
}

/// Writes consensus: `case,label,method` (`label` empty when unresolved) — the truth CSV of `sacro stats`.
pub fn write_consensus(path: &Path, consensus: &[CaseConsensus]) -> StoreResult<()> {
    let mut w = csv::Writer::from_path(path).map_err(|e| csv_err(path, e))?;
    w.write_record(["case", "label", "method"])
        .map_err(|e| csv_err(path, e))?;
    for c in consensus {
        let label = c.label.map(|l| u8::from(l).to_string()).unwrap_or_default();
        w.write_record([c.case_id.as_str(), label.as_str(), c.method.as_str()])
            .map_err(|e| csv_err(path, e))?;
    }
    w.flush().map_err(|e| csv_err(path, e))
}
