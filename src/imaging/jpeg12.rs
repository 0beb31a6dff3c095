//! 12-bit JPEG Extended (DCT, Process 4; transfer syntax 1.2.840.10008.1.2.4.51), greyscale, through
//! libjpeg-turbo 3's TurboJPEG API: the one maintained decoder with 12-bit DCT support (jpeg-decoder
//! and zune-jpeg decode 8-bit DCT only). `turbojpeg-sys` builds libjpeg-turbo from its bundled source
//! (CMake), so no system library is needed.
//!
//! The second module of Sacro with `unsafe` code (after `kernels/gemm.rs`), and only for the foreign
//! calls: the handle lives in a guard that destroys it, every buffer passed is a live slice whose
//! length is passed with it, and the output buffer is sized from the header before decoding (width ×
//! height samples, the pixel limit checked first). Warnings (corrupt data) are errors, but for scan
//! parameters outside the sequential ranges, which libjpeg and dcmtk read past; the number of
//! progressive scans is limited.

#![allow(unsafe_code)]

use turbojpeg_sys as tj;

/// Frees the TurboJPEG instance.
struct Handle(tj::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init, is not null, and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Handle {
    fn error(&self, what: &str) -> String {
        // SAFETY: the handle is valid; tj3GetErrorStr returns a NUL-terminated string owned by it,
        // copied here before the handle can change.
        let msg = unsafe { std::ffi::CStr::from_ptr(tj::tj3GetErrorStr(self.0)) };
        format!("{what}: {}", msg.to_string_lossy())
    }

    fn set(&self, param: tj::TJPARAM, value: i32) -> Result<(), String> {
        // SAFETY: valid handle; plain integers.
        if unsafe { tj::tj3Set(self.0, param as i32, value) } != 0 {
            return Err(self.error("cannot configure the JPEG decoder"));
        }
        Ok(())
    }

    fn get(&self, param: tj::TJPARAM) -> i32 {
        // SAFETY: valid handle; plain integers.
        unsafe { tj::tj3Get(self.0, param as i32) }
    }
}

/// Decodes one greyscale JPEG image of 9 to 12 bits per sample: (width, height, samples row by row).
/// Refuses colour images, other precisions, and images of more than `max_pixels` pixels before
/// allocating them.
pub(super) fn decode_grey(jpeg: &[u8], max_pixels: u64) -> Result<(u32, u32, Vec<u16>), String> {
    // SAFETY: no arguments but the constant.
    let raw = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as i32) };
    if raw.is_null() {
        return Err("cannot start the JPEG decoder".into());
    }
    let h = Handle(raw);
    // Warnings do not stop the decoder, but any warning but one is an error below.
    h.set(tj::TJPARAM_TJPARAM_STOPONWARNING, 0)?;
    h.set(tj::TJPARAM_TJPARAM_SCANLIMIT, 500)?;
    h.set(
        tj::TJPARAM_TJPARAM_MAXPIXELS,
        i32::try_from(max_pixels).unwrap_or(i32::MAX),
    )?;
    // SAFETY: the pointer and length are those of a live slice.
    if unsafe { tj::tj3DecompressHeader(h.0, jpeg.as_ptr(), jpeg.len() as _) } != 0 {
        return Err(h.error("not a readable JPEG stream"));
    }
    let (w, ht) = (
        h.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        h.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    let precision = h.get(tj::TJPARAM_TJPARAM_PRECISION);
    let lossless = h.get(tj::TJPARAM_TJPARAM_LOSSLESS) == 1;
    if !(9..=12).contains(&precision) || lossless {
        return Err(format!(
            "the JPEG stream has {precision}-bit samples{}; 9 to 12-bit DCT expected",
            if lossless { " (lossless)" } else { "" }
        ));
    }
    if h.get(tj::TJPARAM_TJPARAM_COLORSPACE) != tj::TJCS_TJCS_GRAY as i32 {
        return Err("a colour 12-bit JPEG stream; greyscale expected".into());
    }
    let (Ok(width), Ok(height)) = (u32::try_from(w), u32::try_from(ht)) else {
        return Err(format!("the JPEG header gives a size of {w}×{ht}"));
    };
    let n = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 || n > max_pixels {
        return Err(format!(
            "the JPEG header gives {width}×{height} pixels (limit {max_pixels})"
        ));
    }
    let mut out = vec![0i16; n as usize];
    // SAFETY: `out` holds width × height samples, the size the header gives for a greyscale image
    // (pitch = width samples per row); the input is a live slice.
    let rc = unsafe {
        tj::tj3Decompress12(
            h.0,
            jpeg.as_ptr(),
            jpeg.len() as _,
            out.as_mut_ptr(),
            w,
            tj::TJPF_TJPF_GRAY,
        )
    };
    if rc != 0 {
        // SAFETY: valid handle.
        let code = unsafe { tj::tj3GetErrorCode(h.0) };
        let msg = h.error("the JPEG stream does not decode");
        // Scan parameters outside the sequential ranges (Ss, Se, Ah, Al) are a warning libjpeg (and
        // dcmtk's decoder) read past, decoding the scan as sequential; every other warning means
        // corrupt or missing data, and the film is refused rather than shown damaged.
        if code == tj::TJERR_TJERR_WARNING as i32
            && msg.ends_with("Invalid SOS parameters for sequential JPEG")
        {
            tracing::warn!("12-bit JPEG: {msg} (decoded as sequential, as dcmtk does)");
        } else {
            return Err(msg);
        }
    }
    let top = (1i32 << precision) - 1;
    Ok((
        width,
        height,
        out.into_iter()
            .map(|v| i32::from(v).clamp(0, top) as u16)
            .collect(),
    ))
}
