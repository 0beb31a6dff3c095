//! fastai's `aug_transforms` defaults on greyscale films in [0, 1], seeded: horizontal flip (p 0.5;
//! it swaps the left and right joints, so per-joint labels are swapped too), rotation up to ±10°,
//! zoom 1.0–1.1 and perspective warp up to 0.2 (each with p 0.75), with reflection padding and bilinear
//! sampling; brightness and contrast up to 0.2 (each with p 0.75), applied in logit space as fastai does.

use rand::Rng;

use crate::grading::JointGrades;
use crate::imaging::GreyImage;

/// fastai's `aug_transforms` parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugmentConfig {
    /// Probability of a horizontal flip.
    pub flip_p: f64,
    /// Maximum rotation in degrees.
    pub max_rotate: f64,
    /// Zoom range (≥ 1 zooms in).
    pub zoom: (f64, f64),
    /// Maximum perspective warp (fraction of the half-size).
    pub max_warp: f64,
    /// Maximum brightness/contrast change.
    pub max_lighting: f64,
    /// Probability of each geometric transform.
    pub p_affine: f64,
    /// Probability of each lighting transform.
    pub p_lighting: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip_p: 0.5,
            max_rotate: 10.0,
            zoom: (1.0, 1.1),
            max_warp: 0.2,
            max_lighting: 0.2,
            p_affine: 0.75,
            p_lighting: 0.75,
        }
    }
}

/// A 3×3 projective map of normalised coordinates (−1..1).
type Homography = [[f64; 3]; 3];

fn mul(a: &Homography, b: &Homography) -> Homography {
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// The projective map taking the unit square's corners (0,0), (1,0), (1,1), (0,1) to `q` (Heckbert 1989).
fn square_to_quad(q: [(f64, f64); 4]) -> Homography {
    let [(x0, y0), (x1, y1), (x2, y2), (x3, y3)] = q;
    let (dx1, dx2, sx) = (x1 - x2, x3 - x2, x0 - x1 + x2 - x3);
    let (dy1, dy2, sy) = (y1 - y2, y3 - y2, y0 - y1 + y2 - y3);
    let det = dx1 * dy2 - dx2 * dy1;
    let (g, h) = if det.abs() < 1e-12 {
        (0.0, 0.0)
    } else {
        ((sx * dy2 - dx2 * sy) / det, (dx1 * sy - sx * dy1) / det)
    };
    [
        [x1 - x0 + g * x1, x3 - x0 + h * x3, x0],
        [y1 - y0 + g * y1, y3 - y0 + h * y3, y0],
        [g, h, 1.0],
    ]
}

/// Maps normalised output coordinates to the corners of the quad `q` (in normalised coordinates).
fn warp_map(q: [(f64, f64); 4]) -> Homography {
    // Normalised (−1..1) → unit square, then unit square → quad.
    let to_unit = [[0.5, 0.0, 0.5], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]];
    mul(&square_to_quad(q), &to_unit)
}

fn reflect(v: f64) -> f64 {
    // Reflection padding over [−1, 1].
    let period = 4.0;
    let t = (v + 1.0).rem_euclid(period);
    if t <= 2.0 { t - 1.0 } else { 3.0 - t }
}

