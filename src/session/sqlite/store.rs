//! [`StudyStore`] for the SQLite file: each method one transaction, each write with its audit row.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::queries::audit;
use super::schema::{COORDINATOR, NOW};
use crate::grading::Reading;
use crate::session::consensus::assigned;
use crate::session::joint_boxes::{JointBoxRecord, Side};
use crate::session::rules::{
    check_new_reader, order_key, plan_cases, reader_json, reading_to_row, validate_reader_name,
    validate_reading, validate_text,
};
use crate::session::{
    Arm, ArmCommit, ArmPlan, ArmReadingRecord, AuditRow, CaseInfo, CommitOutcome, CropRect, Design,
    NewCase, PredictionRecord, ReaderInfo, ReadingRecord, Role, StoreError, StoreResult, StudyInfo,
    StudySettings, StudyStore, WorklistEntry,
};

impl StudyStore for SqliteStore {
    fn info(&self) -> StoreResult<StudyInfo> {
        self.info_in(&self.conn())
    }

    fn set_settings(&self, settings: StudySettings) -> StoreResult<()> {
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let old = self.meta(tx, "settings")?;
            let new =
                serde_json::to_string(&settings).map_err(|e| StoreError::Invalid(e.to_string()))?;
            tx.execute("UPDATE meta SET value = ?1 WHERE key = 'settings'", [&new])
                .map_err(|e| self.db(e))?;
            audit(
                tx,
                COORDINATOR,
                "settings",
                None,
                Some(&old),
                Some(&new),
                None,
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn add_reader(&self, name: &str, role: Role) -> StoreResult<ReaderInfo> {
        validate_reader_name(name)?;
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let info = self.info_in(tx)?;
            check_new_reader(&info, &self.readers_in(tx)?, name, role)?;
            tx.execute(
                &format!("INSERT INTO readers (name, role, created_at) VALUES (?1, ?2, {NOW})"),
                params![name, role.as_str()],
            )
            .map_err(|e| self.db(e))?;
            let id = tx.last_insert_rowid();
            audit(
                tx,
                COORDINATOR,
                "add_reader",
                None,
                None,
                Some(&reader_json(name, role)),
                None,
            )
            .map_err(|e| self.db(e))?;
            Ok(ReaderInfo {
                id,
                name: name.to_string(),
                role,
            })
        })
    }

    fn readers(&self) -> StoreResult<Vec<ReaderInfo>> {
        self.readers_in(&self.conn())
    }

