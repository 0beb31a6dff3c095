//! Background decoding: films are decoded on a worker thread (the UI never waits for a decoder) and kept
//! in a small cache, so that the next case of a work list, requested ahead, opens at once. A film of a
//! case that refers to a DICOMweb archive is fetched into the local film cache first (on the same
//! worker, so prefetching the next case fetches it too); a failed fetch may be retried after a while.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use super::viewer::Film;
use crate::imaging::{self, LoadOptions};

/// Films kept decoded.
const CACHE: usize = 4;

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A fresh key for GPU resources.
pub fn next_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// Where a film that is not on this machine comes from: an instance in a DICOMweb archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The archive's DICOMweb root.
    pub url: String,
    /// Study Instance UID.
    pub study: String,
    /// Series Instance UID.
    pub series: String,
    /// SOP Instance UID.
    pub sop: String,
}

/// Seconds before a failed fetch (server down, 401) is tried again.
const FETCH_RETRY_S: u64 = 15;

type Outcome = (PathBuf, Result<Arc<Film>, String>, f64);
type Archived = Arc<Mutex<HashMap<PathBuf, Fetch>>>;
/// The archive login typed into the app, with the origin (scheme, host, port) it was typed for: it is
/// sent to that archive only, whatever URL a (possibly edited) study names. None: the environment's.
type Login = Arc<Mutex<Option<(String, crate::pacs::Credentials)>>>;

/// `scheme://host:port` of a URL, lower-cased (what a login is bound to).
pub fn origin(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// Fetches `path`'s film from its archive when it is not on disk yet.
fn fetch_if_archived(
    path: &Path,
    archived: &Archived,
    login: &Login,
    fetching: &Mutex<Option<PathBuf>>,
    cache_dir: &Mutex<PathBuf>,
) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    let Some(f) = archived
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(path)
        .cloned()
    else {
        return Ok(());
    };
    let credentials = match login.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        Some((o, c)) if o == origin(&f.url) => c,
        _ => crate::pacs::Credentials::from_env(),
    };
    *fetching.lock().unwrap_or_else(|p| p.into_inner()) = Some(path.to_path_buf());
    let dir = cache_dir.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let result = crate::pacs::cache::FilmCache::open(&dir, crate::pacs::cache::DEFAULT_LIMIT)
        .and_then(|c| c.film(&f.url, &credentials, &f.study, &f.series, &f.sop))
        .map_err(|e| format!("fetching from the archive: {e}"));
    *fetching.lock().unwrap_or_else(|p| p.into_inner()) = None;
    result.map(|_| ())
}

/// The decoding worker and its cache.
pub struct Loader {
    tx: Sender<PathBuf>,
    rx: Receiver<Outcome>,
    cache: HashMap<PathBuf, Arc<Film>>,
    order: VecDeque<PathBuf>,
    pending: HashSet<PathBuf>,
    failed: HashMap<PathBuf, (String, std::time::Instant)>,
    archived: Archived,
    login: Login,
    fetching: Arc<Mutex<Option<PathBuf>>>,
    cache_dir: Arc<Mutex<PathBuf>>,
    /// Films whose failure was reported (a retried fetch that fails again is not reported again).
    reported: HashSet<PathBuf>,
    /// Seconds the last decode took.
    pub last_decode_s: Option<f64>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("cached", &self.order)
            .field("pending", &self.pending)
            .finish()
    }
}

