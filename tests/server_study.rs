//! Studies on a PostgreSQL server, beyond the shared store suite: what the database itself enforces
//! against a reader who connects with their own login and raw SQL (as with `psql`), identity from the
//! login, moving studies in and out (`push`, `pull`), each way a connection can fail, readers committing
//! while the server is killed and restarted, and sixteen readers committing at once. Against a real
//! throwaway server the tests start (`tests/pg`).

mod pg;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pg::{COORD_PASSWORD, ServerStudy, sacro_as, server};
use sacro::grading::{JointGrade as G, Reading};
use sacro::session::{
    NewCase, PgStore, Protocol, Role, ServerLogin, SqliteStore, StoreError, Study, StudySettings,
    StudyStore,
};

fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query(sql, &[]).expect(sql).len() as i64
}

#[test]
fn readers_under_their_own_login_cannot_get_around_blinding_audit_or_lock() {
    let s = ServerStudy::create(
        Protocol::TwoCentral,
        &[("ann", Role::Central1), ("ben", Role::Central2)],
        3,
    );
    let ann = s.reader_store("ann");
    ann.commit_reading(
        "ann",
        "C0001",
        &Reading::graded(G::Minimal, G::Minimal),
        None,
    )
    .expect("ann commits C0001");
    ann.commit_reading("ann", "C0002", &Reading::graded(G::Normal, G::Normal), None)
        .expect("ann commits C0002");
    s.coord_store()
        .record_prediction("C0001", "m", 0.9)
        .expect("prediction");
    let ann_id: i64 = 1;
    let mut ben = s.raw_as("ben");
    // Before his own commit Ben sees no reading, no audit row, no model output; his work list only.
    assert_eq!(count(&mut ben, "SELECT * FROM readings"), 0);
    assert_eq!(count(&mut ben, "SELECT * FROM audit"), 0);
    assert_eq!(count(&mut ben, "SELECT * FROM predictions"), 0);
    assert_eq!(count(&mut ben, "SELECT * FROM cases"), 3);
    // Nothing of anyone else's can be changed, and the audit trail not at all.
    for sql in [
        "UPDATE audit SET actor = 'x'",
        "DELETE FROM audit",
        "TRUNCATE audit",
        "TRUNCATE readings",
        "INSERT INTO audit (seq, at, actor, action) VALUES (999, 'now', 'ben', 'lock')",
        "SELECT sacro_append_audit('ann', 'delete_reading', 'C0001', NULL, NULL, 'forged')",
        "SELECT sacro_assigned('C0001', 1)",
        "UPDATE meta SET value = '1' WHERE key = 'locked'",
        "INSERT INTO predictions VALUES ('C0001', 'm2', 0.1, 'now')",
        "UPDATE readers SET login = NULL",
        "INSERT INTO cases (id, sop_instance_uid, added_at) VALUES ('X', '1.2', 'now')",
    ] {
        assert!(ben.batch_execute(sql).is_err(), "{sql} was allowed");
    }
    assert_eq!(
        ben.execute("DELETE FROM readings", &[]).expect("runs"),
        0,
        "touches nothing"
    );
    assert_eq!(
        ben.execute("UPDATE readings SET left_grade = 0", &[])
            .expect("runs"),
        0
    );
    let forged = ben.execute(
        "INSERT INTO readings (case_id, reader_id, left_grade, right_grade, committed_at) VALUES ('C0003', $1, 4, 4, 'x')",
        &[&ann_id],
    );
    assert!(forged.is_err(), "a reading in Ann's name");
    // His own reading through raw SQL is a commit like any other: audited by the database, stamped
    // with the server's clock.
    ben.execute(
        "INSERT INTO readings (case_id, reader_id, left_grade, right_grade, committed_at)
         VALUES ('C0001', (SELECT id FROM readers WHERE name = 'ben'), 1, 1, '1999-01-01')",
        &[],
    )
    .expect("his own commit");
    let rows = ben
        .query("SELECT committed_at FROM readings", &[])
        .expect("own");
    assert_eq!(rows.len(), 1, "still only his own: readers stay blinded");
    assert!(!rows[0].get::<_, String>(0).starts_with("1999"));
    assert_eq!(count(&mut ben, "SELECT * FROM audit"), 1);
    assert!(
        ben.batch_execute("UPDATE readings SET left_grade = 2")
            .is_err(),
        "a change without a reason"
    );
    ben.batch_execute(
        "BEGIN; SET LOCAL sacro.reason = 'second look'; UPDATE readings SET left_grade = 2; COMMIT;",
    )
    .expect("a change with its reason");
    assert_eq!(count(&mut ben, "SELECT * FROM predictions"), 1);
    // Revealed after his commit, and only for that case.
    s.coord_store()
        .set_settings(StudySettings {
            reveal_readers_after_commit: true,
            reveal_model_after_commit: true,
        })
        .expect("reveal");
    assert_eq!(count(&mut ben, "SELECT * FROM readings"), 2);
    assert_eq!(
        count(&mut ben, "SELECT * FROM readings WHERE case_id = 'C0002'"),
        0
    );
    assert_eq!(
        count(&mut ben, "SELECT * FROM audit WHERE actor = 'ann'"),
        0
    );
    assert!(s.coord_store().verify().expect("verify").is_empty());
    // Locked: every change fails, for readers and, through the triggers, the owner too.
    s.coord_store().lock().expect("lock");
    for sql in [
        "INSERT INTO readings (case_id, reader_id, left_grade, right_grade, committed_at)
         VALUES ('C0002', (SELECT id FROM readers WHERE name = 'ben'), 0, 0, 'x')",
        "BEGIN; SET LOCAL sacro.reason = 'after'; UPDATE readings SET left_grade = 3; COMMIT;",
        "BEGIN; SET LOCAL sacro.reason = 'after'; DELETE FROM readings; COMMIT;",
    ] {
        let _ = ben.batch_execute("ROLLBACK");
        assert!(ben.batch_execute(sql).is_err(), "{sql} after the lock");
    }
    let mut coord = s.raw_coord();
    for sql in [
        "UPDATE readings SET left_grade = 0",
        "UPDATE meta SET value = '0' WHERE key = 'locked'",
        "UPDATE audit SET reason = 'rewritten'",
        "DELETE FROM audit",
    ] {
        assert!(coord.batch_execute(sql).is_err(), "owner: {sql}");
    }
    assert!(s.coord_store().verify().expect("verify").is_empty());
}

