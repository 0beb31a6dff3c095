//! The application shell: creates and saves the app, polls its workers (film decoding, the model, the
//! whole-study prediction, training), turns keys into commands, lays out the panels, and applies the
//! frame's commands in one place ([`super::apply`]). What is open lives in [`Source`]; panels read it
//! and send [`Command`]s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use egui::{Color32, Key};

use crate::session::Arm;
use crate::session::joint_boxes::Side;

use super::command::Commands;
pub use super::command::{Command, Level, Page};
use super::loader::Loader;
use super::model::{ModelOutput, ModelState};
use super::panels::coordinator;
use super::panels::grading::{self, CaseView};
pub use super::panels::grading::{Draft, LEFT_KEYS, RIGHT_KEYS};
use super::panels::image_controls::{self, ImageContext, ViewerOptions};
use super::panels::model_output::ModelView;
use super::panels::notifications::Notifications;
pub use super::panels::notifications::Toast;
use super::panels::status_bar::{self, FrameStats, StatusLine};
use super::panels::top_bar::TopBar;
use super::panels::{help, review, worklist};
pub use super::study::{CoordinatorTab, Source, StudyMode, StudySession};
use super::training::TrainingPanel;
use super::viewer::{self, Film, ViewState};

/// What to open at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// The bundled demo study.
    Demo,
    /// A file, a folder, or a study file.
    Path(PathBuf),
    /// Nothing (an empty window).
    Nothing,
}

const RECENT_KEY: &str = "sacro.recent";

/// The application.
pub struct SacroApp {
    /// What is open.
    pub source: Source,
    pub(super) loader: Loader,
    /// The current film's key and view settings.
    pub(super) view: Option<(u64, ViewState)>,
    /// Notifications.
    pub toasts: Notifications,
    /// Recently opened studies and folders.
    pub recent: Vec<PathBuf>,
    top_bar: TopBar,
    pub(super) options: ViewerOptions,
    show_help: bool,
    readout: Option<(u32, u32, f32)>,
    pub(super) stats: FrameStats,
    /// Where the viewer was drawn in the last frame (points).
    pub last_view_rect: Option<egui::Rect>,
    /// The loaded model, if any.
    pub model: Option<ModelState>,
    /// What fills the window.
    pub page: Page,
    /// The training panel (kept while other pages are shown, so a run goes on).
    pub training: TrainingPanel,
    /// The archive windows ("Add from PACS…", "Send to archive…"); the film cache is the loader's
    /// (`set_film_cache`).
    pub pacs: super::pacs::PacsWindow,
    /// This frame's commands.
    pub(super) commands: Commands,
    /// The window's context (workers repaint it; the dashboard's analysis starts on it).
    pub(super) ctx: egui::Context,
}

impl std::fmt::Debug for SacroApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SacroApp")
            .field("source", &self.source)
            .finish()
    }
}

impl SacroApp {
    /// Creates the app (installs the viewer's GPU pipeline when running on wgpu) and opens `launch`.
    pub fn new(cc: &eframe::CreationContext<'_>, launch: Launch) -> Self {
        if let Some(rs) = &cc.wgpu_render_state {
            viewer::install(rs);
        }
        install_fonts(&cc.egui_ctx);
        let recent: Vec<PathBuf> = cc
            .storage
            .and_then(|s| eframe::get_value(s, RECENT_KEY))
            .unwrap_or_default();
        let mut app = Self {
            source: Source::Empty,
            loader: Loader::new(cc.egui_ctx.clone()),
            view: None,
            toasts: Notifications::default(),
            recent,
            top_bar: TopBar::default(),
            options: ViewerOptions::default(),
            show_help: false,
            readout: None,
            stats: FrameStats::default(),
            last_view_rect: None,
            model: None,
            page: Page::Work,
            training: TrainingPanel::default(),
            pacs: super::pacs::PacsWindow::default(),
            commands: Commands::default(),
            ctx: cc.egui_ctx.clone(),
        };
        match launch {
            Launch::Demo => app.apply(Command::OpenDemo),
            Launch::Path(p) => app.apply(Command::Open(p)),
            Launch::Nothing => {}
        }
        app
    }

