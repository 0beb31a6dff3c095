//! The store suite: the same behaviour asked of both study stores, the SQLite file and the PostgreSQL
//! server (a throwaway server the tests start, `tests/pg`), so that the two cannot drift. Each test is
//! one function over a [`Backend`]; `both!` runs it on each. On the server every reader acts through
//! their own login, as at a multi-site study; in a file, through their own connection.

mod pg;
mod support;

use std::collections::HashMap;

use sacro::grading::{Assessment, JointGrade as G, Reading};
use sacro::session::{
    self, CommitOutcome, ConsensusMethod, CropRect, NewCase, Protocol, Role, SqliteStore,
    StoreError, Study, StudySettings, StudyStore,
};

/// A study with readers and cases, seen by the coordinator and by each reader.
struct Fixture {
    coord: Study,
    readers: HashMap<String, Study>,
    _tmp: Option<tempfile::TempDir>,
}

impl Fixture {
    fn coord(&self) -> &dyn StudyStore {
        &*self.coord
    }

    fn r(&self, name: &str) -> &dyn StudyStore {
        &**self.readers.get(name).expect("a reader of the fixture")
    }
}

trait Backend {
    fn study(&self, protocol: Protocol, readers: &[(&str, Role)], cases: usize) -> Fixture;
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

struct Sqlite;

impl Backend for Sqlite {
    fn study(&self, protocol: Protocol, readers: &[(&str, Role)], cases: usize) -> Fixture {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("study.sacro");
        let store = SqliteStore::create(&path, protocol, 11).expect("create");
        for (name, role) in readers {
            store.add_reader(name, *role).expect("reader");
        }
        store.add_cases(&uid_cases(cases)).expect("cases");
        drop(store);
        Fixture {
            coord: Study::open(&path, None).expect("open"),
            readers: readers
                .iter()
                .map(|(n, _)| (n.to_string(), Study::open(&path, None).expect("open")))
                .collect(),
            _tmp: Some(tmp),
        }
    }
}

struct Postgres;

impl Backend for Postgres {
    fn study(&self, protocol: Protocol, readers: &[(&str, Role)], cases: usize) -> Fixture {
        let study = pg::ServerStudy::create(protocol, readers, cases);
        let open = |login: sacro::session::ServerLogin| {
            Study::open(std::path::Path::new(&login.url), login.password).expect("login")
        };
        Fixture {
            coord: open(study.coord_login()),
            readers: readers
                .iter()
                .map(|(name, _)| (name.to_string(), open(study.reader_login(name))))
                .collect(),
            _tmp: None,
        }
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(&super::Postgres) } )*
        }
    };
}

both!(
    predictions_of_different_models_never_mix,
    blinding_is_enforced_by_the_store,
    worklists_are_randomised_per_reader_and_reproducible,
    adjudication_assigns_the_third_reader_only_on_disagreement,
    changes_are_audited_and_lock_freezes_everything,
    bad_input_gets_clear_errors_and_changes_nothing,
    any_text_is_stored_verbatim_and_audited_as_serde_writes_it,
    crops_are_stored_audited_and_frozen_by_the_lock,
    a_busy_study_verifies_intact,
    archived_cases_keep_their_archive_and_bad_references_are_refused,
);

fn graded(l: G, r: G) -> Reading {
    Reading::graded(l, r)
}

fn predictions_of_different_models_never_mix(b: &dyn Backend) {
    let f = b.study(Protocol::Single, &[("ann", Role::Reader)], 3);
    let c = f.coord();
    c.record_prediction("C0001", "model-a", 0.2).expect("a1");
    c.record_prediction("C0002", "model-a", 0.9).expect("a2");
    c.record_prediction("C0001", "model-b", 0.7).expect("b1");
    c.record_prediction("C0001", "model-a", 0.25)
        .expect("a1 again");
    let got: Vec<(String, f64)> = c
        .predictions("model-a")
        .expect("a")
        .into_iter()
        .map(|p| (p.case_id, p.probability))
        .collect();
    assert_eq!(got, vec![("C0001".into(), 0.25), ("C0002".into(), 0.9)]);
    assert_eq!(c.predictions("model-b").expect("b").len(), 1);
    assert!(c.predictions("model-c").expect("c").is_empty());
    assert!(c.record_prediction("C0003", "model-a", 1.5).is_err());
    assert!(c.record_prediction("C9999", "model-a", 0.5).is_err());
}