#[test]
fn identity_comes_from_the_login() {
    let s = ServerStudy::create(
        Protocol::Single,
        &[("ann", Role::Reader), ("ben", Role::Reader)],
        2,
    );
    let ben = s.reader_store("ben");
    let g = Reading::graded(G::Minimal, G::Normal);
    assert!(matches!(
        ben.commit_reading("ann", "C0001", &g, None),
        Err(StoreError::NotPermitted(_))
    ));
    assert!(matches!(
        s.coord_store().commit_reading("ann", "C0001", &g, None),
        Err(StoreError::NotPermitted(_))
    ));
    assert!(matches!(
        ben.worklist("ann"),
        Err(StoreError::NotPermitted(_))
    ));
    assert!(matches!(ben.lock(), Err(StoreError::NotPermitted(_))));
    // The command line: the reader is whoever logged in.
    let (user, pw) = s.login_of("ben");
    let url = server().url(&user, &s.db);
    let out = sacro_as(&pw)
        .args([
            "read", &url, "--case", "C0001", "--left", "2", "--right", "2",
        ])
        .output()
        .expect("sacro");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("for ben"));
    let out = sacro_as(&pw)
        .args([
            "read", &url, "--reader", "ann", "--case", "C0002", "--left", "2", "--right", "2",
        ])
        .output()
        .expect("sacro");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("logged in as reader \"ben\""));
    // The coordinator adds a reader with a login and a password file; that reader can commit.
    let tmp = tempfile::tempdir().expect("tmp");
    let pwfile = pg::password_file(tmp.path(), "carl.pw", "carl's pass; word");
    let coord_url = server().url(&s.coord, &s.db);
    let carl = format!("{}_carl", s.db);
    let out = sacro_as(COORD_PASSWORD)
        .args([
            "study",
            "add-reader",
            &coord_url,
            "--name",
            "Carl",
            "--role",
            "reader",
            "--login",
            &carl,
        ])
        .arg("--new-password-file")
        .arg(&pwfile)
        .output()
        .expect("sacro");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sacro"))
        .env_remove("PGPASSWORD")
        .args([
            "read",
            &server().url(&carl, &s.db),
            "--case",
            "C0002",
            "--left",
            "0",
            "--right",
            "1",
        ])
        .arg("--password-file")
        .arg(&pwfile)
        .output()
        .expect("sacro");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("for Carl"));
}

