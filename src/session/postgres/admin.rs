//! The coordinator's operations on a server study that a study file does not have: creating the
//! schema in an empty database, and readers tied to PostgreSQL logins.

use std::path::PathBuf;

use super::connect::Target;
use super::schema::{COORDINATOR, GRANTS, SCHEMA, SCHEMA_VERSION};
use super::store::append_audit;
use super::{PgStore, ServerLogin};
use crate::session::rules::{
    check_new_reader, created_json, initial_meta, reader_json, validate_reader_name,
};
use crate::session::{Protocol, ReaderInfo, Role, StoreError, StoreResult};

/// A login name Sacro creates or grants: letters, digits, `_`, `.`, `-`; 1–63 characters.
fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 63
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// An identifier quoted for SQL.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgStore {
    /// Creates a study in the (empty) database the URL names; the login must own that database and may
    /// create roles (`CREATEROLE`): it becomes the study's coordinator.
    pub fn create(login: &ServerLogin, protocol: Protocol, seed: u64) -> StoreResult<Self> {
        Self::create_with(login, |store, tx| {
            let head = ("audit_head", String::new());
            for (k, v) in initial_meta(protocol, seed).into_iter().chain([head]) {
                tx.execute("INSERT INTO meta (key, value) VALUES ($1, $2)", &[&k, &v])
                    .map_err(|e| store.db(e))?;
            }
            append_audit(
                tx,
                COORDINATOR,
                "create_study",
                None,
                None,
                Some(&created_json(protocol, seed)),
                None,
            )
            .map_err(|e| store.db(e))?;
            Ok(())
        })
    }

    /// Builds the schema in an empty database owned by the login and fills it with `fill`, in one
    /// transaction: a failure leaves the database as it was.
    pub(super) fn create_with(
        login: &ServerLogin,
        fill: impl FnOnce(&PgStore, &mut postgres::Transaction<'_>) -> StoreResult<()>,
    ) -> StoreResult<Self> {
        let target = Target::parse(login)?;
        let mut client = target.connect()?;
        let map = |e: postgres::Error| super::connect::map_error(&target, &e);
        let row = client
            .query_one(
                "SELECT session_user = (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
                        current_setting('server_version_num')::int,
                        current_setting('server_encoding'),
                        (SELECT count(*) FROM pg_tables WHERE schemaname = 'public'),
                        to_regclass('public.meta') IS NOT NULL,
                        left(current_database(), 40) || '_' || left(md5(current_database()), 8) || '_readers'",
                &[],
            )
            .map_err(map)?;
        let (owner, version, encoding, tables, has_meta, group): (
            bool,
            i32,
            String,
            i64,
            bool,
            String,
        ) = (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
        );
        if !owner {
            return Err(StoreError::NotPermitted(format!(
                "only the owner of database {:?} may create a study in it (the study's coordinator)",
                target.dbname
            )));
        }
        if version < 150_000 {
            return Err(StoreError::Server {
                target: target.display.clone(),
                detail: format!("PostgreSQL 15 or newer needed (this server is {version})"),
            });
        }
        if encoding != "UTF8" {
            return Err(StoreError::Server {
                target: target.display.clone(),
                detail: format!(
                    "the database's encoding is {encoding}; create it with ENCODING 'UTF8'"
                ),
            });
        }
        if has_meta {
            return Err(StoreError::Invalid(format!(
                "{}: already holds a Sacro study (one study per database)",
                target.display
            )));
        }
        if tables > 0 {
            return Err(StoreError::Invalid(format!(
                "{}: the database holds {tables} other table(s); a study needs an empty database of its own",
                target.display
            )));
        }
        let store = Self {
            target,
            client: std::sync::Mutex::new(None),
            owner: true,
            films_root: PathBuf::from("."),
        };
        {
            let mut tx = client.transaction().map_err(|e| store.db(e))?;
            tx.batch_execute(SCHEMA).map_err(|e| store.db(e))?;
            tx.batch_execute(GRANTS).map_err(|e| store.db(e))?;
            tx.execute("SELECT pg_temp.sacro_grant($1)", &[&group])
                .map_err(|e| store.db(e))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', $1), ('reader_group', $2)",
                &[&SCHEMA_VERSION.to_string(), &group],
            )
            .map_err(|e| store.db(e))?;
            fill(&store, &mut tx)?;
            tx.commit().map_err(|e| store.db(e))?;
        }
        *store.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        Ok(store)
    }

    /// Adds a reader tied to a PostgreSQL login, or ties an existing reader of that name to it: the
    /// login is created (with the password's SCRAM verifier, computed here, so the password never
    /// reaches the server) or, if it exists, granted the study's reader group. Audited.
    pub fn add_reader_login(
        &self,
        name: &str,
        role: Option<Role>,
        login: &str,
        password: Option<&str>,
    ) -> StoreResult<ReaderInfo> {
        self.require_coordinator("add readers")?;
        validate_reader_name(name)?;
        if !valid_login(login) {
            return Err(StoreError::Invalid(format!(
                "login {:?}: 1–63 letters, digits, '_', '.' or '-' needed",
                crate::escape::terminal(login)
            )));
        }
        if login == self.target.user {
            return Err(StoreError::Invalid(format!(
                "{login:?} is the coordinator's login: each reader needs a login of their own"
            )));
        }
        let verifier = password.map(|p| postgres_protocol::password::scram_sha_256(p.as_bytes()));
        self.write(|tx| {
            self.ensure_unlocked(tx)?;
            let group: String = tx
                .query_one("SELECT value FROM meta WHERE key = 'reader_group'", &[])
                .map_err(|e| self.db(e))?
                .get(0);
            let existing = self.readers_in(tx)?;
            let reader = match existing.iter().find(|r| r.name == name) {
                Some(r) => {
                    if role.is_some_and(|x| x != r.role) {
                        return Err(StoreError::Invalid(format!(
                            "reader {name:?} exists already with role {}",
                            r.role.as_str()
                        )));
                    }
                    r.clone()
                }
                None => {
                    let role = role.ok_or_else(|| {
                        StoreError::Invalid(format!("no reader {name:?} yet: give --role"))
                    })?;
                    self.insert_reader(tx, &existing, name, role)?
                }
            };
            let taken: Option<String> = tx
                .query_opt(
                    "SELECT name FROM readers WHERE login = $1 AND name <> $2",
                    &[&login, &name],
                )
                .map_err(|e| self.db(e))?
                .map(|r| r.get(0));
            if let Some(other) = taken {
                return Err(StoreError::Invalid(format!(
                    "login {login:?} is already reader {other:?}'s"
                )));
            }
            let role_exists = tx
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&login])
                .map_err(|e| self.db(e))?
                .is_some();
            let password_sql = verifier
                .as_deref()
                .filter(|v| {
                    v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "$:+/=-".contains(c))
                })
                .map(|v| format!(" PASSWORD '{v}'"))
                .unwrap_or_default();
            if role_exists {
                tx.batch_execute(&format!("GRANT {} TO {}", ident(&group), ident(login)))
                    .map_err(|e| self.db(e))?;
                if !password_sql.is_empty() {
                    tx.batch_execute(&format!("ALTER ROLE {}{password_sql}", ident(login)))
                        .map_err(|e| self.db(e))?;
                }
            } else {
                tx.batch_execute(&format!(
                    "CREATE ROLE {} LOGIN{password_sql} IN ROLE {}",
                    ident(login),
                    ident(&group)
                ))
                .map_err(|e| self.db(e))?;
            }
            tx.execute(
                "UPDATE readers SET login = $1 WHERE id = $2",
                &[&login, &reader.id],
            )
            .map_err(|e| self.db(e))?;
            append_audit(
                tx,
                COORDINATOR,
                "set_login",
                None,
                None,
                Some(&format!(
                    "{{\"name\":{},\"login\":{}}}",
                    serde_json::Value::from(name),
                    serde_json::Value::from(login)
                )),
                None,
            )
            .map_err(|e| self.db(e))?;
            Ok(reader)
        })
    }

    pub(super) fn insert_reader(
        &self,
        tx: &mut postgres::Transaction<'_>,
        existing: &[ReaderInfo],
        name: &str,
        role: Role,
    ) -> StoreResult<ReaderInfo> {
        let info = self.info_in(tx)?;
        check_new_reader(&info, existing, name, role)?;
        let id = existing.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO readers (id, name, role, created_at) VALUES ($1, $2, $3, sacro_now())",
            &[&id, &name, &role.as_str()],
        )
        .map_err(|e| self.db(e))?;
        append_audit(
            tx,
            COORDINATOR,
            "add_reader",
            None,
            None,
            Some(&reader_json(name, role)),
            None,
        )
        .map_err(|e| self.db(e))?;
        Ok(ReaderInfo {
            id,
            name: name.to_string(),
            role,
        })
    }
}
