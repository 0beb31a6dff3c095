//! Joint boxes (issue 29's labels of a joint localiser): stored per reader, case and side, blinded and
//! audited like readings, frozen by the lock, replayed by `study verify`; on the command line, boxes
//! outside the film refused and the export with each case's consensus (mean) box.

use std::process::Command;

use sacro::grading::{JointGrade as G, Reading};
use sacro::session::joint_boxes::Side;
use sacro::session::{
    CropRect, NewCase, Protocol, Role, SqliteStore, StoreError, StudySettings, StudyStore,
};

fn rect(x: u32, y: u32, width: u32, height: u32) -> CropRect {
    CropRect {
        x,
        y,
        width,
        height,
    }
}

#[test]
fn boxes_are_blinded_audited_locked_and_verified() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("boxes.sacro");
    let store = SqliteStore::create(&path, Protocol::TwoCentral, 3).expect("create");
    store.add_reader("a", Role::Central1).expect("a");
    store.add_reader("b", Role::Central2).expect("b");
    store.add_reader("adj", Role::Adjudicator).expect("adj");
    store
        .add_cases(&[NewCase {
            path: None,
            sop_instance_uid: Some("2.25.77".into()),
            case_id: Some("K1".into()),
            archive: None,
        }])
        .expect("case");
    store
        .set_settings(StudySettings {
            reveal_readers_after_commit: true,
            reveal_model_after_commit: true,
        })
        .expect("settings");
    store
        .set_joint_box("a", "K1", Side::Left, Some(rect(600, 400, 120, 200)))
        .expect("a's left box");
    store
        .set_joint_box("a", "K1", Side::Right, Some(rect(200, 410, 110, 190)))
        .expect("a's right box");
    // Bad boxes and readers without the case on their list are refused.
    assert!(
        store
            .set_joint_box("a", "K1", Side::Left, Some(rect(1, 1, 0, 10)))
            .is_err()
    );
    assert!(matches!(
        store.set_joint_box("adj", "K1", Side::Left, Some(rect(1, 1, 5, 5))),
        Err(StoreError::NotAssigned { .. })
    ));
    // b sees only b's own boxes before committing a reading of K1.
    store
        .set_joint_box("b", "K1", Side::Left, Some(rect(610, 390, 100, 220)))
        .expect("b's box");
    let seen: Vec<_> = store.joint_boxes("b", "K1").expect("b's view");
    assert!(seen.iter().all(|x| x.reader == "b"), "{seen:?}");
    store
        .commit_reading("b", "K1", &Reading::graded(G::Minimal, G::Normal), None)
        .expect("b reads");
    assert_eq!(store.joint_boxes("b", "K1").expect("b's view").len(), 3);
    // A change and a removal are audited with the old and new box.
    store
        .set_joint_box("a", "K1", Side::Right, Some(rect(205, 410, 110, 190)))
        .expect("moved");
    store
        .set_joint_box("a", "K1", Side::Right, None)
        .expect("removed");
    let rows: Vec<_> = store
        .audit()
        .expect("audit")
        .into_iter()
        .filter(|r| r.action == "set_right_joint_box")
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].old_value.as_deref(), Some("200,410,110,190"));
    assert_eq!(rows[1].new_value.as_deref(), Some("205,410,110,190"));
    assert_eq!(rows[2].new_value, None);
    assert_eq!(store.all_joint_boxes().expect("all").len(), 2);
    assert_eq!(store.verify().expect("verify"), Vec::<String>::new());
    // The server store has no joint boxes yet: a push would lose them, so the copy is refused.
    assert!(store.dump().is_err());
    store.lock().expect("lock");
    assert!(matches!(
        store.set_joint_box("a", "K1", Side::Right, Some(rect(1, 1, 5, 5))),
        Err(StoreError::Locked)
    ));
    drop(store);
    // A box moved behind Sacro's back is reported.
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute_batch(
            "DROP TRIGGER joint_boxes_locked_update; UPDATE joint_boxes SET x = 1 WHERE side = 'left' \
             AND reader_id = 1;",
        )
        .expect("edit");
    }
    let problems = SqliteStore::open(&path)
        .expect("open")
        .verify()
        .expect("verify");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("left joint box of case K1 by a"),
        "{problems:?}"
    );
}

#[test]
fn the_command_line_sets_checks_and_exports_boxes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let sacro = || Command::new(env!("CARGO_BIN_EXE_sacro"));
    let out = sacro()
        .args(["phantom", "--n", "2", "--size", "200", "--format", "tiff"])
        .args(["--readers", "reader", "--out"])
        .arg(dir)
        .output()
        .expect("phantom");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let study = dir.join("study.sacro");
    let run = |args: &[&str]| {
        let o = sacro().args(args).output().expect("run");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let s = study.to_str().expect("utf-8");
    let reader = ["read", s, "--reader", "simulated reader", "--case", "P0001"];
    let (ok, text) = run(&[
        &reader[..],
        &["--left-box", "120,80,30,40", "--right-box", "40,80,30,40"],
    ]
    .concat());
    assert!(ok && text.contains("left joint box of P0001"), "{text}");
    let (ok, text) = run(&[&reader[..], &["--left-box", "190,80,30,40"]].concat());
    assert!(
        !ok && text.contains("not inside case P0001's 200×200 film"),
        "{text}"
    );
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    let (ok, text) = run(&[&reader[..], &["--left-box", "1,2,3"]].concat());
    assert!(!ok && text.contains("X,Y,W,H"), "{text}");
    let csv_path = dir.join("boxes.csv");
    let (ok, text) = run(&[
        "study",
        "export",
        s,
        "--boxes",
        csv_path.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{text}");
    let csv = std::fs::read_to_string(&csv_path).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "case,reader,side,x,y,w,h");
    assert!(
        lines.contains(&"P0001,simulated reader,left,120,80,30,40"),
        "{csv}"
    );
    assert!(
        lines.contains(&"P0001,consensus,right,40,80,30,40"),
        "{csv}"
    );
    assert_eq!(lines.len(), 5, "{csv}");
    let (ok, _) = run(&[&reader[..], &["--left-box", "none"]].concat());
    assert!(ok);
}
