//! `push` and `pull`: a whole study between a file and a server database, verbatim ([`StudyDump`]):
//! the copy happens in one transaction on the server and is read back and compared before it commits,
//! so a copy that cannot be completed leaves the database unchanged.

use postgres::GenericClient;

use super::{PgStore, ServerLogin};
use crate::session::dump::{
    CaseRow, CropRow, META_KEYS, PredictionRow, ReaderRow, ReadingRow, StudyDump,
};
use crate::session::{StoreError, StoreResult};

impl PgStore {
    /// Every row of the study (the coordinator's login only: a reader's sees only part of it).
    pub fn dump(&self) -> StoreResult<StudyDump> {
        self.require_coordinator("copy the whole study")?;
        self.read(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(|e| self.db(e))?;
            let dump = self.read_all(&mut tx)?;
            tx.commit().map_err(|e| self.db(e))?;
            Ok(dump)
        })
    }

    fn read_all(&self, c: &mut impl GenericClient) -> StoreResult<StudyDump> {
        let db = |e| self.db(e);
        let mut meta = Vec::new();
        for key in META_KEYS {
            if let Some(r) = c
                .query_opt("SELECT value FROM meta WHERE key = $1", &[key])
                .map_err(db)?
            {
                meta.push((key.to_string(), r.get(0)));
            }
        }
        let readers = c
            .query(
                "SELECT id, name, role, created_at FROM readers ORDER BY id",
                &[],
            )
            .map_err(db)?
            .into_iter()
            .map(|r| ReaderRow {
                id: r.get(0),
                name: r.get(1),
                role: r.get(2),
                created_at: r.get(3),
            })
            .collect();
        let cases = c
            .query(
                "SELECT id, path, sop_instance_uid, added_at, archive_url, study_uid, series_uid FROM cases ORDER BY id",
                &[],
            )
            .map_err(db)?
            .into_iter()
            .map(|r| CaseRow {
                id: r.get(0),
                path: r.get(1),
                sop_instance_uid: r.get(2),
                archive: crate::session::rules::archive_ref(r.get(4), r.get(5), r.get(6)),
                added_at: r.get(3),
            })
            .collect();
        let readings = c
            .query(
                "SELECT case_id, reader_id, left_grade, right_grade, not_assessable, comment, committed_at
                 FROM readings ORDER BY case_id COLLATE \"C\", reader_id",
                &[],
            )
            .map_err(db)?
            .into_iter()
            .map(|r| ReadingRow {
                case_id: r.get(0),
                reader_id: r.get(1),
                left_grade: r.get::<_, Option<i32>>(2).map(i64::from),
                right_grade: r.get::<_, Option<i32>>(3).map(i64::from),
                not_assessable: r.get(4),
                comment: r.get(5),
                committed_at: r.get(6),
            })
            .collect();
        let predictions = c
            .query(
                "SELECT case_id, model_sha256, probability, created_at FROM predictions
                 ORDER BY case_id COLLATE \"C\", model_sha256 COLLATE \"C\"",
                &[],
            )
            .map_err(db)?
            .into_iter()
            .map(|r| PredictionRow {
                case_id: r.get(0),
                model_sha256: r.get(1),
                probability: r.get(2),
                created_at: r.get(3),
            })
            .collect();
        let crops = c
            .query(
                "SELECT case_id, x, y, width, height, set_by, set_at FROM crops ORDER BY case_id COLLATE \"C\"",
                &[],
            )
            .map_err(db)?
            .into_iter()
            .map(|r| CropRow {
                case_id: r.get(0),
                rect: [1, 2, 3, 4].map(|i| i64::from(r.get::<_, i32>(i))),
                set_by: r.get(5),
                set_at: r.get(6),
            })
            .collect();
        let mut dump = StudyDump {
            meta,
            readers,
            cases,
            readings,
            audit: self.audit_rows(c)?,
            predictions,
            crops,
        };
        // Cases in byte order, as the study file sorts them.
        dump.cases.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(dump)
    }

    /// Creates a study in the (empty) database the URL names holding exactly `dump` (`sacro study
    /// push`): readers come without logins (tie them with `add-reader --login`). The copy is read back
    /// and compared inside its transaction; any difference rolls it back.
    pub fn create_from(login: &ServerLogin, dump: &StudyDump) -> StoreResult<Self> {
        Self::create_with(login, |store, tx| {
            let db = |e| store.db(e);
            tx.batch_execute("SET LOCAL sacro.copying = 'on'")
                .map_err(db)?;
            for (k, v) in dump.meta.iter().filter(|(k, _)| k != "locked") {
                tx.execute("INSERT INTO meta (key, value) VALUES ($1, $2)", &[k, v])
                    .map_err(db)?;
            }
            tx.execute("INSERT INTO meta (key, value) VALUES ('locked', '0')", &[])
                .map_err(db)?;
            if dump.meta("audit_head").is_none() {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('audit_head', '')",
                    &[],
                )
                .map_err(db)?;
            }
            for r in &dump.readers {
                tx.execute(
                    "INSERT INTO readers (id, name, role, created_at) VALUES ($1, $2, $3, $4)",
                    &[&r.id, &r.name, &r.role, &r.created_at],
                )
                .map_err(db)?;
            }
            for c in &dump.cases {
                tx.execute(
                    "INSERT INTO cases (id, path, sop_instance_uid, added_at, archive_url, study_uid, series_uid) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &c.id,
                        &c.path,
                        &c.sop_instance_uid,
                        &c.added_at,
                        &c.archive.as_ref().map(|a| &a.url),
                        &c.archive.as_ref().map(|a| &a.study_uid),
                        &c.archive.as_ref().map(|a| &a.series_uid),
                    ],
                )
                .map_err(db)?;
            }
            let grade = |g: Option<i64>| -> StoreResult<Option<i32>> {
                g.map(|v| {
                    i32::try_from(v)
                        .map_err(|_| StoreError::Invalid(format!("grade {v} out of range")))
                })
                .transpose()
            };
            for r in &dump.readings {
                tx.execute(
                    "INSERT INTO readings (case_id, reader_id, left_grade, right_grade, not_assessable, comment, committed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &r.case_id,
                        &r.reader_id,
                        &grade(r.left_grade)?,
                        &grade(r.right_grade)?,
                        &r.not_assessable,
                        &r.comment,
                        &r.committed_at,
                    ],
                )
                .map_err(db)?;
            }
            for (a, hash) in &dump.audit {
                tx.execute(
                    "INSERT INTO audit (seq, at, actor, action, case_id, old_value, new_value, reason, hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[&a.seq, &a.at, &a.actor, &a.action, &a.case_id, &a.old_value, &a.new_value, &a.reason, hash],
                )
                .map_err(db)?;
            }
            for p in &dump.predictions {
                tx.execute(
                    "INSERT INTO predictions (case_id, model_sha256, probability, created_at) VALUES ($1, $2, $3, $4)",
                    &[&p.case_id, &p.model_sha256, &p.probability, &p.created_at],
                )
                .map_err(db)?;
            }
            for c in &dump.crops {
                let v = |i: usize| {
                    i32::try_from(c.rect[i]).map_err(|_| {
                        StoreError::Invalid(format!("crop of {} out of range", c.case_id))
                    })
                };
                tx.execute(
                    "INSERT INTO crops (case_id, x, y, width, height, set_by, set_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&c.case_id, &v(0)?, &v(1)?, &v(2)?, &v(3)?, &c.set_by, &c.set_at],
                )
                .map_err(db)?;
            }
            if let Some(locked) = dump.meta("locked") {
                tx.execute(
                    "UPDATE meta SET value = $1 WHERE key = 'locked'",
                    &[&locked],
                )
                .map_err(db)?;
            }
            tx.batch_execute("SET LOCAL sacro.copying = 'off'")
                .map_err(db)?;
            let back = store.read_all(tx)?;
            let diff = dump.differences(&back);
            if !diff.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "{}: the copy does not read back equal ({}); nothing was written",
                    store.location(),
                    diff.join("; ")
                )));
            }
            Ok(())
        })
    }
}
