//! Reader studies in the aided design (issue 30): two readers through both arms with a clock the test
//! controls (counterbalanced order, the washout enforced, no carry-over between arms, the model shown
//! only in the aided arm, audit and lock), and the command line end to end (create, read in arms,
//! status, export --mrmc, stats --mrmc) with its refusals.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use sacro::grading::{JointGrade as G, Reading};
use sacro::session::reader_study::mrmc_rows;
use sacro::session::{
    Arm, ArmCommit, CommitOutcome, Design, NewCase, Protocol, Role, SqliteStore, StoreError,
    StudyStore,
};

fn sacro() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sacro"))
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn reading(l: u8, r: u8) -> Reading {
    let g = |v: u8| G::from_value(i64::from(v)).expect("grade");
    Reading::graded(g(l), g(r))
}

/// `commit_arm_reading` with its arguments in a row.
#[allow(clippy::too_many_arguments)]
fn commit_arm(
    store: &SqliteStore,
    reader: &str,
    case: &str,
    arm: Arm,
    reading: &Reading,
    confidence: u8,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CommitOutcome, StoreError> {
    let commit = ArmCommit {
        arm,
        reading,
        confidence,
        reason,
        now,
    };
    store.commit_arm_reading(reader, case, &commit)
}

fn reader_study(dir: &Path, cases: usize) -> SqliteStore {
    let store = SqliteStore::create(&dir.join("rs.sacro"), Protocol::Single, 5).expect("create");
    store
        .set_design(Design::Aided { washout_days: 28 })
        .expect("design");
    store.add_reader("ann", Role::Reader).expect("ann");
    store.add_reader("ben", Role::Reader).expect("ben");
    let new: Vec<NewCase> = (1..=cases)
        .map(|i| NewCase {
            path: None,
            sop_instance_uid: Some(format!("2.25.{i}")),
            case_id: None,
            archive: None,
        })
        .collect();
    store.add_cases(&new).expect("cases");
    store
}

#[test]
fn two_readers_through_both_arms_with_the_washout_enforced() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = reader_study(tmp.path(), 4);
    let t0 = t("2026-03-02T09:00:00Z");
    let model = "a".repeat(64);
    for c in store.cases().expect("cases") {
        store
            .record_prediction(&c.id, &model, 0.8)
            .expect("prediction");
    }

    // Counterbalanced: ann reads unaided first, ben aided first; each arm lists every case.
    let ann = store.arm_plan("ann", t0).expect("plan");
    let ben = store.arm_plan("ben", t0).expect("plan");
    assert_eq!((ann.first, ann.current), (Arm::Unaided, Arm::Unaided));
    assert_eq!((ben.first, ben.current), (Arm::Aided, Arm::Aided));
    assert_eq!(ann.entries.len(), 4);
    assert!(ann.entries.iter().all(|e| e.arm == Some(Arm::Unaided)));

    // The model: hidden from ann (unaided), shown to ben (aided) before he grades.
    let case = ann.entries[0].case_id.clone();
    assert!(matches!(
        store.prediction_for_reader_at("ann", &case, &model, t0),
        Err(StoreError::Blinded { .. })
    ));
    assert_eq!(
        store
            .prediction_for_reader_at("ben", &case, &model, t0)
            .expect("aided")
            .map(|p| p.probability),
        Some(0.8)
    );

    // Bad input: a confidence above 100, a standard reading, the other arm before the first is done.
    assert!(
        commit_arm(
            &store,
            "ann",
            &case,
            Arm::Unaided,
            &reading(2, 2),
            101,
            None,
            t0
        )
        .is_err()
    );
    let err = store
        .commit_reading("ann", &case, &reading(2, 2), None)
        .expect_err("arm readers need an arm");
    assert!(err.to_string().contains("confidence"), "{err}");
    let err = commit_arm(
        &store,
        "ann",
        &case,
        Arm::Aided,
        &reading(2, 2),
        70,
        None,
        t0,
    )
    .expect_err("aided before unaided");
    assert!(err.to_string().contains("unaided first"), "{err}");

    // Session 1: both read every case in their first arm, an hour apart.
    for (i, reader) in ["ann", "ben"].iter().enumerate() {
        let plan = store.arm_plan(reader, t0).expect("plan");
        for (k, e) in plan.entries.iter().enumerate() {
            let at = t0 + Duration::hours(k as i64 + i as i64);
            let outcome = commit_arm(
                &store,
                reader,
                &e.case_id,
                plan.current,
                &reading(1, 2),
                40,
                None,
                at,
            )
            .expect("first arm");
            assert_eq!(outcome, CommitOutcome::Created);
        }
    }
    // A day later the second arm is not open: the washout is 28 days.
    let day1 = t0 + Duration::days(1);
    let plan = store.arm_plan("ann", day1).expect("plan");
    assert_eq!(plan.current, Arm::Aided);
    assert!(plan.entries.is_empty());
    assert_eq!(plan.waiting, 4);
    assert_eq!(plan.next_open.as_deref(), Some("2026-03-30T09:00:00.000Z"));
    assert_eq!(plan.last_open.as_deref(), Some("2026-03-30T12:00:00.000Z"));
    let err = commit_arm(
        &store,
        "ann",
        &case,
        Arm::Aided,
        &reading(2, 2),
        70,
        None,
        day1,
    )
    .expect_err("washout");
    assert!(err.to_string().contains("2026-03-30"), "{err}");
    // Ben, aided first, does not see the model while waiting for his unaided arm.
    assert!(
        store
            .prediction_for_reader_at("ben", &case, &model, day1)
            .is_err()
    );

    // 28 days and 90 minutes on: the first two of ann's cases are open, the others still wait.
    let later = t0 + Duration::days(28) + Duration::minutes(90);
    let plan = store.arm_plan("ann", later).expect("plan");
    assert_eq!(plan.entries.len(), 2);
    assert_eq!(plan.waiting, 2);
    // A reader never sees their own other-arm reading: asking for the aided arm gives nothing yet.
    assert_eq!(
        store
            .own_arm_reading("ann", &plan.entries[0].case_id, Arm::Aided)
            .expect("own"),
        None
    );

    // After the whole washout both finish their second arm.
    let done_at = t0 + Duration::days(29);
    for reader in ["ann", "ben"] {
        let plan = store.arm_plan(reader, done_at).expect("plan");
        assert_eq!(plan.entries.len(), 4);
        for e in &plan.entries {
            if plan.current == Arm::Aided {
                assert!(
                    store
                        .prediction_for_reader_at(reader, &e.case_id, &model, done_at)
                        .expect("aided")
                        .is_some()
                );
            } else {
                assert!(
                    store
                        .prediction_for_reader_at(reader, &e.case_id, &model, done_at)
                        .is_err(),
                    "{reader} reads {} unaided: the model stays hidden",
                    e.case_id
                );
            }
            commit_arm(
                &store,
                reader,
                &e.case_id,
                plan.current,
                &reading(2, 3),
                85,
                None,
                done_at,
            )
            .expect("second arm");
        }
    }
    // The first arm cannot change any more; the second changes only with a reason.
    let err = commit_arm(
        &store,
        "ann",
        &case,
        Arm::Unaided,
        &reading(0, 0),
        5,
        Some("x"),
        done_at,
    )
    .expect_err("first arm closed");
    assert!(err.to_string().contains("no longer"), "{err}");
    assert!(
        commit_arm(
            &store,
            "ann",
            &case,
            Arm::Aided,
            &reading(3, 3),
            90,
            None,
            done_at
        )
        .is_err()
    );
    assert_eq!(
        commit_arm(
            &store,
            "ann",
            &case,
            Arm::Aided,
            &reading(3, 3),
            90,
            Some("second look"),
            done_at
        )
        .expect("change"),
        CommitOutcome::Changed
    );

    // Everything is audited; the export has 2 readers × 2 arms × 4 cases.
    let audit = store.audit().expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "create_arm_reading")
            .count(),
        16
    );
    let change = audit
        .iter()
        .find(|a| a.action == "change_arm_reading")
        .expect("change row");
    assert_eq!(change.reason.as_deref(), Some("second look"));
    assert!(
        change
            .new_value
            .as_deref()
            .is_some_and(|v| v.contains("\"confidence\":90") && v.contains("\"arm\":\"aided\""))
    );
    let arms = store.arm_readings().expect("arm readings");
    let truth: HashMap<String, bool> = store
        .cases()
        .expect("cases")
        .into_iter()
        .map(|c| (c.id, true))
        .collect();
    let rows = mrmc_rows(&store.readers().expect("readers"), &arms, &truth);
    assert_eq!(rows.len(), 16);
    assert_eq!(rows[0].reader, "ann");
    assert_eq!(rows[0].modality, "unaided");

    // A reader study stays in its file; after the lock nothing changes.
    assert!(store.dump().is_err());
    store.lock().expect("lock");
    assert!(matches!(
        commit_arm(
            &store,
            "ben",
            &case,
            Arm::Aided,
            &reading(4, 4),
            99,
            Some("x"),
            done_at
        ),
        Err(StoreError::Locked)
    ));
    assert_eq!(store.verify().expect("verify"), Vec::<String>::new());
    drop(store);

    // Edited behind Sacro's back: a confidence raised, the washout shortened. Verify says so.
    let copy = tmp.path().join("edited.sacro");
    std::fs::copy(tmp.path().join("rs.sacro"), &copy).expect("copy");
    {
        let conn = rusqlite::Connection::open(&copy).expect("sqlite");
        conn.execute_batch(
            "DROP TRIGGER arm_readings_locked_update; \
             UPDATE arm_readings SET confidence = 99 WHERE rowid = 1; \
             UPDATE meta SET value = '{\"kind\":\"aided\",\"washout_days\":0}' WHERE key = 'design';",
        )
        .expect("edit");
    }
    let problems = SqliteStore::open(&copy)
        .expect("open")
        .verify()
        .expect("verify");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("design")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("reading of case")),
        "{problems:?}"
    );
}

