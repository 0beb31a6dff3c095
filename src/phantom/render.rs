//! Procedural anteroposterior pelvic radiograph: anatomy as an attenuation map in anatomical coordinates
//! (x to the viewer's right, y down, the pelvis spanning about −1..1), a random rigid jitter, blur, an
//! exposure-dependent log detector with an S-shaped response, quantum noise, collimation, and burned-in text.
//!
//! The two sacroiliac joints are drawn from their grades (see [`JointLook`]); everything else is
//! independent of the grades, so that nothing outside the joints tells definite from non-definite films.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::grading::JointGrade;
use crate::imaging::{GreyImage, Rect};

/// Top and bottom of the sacroiliac joints (anatomical y).
const JOINT_Y: (f64, f64) = (-0.42, -0.02);
/// Normal joint space width (anatomical units; ≈ 3 mm on a 40 cm field).
const JOINT_WIDTH: f64 = 0.0150;

fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// 1 inside, 0 outside, with a soft edge of width `soft` (signed distance `d`, negative inside).
fn inside(d: f64, soft: f64) -> f64 {
    1.0 - smoothstep(-soft, soft, d)
}

fn ellipse_sd(x: f64, y: f64, cx: f64, cy: f64, rx: f64, ry: f64) -> f64 {
    let (u, v) = ((x - cx) / rx, (y - cy) / ry);
    ((u * u + v * v).sqrt() - 1.0) * rx.min(ry)
}

fn capsule_sd(x: f64, y: f64, a: (f64, f64), b: (f64, f64), r: f64) -> f64 {
    let (px, py) = (x - a.0, y - a.1);
    let (bx, by) = (b.0 - a.0, b.1 - a.1);
    let h = ((px * bx + py * by) / (bx * bx + by * by)).clamp(0.0, 1.0);
    ((px - bx * h).powi(2) + (py - by * h).powi(2)).sqrt() - r
}

