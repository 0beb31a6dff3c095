//! The coordinator's review of a case: every reading, the consensus and the model.

use super::model_output::{self, ModelView};
use crate::gui::study::StudySession;

/// The panel.
pub fn ui(ui: &mut egui::Ui, s: &StudySession, model: &ModelView<'_>) {
    let Some(case) = s.current_case() else {
        return;
    };
    ui.heading(format!("Case {case}"));
    let row = s
        .compare
        .as_ref()
        .and_then(|c| c.rows.iter().find(|r| r.case == case));
    let Some(row) = row else {
        ui.label("no readings yet");
        return;
    };
    egui::Grid::new("review").striped(true).show(ui, |ui| {
        ui.strong("reader");
        ui.strong("left/right");
        ui.strong("call");
        ui.end_row();
        for (name, c) in &row.readers {
            ui.label(name);
            ui.label(c.grades.map_or("n/a".into(), |(l, r)| format!("{l}/{r}")));
            ui.label(match c.definite {
                Some(true) => "definite",
                Some(false) => "not definite",
                None => "not assessable",
            });
            ui.end_row();
        }
    });
    ui.label(format!(
        "Consensus: {} ({})",
        match row.consensus {
            Some(true) => "definite",
            Some(false) => "not definite",
            None => "none yet",
        },
        row.method.as_str()
    ));
    ui.separator();
    model_output::ui(ui, model);
}
