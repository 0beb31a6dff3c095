//! Reaching the server: the study URL `postgres://LOGIN@HOST:PORT/DATABASE[?sslmode=…&sslrootcert=…]`,
//! the password from the places libpq takes it (given by the caller — `--password-file` or the app's
//! prompt —, `PGPASSWORD`, then `PGPASSFILE` or `~/.pgpass`), TLS as libpq's `sslmode` says, and the
//! server's errors turned into one clear line each. A password is never part of what Sacro shows or
//! writes: the URL may not carry one.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres::config::SslMode;
use postgres::{Client, NoTls};
use postgres_openssl::MakeTlsConnector;

use crate::session::{StoreError, StoreResult};

/// Whether a study location is a server URL rather than a file.
pub fn is_server_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// What a caller gives to open a server study.
#[derive(Clone, Default)]
pub struct ServerLogin {
    /// `postgres://LOGIN@HOST:PORT/DATABASE[?sslmode=…]`.
    pub url: String,
    /// The password, where the caller has it (a password file, a prompt); else `PGPASSWORD` and the
    /// pgpass file are asked.
    pub password: Option<String>,
}

impl std::fmt::Debug for ServerLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerLogin")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A parsed study URL with its password.
pub(super) struct Target {
    /// `postgres://LOGIN@HOST:PORT/DATABASE` (no password), for messages.
    pub display: String,
    pub user: String,
    pub dbname: String,
    config: postgres::Config,
    tls: Tls,
    root_cert: Option<PathBuf>,
}

