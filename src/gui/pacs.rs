//! The archive windows of the coordinator view: "Add from PACS…" (query a DICOMweb archive, pick
//! series, add their instances as cases that refer to the archive) and "Send to archive…" (de-identify
//! a folder of films and store them in the archive, with progress). Network work runs on worker
//! threads; what changes the study is a command. The login is kept in memory only (and handed to the
//! loader so that it can fetch the films); it is never written anywhere.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

use egui::RichText;

pub use crate::gui::command::PacsTab;
use crate::gui::command::{Command, Commands, Level, Secret};
use crate::pacs::{Credentials, DicomWeb, Query, StudyFound};
use crate::session::{ArchiveRef, NewCase};

/// What the upload worker reports.
enum SendMsg {
    Total(usize),
    Sent(String),
    Failed(String),
    Done,
}

/// The windows' state.
#[derive(Default)]
pub struct PacsWindow {
    /// The window shown, if any.
    pub shown: Option<PacsTab>,
    url: String,
    user: String,
    password: String,
    patient_id: String,
    study_date: String,
    modality: String,
    body_part: String,
    show_phi: bool,
    results: Vec<StudyFound>,
    selected: BTreeSet<(String, String)>,
    search: Option<Receiver<Result<Vec<StudyFound>, String>>>,
    folder: String,
    secret: String,
    send: Option<(Receiver<SendMsg>, usize, usize)>,
}

