//! Reading sessions in a study file, through the store API and the `sacro` binary: what is particular to
//! the file (append-only audit under raw SQL, corrupt, foreign and newer files, crash safety under
//! SIGKILL, two processes writing one file at once, crops migrated from an older file) and the CLI's
//! refusals. What every store must do (blinding, work lists, audit, lock, bad input) is the shared suite
//! of `tests/store_suite.rs`, run on the file and on the server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sacro::grading::{Assessment, JointGrade as G, Reading};
use sacro::session::{
    self, ConsensusMethod, NewCase, Protocol, Role, SqliteStore, StoreError, StudyStore, csv_io,
};

fn sacro() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sacro"))
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

fn study(
    dir: &Path,
    protocol: Protocol,
    readers: &[(&str, Role)],
    cases: usize,
) -> (PathBuf, SqliteStore) {
    let path = dir.join("study.sacro");
    let store = SqliteStore::create(&path, protocol, 11).expect("create");
    for (name, role) in readers {
        store.add_reader(name, *role).expect("reader");
    }
    store.add_cases(&uid_cases(cases)).expect("cases");
    (path, store)
}

#[test]
fn audit_rows_cannot_be_rewritten_even_with_sql() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (path, store) = study(tmp.path(), Protocol::Single, &[("r", Role::Reader)], 1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    assert!(
        conn.execute("UPDATE audit SET actor = 'someone else'", [])
            .is_err()
    );
    assert!(conn.execute("DELETE FROM audit", []).is_err());
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (path, store) = study(
        tmp.path(),
        Protocol::Adjudicated,
        &[("l", Role::Local), ("c", Role::Central1)],
        2,
    );
    let before = store.audit().expect("audit").len();
    let ok = Reading::graded(G::Minimal, G::Normal);
    assert!(matches!(
        store.commit_reading("nobody", "C0001", &ok, None),
        Err(StoreError::UnknownReader(_))
    ));
    assert!(matches!(
        store.commit_reading("l", "C9999", &ok, None),
        Err(StoreError::UnknownCase(_))
    ));
    assert!(matches!(
        store.add_reader("x", Role::Adjudicator),
        Err(StoreError::RoleNotAllowed { .. })
    ));
    assert!(matches!(
        store.add_reader("y", Role::Local),
        Err(StoreError::RoleNotAllowed { .. })
    ));
    assert!(matches!(
        store.add_reader("l", Role::Central2),
        Err(StoreError::DuplicateReader(_))
    ));
    let na = Reading {
        assessment: Assessment::NotAssessable {
            reason: "  ".into(),
        },
        comment: None,
    };
    assert!(matches!(
        store.commit_reading("l", "C0001", &na, None),
        Err(StoreError::Invalid(_))
    ));
    assert!(
        G::from_value(5).is_err(),
        "a grade of 5 cannot even be constructed"
    );
    // A grade of 5 written behind the API is refused by the schema's CHECK constraint.
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        let err = conn
            .execute(
                "INSERT INTO readings (case_id, reader_id, left_grade, right_grade, committed_at) VALUES ('C0001', 1, 5, 0, 'now')",
                [],
            )
            .expect_err("CHECK");
        assert!(err.to_string().contains("CHECK"), "{err}");
    }
    // Duplicate cases in one batch: all or nothing.
    let dup = vec![
        NewCase {
            path: None,
            sop_instance_uid: Some("2.25.77".into()),
            case_id: Some("X1".into()),
            archive: None,
        },
        NewCase {
            path: None,
            sop_instance_uid: Some("2.25.78".into()),
            case_id: Some("X1".into()),
            archive: None,
        },
    ];
    assert!(matches!(
        store.add_cases(&dup),
        Err(StoreError::DuplicateCase(_))
    ));
    assert_eq!(store.cases().expect("cases").len(), 2);
    assert_eq!(
        store.audit().expect("audit").len(),
        before,
        "refusals change nothing"
    );

    // CSV case lists.
    let csv = tmp.path().join("cases.csv");
    std::fs::write(&csv, "file,id\na.dcm,1\n").expect("write");
    let err = csv_io::read_case_list(&csv)
        .expect_err("missing columns")
        .to_string();
    assert!(
        err.contains("cases.csv") && err.contains("'path', 'uid' or 'dicomweb'"),
        "{err}"
    );
    std::fs::write(&csv, "uid,case_id\n2.25.500,P1\n,P2\n").expect("write");
    let err = csv_io::read_case_list(&csv)
        .expect_err("empty row")
        .to_string();
    assert!(err.contains("row 3"), "{err}");
    std::fs::write(&csv, "uid,case_id\n2.25.500,P1\n2.25.501,\n").expect("write");
    let cases = csv_io::read_case_list(&csv).expect("valid list");
    let added = store.add_cases(&cases).expect("added");
    assert_eq!(added[0].id, "P1");
    assert_eq!(added[1].id, "C0003");
}

