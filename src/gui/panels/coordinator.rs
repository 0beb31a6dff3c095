//! The coordinator's view: progress, readers, blinding settings, the model over the whole study, export
//! and lock (Overview); readers, consensus and model case by case (Compare); the seed study's analysis
//! (Statistics). Every change is a command; the figures shown are the study's, reloaded by the app.

use std::path::{Path, PathBuf};

use egui::{Color32, RichText};

use crate::gui::command::{Command, Commands, CoordinatorTab};
use crate::gui::compare::CompareView;
use crate::gui::dashboard::Dashboard;
use crate::gui::model::{ModelState, StudyRun};
use crate::gui::reader_study::ReaderStudyView;
use crate::session::{Design, ReaderInfo, Role, StudyInfo, StudySettings, StudyStatus};

/// What the coordinator types into the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewForm {
    /// New reader's name and role.
    pub new_reader: (String, Role),
    /// Export destination.
    pub export_path: String,
    /// Lock confirmation box.
    pub confirm_lock: bool,
}

impl OverviewForm {
    /// The form for the study at `path` (export beside it).
    pub fn for_study(path: &Path) -> Self {
        Self {
            new_reader: (String::new(), Role::Reader),
            export_path: path
                .with_file_name("readings_export.csv")
                .to_string_lossy()
                .into_owned(),
            confirm_lock: false,
        }
    }
}

/// The parts of the study the coordinator's view shows, and the panels' own state in it.
pub struct CoordinatorParts<'a> {
    /// The tab shown.
    pub tab: CoordinatorTab,
    /// Protocol, lock, settings.
    pub info: &'a StudyInfo,
    /// Readers.
    pub readers: &'a [ReaderInfo],
    /// Progress figures, when loaded.
    pub status: Option<&'a StudyStatus>,
    /// Cases with the loaded model's prediction, when counted.
    pub recorded: Option<usize>,
    /// Cases in the study.
    pub cases: usize,
    /// The model running over the study.
    pub study_run: Option<&'a StudyRun>,
    /// The overview's form.
    pub overview: &'a mut OverviewForm,
    /// The compare table, when built.
    pub compare: Option<&'a mut CompareView>,
    /// The statistics dashboard.
    pub dashboard: &'a mut Dashboard,
    /// Standard, or a reader study.
    pub design: Design,
    /// The reader study's section of the statistics tab.
    pub reader_study: &'a mut ReaderStudyView,
}

/// The view: tabs, then the tab.
pub fn ui(
    ui: &mut egui::Ui,
    mut parts: CoordinatorParts<'_>,
    model: Option<&ModelState>,
    commands: &mut Commands,
) {
    ui.horizontal(|ui| {
        for (tab, name) in [
            (CoordinatorTab::Overview, "Overview"),
            (CoordinatorTab::Compare, "Compare"),
            (CoordinatorTab::Statistics, "Statistics"),
        ] {
            if ui.selectable_label(parts.tab == tab, name).clicked() && parts.tab != tab {
                commands.send(Command::ShowTab(tab));
                // Shown in this frame already (the command keeps it for the next ones).
                parts.tab = tab;
            }
        }
    });
    ui.separator();
    match parts.tab {
        CoordinatorTab::Overview => overview(ui, parts, model, commands),
        CoordinatorTab::Compare => {
            let cutoffs = model.and_then(|m| m.predictor.card.cutoffs);
            match parts.compare {
                Some(c) => {
                    if let Some(case) = c.ui(ui, cutoffs) {
                        commands.send(Command::ReviewCase(case));
                    }
                }
                None => {
                    ui.colored_label(Color32::LIGHT_RED, "the compare table could not be built");
                }
            }
        }
        CoordinatorTab::Statistics => {
            let readers: Vec<String> = parts.readers.iter().map(|r| r.name.clone()).collect();
            let model = model.map(|m| (m.sha256(), m.predictor.card.cutoffs));
            if parts.design != Design::Standard {
                egui::CollapsingHeader::new("Reader study: unaided vs aided")
                    .default_open(true)
                    .show(ui, |ui| parts.reader_study.ui(ui, commands));
                ui.separator();
            }
            parts.dashboard.ui(ui, &readers, model, commands);
        }
    }
}