fn blinding_is_enforced_by_the_store(b: &dyn Backend) {
    let f = b.study(
        Protocol::TwoCentral,
        &[("ann", Role::Central1), ("ben", Role::Central2)],
        3,
    );
    let (ann, ben) = (f.r("ann"), f.r("ben"));
    ann.commit_reading("ann", "C0001", &graded(G::Minimal, G::Minimal), None)
        .expect("ann commits");
    f.coord()
        .record_prediction("C0001", "abc123", 0.83)
        .expect("prediction");
    let err = ben.others_readings("ben", "C0001").expect_err("blinded");
    assert!(matches!(err, StoreError::Blinded { .. }), "{err}");
    assert!(matches!(
        ben.prediction_for_reader("ben", "C0001", "abc123"),
        Err(StoreError::Blinded { .. })
    ));
    // On a server, a reader's own view of the study holds nothing of Ann's before his commit (a file
    // has no per-reader view: its every connection is the coordinator's).
    if is_server(&f) {
        assert!(ben.all_readings().expect("own view").is_empty());
    }
    ben.commit_reading("ben", "C0001", &graded(G::Normal, G::Suspicious), None)
        .expect("ben commits");
    assert!(matches!(
        ben.others_readings("ben", "C0001"),
        Err(StoreError::Blinded { .. })
    ));
    let p = ben
        .prediction_for_reader("ben", "C0001", "abc123")
        .expect("model after commit");
    assert_eq!(p.map(|p| p.probability), Some(0.83));
    f.coord()
        .set_settings(StudySettings {
            reveal_readers_after_commit: true,
            reveal_model_after_commit: false,
        })
        .expect("settings");
    let others = ben.others_readings("ben", "C0001").expect("revealed");
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].reader, "ann");
    assert!(matches!(
        ben.prediction_for_reader("ben", "C0001", "abc123"),
        Err(StoreError::Blinded { .. })
    ));
    assert!(matches!(
        ben.others_readings("ben", "C0002"),
        Err(StoreError::Blinded { .. })
    ));
}

fn is_server(f: &Fixture) -> bool {
    matches!(f.coord, Study::Server(_))
}

fn order(store: &dyn StudyStore, reader: &str) -> Vec<String> {
    store
        .worklist(reader)
        .expect("worklist")
        .into_iter()
        .map(|e| e.case_id)
        .collect()
}

fn worklists_are_randomised_per_reader_and_reproducible(b: &dyn Backend) {
    let f = b.study(
        Protocol::Single,
        &[("a", Role::Reader), ("b", Role::Reader)],
        20,
    );
    let a = order(f.r("a"), "a");
    let bb = order(f.r("b"), "b");
    assert_eq!(a.len(), 20);
    assert_ne!(a, bb);
    let mut sorted = a.clone();
    sorted.sort();
    assert_ne!(a, sorted);
    // The coordinator sees each reader's list as the reader does.
    assert_eq!(order(f.coord(), "a"), a);
    // Both stores give the same order for the same seed, readers and cases: the rule is shared.
    let other: Box<dyn Backend> = if is_server(&f) {
        Box::new(Sqlite)
    } else {
        Box::new(Postgres)
    };
    let g = other.study(
        Protocol::Single,
        &[("a", Role::Reader), ("b", Role::Reader)],
        20,
    );
    assert_eq!(order(g.r("a"), "a"), a);
}

fn adjudication_assigns_the_third_reader_only_on_disagreement(b: &dyn Backend) {
    let f = b.study(
        Protocol::Adjudicated,
        &[
            ("loc", Role::Local),
            ("c1", Role::Central1),
            ("c2", Role::Central2),
        ],
        3,
    );
    assert!(order(f.r("c2"), "c2").is_empty());
    // C0001: disagree on the definite call; C0002: agree; C0003: one not assessable.
    let na = Reading {
        assessment: Assessment::NotAssessable {
            reason: "rotated".into(),
        },
        comment: None,
    };
    for (case, l, c) in [
        (
            "C0001",
            graded(G::Unequivocal, G::Normal),
            graded(G::Minimal, G::Normal),
        ),
        (
            "C0002",
            graded(G::Minimal, G::Minimal),
            graded(G::Ankylosis, G::Normal),
        ),
        ("C0003", graded(G::Normal, G::Normal), na.clone()),
    ] {
        f.r("loc")
            .commit_reading("loc", case, &l, None)
            .expect("local");
        f.r("c1").commit_reading("c1", case, &c, None).expect("c1");
    }
    let mut list = order(f.r("c2"), "c2");
    list.sort();
    assert_eq!(list, vec!["C0001", "C0003"]);
    assert_eq!(order(f.coord(), "c2").len(), 2);
    let err = f
        .r("c2")
        .commit_reading("c2", "C0002", &graded(G::Normal, G::Normal), None)
        .expect_err("not on the list");
    assert!(matches!(err, StoreError::NotAssigned { .. }), "{err}");
    let err = f
        .r("c2")
        .commit_reading("c2", "C0099", &graded(G::Normal, G::Normal), None)
        .expect_err("no such case");
    assert!(matches!(err, StoreError::UnknownCase(_)), "{err}");
    f.r("c2")
        .commit_reading("c2", "C0001", &graded(G::Unequivocal, G::Normal), None)
        .expect("adjudicates");
    let status = session::status(f.coord()).expect("status");
    assert_eq!(status.awaiting_adjudication, vec!["C0003"]);
    let cons = session::consensus(f.coord()).expect("consensus");
    assert_eq!(cons[0].label, Some(true));
    assert_eq!(cons[1].label, Some(true));
    assert_eq!(cons[2].method, ConsensusMethod::AwaitingAdjudication);
}

