//! Joint boxes in a study file ([`crate::session::joint_boxes`]): set, blinded view, all.

use rusqlite::{Connection, params};

use super::SqliteStore;
use super::queries::audit;
use super::schema::NOW;
use crate::session::joint_boxes::{JointBoxRecord, Side, box_text, validate_box};
use crate::session::rules::reveal;
use crate::session::{CropRect, StoreError, StoreResult};

impl SqliteStore {
    pub(super) fn boxes_in(
        &self,
        conn: &Connection,
        case_id: Option<&str>,
    ) -> StoreResult<Vec<JointBoxRecord>> {
        let mut stmt = conn
            .prepare(
                "SELECT b.case_id, d.name, b.side, b.x, b.y, b.width, b.height, b.set_at
                 FROM joint_boxes b JOIN readers d ON d.id = b.reader_id
                 WHERE (?1 IS NULL OR b.case_id = ?1) ORDER BY b.case_id, d.id, b.side",
            )
            .map_err(|e| self.db(e))?;
        type Row = (String, String, String, u32, u32, u32, u32, String);
        let rows: Vec<Row> = stmt
            .query_map([case_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .and_then(Iterator::collect)
            .map_err(|e| self.db(e))?;
        rows.into_iter()
            .map(|(case_id, reader, side, x, y, width, height, set_at)| {
                Ok(JointBoxRecord {
                    side: Side::parse(&side).ok_or_else(|| StoreError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("joint box of {case_id} by {reader}: side {side:?}"),
                    })?,
                    case_id,
                    reader,
                    rect: CropRect {
                        x,
                        y,
                        width,
                        height,
                    },
                    set_at,
                })
            })
            .collect()
    }

    pub(super) fn set_box_in(
        &self,
        reader: &str,
        case_id: &str,
        side: Side,
        rect: Option<CropRect>,
    ) -> StoreResult<()> {
        if let Some(r) = &rect {
            validate_box(r)?;
        }
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let info = self.info_in(tx)?;
            let reader = self.reader_in(tx, reader)?;
            self.ensure_case(tx, case_id)?;
            // An arm reader of a reader study has every case; others, their work list's.
            if !self.design_in(tx)?.reads_in_arms(&reader) {
                self.assigned_readings(tx, info.protocol, &reader, case_id)?;
            }
            let old = self
                .boxes_in(tx, Some(case_id))?
                .into_iter()
                .find(|b| b.reader == reader.name && b.side == side)
                .map(|b| box_text(&b.rect));
            let new = rect.as_ref().map(box_text);
            if old == new {
                return Ok(());
            }
            match rect {
                Some(r) => tx.execute(
                    &format!(
                        "INSERT INTO joint_boxes (case_id, reader_id, side, x, y, width, height, set_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW})
                         ON CONFLICT (case_id, reader_id, side) DO UPDATE SET x = excluded.x,
                           y = excluded.y, width = excluded.width, height = excluded.height,
                           set_at = excluded.set_at"
                    ),
                    params![case_id, reader.id, side.as_str(), r.x, r.y, r.width, r.height],
                ),
                None => tx.execute(
                    "DELETE FROM joint_boxes WHERE case_id = ?1 AND reader_id = ?2 AND side = ?3",
                    params![case_id, reader.id, side.as_str()],
                ),
            }
            .map_err(|e| self.db(e))?;
            let action = format!("set_{}_joint_box", side.as_str());
            audit(
                tx,
                &reader.name,
                &action,
                Some(case_id),
                old.as_deref(),
                new.as_deref(),
                None,
            )
            .map_err(|e| self.db(e))?;
            Ok(())
        })
    }

    pub(super) fn visible_boxes_in(
        &self,
        reader: &str,
        case_id: &str,
    ) -> StoreResult<Vec<JointBoxRecord>> {
        let conn = self.conn();
        let info = self.info_in(&conn)?;
        let reader = self.reader_in(&conn, reader)?;
        self.ensure_case(&conn, case_id)?;
        let boxes = self.boxes_in(&conn, Some(case_id))?;
        let has_own = self.own_in(&conn, &reader, case_id)?.is_some();
        let others_visible = reveal(
            &reader,
            case_id,
            has_own,
            &info.settings,
            "other readers' joint boxes",
            |s| s.reveal_readers_after_commit.then_some(()).ok_or(""),
        )
        .is_ok();
        Ok(boxes
            .into_iter()
            .filter(|b| b.reader == reader.name || others_visible)
            .collect())
    }
}
