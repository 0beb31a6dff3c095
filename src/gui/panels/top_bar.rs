//! The top bar: open a film, folder or study (dialogs, a typed path, recent ones, the demo), load a
//! model, the Training page and the key help; for a study, its name and state, the reader, and the
//! coordinator view.

use std::path::PathBuf;

use egui::{Align, Color32, Key, Layout, RichText};

use crate::gui::command::{Command, Commands, Level, Page, Secret};
use crate::gui::study::{CoordinatorTab, StudySession};

/// The bar's own state: what is typed into its fields.
#[derive(Debug, Default)]
pub struct TopBar {
    path_field: String,
    model_field: String,
    /// The "Open a server study" window, while open: URL, password, films folder.
    server: Option<(String, String, String)>,
}

impl TopBar {
    /// The bar. `help` toggles the key help.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        recent: &[PathBuf],
        page: Page,
        help: &mut bool,
        commands: &mut Commands,
    ) {
        ui.horizontal(|ui| {
            ui.strong("Sacro");
            ui.separator();
            if ui.button("Open file…").clicked() {
                match rfd::FileDialog::new()
                    .add_filter("radiographs and studies", &["dcm", "dicom", "tif", "tiff", "png", "sacro"])
                    .add_filter("all files", &["*"])
                    .pick_file()
                {
                    Some(p) => commands.send(Command::Open(p)),
                    None => commands.notify(
                        "no file chosen (if no dialog appeared, type a path or drop a file on the window)",
                        Level::Info,
                    ),
                }
            }
            if ui.button("Open folder…").clicked() {
                match rfd::FileDialog::new().pick_folder() {
                    Some(p) => commands.send(Command::Open(p)),
                    None => commands.notify(
                        "no folder chosen (if no dialog appeared, type a path or drop a folder on the window)",
                        Level::Info,
                    ),
                }
            }
            if ui
                .button("Server study…")
                .on_hover_text("a study on a PostgreSQL server: postgres://LOGIN@HOST:PORT/DATABASE")
                .clicked()
            {
                self.server = Some(self.server.take().unwrap_or_default());
            }
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.path_field)
                    .hint_text("path to a film, folder or study.sacro")
                    .desired_width(230.0),
            );
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
            if (ui.button("Open").clicked() || enter) && !self.path_field.trim().is_empty() {
                commands.send(Command::Open(PathBuf::from(self.path_field.trim())));
            }
            let mf = ui.add(
                egui::TextEdit::singleline(&mut self.model_field)
                    .hint_text("model folder")
                    .desired_width(160.0),
            );
            let enter = mf.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
            if (ui.button("Load model").clicked() || enter) && !self.model_field.trim().is_empty() {
                commands.send(Command::LoadModel(PathBuf::from(self.model_field.trim())));
            }
            if ui.button("Demo study").clicked() {
                commands.send(Command::OpenDemo);
            }
            if !recent.is_empty() {
                egui::ComboBox::from_label("recent")
                    .selected_text("open…")
                    .show_ui(ui, |ui| {
                        for r in recent {
                            if ui.button(r.display().to_string()).clicked() {
                                commands.send(Command::Open(r.clone()));
                            }
                        }
                    });
            }
            self.server_window(ui.ctx(), commands);
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                if ui.button("Keys").clicked() {
                    *help = !*help;
                }
                let mut training = page == Page::Training;
                if ui.toggle_value(&mut training, "Training").changed() {
                    commands.send(Command::ShowPage(if training {
                        Page::Training
                    } else {
                        Page::Work
                    }));
                }
            });
        });
    }

    /// The window that opens a study on a server: the URL and the login's password (the password goes
    /// to the store and is forgotten here; empty: PGPASSWORD or ~/.pgpass).
    fn server_window(&mut self, ctx: &egui::Context, commands: &mut Commands) {
        let Some((url, password, films)) = &mut self.server else {
            return;
        };
        let mut open = true;
        let mut submit = false;
        egui::Window::new("Open a study on a server")
            .open(&mut open)
            .collapsible(false)
            .show(ctx, |ui| {
                let label = ui.label("Study URL (your own login):");
                ui.add(
                    egui::TextEdit::singleline(url)
                        .hint_text("postgres://LOGIN@HOST:5432/DATABASE?sslmode=verify-full")
                        .desired_width(420.0),
                )
                .labelled_by(label.id);
                let label = ui.label("Password (empty: PGPASSWORD or ~/.pgpass):");
                let pw = ui
                    .add(
                        egui::TextEdit::singleline(password)
                            .password(true)
                            .desired_width(420.0),
                    )
                    .labelled_by(label.id);
                let label = ui.label("Films folder at this site (empty: the current folder):");
                ui.add(egui::TextEdit::singleline(films).desired_width(420.0))
                    .labelled_by(label.id);
                let enter = pw.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
                submit =
                    (ui.button("Log in and open").clicked() || enter) && !url.trim().is_empty();
            });
        if submit {
            commands.send(Command::OpenServer {
                url: url.trim().to_string(),
                password: Secret(std::mem::take(password)),
                films: films.trim().to_string(),
            });
            self.server = None;
        } else if !open {
            self.server = None;
        }
    }

    /// The study's line: name, protocol, lock, the reader and the coordinator view; while the
    /// coordinator reviews, the way back to the compare table.
    pub fn study_ui(ui: &mut egui::Ui, s: &StudySession, commands: &mut Commands) {
        let mut coordinator = s.is_coordinating();
        ui.horizontal(|ui| {
            ui.label(format!(
                "Study {} — {} protocol{}",
                s.path
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                s.info.protocol.as_str(),
                if s.info.locked { " — LOCKED" } else { "" }
            ));
            ui.separator();
            let current = s.mode.reader();
            // A reader's login on a server reads only as that reader.
            let choosable: Vec<_> = s
                .readers
                .iter()
                .filter(|r| s.me.as_ref().is_none_or(|me| *me == r.name))
                .collect();
            egui::ComboBox::from_label("Reader")
                .selected_text(current.unwrap_or("choose…"))
                .show_ui(ui, |ui| {
                    for r in choosable {
                        if ui
                            .selectable_label(
                                current == Some(r.name.as_str()),
                                format!("{} ({})", r.name, r.role.as_str()),
                            )
                            .clicked()
                        {
                            commands.send(Command::ChooseReader(r.name.clone()));
                        }
                    }
                });
            if s.store.is_coordinator()
                && ui
                    .toggle_value(&mut coordinator, "Coordinator view")
                    .changed()
            {
                commands.send(Command::SetCoordinating(coordinator));
            }
        });
        if s.mode.is_reviewing() {
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new("Reviewing as coordinator (no grading)").color(Color32::YELLOW),
                );
                if ui.button("Back to the compare table").clicked() {
                    commands.send(Command::ShowTab(CoordinatorTab::Compare));
                }
            });
        }
    }
}