fn changes_are_audited_and_lock_freezes_everything(b: &dyn Backend) {
    let f = b.study(Protocol::Single, &[("r", Role::Reader)], 2);
    let r = f.r("r");
    let first = graded(G::Minimal, G::Normal);
    let second = graded(G::Unequivocal, G::Normal);
    assert_eq!(
        r.commit_reading("r", "C0001", &first, None)
            .expect("create"),
        CommitOutcome::Created
    );
    assert_eq!(
        r.commit_reading("r", "C0001", &first, None).expect("same"),
        CommitOutcome::Unchanged
    );
    assert!(matches!(
        r.commit_reading("r", "C0001", &second, None),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        r.commit_reading("r", "C0001", &second, Some("second look"))
            .expect("change"),
        CommitOutcome::Changed
    );
    let audit = f.coord().audit().expect("audit");
    let change = audit
        .iter()
        .find(|a| a.action == "change_reading")
        .expect("change row");
    assert_eq!(change.actor, "r");
    assert_eq!(change.reason.as_deref(), Some("second look"));
    assert!(
        change
            .old_value
            .as_deref()
            .expect("old")
            .contains("\"left\":2")
    );
    assert!(
        change
            .new_value
            .as_deref()
            .expect("new")
            .contains("\"left\":3")
    );
    assert!(audit.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        r.own_reading("r", "C0001")
            .expect("own")
            .expect("present")
            .reading,
        second
    );
    r.commit_reading("r", "C0002", &first, None).expect("C0002");
    r.delete_reading("r", "C0002", "wrong film")
        .expect("delete");
    assert!(r.own_reading("r", "C0002").expect("own").is_none());
    let actions: Vec<String> = f
        .coord()
        .audit()
        .expect("audit")
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions[actions.len() - 4..],
        [
            "create_reading",
            "change_reading",
            "create_reading",
            "delete_reading"
        ]
    );

    f.coord().lock().expect("lock");
    assert!(f.coord().info().expect("info").locked);
    let before = f.coord().audit().expect("audit").len();
    assert!(matches!(
        r.commit_reading("r", "C0002", &first, None),
        Err(StoreError::Locked)
    ));
    assert!(matches!(
        r.delete_reading("r", "C0001", "oops"),
        Err(StoreError::Locked)
    ));
    assert!(matches!(
        f.coord().add_reader("x", Role::Reader),
        Err(StoreError::Locked)
    ));
    assert!(matches!(
        f.coord().add_cases(&uid_cases(1)),
        Err(StoreError::Locked)
    ));
    assert!(matches!(
        f.coord().set_settings(StudySettings {
            reveal_readers_after_commit: false,
            reveal_model_after_commit: false
        }),
        Err(StoreError::Locked)
    ));
    assert!(matches!(f.coord().lock(), Err(StoreError::Locked)));
    assert_eq!(f.coord().audit().expect("audit").len(), before);
}

