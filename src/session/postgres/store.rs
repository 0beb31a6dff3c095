//! [`StudyStore`] on the server: the same rules as the study file (`session::rules`), each write one
//! transaction whose audit row the database writes itself (readings through their trigger, the
//! coordinator's actions through `sacro_append_audit`), each answer what the login may see.

use std::collections::HashMap;
use std::path::PathBuf;

use postgres::{Client, GenericClient};

use super::PgStore;
use super::connect::Target;
use super::schema::{COORDINATOR, SCHEMA_VERSION};
use crate::grading::Reading;
use crate::session::consensus::assigned;
use crate::session::rules::{
    order_key, plan_cases, reading_to_row, reveal, row_to_reading, validate_reader_name,
    validate_reading, validate_text,
};
use crate::session::{
    AuditRow, CaseInfo, CommitOutcome, CropRect, NewCase, PredictionRecord, Protocol, ReaderInfo,
    ReadingRecord, Role, StoreError, StoreResult, StudyInfo, StudySettings, StudyStore,
    WorklistEntry,
};

/// Checks that the database holds a Sacro study of a schema this build reads; returns whether the
/// login owns the database (the coordinator).
pub(super) fn check_study(target: &Target, client: &mut Client) -> StoreResult<bool> {
    let map = |e: postgres::Error| super::connect::map_error(target, &e);
    let row = client
        .query_one(
            "SELECT to_regclass('public.meta') IS NOT NULL,
                    session_user = (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .map_err(map)?;
    let (has_meta, owner): (bool, bool) = (row.get(0), row.get(1));
    if !has_meta {
        return Err(StoreError::Corrupt {
            path: PathBuf::from(&target.display),
            detail:
                "not a Sacro study: this database has no study tables (the coordinator creates one \
                     with `sacro study create URL --protocol …`)"
                    .into(),
        });
    }
    let version = client
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .map_err(|e| match map(e) {
            StoreError::NotPermitted(_) => StoreError::NotPermitted(format!(
                "the login {:?} is not a reader of the study in {}",
                target.user, target.display
            )),
            other => other,
        })?
        .map(|r| r.get::<_, String>(0));
    let version: i64 = version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt {
            path: PathBuf::from(&target.display),
            detail: "not a Sacro study: its schema version is missing".into(),
        })?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: PathBuf::from(&target.display),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(owner)
}

pub(super) fn append_audit(
    c: &mut impl GenericClient,
    actor: &str,
    action: &str,
    case_id: Option<&str>,
    old: Option<&str>,
    new: Option<&str>,
    reason: Option<&str>,
) -> Result<String, postgres::Error> {
    c.query_one(
        "SELECT sacro_append_audit($1, $2, $3, $4, $5, $6)",
        &[&actor, &action, &case_id, &old, &new, &reason],
    )
    .map(|r| r.get(0))
}

impl PgStore {
    pub(super) fn require_coordinator(&self, what: &str) -> StoreResult<()> {
        if self.owner {
            return Ok(());
        }
        Err(StoreError::NotPermitted(format!(
            "only the study's coordinator (the database owner) may {what}; {:?} is a reader's login",
            self.target.user
        )))
    }

    /// The reader this login is, if any.
    pub(super) fn me(&self, c: &mut impl GenericClient) -> StoreResult<Option<ReaderInfo>> {
        let row = c
            .query_opt(
                "SELECT id, name, role FROM readers WHERE login = session_user",
                &[],
            )
            .map_err(|e| self.db(e))?;
        row.map(|r| self.reader_row(r.get(0), r.get(1), r.get(2)))
            .transpose()
    }

    fn reader_row(&self, id: i64, name: String, role: String) -> StoreResult<ReaderInfo> {
        let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
            path: PathBuf::from(&self.target.display),
            detail: format!("reader {name:?} has unknown role {role:?}"),
        })?;
        Ok(ReaderInfo { id, name, role })
    }

    /// The reader `name`, as this login may act for them: a reader's login only for themselves; the
    /// coordinator may look as any reader (`writes` false) but never commits for one.
    fn acting(
        &self,
        c: &mut impl GenericClient,
        name: &str,
        writes: bool,
    ) -> StoreResult<ReaderInfo> {
        if self.owner {
            if writes {
                return Err(StoreError::NotPermitted(format!(
                    "the coordinator's login {:?} is not a reader: each reader commits with their own login",
                    self.target.user
                )));
            }
            return self.reader_named(c, name);
        }
        let me = self.me(c)?.ok_or_else(|| {
            StoreError::NotPermitted(format!(
                "the login {:?} is not tied to a reader of this study",
                self.target.user
            ))
        })?;
        if me.name != name {
            return Err(StoreError::NotPermitted(format!(
                "logged in as {:?} (reader {:?}): cannot act as reader {name:?}",
                self.target.user, me.name
            )));
        }
        Ok(me)
    }

    fn reader_named(&self, c: &mut impl GenericClient, name: &str) -> StoreResult<ReaderInfo> {
        let row = c
            .query_opt(
                "SELECT id, name, role FROM readers WHERE name = $1",
                &[&name],
            )
            .map_err(|e| self.db(e))?
            .ok_or_else(|| StoreError::UnknownReader(name.to_string()))?;
        self.reader_row(row.get(0), row.get(1), row.get(2))
    }

    pub(super) fn readers_in(&self, c: &mut impl GenericClient) -> StoreResult<Vec<ReaderInfo>> {
        c.query("SELECT id, name, role FROM readers ORDER BY id", &[])
            .map_err(|e| self.db(e))?
            .into_iter()
            .map(|r| self.reader_row(r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    pub(super) fn info_in(&self, c: &mut impl GenericClient) -> StoreResult<StudyInfo> {
        let meta: HashMap<String, String> = c
            .query("SELECT key, value FROM meta", &[])
            .map_err(|e| self.db(e))?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let corrupt = |detail: String| StoreError::Corrupt {
            path: PathBuf::from(&self.target.display),
            detail,
        };
        let get = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or_else(|| corrupt(format!("study setting {k:?} missing")))
        };
        let protocol = get("protocol")?;
        let protocol = Protocol::parse(&protocol)
            .ok_or_else(|| corrupt(format!("unknown protocol {protocol:?}")))?;
        Ok(StudyInfo {
            protocol,
            seed: get("seed")?
                .parse()
                .map_err(|_| corrupt("seed is not a number".into()))?,
            locked: get("locked")? == "1",
            settings: serde_json::from_str(&get("settings")?)
                .map_err(|e| corrupt(format!("settings unreadable: {e}")))?,
            schema_version: SCHEMA_VERSION,
        })
    }

    pub(super) fn ensure_unlocked(&self, c: &mut impl GenericClient) -> StoreResult<()> {
        if self.info_in(c)?.locked {
            return Err(StoreError::Locked);
        }
        Ok(())
    }

    /// The case exists and this login may see it (a reader: it is on their work list).
    fn ensure_case(&self, c: &mut impl GenericClient, case_id: &str) -> StoreResult<()> {
        let visible = c
            .query_opt("SELECT 1 FROM cases WHERE id = $1", &[&case_id])
            .map_err(|e| self.db(e))?
            .is_some();
        if visible {
            return Ok(());
        }
        Err(StoreError::UnknownCase(case_id.to_string()))
    }

    /// The readings this login may see, of one case or all.
    fn readings_in(
        &self,
        c: &mut impl GenericClient,
        case_id: Option<&str>,
    ) -> StoreResult<Vec<ReadingRecord>> {
        let rows = c
            .query(
                "SELECT r.case_id, d.name, d.role, r.left_grade, r.right_grade, r.not_assessable, r.comment, r.committed_at
                 FROM readings r JOIN readers d ON d.id = r.reader_id
                 WHERE ($1::text IS NULL OR r.case_id = $1) ORDER BY r.case_id, d.id",
                &[&case_id],
            )
            .map_err(|e| self.db(e))?;
        rows.into_iter()
            .map(|r| {
                let case_id: String = r.get(0);
                let reader: String = r.get(1);
                let role: String = r.get(2);
                let corrupt = |detail: String| StoreError::Corrupt {
                    path: PathBuf::from(&self.target.display),
                    detail,
                };
                Ok(ReadingRecord {
                    role: Role::parse(&role)
                        .ok_or_else(|| corrupt(format!("unknown role {role:?}")))?,
                    reading: row_to_reading(
                        r.get::<_, Option<i32>>(3).map(i64::from),
                        r.get::<_, Option<i32>>(4).map(i64::from),
                        r.get(5),
                        r.get(6),
                    )
                    .map_err(|e| corrupt(format!("reading of {case_id} by {reader}: {e}")))?,
                    case_id,
                    reader,
                    committed_at: r.get(7),
                })
            })
            .collect()
    }

    fn own_in(
        &self,
        c: &mut impl GenericClient,
        reader: &ReaderInfo,
        case_id: &str,
    ) -> StoreResult<Option<ReadingRecord>> {
        Ok(self
            .readings_in(c, Some(case_id))?
            .into_iter()
            .find(|r| r.reader == reader.name))
    }

    /// Blinding, as the study file decides it (the database's policies are the second line).
    fn reveal_gate(
        &self,
        c: &mut impl GenericClient,
        reader: &str,
        case_id: &str,
        what: &'static str,
        allowed: impl FnOnce(&StudySettings) -> Result<(), &'static str>,
    ) -> StoreResult<ReaderInfo> {
        let info = self.info_in(c)?;
        let reader = self.acting(c, reader, false)?;
        self.ensure_case(c, case_id)?;
        let has_own = self.own_in(c, &reader, case_id)?.is_some();
        reveal(&reader, case_id, has_own, &info.settings, what, allowed)?;
        Ok(reader)
    }

    /// The reader this login is (None for the coordinator's login or a login tied to no reader).
    pub fn logged_in_reader(&self) -> StoreResult<Option<String>> {
        self.read(|c| Ok(self.me(c)?.map(|r| r.name)))
    }

    /// Checks the study against its audit trail, as [`crate::session::SqliteStore::verify`] does
    /// (the coordinator's view: every row).
    pub fn verify(&self) -> StoreResult<Vec<String>> {
        self.require_coordinator("verify the whole study")?;
        let dump = self.dump()?;
        let readings = self.read(|c| self.readings_in(c, None))?;
        Ok(crate::session::trail::findings(
            &dump.audit,
            |k| dump.meta(k).map(str::to_string),
            &readings,
        ))
    }
}

impl StudyStore for PgStore {
    fn info(&self) -> StoreResult<StudyInfo> {
        self.read(|c| self.info_in(c))
    }

    fn set_settings(&self, settings: StudySettings) -> StoreResult<()> {
        self.require_coordinator("change the study's settings")?;
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let old: String = tx
                .query_one("SELECT value FROM meta WHERE key = 'settings'", &[])
                .map_err(|e| self.db(e))?
                .get(0);
            let new =
                serde_json::to_string(&settings).map_err(|e| StoreError::Invalid(e.to_string()))?;
            tx.execute("UPDATE meta SET value = $1 WHERE key = 'settings'", &[&new])
                .map_err(|e| self.db(e))?;
            append_audit(
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
        self.require_coordinator("add readers")?;
        validate_reader_name(name)?;
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let existing = self.readers_in(tx)?;
            self.insert_reader(tx, &existing, name, role)
        })
    }

    fn readers(&self) -> StoreResult<Vec<ReaderInfo>> {
        self.read(|c| self.readers_in(c))
    }

    fn add_cases(&self, cases: &[NewCase]) -> StoreResult<Vec<CaseInfo>> {
        self.require_coordinator("add cases")?;
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let existing = self.read_cases(tx)?;
            let planned = plan_cases(&existing, cases, |p| self.stored_path(p))?;
            for case in &planned {
                let path = case.path.as_ref().map(|p| p.to_string_lossy().into_owned());
                tx.execute(
                    "INSERT INTO cases (id, path, sop_instance_uid, archive_url, study_uid, series_uid, added_at) VALUES ($1, $2, $3, $4, $5, $6, sacro_now())",
                    &[
                        &case.id,
                        &path,
                        &case.sop_instance_uid,
                        &case.archive.as_ref().map(|a| &a.url),
                        &case.archive.as_ref().map(|a| &a.study_uid),
                        &case.archive.as_ref().map(|a| &a.series_uid),
                    ],
                )
                .map_err(|e| self.db(e))?;
                append_audit(tx, COORDINATOR, "add_case", Some(&case.id), None, None, None)
                    .map_err(|e| self.db(e))?;
            }
            Ok(planned)
        })
    }

    fn cases(&self) -> StoreResult<Vec<CaseInfo>> {
        self.read(|c| self.read_cases(c))
    }

    fn case(&self, case_id: &str) -> StoreResult<CaseInfo> {
        self.cases()?
            .into_iter()
            .find(|c| c.id == case_id)
            .ok_or_else(|| StoreError::UnknownCase(case_id.to_string()))
    }

    fn worklist(&self, reader: &str) -> StoreResult<Vec<WorklistEntry>> {
        self.read(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(|e| self.db(e))?;
            let info = self.info_in(&mut tx)?;
            let reader = self.acting(&mut tx, reader, false)?;
            let readings = self.readings_in(&mut tx, None)?;
            let mut list: Vec<(u64, WorklistEntry)> = self
                .read_cases(&mut tx)?
                .into_iter()
                .filter_map(|case| {
                    let of_case: Vec<&ReadingRecord> =
                        readings.iter().filter(|r| r.case_id == case.id).collect();
                    // A reader's login sees only the cases on their list (the database decides);
                    // the coordinator's sees all and applies the same rule here.
                    let on_list = !self.owner || assigned(info.protocol, &reader, &of_case);
                    on_list.then(|| {
                        let done = of_case.iter().any(|r| r.reader == reader.name);
                        (
                            order_key(info.seed, reader.id, &case.id),
                            WorklistEntry {
                                case_id: case.id,
                                done,
                                arm: None,
                            },
                        )
                    })
                })
                .collect();
            tx.commit().map_err(|e| self.db(e))?;
            list.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.case_id.cmp(&b.1.case_id)));
            Ok(list.into_iter().map(|(_, e)| e).collect())
        })
    }

    fn commit_reading(
        &self,
        reader: &str,
        case_id: &str,
        reading: &Reading,
        reason: Option<&str>,
    ) -> StoreResult<CommitOutcome> {
        validate_reading(reading)?;
        if let Some(r) = reason {
            validate_text("reason", r, false, 1_000)?;
        }
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let me = self.acting(tx, reader, true)?;
            let on_list: bool = tx
                .query_one("SELECT sacro_on_my_list($1)", &[&case_id])
                .map_err(|e| self.db(e))?
                .get(0);
            if !on_list {
                let exists: bool = tx
                    .query_one("SELECT sacro_case_exists($1)", &[&case_id])
                    .map_err(|e| self.db(e))?
                    .get(0);
                if !exists {
                    return Err(StoreError::UnknownCase(case_id.to_string()));
                }
                return Err(StoreError::NotAssigned {
                    reader: me.name.clone(),
                    case: case_id.to_string(),
                });
            }
            let old = self.own_in(tx, &me, case_id)?;
            if old.as_ref().is_some_and(|o| &o.reading == reading) {
                return Ok(CommitOutcome::Unchanged);
            }
            if old.is_some() && reason.is_none_or(|r| r.trim().is_empty()) {
                return Err(StoreError::Invalid(format!(
                    "{} has a reading of case {case_id} already: changing it needs a reason",
                    me.name
                )));
            }
            tx.execute(
                "SELECT set_config('sacro.reason', $1, true)",
                &[&reason.unwrap_or("")],
            )
            .map_err(|e| self.db(e))?;
            let (l, r, na) = reading_to_row(reading);
            let (l, r) = (l.map(|v| v as i32), r.map(|v| v as i32));
            tx.execute(
                "INSERT INTO readings (case_id, reader_id, left_grade, right_grade, not_assessable, comment, committed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, sacro_now())
                 ON CONFLICT (case_id, reader_id) DO UPDATE SET left_grade = excluded.left_grade,
                   right_grade = excluded.right_grade, not_assessable = excluded.not_assessable,
                   comment = excluded.comment",
                &[&case_id, &me.id, &l, &r, &na, &reading.comment],
            )
            .map_err(|e| self.db(e))?;
            Ok(if old.is_some() {
                CommitOutcome::Changed
            } else {
                CommitOutcome::Created
            })
        })
    }

    fn delete_reading(&self, reader: &str, case_id: &str, reason: &str) -> StoreResult<()> {
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "deleting a reading needs a reason".into(),
            ));
        }
        validate_text("reason", reason, false, 1_000)?;
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let me = self.acting(tx, reader, true)?;
            self.ensure_case(tx, case_id)?;
            if self.own_in(tx, &me, case_id)?.is_none() {
                return Err(StoreError::Invalid(format!(
                    "{} has no reading of case {case_id} to delete",
                    me.name
                )));
            }
            tx.execute("SELECT set_config('sacro.reason', $1, true)", &[&reason])
                .map_err(|e| self.db(e))?;
            tx.execute(
                "DELETE FROM readings WHERE case_id = $1 AND reader_id = $2",
                &[&case_id, &me.id],
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn own_reading(&self, reader: &str, case_id: &str) -> StoreResult<Option<ReadingRecord>> {
        self.read(|c| {
            let me = self.acting(c, reader, false)?;
            self.ensure_case(c, case_id)?;
            self.own_in(c, &me, case_id)
        })
    }

    fn others_readings(&self, reader: &str, case_id: &str) -> StoreResult<Vec<ReadingRecord>> {
        self.read(|c| {
            let me = self.reveal_gate(c, reader, case_id, "other readers' readings", |s| {
                s.reveal_readers_after_commit.then_some(()).ok_or(
                    "in this study: readers stay blinded to each other (coordinator setting)",
                )
            })?;
            Ok(self
                .readings_in(c, Some(case_id))?
                .into_iter()
                .filter(|r| r.reader != me.name)
                .collect())
        })
    }

    fn all_readings(&self) -> StoreResult<Vec<ReadingRecord>> {
        self.read(|c| self.readings_in(c, None))
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
        self.require_coordinator("record the model's output in the study")?;
        self.write(|tx| {
            self.ensure_case(tx, case_id)?;
            tx.execute(
                "INSERT INTO predictions (case_id, model_sha256, probability, created_at) VALUES ($1, $2, $3, sacro_now())
                 ON CONFLICT (case_id, model_sha256) DO UPDATE SET probability = excluded.probability",
                &[&case_id, &model_sha256, &probability],
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn predictions(&self, model_sha256: &str) -> StoreResult<Vec<PredictionRecord>> {
        self.read(|c| {
            Ok(c.query(
                "SELECT case_id, probability FROM predictions WHERE model_sha256 = $1 ORDER BY case_id",
                &[&model_sha256],
            )
            .map_err(|e| self.db(e))?
            .into_iter()
            .map(|r| PredictionRecord {
                case_id: r.get(0),
                model_sha256: model_sha256.to_string(),
                probability: r.get(1),
            })
            .collect())
        })
    }

    fn prediction_for_reader(
        &self,
        reader: &str,
        case_id: &str,
        model_sha256: &str,
    ) -> StoreResult<Option<PredictionRecord>> {
        self.read(|c| {
            self.reveal_gate(c, reader, case_id, "the model's output", |s| {
                s.reveal_model_after_commit
                    .then_some(())
                    .ok_or("in this study (coordinator setting)")
            })?;
            Ok(c.query_opt(
                "SELECT probability FROM predictions WHERE case_id = $1 AND model_sha256 = $2",
                &[&case_id, &model_sha256],
            )
            .map_err(|e| self.db(e))?
            .map(|r| PredictionRecord {
                case_id: case_id.to_string(),
                model_sha256: model_sha256.to_string(),
                probability: r.get(0),
            }))
        })
    }

    fn lock(&self) -> StoreResult<()> {
        self.require_coordinator("lock the study")?;
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let head = append_audit(tx, COORDINATOR, "lock", None, None, None, None)
                .map_err(|e| self.db(e))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('lock_head', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&head],
            )
            .map_err(|e| self.db(e))?;
            tx.execute("UPDATE meta SET value = '1' WHERE key = 'locked'", &[])
                .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn set_crop(&self, actor: &str, case_id: &str, crop: Option<CropRect>) -> StoreResult<()> {
        self.require_coordinator("set a case's crop")?;
        if crop.is_some_and(|c| c.width == 0 || c.height == 0) {
            return Err(StoreError::Invalid("a crop needs a non-zero size".into()));
        }
        let to_i32 = |v: u32| {
            i32::try_from(v).map_err(|_| StoreError::Invalid(format!("crop value {v} too large")))
        };
        let rect = crop
            .map(|c| -> StoreResult<[i32; 4]> {
                Ok([
                    to_i32(c.x)?,
                    to_i32(c.y)?,
                    to_i32(c.width)?,
                    to_i32(c.height)?,
                ])
            })
            .transpose()?;
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            self.ensure_case(tx, case_id)?;
            let old: Option<String> = tx
                .query_opt(
                    "SELECT x || ',' || y || ',' || width || ',' || height FROM crops WHERE case_id = $1",
                    &[&case_id],
                )
                .map_err(|e| self.db(e))?
                .map(|r| r.get(0));
            let new = rect.map(|c| format!("{},{},{},{}", c[0], c[1], c[2], c[3]));
            if old == new {
                return Ok(());
            }
            match rect {
                Some(c) => {
                    tx.execute(
                        "INSERT INTO crops (case_id, x, y, width, height, set_by, set_at) VALUES ($1, $2, $3, $4, $5, $6, sacro_now())
                         ON CONFLICT (case_id) DO UPDATE SET x = $2, y = $3, width = $4, height = $5, set_by = $6, set_at = sacro_now()",
                        &[&case_id, &c[0], &c[1], &c[2], &c[3], &actor],
                    )
                    .map_err(|e| self.db(e))?;
                }
                None => {
                    tx.execute("DELETE FROM crops WHERE case_id = $1", &[&case_id])
                        .map_err(|e| self.db(e))?;
                }
            }
            append_audit(tx, actor, "set_crop", Some(case_id), old.as_deref(), new.as_deref(), None)
                .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    fn crop(&self, case_id: &str) -> StoreResult<Option<CropRect>> {
        self.read(|c| {
            let row = c
                .query_opt(
                    "SELECT x, y, width, height FROM crops WHERE case_id = $1",
                    &[&case_id],
                )
                .map_err(|e| self.db(e))?;
            Ok(row.map(|r| {
                let v = |i: usize| u32::try_from(r.get::<_, i32>(i)).unwrap_or(0);
                CropRect {
                    x: v(0),
                    y: v(1),
                    width: v(2),
                    height: v(3),
                }
            }))
        })
    }

    fn audit(&self) -> StoreResult<Vec<AuditRow>> {
        self.read(|c| {
            Ok(self
                .audit_rows(c)?
                .into_iter()
                .map(|(row, _)| row)
                .collect())
        })
    }
}

impl PgStore {
    pub(super) fn read_cases(&self, c: &mut impl GenericClient) -> StoreResult<Vec<CaseInfo>> {
        Ok(c.query(
            "SELECT id, path, sop_instance_uid, archive_url, study_uid, series_uid FROM cases ORDER BY id",
            &[],
        )
        .map_err(|e| self.db(e))?
        .into_iter()
        .map(|r| CaseInfo {
            id: r.get(0),
            path: r.get::<_, Option<String>>(1).map(PathBuf::from),
            sop_instance_uid: r.get(2),
            archive: crate::session::rules::archive_ref(r.get(3), r.get(4), r.get(5)),
        })
        .collect())
    }

    /// The audit rows this login may see, in order, with their hashes.
    pub(super) fn audit_rows(
        &self,
        c: &mut impl GenericClient,
    ) -> StoreResult<Vec<(AuditRow, Option<String>)>> {
        Ok(c.query(
            "SELECT seq, at, actor, action, case_id, old_value, new_value, reason, hash FROM audit ORDER BY seq",
            &[],
        )
        .map_err(|e| self.db(e))?
        .into_iter()
        .map(|r| {
            (
                AuditRow {
                    seq: r.get(0),
                    at: r.get(1),
                    actor: r.get(2),
                    action: r.get(3),
                    case_id: r.get(4),
                    old_value: r.get(5),
                    new_value: r.get(6),
                    reason: r.get(7),
                },
                r.get(8),
            )
        })
        .collect())
    }
}
