//! CSV in and out of a study: a case list to import, and exports of readings and consensus that carry
//! pseudonymous case IDs only (never file paths, patient names or patient IDs).

use std::path::{Path, PathBuf};

use super::{CaseConsensus, NewCase, ReadingRecord, StoreError, StoreResult};
use crate::grading::Assessment;

/// A refusal naming the file and, where known, the row (1-based, the header being row 1).
fn row_error(path: &Path, row: Option<u64>, detail: String) -> StoreError {
    StoreError::Invalid(match row {
        Some(r) => format!("{}: row {r}: {detail}", path.display()),
        None => format!("{}: {detail}", path.display()),
    })
}

/// Opens a CSV file (cells trimmed) and reads its header.
fn open_csv(path: &Path) -> StoreResult<(csv::Reader<std::fs::File>, csv::StringRecord)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| row_error(path, None, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| row_error(path, None, e.to_string()))?
        .clone();
    Ok((reader, headers))
}

/// Reads a case list: a header with `path` and/or `uid` (SOP Instance UID), optionally `case_id`.
/// Relative paths are taken relative to the CSV file's folder.
pub fn read_case_list(csv_path: &Path) -> StoreResult<Vec<NewCase>> {
    let err = |row, detail| row_error(csv_path, row, detail);
    let (mut reader, headers) = open_csv(csv_path)?;
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (path_col, uid_col, id_col) = (col("path"), col("uid"), col("case_id"));
    let web_col = col("dicomweb");
    if path_col.is_none() && uid_col.is_none() && web_col.is_none() {
        return Err(err(
            None,
            format!(
                "needs a 'path', 'uid' or 'dicomweb' column; found columns: {}",
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
        let mut uid = get(uid_col).map(str::to_string);
        // dicomweb: STUDY_UID/SERIES_UID[/SOP_UID] in the archive the command line names.
        let archive = match get(web_col) {
            None => None,
            Some(_) if path.is_some() => {
                return Err(err(
                    Some(row),
                    "a case is a file (path) or a film in the archive (dicomweb), not both".into(),
                ));
            }
            Some(w) => {
                let parts: Vec<&str> = w.split('/').map(str::trim).collect();
                let bad = || {
                    err(
                        Some(row),
                        format!("dicomweb {w:?}: STUDY_UID/SERIES_UID[/SOP_UID] expected"),
                    )
                };
                if !(2..=3).contains(&parts.len())
                    || !parts.iter().all(|p| crate::imaging::valid_uid(p))
                {
                    return Err(bad());
                }
                if let Some(sop) = parts.get(2) {
                    if uid.as_deref().is_some_and(|u| u != *sop) {
                        return Err(err(
                            Some(row),
                            format!(
                                "uid {:?} and dicomweb {w:?} name different films",
                                uid.unwrap_or_default()
                            ),
                        ));
                    }
                    uid = Some((*sop).to_string());
                }
                Some(super::ArchiveRef {
                    url: String::new(),
                    study_uid: parts[0].to_string(),
                    series_uid: parts[1].to_string(),
                })
            }
        };
        if path.is_none() && uid.is_none() && archive.is_none() {
            return Err(err(Some(row), "neither path nor uid given".into()));
        }
        cases.push(NewCase {
            path,
            sop_instance_uid: uid,
            case_id: get(id_col).map(str::to_string),
            archive,
        });
    }
    Ok(cases)
}

/// Writes readings: `case,reader,role,label,left_grade,right_grade,not_assessable,comment,committed_at`
/// (`label` = definite radiographic sacroiliitis 0/1, empty when not assessable) — the readers CSV that
/// `sacro stats` reads.
pub fn write_readings(path: &Path, readings: &[ReadingRecord]) -> StoreResult<()> {
    write_csv(
        path,
        &[
            "case",
            "reader",
            "role",
            "label",
            "left_grade",
            "right_grade",
            "not_assessable",
            "comment",
            "committed_at",
        ],
        readings.iter().map(|r| {
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
            vec![
                r.case_id.clone(),
                r.reader.clone(),
                r.role.as_str().to_string(),
                label,
                g.map(|g| g.left.to_string()).unwrap_or_default(),
                g.map(|g| g.right.to_string()).unwrap_or_default(),
                na,
                r.reading.comment.clone().unwrap_or_default(),
                r.committed_at.clone(),
            ]
        }),
    )
}

/// Writes consensus: `case,label,method` (`label` empty when unresolved) — the truth CSV of `sacro stats`.
pub fn write_consensus(path: &Path, consensus: &[CaseConsensus]) -> StoreResult<()> {
    write_csv(
        path,
        &["case", "label", "method"],
        consensus.iter().map(|c| {
            vec![
                c.case_id.clone(),
                c.label.map(|l| u8::from(l).to_string()).unwrap_or_default(),
                c.method.as_str().to_string(),
            ]
        }),
    )
}

/// Writes a reader study in the long format of `sacro stats --mrmc`: `reader,modality,case,truth,rating`
/// (`truth` empty where the case has none: the analysis leaves such cases out).
pub fn write_mrmc(path: &Path, rows: &[super::reader_study::MrmcRow]) -> StoreResult<()> {
    write_csv(
        path,
        &["reader", "modality", "case", "truth", "rating"],
        rows.iter().map(|r| {
            vec![
                r.reader.clone(),
                r.modality.to_string(),
                r.case.clone(),
                r.truth.map(|t| u8::from(t).to_string()).unwrap_or_default(),
                r.rating.to_string(),
            ]
        }),
    )
}

/// Writes joint boxes: `case,reader,side,x,y,w,h` (film pixels), every reader's boxes, then per case and
/// side the consensus box (the mean, [`super::joint_boxes::consensus_boxes`]) as the reader `consensus`.
pub fn write_joint_boxes(
    path: &Path,
    boxes: &[super::joint_boxes::JointBoxRecord],
) -> StoreResult<()> {
    use super::joint_boxes::{Side, consensus_boxes};
    let row = |case: &str, reader: &str, side: Side, r: &super::CropRect| {
        vec![
            case.to_string(),
            reader.to_string(),
            side.as_str().to_string(),
            r.x.to_string(),
            r.y.to_string(),
            r.width.to_string(),
            r.height.to_string(),
        ]
    };
    let mut cases: Vec<&str> = boxes.iter().map(|b| b.case_id.as_str()).collect();
    cases.sort_unstable();
    cases.dedup();
    let consensus = cases.into_iter().flat_map(|case| {
        Side::BOTH
            .into_iter()
            .zip(consensus_boxes(boxes, case))
            .filter_map(move |(side, mean)| mean.map(|r| row(case, "consensus", side, &r)))
    });
    write_csv(
        path,
        &["case", "reader", "side", "x", "y", "w", "h"],
        boxes
            .iter()
            .map(|b| row(&b.case_id, &b.reader, b.side, &b.rect))
            .chain(consensus),
    )
}

/// Reads a reference truth: a column `case` and one of `truth`, `label` or `definite` holding 0 or 1
/// (empty: no truth for that case). The consensus export and the phantoms' `truth.csv` both fit.
pub fn read_truth(csv_path: &Path) -> StoreResult<std::collections::HashMap<String, bool>> {
    let err = |row, detail| row_error(csv_path, row, detail);
    let (mut reader, headers) = open_csv(csv_path)?;
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(case_col), Some(truth_col)) = (
        col("case"),
        col("truth")
            .or_else(|| col("label"))
            .or_else(|| col("definite")),
    ) else {
        return Err(err(
            None,
            format!(
                "needs a 'case' column and a 'truth', 'label' or 'definite' column; found: {}",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let mut truth = std::collections::HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let row = i as u64 + 2;
        let record = record.map_err(|e| err(Some(row), e.to_string()))?;
        let case = record.get(case_col).unwrap_or_default();
        if case.is_empty() {
            return Err(err(Some(row), "empty case".into()));
        }
        let value = match record.get(truth_col).unwrap_or_default() {
            "" => continue,
            "1" => true,
            "0" => false,
            other => {
                return Err(err(
                    Some(row),
                    format!("truth {other:?} must be 0, 1 or empty"),
                ));
            }
        };
        if truth.insert(case.to_string(), value).is_some() {
            return Err(err(Some(row), format!("case {case} appears twice")));
        }
    }
    Ok(truth)
}

/// Writes a CSV through a temporary file (never over a study or a folder), every cell neutralised for
/// spreadsheets ([`crate::escape::csv_cell`]).
fn write_csv(
    path: &Path,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> StoreResult<()> {
    crate::imaging::export::write_via_temp(path, |tmp| {
        let mut w = csv::Writer::from_path(tmp).map_err(|e| e.to_string())?;
        w.write_record(header).map_err(|e| e.to_string())?;
        for r in rows {
            w.write_record(r.iter().map(|c| crate::escape::csv_cell(c).into_owned()))
                .map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())
    })
    .map_err(|e| StoreError::Invalid(e.to_string()))
}
