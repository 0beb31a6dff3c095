//! The radiograph viewer: the film's modality values are uploaded once as a 32-bit float texture, and
//! window/level, inversion and the heatmap overlay are applied in a WGSL fragment shader through an
//! `egui_wgpu` paint callback, so dragging the window costs one uniform write per frame. Zoom about the
//! cursor, pan, fit and 1:1, a crop-rectangle tool, and a pixel readout under the cursor.

mod film;
mod gpu;

use std::sync::Arc;

use eframe::egui_wgpu;
use egui::{Color32, PointerButton, Pos2, Rect, Sense, Stroke, Vec2};

use crate::imaging::voi::VoiFunction;
use crate::session::CropRect;
pub use film::{Film, Heatmap, MAX_TEXTURE_SIDE, ViewState};
pub use gpu::install;
use gpu::{Paint, Uniforms};

/// What the viewer reports back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ViewerOutput {
    /// Pixel under the cursor: column, row, modality value.
    pub readout: Option<(u32, u32, f32)>,
    /// A crop rectangle was drawn.
    pub new_crop: Option<CropRect>,
    /// The view rectangle in points.
    pub rect: Option<Rect>,
}

/// Shows `film` filling `ui`'s available space. `drawing`: a left drag draws a rectangle (the crop or a
/// joint box, [`ViewerOutput::new_crop`]) instead of panning. `outlines`: rectangles in film pixels drawn
/// over the film in their colours (the case's crop, joint boxes).
pub fn show(
    ui: &mut egui::Ui,
    film: &Film,
    view: &mut ViewState,
    heat: Option<&Heatmap>,
    drawing: bool,
    outlines: &[(CropRect, Color32)],
) -> ViewerOutput {
    let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    let r = &film.radiograph;
    let (w, h) = (r.width() as f32, r.height() as f32);
    let fit = (rect.width() / w).min(rect.height() / h) * 0.98;
    let mut scale = view.zoom.unwrap_or(fit).max(1e-3);
    if view.zoom.is_none() {
        view.center = Pos2::new(w / 2.0, h / 2.0);
    }
    let to_image = |p: Pos2, scale: f32, center: Pos2| center + (p - rect.center()) / scale;

    // Zoom about the cursor with the wheel.
    if response.hovered() {
        let scroll = ui.input(|i| i.smooth_scroll_delta.y + i.zoom_delta().ln() * 200.0);
        if scroll.abs() > 0.0
            && let Some(p) = response.hover_pos()
        {
            let before = to_image(p, scale, view.center);
            let new_scale = (scale * (scroll * 0.003).exp()).clamp(fit * 0.25, 64.0);
            view.center = before - (p - rect.center()) / new_scale;
            scale = new_scale;
            view.zoom = Some(scale);
        }
    }
    let mut out = ViewerOutput {
        rect: Some(rect),
        ..Default::default()
    };
    // Right drag: window (horizontal) and level (vertical), as OHIF and Weasis do.
    if response.dragged_by(PointerButton::Secondary) {
        let d = response.drag_delta();
        let (lo, hi) = r.value_range;
        let span = if film.table_voi {
            1.0
        } else {
            (hi - lo).max(1.0)
        };
        let k = span / f64::from(rect.width().max(100.0));
        let min_width = match view.window.function {
            VoiFunction::Linear => 1.0,
            _ => 1e-3,
        };
        view.window.width = (view.window.width + f64::from(d.x) * k).max(min_width);
        view.window.center += f64::from(d.y) * k;
        view.window_name = "manual".into();
    }
    // Left drag: pan, or draw a crop rectangle with the crop tool.
    let image_rect = Rect::from_min_max(Pos2::ZERO, Pos2::new(w, h));
    if drawing {
        let start_id = response.id.with("crop_start");
        if response.drag_started_by(PointerButton::Primary)
            && let Some(p) = response.interact_pointer_pos()
        {
            ui.data_mut(|d| d.insert_temp(start_id, to_image(p, scale, view.center)));
        }
        let start: Option<Pos2> = ui.data(|d| d.get_temp(start_id));
        if let (Some(a), Some(p)) = (start, response.interact_pointer_pos()) {
            let b = to_image(p, scale, view.center);
            let sel = Rect::from_two_pos(a, b).intersect(image_rect);
            let screen = Rect::from_min_max(
                rect.center() + (sel.min - view.center) * scale,
                rect.center() + (sel.max - view.center) * scale,
            );
            if response.drag_stopped() {
                ui.data_mut(|d| d.remove::<Pos2>(start_id));
                if sel.width() >= 8.0 && sel.height() >= 8.0 {
                    out.new_crop = Some(CropRect {
                        x: sel.min.x.round() as u32,
                        y: sel.min.y.round() as u32,
                        width: sel.width().round() as u32,
                        height: sel.height().round() as u32,
                    });
                }
            } else {
                ui.painter().rect_stroke(
                    screen,
                    0.0,
                    Stroke::new(1.5, Color32::YELLOW),
                    egui::StrokeKind::Middle,
                );
            }
        }
    } else if response.dragged_by(PointerButton::Primary) {
        view.center -= response.drag_delta() / scale;
        view.zoom = Some(scale);
    }

    let origin = rect.center() - view.center.to_vec2() * scale;
    let (func, center, width) = if film.table_voi {
        (3, 0.5, 1.0)
    } else {
        let f = match view.window.function {
            VoiFunction::Linear => 0,
            VoiFunction::LinearExact => 1,
            VoiFunction::Sigmoid => 2,
        };
        (f, view.window.center as f32, view.window.width as f32)
    };
    let tex = &film.texture_values;
    // The texture may be smaller than the film (very large films): scale its pixels to the film's.
    let tex_scale = scale * w / tex.width as f32;
    let uniforms = Uniforms {
        image_origin: [origin.x, origin.y],
        image_size: [tex.width as f32, tex.height as f32],
        scale: tex_scale,
        center,
        width,
        func,
        invert: u32::from(view.invert),
        srgb: 0,
        heat_opacity: view.heat_opacity,
        pad0: 0.0,
        pad1: [0.0; 4],
    };
    ui.painter().rect_filled(rect, 0.0, Color32::from_gray(8));
    ui.painter().add(egui_wgpu::Callback::new_paint_callback(
        rect,
        Paint {
            film: Arc::clone(tex),
            film_key: film.key,
            heat: heat.cloned(),
            uniforms,
        },
    ));
    for (c, colour) in outlines {
        let a = rect.center() + (Pos2::new(c.x as f32, c.y as f32) - view.center) * scale;
        let b = a + Vec2::new(c.width as f32, c.height as f32) * scale;
        ui.painter().rect_stroke(
            Rect::from_min_max(a, b),
            0.0,
            Stroke::new(1.5, *colour),
            egui::StrokeKind::Middle,
        );
    }
    if let Some(p) = response.hover_pos() {
        let ip = to_image(p, scale, view.center);
        if image_rect.contains(ip) {
            let (x, y) = (ip.x as u32, ip.y as u32);
            if x < r.width() && y < r.height() {
                out.readout = Some((x, y, r.image.get(x, y)));
            }
        }
    }
    out
}