fn bad_input_gets_clear_errors_and_changes_nothing(b: &dyn Backend) {
    let f = b.study(
        Protocol::TwoCentral,
        &[("ann", Role::Central1), ("ben", Role::Central2)],
        2,
    );
    let c = f.coord();
    let before = c.audit().expect("audit").len();
    for name in ["", " ann2", "bad\u{202E}name", "line\nbreak"] {
        assert!(
            matches!(
                c.add_reader(name, Role::Adjudicator),
                Err(StoreError::Invalid(_))
            ),
            "{name:?}"
        );
    }
    assert!(matches!(
        c.add_reader("ANN", Role::Adjudicator),
        Err(StoreError::DuplicateReader(_))
    ));
    assert!(matches!(
        c.add_reader("carl", Role::Central1),
        Err(StoreError::RoleNotAllowed { .. })
    ));
    assert!(matches!(
        c.add_reader("carl", Role::Local),
        Err(StoreError::RoleNotAllowed { .. })
    ));
    let bad_id = NewCase {
        path: None,
        sop_instance_uid: Some("2.25.77".into()),
        case_id: Some("C'1; DROP TABLE cases".into()),
        archive: None,
    };
    assert!(matches!(
        c.add_cases(&[bad_id]),
        Err(StoreError::Invalid(_))
    ));
    // A list with one duplicate adds none of it.
    let mut list = uid_cases(1);
    list[0].sop_instance_uid = Some("2.25.500".into());
    list.push(NewCase {
        path: None,
        sop_instance_uid: Some("2.25.1".into()),
        case_id: None,
        archive: None,
    });
    assert!(matches!(c.add_cases(&list), Err(StoreError::Invalid(_))));
    assert_eq!(c.cases().expect("cases").len(), 2);
    let ann = f.r("ann");
    let na = Reading {
        assessment: Assessment::NotAssessable {
            reason: "  ".into(),
        },
        comment: None,
    };
    assert!(matches!(
        ann.commit_reading("ann", "C0001", &na, None),
        Err(StoreError::Invalid(_))
    ));
    let err = ann
        .commit_reading("ann", "C0009", &graded(G::Normal, G::Normal), None)
        .expect_err("no such case");
    assert!(matches!(err, StoreError::UnknownCase(_)), "{err}");
    assert!(matches!(
        ann.delete_reading("ann", "C0001", "  "),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        ann.delete_reading("ann", "C0001", "nothing there"),
        Err(StoreError::Invalid(_))
    ));
    assert!(c.readers().expect("readers").len() == 2);
    assert_eq!(
        c.audit().expect("audit").len(),
        before,
        "refusals change nothing"
    );
}

fn any_text_is_stored_verbatim_and_audited_as_serde_writes_it(b: &dyn Backend) {
    let name = "Dr O'Brien; DROP TABLE readers;-- \"Łucja\" 李 🦴";
    let f = b.study(Protocol::Single, &[(name, Role::Reader)], 2);
    let r = f.r(name);
    let reading = Reading {
        assessment: Assessment::Graded(sacro::grading::JointGrades::new(G::Minimal, G::Normal)),
        comment: Some(
            "erosions ' \"; DELETE FROM audit;\nsecond line\twith tab — ü ∑ 🦴 \\ end".into(),
        ),
    };
    r.commit_reading(name, "C0001", &reading, None)
        .expect("commit");
    let na = Reading {
        assessment: Assessment::NotAssessable {
            reason: "rotated ' ; \" \\".into(),
        },
        comment: None,
    };
    r.commit_reading(name, "C0002", &na, None).expect("na");
    let all = f.coord().all_readings().expect("all");
    assert_eq!(all[0].reader, name);
    assert_eq!(all[0].reading, reading);
    assert_eq!(all[1].reading, na);
    let audit = f.coord().audit().expect("audit");
    let rows: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "create_reading")
        .collect();
    assert_eq!(rows[0].actor, name);
    assert_eq!(
        rows[0].new_value.as_deref(),
        Some(serde_json::to_string(&reading).expect("json").as_str())
    );
    assert_eq!(
        rows[1].new_value.as_deref(),
        Some(serde_json::to_string(&na).expect("json").as_str())
    );
    assert!(f.coord.verify().expect("verify").is_empty());
}

fn crops_are_stored_audited_and_frozen_by_the_lock(b: &dyn Backend) {
    let f = b.study(Protocol::Single, &[("r", Role::Reader)], 2);
    let c = f.coord();
    let rect = CropRect {
        x: 10,
        y: 20,
        width: 300,
        height: 200,
    };
    c.set_crop("coordinator", "C0001", Some(rect))
        .expect("crop");
    assert_eq!(c.crop("C0001").expect("crop"), Some(rect));
    assert_eq!(f.r("r").crop("C0001").expect("reader sees it"), Some(rect));
    assert!(
        c.set_crop("coordinator", "C0001", Some(CropRect { width: 0, ..rect }))
            .is_err()
    );
    c.set_crop("coordinator", "C0001", None).expect("clear");
    assert_eq!(c.crop("C0001").expect("crop"), None);
    let crops: Vec<_> = c
        .audit()
        .expect("audit")
        .into_iter()
        .filter(|a| a.action == "set_crop")
        .collect();
    assert_eq!(crops.len(), 2);
    assert_eq!(crops[0].new_value.as_deref(), Some("10,20,300,200"));
    c.lock().expect("lock");
    assert!(matches!(
        c.set_crop("coordinator", "C0002", Some(rect)),
        Err(StoreError::Locked)
    ));
}

