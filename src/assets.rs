//! Files compiled into the binary.

/// DejaVu Sans (see `assets/fonts/DejaVu-LICENSE.txt`): plot labels and the phantoms' burned-in text.
pub const DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