    fn add_cases(&self, cases: &[NewCase]) -> StoreResult<Vec<CaseInfo>> {
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let planned = plan_cases(&self.cases_in(tx)?, cases, |p| self.stored_path(p))?;
            for case in &planned {
                tx.execute(
                    &format!("INSERT INTO cases (id, path, sop_instance_uid, archive_url, study_uid, series_uid, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})"),
                    params![
                        case.id,
                        case.path.as_ref().map(|p| p.to_string_lossy()),
                        case.sop_instance_uid,
                        case.archive.as_ref().map(|a| &a.url),
                        case.archive.as_ref().map(|a| &a.study_uid),
                        case.archive.as_ref().map(|a| &a.series_uid),
                    ],
                )
                .map_err(|e| self.db(e))?;
                audit(tx, COORDINATOR, "add_case", Some(&case.id), None, None, None).map_err(|e| self.db(e))?;
            }
            Ok(planned)
        })
    }

    fn cases(&self) -> StoreResult<Vec<CaseInfo>> {
        self.cases_in(&self.conn())
    }

    fn case(&self, case_id: &str) -> StoreResult<CaseInfo> {
        self.cases()?
            .into_iter()
            .find(|c| c.id == case_id)
            .ok_or_else(|| StoreError::UnknownCase(case_id.to_string()))
    }

    fn worklist(&self, reader: &str) -> StoreResult<Vec<WorklistEntry>> {
        let conn = self.conn();
        let info = self.info_in(&conn)?;
        let reader = self.reader_in(&conn, reader)?;
        if self.design_in(&conn)?.reads_in_arms(&reader) {
            drop(conn);
            return Ok(self.arm_plan_in(&reader.name, chrono::Utc::now())?.entries);
        }
        let readings = self.readings_in(&conn, None)?;
        let mut list: Vec<(u64, WorklistEntry)> = self
            .case_ids(&conn)?
            .into_iter()
            .filter_map(|case_id| {
                let of_case: Vec<&ReadingRecord> =
                    readings.iter().filter(|r| r.case_id == case_id).collect();
                assigned(info.protocol, &reader, &of_case).then(|| {
                    let done = of_case.iter().any(|r| r.reader == reader.name);
                    (
                        order_key(info.seed, reader.id, &case_id),
                        WorklistEntry {
                            case_id,
                            done,
                            arm: None,
                        },
                    )
                })
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.case_id.cmp(&b.1.case_id)));
        Ok(list.into_iter().map(|(_, e)| e).collect())
    }

    fn commit_reading(
        &self,
        reader: &str,
        case_id: &str,
        reading: &Reading,
        reason: Option<&str>,
    ) -> StoreResult<CommitOutcome> {
        validate_reading(reading)?;
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let info = self.info_in(tx)?;
            let reader = self.reader_in(tx, reader)?;
            self.ensure_case(tx, case_id)?;
            if self.design_in(tx)?.reads_in_arms(&reader) {
                return Err(StoreError::Invalid(format!(
                    "{} reads in the reader study's arms: a reading needs its arm and confidence \
                     (sacro study read --confidence N)",
                    reader.name
                )));
            }
            let of_case = self.assigned_readings(tx, info.protocol, &reader, case_id)?;
            let old = of_case.iter().find(|r| r.reader == reader.name);
            if old.is_some_and(|o| &o.reading == reading) {
                return Ok(CommitOutcome::Unchanged);
            }
            // Decided here, inside the transaction: a commit racing another of the same reader finds
            // the reading there and is a change, which needs its reason like any other.
            if old.is_some() && reason.is_none_or(|r| r.trim().is_empty()) {
                return Err(StoreError::Invalid(format!(
                    "{} has a reading of case {case_id} already: changing it needs a reason",
                    reader.name
                )));
            }
            if let Some(r) = reason {
                validate_text("reason", r, false, 1_000)?;
            }
            let (l, r, na) = reading_to_row(reading);
            tx.execute(
                &format!(
                    "INSERT INTO readings (case_id, reader_id, left_grade, right_grade, not_assessable, comment, committed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})
                     ON CONFLICT (case_id, reader_id) DO UPDATE SET left_grade = excluded.left_grade,
                       right_grade = excluded.right_grade, not_assessable = excluded.not_assessable,
                       comment = excluded.comment, committed_at = excluded.committed_at"
                ),
                params![case_id, reader.id, l, r, na, reading.comment],
            )
            .map_err(|e| self.db(e))?;
            let new_json = serde_json::to_string(reading).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let old_json = old
                .map(|o| serde_json::to_string(&o.reading))
                .transpose()
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let action = if old.is_some() { "change_reading" } else { "create_reading" };
            audit(tx, &reader.name, action, Some(case_id), old_json.as_deref(), Some(&new_json), reason)
                .map_err(|e| self.db(e))?;
            Ok(if old.is_some() { CommitOutcome::Changed } else { CommitOutcome::Created })
        })
    }

    fn delete_reading(&self, reader: &str, case_id: &str, reason: &str) -> StoreResult<()> {
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "deleting a reading needs a reason".into(),
            ));
        }
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let reader = self.reader_in(tx, reader)?;
            self.ensure_case(tx, case_id)?;
            let old = self.own_in(tx, &reader, case_id)?.ok_or_else(|| {
                StoreError::Invalid(format!(
                    "{} has no reading of case {case_id} to delete",
                    reader.name
                ))
            })?;
            tx.execute(
                "DELETE FROM readings WHERE case_id = ?1 AND reader_id = ?2",
                params![case_id, reader.id],
            )
            .map_err(|e| self.db(e))?;
            let old_json = serde_json::to_string(&old.reading)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            audit(
                tx,
                &reader.name,
                "delete_reading",
                Some(case_id),
                Some(&old_json),
                None,
                Some(reason),
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn own_reading(&self, reader: &str, case_id: &str) -> StoreResult<Option<ReadingRecord>> {
        let conn = self.conn();
        let reader = self.reader_in(&conn, reader)?;
        self.ensure_case(&conn, case_id)?;
        self.own_in(&conn, &reader, case_id)
    }

    fn others_readings(&self, reader: &str, case_id: &str) -> StoreResult<Vec<ReadingRecord>> {
        let conn = self.conn();
        let reader = self.reveal_gate(&conn, reader, case_id, "other readers' readings", |s| {
            s.reveal_readers_after_commit
                .then_some(())
                .ok_or("in this study: readers stay blinded to each other (coordinator setting)")
        })?;
        Ok(self
            .readings_in(&conn, Some(case_id))?
            .into_iter()
            .filter(|r| r.reader != reader.name)
            .collect())
    }

    fn all_readings(&self) -> StoreResult<Vec<ReadingRecord>> {
        self.readings_in(&self.conn(), None)
    }

    fn record_prediction(
        &self,
        case_id: &str,
        model_sha256: &str,
        probability: f64,
    ) -> StoreResult<()> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(StoreError::Invalid(format!(
                "probability {probability} is not in [0, 1]"
            )));
        }
        self.write(|tx| {
            self.ensure_case(tx, case_id)?;
            tx.execute(
                &format!(
                    "INSERT INTO predictions (case_id, model_sha256, probability, created_at) VALUES (?1, ?2, ?3, {NOW})
                     ON CONFLICT (case_id, model_sha256) DO UPDATE SET probability = excluded.probability"
                ),
                params![case_id, model_sha256, probability],
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn predictions(&self, model_sha256: &str) -> StoreResult<Vec<PredictionRecord>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT case_id, probability FROM predictions WHERE model_sha256 = ?1 ORDER BY case_id",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![model_sha256], |r| {
                Ok(PredictionRecord {
                    case_id: r.get(0)?,
                    model_sha256: model_sha256.to_string(),
                    probability: r.get(1)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.db(e))
    }

    fn prediction_for_reader(
        &self,
        reader: &str,
        case_id: &str,
        model_sha256: &str,
    ) -> StoreResult<Option<PredictionRecord>> {
        self.prediction_for_reader_at(reader, case_id, model_sha256, chrono::Utc::now())
    }

    fn prediction_for_reader_at(
        &self,
        reader: &str,
        case_id: &str,
        model_sha256: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<PredictionRecord>> {
        let conn = self.conn();
        match self.arm_model_gate(&conn, reader, case_id, now)? {
            Some(gate) => gate.map_err(|why| StoreError::Blinded {
                reader: reader.to_string(),
                case: case_id.to_string(),
                what: "the model's output",
                why,
            })?,
            None => {
                self.reveal_gate(&conn, reader, case_id, "the model's output", |s| {
                    s.reveal_model_after_commit
                        .then_some(())
                        .ok_or("in this study (coordinator setting)")
                })?;
            }
        }
        conn.query_row(
            "SELECT probability FROM predictions WHERE case_id = ?1 AND model_sha256 = ?2",
            params![case_id, model_sha256],
            |r| r.get::<_, f64>(0),
        )
        .optional()
        .map_err(|e| self.db(e))
        .map(|p| {
            p.map(|probability| PredictionRecord {
                case_id: case_id.to_string(),
                model_sha256: model_sha256.to_string(),
                probability,
            })
        })
    }

    fn lock(&self) -> StoreResult<()> {
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            tx.execute("UPDATE meta SET value = '1' WHERE key = 'locked'", [])
                .map_err(|e| self.db(e))?;
            audit(tx, COORDINATOR, "lock", None, None, None, None).map_err(|e| self.db(e))?;
            // The lock records the chain's head: what the study held when it was locked.
            let head = super::chain::head(tx).map_err(|e| self.db(e))?;
            super::chain::set_meta(tx, "lock_head", &head).map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn set_crop(&self, actor: &str, case_id: &str, crop: Option<CropRect>) -> StoreResult<()> {
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let exists: i64 = tx
                .query_row("SELECT count(*) FROM cases WHERE id = ?1", [case_id], |r| r.get(0))
                .map_err(|e| self.db(e))?;
            if exists == 0 {
                return Err(StoreError::UnknownCase(case_id.to_string()));
            }
            let old: Option<String> = tx
                .query_row(
                    "SELECT x || ',' || y || ',' || width || ',' || height FROM crops WHERE case_id = ?1",
                    [case_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.db(e))?;
            let new = crop.map(|c| format!("{},{},{},{}", c.x, c.y, c.width, c.height));
            if old == new {
                return Ok(());
            }
            match crop {
                Some(c) => {
                    if c.width == 0 || c.height == 0 {
                        return Err(StoreError::Invalid("a crop needs a non-zero size".into()));
                    }
                    tx.execute(
                        &format!(
                            "INSERT INTO crops (case_id, x, y, width, height, set_by, set_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW})
                             ON CONFLICT(case_id) DO UPDATE SET x = ?2, y = ?3, width = ?4, height = ?5, set_by = ?6, set_at = {NOW}"
                        ),
                        params![case_id, c.x, c.y, c.width, c.height, actor],
                    )
                    .map_err(|e| self.db(e))?;
                }
                None => {
                    tx.execute("DELETE FROM crops WHERE case_id = ?1", [case_id])
                        .map_err(|e| self.db(e))?;
                }
            }
            audit(tx, actor, "set_crop", Some(case_id), old.as_deref(), new.as_deref(), None)
                .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn crop(&self, case_id: &str) -> StoreResult<Option<CropRect>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT x, y, width, height FROM crops WHERE case_id = ?1",
            [case_id],
            |r| {
                Ok(CropRect {
                    x: r.get(0)?,
                    y: r.get(1)?,
                    width: r.get(2)?,
                    height: r.get(3)?,
                })
            },
        )
        .optional()
        .map_err(|e| self.db(e))
    }

    fn audit(&self) -> StoreResult<Vec<AuditRow>> {
        super::chain::rows(&self.conn())
            .map(|rows| rows.into_iter().map(|(row, _)| row).collect())
            .map_err(|e| self.db(e))
    }

    fn set_joint_box(
        &self,
        reader: &str,
        case_id: &str,
        side: Side,
        rect: Option<CropRect>,
    ) -> StoreResult<()> {
        self.set_box_in(reader, case_id, side, rect)
    }

    fn joint_boxes(&self, reader: &str, case_id: &str) -> StoreResult<Vec<JointBoxRecord>> {
        self.visible_boxes_in(reader, case_id)
    }

    fn all_joint_boxes(&self) -> StoreResult<Vec<JointBoxRecord>> {
        self.boxes_in(&self.conn(), None)
    }

    fn design(&self) -> StoreResult<Design> {
        self.design_in(&self.conn())
    }

    fn set_design(&self, design: Design) -> StoreResult<()> {
        self.set_design_in(design)
    }

    fn arm_readings(&self) -> StoreResult<Vec<ArmReadingRecord>> {
        self.arm_readings_in(&self.conn(), None)
    }

    fn arm_plan(&self, reader: &str, now: chrono::DateTime<chrono::Utc>) -> StoreResult<ArmPlan> {
        self.arm_plan_in(reader, now)
    }

    fn own_arm_reading(
        &self,
        reader: &str,
        case_id: &str,
        arm: Arm,
    ) -> StoreResult<Option<ArmReadingRecord>> {
        self.own_arm_in(reader, case_id, arm)
    }

    fn commit_arm_reading(
        &self,
        reader: &str,
        case_id: &str,
        commit: &ArmCommit<'_>,
    ) -> StoreResult<CommitOutcome> {
        self.commit_arm_in(reader, case_id, commit)
    }
}
