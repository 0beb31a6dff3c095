//! Rules every study store applies the same way, whatever keeps the data: the reproducible per-reader
//! case order, which case IDs are valid, and what a reading must satisfy before it is stored.

use super::{StoreError, StoreResult};
use crate::grading::{Assessment, Reading};

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
