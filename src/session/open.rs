//! A study wherever it is kept: a file (SQLite) or a server database (PostgreSQL). The command line
//! and the app open a study by its location — a path or a `postgres://` URL — and use it through
//! [`StudyStore`]; the few things that differ (where films are, who the login is, verification) are
//! here.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use super::dump::StudyDump;
use super::{CaseInfo, PgStore, ServerLogin, SqliteStore, StoreResult, StudyStore, is_server_url};

/// An open study.
#[derive(Debug)]
pub enum Study {
    /// A study file.
    File(SqliteStore),
    /// A study on a PostgreSQL server.
    Server(Box<PgStore>),
}

impl Deref for Study {
    type Target = dyn StudyStore;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::File(s) => s,
            Self::Server(s) => s.as_ref(),
        }
    }
}

impl Study {
    /// Opens the study at `location` (a path, or a URL `postgres://LOGIN@HOST:PORT/DATABASE`;
    /// `password` is the login's, where the caller has it).
    pub fn open(location: &Path, password: Option<String>) -> StoreResult<Self> {
        match location.to_str().filter(|s| is_server_url(s)) {
            Some(url) => Ok(Self::Server(Box::new(PgStore::open(&ServerLogin {
                url: url.to_string(),
                password,
            })?))),
            None => Ok(Self::File(SqliteStore::open(location)?)),
        }
    }

    /// The location as shown to people (a server URL without password).
    pub fn location(&self) -> String {
        match self {
            Self::File(s) => s.path().display().to_string(),
            Self::Server(s) => s.location().to_string(),
        }
    }

    /// The file of a case on this machine.
    pub fn resolve(&self, case: &CaseInfo) -> Option<PathBuf> {
        match self {
            Self::File(s) => s.resolve(case),
            Self::Server(s) => s.resolve(case),
        }
    }

    /// Checks the study against its audit trail (one line per finding; empty: intact).
    pub fn verify(&self) -> StoreResult<Vec<String>> {
        match self {
            Self::File(s) => s.verify(),
            Self::Server(s) => s.verify(),
        }
    }

    /// Whether every write will be refused (a file without write permission).
    pub fn is_read_only(&self) -> bool {
        match self {
            Self::File(s) => s.is_read_only(),
            Self::Server(_) => false,
        }
    }

    /// Whether this is the coordinator's view of the whole study (a file always is; on a server, the
    /// database owner's login).
    pub fn is_coordinator(&self) -> bool {
        match self {
            Self::File(_) => true,
            Self::Server(s) => s.is_coordinator(),
        }
    }

    /// The reader a server login is (None for a file or the coordinator's login).
    pub fn logged_in_reader(&self) -> StoreResult<Option<String>> {
        match self {
            Self::File(_) => Ok(None),
            Self::Server(s) => s.logged_in_reader(),
        }
    }

    /// Every row of the study.
    pub fn dump(&self) -> StoreResult<StudyDump> {
        match self {
            Self::File(s) => s.dump(),
            Self::Server(s) => s.dump(),
        }
    }
}
