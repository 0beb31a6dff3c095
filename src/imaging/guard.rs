//! A bounds check of a DICOM byte stream before it is handed to the parser.
//!
//! dicom-rs allocates a value buffer of the length an element declares before reading it, so a single
//! corrupt length field can ask for gigabytes. This walk visits every element header, item and fragment
//! (nested sequences included) and refuses any declared length that runs past the bytes that actually
//! hold it, so that no later allocation can be larger than the file justifies.

/// How a data set is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoding {
    /// Explicit VR (true) or implicit VR (false).
    pub explicit: bool,
    /// Little endian (true) or big endian (false).
    pub little_endian: bool,
}

impl Encoding {
    pub(crate) const EXPLICIT_LE: Encoding = Encoding {
        explicit: true,
        little_endian: true,
    };
}

const UNDEFINED: u32 = 0xFFFF_FFFF;
const MAX_DEPTH: usize = 32;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQ_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// VRs whose explicit-VR header has a 16-bit length (PS3.5 7.1.2, Table 7.1-2). Every other VR, an
/// unknown one included, has 2 reserved bytes and a 32-bit length (Table 7.1-1): that is how the standard
/// reserves room for new VRs, and how dicom-rs reads them (as UN), so the walk must read the same length.
fn short_form(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

struct Walker<'a> {
    b: &'a [u8],
    enc: Encoding,
}

impl Walker<'_> {
    fn u16_at(&self, pos: usize) -> u16 {
        let v = [self.b[pos], self.b[pos + 1]];
        if self.enc.little_endian {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        }
    }

    fn u32_at(&self, pos: usize) -> u32 {
        let v = [
            self.b[pos],
            self.b[pos + 1],
            self.b[pos + 2],
            self.b[pos + 3],
        ];
        if self.enc.little_endian {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    }

    fn tag_at(&self, pos: usize, end: usize) -> Result<(u16, u16), String> {
        if end.saturating_sub(pos) < 8 {
            return Err(format!(
                "truncated element header at byte offset {pos} ({} bytes left)",
                end.saturating_sub(pos)
            ));
        }
        Ok((self.u16_at(pos), self.u16_at(pos + 2)))
    }

    /// Walks data elements from `pos` to `end`; inside an undefined-length item, stops after its delimiter.
    fn dataset(
        &self,
        mut pos: usize,
        end: usize,
        depth: usize,
        in_item: bool,
    ) -> Result<usize, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "sequences nested deeper than {MAX_DEPTH} levels at byte offset {pos}"
            ));
        }
        while pos < end {
            let tag = self.tag_at(pos, end)?;
            if tag == ITEM_END && in_item {
                return Ok(pos + 8);
            }
            if tag.0 == 0xFFFE {
                return Err(format!(
                    "unexpected item tag ({:04X},{:04X}) among data elements at byte offset {pos}",
                    tag.0, tag.1
                ));
            }
            let (vr, len, header) = if self.enc.explicit {
                let vr = [self.b[pos + 4], self.b[pos + 5]];
                if !vr.iter().all(u8::is_ascii_uppercase) {
                    return Err(format!(
                        "element ({:04X},{:04X}) at byte offset {pos} has an invalid VR {:?}",
                        tag.0,
                        tag.1,
                        String::from_utf8_lossy(&vr)
                    ));
                }
                if short_form(vr) {
                    (Some(vr), u32::from(self.u16_at(pos + 6)), 8)
                } else {
                    if end - pos < 12 {
                        return Err(format!("truncated element header at byte offset {pos}"));
                    }
                    (Some(vr), self.u32_at(pos + 8), 12)
                }
            } else {
                (None, self.u32_at(pos + 4), 8)
            };
            let start = pos + header;
            if len == UNDEFINED {
                let is_pixels =
                    tag == PIXEL_DATA || matches!(vr.as_ref().map(|v| &v[..]), Some(b"OB" | b"OW"));
                pos = if is_pixels {
                    self.fragments(start, end)?
                } else if matches!(vr.as_ref().map(|v| &v[..]), None | Some(b"SQ" | b"UN")) {
                    // PS3.5 6.2.2 encodes an undefined-length UN sequence in implicit VR, but dicom-rs reads
                    // it in the data set's own encoding (and would allocate what a misread length says), so
                    // the check follows the parser: such a file is refused here with the offending element.
                    self.sequence(start, end, depth + 1, true)?
                } else {
                    return Err(format!(
                        "element ({:04X},{:04X}) at byte offset {pos} has an undefined length, not allowed for its VR",
                        tag.0, tag.1
                    ));
                };
                continue;
            }
            let len = len as usize;
            if len > end - start {
                return Err(format!(
                    "element ({:04X},{:04X}) at byte offset {pos} declares {len} bytes but only {} remain",
                    tag.0,
                    tag.1,
                    end - start
                ));
            }
            let looks_like_items = len >= 8 && self.tag_at(start, start + len).ok() == Some(ITEM);
            if vr.map(|v| &v == b"SQ").unwrap_or(looks_like_items) {
                self.sequence(start, start + len, depth + 1, false)?;
            }
            pos = start + len;
        }
        if in_item {
            return Err(format!(
                "item without its delimiter before byte offset {end}"
            ));
        }
        Ok(pos)
    }

    /// Walks the items of a sequence.
    fn sequence(
        &self,
        mut pos: usize,
        end: usize,
        depth: usize,
        undefined: bool,
    ) -> Result<usize, String> {
        loop {
            if pos >= end {
                if undefined {
                    return Err(format!(
                        "sequence without its delimiter before byte offset {end}"
                    ));
                }
                return Ok(end);
            }
            let tag = self.tag_at(pos, end)?;
            if tag == SEQ_END {
                return Ok(pos + 8);
            }
            if tag != ITEM {
                return Err(format!(
                    "expected an item tag in a sequence at byte offset {pos}, found ({:04X},{:04X})",
                    tag.0, tag.1
                ));
            }
            let len = self.u32_at(pos + 4);
            if len == UNDEFINED {
                pos = self.dataset(pos + 8, end, depth, true)?;
            } else {
                let len = len as usize;
                if len > end - pos - 8 {
                    return Err(format!(
                        "sequence item at byte offset {pos} declares {len} bytes but only {} remain",
                        end - pos - 8
                    ));
                }
                self.dataset(pos + 8, pos + 8 + len, depth, false)?;
                pos += 8 + len;
            }
        }
    }

    /// Walks the fragments of encapsulated pixel data.
    fn fragments(&self, mut pos: usize, end: usize) -> Result<usize, String> {
        loop {
            let tag = self.tag_at(pos, end)?;
            if tag == SEQ_END {
                return Ok(pos + 8);
            }
            if tag != ITEM {
                return Err(format!(
                    "expected a pixel data fragment at byte offset {pos}, found ({:04X},{:04X})",
                    tag.0, tag.1
                ));
            }
            let len = self.u32_at(pos + 4);
            if len == UNDEFINED || len as usize > end - pos - 8 {
                return Err(format!(
                    "pixel data fragment at byte offset {pos} declares {len} bytes but only {} remain",
                    end - pos - 8
                ));
            }
            pos += 8 + len as usize;
        }
    }
}