/// A study file with everything a study holds: readers, cases with paths and in an archive, readings
/// changed and
/// deleted, predictions, a crop, settings.
fn busy_file(dir: &Path, lock: bool) -> std::path::PathBuf {
    let path = dir.join("local.sacro");
    let s = SqliteStore::create(&path, Protocol::TwoCentral, 5).expect("create");
    s.add_reader("Dr Ann O'Neil", Role::Central1).expect("ann");
    s.add_reader("Dr Ben 李", Role::Central2).expect("ben");
    s.add_reader("Adj", Role::Adjudicator).expect("adj");
    let film = dir.join("films/a.dcm");
    std::fs::create_dir_all(film.parent().expect("parent")).expect("dir");
    std::fs::write(&film, b"x").expect("film");
    s.add_cases(&[
        NewCase {
            path: Some(film),
            sop_instance_uid: Some("2.25.1".into()),
            case_id: None,
            archive: None,
        },
        NewCase {
            path: None,
            sop_instance_uid: Some("2.25.2".into()),
            case_id: Some("P-07".into()),
            archive: None,
        },
        NewCase {
            path: None,
            sop_instance_uid: Some("2.25.3".into()),
            case_id: Some("ARCH-1".into()),
            archive: Some(sacro::session::ArchiveRef {
                url: "https://archive.example.org/dicom-web".into(),
                study_uid: "2.25.30".into(),
                series_uid: "2.25.31".into(),
            }),
        },
    ])
    .expect("cases");
    let ann = "Dr Ann O'Neil";
    s.commit_reading(ann, "C0001", &Reading::graded(G::Minimal, G::Minimal), None)
        .expect("r");
    s.commit_reading(
        ann,
        "C0001",
        &Reading::graded(G::Unequivocal, G::Minimal),
        Some("looked again; \"better\""),
    )
    .expect("change");
    s.commit_reading(
        "Dr Ben 李",
        "C0001",
        &Reading::graded(G::Normal, G::Normal),
        None,
    )
    .expect("ben");
    s.commit_reading(
        "Dr Ben 李",
        "P-07",
        &Reading::graded(G::Normal, G::Normal),
        None,
    )
    .expect("ben");
    s.delete_reading("Dr Ben 李", "P-07", "wrong film")
        .expect("delete");
    s.commit_reading(
        "Adj",
        "C0001",
        &Reading::graded(G::Unequivocal, G::Normal),
        None,
    )
    .expect("adj");
    s.record_prediction("C0001", "abc", 0.875).expect("p");
    s.set_crop(
        "coordinator",
        "C0001",
        Some(sacro::session::CropRect {
            x: 1,
            y: 2,
            width: 30,
            height: 40,
        }),
    )
    .expect("crop");
    s.set_settings(StudySettings {
        reveal_readers_after_commit: true,
        reveal_model_after_commit: false,
    })
    .expect("settings");
    if lock {
        s.lock().expect("lock");
    }
    path
}