impl std::fmt::Debug for PacsWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacsWindow")
            .field("shown", &self.shown)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PacsWindow {
    fn credentials(&self) -> Credentials {
        if self.user.trim().is_empty() {
            Credentials::from_env()
        } else {
            Credentials::Basic {
                user: self.user.trim().to_string(),
                password: self.password.clone(),
            }
        }
    }

    fn client(&self) -> Result<DicomWeb, String> {
        let ca = crate::pacs::ca_cert_from_env();
        DicomWeb::new(self.url.trim(), &self.credentials(), ca.as_deref())
            .map_err(|e| e.to_string())
    }

    /// The windows, when shown; takes what the workers sent.
    pub fn ui(&mut self, ctx: &egui::Context, in_study: bool, commands: &mut Commands) {
        self.poll(commands);
        let Some(tab) = self.shown else {
            return;
        };
        let mut open = true;
        let title = match tab {
            PacsTab::Add => "Add from PACS",
            PacsTab::Send => "Send to archive",
            PacsTab::Login => "Archive login",
        };
        egui::Window::new(title)
            .open(&mut open)
            .default_width(560.0)
            .show(ctx, |ui| {
                self.login(ui);
                ui.separator();
                match tab {
                    PacsTab::Add => self.add_ui(ui, in_study, ctx, commands),
                    PacsTab::Send => self.send_ui(ui, ctx),
                    PacsTab::Login => {
                        ui.label(
                            "The study's films are fetched with this login, which is sent to this \
                             archive only.",
                        );
                        if ui.button("Use this login").clicked() {
                            commands.send(Command::ArchiveLogin {
                                url: self.url.trim().to_string(),
                                user: self.user.trim().to_string(),
                                password: Secret(self.password.clone()),
                            });
                            self.shown = None;
                        }
                    }
                }
            });
        if !open {
            self.shown = None;
        }
        if self.search.is_some() || self.send.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_millis(200));
        }
    }

    fn login(&mut self, ui: &mut egui::Ui) {
        egui::Grid::new("pacs-login").num_columns(2).show(ui, |ui| {
            let l = ui.label("DICOMweb URL:");
            ui.add(
                egui::TextEdit::singleline(&mut self.url)
                    .hint_text("https://archive.example.org/dicom-web")
                    .desired_width(380.0),
            )
            .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("User (empty: SACRO_DICOMWEB_*):");
            ui.add(egui::TextEdit::singleline(&mut self.user).desired_width(380.0))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Password:");
            ui.add(
                egui::TextEdit::singleline(&mut self.password)
                    .password(true)
                    .desired_width(380.0),
            )
            .labelled_by(l.id);
            ui.end_row();
        });
    }

    fn add_ui(
        &mut self,
        ui: &mut egui::Ui,
        in_study: bool,
        ctx: &egui::Context,
        commands: &mut Commands,
    ) {
        egui::Grid::new("pacs-query").num_columns(4).show(ui, |ui| {
            for (label, field, hint) in [
                ("Patient ID:", &mut self.patient_id, ""),
                ("Study date:", &mut self.study_date, "20200101-20201231"),
                ("Modality:", &mut self.modality, "CR,DX"),
                ("Body part:", &mut self.body_part, "PELVIS"),
            ] {
                let l = ui.label(label);
                ui.add(
                    egui::TextEdit::singleline(field)
                        .hint_text(hint)
                        .desired_width(150.0),
                )
                .labelled_by(l.id);
                if label == "Study date:" || label == "Body part:" {
                    ui.end_row();
                }
            }
        });
        ui.horizontal(|ui| {
            let searching = self.search.is_some();
            if ui
                .add_enabled(
                    !searching && !self.url.trim().is_empty(),
                    egui::Button::new("Search"),
                )
                .clicked()
            {
                self.start_search(ctx);
            }
            if searching {
                ui.spinner();
                ui.label("asking the archive…");
            }
            ui.checkbox(&mut self.show_phi, "show patient names and IDs");
        });
        if self.results.is_empty() {
            return;
        }
        egui::ScrollArea::vertical()
            .max_height(260.0)
            .show(ui, |ui| {
                egui::Grid::new("pacs-results")
                    .striped(true)
                    .show(ui, |ui| {
                        for h in ["", "date", "study", "patient", "series", "images"] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        let mut row = 0;
                        for st in &self.results {
                            for se in &st.series {
                                row += 1;
                                let key = (st.study_uid.clone(), se.series_uid.clone());
                                let mut on = self.selected.contains(&key);
                                if ui.checkbox(&mut on, format!("series {row}")).changed() {
                                    if on {
                                        self.selected.insert(key);
                                    } else {
                                        self.selected.remove(&key);
                                    }
                                }
                                ui.label(st.study_date.as_deref().unwrap_or("-"));
                                ui.label(st.description.as_deref().unwrap_or("-"));
                                ui.label(if self.show_phi {
                                    format!(
                                        "{} [{}]",
                                        st.patient_name.as_deref().unwrap_or("-"),
                                        st.patient_id.as_deref().unwrap_or("-")
                                    )
                                } else {
                                    "(hidden)".into()
                                });
                                ui.label(format!(
                                    "{} {}",
                                    se.modality.as_deref().unwrap_or("-"),
                                    se.body_part.as_deref().unwrap_or("")
                                ));
                                ui.label(se.instances.len().to_string());
                                ui.end_row();
                            }
                        }
                    });
            });
        let n: usize = self
            .results
            .iter()
            .flat_map(|st| st.series.iter().map(move |se| (st, se)))
            .filter(|(st, se)| {
                self.selected
                    .contains(&(st.study_uid.clone(), se.series_uid.clone()))
            })
            .map(|(_, se)| se.instances.len())
            .sum();
        let add = ui.horizontal(|ui| {
            let add = ui.add_enabled(
                in_study && n > 0,
                egui::Button::new("Add the selected series as cases"),
            );
            ui.label(format!("{n} film(s) selected"));
            add.clicked()
        });
        if add.inner {
            let url = self.url.trim().trim_end_matches('/').to_string();
            let mut cases = Vec::new();
            for st in &self.results {
                for se in &st.series {
                    if !self
                        .selected
                        .contains(&(st.study_uid.clone(), se.series_uid.clone()))
                    {
                        continue;
                    }
                    for sop in &se.instances {
                        cases.push(NewCase {
                            path: None,
                            sop_instance_uid: Some(sop.clone()),
                            case_id: None,
                            archive: Some(ArchiveRef {
                                url: url.clone(),
                                study_uid: st.study_uid.clone(),
                                series_uid: se.series_uid.clone(),
                            }),
                        });
                    }
                }
            }
            commands.send(Command::ArchiveLogin {
                url: self.url.trim().to_string(),
                user: self.user.trim().to_string(),
                password: Secret(self.password.clone()),
            });
            commands.send(Command::AddCases(cases));
            self.selected.clear();
        }
    }

    fn start_search(&mut self, ctx: &egui::Context) {
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => {
                let (tx, rx) = channel();
                let _ = tx.send(Err(e));
                self.search = Some(rx);
                return;
            }
        };
        let field = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let query = Query {
            patient_id: field(&self.patient_id),
            study_date: field(&self.study_date),
            modalities: self
                .modality
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect(),
            body_part: field(&self.body_part),
        };
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(client.find(&query).map_err(|e| e.to_string()));
            ctx.request_repaint();
        });
        self.search = Some(rx);
    }

    fn send_ui(&mut self, ui: &mut egui::Ui, ctx: &egui::Context) {
        egui::Grid::new("pacs-send").num_columns(2).show(ui, |ui| {
            let l = ui.label("Folder of DICOM films:");
            ui.add(egui::TextEdit::singleline(&mut self.folder).desired_width(380.0))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Site secret file (empty: default):");
            ui.add(egui::TextEdit::singleline(&mut self.secret).desired_width(380.0))
                .labelled_by(l.id);
            ui.end_row();
        });
        ui.label(
            RichText::new(
                "Each film is de-identified (PS3.15 Annex E) before it leaves; films that may carry \
                 burned-in text are refused, and one refused film sends nothing.",
            )
            .small(),
        );
        match &self.send {
            Some((_, done, total)) => {
                ui.add(
                    egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32)
                        .text(format!("{done} / {total} sent")),
                );
            }
            None => {
                let ready = !self.url.trim().is_empty() && !self.folder.trim().is_empty();
                if ui
                    .add_enabled(ready, egui::Button::new("De-identify and send"))
                    .clicked()
                {
                    self.start_send(ctx);
                }
            }
        }
    }

    fn start_send(&mut self, ctx: &egui::Context) {
        let (tx, rx) = channel();
        let client = self.client();
        let folder = PathBuf::from(self.folder.trim());
        let secret = Some(self.secret.trim())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(crate::imaging::deid::default_secret_path);
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let run = || -> Result<(), String> {
                let client = client?;
                let key = crate::imaging::deid::load_or_create_secret(&secret)
                    .map_err(|e| e.to_string())?;
                let de = crate::imaging::deid::Deidentifier::new(&key, false)
                    .map_err(|e| e.to_string())?;
                let gathered =
                    crate::imaging::batch::gather_inputs(&[folder]).map_err(|e| e.to_string())?;
                let files: Vec<PathBuf> = gathered.files.into_iter().map(|(_, f)| f).collect();
                if files.is_empty() {
                    return Err("no DICOM films in the folder".into());
                }
                let refused: Vec<String> = files
                    .iter()
                    .filter_map(|f| DicomWeb::deidentify_checked(f, &de).err())
                    .map(|e| e.to_string())
                    .collect();
                if !refused.is_empty() {
                    return Err(format!(
                        "nothing sent; {} film(s) refused: {}",
                        refused.len(),
                        refused.join("; ")
                    ));
                }
                let _ = tx.send(SendMsg::Total(files.len()));
                for f in &files {
                    let stored = client
                        .store_deidentified(f, &de)
                        .map_err(|e| e.to_string())?;
                    let _ = tx.send(SendMsg::Sent(stored.sop_instance_uid));
                    ctx.request_repaint();
                }
                Ok(())
            };
            let _ = tx.send(match run() {
                Ok(()) => SendMsg::Done,
                Err(e) => SendMsg::Failed(e),
            });
            ctx.request_repaint();
        });
        self.send = Some((rx, 0, 0));
    }

    /// Takes the workers' answers: search results, upload progress; failures become notifications.
    fn poll(&mut self, commands: &mut Commands) {
        if let Some(rx) = &self.search
            && let Ok(result) = rx.try_recv()
        {
            self.search = None;
            match result {
                Ok(found) => {
                    if found.is_empty() {
                        commands.notify("the archive found no matching study", Level::Info);
                    }
                    self.selected.clear();
                    self.results = found;
                }
                Err(e) => commands.notify(e, Level::Error),
            }
        }
        let mut finished = false;
        if let Some((rx, done, total)) = &mut self.send {
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    SendMsg::Total(n) => *total = n,
                    SendMsg::Sent(sop) => {
                        *done += 1;
                        tracing::info!("stored {sop} in the archive");
                    }
                    SendMsg::Failed(e) => {
                        commands.notify(format!("sending to the archive: {e}"), Level::Error);
                        finished = true;
                    }
                    SendMsg::Done => {
                        commands.notify(
                            format!("{done} de-identified film(s) stored in the archive"),
                            Level::Info,
                        );
                        finished = true;
                    }
                }
            }
        }
        if finished {
            self.send = None;
        }
    }

    /// Opens the login prompt for the archive at `url`.
    pub fn ask_login(&mut self, url: &str) {
        self.url = url.to_string();
        self.shown = Some(PacsTab::Login);
    }

    /// Whether a search or an upload is under way (tests wait on it).
    pub fn busy(&self) -> bool {
        self.search.is_some() || self.send.is_some()
    }
}
