//! An open study in the app: its store, what was read from it, the reading state of the current case
//! and the study's mode (choosing a reader, reading, coordinating, reviewing) as one enum holding what
//! belongs to that mode. Changed only by [`super::apply`]; panels read it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use super::command::CoordinatorTab;
use super::compare::CompareView;
use super::dashboard::Dashboard;
use super::model::StudyRun;
use super::panels::coordinator::{CoordinatorParts, OverviewForm};
use super::panels::grading::Draft;
use super::reader_study::ReaderStudyView;
use crate::session::joint_boxes::{JointBoxRecord, Side};
use crate::session::{
    Arm, CropRect, Design, ReaderInfo, ReadingRecord, StoreError, Study, StudyInfo, StudyStatus,
    WorklistEntry,
};

/// What the user is doing with the study.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StudyMode {
    /// Nobody is reading yet: the reader is to be chosen.
    #[default]
    ChoosingReader,
    /// A reader reads their work list.
    Reading {
        /// Who reads.
        reader: String,
    },
    /// The coordinator's view.
    Coordinating {
        /// The tab shown.
        tab: CoordinatorTab,
    },
    /// The coordinator reviews cases opened from the compare table: every case, no grading.
    Reviewing,
}

impl StudyMode {
    /// The reader, when reading.
    pub fn reader(&self) -> Option<&str> {
        match self {
            Self::Reading { reader } => Some(reader),
            _ => None,
        }
    }

    /// Whether the coordinator view is shown.
    pub fn is_coordinating(&self) -> bool {
        matches!(self, Self::Coordinating { .. })
    }

    /// Whether the coordinator is reviewing cases.
    pub fn is_reviewing(&self) -> bool {
        matches!(self, Self::Reviewing)
    }
}

/// An open study.
pub struct StudySession {
    /// Study file, or the server study's URL (without password).
    pub path: PathBuf,
    /// Its store: the file, or the server database.
    pub store: Study,
    /// On a server: the reader the login is (None for the coordinator's login and for files).
    pub me: Option<String>,
    /// Protocol, lock, settings.
    pub info: StudyInfo,
    /// Readers.
    pub readers: Vec<ReaderInfo>,
    /// Choosing a reader, reading, coordinating or reviewing.
    pub mode: StudyMode,
    /// The work list (the reader's, or every case when reviewing).
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
    /// The joint boxes of the current case the reader may see (their own, others' once revealed).
    pub joint_boxes: Vec<JointBoxRecord>,
    /// Coordinator's progress figures (reloaded on demand).
    pub status: Option<StudyStatus>,
    /// Cases with a recorded prediction of the loaded model: (model SHA-256, count), reloaded when
    /// predictions are recorded or the model changes.
    pub recorded: Option<(String, usize)>,
    /// What the coordinator sees (progress, prediction count, compare table) must be reloaded.
    pub(super) stale: bool,
    /// The coordinator overview's form (new reader, export file, lock confirmation).
    pub overview: OverviewForm,
    /// The compare table (rebuilt when readings or predictions change).
    pub compare: Option<CompareView>,
    /// The statistics dashboard.
    pub dashboard: Dashboard,
    /// Standard, or a reader study (aided design).
    pub design: Design,
    /// The statistics tab's "Reader study" section.
    pub reader_study: ReaderStudyView,
    /// The model running over the whole study.
    pub study_run: Option<StudyRun>,
    /// Each case's film, resolved once at opening (asked for several times a frame).
    pub(super) paths: HashMap<String, PathBuf>,
    /// The films of cases that refer to an archive, by their place in the film cache.
    pub(super) archived: HashMap<PathBuf, super::loader::Fetch>,
    /// A commit that could not reach the study's server, retried by itself with backoff.
    pub pending: Option<PendingCommit>,
}

/// A reading whose commit could not reach the server: kept and retried until it lands, or fails for
/// another reason (then said).
#[derive(Debug, Clone)]
pub struct PendingCommit {
    /// Reader.
    pub reader: String,
    /// Case.
    pub case: String,
    /// The reading.
    pub reading: crate::grading::Reading,
    /// Reason for a change.
    pub reason: Option<String>,
    /// When to try again.
    pub next_try: std::time::Instant,
    /// The wait after the next failure (doubling, at most 30 s).
    pub delay: std::time::Duration,
}

impl std::fmt::Debug for StudySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudySession")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("index", &self.index)
            .finish()
    }
}