#[test]
fn push_then_pull_gives_back_the_same_study() {
    let tmp = tempfile::tempdir().expect("tmp");
    for lock in [false, true] {
        let dir = tmp.path().join(format!("lock{lock}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = busy_file(&dir, lock);
        let original = SqliteStore::open(&file)
            .expect("open")
            .dump()
            .expect("dump");
        let (db, coord) = server().fresh_database();
        let url = server().url(&coord, &db);
        let out = sacro_as(COORD_PASSWORD)
            .args(["study", "push"])
            .arg(&file)
            .arg(&url)
            .output()
            .expect("push");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let on_server = PgStore::open(&ServerLogin {
            url: url.clone(),
            password: Some(COORD_PASSWORD.into()),
        })
        .expect("open pushed");
        assert_eq!(on_server.dump().expect("dump"), original);
        assert!(on_server.verify().expect("verify").is_empty());
        assert_eq!(on_server.info().expect("info").locked, lock);
        // Pushing again into the same database is refused and changes nothing.
        let out = sacro_as(COORD_PASSWORD)
            .args(["study", "push"])
            .arg(&file)
            .arg(&url)
            .output()
            .expect("push again");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a Sacro study"));
        let pulled = dir.join("pulled.sacro");
        let out = sacro_as(COORD_PASSWORD)
            .args(["study", "pull", &url])
            .arg(&pulled)
            .output()
            .expect("pull");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let back = SqliteStore::open(&pulled).expect("open pulled");
        assert_eq!(back.dump().expect("dump"), original);
        assert!(back.verify().expect("verify").is_empty());
        // Pulling onto an existing file is refused and leaves it as it was.
        let before = std::fs::read(&pulled).expect("read");
        let out = sacro_as(COORD_PASSWORD)
            .args(["study", "pull", &url])
            .arg(&pulled)
            .output()
            .expect("pull again");
        assert!(!out.status.success());
        assert_eq!(std::fs::read(&pulled).expect("read"), before);
    }
    // A push that cannot complete (a coordinator who may not create roles) leaves the database empty.
    let file = busy_file(&tmp.path().join("lockfalse/again").tap_mkdir(), false);
    let mut su = server().superuser();
    su.batch_execute("CREATE ROLE weak LOGIN PASSWORD 'weak'; ")
        .expect("weak");
    su.batch_execute("CREATE DATABASE weakdb OWNER weak")
        .expect("db");
    let out = sacro_as("weak")
        .args(["study", "push"])
        .arg(&file)
        .arg(server().url("weak", "weakdb"))
        .output()
        .expect("push");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied to create role"), "{err}");
    let mut weak = server().connect("weak", "weak", "weakdb").expect("weak");
    let left: i64 = weak
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .expect("tables")
        .get(0);
    assert_eq!(left, 0, "nothing left behind");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).expect("mkdir");
        self
    }
}

fn status_line(url: &str, password: Option<&str>) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sacro"));
    c.env_remove("PGPASSWORD").env("PGPASSFILE", "/nonexistent");
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    let out = c.args(["study", "status", url]).output().expect("sacro");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn every_connection_failure_is_one_clear_line_and_changes_nothing() {
    let s = ServerStudy::create(Protocol::Single, &[("ann", Role::Reader)], 2);
    let url = server().url(&s.coord, &s.db);
    let (ok, _) = status_line(&url, Some(COORD_PASSWORD));
    assert!(ok);
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let (empty_db, empty_owner) = server().fresh_database();
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        (
            url.clone(),
            Some("wrong"),
            "wrong password or no such login",
        ),
        (
            server().url("nobody_here", &s.db),
            Some("x"),
            "wrong password or no such login",
        ),
        (url.clone(), None, "asks for a password"),
        (
            format!("postgres://{}@127.0.0.1:{closed_port}/{}", s.coord, s.db),
            Some(COORD_PASSWORD),
            "connection refused",
        ),
        (
            url.replace("sslmode=disable", "sslmode=require"),
            Some(COORD_PASSWORD),
            "does not offer TLS",
        ),
        (
            server().url(&empty_owner, &empty_db),
            Some(COORD_PASSWORD),
            "not a Sacro study",
        ),
        (
            server().url(&s.coord, "no_such_db"),
            Some(COORD_PASSWORD),
            "no database",
        ),
        (
            format!(
                "postgres://{}:{}@127.0.0.1:{}/{}",
                s.coord,
                COORD_PASSWORD,
                server().port,
                s.db
            ),
            None,
            "does not belong in the URL",
        ),
    ];
    for (u, pw, expect) in cases {
        let (ok, err) = status_line(&u, pw);
        assert!(!ok, "{u}");
        assert!(err.contains(expect), "{u}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains(COORD_PASSWORD), "password shown: {err}");
    }
    // A newer schema is refused before anything is written.
    let mut su = server().superuser();
    let mut c = server()
        .connect("postgres", pg::SUPER_PASSWORD, &s.db)
        .expect("su");
    c.batch_execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        .expect("newer");
    let audit_before: i64 = c
        .query_one("SELECT count(*) FROM audit", &[])
        .expect("n")
        .get(0);
    let (ok, err) = status_line(&url, Some(COORD_PASSWORD));
    assert!(!ok);
    assert!(err.contains("newer than this Sacro supports"), "{err}");
    let out = sacro_as(COORD_PASSWORD)
        .args([
            "study",
            "add-reader",
            &url,
            "--name",
            "x",
            "--role",
            "reader",
            "--login",
            "xx",
        ])
        .output()
        .expect("sacro");
    assert!(!out.status.success());
    let audit_after: i64 = c
        .query_one("SELECT count(*) FROM audit", &[])
        .expect("n")
        .get(0);
    assert_eq!(audit_before, audit_after);
    let roles: i64 = su
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = 'xx'", &[])
        .expect("roles")
        .get(0);
    assert_eq!(roles, 0);
}