#[test]
fn corrupt_foreign_and_newer_study_files_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let junk = tmp.path().join("junk.sacro");
    std::fs::write(&junk, vec![0x42u8; 8192]).expect("write");
    let err = SqliteStore::open(&junk).expect_err("junk");
    assert!(
        matches!(err, StoreError::Corrupt { .. }) && err.to_string().contains("junk.sacro"),
        "{err}"
    );

    let foreign = tmp.path().join("other.db");
    rusqlite::Connection::open(&foreign)
        .expect("db")
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .expect("sql");
    assert!(matches!(
        SqliteStore::open(&foreign),
        Err(StoreError::Corrupt { .. })
    ));

    let (path, store) = study(tmp.path(), Protocol::Single, &[("r", Role::Reader)], 1);
    drop(store);
    rusqlite::Connection::open(&path)
        .expect("db")
        .pragma_update(None, "user_version", 99)
        .expect("version");
    let err = SqliteStore::open(&path).expect_err("newer");
    assert!(
        err.to_string().contains("newer than this Sacro supports"),
        "{err}"
    );

    // A half-written copy of a study (cut in the middle of a page).
    let (p2, s2) = study(
        &tmp.path().join("x").tap_mkdir(),
        Protocol::Single,
        &[("r", Role::Reader)],
        50,
    );
    drop(s2);
    let bytes = std::fs::read(&p2).expect("read");
    let cut = tmp.path().join("cut.sacro");
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 100]).expect("write");
    assert!(SqliteStore::open(&cut).is_err());
    assert!(matches!(
        SqliteStore::open(&tmp.path().join("missing.sacro")),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        SqliteStore::create(&path, Protocol::Single, 1),
        Err(StoreError::AlreadyExists(_))
    ));
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).expect("mkdir");
        self
    }
}

#[test]
fn export_has_pseudonymous_ids_and_stats_columns() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img_dir = tmp.path().join("PATIENT_NAME_IN_FOLDER").tap_mkdir();
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/dicom/real/CT_small.dcm");
    std::fs::copy(&src, img_dir.join("ct.dcm")).expect("copy");
    let study_path = tmp.path().join("s.sacro");
    let run = |args: &[&str]| {
        let o = sacro().args(args).output().expect("run");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let s = study_path.to_str().expect("utf8");
    run(&["study", "create", s, "--protocol", "single"]);
    run(&[
        "study",
        "add-reader",
        s,
        "--name",
        "dr a",
        "--role",
        "reader",
    ]);
    let ids = run(&["study", "add-cases", s, img_dir.to_str().expect("utf8")]);
    assert_eq!(ids.trim(), "C0001");
    run(&[
        "read", s, "--reader", "dr a", "--case", "C0001", "--left", "3", "--right", "1",
    ]);
    let out = tmp.path().join("export.csv");
    run(&["study", "export", s, "--out", out.to_str().expect("utf8")]);
    let readings = std::fs::read_to_string(&out).expect("readings");
    let consensus =
        std::fs::read_to_string(tmp.path().join("export_consensus.csv")).expect("consensus");
    assert!(readings.starts_with("case,reader,role,label,left_grade,right_grade"));
    assert!(readings.contains("C0001,dr a,reader,1,3,1"), "{readings}");
    assert_eq!(consensus, "case,label,method\nC0001,1,single\n");
    let r = sacro::imaging::load(&src, &Default::default()).expect("ct");
    for text in [&readings, &consensus] {
        assert!(!text.contains("PATIENT_NAME_IN_FOLDER"));
        assert!(!text.contains(r.identity.patient_name.as_deref().expect("name")));
        assert!(!text.contains(r.identity.patient_id.as_deref().expect("id")));
    }
}