    /// Loads a model folder for the reader-vs-model panel and heatmaps.
    pub fn load_model(&mut self, dir: &Path) {
        self.apply(Command::LoadModel(dir.to_path_buf()));
    }

    /// Fetches films of archived cases into `dir` instead of the default film cache (studies opened
    /// from now on).
    pub fn set_film_cache(&mut self, dir: PathBuf) {
        self.loader.set_cache_dir(dir);
    }

    /// Opens a study file (`.sacro`), a folder of films, or one film.
    pub fn open(&mut self, path: &Path) {
        self.apply(Command::Open(path.to_path_buf()));
    }

    /// Opens the demo study (copied into the data folder `data` on first use) as its demo reader on the
    /// first case not yet read (what `sacro` with no argument shows).
    pub fn open_demo_in(&mut self, data: &Path) {
        self.apply_demo(data);
    }

    /// Applies a command at once, as a panel's would be after the frame (tests and automation).
    pub fn apply_command(&mut self, command: Command) {
        self.apply(command);
    }

    /// Chooses who is reading: loads their work list and jumps to their first pending case.
    pub fn choose_reader(&mut self, name: &str) {
        self.apply(Command::ChooseReader(name.to_string()));
    }

    /// Moves to entry `i` of the work list.
    pub fn go_to(&mut self, i: usize) {
        self.apply(Command::GoTo(i));
    }

    /// Commits the draft of the current case; moves on to the next pending case when it was new.
    pub fn commit(&mut self) {
        self.apply(Command::Commit);
    }

    /// Opens a case for the coordinator's review.
    pub fn review_case(&mut self, case: &str) {
        self.apply(Command::ReviewCase(case.to_string()));
    }

    /// Starts the model on every case of the study that has no recorded prediction of it.
    pub fn predict_study(&mut self) {
        self.apply(Command::PredictStudy);
    }

    /// Whether the model's output may be shown for the current film: always outside studies; in a study
    /// only after the reader's own commit and if the coordinator allows it (blinding).
    pub fn model_visible(&self) -> bool {
        match &self.source {
            // A reader study shows the model in the aided arm only (the store decides the same).
            Source::Study(s) => match s.current_arm() {
                Some(arm) => arm == Arm::Aided,
                None => {
                    s.mode.is_reviewing()
                        || (s.own.is_some() && s.info.settings.reveal_model_after_commit)
                }
            },
            _ => true,
        }
    }

    /// The model's output for the current film, when visible and computed.
    pub fn model_output(&self) -> Option<&ModelOutput> {
        if !self.model_visible() {
            return None;
        }
        let path = self.current_path()?;
        self.model.as_ref()?.result(&path)
    }

    /// Waits until the model has finished the films it is running on (tests).
    pub fn wait_for_model(&mut self) {
        if let Some(m) = &mut self.model {
            let (ok, bad) = m.wait_idle(std::time::Duration::from_secs(120));
            self.record_predictions(ok);
            for (p, e) in bad {
                self.notify(format!("{}: model: {e}", p.display()), Level::Error);
            }
        }
    }

    /// Waits for the whole-study prediction to finish and records it (tests).
    pub fn wait_for_study_run(&mut self) {
        let start = Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(300) {
            self.poll_study_run();
            match &self.source {
                Source::Study(s) if s.study_run.is_some() => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                _ => return,
            }
        }
    }

    /// The path of the current film.
    pub fn current_path(&self) -> Option<PathBuf> {
        self.source.current_path()
    }

    /// The film shown now, if decoded.
    pub fn current_film(&self) -> Option<Arc<Film>> {
        self.current_path().and_then(|p| self.loader.get(&p))
    }

    /// Waits until background decoding is done (tests).
    pub fn wait_for_films(&mut self) {
        for (p, e) in self.loader.wait_idle(std::time::Duration::from_secs(60)) {
            self.notify(format!("{}: {e}", p.display()), Level::Error);
        }
    }

