//! Where commands take effect: the one place in the app that writes to a study's store (and reads what
//! panels show from it), opens films and models, and moves through the work list. Every failure becomes
//! a notification that names what failed; none is dropped.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::app::SacroApp;
use super::command::{Command, Level, Page};
use super::model::{ModelState, StudyRun};
use super::panels::grading::Draft;
use super::study::{CoordinatorTab, PendingCommit, Source, StudyMode, StudySession};
use super::training::TrainingPanel;
use crate::imaging::has_image_extension;
use crate::session::{self, CommitOutcome, CropRect, Role, StudySettings, WorklistEntry};
use crate::session::{StoreError, Study};

impl SacroApp {
    /// Applies one command.
    pub(super) fn apply(&mut self, command: Command) {
        match command {
            Command::Open(p) => self.open_path(&p),
            Command::OpenServer {
                url,
                password,
                films,
            } => {
                let password = Some(password.0).filter(|p| !p.is_empty());
                let films = Some(PathBuf::from(films)).filter(|f| !f.as_os_str().is_empty());
                self.open_study(Path::new(url.trim()), password, films.as_deref());
            }
            Command::OpenDemo => self.apply_demo(&super::data_dir()),
            Command::LoadModel(dir) => self.load_model_dir(&dir),
            Command::ChooseReader(name) => self.choose(&name),
            Command::GoTo(i) => self.go_to_entry(i),
            Command::Step(delta) => self.step(delta),
            Command::Commit => self.commit_draft(),
            Command::SetCrop(crop) => self.set_crop(crop),
            Command::SetJointBox(side, rect) => self.set_joint_box(side, rect),
            Command::ReviewCase(case) => self.review(&case),
            Command::SetCoordinating(on) => self.set_coordinating(on),
            Command::ShowTab(tab) => {
                if let Source::Study(s) = &mut self.source {
                    s.mode = StudyMode::Coordinating { tab };
                }
            }
            Command::PredictStudy => self.start_study_run(),
            Command::CancelStudyRun => {
                if let Source::Study(s) = &self.source
                    && let Some(run) = &s.study_run
                {
                    run.cancel();
                }
            }
            Command::AddReader(name, role) => self.add_reader(&name, role),
            Command::SetSettings(settings) => self.set_settings(settings),
            Command::Export(out) => self.export(&out),
            Command::Lock => self.lock(),
            Command::RefreshStatus => {
                if let Source::Study(s) = &mut self.source {
                    s.invalidate();
                }
            }
            Command::StartAnalysis => self.start_analysis(),
            Command::ComputeReaderStudy => {
                if let Source::Study(s) = &mut self.source {
                    s.reader_study.compute(&*s.store);
                }
            }
            Command::ShowPage(page) => self.show_page(page),
            Command::Notify(text, level) => self.notify(text, level),
            Command::AddCases(cases) => self.add_cases(&cases),
            Command::ArchiveLogin {
                url,
                user,
                password,
            } => {
                self.loader.set_credentials(
                    &url,
                    (!user.is_empty()).then_some(crate::pacs::Credentials::Basic {
                        user,
                        password: password.0,
                    }),
                );
            }
            Command::ShowPacs(tab) => self.pacs.shown = Some(tab),
        }
    }

    /// Adds cases (from the archive window) and refreshes where the study's films are.
    fn add_cases(&mut self, cases: &[crate::session::NewCase]) {
        let Source::Study(s) = &mut self.source else {
            return self.notify("open a study to add cases to".to_string(), Level::Error);
        };
        let result = s.store.add_cases(cases).and_then(|added| {
            s.refresh_films(&self.loader.cache_dir())?;
            Ok(added.len())
        });
        s.invalidate();
        self.loader.set_archived(s.archived.clone());
        match result {
            Ok(n) => self.notify(format!("added {n} case(s) from the archive"), Level::Info),
            Err(e) => self.notify(e.to_string(), Level::Error),
        }
    }