impl Loader {
    /// Starts the worker; it asks `ctx` to repaint when a film is ready.
    pub fn new(ctx: egui::Context) -> Self {
        let (tx, worker_rx) = channel::<PathBuf>();
        let (worker_tx, rx) = channel::<Outcome>();
        let archived: Archived = Arc::default();
        let fetching: Arc<Mutex<Option<PathBuf>>> = Arc::default();
        let login: Login = Arc::default();
        let cache_dir = Arc::new(Mutex::new(crate::pacs::cache::FilmCache::default_dir()));
        let worker_cache = cache_dir.clone();
        let (worker_archived, worker_fetching, worker_login) =
            (archived.clone(), fetching.clone(), login.clone());
        let spawned = std::thread::Builder::new()
            .name("sacro-decode".into())
            .spawn(move || {
                while let Ok(path) = worker_rx.recv() {
                    let t = std::time::Instant::now();
                    let result = fetch_if_archived(
                        &path,
                        &worker_archived,
                        &worker_login,
                        &worker_fetching,
                        &worker_cache,
                    )
                    .and_then(|()| {
                        imaging::load(&path, &LoadOptions::default()).map_err(|e| e.to_string())
                    })
                    .map(|r| Arc::new(Film::new(next_key(), r)));
                    if worker_tx
                        .send((path, result, t.elapsed().as_secs_f64()))
                        .is_err()
                    {
                        break;
                    }
                    ctx.request_repaint();
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the decoding thread: {e}");
        }
        Self {
            tx,
            rx,
            cache: HashMap::new(),
            order: VecDeque::new(),
            pending: HashSet::new(),
            failed: HashMap::new(),
            archived,
            login,
            fetching,
            cache_dir,
            reported: HashSet::new(),
            last_decode_s: None,
        }
    }

    /// The films of a study's archived cases (by their place in the film cache), replacing any before.
    pub fn set_archived(&mut self, archived: HashMap<PathBuf, Fetch>) {
        *self.archived.lock().unwrap_or_else(|p| p.into_inner()) = archived;
    }

    /// The archive login to fetch with from the archive at `url` (None: the environment's); failed
    /// fetches are tried again.
    pub fn set_credentials(&mut self, url: &str, credentials: Option<crate::pacs::Credentials>) {
        *self.login.lock().unwrap_or_else(|p| p.into_inner()) =
            credentials.map(|c| (origin(url), c));
        let archived = self.archived.lock().unwrap_or_else(|p| p.into_inner());
        self.failed.retain(|p, _| !archived.contains_key(p));
    }

    /// The folder of the film cache that archived films are fetched into.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Uses another film cache folder (for studies opened from now on).
    pub fn set_cache_dir(&mut self, dir: PathBuf) {
        *self.cache_dir.lock().unwrap_or_else(|p| p.into_inner()) = dir;
    }

    /// The archive a film is fetched from (a case that refers to one).
    pub fn archive_of(&self, path: &Path) -> Option<String> {
        self.archived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .map(|f| f.url.clone())
    }

    /// Whether the worker is fetching this film from its archive now.
    pub fn is_fetching(&self, path: &Path) -> bool {
        self.fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            == Some(path)
    }

    /// Asks for a film (no-op when cached, pending or known to fail; a failed fetch from an archive
    /// is tried again after a while).
    pub fn request(&mut self, path: &Path) {
        if let Some((_, when)) = self.failed.get(path) {
            let archived = self
                .archived
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(path);
            if archived && when.elapsed().as_secs() >= FETCH_RETRY_S {
                self.failed.remove(path);
            }
        }
        if self.cache.contains_key(path)
            || self.pending.contains(path)
            || self.failed.contains_key(path)
        {
            return;
        }
        if self.tx.send(path.to_path_buf()).is_ok() {
            self.pending.insert(path.to_path_buf());
        }
    }

    /// Takes finished decodes into the cache; returns the failures (path, reason) that arrived.
    pub fn poll(&mut self) -> Vec<(PathBuf, String)> {
        let mut errors = Vec::new();
        while let Ok((path, result, secs)) = self.rx.try_recv() {
            self.pending.remove(&path);
            match result {
                Ok(film) => {
                    self.reported.remove(&path);
                    self.last_decode_s = Some(secs);
                    self.cache.insert(path.clone(), film);
                    self.order.retain(|p| p != &path);
                    self.order.push_back(path);
                    while self.order.len() > CACHE {
                        if let Some(old) = self.order.pop_front() {
                            self.cache.remove(&old);
                        }
                    }
                }
                Err(e) => {
                    self.failed
                        .insert(path.clone(), (e.clone(), std::time::Instant::now()));
                    if self.reported.insert(path.clone()) {
                        errors.push((path, e));
                    }
                }
            }
        }
        errors
    }

    /// The film, if decoded.
    pub fn get(&self, path: &Path) -> Option<Arc<Film>> {
        self.cache.get(path).cloned()
    }

    /// Why the film could not be decoded, if it could not.
    pub fn error(&self, path: &Path) -> Option<&str> {
        self.failed.get(path).map(|(e, _)| e.as_str())
    }

    /// Whether a decode of the film is under way.
    pub fn is_pending(&self, path: &Path) -> bool {
        self.pending.contains(path)
    }

    /// Waits (up to `timeout`) until nothing is pending: for tests and the command line.
    pub fn wait_idle(&mut self, timeout: std::time::Duration) -> Vec<(PathBuf, String)> {
        let start = std::time::Instant::now();
        let mut errors = Vec::new();
        while !self.pending.is_empty() && start.elapsed() < timeout {
            errors.extend(self.poll());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        errors.extend(self.poll());
        errors
    }
}
