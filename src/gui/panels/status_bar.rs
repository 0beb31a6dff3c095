//! The status bar (pixel readout, window, crop-tool hint, the F12 frame-time overlay) and the frame
//! statistics behind it, with the `SACRO_FRAME_BENCH=N` benchmark.

use std::time::Instant;

use egui::{Color32, RichText};

use crate::gui::viewer::ViewState;

/// Frame times and the time from a film's request to its first paint.
#[derive(Debug)]
pub struct FrameStats {
    /// The last 120 frames' UI build times (ms).
    pub frame_ms: Vec<f32>,
    /// When the current film was requested (for the time-to-pixels measurement).
    pub requested_at: Option<(std::path::PathBuf, Instant)>,
    /// Milliseconds from request to first paint of the last film.
    pub last_open_ms: Option<f64>,
    /// Frame benchmark (`SACRO_FRAME_BENCH=N`): frames left, and the intervals measured.
    bench: Option<(usize, Vec<f64>, Option<Instant>)>,
}

impl Default for FrameStats {
    fn default() -> Self {
        Self {
            frame_ms: Vec::new(),
            requested_at: None,
            last_open_ms: None,
            bench: std::env::var("SACRO_FRAME_BENCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(|n| (n, Vec::new(), None)),
        }
    }
}

impl FrameStats {
    /// Records one frame's build time.
    pub fn record_frame(&mut self, started: Instant) {
        self.frame_ms.push(started.elapsed().as_secs_f32() * 1000.0);
        if self.frame_ms.len() > 120 {
            self.frame_ms.remove(0);
        }
    }

    /// The film at `path` was painted: the time since its request, if it was the one requested.
    pub fn painted(&mut self, path: &std::path::Path) {
        if let Some((p, t)) = self.requested_at.take() {
            if p == path {
                self.last_open_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
            } else {
                self.requested_at = Some((p, t));
            }
        }
    }

    /// `SACRO_FRAME_BENCH=N`: once a film is shown, changes the window width every frame (as a
    /// right-drag does) for N frames, then prints the time from request to pixels and the frame
    /// intervals, and closes.
    pub fn bench(
        &mut self,
        ctx: &egui::Context,
        view: Option<&mut ViewState>,
        decode_s: Option<f64>,
    ) {
        let Some((left, intervals, last)) = &mut self.bench else {
            return;
        };
        let Some(view) = view else {
            ctx.request_repaint();
            return;
        };
        let now = Instant::now();
        if let Some(t) = last {
            intervals.push(now.duration_since(*t).as_secs_f64() * 1000.0);
        }
        *last = Some(now);
        view.window.width += 1.0;
        *left = left.saturating_sub(1);
        if *left == 0 {
            let mut v = intervals.clone();
            v.sort_by(f64::total_cmp);
            let pct = |p: f64| {
                v.get(((v.len() as f64 - 1.0) * p) as usize)
                    .copied()
                    .unwrap_or(0.0)
            };
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            let ui_mean = self.frame_ms.iter().sum::<f32>() / self.frame_ms.len().max(1) as f32;
            eprintln!(
                "frame-bench: decode {:.0} ms, request->pixels {:.0} ms; {} frames with a new window each: interval mean {mean:.2} ms, median {:.2}, p95 {:.2}, max {:.2}; ui build {ui_mean:.2} ms",
                decode_s.unwrap_or(0.0) * 1000.0,
                self.last_open_ms.unwrap_or(0.0),
                v.len(),
                pct(0.5),
                pct(0.95),
                pct(1.0)
            );
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            self.bench = None;
        } else {
            ctx.request_repaint();
        }
    }
}

/// What the status bar shows.
#[derive(Debug, Clone, Copy)]
pub struct StatusLine<'a> {
    /// Pixel under the cursor: column, row, modality value.
    pub readout: Option<(u32, u32, f32)>,
    /// The current view.
    pub view: Option<&'a ViewState>,
    /// The crop tool is on.
    pub crop_tool: bool,
    /// The frame-time overlay is on.
    pub show_debug: bool,
    /// The last film's decoding time (s).
    pub decode_s: Option<f64>,
}

/// The bar.
pub fn ui(ui: &mut egui::Ui, line: StatusLine<'_>, stats: &FrameStats) {
    ui.horizontal(|ui| {
        if let Some((x, y, v)) = line.readout {
            ui.monospace(format!("x {x:5}  y {y:5}  value {v:.1}"));
        }
        if let Some(v) = line.view {
            ui.monospace(format!(
                "W {:.0}  L {:.0}{}",
                v.window.width,
                v.window.center,
                if v.invert { "  inverted" } else { "" }
            ));
        }
        if line.crop_tool {
            ui.label(RichText::new("crop tool: drag a rectangle").color(Color32::YELLOW));
        }
        if line.show_debug {
            let n = stats.frame_ms.len().max(1) as f32;
            let mean = stats.frame_ms.iter().sum::<f32>() / n;
            let max = stats.frame_ms.iter().copied().fold(0.0, f32::max);
            ui.monospace(format!(
                "ui {mean:.2} ms (max {max:.2}) over {} frames; decode {:.0} ms; open→pixels {:.0} ms",
                stats.frame_ms.len(),
                line.decode_s.unwrap_or(0.0) * 1000.0,
                stats.last_open_ms.unwrap_or(0.0)
            ));
        }
    });
}
