//! The model's output for the current film, as every panel that may show it writes it: probability,
//! the calls at the card's three cut-offs, what the heatmap explains, and the model's intended use.

use std::path::Path;

use egui::RichText;

use crate::gui::model::ModelState;
use crate::model::gradcam::CamMethod;

/// The loaded model and the film it would speak about.
#[derive(Debug, Clone, Copy)]
pub struct ModelView<'a> {
    /// The model, if loaded.
    pub model: Option<&'a ModelState>,
    /// The current film.
    pub path: Option<&'a Path>,
}

impl ModelView<'_> {
    /// No model, no film (panel tests).
    pub fn none() -> Self {
        Self {
            model: None,
            path: None,
        }
    }
}

/// The model's lines (callers decide whether the model may be shown: blinding).
pub fn ui(ui: &mut egui::Ui, view: &ModelView<'_>) {
    let Some(m) = view.model else {
        ui.label("no model loaded (Model field above)");
        return;
    };
    // What the model is for travels with every result (the demo model: synthetic phantoms only).
    ui.small(format!(
        "model {}: {}",
        m.predictor.card.name, m.predictor.card.intended_use
    ));
    let Some(path) = view.path else {
        return;
    };
    match m.result(path) {
        Some(o) => {
            ui.label(RichText::new(format!("Model: probability {:.3}", o.probability)).strong());
            if let Some(w) = &o.warning {
                ui.label(
                    RichText::new(format!("⚠ {w}")).color(egui::Color32::from_rgb(255, 170, 80)),
                );
            }
            ui.small(format!(
                "heatmap (H): {} of \"{}\"",
                match o.method {
                    CamMethod::GradCam => "Grad-CAM",
                    CamMethod::GradCamPlusPlus => "Grad-CAM++",
                },
                m.predictor
                    .card
                    .class_names
                    .get(o.class)
                    .map_or("?", String::as_str)
            ));
            if let (Some(calls), Some(c)) = (o.calls, m.predictor.card.cutoffs) {
                for ((name, cut), call) in c.named().iter().zip(calls) {
                    ui.label(format!(
                        "  {name} cut-off {cut:.3}: {}",
                        if call { "definite" } else { "not definite" }
                    ));
                }
            }
        }
        None if m.is_pending(path) => {
            ui.label("model running…");
        }
        None => {
            ui.label("model: no result");
        }
    }
}
