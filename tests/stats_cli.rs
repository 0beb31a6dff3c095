//! `sacro stats` end to end: the seed study's validation numbers through the whole command, cut-offs from a
//! validation set applied unchanged, a study file as input, the report files, and bad input.

use std::path::Path;
use std::process::{Command, Output};

use sacro::stats::cutoffs::{Targets, cross_validated};

fn sacro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args(args)
        .output()
        .expect("run sacro")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

/// 229 cases like the seed study's validation set: at a balanced cut-off of 0.5 the calls are 132 TP,
/// 18 FN, 75 TN, 4 FP.
fn seed_study_csvs(dir: &Path) -> (String, String) {
    let mut pred = String::from("case,probability\n");
    let mut truth = String::from("case,label\n");
    let groups = [(132, 1, 0.8), (18, 1, 0.4), (75, 0, 0.2), (4, 0, 0.6)];
    let mut i = 0;
    for (n, label, p) in groups {
        for _ in 0..n {
            i += 1;
            pred.push_str(&format!("V{i:03},{p}\n"));
            truth.push_str(&format!("V{i:03},{label}\n"));
        }
    }
    let (p, t) = (dir.join("pred.csv"), dir.join("truth.csv"));
    write(&p, &pred);
    write(&t, &truth);
    (
        p.to_string_lossy().into_owned(),
        t.to_string_lossy().into_owned(),
    )
}