#[test]
fn central_readers_read_as_usual_beside_the_arm_readers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store =
        SqliteStore::create(&tmp.path().join("s.sacro"), Protocol::TwoCentral, 2).expect("create");
    store
        .set_design(Design::Aided { washout_days: 0 })
        .expect("design");
    store.add_reader("c1", Role::Central1).expect("c1");
    store.add_reader("r1", Role::Reader).expect("r1");
    store
        .add_cases(&[NewCase {
            path: None,
            sop_instance_uid: Some("2.25.9".into()),
            case_id: Some("K1".into()),
            archive: None,
        }])
        .expect("case");
    // The central reader's work list and commits are the standard ones.
    let list = store.worklist("c1").expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].arm, None);
    store
        .commit_reading("c1", "K1", &reading(3, 3), None)
        .expect("central");
    assert!(store.arm_plan("c1", Utc::now()).is_err());
    // The arm reader's work list is their arm.
    assert_eq!(
        store.worklist("r1").expect("list")[0].arm,
        Some(Arm::Unaided)
    );
    // Once a reading exists in an arm, the study stays a reader study.
    commit_arm(
        &store,
        "r1",
        "K1",
        Arm::Unaided,
        &reading(1, 1),
        20,
        None,
        Utc::now(),
    )
    .expect("arm");
    assert!(store.set_design(Design::Standard).is_err());
    assert!(
        store
            .set_design(Design::Aided {
                washout_days: 10_000
            })
            .is_err()
    );
}

