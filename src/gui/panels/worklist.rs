//! The work list: the open files, or the reader's cases with their progress (every case when the
//! coordinator reviews); a click goes to a case.

use crate::gui::command::{Command, Commands};
use crate::gui::study::{Source, StudyMode};
use crate::session::WorklistEntry;

/// The panel.
pub fn ui(ui: &mut egui::Ui, source: &Source, commands: &mut Commands) {
    let goto = match source {
        Source::Empty => {
            ui.label("Open a study, a folder or a film:");
            ui.label("• the buttons above,");
            ui.label("• a path typed above,");
            ui.label("• or drop it on this window.");
            None
        }
        Source::Files { paths, index } => {
            ui.heading("Films");
            ui.label(format!("{} files (viewing only)", paths.len()));
            let mut goto = None;
            egui::ScrollArea::vertical().show(ui, |ui| {
                for (i, p) in paths.iter().enumerate() {
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if ui.selectable_label(i == *index, name).clicked() {
                        goto = Some(i);
                    }
                }
            });
            goto
        }
        Source::Study(s) => {
            ui.heading("Work list");
            match &s.mode {
                StudyMode::Reviewing => {
                    ui.label("All cases (✔ has a consensus label)");
                    case_list(ui, &s.worklist, s.index)
                }
                StudyMode::Reading { reader } => {
                    let done = s.worklist.iter().filter(|e| e.done).count();
                    ui.label(format!("{reader}: {done} of {} read", s.worklist.len()));
                    ui.add(
                        egui::ProgressBar::new(done as f32 / s.worklist.len().max(1) as f32)
                            .show_percentage(),
                    );
                    case_list(ui, &s.worklist, s.index)
                }
                StudyMode::ChoosingReader | StudyMode::Coordinating { .. } => {
                    ui.label("Choose who you are (Reader, above).");
                    None
                }
            }
        }
    };
    if let Some(i) = goto {
        commands.send(Command::GoTo(i));
    }
}

/// The work list's cases (✔ done, ○ pending); returns the one clicked.
fn case_list(ui: &mut egui::Ui, list: &[WorklistEntry], current: usize) -> Option<usize> {
    let mut clicked = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        for (i, e) in list.iter().enumerate() {
            let mark = if e.done { "✔" } else { "○" };
            if ui
                .selectable_label(i == current, format!("{mark} {}", e.case_id))
                .clicked()
            {
                clicked = Some(i);
            }
        }
    });
    clicked
}
