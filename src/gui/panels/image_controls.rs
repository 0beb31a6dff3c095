//! The image panel beside the viewer: the film's description (identity only outside reading sessions),
//! window/level with the presets, inversion, fit and 1:1, the heatmap toggle and opacity, and the crop
//! tool; outside studies also the model's output.

use std::sync::Arc;

use egui::{Color32, RichText};

use super::model_output::{self, ModelView};
use crate::gui::command::{Command, Commands, Level};
use crate::gui::viewer::{Film, ViewState};
use crate::session::CropRect;
use crate::session::joint_boxes::Side;

/// How the viewer draws the film: the app's own settings, changed by keys and this panel.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewerOptions {
    /// Drawing a crop rectangle (C).
    pub crop_tool: bool,
    /// Drawing the reader's box around a joint (B: the patient's right, then left).
    pub box_tool: Option<Side>,
    /// Heatmap shown (H).
    pub heat_on: bool,
    /// Heatmap opacity.
    pub heat_opacity: f32,
    /// Frame-time overlay (F12).
    pub show_debug: bool,
}

impl Default for ViewerOptions {
    fn default() -> Self {
        Self {
            crop_tool: false,
            box_tool: None,
            heat_on: false,
            heat_opacity: 0.5,
            show_debug: false,
        }
    }
}

/// What the panel shows besides the film.
#[derive(Debug, Clone, Copy)]
pub struct ImageContext<'a> {
    /// A reading-sessions study is open (identity hidden, model only after commit).
    pub in_study: bool,
    /// The current case's crop rectangle, in a study.
    pub crop: Option<CropRect>,
    /// The model and the film.
    pub model: ModelView<'a>,
    /// A reader is reading: their boxes of the current case's joints (patient's left, right).
    pub joint_boxes: Option<[Option<CropRect>; 2]>,
}

/// The panel; `view` is the current film's view state when shown.
pub fn ui(
    ui: &mut egui::Ui,
    film: &Arc<Film>,
    view: Option<&mut ViewState>,
    options: &mut ViewerOptions,
    cx: ImageContext<'_>,
    commands: &mut Commands,
) {
    let r = &film.radiograph;
    if !cx.in_study {
        model_output::ui(ui, &cx.model);
        ui.separator();
    }
    ui.heading("Image");
    ui.label(format!(
        "{} × {} px, {} bits stored",
        r.width(),
        r.height(),
        r.bits_stored
    ));
    ui.label(format!("{:?}", r.photometric));
    if let Some((x, y)) = r.pixel_spacing_mm {
        ui.label(format!("pixel spacing {x:.3} × {y:.3} mm"));
    }
    if !r.presets.is_empty() {
        ui.label(format!("presets: {}", r.preset_names().join(", ")));
    }
    if !cx.in_study {
        let id = &r.identity;
        if let Some(d) = &id.series_description {
            ui.label(format!("series: {d}"));
        }
        if let Some(m) = &id.modality {
            ui.label(format!("modality: {m}"));
        }
    } else {
        ui.small("patient identity hidden in reading sessions");
    }
    let Some(view) = view else {
        return;
    };
    ui.separator();
    window_controls(ui, film, view, commands);
    ui.separator();
    ui.label(RichText::new("Heatmap").strong());
    ui.checkbox(&mut options.heat_on, "Show Grad-CAM (H)");
    let l = ui.label("opacity");
    ui.add(egui::Slider::new(&mut options.heat_opacity, 0.0..=1.0))
        .labelled_by(l.id);
    if options.heat_on {
        heat_legend(ui);
    }
    ui.separator();
    if let Some(boxes) = cx.joint_boxes {
        joint_box_controls(ui, options, boxes, commands);
        ui.separator();
    }
    ui.toggle_value(&mut options.crop_tool, "Crop tool (C)");
    if let Some(c) = cx.crop {
        ui.label(format!("crop {}×{} at {},{}", c.width, c.height, c.x, c.y));
        if ui.button("Clear crop").clicked() {
            commands.send(Command::SetCrop(None));
        }
    }
}