fn box_sd(x: f64, y: f64, cx: f64, cy: f64, hx: f64, hy: f64, round: f64) -> f64 {
    let (qx, qy) = ((x - cx).abs() - hx + round, (y - cy).abs() - hy + round);
    (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt() + qx.max(qy).min(0.0) - round
}

/// How one joint looks, drawn at random for its grade.
#[derive(Debug, Clone)]
pub struct JointLook {
    grade: u8,
    wobble: [(f64, f64, f64); 3],
    edge: f64,
    width_segments: Vec<(f64, f64, f64)>,
    erosions: Vec<(f64, f64, f64)>,
    sclerosis: Vec<(f64, f64, f64, f64, f64)>,
    residual: f64,
}

impl JointLook {
    /// Draws the look of a joint of `grade`:
    /// 0 crisp regular line of normal width; 1 slight blurring and irregularity; 2 a few small erosions
    /// or a local sclerosis, width unchanged; 3 many erosions, subchondral sclerosis, widening or narrowing,
    /// partial bridging; 4 the joint line gone (total ankylosis).
    pub fn new(grade: JointGrade, rng: &mut ChaCha8Rng) -> Self {
        let g = grade.value();
        let amp = [0.0, 0.0022, 0.0028, 0.0045, 0.003][usize::from(g)];
        let wobble = [0; 3].map(|_| {
            (
                amp * rng.random_range(0.5..1.0),
                rng.random_range(8.0..30.0),
                rng.random_range(0.0..std::f64::consts::TAU),
            )
        });
        let edge =
            [0.0012, 0.0034, 0.0034, 0.0045, 0.004][usize::from(g)] * rng.random_range(0.85..1.15);
        let mut width_segments = Vec::new();
        let mut erosions = Vec::new();
        let mut sclerosis = Vec::new();
        let mut residual = 0.0;
        let erosion = |rng: &mut ChaCha8Rng, lo: f64, hi: f64, both: bool| {
            let side = if both && rng.random_bool(0.4) {
                -1.0
            } else {
                1.0
            };
            (rng.random_range(0.05..0.95), side, rng.random_range(lo..hi))
        };
        match g {
            2 => {
                if rng.random_bool(0.6) {
                    for _ in 0..rng.random_range(2..=3) {
                        erosions.push(erosion(rng, 0.005, 0.009, false));
                    }
                }
                if erosions.is_empty() || rng.random_bool(0.4) {
                    let t0 = rng.random_range(0.1..0.6);
                    sclerosis.push((t0, t0 + rng.random_range(0.15..0.3), 1.0, 0.22, 0.025));
                }
            }
            3 => {
                for _ in 0..rng.random_range(6..=10) {
                    erosions.push(erosion(rng, 0.008, 0.016, true));
                }
                sclerosis.push((
                    0.0,
                    1.0,
                    1.0,
                    rng.random_range(0.35..0.5),
                    rng.random_range(0.035..0.06),
                ));
                sclerosis.push((
                    0.0,
                    1.0,
                    -1.0,
                    rng.random_range(0.15..0.3),
                    rng.random_range(0.02..0.04),
                ));
                let factor = if rng.random_bool(0.55) {
                    rng.random_range(1.6..2.1)
                } else {
                    rng.random_range(0.4..0.6)
                };
                width_segments.push((0.0, 1.0, factor));
                for _ in 0..rng.random_range(1..=2) {
                    let t0 = rng.random_range(0.0..0.8);
                    width_segments.push((t0, t0 + rng.random_range(0.08..0.18), 0.0));
                }
            }
            4 => {
                width_segments.push((0.0, 1.0, 0.0));
                sclerosis.push((0.0, 1.0, 1.0, rng.random_range(0.15..0.3), 0.05));
                sclerosis.push((0.0, 1.0, -1.0, rng.random_range(0.1..0.2), 0.04));
                residual = rng.random_range(0.0..0.06);
            }
            _ => {}
        }
        Self {
            grade: g,
            wobble,
            edge,
            width_segments,
            erosions,
            sclerosis,
            residual,
        }
    }

    fn centre(&self, t: f64) -> f64 {
        let base = 0.245 - 0.085 * t + 0.03 * (std::f64::consts::PI * t).sin();
        base + self
            .wobble
            .iter()
            .map(|(a, f, p)| a * (f * t + p).sin())
            .sum::<f64>()
    }

    fn half_gap(&self, t: f64) -> f64 {
        // Later segments override earlier ones (bridges over a widened joint).
        let factor = self
            .width_segments
            .iter()
            .rev()
            .find(|(t0, t1, _)| (*t0..=*t1).contains(&t))
            .map_or(1.0, |s| s.2);
        JOINT_WIDTH / 2.0 * factor
    }
}

/// Everything random about one film apart from the joints.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Image side in pixels.
    pub size: u32,
    rotation: f64,
    scale: f64,
    offset: (f64, f64),
    exposure: f64,
    mu: f64,
    noise: f64,
    response: (f64, f64),
    collimation: (f64, f64, f64, f64),
    gas: Vec<(f64, f64, f64, f64)>,
    texture_seed: u64,
    noise_seed: u64,
    /// Joints: [viewer's left (patient's right), viewer's right (patient's left)].
    pub joints: [JointLook; 2],
}

impl Scene {
    /// Draws a scene; `right`/`left` are the patient's joints (the patient's right is on the viewer's left).
    pub fn new(size: u32, right: JointGrade, left: JointGrade, rng: &mut ChaCha8Rng) -> Self {
        let joints = [JointLook::new(right, rng), JointLook::new(left, rng)];
        let gas = (0..rng.random_range(4..12))
            .map(|_| {
                (
                    rng.random_range(-0.55..0.55),
                    rng.random_range(-0.8..0.25),
                    rng.random_range(0.025..0.09),
                    rng.random_range(0.08..0.3),
                )
            })
            .collect();
        Self {
            size,
            rotation: rng.random_range(-0.05..0.05),
            scale: rng.random_range(0.86..0.98),
            offset: (rng.random_range(-0.04..0.04), rng.random_range(-0.04..0.04)),
            exposure: rng.random_range(0.7..1.4),
            mu: rng.random_range(1.0..1.3),
            noise: rng.random_range(0.012..0.025),
            response: (rng.random_range(1.0..1.4), rng.random_range(1.15..1.45)),
            collimation: (
                rng.random_range(-0.99..-0.9),
                rng.random_range(-0.99..-0.92),
                rng.random_range(0.9..0.99),
                rng.random_range(0.92..0.99),
            ),
            gas,
            texture_seed: rng.random(),
            noise_seed: rng.random(),
            joints,
        }
    }

