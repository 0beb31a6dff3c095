//! The crop of one sacroiliac joint for a per-joint grader: a square around the joint's box with a margin,
//! inside the film, at the film's own resolution, mirrored for one side so that both joints face the same
//! way, then resized to the network's input; and the mapping of points and boxes between the film and the
//! crop, both ways (a box drawn on the film maps into the crop, and what a network finds in the crop maps
//! back onto the film).
//!
//! Coordinates are continuous pixel coordinates: pixel (i, j) covers [i, i + 1) × [j, j + 1).

use super::ImagingError;
use super::geometry::{GreyImage, Rect};

/// A box in continuous pixel coordinates: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoxF {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl From<Rect> for BoxF {
    fn from(r: Rect) -> Self {
        Self {
            x: f64::from(r.x),
            y: f64::from(r.y),
            w: f64::from(r.width),
            h: f64::from(r.height),
        }
    }
}

/// Where a joint's crop lies in the film and how it maps to the grader's input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JointCrop {
    /// The square region of the film (pixels).
    pub region: Rect,
    /// Mirrored left–right after cropping.
    pub mirrored: bool,
    /// The side of the crop after resizing.
    pub size: u32,
}

impl JointCrop {
    /// The square around `joint` (a box in the `width × height` film) widened by `margin` (a fraction of
    /// the box's longer side on each side), moved inside the film where it would stick out (at most the
    /// film's shorter side), resized to `size`. A box that is empty or not inside the film is refused.
    pub fn around(
        (width, height): (u32, u32),
        joint: Rect,
        margin: f64,
        size: u32,
        mirrored: bool,
    ) -> Result<Self, ImagingError> {
        let bad = |what: String| Err(ImagingError::InvalidParameter(what));
        if joint.width == 0 || joint.height == 0 {
            return bad(format!(
                "joint box {}×{} at ({}, {}) is empty",
                joint.width, joint.height, joint.x, joint.y
            ));
        }
        if u64::from(joint.x) + u64::from(joint.width) > u64::from(width)
            || u64::from(joint.y) + u64::from(joint.height) > u64::from(height)
        {
            return bad(format!(
                "joint box {}×{} at ({}, {}) is not inside the {width}×{height} film",
                joint.width, joint.height, joint.x, joint.y
            ));
        }
        if !margin.is_finite() || !(0.0..=4.0).contains(&margin) || size == 0 {
            return bad(format!(
                "joint crop margin {margin} (0–4) or size {size} (≥ 1) out of range"
            ));
        }
        let longer = f64::from(joint.width.max(joint.height));
        let side =
            ((longer * (1.0 + 2.0 * margin)).ceil() as u64).min(u64::from(width.min(height)));
        let side = side as u32;
        let centre = |start: u32, len: u32, limit: u32| {
            let c = f64::from(start) + f64::from(len) / 2.0;
            let s = (c - f64::from(side) / 2.0).round().max(0.0) as u32;
            s.min(limit - side)
        };
        Ok(Self {
            region: Rect {
                x: centre(joint.x, joint.width, width),
                y: centre(joint.y, joint.height, height),
                width: side,
                height: side,
            },
            mirrored,
            size,
        })
    }

    fn scale(&self) -> f64 {
        f64::from(self.size) / f64::from(self.region.width)
    }

    /// A film point in the crop.
    pub fn to_crop(&self, x: f64, y: f64) -> (f64, f64) {
        let s = self.scale();
        let u = (x - f64::from(self.region.x)) * s;
        let v = (y - f64::from(self.region.y)) * s;
        (
            if self.mirrored {
                f64::from(self.size) - u
            } else {
                u
            },
            v,
        )
    }

    /// A crop point on the film.
    pub fn to_film(&self, u: f64, v: f64) -> (f64, f64) {
        let s = self.scale();
        let u = if self.mirrored {
            f64::from(self.size) - u
        } else {
            u
        };
        (
            u / s + f64::from(self.region.x),
            v / s + f64::from(self.region.y),
        )
    }

    fn map_box(b: BoxF, f: impl Fn(f64, f64) -> (f64, f64)) -> BoxF {
        let (x0, y0) = f(b.x, b.y);
        let (x1, y1) = f(b.x + b.w, b.y + b.h);
        BoxF {
            x: x0.min(x1),
            y: y0.min(y1),
            w: (x1 - x0).abs(),
            h: (y1 - y0).abs(),
        }
    }