/// The joint-box tool: draw the box around each joint (the patient's right, then left; B), or remove one.
fn joint_box_controls(
    ui: &mut egui::Ui,
    options: &mut ViewerOptions,
    boxes: [Option<CropRect>; 2],
    commands: &mut Commands,
) {
    ui.label(RichText::new("Joint boxes (B)").strong());
    for (side, title) in [
        (Side::Right, "patient's right"),
        (Side::Left, "patient's left"),
    ] {
        let own = boxes[usize::from(side == Side::Right)];
        ui.horizontal(|ui| {
            let active = options.box_tool == Some(side);
            if ui
                .selectable_label(active, format!("Draw {title}"))
                .clicked()
            {
                options.box_tool = (!active).then_some(side);
                options.crop_tool = false;
            }
            match own {
                Some(b) => {
                    ui.small(format!("{}×{} at {},{}", b.width, b.height, b.x, b.y));
                    if ui.small_button(format!("Remove {title}")).clicked() {
                        commands.send(Command::SetJointBox(side, None));
                    }
                }
                None => {
                    ui.small("not drawn");
                }
            }
        });
    }
}

/// Window centre and width, the presets, inversion, fit, 1:1 and reset.
fn window_controls(
    ui: &mut egui::Ui,
    film: &Arc<Film>,
    view: &mut ViewState,
    commands: &mut Commands,
) {
    ui.label(RichText::new("Window").strong());
    ui.label(format!(
        "{} ({})",
        view.window_name,
        view.window.function.as_dicom()
    ));
    let mut changed = false;
    ui.horizontal(|ui| {
        let l = ui.label("centre");
        changed |= ui
            .add(egui::DragValue::new(&mut view.window.center).speed(1.0))
            .labelled_by(l.id)
            .changed();
    });
    ui.horizontal(|ui| {
        let l = ui.label("width");
        changed |= ui
            .add(
                egui::DragValue::new(&mut view.window.width)
                    .speed(1.0)
                    .range(1.0..=f64::MAX),
            )
            .labelled_by(l.id)
            .changed();
    });
    if changed {
        view.window_name = "manual".into();
    }
    ui.horizontal_wrapped(|ui| {
        for (n, name) in ["1 file", "2 file", "3 auto", "4 full", "5 contrast"]
            .iter()
            .enumerate()
        {
            if ui.small_button(*name).clicked()
                && let Err(e) = view.apply_preset(film, n + 1)
            {
                commands.notify(e, Level::Error);
            }
        }
    });
    ui.checkbox(&mut view.invert, "Invert (I)");
    ui.horizontal(|ui| {
        if ui.button("Fit (Home)").clicked() {
            view.zoom = None;
        }
        if ui.button("1:1 (0)").clicked() {
            view.zoom = Some(1.0 / ui.ctx().pixels_per_point());
        }
        if ui.button("Reset (Space)").clicked() {
            *view = ViewState::for_film(film);
        }
    });
}

/// The heatmap's colour scale (turbo, as blended in the viewer): low evidence left, high right.
fn heat_legend(ui: &mut egui::Ui) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(200.0, 12.0), egui::Sense::hover());
    let n = 48;
    for i in 0..n {
        let t = (i as f64 + 0.5) / f64::from(n);
        let c = colorous::TURBO.eval_continuous(t);
        let x0 = rect.left() + rect.width() * i as f32 / n as f32;
        let x1 = rect.left() + rect.width() * (i + 1) as f32 / n as f32;
        ui.painter().rect_filled(
            egui::Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom())),
            0.0,
            Color32::from_rgb(c.r, c.g, c.b),
        );
    }
    ui.horizontal(|ui| {
        ui.small("low");
        ui.add_space(150.0);
        ui.small("high");
    });
}

/// The viewer's keys of this frame that change only the view: I, Space, Home, and (where `digits`: not
/// while a reader study's confidence is typed) 0 and the presets 1–5.
pub fn view_keys(
    ctx: &egui::Context,
    film: &Arc<Film>,
    view: &mut ViewState,
    digits: bool,
    commands: &mut Commands,
) {
    use egui::Key;
    if ctx.egui_wants_keyboard_input() {
        return;
    }
    let pressed = |k: Key| ctx.input(|i| i.key_pressed(k));
    if pressed(Key::I) {
        view.invert = !view.invert;
    }
    if pressed(Key::Space) {
        *view = ViewState::for_film(film);
    }
    if pressed(Key::Home) {
        view.zoom = None;
    }
    if !digits {
        return;
    }
    if pressed(Key::Num0) {
        view.zoom = Some(1.0 / ctx.pixels_per_point());
    }
    let presets = [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5];
    for (n, k) in presets.iter().enumerate() {
        if pressed(*k)
            && let Err(e) = view.apply_preset(film, n + 1)
        {
            commands.notify(e, Level::Error);
        }
    }
}