    /// Normalised image coordinates (−1..1) to anatomical ones.
    fn to_anatomy(&self, nx: f64, ny: f64) -> (f64, f64) {
        let (x, y) = (nx - self.offset.0, ny - self.offset.1);
        let (s, c) = self.rotation.sin_cos();
        ((c * x + s * y) / self.scale, (-s * x + c * y) / self.scale)
    }

    /// Anatomical coordinates to pixel coordinates.
    fn to_pixel(&self, ax: f64, ay: f64) -> (f64, f64) {
        let (s, c) = self.rotation.sin_cos();
        let (x, y) = (ax * self.scale, ay * self.scale);
        let (nx, ny) = (c * x - s * y + self.offset.0, s * x + c * y + self.offset.1);
        let half = f64::from(self.size) / 2.0;
        ((nx + 1.0) * half - 0.5, (ny + 1.0) * half - 0.5)
    }

    /// The pixel rectangle around joint `side` (0 viewer's left, 1 viewer's right), with a margin.
    pub fn joint_region(&self, side: usize) -> Rect {
        let sigma = if side == 0 { -1.0 } else { 1.0 };
        let look = &self.joints[side];
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for k in 0..=20 {
            let t = f64::from(k) / 20.0;
            let ay = JOINT_Y.0 + t * (JOINT_Y.1 - JOINT_Y.0);
            let ax = sigma * look.centre(t);
            for (dx, dy) in [(-0.05, -0.03), (0.05, -0.03), (-0.05, 0.03), (0.05, 0.03)] {
                let (px, py) = self.to_pixel(ax + dx, ay + dy);
                x0 = x0.min(px);
                y0 = y0.min(py);
                x1 = x1.max(px);
                y1 = y1.max(py);
            }
        }
        let max = f64::from(self.size - 1);
        let (x0, y0) = (x0.clamp(0.0, max).floor(), y0.clamp(0.0, max).floor());
        let (x1, y1) = (x1.clamp(0.0, max).ceil(), y1.clamp(0.0, max).ceil());
        Rect {
            x: x0 as u32,
            y: y0 as u32,
            width: (x1 - x0) as u32 + 1,
            height: (y1 - y0) as u32 + 1,
        }
    }

