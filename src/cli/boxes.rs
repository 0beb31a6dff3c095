//! Joint boxes on the command line: `sacro read … --left-box X,Y,W,H --right-box …` and
//! `sacro study export --boxes FILE`.

use std::path::Path;

use anyhow::bail;
use sacro::imaging::{self, LoadOptions};
use sacro::session::joint_boxes::{Side, box_text};
use sacro::session::{CropRect, Study, csv_io};

/// A box given on the command line: X,Y,W,H, or none (remove it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxArg(pub Option<CropRect>);

/// Parses `X,Y,W,H` (film pixels), or `none` to remove a box.
pub fn parse_box(s: &str) -> Result<BoxArg, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(BoxArg(None));
    }
    let v: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{s:?}: X,Y,W,H in film pixels (whole numbers), or none"))?;
    match v[..] {
        [x, y, width, height] => Ok(BoxArg(Some(CropRect {
            x,
            y,
            width,
            height,
        }))),
        _ => Err(format!("{s:?}: four numbers X,Y,W,H, or none")),
    }
}

/// Sets the reader's boxes of a case; a box must lie inside the case's film (read here where the film
/// is on this machine).
pub fn set(
    store: &Study,
    reader: &str,
    case: &str,
    boxes: [Option<BoxArg>; 2],
) -> anyhow::Result<()> {
    // The film is read only to check a box drawn on it (not to remove one).
    let drawn = boxes.iter().any(|b| matches!(b, Some(BoxArg(Some(_)))));
    let film = store
        .resolve(&store.case(case)?)
        .filter(|p| drawn && p.is_file())
        .map(|p| imaging::load(&p, &LoadOptions::default()))
        .transpose()?;
    for (side, rect) in Side::BOTH.into_iter().zip(boxes) {
        let Some(BoxArg(rect)) = rect else { continue };
        if let (Some(r), Some(f)) = (&rect, &film) {
            let (w, h) = (f.image.width, f.image.height);
            if u64::from(r.x) + u64::from(r.width) > u64::from(w)
                || u64::from(r.y) + u64::from(r.height) > u64::from(h)
            {
                bail!(
                    "the {} joint box {} is not inside case {case}'s {w}×{h} film",
                    side.as_str(),
                    box_text(r)
                );
            }
        }
        store.set_joint_box(reader, case, side, rect)?;
        match rect {
            Some(r) => say!(
                "{} joint box of {case} for {reader}: {}",
                side.as_str(),
                box_text(&r)
            ),
            None => say!("{} joint box of {case} for {reader} removed", side.as_str()),
        }
    }
    Ok(())
}

/// `sacro study export --boxes FILE`.
pub fn export(store: &Study, out: &Path) -> anyhow::Result<()> {
    let boxes = store.all_joint_boxes()?;
    if boxes.is_empty() {
        bail!("{}: no joint boxes drawn yet", store.location());
    }
    csv_io::write_joint_boxes(out, &boxes)?;
    say!(
        "wrote {} ({} boxes and their consensus)",
        out.display(),
        boxes.len()
    );
    Ok(())
}
