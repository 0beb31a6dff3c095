//! A throwaway PostgreSQL server for the tests that need one: `initdb` and `pg_ctl` in a temporary
//! folder, listening on a free loopback port only, password (SCRAM) authentication, run as the
//! `postgres` OS user when the tests run as root. One server per test binary, started on first use; a
//! watchdog process stops it (`pg_ctl stop -m immediate`) and removes its folder when the test binary
//! exits, however it exits (statics are never dropped in Rust).
//!
//! The binaries are found in `SACRO_PG_BIN`, on `PATH`, or in `/usr/lib/postgresql/<newest>/bin`
//! (Debian's `postgresql` package; `packaging/setup-debian.sh` installs it). A missing PostgreSQL fails
//! the tests with that message: they are never skipped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use postgres::{Client, NoTls};
use sacro::session::{NewCase, PgStore, Protocol, Role, ServerLogin, StudyStore};

/// The superuser's password in every throwaway cluster (loopback only, torn down with the tests).
pub const SUPER_PASSWORD: &str = "super-secret-for-tests";
/// The coordinator login's password.
pub const COORD_PASSWORD: &str = "coordinator pass'word;";

/// A running server.
pub struct Server {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
    next_db: AtomicUsize,
    /// Offers TLS with `server.crt`/`server.key` in its folder.
    tls: bool,
}

/// The server of this test binary.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

/// A server of its own, for a test that stops and restarts it (torn down by its watchdog at exit).
pub fn dedicated() -> &'static Server {
    Box::leak(Box::new(Server::start()))
}

/// A server of its own that offers TLS with this certificate and key (PEM).
pub fn dedicated_tls(cert: &[u8], key: &[u8]) -> &'static Server {
    Box::leak(Box::new(Server::start_with(Some((cert, key)))))
}

fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("SACRO_PG_BIN") {
        return PathBuf::from(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("pg_ctl").is_file() && dir.join("initdb").is_file() {
                return dir;
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!(
            "PostgreSQL not found (initdb, pg_ctl): run packaging/setup-debian.sh, or set SACRO_PG_BIN"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// uid and gid of the `postgres` OS user.
fn postgres_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres") && f.len() > 3)
                .then(|| (f[2].parse().ok(), f[3].parse().ok()))
                .and_then(|(u, g)| Some((u?, g?)))
        })
        .expect("running as root: the `postgres` OS user is needed (Debian's postgresql package)")
}

impl Server {
    fn start() -> Self {
        Self::start_with(None)
    }

    fn start_with(tls: Option<(&[u8], &[u8])>) -> Self {
        let bin = pg_bin();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("sacro-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        std::fs::write(dir.join("pw"), SUPER_PASSWORD).expect("pwfile");
        let mut owned = vec![dir.clone(), dir.join("pw")];
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(dir.join("server.crt"), cert).expect("cert");
            std::fs::write(dir.join("server.key"), key).expect("key");
            std::fs::set_permissions(
                dir.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod key");
            owned.extend([dir.join("server.crt"), dir.join("server.key")]);
        }
        if as_postgres {
            let (uid, gid) = postgres_ids();
            for p in owned {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown");
            }
        }
        let server = Self {
            port: crate::support::free_port(),
            dir,
            bin,
            as_postgres,
            next_db: AtomicUsize::new(0),
            tls: tls.is_some(),
        };
        let data = server.dir.join("data");
        server.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "--pwfile",
                &server.dir.join("pw").to_string_lossy(),
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        server.pg_ctl_start();
        server.watchdog();
        server
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn pg_ctl_start(&self) {
        // fsync off for speed (a killed server still recovers from the OS's cache); the benchmark
        // turns it on (SACRO_PG_FSYNC=on) to compare with SQLite's synchronous=FULL fairly.
        let fsync = std::env::var("SACRO_PG_FSYNC").unwrap_or_else(|_| "off".into());
        let mut opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='{}' -c fsync={fsync} \
             -c max_connections=60 -c shared_buffers=32MB",
            self.port,
            self.dir.display()
        );
        if self.tls {
            opts.push_str(&format!(
                " -c ssl=on -c ssl_cert_file='{0}/server.crt' -c ssl_key_file='{0}/server.key'",
                self.dir.display()
            ));
        }
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.dir.join("data").to_string_lossy(),
                "-l",
                &self.dir.join("log").to_string_lossy(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        );
    }

    /// Stops the server the hard way (as a power cut of the database process would).
    pub fn stop_immediate(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.dir.join("data").to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Stops the server and removes its folder when the test binary has gone.
    fn watchdog(&self) {
        let data = self.dir.join("data");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- '{}' -D '{}' -m immediate stop",
                self.bin.join("pg_ctl").display(),
                data.display()
            )
        } else {
            format!(
                "'{}' -D '{}' -m immediate stop",
                self.bin.join("pg_ctl").display(),
                data.display()
            )
        };
        crate::support::watchdog(&stop, &self.dir);
    }

    /// A connection as the superuser.
    pub fn superuser(&self) -> Client {
        self.connect("postgres", SUPER_PASSWORD, "postgres")
            .expect("superuser connection")
    }

    /// A raw connection as `user` (what a reader gets with `psql`).
    pub fn connect(&self, user: &str, password: &str, db: &str) -> Result<Client, postgres::Error> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(db)
            .connect(NoTls)
    }

    /// The study URL of `user` on database `db` (no TLS: the throwaway server offers none).
    pub fn url(&self, user: &str, db: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// A fresh empty database owned by a fresh coordinator login (with CREATEROLE, as the README's
    /// set-up says); returns (database, coordinator login).
    pub fn fresh_database(&self) -> (String, String) {
        let n = self.next_db.fetch_add(1, Ordering::SeqCst);
        let db = format!("study{n}_{}", std::process::id());
        let coord = format!("coord{n}_{}", std::process::id());
        let mut su = self.superuser();
        su.batch_execute(&format!(
            "CREATE ROLE {coord} LOGIN CREATEROLE PASSWORD '{}'",
            COORD_PASSWORD.replace('\'', "''")
        ))
        .expect("coordinator login");
        su.batch_execute(&format!(
            "CREATE DATABASE {db} OWNER {coord} ENCODING 'UTF8'"
        ))
        .expect("database");
        (db, coord)
    }
}

/// Runs `sacro` with a login's password in PGPASSWORD.
pub fn sacro_as(password: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sacro"));
    c.env("PGPASSWORD", password).env_remove("PGPASSFILE");
    c
}

/// Writes a password file (mode 600) in `dir`.
pub fn password_file(dir: &Path, name: &str, password: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{password}\n")).expect("password file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

/// A study on the server with readers tied to their own logins.
pub struct ServerStudy {
    pub server: &'static Server,
    pub db: String,
    pub coord: String,
    /// (reader name, login, password).
    pub readers: Vec<(String, String, String)>,
}

impl ServerStudy {
    /// Creates a study with `readers` (each with a login of their own) and `cases` cases with SOP
    /// Instance UIDs only.
    pub fn create(protocol: Protocol, readers: &[(&str, Role)], cases: usize) -> Self {
        Self::create_on(server(), protocol, readers, cases)
    }

    /// As [`ServerStudy::create`], on a given server.
    pub fn create_on(
        server: &'static Server,
        protocol: Protocol,
        readers: &[(&str, Role)],
        cases: usize,
    ) -> Self {
        let (db, coord) = server.fresh_database();
        let study = Self {
            server,
            db,
            coord,
            readers: Vec::new(),
        };
        let store =
            PgStore::create(&study.coord_login(), protocol, 11).expect("create on the server");
        let mut out = Vec::new();
        for (i, (name, role)) in readers.iter().enumerate() {
            let user = format!("{}_r{i}", study.db);
            let password = format!("pw {i} ' ;");
            store
                .add_reader_login(name, Some(*role), &user, Some(&password))
                .expect("reader login");
            out.push((name.to_string(), user, password));
        }
        let new: Vec<NewCase> = (1..=cases)
            .map(|i| NewCase {
                path: None,
                sop_instance_uid: Some(format!("2.25.{i}")),
                case_id: None,
                archive: None,
            })
            .collect();
        store.add_cases(&new).expect("cases");
        Self {
            readers: out,
            ..study
        }
    }

    /// The coordinator's login.
    pub fn coord_login(&self) -> ServerLogin {
        ServerLogin {
            url: self.server.url(&self.coord, &self.db),
            password: Some(COORD_PASSWORD.into()),
        }
    }

    /// A reader's (login, password).
    pub fn login_of(&self, name: &str) -> (String, String) {
        self.readers
            .iter()
            .find(|r| r.0 == name)
            .map(|r| (r.1.clone(), r.2.clone()))
            .expect("a reader of the study")
    }

    /// A reader's study URL and password.
    pub fn reader_login(&self, name: &str) -> ServerLogin {
        let (user, password) = self.login_of(name);
        ServerLogin {
            url: self.server.url(&user, &self.db),
            password: Some(password),
        }
    }

    /// A raw connection as a reader's login (what `psql` gives them).
    pub fn raw_as(&self, name: &str) -> Client {
        let (user, password) = self.login_of(name);
        self.server
            .connect(&user, &password, &self.db)
            .expect("reader's raw connection")
    }

    /// A raw connection as the coordinator.
    pub fn raw_coord(&self) -> Client {
        self.server
            .connect(&self.coord, COORD_PASSWORD, &self.db)
            .expect("coordinator's raw connection")
    }

    /// The coordinator's store.
    pub fn coord_store(&self) -> PgStore {
        PgStore::open(&self.coord_login()).expect("coordinator login")
    }

    /// A reader's store.
    pub fn reader_store(&self, name: &str) -> PgStore {
        PgStore::open(&self.reader_login(name)).expect("reader login")
    }
}