impl StudySession {
    /// Opens the study at `path` (a file, or a `postgres://` URL with the login's `password`).
    /// `films`: where a server study's films are at this site (default: the current folder).
    pub(super) fn open(
        path: &Path,
        password: Option<String>,
        films: Option<&Path>,
        cache_dir: &Path,
    ) -> Result<Self, StoreError> {
        let mut store = Study::open(path, password)?;
        if let (Study::Server(pg), Some(dir)) = (&mut store, films) {
            pg.set_films_root(dir);
        }
        if let Study::File(f) = &store {
            // Never freeze the window for long behind another program's write: fail, say so, keep
            // the draft.
            f.set_busy_timeout(std::time::Duration::from_millis(1500))?;
        }
        let me = store.logged_in_reader()?;
        // Forms that suggest files: beside a study file; for a server study, in the current folder.
        let local = match &store {
            Study::File(_) => path.to_path_buf(),
            Study::Server(_) => PathBuf::from("server-study"),
        };
        let info = store.info()?;
        let design = store.design()?;
        let readers = store.readers()?;
        let (paths, archived) = film_places(&store, cache_dir)?;
        Ok(Self {
            overview: OverviewForm::for_study(&local),
            path: PathBuf::from(store.location()),
            store,
            me,
            info,
            readers,
            mode: StudyMode::ChoosingReader,
            worklist: Vec::new(),
            index: 0,
            draft: Draft::default(),
            own: None,
            others: None,
            crop: None,
            joint_boxes: Vec::new(),
            status: None,
            recorded: None,
            stale: true,
            compare: None,
            dashboard: Dashboard::default(),
            design,
            reader_study: ReaderStudyView::default(),
            study_run: None,
            pending: None,
            paths,
            archived,
        })
    }

    /// Whether the coordinator view is shown.
    pub fn is_coordinating(&self) -> bool {
        self.mode.is_coordinating()
    }

    /// Reloads where the study's films are (after cases were added).
    pub(super) fn refresh_films(&mut self, cache_dir: &Path) -> Result<(), StoreError> {
        (self.paths, self.archived) = film_places(&self.store, cache_dir)?;
        Ok(())
    }

    /// The current case's ID.
    pub fn current_case(&self) -> Option<&str> {
        self.worklist.get(self.index).map(|e| e.case_id.as_str())
    }

    /// In a reader study: the arm the current entry is read in.
    pub fn current_arm(&self) -> Option<Arm> {
        self.worklist.get(self.index).and_then(|e| e.arm)
    }

    /// The film of a case.
    pub fn case_path(&self, case_id: &str) -> Option<PathBuf> {
        self.paths.get(case_id).cloned()
    }