/// A reader process committing `cases` one `sacro read` at a time, writing `ok CASE` or `fail CASE`
/// per commit.
fn reader_loop(s: &ServerStudy, name: &str, cases: &[String], log: &Path) -> std::process::Child {
    let (user, pw) = s.login_of(name);
    let url = s.server.url(&user, &s.db);
    let mut script = String::new();
    for c in cases {
        script.push_str(&format!(
            "if \"$SACRO\" read '{url}' --case {c} --left 2 --right 3 >/dev/null 2>>'{err}'; then echo ok {c}; else echo fail {c}; fi\n",
            err = log.with_extension("err").display()
        ));
    }
    Command::new("sh")
        .args(["-c", &script])
        .env("SACRO", env!("CARGO_BIN_EXE_sacro"))
        .env("PGPASSWORD", pw)
        .stdout(std::fs::File::create(log).expect("log"))
        .stdin(Stdio::null())
        .spawn()
        .expect("reader process")
}

fn outcomes(log: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(log).expect("log");
    let mut ok = Vec::new();
    let mut fail = Vec::new();
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("ok", c)) => ok.push(c.to_string()),
            Some(("fail", c)) => fail.push(c.to_string()),
            _ => panic!("odd line {line:?}"),
        }
    }
    (ok, fail)
}

#[test]
fn commits_while_the_server_is_killed_lose_nothing_reported() {
    let names = ["r1", "r2", "r3"];
    // A server of its own: the others' tests keep theirs running.
    let srv = pg::dedicated();
    let s = ServerStudy::create_on(srv, Protocol::Single, &names.map(|n| (n, Role::Reader)), 40);
    let tmp = tempfile::tempdir().expect("tmp");
    let cases: Vec<String> = (1..=40).map(|i| format!("C{i:04}")).collect();
    // A store opened before the server goes down reconnects by itself afterwards.
    let survivor = s.reader_store("r1");
    survivor.info().expect("connected");
    let mut children: Vec<_> = names
        .iter()
        .map(|n| reader_loop(&s, n, &cases, &tmp.path().join(format!("{n}.log"))))
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    srv.stop_immediate();
    std::thread::sleep(Duration::from_millis(1000));
    srv.pg_ctl_start();
    for c in &mut children {
        assert!(c.wait().expect("wait").success());
    }
    survivor
        .delete_reading("r1", "C0001", "reconnected")
        .or_else(|e| match e {
            StoreError::Invalid(_) => Ok(()),
            other => Err(other),
        })
        .expect("the old store reconnects");
    survivor
        .commit_reading(
            "r1",
            "C0001",
            &Reading::graded(G::Ankylosis, G::Ankylosis),
            Some("again"),
        )
        .expect("the old store commits after the restart");
    let coord = s.coord_store();
    let readings = coord.all_readings().expect("readings");
    let audit = coord.audit().expect("audit");
    let mut failures = 0;
    for n in names {
        let (ok, fail) = outcomes(&tmp.path().join(format!("{n}.log")));
        assert_eq!(ok.len() + fail.len(), 40);
        failures += fail.len();
        for c in &ok {
            assert!(
                readings.iter().any(|r| r.reader == n && &r.case_id == c),
                "{n} {c} reported committed but missing"
            );
            assert!(
                audit
                    .iter()
                    .any(|a| a.actor == n && a.case_id.as_deref() == Some(c)),
                "{n} {c} reported committed but not audited"
            );
        }
    }
    assert!(
        failures > 0,
        "the server was never seen down: the test proved nothing"
    );
    assert!(coord.verify().expect("verify").is_empty());
}