fn a_busy_study_verifies_intact(b: &dyn Backend) {
    let f = b.study(
        Protocol::TwoCentral,
        &[
            ("c1", Role::Central1),
            ("c2", Role::Central2),
            ("adj", Role::Adjudicator),
        ],
        6,
    );
    for i in 1..=6 {
        let case = format!("C{i:04}");
        f.r("c1")
            .commit_reading("c1", &case, &graded(G::Minimal, G::Minimal), None)
            .expect("c1");
        let g = if i % 2 == 0 { G::Normal } else { G::Minimal };
        f.r("c2")
            .commit_reading("c2", &case, &graded(g, G::Minimal), None)
            .expect("c2");
    }
    f.r("adj")
        .commit_reading("adj", "C0002", &graded(G::Normal, G::Normal), Some("first"))
        .expect("adj");
    f.r("c1")
        .commit_reading(
            "c1",
            "C0003",
            &graded(G::Normal, G::Normal),
            Some("recheck"),
        )
        .expect("change");
    f.coord()
        .record_prediction("C0001", "m", 0.5)
        .expect("prediction");
    f.coord().lock().expect("lock");
    assert_eq!(f.coord.verify().expect("verify"), Vec::<String>::new());
    assert!(f.coord().audit().expect("audit").len() > 15);
}

fn archived_cases_keep_their_archive_and_bad_references_are_refused(b: &dyn Backend) {
    use sacro::session::ArchiveRef;
    let f = b.study(Protocol::Single, &[("ann", Role::Reader)], 1);
    let c = f.coord();
    let archive = ArchiveRef {
        url: "https://archive.example.org/dicom-web".into(),
        study_uid: "1.2.840.113619.2.55".into(),
        series_uid: "1.2.840.113619.2.55.1".into(),
    };
    let case = |sop: Option<&str>, a: ArchiveRef| NewCase {
        path: None,
        sop_instance_uid: sop.map(str::to_string),
        case_id: None,
        archive: Some(a),
    };
    let added = c
        .add_cases(&[case(Some("1.2.840.113619.2.55.1.7"), archive.clone())])
        .expect("archived case");
    assert_eq!(added[0].archive.as_ref(), Some(&archive));
    let listed = c.cases().expect("cases");
    let got = listed.iter().find(|k| k.id == added[0].id).expect("listed");
    assert_eq!(got.archive.as_ref(), Some(&archive));
    assert!(got.path.is_none());
    // The reader whose list holds it sees where it comes from.
    let mine = f.r("ann").case(&added[0].id).expect("reader's case");
    assert_eq!(mine.archive.as_ref(), Some(&archive));
    // Credentials in the URL, another scheme, bad UIDs, no SOP Instance UID: refused, nothing added.
    let with = |url: &str, study: &str, series: &str| ArchiveRef {
        url: url.into(),
        study_uid: study.into(),
        series_uid: series.into(),
    };
    for bad in [
        case(
            Some("1.2.3"),
            with(
                "https://user:pw@archive.example.org/dicom-web",
                "1.2",
                "1.3",
            ),
        ),
        case(
            Some("1.2.3"),
            with("ftp://archive.example.org", "1.2", "1.3"),
        ),
        case(
            Some("1.2.3"),
            with("https://archive.example.org/x y", "1.2", "1.3"),
        ),
        case(
            Some("1.2.3"),
            with(
                "https://archive.example.org",
                "1.2'; DROP TABLE cases",
                "1.3",
            ),
        ),
        case(
            Some("1..2"),
            with("https://archive.example.org", "1.2", "1.3"),
        ),
        case(None, archive.clone()),
    ] {
        let e = c
            .add_cases(std::slice::from_ref(&bad))
            .expect_err("refused");
        assert!(matches!(e, StoreError::Invalid(_)), "{bad:?}: {e}");
    }
    assert_eq!(c.cases().expect("cases").len(), 2);
    // In the dump a copy is made from.
    let dump = f.coord.dump().expect("dump");
    assert!(
        dump.cases
            .iter()
            .any(|k| k.archive.as_ref() == Some(&archive))
    );
}
