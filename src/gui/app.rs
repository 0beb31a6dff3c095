//! Application state and panels: what is open (a file, a folder, or a reading-sessions study), the work
//! list, the viewer, the grading panel, the coordinator's view and notifications. Everything a reader
//! commits goes to the store at once; errors are shown as notifications, never as a crash.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use egui::{Align, Color32, Key, Layout, RichText};

use super::compare::CompareView;
use super::dashboard::Dashboard;
use super::loader::Loader;
use super::model::{ModelState, StudyRun};
use super::training::TrainingPanel;
use super::viewer::{self, Film, ViewState};
use crate::grading::{Assessment, Classification, JointGrade, JointGrades, Reading};
use crate::imaging::has_image_extension;
use crate::session::{
    self, CropRect, ReaderInfo, ReadingRecord, Role, SqliteStore, StudyInfo, StudySettings,
    StudyStatus, StudyStore, WorklistEntry,
};

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

/// Grading keys: left joint 0–4 and right joint 0–4.
pub const LEFT_KEYS: [Key; 5] = [Key::Q, Key::W, Key::E, Key::R, Key::T];
/// Right joint 0–4.
pub const RIGHT_KEYS: [Key; 5] = [Key::A, Key::S, Key::D, Key::F, Key::G];
const KEY_NAMES_LEFT: [&str; 5] = ["Q", "W", "E", "R", "T"];
const KEY_NAMES_RIGHT: [&str; 5] = ["A", "S", "D", "F", "G"];

/// Severity of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Information.
    Info,
    /// Something failed.
    Error,
}

/// A non-blocking notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    /// Text.
    pub text: String,
    /// Severity.
    pub level: Level,
    /// When it was shown (egui time, s).
    pub since: f64,
}

/// A reading being prepared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// Left joint.
    pub left: Option<JointGrade>,
    /// Right joint.
    pub right: Option<JointGrade>,
    /// Not assessable.
    pub not_assessable: bool,
    /// Why not assessable.
    pub reason: String,
    /// Comment.
    pub comment: String,
}

impl Draft {
    fn from_reading(r: &Reading) -> Self {
        let mut d = Self {
            comment: r.comment.clone().unwrap_or_default(),
            ..Self::default()
        };
        match &r.assessment {
            Assessment::Graded(g) => {
                d.left = Some(g.left);
                d.right = Some(g.right);
            }
            Assessment::NotAssessable { reason } => {
                d.not_assessable = true;
                d.reason = reason.clone();
            }
        }
        d
    }

    /// The reading, when complete.
    pub fn reading(&self) -> Result<Reading, String> {
        let comment = Some(self.comment.trim().to_string()).filter(|c| !c.is_empty());
        if self.not_assessable {
            if self.reason.trim().is_empty() {
                return Err("\"not assessable\" needs a reason".into());
            }
            return Ok(Reading {
                assessment: Assessment::NotAssessable {
                    reason: self.reason.trim().to_string(),
                },
                comment,
            });
        }
        match (self.left, self.right) {
            (Some(l), Some(r)) => Ok(Reading {
                assessment: Assessment::Graded(JointGrades::new(l, r)),
                comment,
            }),
            _ => Err("grade both joints first".into()),
        }
    }
}

/// An open study.
pub struct StudySession {
    /// Study file.
    pub path: PathBuf,
    /// Its store.
    pub store: SqliteStore,
    /// Protocol, lock, settings.
    pub info: StudyInfo,
    /// Readers.
    pub readers: Vec<ReaderInfo>,
    /// Who is reading (None: not chosen yet).
    pub reader: Option<String>,
    /// Coordinator view instead of reading.
    pub coordinator: bool,
    /// The reader's work list.
    pub worklist: Vec<WorklistEntry>,
    /// Position in it.
    pub index: usize,
    /// The reading being prepared.
    pub draft: Draft,
    /// The reader's committed reading of the current case.
    pub own: Option<ReadingRecord>,
    /// Other readers' readings (only after the reader's own commit and if the study allows).
    pub others: Option<Vec<ReadingRecord>>,
    /// The current case's crop rectangle.
    pub crop: Option<CropRect>,
    /// Coordinator's status (refreshed on demand).
    pub status: Option<StudyStatus>,
    /// Export destination typed by the coordinator.
    pub export_path: String,
    /// Lock confirmation box.
    pub confirm_lock: bool,
    /// New reader's name and role (coordinator view).
    pub new_reader: (String, Role),
    /// Coordinator's tab.
    pub tab: CoordinatorTab,
    /// The compare table (rebuilt when readings or predictions change).
    pub compare: Option<CompareView>,
    /// The statistics dashboard.
    pub dashboard: Dashboard,
    /// The model running over the whole study.
    pub study_run: Option<StudyRun>,
    /// The coordinator is reviewing cases (opened from the compare table): every case, no grading.
    pub review: bool,
    /// Each case's film, resolved once at opening (asked for several times a frame).
    paths: std::collections::HashMap<String, PathBuf>,
}

impl std::fmt::Debug for StudySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudySession")
            .field("path", &self.path)
            .field("reader", &self.reader)
            .field("index", &self.index)
            .finish()
    }
}

impl StudySession {
    fn open(path: &Path) -> Result<Self, String> {
        let store = SqliteStore::open(path).map_err(|e| e.to_string())?;
        // Never freeze the window for long behind another program's write: fail, say so, keep the draft.
        store
            .set_busy_timeout(std::time::Duration::from_millis(1500))
            .map_err(|e| e.to_string())?;
        let info = store.info().map_err(|e| e.to_string())?;
        let readers = store.readers().map_err(|e| e.to_string())?;
        let paths = store
            .cases()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|c| store.resolve(&c).map(|p| (c.id, p)))
            .collect();
        let export_path = path
            .with_file_name("readings_export.csv")
            .to_string_lossy()
            .into_owned();
        Ok(Self {
            path: path.to_path_buf(),
            store,
            info,
            readers,
            reader: None,
            coordinator: false,
            worklist: Vec::new(),
            index: 0,
            draft: Draft::default(),
            own: None,
            others: None,
            crop: None,
            status: None,
            export_path,
            confirm_lock: false,
            new_reader: (String::new(), Role::Reader),
            tab: CoordinatorTab::Overview,
            compare: None,
            dashboard: Dashboard::default(),
            study_run: None,
            review: false,
            paths,
        })
    }

    fn current_case(&self) -> Option<&str> {
        self.worklist.get(self.index).map(|e| e.case_id.as_str())
    }

    fn case_path(&self, case_id: &str) -> Option<PathBuf> {
        self.paths.get(case_id).cloned()
    }
}