#[test]
fn sixteen_readers_committing_fifty_cases_at_once_lose_nothing() {
    let names: Vec<String> = (1..=16).map(|i| format!("reader{i:02}")).collect();
    let readers: Vec<(&str, Role)> = names.iter().map(|n| (n.as_str(), Role::Reader)).collect();
    let s = ServerStudy::create(Protocol::Single, &readers, 50);
    let tmp = tempfile::tempdir().expect("tmp");
    let cases: Vec<String> = (1..=50).map(|i| format!("C{i:04}")).collect();
    let children: Vec<_> = names
        .iter()
        .map(|n| reader_loop(&s, n, &cases, &tmp.path().join(format!("{n}.log"))))
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success());
    }
    for n in &names {
        let (ok, fail) = outcomes(&tmp.path().join(format!("{n}.log")));
        let errors =
            std::fs::read_to_string(tmp.path().join(format!("{n}.err"))).unwrap_or_default();
        assert!(fail.is_empty(), "{n}: {fail:?} {errors}");
        assert_eq!(ok.len(), 50);
    }
    let coord = s.coord_store();
    assert_eq!(coord.all_readings().expect("readings").len(), 16 * 50);
    let creates = coord
        .audit()
        .expect("audit")
        .into_iter()
        .filter(|a| a.action == "create_reading")
        .count();
    assert_eq!(creates, 16 * 50);
    assert!(coord.verify().expect("verify").is_empty());
    let status = sacro::session::status(&coord).expect("status");
    assert!(status.readers.iter().all(|r| r.done == 50));
    drop(
        Study::open(
            Path::new(&server().url(&s.coord, &s.db)),
            Some(COORD_PASSWORD.into()),
        )
        .expect("open"),
    );
}