    /// Opens the demo study (copied into `data` on first use) as its demo reader, on the first case
    /// the demo reader has not read: a newcomer sees a film to grade, not a reader to choose.
    pub(super) fn apply_demo(&mut self, data: &Path) {
        match super::demo_study_in(data) {
            Ok(p) => {
                self.open_path(&p);
                let has_demo_reader = matches!(&self.source, Source::Study(s)
                    if s.readers.iter().any(|r| r.name == super::DEMO_READER));
                if has_demo_reader {
                    self.choose(super::DEMO_READER);
                }
            }
            Err(e) => self.notify(e, Level::Error),
        }
    }

    /// Opens a study file or a server study. On a server, a reader's login goes straight to their own
    /// work list and the coordinator's login to the coordinator view.
    fn open_study(&mut self, path: &Path, password: Option<String>, films: Option<&Path>) {
        let s = match StudySession::open(path, password, films, &self.loader.cache_dir()) {
            Ok(s) => s,
            Err(e) => return self.notify(e.to_string(), Level::Error),
        };
        let shown = s.path.display().to_string();
        if s.store.is_coordinator() {
            match s.store.verify() {
                Ok(problems) if !problems.is_empty() => self.notify(
                    format!(
                        "{shown}: changed outside Sacro ({} finding(s), `sacro study verify` lists them): {}",
                        problems.len(),
                        problems[0]
                    ),
                    Level::Error,
                ),
                Ok(_) => {}
                Err(e) => self.notify(e.to_string(), Level::Error),
            }
        }
        if s.store.is_read_only() {
            self.notify(
                format!(
                    "{shown}: opened read-only (no permission to write it): readings cannot be committed"
                ),
                Level::Info,
            );
        }
        if s.info.locked {
            self.notify(
                format!("{shown}: the study is locked: it opens for reading only"),
                Level::Info,
            );
        }
        let server_coordinator = matches!(s.store, Study::Server(_)) && s.store.is_coordinator();
        let first_reader = s.me.clone().or_else(|| {
            (s.readers.len() == 1)
                .then(|| s.readers.first().map(|r| r.name.clone()))
                .flatten()
        });
        self.loader.set_archived(s.archived.clone());
        self.source = Source::Study(Box::new(s));
        self.remember(path);
        if server_coordinator {
            self.apply(Command::SetCoordinating(true));
        } else if let Some(r) = first_reader {
            self.choose(&r);
        }
    }