    /// The parts the coordinator's view shows (the overview form, compare table and dashboard to
    /// change, the rest to read).
    pub fn coordinator_parts(&mut self, tab: CoordinatorTab) -> CoordinatorParts<'_> {
        let cases = self.paths.len();
        CoordinatorParts {
            tab,
            info: &self.info,
            readers: &self.readers,
            status: self.status.as_ref(),
            recorded: self.recorded.as_ref().map(|(_, n)| *n),
            cases,
            study_run: self.study_run.as_ref(),
            overview: &mut self.overview,
            compare: self.compare.as_mut(),
            dashboard: &mut self.dashboard,
            design: self.design,
            reader_study: &mut self.reader_study,
        }
    }

    /// Loads the reader's own reading of the current case into the grading panel (its draft, with the
    /// confidence): in the entry's arm for an arm reader (never the other arm's), else their reading.
    pub(super) fn load_own(&mut self, reader: &str, case: &str) -> Result<(), StoreError> {
        let s = self;
        let own = match s.current_arm() {
            None => s.store.own_reading(reader, case)?.map(|r| (r, None)),
            Some(arm) => s.store.own_arm_reading(reader, case, arm)?.map(|a| {
                (
                    ReadingRecord {
                        case_id: a.case_id,
                        reader: a.reader,
                        role: crate::session::Role::Reader,
                        reading: a.reading,
                        committed_at: a.committed_at,
                    },
                    Some(a.confidence),
                )
            }),
        };
        if let Some((o, confidence)) = &own {
            s.draft = Draft::from_reading(&o.reading);
            s.draft.confidence = *confidence;
        }
        s.own = own.map(|(o, _)| o);
        Ok(())
    }

    /// Loads the joint boxes of a case the reader may see.
    pub(super) fn load_joint_boxes(&mut self, reader: &str, case: &str) -> Result<(), StoreError> {
        self.joint_boxes = self.store.joint_boxes(reader, case)?;
        Ok(())
    }

    /// The reader's own boxes of the current case: the patient's left, right.
    pub fn own_joint_boxes(&self) -> [Option<CropRect>; 2] {
        let reader = self.mode.reader();
        Side::BOTH.map(|side| {
            self.joint_boxes
                .iter()
                .find(|b| Some(b.reader.as_str()) == reader && b.side == side)
                .map(|b| b.rect)
        })
    }

    /// Reloads what the coordinator sees (progress figures, the prediction count of the model `sha`, the
    /// compare table) when readings, predictions or the model changed, once; returns what failed.
    pub(super) fn refresh_views(&mut self, sha: Option<String>) -> Vec<String> {
        let fresh = !self.stale && self.compare.as_ref().is_none_or(|c| c.model_sha == sha);
        if fresh || !(self.mode.is_coordinating() || self.mode.is_reviewing()) {
            return Vec::new();
        }
        self.stale = false;
        let mut errors = Vec::new();
        match crate::session::status(&*self.store) {
            Ok(st) => self.status = Some(st),
            Err(e) => errors.push(format!("progress: {e}")),
        }
        self.recorded = match &sha {
            Some(h) => match self.store.predictions(h) {
                Ok(p) => Some((h.clone(), p.len())),
                Err(e) => {
                    errors.push(format!("predictions: {e}"));
                    None
                }
            },
            None => None,
        };
        match CompareView::build(&*self.store, sha.as_deref()) {
            Ok(mut c) => {
                if let Some(old) = &self.compare {
                    c.filter = old.filter;
                    c.sort = old.sort;
                    c.cutoff_index = old.cutoff_index;
                }
                self.compare = Some(c);
            }
            Err(e) => {
                self.compare = None;
                errors.push(format!("compare table: {e}"));
            }
        }
        errors
    }

    /// Marks what is derived from readings and predictions as out of date (compare table, dashboard,
    /// progress figures, prediction count).
    pub(super) fn invalidate(&mut self) {
        if let Some(c) = &mut self.compare {
            c.stale = true;
        }
        self.dashboard.invalidate();
        self.reader_study.invalidate();
        self.stale = true;
    }
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

impl Source {
    /// The film of entry `i` of the work list (or of the files).
    pub fn path_at(&self, i: usize) -> Option<PathBuf> {
        match self {
            Self::Empty => None,
            Self::Files { paths, .. } => paths.get(i).cloned(),
            Self::Study(s) => s.worklist.get(i).and_then(|e| s.case_path(&e.case_id)),
        }
    }

    /// The current position, when something is open.
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::Empty => None,
            Self::Files { index, .. } => Some(*index),
            Self::Study(s) => Some(s.index),
        }
    }

    /// The current film.
    pub fn current_path(&self) -> Option<PathBuf> {
        self.index().and_then(|i| self.path_at(i))
    }

    /// Entries of the work list (or files).
    pub fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::Files { paths, .. } => paths.len(),
            Self::Study(s) => s.worklist.len(),
        }
    }

    /// Whether nothing can be shown.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where each case's film is on this machine: a local file, or its place in the film cache for a film
/// in an archive (with what the loader needs to fetch it there).
type FilmPlaces = (
    HashMap<String, PathBuf>,
    HashMap<PathBuf, super::loader::Fetch>,
);

fn film_places(store: &Study, film_cache: &Path) -> Result<FilmPlaces, StoreError> {
    // A film in an archive is at its place in the local film cache, fetched there on demand.
    let mut archived = HashMap::new();
    let mut paths = HashMap::new();
    for c in store.cases()? {
        if let Some(p) = store.resolve(&c) {
            paths.insert(c.id, p);
        } else if let (Some(a), Some(sop)) = (c.archive, c.sop_instance_uid)
            // A study edited behind Sacro's back could name a path here: a UID or no film.
            && crate::imaging::valid_uid(&sop)
        {
            let p = crate::pacs::cache::entry_in(film_cache, &sop);
            archived.insert(
                p.clone(),
                super::loader::Fetch {
                    url: a.url,
                    study: a.study_uid,
                    series: a.series_uid,
                    sop,
                },
            );
            paths.insert(c.id, p);
        }
    }
    Ok((paths, archived))
}