fn sample(img: &GreyImage, x: f64, y: f64) -> f32 {
    // x, y normalised (align_corners: −1 is the first pixel's centre, 1 the last's).
    let (w, h) = (f64::from(img.width), f64::from(img.height));
    let px = (reflect(x) + 1.0) / 2.0 * (w - 1.0);
    let py = (reflect(y) + 1.0) / 2.0 * (h - 1.0);
    let (x0, y0) = (px.floor().max(0.0), py.floor().max(0.0));
    let (x1, y1) = ((x0 + 1.0).min(w - 1.0), (y0 + 1.0).min(h - 1.0));
    let (fx, fy) = ((px - x0) as f32, (py - y0) as f32);
    let at = |x: f64, y: f64| img.get(x as u32, y as u32);
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

fn logit(x: f32) -> f32 {
    let x = x.clamp(1e-6, 1.0 - 1e-6);
    (x / (1.0 - x)).ln()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One augmented copy of a film (values in [0, 1]) and its per-joint grades (swapped by a flip).
pub fn augment<R: Rng>(
    image: &GreyImage,
    grades: Option<JointGrades>,
    cfg: &AugmentConfig,
    rng: &mut R,
) -> (GreyImage, Option<JointGrades>) {
    let mut m: Homography = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let flipped = rng.random_bool(cfg.flip_p.clamp(0.0, 1.0));
    if flipped {
        m = mul(&m, &[[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
    }
    let p = cfg.p_affine.clamp(0.0, 1.0);
    if rng.random_bool(p) && cfg.max_rotate > 0.0 {
        let t = rng
            .random_range(-cfg.max_rotate..=cfg.max_rotate)
            .to_radians();
        let (s, c) = t.sin_cos();
        m = mul(&m, &[[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]);
    }
    if rng.random_bool(p) && cfg.zoom.1 > cfg.zoom.0 {
        let z = rng.random_range(cfg.zoom.0..=cfg.zoom.1);
        m = mul(
            &m,
            &[[1.0 / z, 0.0, 0.0], [0.0, 1.0 / z, 0.0], [0.0, 0.0, 1.0]],
        );
    }
    if rng.random_bool(p) && cfg.max_warp > 0.0 {
        let (xm, ym) = (
            rng.random_range(-cfg.max_warp..=cfg.max_warp),
            rng.random_range(-cfg.max_warp..=cfg.max_warp),
        );
        // fastai's Warp: the corners move by (±x_mag, ±y_mag) in a perspective pattern.
        let q = [
            (-1.0 - ym, -1.0 - xm),
            (1.0 + ym, -1.0 + xm),
            (1.0 - ym, 1.0 - xm),
            (-1.0 + ym, 1.0 + xm),
        ];
        m = mul(&m, &warp_map(q));
    }
    let (w, h) = (image.width, image.height);
    let mut pixels = Vec::with_capacity(w as usize * h as usize);
    for py in 0..h {
        let v = if h > 1 {
            f64::from(py) / f64::from(h - 1) * 2.0 - 1.0
        } else {
            0.0
        };
        for px in 0..w {
            let u = if w > 1 {
                f64::from(px) / f64::from(w - 1) * 2.0 - 1.0
            } else {
                0.0
            };
            let d = m[2][0] * u + m[2][1] * v + m[2][2];
            let (x, y) = (
                (m[0][0] * u + m[0][1] * v + m[0][2]) / d,
                (m[1][0] * u + m[1][1] * v + m[1][2]) / d,
            );
            pixels.push(sample(image, x, y));
        }
    }
    // Lighting in logit space (fastai's Brightness and Contrast).
    let pl = cfg.p_lighting.clamp(0.0, 1.0);
    let brightness = (rng.random_bool(pl) && cfg.max_lighting > 0.0).then(|| {
        rng.random_range(0.5 * (1.0 - cfg.max_lighting)..=0.5 * (1.0 + cfg.max_lighting)) as f32
    });
    let contrast = (rng.random_bool(pl) && cfg.max_lighting > 0.0).then(|| {
        let l = (1.0 - cfg.max_lighting).ln();
        rng.random_range(l..=-l).exp() as f32
    });
    if brightness.is_some() || contrast.is_some() {
        for v in &mut pixels {
            let mut z = logit(*v);
            if let Some(b) = brightness {
                z += logit(b);
            }
            if let Some(c) = contrast {
                z *= c;
            }
            *v = sigmoid(z);
        }
    }
    let grades = if flipped {
        grades.map(|g| g.mirrored())
    } else {
        grades
    };
    (
        GreyImage {
            width: w,
            height: h,
            pixels,
        },
        grades,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grading::JointGrade;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ramp(w: u32, h: u32) -> GreyImage {
        GreyImage {
            width: w,
            height: h,
            pixels: (0..w * h)
                .map(|i| (i % w) as f32 / (w - 1) as f32 * 0.8 + 0.1)
                .collect(),
        }
    }

    #[test]
    fn flip_alone_mirrors_the_image_and_swaps_the_joints() {
        let img = ramp(9, 4);
        let cfg = AugmentConfig {
            flip_p: 1.0,
            p_affine: 0.0,
            p_lighting: 0.0,
            ..AugmentConfig::default()
        };
        let grades = JointGrades::new(JointGrade::Normal, JointGrade::Ankylosis);
        let (out, g) = augment(&img, Some(grades), &cfg, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(
            g,
            Some(JointGrades::new(JointGrade::Ankylosis, JointGrade::Normal))
        );
        for y in 0..4 {
            for x in 0..9 {
                assert!((out.get(x, y) - img.get(8 - x, y)).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn nothing_applied_is_the_identity_and_rotation_keeps_the_size() {
        let img = ramp(16, 12);
        let none = AugmentConfig {
            flip_p: 0.0,
            p_affine: 0.0,
            p_lighting: 0.0,
            ..AugmentConfig::default()
        };
        let (same, _) = augment(&img, None, &none, &mut ChaCha8Rng::seed_from_u64(2));
        assert!(
            same.pixels
                .iter()
                .zip(&img.pixels)
                .all(|(a, b)| (a - b).abs() < 1e-5)
        );
        let all = AugmentConfig {
            p_affine: 1.0,
            p_lighting: 1.0,
            ..AugmentConfig::default()
        };
        let (a, _) = augment(&img, None, &all, &mut ChaCha8Rng::seed_from_u64(3));
        let (b, _) = augment(&img, None, &all, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!((a.width, a.height), (16, 12));
        assert_eq!(a, b, "seeded: reproducible");
        assert!(a.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        let (c, _) = augment(&img, None, &all, &mut ChaCha8Rng::seed_from_u64(4));
        assert_ne!(a, c);
    }

    #[test]
    fn homography_maps_the_square_to_the_quad() {
        let q = [(-1.2, -0.9), (1.1, -1.0), (0.9, 1.2), (-1.0, 0.8)];
        let m = warp_map(q);
        for ((u, v), (x, y)) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]
            .into_iter()
            .zip(q)
        {
            let d = m[2][0] * u + m[2][1] * v + m[2][2];
            let (px, py) = (
                (m[0][0] * u + m[0][1] * v + m[0][2]) / d,
                (m[1][0] * u + m[1][1] * v + m[1][2]) / d,
            );
            assert!(
                (px - x).abs() < 1e-9 && (py - y).abs() < 1e-9,
                "({u},{v}) -> ({px},{py}) not ({x},{y})"
            );
        }
    }
}