    /// The view settings of the current film, if shown.
    pub fn view_state(&self) -> Option<&ViewState> {
        self.view.as_ref().map(|(_, v)| v)
    }

    pub(super) fn notify(&mut self, text: impl Into<String>, level: Level) {
        self.toasts.push(text, level);
    }

    /// Films decoded, model results, the whole-study prediction and training events since the last
    /// frame; a dropped file opens.
    fn poll_workers(&mut self, ctx: &egui::Context) {
        for (p, e) in self.loader.poll() {
            self.notify(format!("{}: {e}", p.display()), Level::Error);
        }
        let dropped: Option<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .find(|p| !p.as_os_str().is_empty())
        });
        if let Some(p) = dropped {
            self.commands.send(Command::Open(p));
        }
        if let Some(m) = &mut self.model {
            let (ok, bad) = m.poll();
            self.record_predictions(ok);
            for (p, e) in bad {
                self.notify(format!("{}: model: {e}", p.display()), Level::Error);
            }
        }
        self.poll_study_run();
        self.retry_pending_commit();
        let (notes, _) = self.training.poll();
        for (n, error) in notes {
            self.notify(n, if error { Level::Error } else { Level::Info });
        }
    }

    /// The keys of this frame: grading (while reading), moving through the work list, the viewer's.
    fn keys(&mut self, ctx: &egui::Context, film: Option<&Arc<Film>>) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (mut arms, mut arms_or_reading) = (false, false);
        if let Source::Study(s) = &mut self.source
            && s.mode.reader().is_some()
        {
            arms_or_reading = true;
            arms = s.current_arm().is_some();
            grading::keys(ctx, &mut s.draft, arms, &mut self.commands);
        }
        let pressed = |k: Key| ctx.input(|i| i.key_pressed(k));
        if pressed(Key::N) || pressed(Key::ArrowRight) || pressed(Key::ArrowDown) {
            self.commands.send(Command::Step(1));
        }
        if pressed(Key::P) || pressed(Key::ArrowLeft) || pressed(Key::ArrowUp) {
            self.commands.send(Command::Step(-1));
        }
        let o = &mut self.options;
        if pressed(Key::F12) {
            o.show_debug = !o.show_debug;
        }
        if pressed(Key::C) {
            o.crop_tool = !o.crop_tool;
            o.box_tool = None;
        }
        // B: the joint-box tool, reading only: the patient's right joint, then left, then off.
        if pressed(Key::B) && arms_or_reading {
            o.box_tool = match o.box_tool {
                None => Some(Side::Right),
                Some(Side::Right) => Some(Side::Left),
                Some(Side::Left) => None,
            };
            o.crop_tool = false;
        }
        if pressed(Key::H) {
            o.heat_on = !o.heat_on;
        }
        if pressed(Key::Escape) {
            o.crop_tool = false;
            o.box_tool = None;
        }
        if let (Some(film), Some((key, view))) = (film, &mut self.view)
            && *key == film.key
        {
            image_controls::view_keys(ctx, film, view, !arms, &mut self.commands);
        }
    }

    /// The side panel beside the viewer: grading (reading), the review (coordinator), the image.
    fn side_panel(&mut self, ui: &mut egui::Ui, film: Option<&Arc<Film>>) {
        let path = self.current_path();
        let model = ModelView {
            model: self.model.as_ref(),
            path: path.as_deref(),
        };
        let mut crop = None;
        if let Source::Study(s) = &mut self.source {
            crop = s.crop;
            let StudySession {
                mode,
                worklist,
                index,
                draft,
                own,
                others,
                info,
                ..
            } = &mut **s;
            if let (Some(_), Some(entry)) = (mode.reader(), worklist.get(*index)) {
                let case = CaseView {
                    case: &entry.case_id,
                    own: own.as_ref(),
                    others: others.as_deref(),
                    locked: info.locked,
                    reveal_model: info.settings.reveal_model_after_commit,
                    arm: entry.arm,
                };
                grading::ui(ui, case, draft, &model, &mut self.commands);
                ui.separator();
            }
            if s.mode.is_reviewing() {
                review::ui(ui, s, &model);
                ui.separator();
            }
        }
        let Some(film) = film else { return };
        let view = match &mut self.view {
            Some((key, view)) if *key == film.key => Some(view),
            _ => None,
        };
        let joint_boxes = match &self.source {
            Source::Study(s) if s.mode.reader().is_some() => Some(s.own_joint_boxes()),
            _ => None,
        };
        let cx = ImageContext {
            in_study: matches!(self.source, Source::Study(_)),
            crop,
            model,
            joint_boxes,
        };
        image_controls::ui(ui, film, view, &mut self.options, cx, &mut self.commands);
    }

    /// The viewer (or why there is no film).
    fn central_panel(&mut self, ui: &mut egui::Ui, film: Option<&Arc<Film>>) {
        let Some(path) = self.current_path() else {
            ui.centered_and_justified(|ui| ui.label("No film open."));
            return;
        };
        let heat_shown = self.options.heat_on && self.model_visible();
        match (film, &mut self.view) {
            (Some(f), Some((_, view))) => {
                // Outlines: the crop (blue), the reader's own joint boxes (green), others' (grey).
                let mut outlines = Vec::new();
                if let Source::Study(s) = &self.source {
                    outlines.extend(s.crop.map(|c| (c, Color32::from_rgb(80, 200, 255))));
                    let me = s.mode.reader();
                    outlines.extend(s.joint_boxes.iter().map(|b| {
                        let colour = if Some(b.reader.as_str()) == me {
                            Color32::from_rgb(90, 220, 120)
                        } else {
                            Color32::GRAY
                        };
                        (b.rect, colour)
                    }));
                }
                let heat = if heat_shown {
                    self.model
                        .as_ref()
                        .and_then(|m| m.result(&path))
                        .map(|o| o.heat.clone())
                } else {
                    None
                };
                view.heat_opacity = if heat.is_some() {
                    self.options.heat_opacity
                } else {
                    0.0
                };
                let drawing = self.options.crop_tool || self.options.box_tool.is_some();
                let out = viewer::show(ui, f, view, heat.as_ref(), drawing, &outlines);
                self.readout = out.readout;
                self.last_view_rect = out.rect;
                self.stats.painted(&path);
                if let Some(c) = out.new_crop {
                    match self.options.box_tool {
                        // The patient's right joint first, then the left; then the tool is off.
                        Some(side) => {
                            self.commands.send(Command::SetJointBox(side, Some(c)));
                            self.options.box_tool = (side == Side::Right).then_some(Side::Left);
                        }
                        None => {
                            self.options.crop_tool = false;
                            self.commands.send(Command::SetCrop(Some(c)));
                        }
                    }
                }
            }
            _ => {
                // A failed fetch from an archive is tried again after a while (a no-op otherwise).
                if self.loader.error(&path).is_some() {
                    self.loader.request(&path);
                    ui.ctx()
                        .request_repaint_after(std::time::Duration::from_secs(5));
                }
                let text = match self.loader.error(&path) {
                    // In a study the film is named by its pseudonymous case ID: its path may name the
                    // patient (PACS exports put names and record numbers in folder names).
                    Some(e) => match &self.source {
                        Source::Study(s) => format!(
                            "Cannot show case {}:\n{}",
                            s.current_case().unwrap_or("?"),
                            e.replace(&path.display().to_string(), "the film")
                        ),
                        _ => format!("Cannot show {}:\n{e}", path.display()),
                    },
                    None => {
                        if !self.loader.is_pending(&path) {
                            self.loader.request(&path);
                        }
                        if self.loader.is_fetching(&path) {
                            "Fetching the film from the archive…".to_string()
                        } else {
                            "Decoding…".to_string()
                        }
                    }
                };
                // A film the archive would not give: the login may be missing or wrong.
                if let Some(url) = self
                    .loader
                    .archive_of(&path)
                    .filter(|_| self.loader.error(&path).is_some())
                {
                    ui.vertical_centered(|ui| {
                        if ui.button("Log in to the archive…").clicked() {
                            self.pacs.ask_login(&url);
                        }
                    });
                }
                ui.centered_and_justified(|ui| ui.label(text));
            }
        }
    }

    /// Applies the frame's commands (each may queue notifications), and repaints if any changed state.
    fn apply_queued(&mut self) {
        let queued = self.commands.take();
        if queued.is_empty() {
            return;
        }
        for c in queued {
            self.apply(c);
        }
        self.ctx.request_repaint();
    }
}

