//! The reader study's arms in a study file: the design (`meta` row `design`), the arm readings, and the
//! commits the rules of [`crate::session::reader_study`] allow, each with its audit row.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::queries::audit;
use super::schema::COORDINATOR;
use crate::grading::Reading;
use crate::session::reader_study::{
    ArmContext, MAX_WASHOUT_DAYS, format_time, validate_confidence,
};
use crate::session::rules::{reading_to_row, row_to_reading, validate_reading, validate_text};
use crate::session::{
    Arm, ArmCommit, ArmPlan, ArmReadingRecord, CommitOutcome, Design, ReaderInfo, StoreError,
    StoreResult,
};

/// The JSON of an arm reading in the audit trail: the reading, its arm and confidence.
fn arm_json(reading: &Reading, arm: Arm, confidence: u8) -> StoreResult<String> {
    let mut v = serde_json::to_value(reading).map_err(|e| StoreError::Invalid(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("arm".into(), arm.as_str().into());
        o.insert("confidence".into(), confidence.into());
    }
    Ok(v.to_string())
}

impl SqliteStore {
    pub(super) fn design_in(&self, conn: &Connection) -> StoreResult<Design> {
        let v: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'design'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db(e))?;
        v.map_or(Ok(Design::Standard), |v| {
            serde_json::from_str(&v).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("study design {v:?} unreadable: {e}"),
            })
        })
    }

    pub(super) fn set_design_in(&self, design: Design) -> StoreResult<()> {
        if let Design::Aided { washout_days } = design
            && washout_days > MAX_WASHOUT_DAYS
        {
            return Err(StoreError::Invalid(format!(
                "washout of {washout_days} days: at most {MAX_WASHOUT_DAYS}"
            )));
        }
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let n: i64 = tx
                .query_row("SELECT count(*) FROM arm_readings", [], |r| r.get(0))
                .map_err(|e| self.db(e))?;
            let old = self.design_in(tx)?;
            if n > 0 && !matches!(design, Design::Aided { .. }) {
                return Err(StoreError::Invalid(format!(
                    "the reader study has {n} arm reading(s): it stays a reader study"
                )));
            }
            if old == design {
                return Ok(());
            }
            let new =
                serde_json::to_string(&design).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let old_json =
                serde_json::to_string(&old).map_err(|e| StoreError::Invalid(e.to_string()))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('design', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [&new],
            )
            .map_err(|e| self.db(e))?;
            audit(
                tx,
                COORDINATOR,
                "design",
                None,
                Some(&old_json),
                Some(&new),
                None,
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    pub(super) fn arm_readings_in(
        &self,
        conn: &Connection,
        reader: Option<&str>,
    ) -> StoreResult<Vec<ArmReadingRecord>> {
        let mut stmt = conn
            .prepare(
                "SELECT a.case_id, d.name, a.arm, a.left_grade, a.right_grade, a.not_assessable, a.comment,
                        a.confidence, a.committed_at
                 FROM arm_readings a JOIN readers d ON d.id = a.reader_id
                 WHERE (?1 IS NULL OR d.name = ?1) ORDER BY d.id, a.arm, a.case_id",
            )
            .map_err(|e| self.db(e))?;
        type Row = (
            String,
            String,
            String,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<String>,
            i64,
            String,
        );
        let rows: Vec<Row> = stmt
            .query_map([reader], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .and_then(Iterator::collect)
            .map_err(|e| self.db(e))?;
        rows.into_iter()
            .map(|(case_id, reader, arm, l, r, na, comment, conf, at)| {
                let corrupt = |detail: String| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("arm reading of {case_id} by {reader}: {detail}"),
                };
                Ok(ArmReadingRecord {
                    arm: Arm::parse(&arm).ok_or_else(|| corrupt(format!("unknown arm {arm:?}")))?,
                    reading: row_to_reading(l, r, na, comment).map_err(corrupt)?,
                    confidence: u8::try_from(conf)
                        .ok()
                        .filter(|c| *c <= 100)
                        .ok_or_else(|| corrupt(format!("confidence {conf}")))?,
                    case_id,
                    reader,
                    committed_at: at,
                })
            })
            .collect()
    }

    /// The rules' view of the study for one reader at `now`, handed to `f` (their own arm readings
    /// only: every rule is about one reader).
    fn with_arms<T>(
        &self,
        conn: &Connection,
        reader: &ReaderInfo,
        now: DateTime<Utc>,
        f: impl FnOnce(&ArmContext<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let info = self.info_in(conn)?;
        let design = self.design_in(conn)?;
        let readers = self.readers_in(conn)?;
        let case_ids = self.case_ids(conn)?;
        let readings = self.arm_readings_in(conn, Some(&reader.name))?;
        f(&ArmContext {
            design,
            seed: info.seed,
            readers: &readers,
            case_ids: &case_ids,
            readings: &readings,
            now,
        })
    }

    pub(super) fn arm_plan_in(&self, reader: &str, now: DateTime<Utc>) -> StoreResult<ArmPlan> {
        let conn = self.conn();
        let reader = self.reader_in(&conn, reader)?;
        self.with_arms(&conn, &reader, now, |ctx| ctx.plan(&reader))
    }

    pub(super) fn own_arm_in(
        &self,
        reader: &str,
        case_id: &str,
        arm: Arm,
    ) -> StoreResult<Option<ArmReadingRecord>> {
        let conn = self.conn();
        let reader = self.reader_in(&conn, reader)?;
        self.ensure_case(&conn, case_id)?;
        Ok(self
            .arm_readings_in(&conn, Some(&reader.name))?
            .into_iter()
            .find(|r| r.case_id == case_id && r.arm == arm))
    }

    /// Whether a reader may see the model's output for a case at `now`: `None` where the reader does
    /// not read in arms (the usual blinding applies), else the arms' answer.
    pub(super) fn arm_model_gate(
        &self,
        conn: &Connection,
        reader: &str,
        case_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Result<(), &'static str>>> {
        let design = self.design_in(conn)?;
        let r = self.reader_in(conn, reader)?;
        if !design.reads_in_arms(&r) {
            return Ok(None);
        }
        self.ensure_case(conn, case_id)?;
        let settings = self.info_in(conn)?.settings;
        self.with_arms(conn, &r, now, |ctx| {
            ctx.model_visible(&r, case_id, &settings).map(Some)
        })
    }

    pub(super) fn commit_arm_in(
        &self,
        reader: &str,
        case_id: &str,
        commit: &ArmCommit<'_>,
    ) -> StoreResult<CommitOutcome> {
        let ArmCommit {
            arm,
            reading,
            confidence,
            reason,
            now,
        } = *commit;
        validate_reading(reading)?;
        validate_confidence(confidence)?;
        if let Some(r) = reason {
            validate_text("reason", r, false, 1_000)?;
        }
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let reader = self.reader_in(tx, reader)?;
            let old = self.with_arms(tx, &reader, now, |ctx| {
                ctx.check_commit(&reader, case_id, arm).map(|o| o.cloned())
            })?;
            if old
                .as_ref()
                .is_some_and(|o| &o.reading == reading && o.confidence == confidence)
            {
                return Ok(CommitOutcome::Unchanged);
            }
            if old.is_some() && reason.is_none_or(|r| r.trim().is_empty()) {
                return Err(StoreError::Invalid(format!(
                    "{} has a reading of case {case_id} in the {} arm already: changing it needs a \
                     reason",
                    reader.name,
                    arm.as_str()
                )));
            }
            let (l, r, na) = reading_to_row(reading);
            tx.execute(
                "INSERT INTO arm_readings (case_id, reader_id, arm, left_grade, right_grade, not_assessable,
                    comment, confidence, committed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (case_id, reader_id, arm) DO UPDATE SET left_grade = excluded.left_grade,
                   right_grade = excluded.right_grade, not_assessable = excluded.not_assessable,
                   comment = excluded.comment, confidence = excluded.confidence,
                   committed_at = excluded.committed_at",
                params![
                    case_id,
                    reader.id,
                    arm.as_str(),
                    l,
                    r,
                    na,
                    reading.comment,
                    i64::from(confidence),
                    format_time(now)
                ],
            )
            .map_err(|e| self.db(e))?;
            let new_json = arm_json(reading, arm, confidence)?;
            let old_json = old
                .as_ref()
                .map(|o| arm_json(&o.reading, o.arm, o.confidence))
                .transpose()?;
            let action = if old.is_some() {
                "change_arm_reading"
            } else {
                "create_arm_reading"
            };
            audit(
                tx,
                &reader.name,
                action,
                Some(case_id),
                old_json.as_deref(),
                Some(&new_json),
                reason,
            )
            .map_err(|e| self.db(e))?;
            Ok(if old.is_some() {
                CommitOutcome::Changed
            } else {
                CommitOutcome::Created
            })
        })
    }
}
