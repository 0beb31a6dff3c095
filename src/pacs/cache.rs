//! The local film cache: instances retrieved from an archive, kept by SOP Instance UID so that a film
//! read once reads again offline, within a size limit (least recently used evicted first). An entry is
//! only ever created by [`DicomWeb::retrieve`] (a temporary file, checked, renamed), so a half-downloaded
//! or wrong film is never in the cache; a use refreshes its time.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{DicomWeb, PacsError};
use crate::imaging::valid_uid;

/// Default size limit: 20 GiB.
pub const DEFAULT_LIMIT: u64 = 20 << 30;

/// Where the film cache in `dir` keeps (or will keep) an instance: `<SOP Instance UID>.dcm`.
pub fn entry_in(dir: &Path, sop: &str) -> PathBuf {
    dir.join(format!("{sop}.dcm"))
}

/// What the cache holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CacheInfo {
    /// Folder.
    pub dir: PathBuf,
    /// Films.
    pub films: usize,
    /// Bytes they take.
    pub bytes: u64,
    /// Size limit.
    pub limit: u64,
}

/// The film cache in one folder.
#[derive(Debug, Clone)]
pub struct FilmCache {
    dir: PathBuf,
    limit: u64,
}

impl FilmCache {
    /// `SACRO_CACHE_DIR`, else `$XDG_CACHE_HOME/sacro/films`, else `~/.cache/sacro/films`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("SACRO_CACHE_DIR") {
            return PathBuf::from(d);
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("sacro/films")
    }

    /// The cache in `dir` (created if missing) with a size limit in bytes.
    pub fn open(dir: &Path, limit: u64) -> Result<Self, PacsError> {
        std::fs::create_dir_all(dir).map_err(|source| PacsError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            limit,
        })
    }

    /// The default cache (`default_dir`, 20 GiB).
    pub fn open_default() -> Result<Self, PacsError> {
        Self::open(&Self::default_dir(), DEFAULT_LIMIT)
    }

    /// The file an instance has (or will have) in the cache.
    pub fn entry(&self, sop: &str) -> PathBuf {
        entry_in(&self.dir, sop)
    }

    /// The cached film of an instance, if any (its use recorded for eviction).
    pub fn get(&self, sop: &str) -> Option<PathBuf> {
        if !valid_uid(sop) {
            return None;
        }
        let path = self.entry(sop);
        let file = std::fs::File::options().append(true).open(&path).ok()?;
        let _ = file.set_modified(SystemTime::now());
        Some(path)
    }

    /// The film of an instance: from the cache, else retrieved from the archive into it (then the
    /// least recently used films are evicted down to the limit, never this one).
    pub fn fetch(
        &self,
        client: &DicomWeb,
        study: &str,
        series: &str,
        sop: &str,
    ) -> Result<PathBuf, PacsError> {
        if let Some(p) = self.get(sop) {
            return Ok(p);
        }
        self.download(client, study, series, sop)
    }

    /// Retrieves an instance into the cache, then evicts down to the limit (never this one).
    fn download(
        &self,
        client: &DicomWeb,
        study: &str,
        series: &str,
        sop: &str,
    ) -> Result<PathBuf, PacsError> {
        let path = client.retrieve(study, series, sop, &self.dir)?;
        self.evict(&path);
        Ok(path)
    }

    /// The film of an archived instance: from the cache, else retrieved from the archive at `url`
    /// with `credentials` (and `SACRO_DICOMWEB_CA_CERT`, a PEM file, trusted if set).
    pub fn film(
        &self,
        url: &str,
        credentials: &super::Credentials,
        study: &str,
        series: &str,
        sop: &str,
    ) -> Result<PathBuf, PacsError> {
        if let Some(p) = self.get(sop) {
            return Ok(p);
        }
        let client = DicomWeb::new(url, credentials, super::ca_cert_from_env().as_deref())?;
        self.download(&client, study, series, sop)
    }

    fn films(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let name = path.file_name()?.to_str()?;
                let uid = name.strip_suffix(".dcm")?;
                if !valid_uid(uid) {
                    return None;
                }
                let meta = e.metadata().ok()?;
                Some((path, meta.len(), meta.modified().ok()?))
            })
            .collect()
    }

    fn evict(&self, keep: &Path) {
        let mut films = self.films();
        let mut total: u64 = films.iter().map(|f| f.1).sum();
        films.sort_by_key(|f| f.2);
        for (path, len, _) in films {
            if total <= self.limit {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }

    /// What the cache holds.
    pub fn info(&self) -> CacheInfo {
        let films = self.films();
        CacheInfo {
            dir: self.dir.clone(),
            films: films.len(),
            bytes: films.iter().map(|f| f.1).sum(),
            limit: self.limit,
        }
    }

    /// Removes every cached film (and leftovers of interrupted downloads); returns how many films.
    pub fn clear(&self) -> Result<usize, PacsError> {
        let films = self.films();
        for (path, _, _) in &films {
            std::fs::remove_file(path).map_err(|source| PacsError::Io {
                path: path.clone(),
                source,
            })?;
        }
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with(".sacro-fetch-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(films.len())
    }
}