fn overview(
    ui: &mut egui::Ui,
    parts: CoordinatorParts<'_>,
    model: Option<&ModelState>,
    commands: &mut Commands,
) {
    let form = parts.overview;
    ui.heading("Coordinator");
    if let Some(st) = parts.status {
        ui.label(format!(
            "{} cases, {} with a final label, {} awaiting adjudication",
            st.cases,
            st.labelled,
            st.awaiting_adjudication.len()
        ));
        egui::Grid::new("progress").striped(true).show(ui, |ui| {
            ui.strong("reader");
            ui.strong("role");
            ui.strong("read");
            ui.end_row();
            for r in &st.readers {
                ui.label(&r.reader);
                ui.label(r.role.as_str());
                ui.add(
                    egui::ProgressBar::new(r.done as f32 / r.assigned.max(1) as f32)
                        .text(format!("{} / {}", r.done, r.assigned)),
                );
                if let Some(plan) = &r.arms {
                    ui.label(plan.summary());
                }
                ui.end_row();
            }
        });
        if !st.awaiting_adjudication.is_empty() {
            ui.label(format!(
                "Awaiting adjudication: {}",
                st.awaiting_adjudication.join(", ")
            ));
        }
    }
    if ui.button("Refresh").clicked() {
        commands.send(Command::RefreshStatus);
    }
    ui.separator();
    ui.label(RichText::new("Readers").strong());
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut form.new_reader.0)
                .hint_text("name")
                .desired_width(160.0),
        );
        egui::ComboBox::from_label("role")
            .selected_text(form.new_reader.1.as_str())
            .show_ui(ui, |ui| {
                for r in parts.info.protocol.roles() {
                    ui.selectable_value(&mut form.new_reader.1, *r, r.as_str());
                }
            });
        if ui.button("Add reader").clicked() {
            commands.send(Command::AddReader(
                form.new_reader.0.trim().to_string(),
                form.new_reader.1,
            ));
        }
    });
    ui.separator();
    ui.label(RichText::new("Blinding after commit").strong());
    let mut settings: StudySettings = parts.info.settings;
    ui.checkbox(
        &mut settings.reveal_readers_after_commit,
        "readers may see other readings",
    );
    ui.checkbox(
        &mut settings.reveal_model_after_commit,
        "readers may see the model's output",
    );
    if settings != parts.info.settings {
        commands.send(Command::SetSettings(settings));
    }
    ui.separator();
    ui.label(RichText::new("The model over the whole study").strong());
    match (model, parts.study_run) {
        (None, _) => {
            ui.label("Load a model (top bar) to predict every case.");
        }
        (Some(m), None) => {
            ui.horizontal(|ui| {
                let recorded = parts.recorded.map_or("?".to_string(), |n| n.to_string());
                ui.label(format!(
                    "{recorded} of {} cases have the prediction of {} ({}…)",
                    parts.cases,
                    m.predictor.card.name,
                    &m.sha256()[..12]
                ));
                if ui
                    .add_enabled(
                        parts.recorded.is_none_or(|n| n < parts.cases),
                        egui::Button::new("Predict all cases"),
                    )
                    .clicked()
                {
                    commands.send(Command::PredictStudy);
                }
            });
        }
        (Some(_), Some(run)) => {
            ui.horizontal(|ui| {
                ui.add(
                    egui::ProgressBar::new(run.done as f32 / run.total.max(1) as f32)
                        .desired_width(300.0)
                        .text(format!(
                            "{} / {}{}",
                            run.done,
                            run.total,
                            run.eta_s()
                                .map(|t| format!(", about {t:.0} s left"))
                                .unwrap_or_default()
                        )),
                );
                if run.cancelled() {
                    ui.label("cancelling…");
                } else if ui.button("Cancel").clicked() {
                    commands.send(Command::CancelStudyRun);
                }
            });
        }
    }
    ui.separator();
    ui.label(RichText::new("Films from an archive (DICOMweb)").strong());
    ui.horizontal(|ui| {
        if ui
            .button("Add from PACS…")
            .on_hover_text("query an archive and add its series as cases, fetched on demand")
            .clicked()
        {
            commands.send(Command::ShowPacs(crate::gui::command::PacsTab::Add));
        }
        if ui
            .button("Send to archive…")
            .on_hover_text("de-identify a folder of films and store them in the study's archive")
            .clicked()
        {
            commands.send(Command::ShowPacs(crate::gui::command::PacsTab::Send));
        }
    });
    ui.separator();
    ui.label(RichText::new("Export (pseudonymous case IDs only)").strong());
    ui.horizontal(|ui| {
        let l = ui.label("file");
        ui.add(egui::TextEdit::singleline(&mut form.export_path).desired_width(360.0))
            .labelled_by(l.id);
        if ui.button("Export readings and consensus").clicked() {
            commands.send(Command::Export(PathBuf::from(form.export_path.trim())));
        }
    });
    ui.separator();
    if parts.info.locked {
        ui.label("The study is locked: no reading can change.");
    } else {
        ui.checkbox(
            &mut form.confirm_lock,
            "I want to lock the study (cannot be undone)",
        );
        if ui
            .add_enabled(form.confirm_lock, egui::Button::new("Lock study"))
            .clicked()
        {
            commands.send(Command::Lock);
        }
    }
}