impl eframe::App for SacroApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let started = Instant::now();
        let ctx = ui.ctx().clone();
        self.poll_workers(&ctx);
        self.apply_queued();
        self.refresh_study_views();
        let film = self.current_film();
        if let (Some(f), Some(p), true) = (&film, self.current_path(), self.model_visible())
            && let Some(m) = &mut self.model
        {
            m.request(&p, f, &ctx);
        }
        if let Some(f) = &film
            && self.view.as_ref().is_none_or(|(k, _)| *k != f.key)
        {
            self.view = Some((f.key, ViewState::for_film(f)));
        }
        self.keys(&ctx, film.as_ref());

        egui::Panel::top("top").show(ui, |ui| {
            let mut help = self.show_help;
            self.top_bar
                .ui(ui, &self.recent, self.page, &mut help, &mut self.commands);
            self.show_help = help;
            if let Source::Study(s) = &self.source {
                TopBar::study_ui(ui, s, &mut self.commands);
            }
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            let line = StatusLine {
                readout: self.readout,
                view: self.view_state(),
                crop_tool: self.options.crop_tool,
                show_debug: self.options.show_debug,
                decode_s: self.loader.last_decode_s,
            };
            status_bar::ui(ui, line, &self.stats);
        });
        if self.page == Page::Training {
            egui::CentralPanel::default().show(ui, |ui| {
                if let Some(dir) = self.training.ui(ui) {
                    self.commands.send(Command::LoadModel(dir));
                }
            });
        } else {
            egui::Panel::left("worklist")
                .resizable(true)
                .default_size(200.0)
                .show(ui, |ui| worklist::ui(ui, &self.source, &mut self.commands));
            let coordinating = matches!(&self.source, Source::Study(s) if s.is_coordinating());
            if !coordinating {
                egui::Panel::right("side")
                    .resizable(true)
                    .default_size(300.0)
                    .show(ui, |ui| {
                        egui::ScrollArea::vertical()
                            .show(ui, |ui| self.side_panel(ui, film.as_ref()));
                    });
            }
            egui::CentralPanel::default().show(ui, |ui| {
                if let Source::Study(s) = &mut self.source
                    && let StudyMode::Coordinating { tab } = s.mode
                {
                    let parts = s.coordinator_parts(tab);
                    coordinator::ui(ui, parts, self.model.as_ref(), &mut self.commands);
                    return;
                }
                self.central_panel(ui, film.as_ref());
            });
        }
        self.apply_queued();
        help::ui(&ctx, &mut self.show_help);
        let in_study = matches!(self.source, Source::Study(_));
        self.pacs.ui(&ctx, in_study, &mut self.commands);
        self.toasts.ui(&ctx);
        let view = self.view.as_mut().map(|(_, v)| v);
        self.stats.bench(&ctx, view, self.loader.last_decode_s);
        self.stats.record_frame(started);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, RECENT_KEY, &self.recent);
    }
}

/// Adds the bundled DejaVu Sans behind egui's fonts, for the symbols and non-Latin names they lack.
fn install_fonts(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    fonts.font_data.insert(
        "DejaVuSans".into(),
        Arc::new(egui::FontData::from_static(crate::assets::DEJAVU_SANS)),
    );
    for family in [egui::FontFamily::Proportional, egui::FontFamily::Monospace] {
        fonts
            .families
            .entry(family)
            .or_default()
            .push("DejaVuSans".into());
    }
    ctx.set_fonts(fonts);
}