    /// Attenuation (bone and soft-tissue thickness, arbitrary units) at an anatomical point; `texture`
    /// modulates bone density.
    fn attenuation(&self, ax: f64, ay: f64, texture: f64) -> f64 {
        let soft = 0.004;
        let mut a = 0.55 * inside(ellipse_sd(ax, ay, 0.0, 0.08, 0.95, 1.2), 0.05);
        for &(gx, gy, r, amp) in &self.gas {
            let d2 = (ax - gx).powi(2) + (ay - gy).powi(2);
            if d2 < 9.0 * r * r {
                a -= amp * (-d2 / (2.0 * r * r)).exp();
            }
        }
        let m = ax.abs();
        let mut bone = 0.0;
        // Lumbar vertebrae L4 and L5 with transverse processes and pedicles.
        for (cy, hw) in [(-0.86, 0.135), (-0.64, 0.14)] {
            let d = box_sd(ax, ay, 0.0, cy, hw, 0.085, 0.03);
            bone += 0.6 * inside(d, soft) + 0.25 * inside(d.abs() - 0.012, soft);
            bone += 0.35 * inside(box_sd(m, ay, hw + 0.07, cy, 0.08, 0.022, 0.015), soft);
            bone -= 0.12 * inside(ellipse_sd(m, ay, 0.075, cy - 0.02, 0.025, 0.035), soft);
        }
        // Sacrum and ilia, split at the joints.
        let side = usize::from(ax >= 0.0);
        let look = &self.joints[side];
        let t = (ay - JOINT_Y.0) / (JOINT_Y.1 - JOINT_Y.0);
        let tc = t.clamp(0.0, 1.0);
        let centre = look.centre(tc);
        let gap = look.half_gap(tc);
        let (sacral_border, iliac_border) = if t < 0.0 {
            let up = JOINT_Y.0 - ay;
            (centre - gap + 0.15 * up, centre + gap + 0.9 * up)
        } else if t > 1.0 {
            let down = ay - JOINT_Y.1;
            (
                (centre - gap - 0.6 * down).max(0.03),
                centre + gap + 1.1 * down,
            )
        } else {
            (centre - gap, centre + gap)
        };
        let d = m - centre; // signed distance across the joint, positive towards the ilium
        let edge = if (0.0..=1.0).contains(&t) {
            look.edge
        } else {
            soft
        };
        let in_sacrum_height = (-0.52..0.22).contains(&ay);
        let mut sacrum = if in_sacrum_height {
            inside(m - sacral_border, edge) * inside(ay - 0.22, soft) * inside(-0.52 - ay, soft)
        } else {
            0.0
        };
        let wing = inside(ellipse_sd(m, ay, 0.5, -0.32, 0.43, 0.39), soft);
        let body = inside(capsule_sd(m, ay, (0.47, -0.05), (0.45, 0.36), 0.15), soft);
        let mut ilium = inside(iliac_border - m, edge) * wing.max(body);
        // Erosions remove bone at the joint margins.
        if (0.0..=1.0).contains(&t) {
            for &(te, s, r) in &look.erosions {
                let dy = (t - te) * (JOINT_Y.1 - JOINT_Y.0);
                let dd = d - s * (gap + 0.3 * r);
                let hole = inside((dy * dy + dd * dd).sqrt() - r, 0.002);
                if s > 0.0 {
                    ilium *= 1.0 - hole;
                } else {
                    sacrum *= 1.0 - hole;
                }
            }
        }
        bone += 0.7 * sacrum;
        // Sacral foramina.
        for fy in [-0.36, -0.23, -0.1, 0.03] {
            bone -= 0.3 * sacrum * inside(ellipse_sd(m, ay, 0.085, fy, 0.024, 0.022), soft);
        }
        let near_joint = (-(d - gap).max(0.0) / 0.09).exp();
        bone += ilium * (0.42 + 0.38 * near_joint);
        bone +=
            0.28 * inside(
                (ellipse_sd(m, ay, 0.5, -0.32, 0.43, 0.39)).abs() - 0.02,
                soft,
            ) * inside(ay + 0.3, soft);
        if (0.0..=1.0).contains(&t) {
            for &(t0, t1, s, amp, width) in &look.sclerosis {
                let along = smoothstep(t0 - 0.05, t0 + 0.05, t)
                    * (1.0 - smoothstep(t1 - 0.05, t1 + 0.05, t));
                let across = s * d - gap;
                if across > 0.0 && across < 2.0 * width {
                    bone += amp * along * (-(across / width).powi(2)).exp();
                }
            }
            if look.grade == 4 && look.residual > 0.0 {
                bone -= look.residual * (-(d / 0.003).powi(2)).exp();
            }
        }
        // Hips: femoral heads, acetabular roofs, necks, trochanters, shafts; obturator rings; symphysis.
        let head = ellipse_sd(m, ay, 0.44, 0.5, 0.12, 0.12);
        bone += 0.8
            * inside(head, soft)
            * (1.0 - ((head + 0.12) / 0.12).clamp(0.0, 1.0).powi(2))
                .sqrt()
                .max(0.3);
        let roof = ellipse_sd(m, ay, 0.44, 0.5, 0.145, 0.145);
        bone += 0.3 * inside(roof.abs() - 0.012, soft) * inside(ay - 0.47, soft);
        bone += 0.65 * inside(capsule_sd(m, ay, (0.44, 0.5), (0.62, 0.72), 0.065), soft);
        bone += 0.5 * inside(ellipse_sd(m, ay, 0.67, 0.66, 0.075, 0.09), soft);
        let shaft = capsule_sd(m, ay, (0.64, 0.72), (0.6, 1.4), 0.075);
        bone += 0.55 * inside(shaft, soft)
            + 0.3 * inside(shaft.abs() - 0.015, soft) * inside(shaft, soft);
        let ring = ellipse_sd(m, ay, 0.22, 0.71, 0.105, 0.085);
        bone += 0.55
            * inside(ring.abs() - 0.03, soft)
            * inside(ring - 0.03, soft)
            * (1.0 - inside(ring, soft));
        bone += 0.55 * inside(box_sd(m, ay, 0.055, 0.71, 0.04, 0.075, 0.02), soft);
        a + bone.max(0.0) * (1.0 + 0.15 * texture)
    }

