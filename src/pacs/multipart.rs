//! The parts of a `multipart/related` body (RFC 2046), as WADO-RS returns DICOM instances: the boundary
//! from the Content-Type, each part's headers skipped, its bytes returned as a slice of the body (no
//! copies). Anything malformed is an error naming what is wrong, never a panic.

use memchr::memmem;

/// The `boundary` parameter of a Content-Type (quoted or not).
pub fn boundary(content_type: &str) -> Result<String, String> {
    let (kind, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !kind.trim().eq_ignore_ascii_case("multipart/related") {
        return Err(format!(
            "expected a multipart/related answer, got {:?}",
            kind.trim()
        ));
    }
    for p in params.split(';') {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("boundary")
        {
            let b = v.trim().trim_matches('"');
            if b.is_empty() || b.len() > 200 {
                return Err("the multipart boundary is empty or longer than 200 characters".into());
            }
            return Ok(b.to_string());
        }
    }
    Err("the multipart answer names no boundary".into())
}

/// The parts' contents, in order.
pub fn parts<'a>(content_type: &str, body: &'a [u8]) -> Result<Vec<&'a [u8]>, String> {
    let b = boundary(content_type)?;
    let delimiter = format!("--{b}");
    let finder = memmem::Finder::new(delimiter.as_bytes());
    let mut at = finder
        .find(body)
        .ok_or("the multipart body has no boundary line")?
        + delimiter.len();
    let mut out = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(out);
        }
        // The rest of the boundary line, then the part's headers up to an empty line.
        let line_end =
            memmem::find(rest, b"\r\n").ok_or("a multipart boundary line does not end")?;
        let headers_start = at + line_end + 2;
        let headers_end = memmem::find(&body[headers_start..], b"\r\n\r\n")
            .map(|i| headers_start + i + 4)
            .or_else(|| {
                body[headers_start..]
                    .starts_with(b"\r\n")
                    .then_some(headers_start + 2)
            })
            .ok_or("a multipart part's headers do not end")?;
        let next = finder
            .find(&body[headers_end..])
            .map(|i| headers_end + i)
            .ok_or("a multipart part is not closed by a boundary (truncated answer?)")?;
        // The CRLF before the delimiter belongs to it.
        let end = if next >= headers_end + 2 && &body[next - 2..next] == b"\r\n" {
            next - 2
        } else {
            next
        };
        out.push(&body[headers_end..end]);
        at = next + delimiter.len();
        if out.len() > 100_000 {
            return Err("more than 100,000 parts in one answer".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/related; type=\"application/dicom\"; boundary=\"XyZ\"";

    #[test]
    fn parts_come_back_byte_for_byte() {
        let body = b"--XyZ\r\nContent-Type: application/dicom\r\n\r\nAB\r\nC--X\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\n\x00\x01\r\n--XyZ--\r\n";
        let got = parts(CT, body).expect("parts");
        assert_eq!(got, vec![&b"AB\r\nC--X"[..], &b"\x00\x01"[..]]);
    }

    #[test]
    fn malformed_answers_are_errors() {
        for (ct, body) in [
            ("application/json", &b"{}"[..]),
            ("multipart/related; type=x", &b"--a\r\n\r\nx\r\n--a--"[..]),
            (CT, &b"no boundary here"[..]),
            (CT, &b"--XyZ\r\nContent-Type: x\r\n\r\ntruncated"[..]),
            (CT, &b"--XyZ"[..]),
            (CT, &b"--XyZ\r\nheaders never end"[..]),
        ] {
            assert!(parts(ct, body).is_err(), "{ct} {body:?}");
        }
        assert_eq!(parts(CT, b"--XyZ--").expect("empty").len(), 0);
    }
}