/// The benchmark of README "Performance" (recorded by `benches/study_commits.sh`, not a timed test):
/// 16 readers, each a thread with its own connection, commit 50 cases each at once, on the PostgreSQL
/// store (loopback) and on the SQLite store (one file) under the same load; commits per second and the
/// p50/p95 latency of one commit.
#[test]
#[ignore]
fn bench_sixteen_readers_committing() {
    let names: Vec<String> = (1..=16).map(|i| format!("reader{i:02}")).collect();
    let readers: Vec<(&str, Role)> = names.iter().map(|n| (n.as_str(), Role::Reader)).collect();
    let per_reader = 50;
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("bench.sacro");
    {
        let s = SqliteStore::create(&file, Protocol::Single, 1).expect("create");
        for (n, r) in &readers {
            s.add_reader(n, *r).expect("reader");
        }
        s.add_cases(&uid_cases(per_reader)).expect("cases");
    }
    let server_study = ServerStudy::create(Protocol::Single, &readers, per_reader);
    let stores: Vec<(&str, Vec<Box<dyn StudyStore + Send + Sync>>)> = vec![
        (
            "PostgreSQL (loopback)",
            names
                .iter()
                .map(|n| {
                    Box::new(server_study.reader_store(n)) as Box<dyn StudyStore + Send + Sync>
                })
                .collect(),
        ),
        (
            "SQLite (one file)",
            names
                .iter()
                .map(|_| {
                    Box::new(SqliteStore::open(&file).expect("open"))
                        as Box<dyn StudyStore + Send + Sync>
                })
                .collect(),
        ),
    ];
    println!(
        "{:<24} {:>8} {:>10} {:>10} {:>10} {:>8}",
        "store", "commits", "commits/s", "p50 ms", "p95 ms", "max ms"
    );
    for (label, stores) in stores {
        let start = std::time::Instant::now();
        let mut latencies: Vec<f64> = std::thread::scope(|scope| {
            let handles: Vec<_> = stores
                .iter()
                .zip(&names)
                .map(|(store, name)| {
                    scope.spawn(move || {
                        (1..=per_reader)
                            .map(|i| {
                                let t = std::time::Instant::now();
                                store
                                    .commit_reading(
                                        name,
                                        &format!("C{i:04}"),
                                        &Reading::graded(G::Minimal, G::Unequivocal),
                                        None,
                                    )
                                    .expect("commit");
                                t.elapsed().as_secs_f64() * 1e3
                            })
                            .collect::<Vec<f64>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect()
        });
        let wall = start.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
        println!(
            "{label:<24} {:>8} {:>10.0} {:>10.1} {:>10.1} {:>8.1}",
            latencies.len(),
            latencies.len() as f64 / wall,
            q(0.5),
            q(0.95),
            q(1.0)
        );
    }
}

fn uid_cases(n: usize) -> Vec<NewCase> {
    (1..=n)
        .map(|i| NewCase {
            path: None,
            sop_instance_uid: Some(format!("2.25.{i}")),
            case_id: None,
            archive: None,
        })
        .collect()
}

/// A self-signed certificate for `localhost` (also its own CA), PEM: (certificate, key).
fn self_signed_localhost() -> (Vec<u8>, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "localhost").expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    let serial = BigNum::from_u32(1)
        .and_then(|n| n.to_asn1_integer())
        .expect("serial");
    b.set_serial_number(&serial).expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(2).expect("t"))
        .expect("na");
    let ca = BasicConstraints::new().critical().ca().build().expect("bc");
    b.append_extension(ca).expect("bc");
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .build(&b.x509v3_context(None, None))
        .expect("san");
    b.append_extension(san).expect("san");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    (
        b.build().to_pem().expect("pem"),
        key.private_key_to_pem_pkcs8().expect("key pem"),
    )
}

#[test]
fn tls_as_libpq_sslmode_says() {
    let (cert, key) = self_signed_localhost();
    let srv = pg::dedicated_tls(&cert, &key);
    let s = ServerStudy::create_on(srv, Protocol::Single, &[("ann", Role::Reader)], 1);
    let tmp = tempfile::tempdir().expect("tmp");
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, &cert).expect("ca");
    let (user, pw) = s.login_of("ann");
    let url = |mode: &str| {
        format!(
            "postgres://{user}@localhost:{}/{}?sslmode={mode}",
            srv.port, s.db
        )
    };
    let open = |u: String| {
        PgStore::open(&ServerLogin {
            url: u,
            password: Some(pw.clone()),
        })
    };
    // Encrypted without checking the certificate (libpq's require), and checked against the study's CA
    // with the host name (verify-full).
    open(url("require")).expect("require");
    open(format!(
        "{}&sslrootcert={}",
        url("verify-full"),
        ca.display()
    ))
    .expect("verify-full");
    open(format!("{}&sslrootcert={}", url("verify-ca"), ca.display())).expect("verify-ca");
    // A certificate nobody vouched for is refused when verification is asked for.
    let err = open(url("verify-full")).expect_err("unknown CA");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    let study = Study::open(
        Path::new(&format!(
            "{}&sslrootcert={}",
            url("verify-full"),
            ca.display()
        )),
        Some(pw.clone()),
    )
    .expect("study over TLS");
    study
        .commit_reading(
            "ann",
            "C0001",
            &Reading::graded(G::Normal, G::Minimal),
            None,
        )
        .expect("commit over TLS");
}

#[test]
fn a_reader_group_left_from_an_earlier_study_is_not_reused() {
    let s = ServerStudy::create(Protocol::Single, &[("ann", Role::Reader)], 1);
    let mut su = server().superuser();
    su.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", s.db))
        .expect("drop");
    su.batch_execute(&format!("CREATE DATABASE {} OWNER {}", s.db, s.coord))
        .expect("again");
    let err = PgStore::create(&s.coord_login(), Protocol::Single, 1).expect_err("stale group");
    assert!(err.to_string().contains("exists already"), "{err}");
    let mut c = server()
        .connect(&s.coord, COORD_PASSWORD, &s.db)
        .expect("coordinator");
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .expect("tables")
        .get(0);
    assert_eq!(tables, 0, "nothing left behind");
}

#[test]
fn films_are_stored_relative_to_each_sites_films_folder() {
    let s = ServerStudy::create(Protocol::Single, &[("ann", Role::Reader)], 0);
    let tmp = tempfile::tempdir().expect("tmp");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/P0001.dcm");
    // The coordinating site and a reading site keep the same layout below different folders.
    for site in ["central", "site2"] {
        let dir = tmp.path().join(site).join("trial/batch1");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::copy(&demo, dir.join("P0001.dcm")).expect("film");
    }
    let coord_url = server().url(&s.coord, &s.db);
    let out = sacro_as(COORD_PASSWORD)
        .args(["study", "add-cases", &coord_url])
        .arg(tmp.path().join("central/trial"))
        .arg("--films")
        .arg(tmp.path().join("central"))
        .output()
        .expect("sacro");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let case = &s.coord_store().cases().expect("cases")[0];
    assert_eq!(
        case.path.as_deref(),
        Some(Path::new("trial/batch1/P0001.dcm")),
        "stored relative: no site's folder names in the study"
    );
    let (user, pw) = s.login_of("ann");
    let out = sacro_as(&pw)
        .args([
            "read",
            &server().url(&user, &s.db),
            "--next",
            "--show-path",
            "--films",
        ])
        .arg(tmp.path().join("site2"))
        .output()
        .expect("sacro");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(
            &tmp.path()
                .join("site2/trial/batch1/P0001.dcm")
                .display()
                .to_string()
        ),
        "{shown}"
    );
}