    /// A film box in the crop.
    pub fn box_to_crop(&self, b: BoxF) -> BoxF {
        Self::map_box(b, |x, y| self.to_crop(x, y))
    }

    /// A crop box on the film.
    pub fn box_to_film(&self, b: BoxF) -> BoxF {
        Self::map_box(b, |u, v| self.to_film(u, v))
    }

    /// The crop of `film`: the region at the film's resolution, resized to `size × size`, mirrored where
    /// asked.
    pub fn extract(&self, film: &GreyImage) -> Result<GreyImage, ImagingError> {
        let mut out = film.crop(self.region)?.resize(self.size, self.size)?;
        if self.mirrored {
            let w = self.size as usize;
            for row in out.pixels.chunks_exact_mut(w) {
                row.reverse();
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joint() -> Rect {
        Rect {
            x: 700,
            y: 400,
            width: 120,
            height: 200,
        }
    }

    #[test]
    fn a_box_maps_into_the_crop_and_back() {
        for mirrored in [false, true] {
            let c = JointCrop::around((1000, 900), joint(), 0.25, 224, mirrored).expect("crop");
            // 200 × 1.5 = 300, centred on (760, 500), inside the film.
            assert_eq!(
                c.region,
                Rect {
                    x: 610,
                    y: 350,
                    width: 300,
                    height: 300
                }
            );
            let b = BoxF::from(joint());
            let inside = c.box_to_crop(b);
            assert!(
                inside.x >= 0.0 && inside.x + inside.w <= 224.0,
                "{inside:?}"
            );
            let back = c.box_to_film(inside);
            for (a, z) in [(back.x, b.x), (back.y, b.y), (back.w, b.w), (back.h, b.h)] {
                assert!((a - z).abs() < 1e-9, "{back:?} vs {b:?}");
            }
            // Mirroring moves the box to the other side of the crop.
            let (u, _) = c.to_crop(700.0, 400.0);
            let expected = (700.0 - 610.0) * 224.0 / 300.0;
            let u_want = if mirrored { 224.0 - expected } else { expected };
            assert!((u - u_want).abs() < 1e-9);
        }
    }

    #[test]
    fn the_crop_holds_what_the_film_holds_there_mirrored_for_one_side() {
        let mut film = GreyImage::filled(400, 300, 0.0);
        // A bright 4×4 square at (330, 120)–(334, 124).
        for y in 120..124 {
            for x in 330..334 {
                film.pixels[y * 400 + x] = 1.0;
            }
        }
        let joint = Rect {
            x: 300,
            y: 100,
            width: 60,
            height: 60,
        };
        for mirrored in [false, true] {
            let c = JointCrop::around((400, 300), joint, 0.0, 120, mirrored).expect("crop");
            let crop = c.extract(&film).expect("extract");
            let (i, _) = crop
                .pixels
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .expect("max");
            let (cu, cv) = ((i % 120) as f64 + 0.5, (i / 120) as f64 + 0.5);
            let (fx, fy) = c.to_film(cu, cv);
            assert!(
                (330.0..334.0).contains(&fx) && (120.0..124.0).contains(&fy),
                "mirrored {mirrored}: the brightest crop pixel maps to ({fx}, {fy})"
            );
        }
    }

    #[test]
    fn near_the_edge_the_square_moves_inside_and_bad_boxes_are_refused() {
        let edge = Rect {
            x: 0,
            y: 850,
            width: 50,
            height: 50,
        };
        let c = JointCrop::around((1000, 900), edge, 0.5, 64, false).expect("crop");
        assert_eq!(
            c.region,
            Rect {
                x: 0,
                y: 800,
                width: 100,
                height: 100
            }
        );
        // A square larger than the film shrinks to the film's shorter side.
        let c = JointCrop::around(
            (100, 80),
            Rect {
                x: 10,
                y: 10,
                width: 60,
                height: 60,
            },
            1.0,
            32,
            false,
        )
        .expect("crop");
        assert_eq!(c.region.width, 80);
        let empty = Rect { width: 0, ..edge };
        assert!(JointCrop::around((1000, 900), empty, 0.1, 64, false).is_err());
        let outside = Rect { x: 990, ..edge };
        let err = JointCrop::around((1000, 900), outside, 0.1, 64, false).expect_err("outside");
        assert!(
            err.to_string().contains("not inside the 1000×900 film"),
            "{err}"
        );
        assert!(JointCrop::around((1000, 900), edge, f64::NAN, 64, false).is_err());
        assert!(JointCrop::around((1000, 900), edge, 0.1, 0, false).is_err());
    }
}