#[test]
fn the_command_line_runs_a_reader_study_end_to_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    // Simulated readers through both arms on phantoms, exported and analysed.
    let out = sacro()
        .args(["phantom", "--n", "16", "--size", "96", "--format", "tiff"])
        .args(["--readers", "reader,reader", "--design", "aided", "--out"])
        .arg(dir.join("ph"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let study = dir.join("ph/study.sacro");
    let status = sacro()
        .args(["study", "status"])
        .arg(&study)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("unaided first; unaided 16/16, aided 16/16"),
        "{text}"
    );
    assert!(text.contains("aided first"), "{text}");
    let mrmc = dir.join("mrmc.csv");
    let out = sacro()
        .args(["study", "export"])
        .arg(&study)
        .arg("--mrmc")
        .arg(&mrmc)
        .arg("--truth")
        .arg(dir.join("ph/truth.csv"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rdr = csv::Reader::from_path(&mrmc).expect("csv");
    assert_eq!(
        rdr.headers().expect("header").iter().collect::<Vec<_>>(),
        ["reader", "modality", "case", "truth", "rating"]
    );
    let truth: HashMap<String, String> = csv::Reader::from_path(dir.join("ph/truth.csv"))
        .expect("truth")
        .records()
        .map(|r| {
            let r = r.expect("row");
            (r[0].to_string(), r[4].to_string())
        })
        .collect();
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 2 * 2 * 16);
    for r in &rows {
        assert_eq!(truth[&r[2]], r[3], "truth of {}", &r[2]);
        assert!(r[4].parse::<u8>().is_ok_and(|v| v <= 100));
    }
    let out = sacro()
        .args(["stats", "--json", "--mrmc"])
        .arg(&mrmc)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A study made by hand: create, add, read in arms, with the refusals.
    let s = dir.join("hand.sacro");
    let run = |args: &[&str]| {
        let out = sacro().args(args).output().expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let sp = s.to_str().expect("utf-8");
    let (ok, text) = run(&[
        "study",
        "create",
        sp,
        "--protocol",
        "single",
        "--design",
        "aided",
        "--washout-days",
        "14",
    ]);
    assert!(ok && text.contains("washout 14 days"), "{text}");
    let films = dir.join("ph");
    let (ok, text) = run(&[
        "study",
        "add-cases",
        sp,
        films.join("P0001.tiff").to_str().expect("utf-8"),
        films.join("P0002.tiff").to_str().expect("utf-8"),
    ]);
    assert!(ok, "{text}");
    assert!(
        run(&[
            "study",
            "add-reader",
            sp,
            "--name",
            "ann",
            "--role",
            "reader"
        ])
        .0
    );
    let read = |extra: &[&str]| run(&[&["read", sp, "--reader", "ann"], extra].concat());
    let grades = ["--case", "C0001", "--left", "2", "--right", "2"];
    let (ok, text) = read(&["--next"]);
    assert!(ok && text.contains("unaided arm"), "{text}");
    let (ok, text) = read(&grades);
    assert!(!ok && text.contains("--confidence"), "{text}");
    let (ok, text) = read(&[&grades[..], &["--confidence", "101"]].concat());
    assert!(!ok, "{text}");
    let (ok, text) = read(&[&grades[..], &["--confidence", "70"]].concat());
    assert!(ok && text.contains("in the unaided arm"), "{text}");
    let (ok, text) = read(&[&grades[..], &["--confidence", "70", "--arm", "aided"]].concat());
    assert!(!ok && text.contains("unaided first"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
    // Export from a study without truth: rows with an empty truth, and a note.
    let m2 = dir.join("m2.csv");
    let (ok, text) = run(&["study", "export", sp, "--mrmc", m2.to_str().expect("utf-8")]);
    assert!(ok && text.contains("have no truth"), "{text}");
    // Bad truth file: the row named.
    let bad = dir.join("bad_truth.csv");
    std::fs::write(&bad, "case,truth\nC0001,1\nC0002,yes\n").expect("write");
    let (ok, text) = run(&[
        "study",
        "export",
        sp,
        "--mrmc",
        m2.to_str().expect("utf-8"),
        "--truth",
        bad.to_str().expect("utf-8"),
    ]);
    assert!(!ok && text.contains("row 3"), "{text}");
    // Standard studies have no arms to export, and no --confidence.
    let std_study = dir.join("std.sacro");
    let st = std_study.to_str().expect("utf-8");
    assert!(run(&["study", "create", st, "--protocol", "single"]).0);
    let (ok, text) = run(&["study", "export", st, "--mrmc", m2.to_str().expect("utf-8")]);
    assert!(!ok && text.contains("not a reader study"), "{text}");
    // A server study cannot be a reader study (yet): refused before anything is created.
    let (ok, text) = run(&[
        "study",
        "create",
        "postgres://coord@127.0.0.1:9/none",
        "--protocol",
        "single",
        "--design",
        "aided",
    ]);
    assert!(!ok && text.contains("study file"), "{text}");
}