    /// Renders the film: detector values in [0, 1] (1 = most attenuation, shown white in MONOCHROME2).
    pub fn render(&self) -> GreyImage {
        let n = self.size as usize;
        // Low-frequency bone texture: a coarse random field, enlarged.
        let mut trng = ChaCha8Rng::seed_from_u64(self.texture_seed);
        let coarse = GreyImage {
            width: 48,
            height: 48,
            pixels: (0..48 * 48)
                .map(|_| trng.random_range(-1.0f32..1.0))
                .collect(),
        };
        // Anatomy is smooth at the scale of a pixel on large films: above 1200 px it is evaluated on a grid
        // of half the size and enlarged bilinearly (noise is added at full resolution below).
        let m = if n > 1200 { n.div_ceil(2) } else { n };
        let texture = coarse
            .resize(m as u32, m as u32)
            .unwrap_or_else(|_| GreyImage::filled(m as u32, m as u32, 0.0));
        let att: Vec<f32> = (0..m * m)
            .into_par_iter()
            .with_min_len(m)
            .map(|i| {
                let (px, py) = ((i % m) as f64, (i / m) as f64);
                let nx = (px + 0.5) / m as f64 * 2.0 - 1.0;
                let ny = (py + 0.5) / m as f64 * 2.0 - 1.0;
                let (ax, ay) = self.to_anatomy(nx, ny);
                self.attenuation(ax, ay, f64::from(texture.pixels[i])) as f32
            })
            .collect();
        // Unsharpness of focal spot and detector.
        let sigma = (m as f32 * 0.0007).max(0.6);
        let buf =
            image::ImageBuffer::<image::Luma<f32>, Vec<f32>>::from_raw(m as u32, m as u32, att);
        let blurred = buf
            .map(|b| image::imageops::fast_blur(&b, sigma).into_raw())
            .unwrap_or_default();
        let blurred = if m == n {
            blurred
        } else {
            GreyImage {
                width: m as u32,
                height: m as u32,
                pixels: blurred,
            }
            .resize(self.size, self.size)
            .map(|g| g.pixels)
            .unwrap_or_else(|_| vec![0.0; n * n])
        };
        // Log detector with an S-shaped response, quantum noise rising where fewer photons arrive.
        let (slope, mid) = self.response;
        let (cx0, cy0, cx1, cy1) = self.collimation;
        let pixels: Vec<f32> = blurred
            .par_chunks(n)
            .enumerate()
            .flat_map_iter(|(row, line)| {
                let mut rng = ChaCha8Rng::seed_from_u64(
                    self.noise_seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let ny = (row as f64 + 0.5) / n as f64 * 2.0 - 1.0;
                line.iter()
                    .enumerate()
                    .map(|(col, &a)| {
                        let nx = (col as f64 + 0.5) / n as f64 * 2.0 - 1.0;
                        let z: f64 = rng.sample(StandardNormal);
                        if nx < cx0 || nx > cx1 || ny < cy0 || ny > cy1 {
                            return (0.97 + 0.004 * z) as f32;
                        }
                        let log_signal = self.mu * f64::from(a) - self.exposure.ln();
                        let noisy = log_signal
                            + self.noise * (0.5 * log_signal).exp() / self.exposure.sqrt() * z;
                        let y = 1.0 / (1.0 + (-(noisy - mid) * slope).exp());
                        (0.03 + 0.92 * y) as f32
                    })
                    .collect::<Vec<f32>>()
            })
            .collect();
        GreyImage {
            width: self.size,
            height: self.size,
            pixels,
        }
    }
}
