//! Stored values to modality values: Bits Stored masking, sign extension, and the Modality LUT
//! (Rescale Slope/Intercept or a Modality LUT Sequence), PS3.3 C.7.6.3.1 and C.11.1.

/// How stored pixel values are laid out in their container (PS3.3 C.7.6.3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLayout {
    /// Bits Allocated (8, 16 or 32).
    pub bits_allocated: u16,
    /// Bits Stored (1..=Bits Allocated).
    pub bits_stored: u16,
    /// Pixel Representation 1: two's complement signed.
    pub signed: bool,
}

impl StoredLayout {
    /// The stored value of one raw sample: masked to Bits Stored, sign-extended when signed.
    ///
    /// Like pydicom, the stored bits are taken as the low `bits_stored` bits (High Bit = Bits Stored − 1).
    pub fn value(&self, raw: u32) -> i64 {
        let bits = u32::from(self.bits_stored.clamp(1, 32));
        let mask: u64 = (1u64 << bits) - 1;
        let v = u64::from(raw) & mask;
        if self.signed && (v >> (bits - 1)) & 1 == 1 {
            v as i64 - (1i64 << bits)
        } else {
            v as i64
        }
    }

    /// Smallest and largest stored value this layout can hold.
    pub fn stored_range(&self) -> (i64, i64) {
        let bits = u32::from(self.bits_stored.clamp(1, 32));
        if self.signed {
            (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
        } else {
            (0, (1i64 << bits) - 1)
        }
    }
}

/// A lookup table as described by a LUT Descriptor (PS3.3 C.11.1.1): entries, first mapped value, bits.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupTable {
    /// Stored value that maps to the first entry.
    pub first_mapped: i64,
    /// Number of bits of each entry (8..=16).
    pub bits: u16,
    /// The entries.
    pub data: Vec<u16>,
    /// LUT Explanation, if given.
    pub explanation: Option<String>,
}

impl LookupTable {
    /// Looks up a value: inputs below the first mapped value take the first entry, above the last the last.
    pub fn lookup(&self, x: i64) -> u16 {
        let Some(last) = self.data.len().checked_sub(1) else {
            return 0;
        };
        let idx = (x - self.first_mapped).clamp(0, last as i64) as usize;
        self.data[idx]
    }

    /// Largest value an entry may take, `2^bits − 1`.
    pub fn max_output(&self) -> f64 {
        ((1u64 << self.bits.clamp(1, 32)) - 1) as f64
    }
}

/// The Modality LUT stage: what turns stored values into modality values.
#[derive(Debug, Clone, PartialEq)]
pub enum ModalityLut {
    /// No Modality LUT: modality values are the stored values.
    Identity,
    /// Rescale Slope and Intercept.
    Rescale {
        /// Rescale Slope (0028,1053).
        slope: f64,
        /// Rescale Intercept (0028,1052).
        intercept: f64,
    },
    /// Modality LUT Sequence (0028,3000).
    Table(LookupTable),
}

impl ModalityLut {
    /// Applies the stage to one stored value. Arithmetic in f64, as pydicom does, then rounded to f32.
    pub fn apply(&self, stored: i64) -> f32 {
        match self {
            ModalityLut::Identity => stored as f32,
            ModalityLut::Rescale { slope, intercept } => (stored as f64 * slope + intercept) as f32,
            ModalityLut::Table(lut) => f32::from(lut.lookup(stored)),
        }
    }

    /// The range of modality values a layout can produce (used as the output range of windowing).
    pub fn output_range(&self, layout: &StoredLayout) -> (f64, f64) {
        let (lo, hi) = layout.stored_range();
        match self {
            ModalityLut::Identity => (lo as f64, hi as f64),
            ModalityLut::Rescale { slope, intercept } => {
                let (a, b) = (lo as f64 * slope + intercept, hi as f64 * slope + intercept);
                (a.min(b), a.max(b))
            }
            ModalityLut::Table(lut) => (0.0, lut.max_output()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_to_bits_stored() {
        let l = StoredLayout {
            bits_allocated: 16,
            bits_stored: 12,
            signed: false,
        };
        assert_eq!(l.value(0xF123), 0x123);
        assert_eq!(l.stored_range(), (0, 4095));
    }

    #[test]
    fn sign_extends_twos_complement() {
        let l = StoredLayout {
            bits_allocated: 16,
            bits_stored: 12,
            signed: true,
        };
        assert_eq!(l.value(0x0FFF), -1);
        assert_eq!(l.value(0x0800), -2048);
        assert_eq!(l.value(0x07FF), 2047);
        // Bits above Bits Stored (e.g. overlay bits) are ignored.
        assert_eq!(l.value(0xF7FF), 2047);
        let full = StoredLayout {
            bits_allocated: 16,
            bits_stored: 16,
            signed: true,
        };
        assert_eq!(full.value(0xFC00), -1024);
    }

    #[test]
    fn rescale_and_table() {
        let r = ModalityLut::Rescale {
            slope: 0.684,
            intercept: 200.0,
        };
        assert_eq!(r.apply(1000), (1000.0f64 * 0.684 + 200.0) as f32);
        let t = ModalityLut::Table(LookupTable {
            first_mapped: 10,
            bits: 16,
            data: vec![5, 6, 7],
            explanation: None,
        });
        assert_eq!(t.apply(0), 5.0);
        assert_eq!(t.apply(11), 6.0);
        assert_eq!(t.apply(1000), 7.0);
    }
}
