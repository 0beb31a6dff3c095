//! Joint boxes: each reader's box around the patient's left and right sacroiliac joint of a film, the
//! training data of a joint localiser. Stored per reader, case and side, audited like readings, frozen by
//! the lock, and blinded like readings (another reader's boxes only after one's own commit, where the
//! study reveals readers); the consensus box of a case is the mean of its readers' boxes.

use super::{CropRect, StoreError, StoreResult};

/// The patient's side.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The patient's left joint (on the viewer's right of a film in the usual orientation).
    Left,
    /// The patient's right joint.
    Right,
}

impl Side {
    /// Both sides.
    pub const BOTH: [Side; 2] = [Side::Left, Side::Right];

    /// Name in the store and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Right => "right",
        }
    }

    /// Parses the name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "left" => Some(Self::Left),
            "right" => Some(Self::Right),
            _ => None,
        }
    }
}

/// One reader's box of one joint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JointBoxRecord {
    /// Case ID.
    pub case_id: String,
    /// Reader name.
    pub reader: String,
    /// The joint.
    pub side: Side,
    /// The box in film pixels.
    pub rect: CropRect,
    /// When drawn or last changed (UTC, RFC 3339).
    pub set_at: String,
}

/// Largest coordinate a box may reach (films are at most 65,535 pixels a side in DICOM).
const MAX_EDGE: u64 = 65_535;

/// A box must have an area and lie within a film's possible size.
pub fn validate_box(rect: &CropRect) -> StoreResult<()> {
    if rect.width == 0 || rect.height == 0 {
        return Err(StoreError::Invalid(format!(
            "joint box {}×{} at ({}, {}) is empty",
            rect.width, rect.height, rect.x, rect.y
        )));
    }
    if u64::from(rect.x) + u64::from(rect.width) > MAX_EDGE
        || u64::from(rect.y) + u64::from(rect.height) > MAX_EDGE
    {
        return Err(StoreError::Invalid(format!(
            "joint box {}×{} at ({}, {}) reaches past 65,535 pixels: no film is that large",
            rect.width, rect.height, rect.x, rect.y
        )));
    }
    Ok(())
}

/// The box as the audit trail and exports write it: `x,y,w,h`.
pub fn box_text(rect: &CropRect) -> String {
    format!("{},{},{},{}", rect.x, rect.y, rect.width, rect.height)
}

/// The consensus box of each side of a case: the mean of its readers' boxes (each edge averaged, then
/// rounded to the nearest pixel), or None where nobody drew that joint.
pub fn consensus_boxes(records: &[JointBoxRecord], case_id: &str) -> [Option<CropRect>; 2] {
    Side::BOTH.map(|side| {
        let of: Vec<&CropRect> = records
            .iter()
            .filter(|r| r.case_id == case_id && r.side == side)
            .map(|r| &r.rect)
            .collect();
        if of.is_empty() {
            return None;
        }
        let n = of.len() as f64;
        let mean = |f: fn(&CropRect) -> u64| of.iter().map(|r| f(r) as f64).sum::<f64>() / n;
        let (x0, y0) = (mean(|r| u64::from(r.x)), mean(|r| u64::from(r.y)));
        let x1 = mean(|r| u64::from(r.x) + u64::from(r.width));
        let y1 = mean(|r| u64::from(r.y) + u64::from(r.height));
        let (x, y) = (x0.round() as u32, y0.round() as u32);
        Some(CropRect {
            x,
            y,
            width: (x1.round() as u32).saturating_sub(x).max(1),
            height: (y1.round() as u32).saturating_sub(y).max(1),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(reader: &str, side: Side, x: u32, y: u32, w: u32, h: u32) -> JointBoxRecord {
        JointBoxRecord {
            case_id: "C1".into(),
            reader: reader.into(),
            side,
            rect: CropRect {
                x,
                y,
                width: w,
                height: h,
            },
            set_at: String::new(),
        }
    }

    #[test]
    fn the_consensus_box_is_the_mean_of_the_readers_boxes() {
        let boxes = [
            rec("a", Side::Left, 100, 200, 50, 80),
            rec("b", Side::Left, 110, 190, 60, 100),
            rec("a", Side::Right, 10, 20, 30, 40),
        ];
        let [left, right] = consensus_boxes(&boxes, "C1");
        // Edges: x 105, y 195, right edge (150 + 170) / 2 = 160, bottom (280 + 290) / 2 = 285.
        assert_eq!(
            left,
            Some(CropRect {
                x: 105,
                y: 195,
                width: 55,
                height: 90
            })
        );
        assert_eq!(right, Some(boxes[2].rect));
        assert_eq!(consensus_boxes(&boxes, "C2"), [None, None]);
    }

    #[test]
    fn empty_and_impossible_boxes_are_refused() {
        assert!(validate_box(&rec("a", Side::Left, 1, 1, 0, 5).rect).is_err());
        assert!(validate_box(&rec("a", Side::Left, 65_000, 1, 600, 5).rect).is_err());
        assert!(validate_box(&rec("a", Side::Left, 1, 1, 10, 5).rect).is_ok());
    }
}