impl Target {
    pub fn parse(login: &ServerLogin) -> StoreResult<Self> {
        let url = login.url.trim();
        let bad = |detail: String| StoreError::Server {
            target: redact(url),
            detail,
        };
        if !is_server_url(url) {
            return Err(bad(
                "not a server study URL (postgres://LOGIN@HOST:PORT/DATABASE)".into(),
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut tls = Tls::Prefer;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    tls = match v {
                        "disable" => Tls::Disable,
                        "allow" | "prefer" => Tls::Prefer,
                        "require" => Tls::Require,
                        "verify-ca" => Tls::VerifyCa,
                        "verify-full" => Tls::VerifyFull,
                        _ => {
                            return Err(bad(format!(
                                "sslmode={v}: one of disable, prefer, require, verify-ca, verify-full"
                            )));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(v)),
                "password" => {
                    return Err(bad(no_password_in_url()));
                }
                _ => rest.push(pair),
            }
        }
        let cleaned = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config = postgres::Config::from_str(&cleaned)
            .map_err(|e| bad(format!("cannot read the URL: {e}")))?;
        if config.get_password().is_some() {
            return Err(bad(no_password_in_url()));
        }
        let user = config
            .get_user()
            .map(str::to_string)
            .ok_or_else(|| bad("the URL names no login (postgres://LOGIN@HOST/DATABASE)".into()))?;
        let dbname = config.get_dbname().map(str::to_string).ok_or_else(|| {
            bad("the URL names no database (postgres://LOGIN@HOST/DATABASE)".into())
        })?;
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                postgres::config::Host::Tcp(h) => h.clone(),
                postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let display = format!("postgres://{user}@{host}:{port}/{dbname}");
        let password = login
            .password
            .clone()
            .or_else(|| std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()))
            .or_else(|| pgpass_lookup(&host, port, &dbname, &user));
        if let Some(p) = password {
            config.password(p);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("sacro");
        config.ssl_mode(match tls {
            Tls::Disable => SslMode::Disable,
            Tls::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        Ok(Self {
            display,
            user,
            dbname,
            config,
            tls,
            root_cert,
        })
    }

    pub fn connect(&self) -> StoreResult<Client> {
        let out = if self.tls == Tls::Disable {
            self.config.connect(NoTls)
        } else {
            self.config.connect(self.tls_connector()?)
        };
        let mut client = out.map_err(|e| map_error(self, &e))?;
        // Every statement of a session times out rather than hanging a reader's window forever.
        client
            .batch_execute("SET statement_timeout = '60s'; SET lock_timeout = '30s'")
            .map_err(|e| map_error(self, &e))?;
        Ok(client)
    }

    fn tls_connector(&self) -> StoreResult<MakeTlsConnector> {
        let fail = |e: openssl::error::ErrorStack| StoreError::Server {
            target: self.display.clone(),
            detail: format!("cannot set up TLS: {e}"),
        };
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(fail)?;
        match self.tls {
            Tls::VerifyCa | Tls::VerifyFull => {
                if let Some(ca) = &self.root_cert {
                    builder.set_ca_file(ca).map_err(|e| StoreError::Server {
                        target: self.display.clone(),
                        detail: format!("sslrootcert {}: {e}", ca.display()),
                    })?;
                }
                builder.set_verify(SslVerifyMode::PEER);
            }
            _ => builder.set_verify(SslVerifyMode::NONE),
        }
        let mut connector = MakeTlsConnector::new(builder.build());
        if self.tls != Tls::VerifyFull {
            connector.set_callback(|cfg, _| {
                cfg.set_verify_hostname(false);
                Ok(())
            });
        }
        Ok(connector)
    }
}

fn no_password_in_url() -> String {
    "a password does not belong in the URL (URLs end up in shell histories and logs): use \
     --password-file, PGPASSWORD or ~/.pgpass"
        .into()
}

/// A URL as it may be shown: without a password (nor any query parameter, where one may hide).
fn redact(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(base, _)| base);
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The password for a login from the pgpass file (`PGPASSFILE`, else `~/.pgpass`), as libpq reads it:
/// `host:port:database:user:password`, `*` matching anything, `\` escaping `:` and `\`; ignored
/// (as libpq does) when others may read the file.
fn pgpass_lookup(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 || meta.len() > 1 << 20 {
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    pgpass_match(&text, host, port, db, user)
}

/// The first matching line of a pgpass file's text.
pub(crate) fn pgpass_match(
    text: &str,
    host: &str,
    port: u16,
    db: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() != 5 {
                return None;
            }
            let ok = |pat: &str, v: &str| pat == "*" || pat == v;
            (ok(&fields[0], host)
                && ok(&fields[1], &port)
                && ok(&fields[2], db)
                && ok(&fields[3], user))
            .then(|| fields[4].clone())
        })
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(last) = fields.last_mut()
                {
                    last.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

/// A server error as the store reports it: one line saying what happened and what to do.
pub(super) fn map_error(target: &Target, e: &postgres::Error) -> StoreError {
    let server = |detail: String| StoreError::Server {
        target: target.display.clone(),
        detail,
    };
    if let Some(db) = e.as_db_error() {
        let msg = db.message();
        let code = db.code().code();
        if let Some(rest) = msg.strip_prefix("sacro: ") {
            if rest.contains("study is locked") {
                return StoreError::Locked;
            }
            return StoreError::Invalid(rest.to_string());
        }
        return match code {
            "40001" | "40P01" | "55P03" => StoreError::Busy(PathBuf::from(&target.display)),
            "28P01" | "28000" => server(format!(
                "login {:?} refused: wrong password or no such login ({msg})",
                target.user
            )),
            "3D000" => server(format!("no database {:?} on this server", target.dbname)),
            "42501" => StoreError::NotPermitted(format!(
                "{msg}: the login {:?} may not do this in this study",
                target.user
            )),
            _ => server(format!("{msg} (SQLSTATE {code})")),
        };
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    let lower = text.to_lowercase();
    let detail = if lower.contains("password missing") {
        format!(
            "the server asks for a password for {:?} and none was given: use --password-file, PGPASSWORD \
             or ~/.pgpass",
            target.user
        )
    } else if lower.contains("server does not support tls") {
        "the server does not offer TLS, and sslmode asks for it: nothing was sent".into()
    } else if lower.contains("connection refused") {
        "cannot reach the server (connection refused): is it running, and is the port right?".into()
    } else if lower.contains("timed out") || lower.contains("timeout") {
        format!("the server did not answer in time ({text})")
    } else if e.is_closed() || lower.contains("connection closed") || lower.contains("broken pipe")
    {
        "the connection to the server was lost; what was reported saved is saved, the rest was not"
            .into()
    } else {
        text
    };
    server(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_match_as_libpq_reads_them() {
        let text = "# comment\nother:5432:*:ann:nope\nlocalhost:5432:study:ann:s\\:e\\\\cret\n*:*:*:bob:pw:with:colons\n";
        assert_eq!(
            pgpass_match(text, "localhost", 5432, "study", "ann").as_deref(),
            Some("s:e\\cret")
        );
        assert_eq!(
            pgpass_match(text, "db.example", 6000, "x", "bob").as_deref(),
            Some("pw:with:colons")
        );
        assert_eq!(pgpass_match(text, "localhost", 5433, "study", "ann"), None);
    }

    #[test]
    fn urls_with_passwords_are_refused_and_never_shown() {
        for url in [
            "postgres://ann:secret@localhost:5432/study",
            "postgres://ann@localhost/study?password=secret",
        ] {
            let Err(e) = Target::parse(&ServerLogin {
                url: url.into(),
                password: None,
            }) else {
                panic!("{url} accepted");
            };
            let text = e.to_string();
            assert!(!text.contains("secret"), "{text}");
            assert!(text.contains("does not belong in the URL"), "{text}");
        }
        let e = Target::parse(&ServerLogin {
            url: "postgres://ann@localhost/study?sslmode=sometimes".into(),
            password: None,
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("sslmode=sometimes"), "{e}");
    }
}
