//! A study on a PostgreSQL server (15 or newer), for studies shared by several sites: one study per
//! database, each reader and the coordinator logging in as their own PostgreSQL role. The database
//! enforces blinding, the append-only audit trail and the lock itself ([`schema`]); this store gives
//! the same answers as the SQLite store through [`StudyStore`] (the shared store suite runs on both).
//!
//! Files: [`schema`] (tables, policies, triggers), `admin` (creating a study, readers' logins), `connect` (the URL, libpq's password sources and
//! `sslmode`, TLS), `store` (the [`StudyStore`] implementation), `copy` (push and pull).
//!
//! Writes run in one transaction each, after the study's advisory write lock, so they happen one after
//! another as in a study file; a serialization failure or deadlock is retried here with backoff, never
//! shown. A lost connection fails the call in progress (what it reported as saved is saved) and the
//! next call reconnects.

mod admin;
mod connect;
mod copy;
pub mod schema;
mod store;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, Transaction};

use connect::Target;
pub use connect::{ServerLogin, is_server_url};
pub use schema::SCHEMA_VERSION as SERVER_SCHEMA_VERSION;

use super::{CaseInfo, StoreError, StoreResult};

/// A study in a PostgreSQL database, opened with one login.
pub struct PgStore {
    target: Target,
    client: Mutex<Option<Client>>,
    /// The login is the database owner: the study's coordinator.
    owner: bool,
    /// Where case paths stored relative are found on this machine.
    films_root: PathBuf,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target.display)
            .finish()
    }
}

/// How many times a write is tried when the server reports a serialization failure or deadlock.
const WRITE_TRIES: u32 = 12;

/// The waits before each new connection when a write finds the server unreachable (about 2 s in all).
const RECONNECTS: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

impl PgStore {
    /// Opens the study in the database `login` names, checking that it is a Sacro study of a known
    /// schema version.
    pub fn open(login: &ServerLogin) -> StoreResult<Self> {
        let target = Target::parse(login)?;
        let mut client = target.connect()?;
        let owner = store::check_study(&target, &mut client)?;
        Ok(Self {
            target,
            client: Mutex::new(Some(client)),
            owner,
            films_root: PathBuf::from("."),
        })
    }

    /// The study's location as shown to people (no password).
    pub fn location(&self) -> &str {
        &self.target.display
    }

    /// The login this store uses.
    pub fn login(&self) -> &str {
        &self.target.user
    }

    /// Whether the login owns the database (the coordinator).
    pub fn is_coordinator(&self) -> bool {
        self.owner
    }

    /// Sets the folder that case paths stored relative are resolved against (default: the current
    /// folder): on a server, films are where each site keeps them.
    pub fn set_films_root(&mut self, root: &Path) {
        self.films_root = root.to_path_buf();
    }

    /// The file of a case on this machine.
    pub fn resolve(&self, case: &CaseInfo) -> Option<PathBuf> {
        case.path.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                self.films_root.join(p)
            }
        })
    }

    /// A path as the study keeps it: relative to the films folder where it lies below it.
    fn stored_path(&self, p: &Path) -> String {
        let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let base =
            std::fs::canonicalize(&self.films_root).unwrap_or_else(|_| self.films_root.clone());
        let rel = abs
            .strip_prefix(&base)
            .map(Path::to_path_buf)
            .unwrap_or(abs);
        rel.to_string_lossy().replace('\\', "/")
    }

    /// The connection, reconnecting first when the last one was lost.
    fn client(&self) -> StoreResult<MutexGuard<'_, Option<Client>>> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = None;
            *guard = Some(self.target.connect()?);
        }
        Ok(guard)
    }

    /// Runs `f` on the connection (reads: each statement sees what was committed before it).
    fn read<T>(&self, f: impl FnOnce(&mut Client) -> StoreResult<T>) -> StoreResult<T> {
        let mut guard = self.client()?;
        let client = guard.as_mut().ok_or_else(|| self.lost())?;
        let out = f(client);
        if client.is_closed() {
            *guard = None;
        }
        out
    }

    /// Runs `f` in one transaction after the study's write lock; all or nothing. Serialization failures
    /// and deadlocks ([`StoreError::Busy`]) are retried with backoff; so is a connection that cannot be
    /// made or is lost *before* the commit was sent (the server rolled that transaction back), for a
    /// few seconds, reconnecting each time. A connection lost while the commit itself was on its way is
    /// reported, never retried: whether it was stored is then unknown, and the caller says so.
    fn write<T>(&self, f: impl Fn(&mut Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut delay = Duration::from_millis(10);
        let mut tries = 0;
        let mut reconnects = 0;
        loop {
            tries += 1;
            let committing = std::cell::Cell::new(false);
            let out = self.read(|client| {
                let mut tx = client.transaction().map_err(|e| self.db(e))?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::WRITE_LOCK])
                    .map_err(|e| self.db(e))?;
                let value = f(&mut tx)?;
                committing.set(true);
                tx.commit().map_err(|e| self.db(e))?;
                Ok(value)
            });
            match out {
                Err(StoreError::Busy(_)) if tries < WRITE_TRIES => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Err(StoreError::Server { .. })
                    if !committing.get()
                        && reconnects < RECONNECTS.len()
                        && self.is_disconnected() =>
                {
                    std::thread::sleep(RECONNECTS[reconnects]);
                    reconnects += 1;
                }
                other => return other,
            }
        }
    }

    /// Whether the connection is gone (never made, or lost): the next call reconnects.
    fn is_disconnected(&self) -> bool {
        self.client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(Client::is_closed)
    }

    fn lost(&self) -> StoreError {
        StoreError::Server {
            target: self.target.display.clone(),
            detail: "the connection to the server was lost".into(),
        }
    }

    /// A database error as the store reports it.
    fn db(&self, e: postgres::Error) -> StoreError {
        connect::map_error(&self.target, &e)
    }
}