#[test]
fn seed_study_validation_numbers_end_to_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (p, t) = seed_study_csvs(tmp.path());
    let out = tmp.path().join("report");
    let o = sacro(&[
        "stats",
        "--predictions",
        &p,
        "--truth",
        &t,
        "--cutoffs",
        "0.3,0.5,0.7",
        "--json",
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let balanced = &json["at_cutoffs"][1];
    assert_eq!(balanced["name"], "balanced");
    assert_eq!(balanced["confusion"]["tp"], 132);
    assert_eq!(balanced["confusion"]["fn_"], 18);
    assert_eq!(balanced["confusion"]["tn"], 75);
    assert_eq!(balanced["confusion"]["fp"], 4);
    let kappa = balanced["kappa"]["estimate"]["value"]
        .as_f64()
        .expect("kappa");
    assert!((kappa - 0.796).abs() < 5e-4, "kappa {kappa}");
    let acc = balanced["metrics"]["accuracy"]["value"]
        .as_f64()
        .expect("accuracy");
    assert!((acc - 0.904).abs() < 5e-4, "agreement {acc}");
    for f in sacro::report::report_files(&out) {
        assert!(f.is_file(), "{} missing", f.display());
    }
    let png = image::open(out.join("roc.png")).expect("roc.png decodes");
    assert_eq!((png.width(), png.height()), (720, 640));
    let html = std::fs::read_to_string(out.join("report.html")).expect("html");
    assert!(
        html.contains("<svg") && html.contains("<table>"),
        "self-contained HTML with tables"
    );
    let md = std::fs::read_to_string(out.join("report.md")).expect("md");
    assert!(md.contains("scikit-learn's step definition"));
}

#[test]
fn cutoffs_from_a_validation_set_are_applied_unchanged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut val = String::from("case,probability,label\n");
    let (mut y, mut s) = (Vec::new(), Vec::new());
    for i in 0..120u32 {
        let label = i % 3 != 0;
        let p = f64::from((i * 37) % 100) / 150.0 + if label { 0.3 } else { 0.0 };
        val.push_str(&format!("W{i},{p},{}\n", u8::from(label)));
        y.push(label);
        s.push(p);
    }
    let v = tmp.path().join("validation.csv");
    write(&v, &val);
    let (p, t) = seed_study_csvs(tmp.path());
    let o = sacro(&[
        "stats",
        "--predictions",
        &p,
        "--truth",
        &t,
        "--cutoffs-from",
        v.to_str().expect("utf8"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let want = cross_validated(&y, &s, Targets::default(), 5, 10, 1).expect("cv");
    assert_eq!(json["cutoffs"]["balanced"].as_f64(), Some(want.balanced));
    assert_eq!(json["cutoffs"]["sensitive"].as_f64(), Some(want.sensitive));
    assert!(
        json["cutoff_method"]
            .as_str()
            .expect("method")
            .contains("validation set (120 cases)")
    );
    // A JSON of cut-offs.
    let j = tmp.path().join("cutoffs.json");
    write(
        &j,
        r#"{"sensitive": 0.3, "balanced": 0.5, "specific": 0.7}"#,
    );
    let o = sacro(&[
        "stats",
        "--predictions",
        &p,
        "--truth",
        &t,
        "--cutoffs-from",
        j.to_str().expect("utf8"),
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["at_cutoffs"][1]["confusion"]["tp"], 132);
}

#[test]
fn a_study_file_is_an_input() {
    use sacro::grading::{JointGrade as G, Reading};
    use sacro::session::{NewCase, Protocol, Role, SqliteStore, StudyStore};
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("s.sacro");
    let store = SqliteStore::create(&path, Protocol::TwoCentral, 1).expect("create");
    store.add_reader("a", Role::Central1).expect("a");
    store.add_reader("b", Role::Central2).expect("b");
    let cases: Vec<NewCase> = (0..12)
        .map(|i| NewCase {
            path: None,
            sop_instance_uid: Some(format!("2.25.{i}")),
            case_id: None,
            archive: None,
        })
        .collect();
    store.add_cases(&cases).expect("cases");
    let mut pred = String::from("case,probability\n");
    for i in 1..=12u32 {
        let pos = i % 2 == 0;
        let g = if pos { G::Unequivocal } else { G::Normal };
        let other = if i == 3 { G::Ankylosis } else { g }; // case 3: readers disagree, unresolved
        store
            .commit_reading(
                "a",
                &format!("C{i:04}"),
                &Reading::graded(g, G::Normal),
                None,
            )
            .expect("a");
        store
            .commit_reading(
                "b",
                &format!("C{i:04}"),
                &Reading::graded(other, G::Normal),
                None,
            )
            .expect("b");
        pred.push_str(&format!(
            "C{i:04},{}\n",
            if pos {
                0.7 + f64::from(i) / 100.0
            } else {
                0.2 + f64::from(i) / 100.0
            }
        ));
    }
    drop(store);
    let p = tmp.path().join("pred.csv");
    write(&p, &pred);
    let o = sacro(&[
        "stats",
        "--predictions",
        p.to_str().expect("utf8"),
        "--study",
        path.to_str().expect("utf8"),
        "--json",
        "--cv-folds",
        "2",
        "--cv-repeats",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["n"], 11);
    assert_eq!(json["excluded_unlabelled"], 1);
    assert_eq!(json["auc_delong"]["value"], 1.0);
    assert_eq!(json["readers"].as_array().expect("readers").len(), 2);
}

#[test]
fn bad_input_names_the_file_and_row() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (p, t) = seed_study_csvs(tmp.path());
    let d = tmp.path();
    let run = |pred: &str, truth: &str| {
        let o = sacro(&["stats", "--predictions", pred, "--truth", truth, "--json"]);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    write(&d.join("nocol.csv"), "case,score\nV001,0.5\n");
    let e = run(d.join("nocol.csv").to_str().expect("utf8"), &t);
    assert!(
        e.contains("nocol.csv") && e.contains("missing column(s) probability"),
        "{e}"
    );
    write(
        &d.join("nan.csv"),
        "case,probability\nV001,0.5\nV002,high\n",
    );
    let e = run(d.join("nan.csv").to_str().expect("utf8"), &t);
    assert!(
        e.contains("nan.csv, row 3") && e.contains("\"high\""),
        "{e}"
    );
    write(&d.join("extra.csv"), "case,probability\nX999,0.5\n");
    let e = run(d.join("extra.csv").to_str().expect("utf8"), &t);
    assert!(
        e.contains("row 2") && e.contains("X999 is not in the truth file"),
        "{e}"
    );
    write(&d.join("one_class.csv"), "case,label\nV001,1\nV002,1\n");
    write(&d.join("p2.csv"), "case,probability\nV001,0.5\nV002,0.7\n");
    let e = run(
        d.join("p2.csv").to_str().expect("utf8"),
        d.join("one_class.csv").to_str().expect("utf8"),
    );
    assert!(e.contains("only positive cases"), "{e}");
    write(&d.join("badlabel.csv"), "case,label\nV001,1\nV002,yes\n");
    let e = run(
        d.join("p2.csv").to_str().expect("utf8"),
        d.join("badlabel.csv").to_str().expect("utf8"),
    );
    assert!(
        e.contains("badlabel.csv, row 3") && e.contains("must be 0, 1"),
        "{e}"
    );
    let e = run(d.join("p2.csv").to_str().expect("utf8"), &t);
    assert!(e.contains("has no prediction"), "{e}");
    let _ = p;
}

/// `sacro stats --mrmc`: the report files, and each bad reader study refused naming the row or the
/// reader, or handled as the methods define it.
#[test]
fn mrmc_reports_and_refuses_bad_reader_studies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let vd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/mrmc_vandyke.csv");
    let out = tmp.path().join("rep");
    let o = sacro(&[
        "stats",
        "--mrmc",
        vd.to_str().expect("utf-8"),
        "--call-at",
        "3",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(
        md.contains("F = 4.456319") && md.contains("15.259675"),
        "{md}"
    );
    assert!(md.contains("sensitivity (rating ≥ 3)"), "{md}");
    for f in [
        "mrmc.md",
        "mrmc.html",
        "mrmc.json",
        "mrmc_foms.csv",
        "mrmc_differences.csv",
        "mrmc_roc_1.png",
        "mrmc_roc_2.svg",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }

    // A study of two readers, two modalities and four cases, then broken one way at a time.
    let good = |extra: &str| {
        let mut s = String::from("reader,modality,case,truth,rating\n");
        for r in ["ann", "bob"] {
            for m in ["unaided", "aided"] {
                for (c, t, v) in [("C1", 1, 4), ("C2", 1, 3), ("C3", 0, 2), ("C4", 0, 1)] {
                    let v = if m == "aided" && r == "bob" && c == "C2" {
                        5
                    } else {
                        v
                    };
                    s.push_str(&format!("{r},{m},{c},{t},{v}\n"));
                }
            }
        }
        s + extra
    };
    let run = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        write(&p, text);
        sacro(&["stats", "--mrmc", p.to_str().expect("utf-8"), "--json"])
    };
    let refused = |name: &str, text: &str, expect: &str| {
        let o = run(name, text);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name} accepted");
        assert!(err.contains(expect) && err.contains(name), "{name}: {err}");
    };
    refused(
        "dup.csv",
        &good("ann,aided,C1,1,2\n"),
        "row 18: reader ann, modality aided, case C1 repeats row 6",
    );
    refused(
        "missing.csv",
        &good("").replace("bob,aided,C3,0,2\n", ""),
        "reader bob has no rating of case C3 in modality aided",
    );
    refused(
        "truth.csv",
        &good("").replace("ann,aided,C1,1,4", "ann,aided,C1,0,4"),
        "case C1: truth differs from row 2",
    );
    refused(
        "rating.csv",
        &good("").replace("ann,aided,C1,1,4", "ann,aided,C1,1,high"),
        "rating \"high\" is not a number",
    );
    let one_modality: String = good("")
        .lines()
        .filter(|l| !l.contains(",aided,"))
        .map(|l| format!("{l}\n"))
        .collect();
    refused("one_modality.csv", &one_modality, "at least two modalities");
    // A case without truth is left out and counted.
    let o = run("no_truth.csv", &good("").replace(",C4,0,", ",C4,,"));
    assert!(
        !o.status.success(),
        "one negative case is left: refused as too few"
    );
    let more = good("")
        + "ann,unaided,C5,0,2\nann,aided,C5,0,1\nbob,unaided,C5,0,2\nbob,aided,C5,0,2\n"
        + "ann,unaided,C6,,2\nann,aided,C6,,1\nbob,unaided,C6,,2\nbob,aided,C6,,2\n";
    let o = run("left_out.csv", &more);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j[0]["cases"][0], 5, "C6 without truth left out");
    // One reader: random readers undefined, fixed readers still analysed.
    let one_reader: String = good("")
        .lines()
        .filter(|l| !l.starts_with("bob,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let o = run("one_reader.csv", &one_reader);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        j[0]["rrrc"]["undefined"]
            .as_str()
            .expect("why")
            .contains("one reader")
    );
    // All ratings tied: every AUC is 0.5 and the tests are undefined, said so.
    let tied: String = good("")
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l}\n")
            } else {
                let (head, _) = l.rsplit_once(',').expect("row");
                format!("{head},3\n")
            }
        })
        .collect();
    let o = run("tied.csv", &tied);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j[0]["modality_means"][0], 0.5);
    assert!(j[0]["rrrc"]["test"].is_null() && j[0]["rrrc"]["undefined"].is_string());
}
