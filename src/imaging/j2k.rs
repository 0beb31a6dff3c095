//! The size a JPEG 2000 (or HTJ2K) codestream declares, read from its SIZ marker segment before the
//! decoder runs: a stream whose image is not the one the data set describes is refused there, so that the
//! decoder (OpenJPEG, in C) never allocates for dimensions nobody checked.

/// JPEG 2000 transfer syntaxes (Part 1, Part 2 multi-component, HTJ2K).
pub(super) const TRANSFER_SYNTAXES: [&str; 7] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

/// Width, height and number of components of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Size {
    pub width: u32,
    pub height: u32,
    pub components: u16,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// The codestream inside a JP2 file (its `jp2c` box), or the bytes themselves when they are a bare
/// codestream.
fn codestream(b: &[u8]) -> Result<&[u8], String> {
    const JP2_SIGNATURE: [u8; 12] = [0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10];
    if !b.starts_with(&JP2_SIGNATURE) {
        return Ok(b);
    }
    let mut at = 0usize;
    // A JP2 file has a handful of boxes before the codestream; a bound keeps a hostile one short.
    for _ in 0..64 {
        let len = be32(b, at).ok_or("the JP2 file ends inside a box header")?;
        let kind = b
            .get(at + 4..at + 8)
            .ok_or("the JP2 file ends inside a box header")?;
        let (header, len) = match len {
            1 => (
                16usize,
                be32(b, at + 8)
                    .zip(be32(b, at + 12))
                    .map(|(hi, lo)| (u64::from(hi) << 32) | u64::from(lo))
                    .ok_or("the JP2 file ends inside a box header")?,
            ),
            0 => (8usize, (b.len() - at) as u64),
            n => (8usize, u64::from(n)),
        };
        if kind == b"jp2c" {
            return b.get(at + header..).ok_or_else(|| "empty jp2c box".into());
        }
        if len < header as u64 {
            return Err(format!(
                "a JP2 box declares {len} bytes, less than its header"
            ));
        }
        at = usize::try_from(len)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|&next| next < b.len())
            .ok_or("the JP2 file has no codestream (jp2c box)")?;
    }
    Err("the JP2 file has no codestream among its first 64 boxes".into())
}

/// Reads the image size from the SIZ marker segment that must follow the codestream's SOC marker.
pub(super) fn size(bytes: &[u8]) -> Result<Size, String> {
    let b = codestream(bytes)?;
    if b.get(0..4) != Some(&[0xFF, 0x4F, 0xFF, 0x51]) {
        return Err("not a JPEG 2000 codestream (no SOC and SIZ markers at its start)".into());
    }
    let field = |at| be32(b, at).ok_or("the codestream ends inside its SIZ marker segment");
    let (x, y, x0, y0) = (field(8)?, field(12)?, field(16)?, field(20)?);
    let components = be16(b, 40).ok_or("the codestream ends inside its SIZ marker segment")?;
    if x <= x0 || y <= y0 || components == 0 {
        return Err(format!(
            "the codestream's SIZ declares an empty image ({x}−{x0} × {y}−{y0}, {components} components)"
        ));
    }
    Ok(Size {
        width: x - x0,
        height: y - y0,
        components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn siz(x: u32, y: u32, x0: u32, y0: u32, c: u16) -> Vec<u8> {
        let mut b = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
        for v in [x, y, x0, y0, 512, 512, 0, 0] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&c.to_be_bytes());
        b.extend_from_slice(&[15, 1, 1]);
        b
    }

    #[test]
    fn reads_the_size_of_a_codestream_and_of_a_jp2_file() {
        let cs = siz(1000, 800, 10, 20, 1);
        let want = Size {
            width: 990,
            height: 780,
            components: 1,
        };
        assert_eq!(size(&cs), Ok(want));
        let mut jp2 = vec![0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10];
        jp2.extend_from_slice(&[0, 0, 0, 20, b'f', b't', b'y', b'p']);
        jp2.extend_from_slice(&[0; 12]);
        jp2.extend_from_slice(&((cs.len() + 8) as u32).to_be_bytes());
        jp2.extend_from_slice(b"jp2c");
        jp2.extend_from_slice(&cs);
        assert_eq!(size(&jp2), Ok(want));
    }

    #[test]
    fn refuses_what_is_not_a_sized_codestream() {
        assert!(size(&[]).is_err());
        assert!(size(&siz(10, 10, 0, 0, 1)[..30]).is_err());
        assert!(size(&siz(10, 10, 10, 0, 1)).is_err());
        assert!(size(&siz(10, 10, 0, 0, 0)).is_err());
        assert!(size(b"\xFF\xD8\xFF\xE0 a JPEG").is_err());
        // A JP2 file whose box lengths run in circles or past its end.
        let mut jp2 = vec![0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10];
        jp2.extend_from_slice(&[0, 0, 0, 4, b'f', b't', b'y', b'p']);
        assert!(size(&jp2).is_err());
        jp2.truncate(12);
        jp2.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xF0, b'f', b't', b'y', b'p']);
        assert!(size(&jp2).is_err());
    }
}