/// Checks every declared length in a data set encoded as `enc`; `base` is added to offsets in messages.
pub(crate) fn check_dataset(bytes: &[u8], enc: Encoding, base: usize) -> Result<(), String> {
    let walker = Walker { b: bytes, enc };
    walker
        .dataset(0, bytes.len(), 0, false)
        .map(|_| ())
        .map_err(|e| rebase(&e, base))
}

/// Walks the file meta group (explicit VR little endian, group 0002) and returns where it ends.
pub(crate) fn meta_group_end(bytes: &[u8], start: usize) -> Result<usize, String> {
    let walker = Walker {
        b: bytes,
        enc: Encoding::EXPLICIT_LE,
    };
    let mut pos = start;
    while bytes.len().saturating_sub(pos) >= 8 && walker.u16_at(pos) == 0x0002 {
        let end = bytes.len();
        let vr = [bytes[pos + 4], bytes[pos + 5]];
        let (len, header) = if short_form(vr) {
            (usize::from(walker.u16_at(pos + 6)), 8)
        } else {
            if end - pos < 12 {
                return Err(format!("truncated file meta element at byte offset {pos}"));
            }
            (walker.u32_at(pos + 8) as usize, 12)
        };
        if !vr.iter().all(u8::is_ascii_uppercase) || len > end - pos - header {
            return Err(format!(
                "file meta element at byte offset {pos} is invalid or runs past the end of the file"
            ));
        }
        pos += header + len;
    }
    Ok(pos)
}

fn rebase(msg: &str, base: usize) -> String {
    if base == 0 {
        return msg.to_string();
    }
    format!("{msg} (offsets counted from the data set start at byte {base})")
}

/// Guesses the encoding of a data set that has no file meta group, from its first element.
pub(crate) fn sniff_encoding(bytes: &[u8]) -> Encoding {
    if bytes.len() < 8 {
        return Encoding::EXPLICIT_LE;
    }
    let le_group = u16::from_le_bytes([bytes[0], bytes[1]]);
    let be_group = u16::from_be_bytes([bytes[0], bytes[1]]);
    let little_endian = le_group <= be_group || le_group == 0x0008;
    let vr = [bytes[4], bytes[5]];
    let explicit = vr.iter().all(u8::is_ascii_uppercase) && is_known_vr(vr);
    Encoding {
        explicit,
        little_endian,
    }
}