/// The coordinator view's tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorTab {
    /// Progress, readers, blinding, prediction of the whole study, export, lock.
    Overview,
    /// Readers, consensus and model case by case.
    Compare,
    /// The seed study's analysis.
    Statistics,
}

/// What fills the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Page {
    /// Viewing, reading, coordinating.
    #[default]
    Work,
    /// The training panel.
    Training,
}

/// What is open.
#[derive(Debug, Default)]
pub enum Source {
    /// Nothing yet.
    #[default]
    Empty,
    /// Loose files (a file or a folder): viewing only.
    Files {
        /// The films.
        paths: Vec<PathBuf>,
        /// Current one.
        index: usize,
    },
    /// A reading-sessions study.
    Study(Box<StudySession>),
}

const RECENT_KEY: &str = "sacro.recent";

/// The application.
pub struct SacroApp {
    /// What is open.
    pub source: Source,
    loader: Loader,
    view: Option<(u64, ViewState)>,
    /// Notifications.
    pub toasts: Vec<Toast>,
    /// Recently opened studies and folders.
    pub recent: Vec<PathBuf>,
    path_field: String,
    crop_tool: bool,
    show_debug: bool,
    show_help: bool,
    frame_ms: Vec<f32>,
    readout: Option<(u32, u32, f32)>,
    /// When the current film was requested (for the time-to-pixels measurement).
    requested_at: Option<(PathBuf, Instant)>,
    /// Milliseconds from request to first paint of the last film.
    pub last_open_ms: Option<f64>,
    pending_toasts: Vec<(String, Level)>,
    /// Where the viewer was drawn in the last frame (points).
    pub last_view_rect: Option<egui::Rect>,
    /// The loaded model, if any.
    pub model: Option<ModelState>,
    model_field: String,
    /// Heatmap shown (H).
    pub heat_on: bool,
    heat_opacity: f32,
    /// What fills the window.
    pub page: Page,
    /// The training panel (kept while other pages are shown, so a run goes on).
    pub training: TrainingPanel,
    /// Frame benchmark (`SACRO_FRAME_BENCH=N`): frames left, and the intervals measured.
    bench: Option<(usize, Vec<f64>, Option<Instant>)>,
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
            toasts: Vec::new(),
            recent,
            path_field: String::new(),
            crop_tool: false,
            show_debug: false,
            show_help: false,
            frame_ms: Vec::new(),
            readout: None,
            requested_at: None,
            last_open_ms: None,
            pending_toasts: Vec::new(),
            last_view_rect: None,
            model: None,
            model_field: String::new(),
            heat_on: false,
            heat_opacity: 0.5,
            page: Page::Work,
            training: TrainingPanel::default(),
            bench: std::env::var("SACRO_FRAME_BENCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(|n| (n, Vec::new(), None)),
        };
        match launch {
            Launch::Demo => match super::demo_study() {
                Ok(p) => app.open(&p),
                Err(e) => app.notify(e, Level::Error),
            },
            Launch::Path(p) => app.open(&p),
            Launch::Nothing => {}
        }
        app
    }

    /// Loads a model folder for the reader-vs-model panel and heatmaps.
    pub fn load_model(&mut self, dir: &Path) {
        match ModelState::load(dir) {
            Ok(m) => {
                self.notify(
                    format!(
                        "model {} loaded ({})",
                        m.predictor.card.name,
                        &m.sha256()[..12]
                    ),
                    Level::Info,
                );
                self.model = Some(m);
            }
            Err(e) => self.notify(e, Level::Error),
        }
    }

    /// Whether the model's output may be shown for the current film: always outside studies; in a study
    /// only after the reader's own commit and if the coordinator allows it (blinding).
    pub fn model_visible(&self) -> bool {
        match &self.source {
            Source::Study(s) => {
                s.review || (s.own.is_some() && s.info.settings.reveal_model_after_commit)
            }
            _ => true,
        }
    }

    /// The model's output for the current film, when visible and computed.
    pub fn model_output(&self) -> Option<&super::model::ModelOutput> {
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

    /// Caches finished predictions in the study store, keyed by the model's SHA-256.
    fn record_predictions(&mut self, done: Vec<(PathBuf, String, f32)>) {
        let Source::Study(s) = &self.source else {
            return;
        };
        let mut errors = Vec::new();
        for (path, sha, p) in done {
            let case = s
                .worklist
                .iter()
                .find(|e| s.case_path(&e.case_id).as_deref() == Some(path.as_path()))
                .map(|e| e.case_id.clone());
            if let Some(case) = case
                && let Err(e) = s.store.record_prediction(&case, &sha, f64::from(p))
            {
                errors.push(e.to_string());
            }
        }
        for e in errors {
            self.notify(e, Level::Error);
        }
    }

    fn model_lines(&self, ui: &mut egui::Ui) {
        let Some(m) = &self.model else {
            ui.label("no model loaded (Model field above)");
            return;
        };
        // What the model is for travels with every result (the demo model: synthetic phantoms only).
        ui.small(format!(
            "model {}: {}",
            m.predictor.card.name, m.predictor.card.intended_use
        ));
        let Some(path) = self.current_path() else {
            return;
        };
        match m.result(&path) {
            Some(o) => {
                ui.label(
                    RichText::new(format!("Model: probability {:.3}", o.probability)).strong(),
                );
                ui.small(format!(
                    "heatmap (H): {} of \"{}\"",
                    match o.method {
                        crate::model::gradcam::CamMethod::GradCam => "Grad-CAM",
                        crate::model::gradcam::CamMethod::GradCamPlusPlus => "Grad-CAM++",
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
            None if m.is_pending(&path) => {
                ui.label("model running…");
            }
            None => {
                ui.label("model: no result");
            }
        }
    }

    fn notify(&mut self, text: impl Into<String>, level: Level) {
        self.pending_toasts.push((text.into(), level));
    }

    /// Opens a study file (`.sacro`), a folder of films, or one film.
    pub fn open(&mut self, path: &Path) {
        let is_study = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("sacro"));
        if is_study {
            match StudySession::open(path) {
                Ok(s) => {
                    let single_reader = (s.readers.len() == 1)
                        .then(|| s.readers.first().map(|r| r.name.clone()))
                        .flatten();
                    self.source = Source::Study(Box::new(s));
                    self.remember(path);
                    if let Some(r) = single_reader {
                        self.choose_reader(&r);
                    }
                }
                Err(e) => self.notify(e, Level::Error),
            }
        } else if path.is_dir() {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.is_file() && has_image_extension(p))
                        .collect()
                })
                .unwrap_or_default();
            paths.sort();
            if paths.is_empty() {
                self.notify(
                    format!("{}: no DICOM, TIFF or PNG files", path.display()),
                    Level::Error,
                );
                return;
            }
            self.source = Source::Files { paths, index: 0 };
            self.remember(path);
            self.go_to(0);
        } else if path.is_file() {
            self.source = Source::Files {
                paths: vec![path.to_path_buf()],
                index: 0,
            };
            self.go_to(0);
        } else {
            self.notify(
                format!("{}: no such file or folder", path.display()),
                Level::Error,
            );
        }
    }

    fn remember(&mut self, path: &Path) {
        let p = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.recent.retain(|r| r != &p);
        self.recent.insert(0, p);
        self.recent.truncate(8);
    }

    /// Chooses who is reading: loads their work list and jumps to their first pending case.
    pub fn choose_reader(&mut self, name: &str) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        match s.store.worklist(name) {
            Ok(list) => {
                s.reader = Some(name.to_string());
                s.coordinator = false;
                s.review = false;
                let first = list.iter().position(|e| !e.done).unwrap_or(0);
                s.worklist = list;
                if s.worklist.is_empty() {
                    self.notify(format!("{name} has no cases to read"), Level::Info);
                }
                self.go_to(first);
            }
            Err(e) => self.notify(e.to_string(), Level::Error),
        }
    }

    /// The path of the current film.
    pub fn current_path(&self) -> Option<PathBuf> {
        match &self.source {
            Source::Empty => None,
            Source::Files { paths, index } => paths.get(*index).cloned(),
            Source::Study(s) => s.current_case().and_then(|c| s.case_path(c)),
        }
    }

    fn path_at(&self, i: usize) -> Option<PathBuf> {
        match &self.source {
            Source::Empty => None,
            Source::Files { paths, .. } => paths.get(i).cloned(),
            Source::Study(s) => s.worklist.get(i).and_then(|e| s.case_path(&e.case_id)),
        }
    }

    fn len(&self) -> usize {
        match &self.source {
            Source::Empty => 0,
            Source::Files { paths, .. } => paths.len(),
            Source::Study(s) => s.worklist.len(),
        }
    }

    /// Moves to entry `i` of the work list: loads the reader's state of that case and requests its film
    /// and the next one (prefetch).
    pub fn go_to(&mut self, i: usize) {
        let n = self.len();
        if n == 0 {
            return;
        }
        let i = i.min(n - 1);
        let mut error = None;
        match &mut self.source {
            Source::Empty => {}
            Source::Files { index, .. } => *index = i,
            Source::Study(s) => {
                s.index = i;
                s.draft = Draft::default();
                s.own = None;
                s.others = None;
                s.crop = None;
                if let (Some(reader), Some(case)) = (s.reader.clone(), s.current_case()) {
                    let case = case.to_string();
                    match s.store.own_reading(&reader, &case) {
                        Ok(own) => {
                            if let Some(o) = &own {
                                s.draft = Draft::from_reading(&o.reading);
                            }
                            s.own = own;
                        }
                        Err(e) => error = Some(e.to_string()),
                    }
                    match s.store.crop(&case) {
                        Ok(c) => s.crop = c,
                        Err(e) => error = Some(e.to_string()),
                    }
                    if s.own.is_some() && s.info.settings.reveal_readers_after_commit {
                        s.others = s.store.others_readings(&reader, &case).ok();
                    }
                }
            }
        }
        if let Some(e) = error {
            self.notify(e, Level::Error);
        }
        self.crop_tool = false;
        if let Some(p) = self.current_path() {
            self.loader.request(&p);
            self.requested_at = Some((p, Instant::now()));
        }
        if let Some(next) = self.path_at(i + 1) {
            self.loader.request(&next);
        }
    }

    fn step(&mut self, delta: isize) {
        let i = match &self.source {
            Source::Files { index, .. } => *index,
            Source::Study(s) => s.index,
            Source::Empty => return,
        };
        let j = i
            .saturating_add_signed(delta)
            .min(self.len().saturating_sub(1));
        if j != i {
            self.go_to(j);
        }
    }

    /// Commits the draft of the current case; moves on to the next pending case when it was new.
    pub fn commit(&mut self) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        let (Some(reader), Some(case)) = (s.reader.clone(), s.current_case().map(str::to_string))
        else {
            return;
        };
        let reading = match s.draft.reading() {
            Ok(r) => r,
            Err(e) => {
                self.notify(e, Level::Error);
                return;
            }
        };
        let reason = s.own.as_ref().map(|_| "changed in the reading workstation");
        match s.store.commit_reading(&reader, &case, &reading, reason) {
            Ok(outcome) => {
                let was_new = s.own.is_none();
                if let Some(e) = s.worklist.get_mut(s.index) {
                    e.done = true;
                }
                let msg = match outcome {
                    session::CommitOutcome::Created => format!("{case}: reading committed"),
                    session::CommitOutcome::Changed => format!("{case}: reading changed"),
                    session::CommitOutcome::Unchanged => format!("{case}: unchanged"),
                };
                let next = s
                    .worklist
                    .iter()
                    .enumerate()
                    .skip(s.index + 1)
                    .chain(s.worklist.iter().enumerate().take(s.index))
                    .find(|(_, e)| !e.done)
                    .map(|(i, _)| i);
                let index = s.index;
                self.notify(msg, Level::Info);
                match next {
                    Some(n) if was_new => self.go_to(n),
                    _ => {
                        self.go_to(index);
                        if next.is_none() && was_new {
                            self.notify("work list complete", Level::Info);
                        }
                    }
                }
            }
            Err(e) => self.notify(format!("{case}: not committed: {e}"), Level::Error),
        }
    }

    fn set_crop(&mut self, crop: Option<CropRect>) {
        let Source::Study(s) = &mut self.source else {
            self.notify("crop rectangles are kept with a study's cases", Level::Info);
            return;
        };
        let actor = s.reader.clone().unwrap_or_else(|| "coordinator".into());
        let Some(case) = s.current_case().map(str::to_string) else {
            return;
        };
        match s.store.set_crop(&actor, &case, crop) {
            Ok(()) => {
                s.crop = crop;
                self.notify(
                    match crop {
                        Some(c) => format!("{case}: crop {}×{} saved", c.width, c.height),
                        None => format!("{case}: crop cleared"),
                    },
                    Level::Info,
                );
            }
            Err(e) => self.notify(e.to_string(), Level::Error),
        }
    }

    fn keyboard(&mut self, ctx: &egui::Context, film: Option<&Arc<Film>>) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let pressed = |k: Key| ctx.input(|i| i.key_pressed(k));
        let reading =
            matches!(&self.source, Source::Study(s) if s.reader.is_some() && !s.coordinator);
        if reading && let Source::Study(s) = &mut self.source {
            for v in 0..5u8 {
                if pressed(LEFT_KEYS[v as usize]) {
                    s.draft.left = JointGrade::from_value(i64::from(v)).ok();
                    s.draft.not_assessable = false;
                }
                if pressed(RIGHT_KEYS[v as usize]) {
                    s.draft.right = JointGrade::from_value(i64::from(v)).ok();
                    s.draft.not_assessable = false;
                }
            }
        }
        if reading && pressed(Key::Enter) {
            self.commit();
        }
        if pressed(Key::N) || pressed(Key::ArrowRight) || pressed(Key::ArrowDown) {
            self.step(1);
        }
        if pressed(Key::P) || pressed(Key::ArrowLeft) || pressed(Key::ArrowUp) {
            self.step(-1);
        }
        if pressed(Key::F12) {
            self.show_debug = !self.show_debug;
        }
        if pressed(Key::C) {
            self.crop_tool = !self.crop_tool;
        }
        if pressed(Key::H) {
            self.heat_on = !self.heat_on;
        }
        if pressed(Key::Escape) {
            self.crop_tool = false;
        }
        let Some(film) = film else { return };
        let Some((key, view)) = &mut self.view else {
            return;
        };
        if *key != film.key {
            return;
        }
        if pressed(Key::I) {
            view.invert = !view.invert;
        }
        if pressed(Key::Space) {
            *view = ViewState::for_film(film);
        }
        if pressed(Key::Home) {
            view.zoom = None;
        }
        if pressed(Key::Num0) {
            view.zoom = Some(1.0 / ctx.pixels_per_point());
        }
        let presets = [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5];
        let mut err = None;
        for (n, k) in presets.iter().enumerate() {
            if pressed(*k)
                && let Err(e) = view.apply_preset(film, n + 1)
            {
                err = Some(e);
            }
        }
        if let Some(e) = err {
            self.notify(e, Level::Error);
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong("Sacro");
            ui.separator();
            if ui.button("Open file…").clicked() {
                match rfd::FileDialog::new()
                    .add_filter("radiographs and studies", &["dcm", "dicom", "tif", "tiff", "png", "sacro"])
                    .add_filter("all files", &["*"])
                    .pick_file()
                {
                    Some(p) => self.open(&p),
                    None => self.notify(
                        "no file chosen (if no dialog appeared, type a path or drop a file on the window)",
                        Level::Info,
                    ),
                }
            }
            if ui.button("Open folder…").clicked() {
                match rfd::FileDialog::new().pick_folder() {
                    Some(p) => self.open(&p),
                    None => self.notify(
                        "no folder chosen (if no dialog appeared, type a path or drop a folder on the window)",
                        Level::Info,
                    ),
                }
            }
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.path_field)
                    .hint_text("path to a film, folder or study.sacro")
                    .desired_width(320.0),
            );
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
            if (ui.button("Open").clicked() || enter) && !self.path_field.trim().is_empty() {
                let p = PathBuf::from(self.path_field.trim());
                self.open(&p);
            }
            let mf = ui.add(
                egui::TextEdit::singleline(&mut self.model_field)
                    .hint_text("model folder")
                    .desired_width(160.0),
            );
            let enter = mf.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
            if (ui.button("Load model").clicked() || enter) && !self.model_field.trim().is_empty() {
                let p = PathBuf::from(self.model_field.trim());
                self.load_model(&p);
            }
            if ui.button("Demo study").clicked() {
                match super::demo_study() {
                    Ok(p) => self.open(&p),
                    Err(e) => self.notify(e, Level::Error),
                }
            }
            if !self.recent.is_empty() {
                let mut chosen = None;
                egui::ComboBox::from_label("recent")
                    .selected_text("open…")
                    .show_ui(ui, |ui| {
                        for r in &self.recent {
                            if ui.button(r.display().to_string()).clicked() {
                                chosen = Some(r.clone());
                            }
                        }
                    });
                if let Some(p) = chosen {
                    self.open(&p);
                }
            }
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                if ui.button("Keys").clicked() {
                    self.show_help = !self.show_help;
                }
                let mut training = self.page == Page::Training;
                if ui.toggle_value(&mut training, "Training").changed() {
                    self.page = if training { Page::Training } else { Page::Work };
                    if training
                        && self.training.data_path.is_empty()
                        && let Source::Study(s) = &self.source
                    {
                        let fresh = TrainingPanel::for_study(&s.path);
                        self.training.data_path = fresh.data_path;
                        self.training.out_dir = fresh.out_dir;
                    }
                }
            });
        });
        if let Source::Study(s) = &mut self.source {
            let mut choose = None;
            let mut coordinator = s.coordinator;
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
                egui::ComboBox::from_label("Reader")
                    .selected_text(s.reader.clone().unwrap_or_else(|| "choose…".into()))
                    .show_ui(ui, |ui| {
                        for r in &s.readers {
                            if ui
                                .selectable_label(
                                    s.reader.as_deref() == Some(&r.name),
                                    format!("{} ({})", r.name, r.role.as_str()),
                                )
                                .clicked()
                            {
                                choose = Some(r.name.clone());
                            }
                        }
                    });
                ui.toggle_value(&mut coordinator, "Coordinator view");
            });
            if coordinator != s.coordinator {
                s.coordinator = coordinator;
                s.status = None;
                if coordinator {
                    s.reader = None;
                    s.review = false;
                    // Readings may have changed while reading.
                    if let Some(c) = &mut s.compare {
                        c.stale = true;
                    }
                    s.dashboard.invalidate();
                }
            }
            if s.review && !s.coordinator {
                let mut back = false;
                ui.horizontal(|ui| {
                    ui.label(
                        RichText::new("Reviewing as coordinator (no grading)")
                            .color(Color32::YELLOW),
                    );
                    back = ui.button("Back to the compare table").clicked();
                });
                if back {
                    s.review = false;
                    s.coordinator = true;
                    s.tab = CoordinatorTab::Compare;
                }
            }
            if let Some(r) = choose {
                self.choose_reader(&r);
            }
        }
    }

    fn worklist_panel(&mut self, ui: &mut egui::Ui) {
        let mut goto = None;
        match &self.source {
            Source::Empty => {
                ui.label("Open a study, a folder or a film:");
                ui.label("• the buttons above,");
                ui.label("• a path typed above,");
                ui.label("• or drop it on this window.");
            }
            Source::Files { paths, index } => {
                ui.heading("Films");
                ui.label(format!("{} files (viewing only)", paths.len()));
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
            }
            Source::Study(s) => {
                ui.heading("Work list");
                match &s.reader {
                    None if s.review => {
                        ui.label("All cases (✔ has a consensus label)");
                        goto = case_list(ui, &s.worklist, s.index);
                    }
                    None => {
                        ui.label("Choose who you are (Reader, above).");
                    }
                    Some(r) => {
                        let done = s.worklist.iter().filter(|e| e.done).count();
                        ui.label(format!("{r}: {done} of {} read", s.worklist.len()));
                        ui.add(
                            egui::ProgressBar::new(done as f32 / s.worklist.len().max(1) as f32)
                                .show_percentage(),
                        );
                        goto = case_list(ui, &s.worklist, s.index);
                    }
                }
            }
        }
        if let Some(i) = goto {
            self.go_to(i);
        }
    }

    fn grading_panel(&mut self, ui: &mut egui::Ui) {
        let mut commit = false;
        let Source::Study(s) = &mut self.source else {
            return;
        };
        let Some(case) = s.current_case().map(str::to_string) else {
            return;
        };
        ui.heading(format!("Case {case}"));
        match &s.own {
            Some(o) => ui.label(
                RichText::new(format!("committed {}", o.committed_at)).color(Color32::LIGHT_GREEN),
            ),
            None => ui.label("not yet read"),
        };
        ui.add_space(6.0);
        for (side, keys, title) in [
            (0, KEY_NAMES_LEFT, "Left sacroiliac joint (patient's left)"),
            (
                1,
                KEY_NAMES_RIGHT,
                "Right sacroiliac joint (patient's right)",
            ),
        ] {
            ui.label(RichText::new(title).strong());
            let slot = if side == 0 {
                &mut s.draft.left
            } else {
                &mut s.draft.right
            };
            ui.horizontal_wrapped(|ui| {
                for v in 0..5i64 {
                    let Ok(g) = JointGrade::from_value(v) else {
                        continue;
                    };
                    let label = format!("{v} [{}]", keys[v as usize]);
                    let resp = ui
                        .selectable_label(*slot == Some(g), label)
                        .on_hover_text(format!("{}: {}", g.name(), g.description()));
                    if resp.clicked() {
                        *slot = Some(g);
                        s.draft.not_assessable = false;
                    }
                }
            });
            if let Some(g) = slot {
                ui.small(format!("{}: {}", g.name(), g.description()));
            }
            ui.add_space(4.0);
        }
        ui.separator();
        match s.draft.reading() {
            Ok(r) => match r.definite() {
                Some(d) => {
                    let text = format!(
                        "Definite radiographic sacroiliitis: {} ({})",
                        if d { "YES" } else { "no" },
                        Classification::from_definite(d).abbreviation()
                    );
                    ui.label(RichText::new(text).strong().color(if d {
                        Color32::from_rgb(255, 170, 80)
                    } else {
                        Color32::LIGHT_BLUE
                    }));
                }
                None => {
                    ui.label("Not assessable");
                }
            },
            Err(e) => {
                ui.label(RichText::new(e).weak());
            }
        }
        ui.small("mNY: definite = grade ≥ 2 on both sides or ≥ 3 on one");
        ui.add_space(4.0);
        ui.checkbox(&mut s.draft.not_assessable, "Not assessable");
        if s.draft.not_assessable {
            ui.add(egui::TextEdit::singleline(&mut s.draft.reason).hint_text("reason (required)"));
        }
        ui.add(
            egui::TextEdit::multiline(&mut s.draft.comment)
                .hint_text("comment")
                .desired_rows(2),
        );
        let label = if s.own.is_some() {
            "Commit change (Enter)"
        } else {
            "Commit (Enter)"
        };
        if ui
            .add_enabled(
                s.draft.reading().is_ok() && !s.info.locked,
                egui::Button::new(label),
            )
            .clicked()
        {
            commit = true;
        }
        ui.separator();
        // Blinding: nothing of other readers or the model before the reader's own commit.
        ui.label(RichText::new("Other readers and model").strong());
        if s.own.is_none() {
            ui.label("hidden until you commit (blinded)");
        } else if let Some(others) = &s.others {
            if others.is_empty() {
                ui.label("no other readings yet");
            }
            for o in others {
                let call = match o.reading.definite() {
                    Some(true) => "definite",
                    Some(false) => "not definite",
                    None => "not assessable",
                };
                let grades = o
                    .reading
                    .grades()
                    .map(|g| format!("{}/{}", g.left.value(), g.right.value()))
                    .unwrap_or_else(|| "–".into());
                ui.label(format!(
                    "{} ({}): {grades}, {call}",
                    o.reader,
                    o.role.as_str()
                ));
            }
        } else {
            ui.label("this study does not reveal other readings");
        }
        let model_allowed = s.info.settings.reveal_model_after_commit && s.own.is_some();
        if model_allowed {
            self.model_lines(ui);
        } else if matches!(&self.source, Source::Study(s) if s.own.is_some()) {
            ui.label("this study does not reveal the model");
        }
        if commit {
            self.commit();
        }
    }

    fn image_panel(&mut self, ui: &mut egui::Ui, film: Option<&Arc<Film>>) {
        let blinded = matches!(self.source, Source::Study(_));
        let Some(film) = film else { return };
        let r = &film.radiograph;
        if !blinded {
            self.model_lines(ui);
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
        if !blinded {
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
        let Some((key, view)) = &mut self.view else {
            return;
        };
        if *key != film.key {
            return;
        }
        ui.separator();
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
                    self.pending_toasts.push((e, Level::Error));
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
        ui.separator();
        ui.label(RichText::new("Heatmap").strong());
        ui.checkbox(&mut self.heat_on, "Show Grad-CAM (H)");
        let l = ui.label("opacity");
        ui.add(egui::Slider::new(&mut self.heat_opacity, 0.0..=1.0))
            .labelled_by(l.id);
        if self.heat_on {
            heat_legend(ui);
        }
        ui.separator();
        ui.toggle_value(&mut self.crop_tool, "Crop tool (C)");
        let mut clear = false;
        if let Source::Study(s) = &self.source
            && let Some(c) = s.crop
        {
            ui.label(format!("crop {}×{} at {},{}", c.width, c.height, c.x, c.y));
            clear = ui.button("Clear crop").clicked();
        }
        if clear {
            self.set_crop(None);
        }
    }

    fn coordinator_view(&mut self, ui: &mut egui::Ui) {
        let tab = match &mut self.source {
            Source::Study(s) => {
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut s.tab, CoordinatorTab::Overview, "Overview");
                    ui.selectable_value(&mut s.tab, CoordinatorTab::Compare, "Compare");
                    ui.selectable_value(&mut s.tab, CoordinatorTab::Statistics, "Statistics");
                });
                ui.separator();
                s.tab
            }
            _ => return,
        };
        match tab {
            CoordinatorTab::Overview => self.coordinator_overview(ui),
            CoordinatorTab::Compare => self.compare_tab(ui),
            CoordinatorTab::Statistics => self.statistics_tab(ui),
        }
    }

    /// Starts the model on every case of the study that has no recorded prediction of it.
    pub fn predict_study(&mut self, ctx: &egui::Context) {
        let (Source::Study(s), Some(m)) = (&mut self.source, &self.model) else {
            self.notify("load a model first (top bar)", Level::Error);
            return;
        };
        let done: std::collections::HashSet<String> = match s.store.predictions(m.sha256()) {
            Ok(p) => p.into_iter().map(|p| p.case_id).collect(),
            Err(e) => {
                self.pending_toasts.push((e.to_string(), Level::Error));
                return;
            }
        };
        let mut cases: Vec<(String, PathBuf)> = s
            .paths
            .iter()
            .filter(|(c, _)| !done.contains(*c))
            .map(|(c, p)| (c.clone(), p.clone()))
            .collect();
        cases.sort();
        if cases.is_empty() {
            self.pending_toasts.push((
                "every case already has this model's prediction".into(),
                Level::Info,
            ));
            return;
        }
        s.study_run = Some(StudyRun::start(&m.predictor, cases, ctx));
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

    /// Records finished whole-study predictions in the store; ends the run when the worker stops.
    fn poll_study_run(&mut self) {
        let mut notes = Vec::new();
        if let Source::Study(s) = &mut self.source
            && let Some(run) = &mut s.study_run
        {
            let new = run.poll();
            let any_new = !new.is_empty();
            for (case, p) in new {
                if let Err(e) = s.store.record_prediction(&case, &run.sha256, f64::from(p)) {
                    notes.push((format!("{case}: {e}"), Level::Error));
                }
            }
            if run.finished() {
                let ok = run.done - run.failed.len();
                notes.push((
                    format!(
                        "model {}: {ok} cases predicted{}{}",
                        if run.cancelled() {
                            "cancelled"
                        } else {
                            "finished"
                        },
                        if run.failed.is_empty() {
                            String::new()
                        } else {
                            format!(", {} failed", run.failed.len())
                        },
                        if run.cancelled() {
                            format!(", {} left", run.total - run.done)
                        } else {
                            String::new()
                        }
                    ),
                    Level::Info,
                ));
                for (c, e) in &run.failed {
                    notes.push((format!("{c}: {e}"), Level::Error));
                }
                s.study_run = None;
                if let Some(c) = &mut s.compare {
                    c.stale = true;
                }
                s.dashboard.invalidate();
            } else if any_new && let Some(c) = &mut s.compare {
                c.stale = true;
            }
        }
        for (t, l) in notes {
            self.notify(t, l);
        }
    }

    fn compare_tab(&mut self, ui: &mut egui::Ui) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        let sha = self.model.as_ref().map(|m| m.sha256().to_string());
        if s.compare
            .as_ref()
            .is_none_or(|c| c.model_sha != sha || c.stale)
        {
            match CompareView::build(&s.store, sha.as_deref()) {
                Ok(mut c) => {
                    if let Some(old) = &s.compare {
                        c.filter = old.filter;
                        c.sort = old.sort;
                        c.cutoff_index = old.cutoff_index;
                    }
                    s.compare = Some(c);
                }
                Err(e) => {
                    let e = e.to_string();
                    ui.colored_label(Color32::LIGHT_RED, &e);
                    return;
                }
            }
        }
        let cutoffs = self.model.as_ref().and_then(|m| m.predictor.card.cutoffs);
        let clicked = s.compare.as_mut().and_then(|c| c.ui(ui, cutoffs));
        if let Some(case) = clicked {
            self.review_case(&case);
        }
    }

    /// Opens a case for the coordinator's review: every case of the study in the work list, no grading,
    /// every reading and the model shown.
    pub fn review_case(&mut self, case: &str) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        let mut ids: Vec<String> = s.paths.keys().cloned().collect();
        ids.sort();
        let consensus: std::collections::HashMap<String, bool> = s
            .compare
            .as_ref()
            .map(|c| {
                c.rows
                    .iter()
                    .map(|r| (r.case.clone(), r.consensus.is_some()))
                    .collect()
            })
            .unwrap_or_default();
        s.worklist = ids
            .into_iter()
            .map(|c| WorklistEntry {
                done: consensus.get(&c).copied().unwrap_or(false),
                case_id: c,
            })
            .collect();
        let i = s
            .worklist
            .iter()
            .position(|e| e.case_id == case)
            .unwrap_or(0);
        s.reader = None;
        s.coordinator = false;
        s.review = true;
        self.go_to(i);
    }

    fn statistics_tab(&mut self, ui: &mut egui::Ui) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        let readers: Vec<String> = s.readers.iter().map(|r| r.name.clone()).collect();
        let model = self
            .model
            .as_ref()
            .map(|m| (m.sha256(), m.predictor.card.cutoffs));
        let notes = s.dashboard.ui(ui, &s.store, &s.path, &readers, model);
        for n in notes {
            self.notify(n, Level::Info);
        }
    }

    /// Every reading of the current case, the consensus and the model (coordinator's review).
    fn review_panel(&mut self, ui: &mut egui::Ui) {
        let Source::Study(s) = &self.source else {
            return;
        };
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
        self.model_lines(ui);
    }

    fn coordinator_overview(&mut self, ui: &mut egui::Ui) {
        let mut notes = Vec::new();
        let mut predict_all = false;
        let Source::Study(s) = &mut self.source else {
            return;
        };
        if s.status.is_none() {
            match session::status(&s.store) {
                Ok(st) => s.status = Some(st),
                Err(e) => notes.push((e.to_string(), Level::Error)),
            }
        }
        ui.heading("Coordinator");
        if let Some(st) = &s.status {
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
            s.status = None;
        }
        ui.separator();
        ui.label(RichText::new("Readers").strong());
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut s.new_reader.0)
                    .hint_text("name")
                    .desired_width(160.0),
            );
            egui::ComboBox::from_label("role")
                .selected_text(s.new_reader.1.as_str())
                .show_ui(ui, |ui| {
                    for r in s.info.protocol.roles() {
                        ui.selectable_value(&mut s.new_reader.1, *r, r.as_str());
                    }
                });
            if ui.button("Add reader").clicked() {
                let name = s.new_reader.0.trim().to_string();
                match s.store.add_reader(&name, s.new_reader.1) {
                    Ok(r) => {
                        notes.push((format!("reader {} added", r.name), Level::Info));
                        s.readers.push(r);
                        s.new_reader.0.clear();
                        s.status = None;
                    }
                    Err(e) => notes.push((e.to_string(), Level::Error)),
                }
            }
        });
        ui.separator();
        ui.label(RichText::new("Blinding after commit").strong());
        let mut settings: StudySettings = s.info.settings;
        ui.checkbox(
            &mut settings.reveal_readers_after_commit,
            "readers may see other readings",
        );
        ui.checkbox(
            &mut settings.reveal_model_after_commit,
            "readers may see the model's output",
        );
        if settings != s.info.settings {
            match s.store.set_settings(settings) {
                Ok(()) => s.info.settings = settings,
                Err(e) => notes.push((e.to_string(), Level::Error)),
            }
        }
        ui.separator();
        ui.label(RichText::new("The model over the whole study").strong());
        match (&self.model, &s.study_run) {
            (None, _) => {
                ui.label("Load a model (top bar) to predict every case.");
            }
            (Some(m), None) => {
                let recorded = s
                    .store
                    .predictions(m.sha256())
                    .map(|p| p.len())
                    .unwrap_or(0);
                ui.horizontal(|ui| {
                    ui.label(format!(
                        "{recorded} of {} cases have the prediction of {} ({}…)",
                        s.paths.len(),
                        m.predictor.card.name,
                        &m.sha256()[..12]
                    ));
                    predict_all = ui
                        .add_enabled(
                            recorded < s.paths.len(),
                            egui::Button::new("Predict all cases"),
                        )
                        .clicked();
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
                        run.cancel();
                    }
                });
            }
        }
        ui.separator();
        ui.label(RichText::new("Export (pseudonymous case IDs only)").strong());
        ui.horizontal(|ui| {
            let l = ui.label("file");
            ui.add(egui::TextEdit::singleline(&mut s.export_path).desired_width(360.0))
                .labelled_by(l.id);
            if ui.button("Export readings and consensus").clicked() {
                let out = PathBuf::from(s.export_path.trim());
                let cons = out.with_file_name(format!(
                    "{}_consensus.csv",
                    out.file_stem()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ));
                let result = s
                    .store
                    .all_readings()
                    .and_then(|r| session::csv_io::write_readings(&out, &r))
                    .and_then(|()| session::consensus(&s.store))
                    .and_then(|c| session::csv_io::write_consensus(&cons, &c));
                match result {
                    Ok(()) => notes.push((
                        format!("exported {} and {}", out.display(), cons.display()),
                        Level::Info,
                    )),
                    Err(e) => notes.push((e.to_string(), Level::Error)),
                }
            }
        });
        ui.separator();
        if s.info.locked {
            ui.label("The study is locked: no reading can change.");
        } else {
            ui.checkbox(
                &mut s.confirm_lock,
                "I want to lock the study (cannot be undone)",
            );
            if ui
                .add_enabled(s.confirm_lock, egui::Button::new("Lock study"))
                .clicked()
            {
                match s.store.lock() {
                    Ok(()) => {
                        s.info.locked = true;
                        notes.push(("study locked".into(), Level::Info));
                    }
                    Err(e) => notes.push((e.to_string(), Level::Error)),
                }
            }
        }
        for (t, l) in notes {
            self.notify(t, l);
        }
        if predict_all {
            self.predict_study(ui.ctx());
        }
    }

    fn help(&mut self, ctx: &egui::Context) {
        let mut open = self.show_help;
        egui::Window::new("Keys").open(&mut open).show(ctx, |ui| {
            egui::Grid::new("keys").show(ui, |ui| {
                for (k, what) in [
                    ("Q W E R T", "left joint 0–4"),
                    ("A S D F G", "right joint 0–4"),
                    ("Enter", "commit"),
                    ("N / P, arrows", "next / previous case"),
                    ("right drag", "window (↔) and level (↕)"),
                    ("1–5", "presets: file 1, file 2, auto, full, contrast"),
                    ("I", "invert"),
                    ("wheel, left drag", "zoom about the cursor, pan"),
                    ("Home / 0", "fit / 1:1"),
                    ("Space", "reset view and window"),
                    ("C / Esc", "crop tool on / off"),
                    (
                        "H",
                        "Grad-CAM heatmap on / off (when the model may be shown)",
                    ),
                    ("F12", "frame-time overlay"),
                ] {
                    ui.monospace(k);
                    ui.label(what);
                    ui.end_row();
                }
            });
        });
        self.show_help = open;
    }

    fn toasts(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|i| i.time);
        for (text, level) in self.pending_toasts.drain(..) {
            match level {
                Level::Error => tracing::warn!("{text}"),
                Level::Info => tracing::info!("{text}"),
            }
            self.toasts.push(Toast {
                text,
                level,
                since: now,
            });
        }
        self.toasts.retain(|t| {
            now - t.since
                < match t.level {
                    Level::Info => 5.0,
                    Level::Error => 15.0,
                }
        });
        if self.toasts.is_empty() {
            return;
        }
        let mut dismiss = None;
        egui::Area::new(egui::Id::unique("sacro-toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -36.0])
            .show(ctx, |ui| {
                for (i, t) in self.toasts.iter().enumerate() {
                    let fill = match t.level {
                        Level::Info => Color32::from_rgb(30, 60, 40),
                        Level::Error => Color32::from_rgb(110, 30, 30),
                    };
                    egui::Frame::popup(ui.style()).fill(fill).show(ui, |ui| {
                        ui.set_max_width(420.0);
                        if ui
                            .add(
                                egui::Label::new(RichText::new(&t.text).color(Color32::WHITE))
                                    .sense(egui::Sense::click()),
                            )
                            .on_hover_text("click to dismiss")
                            .clicked()
                        {
                            dismiss = Some(i);
                        }
                    });
                }
            });
        if let Some(i) = dismiss {
            self.toasts.remove(i);
        }
        ctx.request_repaint_after(std::time::Duration::from_millis(500));
    }

    /// `SACRO_FRAME_BENCH=N`: once a film is shown, changes the window width every frame (as a right-drag
    /// does) for N frames, then prints the time from request to pixels and the frame intervals, and closes.
    fn frame_bench(&mut self, ctx: &egui::Context) {
        let Some((left, intervals, last)) = &mut self.bench else {
            return;
        };
        let Some((_, view)) = &mut self.view else {
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
                self.loader.last_decode_s.unwrap_or(0.0) * 1000.0,
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
}

impl eframe::App for SacroApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let started = Instant::now();
        let ctx = ui.ctx().clone();
        for (p, e) in self.loader.poll() {
            self.notify(format!("{}: {e}", p.display()), Level::Error);
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if let Some(p) = dropped.first() {
            self.open(p);
        }
        if let Some(m) = &mut self.model {
            let (ok, bad) = m.poll();
            self.record_predictions(ok);
            for (p, e) in bad {
                self.notify(format!("{}: model: {e}", p.display()), Level::Error);
            }
        }
        self.poll_study_run();
        let (notes, _) = self.training.poll();
        for (n, error) in notes {
            self.notify(n, if error { Level::Error } else { Level::Info });
        }
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
        self.keyboard(&ctx, film.as_ref());

        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                if let Some((x, y, v)) = self.readout {
                    ui.monospace(format!("x {x:5}  y {y:5}  value {v:.1}"));
                }
                if let Some((_, v)) = &self.view {
                    ui.monospace(format!(
                        "W {:.0}  L {:.0}{}",
                        v.window.width,
                        v.window.center,
                        if v.invert { "  inverted" } else { "" }
                    ));
                }
                if self.crop_tool {
                    ui.label(RichText::new("crop tool: drag a rectangle").color(Color32::YELLOW));
                }
                if self.show_debug {
                    let n = self.frame_ms.len().max(1) as f32;
                    let mean = self.frame_ms.iter().sum::<f32>() / n;
                    let max = self.frame_ms.iter().copied().fold(0.0, f32::max);
                    ui.monospace(format!(
                        "ui {mean:.2} ms (max {max:.2}) over {} frames; decode {:.0} ms; open→pixels {:.0} ms",
                        self.frame_ms.len(),
                        self.loader.last_decode_s.unwrap_or(0.0) * 1000.0,
                        self.last_open_ms.unwrap_or(0.0)
                    ));
                }
            });
        });
        if self.page == Page::Training {
            let mut use_model = None;
            egui::CentralPanel::default().show(ui, |ui| use_model = self.training.ui(ui));
            if let Some(dir) = use_model {
                self.load_model(&dir);
            }
            self.help(&ctx);
            self.toasts(&ctx);
            return;
        }
        egui::Panel::left("worklist")
            .resizable(true)
            .default_size(200.0)
            .show(ui, |ui| self.worklist_panel(ui));
        let coordinator = matches!(&self.source, Source::Study(s) if s.coordinator);
        let reading = matches!(&self.source, Source::Study(s) if s.reader.is_some());
        let reviewing = matches!(&self.source, Source::Study(s) if s.review);
        if !coordinator {
            egui::Panel::right("side")
                .resizable(true)
                .default_size(300.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        if reading {
                            self.grading_panel(ui);
                            ui.separator();
                        }
                        if reviewing {
                            self.review_panel(ui);
                            ui.separator();
                        }
                        self.image_panel(ui, film.as_ref());
                    });
                });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            if coordinator {
                self.coordinator_view(ui);
                return;
            }
            let Some(path) = self.current_path() else {
                ui.centered_and_justified(|ui| ui.label("No film open."));
                return;
            };
            let heat_shown = self.heat_on && self.model_visible();
            match (&film, &mut self.view) {
                (Some(f), Some((_, view))) => {
                    let crop = match &self.source {
                        Source::Study(s) => s.crop,
                        _ => None,
                    };
                    let heat = if heat_shown {
                        self.model
                            .as_ref()
                            .and_then(|m| m.result(&path))
                            .map(|o| o.heat.clone())
                    } else {
                        None
                    };
                    view.heat_opacity = if heat.is_some() {
                        self.heat_opacity
                    } else {
                        0.0
                    };
                    let out = viewer::show(ui, f, view, heat.as_ref(), self.crop_tool, crop);
                    self.readout = out.readout;
                    self.last_view_rect = out.rect;
                    if let Some((p, t)) = self.requested_at.take() {
                        if p == path {
                            self.last_open_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
                        } else {
                            self.requested_at = Some((p, t));
                        }
                    }
                    if let Some(c) = out.new_crop {
                        self.crop_tool = false;
                        self.set_crop(Some(c));
                    }
                }
                _ => {
                    let text = match self.loader.error(&path) {
                        Some(e) => format!("Cannot show {}:\n{e}", path.display()),
                        None if self.loader.is_pending(&path) => "Decoding…".to_string(),
                        None => {
                            self.loader.request(&path);
                            "Decoding…".to_string()
                        }
                    };
                    ui.centered_and_justified(|ui| ui.label(text));
                }
            }
        });
        self.help(&ctx);
        self.toasts(&ctx);
        self.frame_bench(&ctx);
        self.frame_ms.push(started.elapsed().as_secs_f32() * 1000.0);
        if self.frame_ms.len() > 120 {
            self.frame_ms.remove(0);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, RECENT_KEY, &self.recent);
    }
}

/// The heatmap's colour scale (turbo, as blended in the viewer): low evidence left, high right.
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