#[test]
fn cli_refusals_exit_non_zero_with_one_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (path, store) = study(tmp.path(), Protocol::Single, &[("r", Role::Reader)], 1);
    drop(store);
    let s = path.to_str().expect("utf8");
    for args in [
        vec![
            "read", s, "--reader", "zed", "--case", "C0001", "--left", "1", "--right", "1",
        ],
        vec![
            "read", s, "--reader", "r", "--case", "C0404", "--left", "1", "--right", "1",
        ],
        vec![
            "read", s, "--reader", "r", "--case", "C0001", "--left", "5", "--right", "1",
        ],
        vec!["study", "status", "/nonexistent/x.sacro"],
    ] {
        let o = sacro().args(&args).output().expect("run");
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.trim().is_empty(), "{args:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Many commits by a process killed with SIGKILL at random moments: no reading reported committed is
/// ever lost, and the database stays intact.
#[test]
fn sigkill_during_commits_loses_nothing_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (path, store) = study(tmp.path(), Protocol::Single, &[("r", Role::Reader)], 12);
    drop(store);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    // Per case: the last value reported committed, and values attempted (killed) after it.
    type Grades = (u8, u8);
    let mut reported: HashMap<String, (Option<Grades>, Vec<Grades>)> = HashMap::new();
    let mut killed = 0;
    for _ in 0..80 {
        let case = format!("C{:04}", rng.random_range(1..=12));
        let (l, r) = (rng.random_range(0..=4u8), rng.random_range(0..=4u8));
        let mut child = sacro()
            .args([
                "read",
                path.to_str().expect("utf8"),
                "--reader",
                "r",
                "--case",
                &case,
                "--left",
                &l.to_string(),
                "--right",
                &r.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        let _ = child.kill(); // SIGKILL on Unix; a no-op error if it already exited
        let status = child.wait().expect("wait");
        let entry = reported.entry(case).or_default();
        if status.success() {
            *entry = (Some((l, r)), Vec::new());
        } else {
            killed += 1;
            entry.1.push((l, r));
        }
    }
    assert!(
        killed > 5,
        "the test must actually kill processes ({killed})"
    );
    let store = SqliteStore::open(&path).expect("reopen after kills");
    assert_eq!(store.integrity_check().expect("check"), "ok");
    for (case, (last_ok, later)) in &reported {
        let now = store
            .own_reading("r", case)
            .expect("read")
            .and_then(|r| r.reading.grades())
            .map(|g| (g.left.value(), g.right.value()));
        let allowed = now == *last_ok || now.is_some_and(|v| later.contains(&v));
        assert!(
            allowed,
            "{case}: stored {now:?}, last reported {last_ok:?}, later attempts {later:?}"
        );
    }
    // The audit trail agrees with the current readings.
    let audit = store.audit().expect("audit");
    for rec in store.all_readings().expect("readings") {
        let last = audit
            .iter()
            .rev()
            .find(|a| a.case_id.as_deref() == Some(rec.case_id.as_str()) && a.actor == "r")
            .expect("audit row");
        assert_eq!(
            last.new_value.as_deref(),
            Some(serde_json::to_string(&rec.reading).expect("json").as_str())
        );
    }
}

#[test]
fn two_processes_grade_one_study_at_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (path, store) = study(
        tmp.path(),
        Protocol::Single,
        &[("a", Role::Reader), ("b", Role::Reader)],
        24,
    );
    drop(store);
    let handles: Vec<_> = [("a", 1..=12), ("b", 13..=24)]
        .into_iter()
        .map(|(reader, range)| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in range {
                    let o = sacro()
                        .args([
                            "read",
                            path.to_str().expect("utf8"),
                            "--reader",
                            reader,
                            "--case",
                            &format!("C{i:04}"),
                            "--left",
                            &(i % 5).to_string(),
                            "--right",
                            "2",
                        ])
                        .output()
                        .expect("run");
                    assert!(
                        o.status.success(),
                        "{reader} C{i:04}: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    // In-process too: two connections, two threads, many commits each.
    let threads: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|reader| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = SqliteStore::open(&path).expect("open");
                for round in 0..5u8 {
                    let cases: Vec<u32> = if reader == "a" {
                        (13..=24).collect()
                    } else {
                        (1..=12).collect()
                    };
                    for i in cases {
                        let g = G::from_value(i64::from((i as u8 + round) % 5)).expect("grade");
                        store
                            .commit_reading(
                                reader,
                                &format!("C{i:04}"),
                                &Reading::graded(g, G::Normal),
                                // From the second round on each commit changes a reading: a reason.
                                (round > 0).then_some("re-read under contention"),
                            )
                            .expect("commit under contention");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let store = SqliteStore::open(&path).expect("open");
    assert_eq!(store.all_readings().expect("all").len(), 48);
    assert_eq!(store.integrity_check().expect("check"), "ok");
    let cons = session::consensus(&store).expect("consensus");
    assert!(cons.iter().all(|c| c.calls.len() == 2));
    assert!(
        cons.iter()
            .any(|c| c.method == ConsensusMethod::Unresolved
                || c.method == ConsensusMethod::Agreement)
    );
}

/// A crop rectangle is kept with the case (never written into the film), audited, refused for unknown cases
/// or zero sizes and frozen by the lock; a version-1 study (as written before crops existed) is migrated
/// in place on open.
#[test]
fn crops_are_stored_audited_and_migrated() {
    use sacro::session::CropRect;
    let tmp = tempfile::tempdir().expect("tmp");
    let (path, store) = study(tmp.path(), Protocol::Single, &[("r", Role::Reader)], 2);
    let c = CropRect {
        x: 10,
        y: 20,
        width: 300,
        height: 200,
    };
    assert_eq!(store.crop("C0001").expect("none"), None);
    store.set_crop("r", "C0001", Some(c)).expect("set");
    store.set_crop("r", "C0001", Some(c)).expect("same again");
    assert_eq!(store.crop("C0001").expect("crop"), Some(c));
    assert!(matches!(
        store.set_crop("r", "C0999", Some(c)),
        Err(StoreError::UnknownCase(_))
    ));
    assert!(
        store
            .set_crop("r", "C0002", Some(CropRect { width: 0, ..c }))
            .is_err()
    );
    let crops: Vec<_> = store
        .audit()
        .expect("audit")
        .into_iter()
        .filter(|a| a.action == "set_crop")
        .collect();
    assert_eq!(crops.len(), 1, "an unchanged crop is not audited again");
    assert_eq!(crops[0].new_value.as_deref(), Some("10,20,300,200"));
    store.set_crop("r", "C0001", None).expect("clear");
    assert_eq!(store.crop("C0001").expect("cleared"), None);
    store.lock().expect("lock");
    assert!(matches!(
        store.set_crop("r", "C0001", Some(c)),
        Err(StoreError::Locked)
    ));
    drop(store);

    // Downgrade a copy to schema 1 (drop what version 2 added) and open it: it is migrated.
    let v1 = tmp.path().join("v1.sacro");
    std::fs::copy(&path, &v1).expect("copy");
    {
        let conn = rusqlite::Connection::open(&v1).expect("sqlite");
        conn.execute_batch(
            "DROP TABLE arm_readings; DROP TABLE joint_boxes; DROP TRIGGER crops_locked_insert; DROP TRIGGER crops_locked_update; \
             DROP TRIGGER crops_locked_delete; DROP TABLE crops; ALTER TABLE audit DROP COLUMN hash; \
             ALTER TABLE cases DROP COLUMN archive_url; ALTER TABLE cases DROP COLUMN study_uid; \
             ALTER TABLE cases DROP COLUMN series_uid; \
             DELETE FROM meta WHERE key IN ('audit_head', 'lock_head'); PRAGMA user_version = 1;",
        )
        .expect("downgrade");
    }
    let store = SqliteStore::open(&v1).expect("migrated");
    assert_eq!(
        store.info().expect("info").schema_version,
        sacro::session::SCHEMA_VERSION
    );
    assert_eq!(store.crop("C0001").expect("table exists"), None);
    // Schema 3 sealed the trail as it was found (a hash chain, the lock's head): it verifies.
    assert_eq!(store.verify().expect("verify"), Vec::<String>::new());
}