    fn open_path(&mut self, path: &Path) {
        let is_server = path.to_str().is_some_and(crate::session::is_server_url);
        let is_study = is_server
            || path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("sacro"));
        if is_study {
            self.open_study(path, None, None);
        } else if path.is_dir() {
            let mut paths: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && has_image_extension(p))
                    .collect(),
                Err(e) => {
                    self.notify(
                        format!("{}: cannot read the folder: {e}", path.display()),
                        Level::Error,
                    );
                    return;
                }
            };
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
            self.go_to_entry(0);
        } else if path.is_file() {
            self.source = Source::Files {
                paths: vec![path.to_path_buf()],
                index: 0,
            };
            self.go_to_entry(0);
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

    fn load_model_dir(&mut self, dir: &Path) {
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
                if let Source::Study(s) = &mut self.source {
                    s.invalidate();
                }
            }
            Err(e) => self.notify(e, Level::Error),
        }
    }

    fn choose(&mut self, name: &str) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        if let Some(me) = &s.me
            && me != name
        {
            let note =
                format!("logged in as reader {me:?}: each reader reads with their own login");
            return self.notify(note, Level::Error);
        }
        match s.store.worklist(name) {
            Ok(list) => {
                s.mode = StudyMode::Reading {
                    reader: name.to_string(),
                };
                let first = list.iter().position(|e| !e.done).unwrap_or(0);
                s.worklist = list;
                if s.worklist.is_empty() {
                    let why = super::reader_study::nothing_to_read(&*s.store, name);
                    self.notify(why, Level::Info);
                }
                self.go_to_entry(first);
            }
            Err(e) => self.notify(e.to_string(), Level::Error),
        }
    }

    /// Moves to entry `i` of the work list: loads the reader's state of that case and requests its film
    /// and the next one (prefetch).
    fn go_to_entry(&mut self, i: usize) {
        let n = self.source.len();
        if n == 0 {
            return;
        }
        let i = i.min(n - 1);
        let mut errors = Vec::new();
        match &mut self.source {
            Source::Empty => {}
            Source::Files { index, .. } => *index = i,
            Source::Study(s) => {
                s.index = i;
                s.draft = Draft::default();
                s.own = None;
                s.others = None;
                s.crop = None;
                s.joint_boxes.clear();
                if let Some(case) = s.current_case().map(str::to_string) {
                    if let Some(reader) = s.mode.reader().map(str::to_string) {
                        let arm = s.current_arm();
                        if let Err(e) = s
                            .load_own(&reader, &case)
                            .and_then(|()| s.load_joint_boxes(&reader, &case))
                        {
                            errors.push(e.to_string());
                        }
                        if s.own.is_some()
                            && s.info.settings.reveal_readers_after_commit
                            && arm.is_none()
                        {
                            match s.store.others_readings(&reader, &case) {
                                Ok(o) => s.others = Some(o),
                                Err(e) => errors.push(e.to_string()),
                            }
                        }
                    }
                    match s.store.crop(&case) {
                        Ok(c) => s.crop = c,
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }
        }
        for e in errors {
            self.notify(e, Level::Error);
        }
        self.options.crop_tool = false;
        if let Some(p) = self.current_path() {
            self.loader.request(&p);
            self.stats.requested_at = Some((p, Instant::now()));
        }
        if let Some(next) = self.source.path_at(i + 1) {
            self.loader.request(&next);
        }
    }

    fn step(&mut self, delta: isize) {
        let Some(i) = self.source.index() else {
            return;
        };
        let j = i
            .saturating_add_signed(delta)
            .min(self.source.len().saturating_sub(1));
        if j != i {
            self.go_to_entry(j);
        }
    }

    /// Commits the draft of the current case; moves on to the next pending case when it was new.
    fn commit_draft(&mut self) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        let (Some(reader), Some(case)) = (
            s.mode.reader().map(str::to_string),
            s.current_case().map(str::to_string),
        ) else {
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
        let (arm, confidence) = (s.current_arm(), s.draft.confidence);
        match super::reader_study::commit(
            &*s.store, &reader, &case, arm, &reading, confidence, reason,
        ) {
            Ok(outcome) => {
                if s.pending.as_ref().is_some_and(|p| p.case == case) {
                    s.pending = None;
                }
                let was_new = s.own.is_none();
                if let Some(e) = s.worklist.get_mut(s.index) {
                    e.done = true;
                }
                s.invalidate();
                let msg = match outcome {
                    CommitOutcome::Created => format!("{case}: reading committed"),
                    CommitOutcome::Changed => format!("{case}: reading changed"),
                    CommitOutcome::Unchanged => format!("{case}: unchanged"),
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
                    Some(n) if was_new => self.go_to_entry(n),
                    // A reader study's arm done: the next arm (if its washout allows) is the list.
                    None if was_new && arm.is_some() => {
                        self.notify(
                            format!("{} arm complete", arm.map_or("", |a| a.as_str())),
                            Level::Info,
                        );
                        self.choose(&reader);
                    }
                    _ => {
                        self.go_to_entry(index);
                        if next.is_none() && was_new {
                            self.notify("work list complete", Level::Info);
                        }
                    }
                }
            }
            Err(e @ StoreError::Server { .. }) if matches!(s.store, Study::Server(_)) => {
                let delay = std::time::Duration::from_secs(2);
                s.pending = Some(PendingCommit {
                    reader,
                    case: case.clone(),
                    reading,
                    reason: reason.map(str::to_string),
                    next_try: Instant::now() + delay,
                    delay,
                });
                self.ctx.request_repaint_after(delay);
                self.notify(
                    format!(
                        "{case}: not committed yet ({e}); Sacro retries by itself, the grades stay in the panel"
                    ),
                    Level::Error,
                );
            }
            Err(e) => self.notify(format!("{case}: not committed: {e}"), Level::Error),
        }
    }

    /// Retries a commit that could not reach the server, when its time has come (backoff doubling to
    /// 30 s); called every frame.
    pub(super) fn retry_pending_commit(&mut self) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        let Some(p) = s.pending.take() else {
            return;
        };
        let now = Instant::now();
        if now < p.next_try {
            self.ctx.request_repaint_after(p.next_try - now);
            s.pending = Some(p);
            return;
        }
        match s
            .store
            .commit_reading(&p.reader, &p.case, &p.reading, p.reason.as_deref())
        {
            Ok(_) => {
                if let Some(e) = s.worklist.iter_mut().find(|e| e.case_id == p.case) {
                    e.done = true;
                }
                s.invalidate();
                let shown = s.current_case() == Some(p.case.as_str());
                let index = s.index;
                if shown {
                    self.go_to_entry(index);
                }
                self.notify(
                    format!("{}: committed after the connection came back", p.case),
                    Level::Info,
                );
            }
            Err(StoreError::Server { .. }) => {
                let delay = (p.delay * 2).min(std::time::Duration::from_secs(30));
                self.ctx.request_repaint_after(delay);
                s.pending = Some(PendingCommit {
                    next_try: Instant::now() + delay,
                    delay,
                    ..p
                });
            }
            Err(e) => self.notify(format!("{}: not committed: {e}", p.case), Level::Error),
        }
    }

    fn set_joint_box(&mut self, side: crate::session::joint_boxes::Side, rect: Option<CropRect>) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        let (Some(reader), Some(case)) = (s.mode.reader(), s.current_case()) else {
            return;
        };
        let (reader, case) = (reader.to_string(), case.to_string());
        let result = s.store.set_joint_box(&reader, &case, side, rect);
        let reload = s.load_joint_boxes(&reader, &case);
        match result.and(reload) {
            Ok(()) => self.notify(
                format!("{case}: {} joint box saved", side.as_str()),
                Level::Info,
            ),
            Err(e) => self.notify(e.to_string(), Level::Error),
        }
    }

    fn set_crop(&mut self, crop: Option<CropRect>) {
        let Source::Study(s) = &mut self.source else {
            self.notify("crop rectangles are kept with a study's cases", Level::Info);
            return;
        };
        let actor = s.mode.reader().unwrap_or("coordinator").to_string();
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

    /// Opens a case for the coordinator's review: every case of the study in the work list, no grading,
    /// every reading and the model shown.
    fn review(&mut self, case: &str) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        let mut ids: Vec<String> = s.paths.keys().cloned().collect();
        ids.sort();
        let consensus: HashMap<String, bool> = s
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
                arm: None,
            })
            .collect();
        let i = s
            .worklist
            .iter()
            .position(|e| e.case_id == case)
            .unwrap_or(0);
        s.mode = StudyMode::Reviewing;
        self.go_to_entry(i);
    }

    fn set_coordinating(&mut self, on: bool) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        if on {
            s.mode = StudyMode::Coordinating {
                tab: CoordinatorTab::Overview,
            };
            // Readings may have changed while reading.
            s.invalidate();
        } else {
            s.mode = StudyMode::ChoosingReader;
        }
    }

    /// Starts the model on every case of the study that has no recorded prediction of it.
    fn start_study_run(&mut self) {
        let (Source::Study(s), Some(m)) = (&mut self.source, &self.model) else {
            self.notify("load a model first (top bar)", Level::Error);
            return;
        };
        let done: HashSet<String> = match s.store.predictions(m.sha256()) {
            Ok(p) => p.into_iter().map(|p| p.case_id).collect(),
            Err(e) => {
                self.toasts.push(e.to_string(), Level::Error);
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
            self.toasts.push(
                "every case already has this model's prediction",
                Level::Info,
            );
            return;
        }
        s.study_run = Some(StudyRun::start(&m.predictor, cases, &self.ctx));
    }

    fn add_reader(&mut self, name: &str, role: Role) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        match s.store.add_reader(name, role) {
            Ok(r) => {
                let text = format!("reader {} added", r.name);
                s.readers.push(r);
                s.overview.new_reader.0.clear();
                s.invalidate();
                self.notify(text, Level::Info);
            }
            Err(e) => self.notify(e.to_string(), Level::Error),
        }
    }

    fn set_settings(&mut self, settings: StudySettings) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        match s.store.set_settings(settings) {
            Ok(()) => s.info.settings = settings,
            Err(e) => self.notify(e.to_string(), Level::Error),
        }
    }

    /// Writes the readings to `out` and the consensus beside it (`…_consensus.csv`).
    fn export(&mut self, out: &Path) {
        let Source::Study(s) = &self.source else {
            return;
        };
        let cons = out.with_file_name(format!(
            "{}_consensus.csv",
            out.file_stem()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let result = s
            .store
            .all_readings()
            .and_then(|r| session::csv_io::write_readings(out, &r))
            .and_then(|()| session::consensus(&*s.store))
            .and_then(|c| session::csv_io::write_consensus(&cons, &c));
        match result {
            Ok(()) => self.notify(
                format!("exported {} and {}", out.display(), cons.display()),
                Level::Info,
            ),
            Err(e) => self.notify(e.to_string(), Level::Error),
        }
    }

    fn lock(&mut self) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        match s.store.lock() {
            Ok(()) => {
                s.info.locked = true;
                self.notify("study locked", Level::Info);
            }
            Err(e) => self.notify(e.to_string(), Level::Error),
        }
    }

    /// Starts the dashboard's analysis of the study's readings and the loaded model's predictions.
    fn start_analysis(&mut self) {
        let (Source::Study(s), Some(m)) = (&mut self.source, &self.model) else {
            return;
        };
        if s.dashboard.wants_analysis(m.sha256()) {
            let cutoffs = m.predictor.card.cutoffs;
            s.dashboard
                .start(&*s.store, &s.path, m.sha256(), cutoffs, &self.ctx);
        }
    }

    fn show_page(&mut self, page: Page) {
        self.page = page;
        if page == Page::Training
            && self.training.data_path.is_empty()
            && let Source::Study(s) = &self.source
        {
            let fresh = TrainingPanel::for_study(&s.path);
            self.training.data_path = fresh.data_path;
            self.training.out_dir = fresh.out_dir;
        }
    }

    /// Caches finished predictions in the study store, keyed by the model's SHA-256.
    pub(super) fn record_predictions(&mut self, done: Vec<(PathBuf, String, f32)>) {
        let Source::Study(s) = &mut self.source else {
            return;
        };
        // On a server only the coordinator's login records the model's output (readers may not write
        // it); a reader's window shows its own results without caching them.
        if done.is_empty() || !s.store.is_coordinator() {
            return;
        }
        let by_path: HashMap<PathBuf, String> = s
            .worklist
            .iter()
            .filter_map(|e| s.case_path(&e.case_id).map(|p| (p, e.case_id.clone())))
            .collect();
        let mut errors = Vec::new();
        for (path, sha, p) in done {
            if let Some(case) = by_path.get(&path)
                && let Err(e) = s.store.record_prediction(case, &sha, f64::from(p))
            {
                errors.push(format!("{case}: {e}"));
            }
        }
        s.invalidate();
        for e in errors {
            self.notify(e, Level::Error);
        }
    }

    /// Records finished whole-study predictions in the store; ends the run when the worker stops.
    pub(super) fn poll_study_run(&mut self) {
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
                s.invalidate();
            } else if any_new {
                s.invalidate();
            }
        }
        for (t, l) in notes {
            self.notify(t, l);
        }
    }

    /// Reloads what the coordinator sees (progress figures, the loaded model's prediction count, the
    /// compare table) when readings, predictions or the model changed, once; failures are notified once.
    pub(super) fn refresh_study_views(&mut self) {
        let sha = self.model.as_ref().map(|m| m.sha256().to_string());
        let Source::Study(s) = &mut self.source else {
            return;
        };
        for e in s.refresh_views(sha) {
            self.notify(e, Level::Error);
        }
    }
}