/// A VR of PS3.5 Table 6.2-1: a short-form one, or one with the 32-bit length form.
fn is_known_vr(vr: [u8; 2]) -> bool {
    short_form(vr)
        || matches!(
            &vr,
            b"OB"
                | b"OD"
                | b"OF"
                | b"OL"
                | b"OV"
                | b"OW"
                | b"SQ"
                | b"SV"
                | b"UC"
                | b"UN"
                | b"UR"
                | b"UT"
                | b"UV"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit_element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&tag.0.to_le_bytes());
        v.extend_from_slice(&tag.1.to_le_bytes());
        v.extend_from_slice(vr);
        v.extend_from_slice(&(value.len() as u16).to_le_bytes());
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn accepts_a_well_formed_dataset() {
        let mut b = explicit_element((0x0008, 0x0060), b"CS", b"CR");
        b.extend(explicit_element(
            (0x0028, 0x0010),
            b"US",
            &16u16.to_le_bytes(),
        ));
        assert!(check_dataset(&b, Encoding::EXPLICIT_LE, 0).is_ok());
    }

    #[test]
    fn refuses_a_length_past_the_end() {
        let mut b = explicit_element((0x0008, 0x0060), b"CS", b"CR");
        b[6] = 0xFF; // declare 255 bytes
        let err = check_dataset(&b, Encoding::EXPLICIT_LE, 0).unwrap_err();
        assert!(err.contains("declares 255 bytes"), "{err}");
    }

    #[test]
    fn reads_an_unknown_vr_with_the_long_length_the_parser_uses() {
        // A bit flip turned DS into "DQ": the parser reads the reserved bytes and a 32-bit length, here the
        // ASCII of the value ("1.0000" → 0x30302E31), so the walk must refuse what that length claims.
        let mut b = explicit_element((0x0018, 0x0050), b"DQ", b"1.0000");
        b.extend(explicit_element((0x0028, 0x0010), b"US", &[0, 2]));
        let err = check_dataset(&b, Encoding::EXPLICIT_LE, 0).unwrap_err();
        assert!(
            err.contains("(0018,0050)") && err.contains("declares"),
            "{err}"
        );
        // A known long-form VR whose 32-bit length fits is accepted.
        let mut ok = vec![0x09, 0x00, 0x10, 0x10];
        ok.extend_from_slice(b"UN\0\0");
        ok.extend_from_slice(&2u32.to_le_bytes());
        ok.extend_from_slice(b"ab");
        assert!(check_dataset(&ok, Encoding::EXPLICIT_LE, 0).is_ok());
    }

    #[test]
    fn refuses_a_huge_pixel_data_length() {
        let mut b = Vec::new();
        b.extend_from_slice(&0x7FE0u16.to_le_bytes());
        b.extend_from_slice(&0x0010u16.to_le_bytes());
        b.extend_from_slice(b"OW\0\0");
        b.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        b.extend_from_slice(&[0u8; 16]);
        let err = check_dataset(&b, Encoding::EXPLICIT_LE, 0).unwrap_err();
        assert!(err.contains("(7FE0,0010)"), "{err}");
    }

    #[test]
    fn refuses_an_unterminated_sequence() {
        let mut b = Vec::new();
        b.extend_from_slice(&0x0008u16.to_le_bytes());
        b.extend_from_slice(&0x1140u16.to_le_bytes());
        b.extend_from_slice(b"SQ\0\0");
        b.extend_from_slice(&UNDEFINED.to_le_bytes());
        b.extend_from_slice(&0xFFFEu16.to_le_bytes());
        b.extend_from_slice(&0xE000u16.to_le_bytes());
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&[0u8; 4]);
        assert!(check_dataset(&b, Encoding::EXPLICIT_LE, 0).is_err());
    }

    #[test]
    fn sniffs_implicit_and_explicit() {
        let explicit = explicit_element((0x0008, 0x0005), b"CS", b"ISO_IR 100");
        assert_eq!(sniff_encoding(&explicit), Encoding::EXPLICIT_LE);
        let mut implicit = vec![0x08, 0x00, 0x05, 0x00];
        implicit.extend_from_slice(&10u32.to_le_bytes());
        implicit.extend_from_slice(b"ISO_IR 100");
        assert!(!sniff_encoding(&implicit).explicit);
    }
}
