//! Defects a probe of the released binary found (issue "Hostile files, careless hands…"), each with its
//! reproduction: a study written over by its own export, a refused file changed by the refusal, a study
//! nobody may write, cut-offs out of order, script in a reader's name reaching report.html, formulas in
//! CSV cells, reader names that look alike, terminal escapes.

use std::path::{Path, PathBuf};
use std::process::Command;

use sacro::grading::{Assessment, JointGrade as G, JointGrades, Reading};
use sacro::session::{NewCase, Protocol, Role, SqliteStore, StoreError, StudyStore};

fn sacro() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sacro"))
}

fn graded(l: G, r: G, comment: Option<&str>) -> Reading {
    Reading {
        assessment: Assessment::Graded(JointGrades::new(l, r)),
        comment: comment.map(str::to_string),
    }
}

/// A study with `readers` (all plain readers, single-reader protocol) and three cases.
fn study(dir: &Path, readers: &[&str]) -> (PathBuf, SqliteStore) {
    let path = dir.join("study.sacro");
    let store = SqliteStore::create(&path, Protocol::Single, 5).expect("create");
    for r in readers {
        store.add_reader(r, Role::Reader).expect("reader");
    }
    let cases: Vec<NewCase> = (1..=3)
        .map(|i| NewCase {
            path: None,
            sop_instance_uid: Some(format!("2.25.{i}")),
            case_id: None,
            archive: None,
        })
        .collect();
    store.add_cases(&cases).expect("cases");
    (path, store)
}

/// [`study`] with one reader, `ann`, who has read case C0001; the store closed.
fn study_with_one_reading(dir: &Path) -> PathBuf {
    let (path, store) = study(dir, &["ann"]);
    store
        .commit_reading(
            "ann",
            "C0001",
            &graded(G::Unequivocal, G::Normal, None),
            None,
        )
        .expect("commit");
    path
}

/// `sacro study export STUDY --out OUT`.
fn export(study: &Path, out: &Path) -> std::process::Output {
    sacro()
        .args(["study", "export"])
        .arg(study)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run sacro study export")
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read")
}

/// Every file in `dir`, with its bytes (to show that nothing was created or changed).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let b = std::fs::read(&p).unwrap_or_default();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// `sacro study export s.sacro --out s.sacro` replaced the study with a CSV (readings and audit gone).
#[test]
fn an_export_never_writes_over_a_study() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = study_with_one_reading(tmp.path());
    let before = bytes(&path);
    let out = export(&path, &path);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database"), "{err}");
    assert_eq!(bytes(&path), before, "the study changed");
    assert_eq!(
        SqliteStore::open(&path)
            .expect("still a study")
            .all_readings()
            .expect("readings")
            .len(),
        1
    );
    // Another study as the target is refused too; a fresh file is written whole.
    std::fs::create_dir(tmp.path().join("o")).expect("mkdir");
    let (other, _) = study(&tmp.path().join("o"), &["bob"]);
    let other_before = bytes(&other);
    let out = export(&path, &other);
    assert!(!out.status.success());
    assert_eq!(bytes(&other), other_before);
    let csv = tmp.path().join("readings.csv");
    let out = export(&path, &csv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(&csv)
            .expect("csv")
            .contains("C0001")
    );
}

/// `study status` on a foreign SQLite database switched it to WAL mode; on an empty file it made a 4 KB
/// database. Refused files must stay exactly as they were, with nothing created beside them.
#[test]
fn refused_files_are_not_changed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let foreign = tmp.path().join("other.sacro");
    {
        let c = rusqlite::Connection::open(&foreign).expect("sqlite");
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("table");
    }
    let empty = tmp.path().join("empty.sacro");
    std::fs::write(&empty, b"").expect("empty");
    let text = tmp.path().join("text.sacro");
    std::fs::write(&text, b"just some text, not a database").expect("text");
    let before = snapshot(tmp.path());
    for p in [&foreign, &empty, &text] {
        match SqliteStore::open(p) {
            Err(StoreError::Corrupt { path, .. }) => assert_eq!(&path, p),
            other => panic!("{}: {other:?}", p.display()),
        }
        let out = sacro()
            .args(["study", "status"])
            .arg(p)
            .output()
            .expect("run");
        assert!(!out.status.success());
    }
    assert_eq!(snapshot(tmp.path()), before, "a refused file changed");
    let mode: String = rusqlite::Connection::open(&foreign)
        .expect("sqlite")
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "delete");
}

/// A study opened read-only (or one this user may not write) shows everything and refuses every write
/// with a clear error, leaving the file as it was.
#[test]
fn a_read_only_study_reads_and_refuses_writes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = study_with_one_reading(tmp.path());
    let before = bytes(&path);
    let ro = SqliteStore::open_read_only(&path).expect("open read-only");
    assert!(ro.is_read_only());
    assert_eq!(ro.all_readings().expect("read").len(), 1);
    assert_eq!(ro.worklist("ann").expect("worklist").len(), 3);
    let e = ro
        .commit_reading("ann", "C0002", &graded(G::Normal, G::Normal, None), None)
        .expect_err("refused");
    assert!(matches!(e, StoreError::ReadOnly(_)), "{e}");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(ro.lock().is_err());
    assert!(ro.add_reader("bob", Role::Reader).is_err());
    drop(ro);
    assert_eq!(bytes(&path), before);
    // Without write permission the plain open is read-only too (root may write anything: then the
    // permission cannot take it away, and the explicit read-only open above is what is checked).
    let mut perms = std::fs::metadata(&path).expect("meta").permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).expect("chmod");
    let writable = std::fs::OpenOptions::new().append(true).open(&path).is_ok();
    let opened = SqliteStore::open(&path).expect("open a write-protected study");
    assert_eq!(opened.is_read_only(), !writable);
}

/// Cut-offs in the wrong order (sensitive above specific) were accepted silently.
#[test]
fn cutoffs_out_of_order_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let scores = tmp.path().join("scores.csv");
    let truth = tmp.path().join("truth.csv");
    let mut s = String::from("case,probability\n");
    let mut t = String::from("case,label\n");
    for i in 0..20 {
        s.push_str(&format!("C{i},{}\n", f64::from(i) / 20.0));
        t.push_str(&format!("C{i},{}\n", u8::from(i >= 10)));
    }
    std::fs::write(&scores, s).expect("scores");
    std::fs::write(&truth, t).expect("truth");
    let run = |cutoffs: &str| {
        sacro()
            .args(["stats", "--json", "--predictions"])
            .arg(&scores)
            .arg("--truth")
            .arg(&truth)
            .args(["--cutoffs", cutoffs])
            .output()
            .expect("run")
    };
    let bad = run("0.9,0.5,0.1");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("out of order"), "{err}");
    let good = run("0.1,0.5,0.9");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}

/// A reader named `<img src=x onerror=alert(1)>` was written unescaped into report.html; names and
/// comments starting with `=`, `+`, `-`, `@` went verbatim into CSVs a spreadsheet runs.
#[test]
fn names_reach_reports_and_csvs_as_text() {
    let tmp = tempfile::tempdir().expect("tmp");
    let evil = "<img src=x onerror=alert(1)>";
    let formula = "=HYPERLINK(\"http://x\",\"y\")";
    let (path, store) = study(tmp.path(), &[evil, formula, "@SUM(A1)"]);
    for (i, r) in [evil, formula, "@SUM(A1)"].iter().enumerate() {
        for c in 1..=3 {
            let l = if (c + i) % 2 == 0 {
                G::Unequivocal
            } else {
                G::Normal
            };
            store
                .commit_reading(
                    r,
                    &format!("C000{c}"),
                    &graded(l, l, Some("+1 see <script>alert(2)</script>")),
                    None,
                )
                .expect("commit");
        }
    }
    for c in 1..=3 {
        store
            .record_prediction(&format!("C000{c}"), "m", f64::from(c) / 4.0)
            .expect("prediction");
    }
    drop(store);
    // The export: every cell a spreadsheet would run starts with an apostrophe.
    let csv = tmp.path().join("export.csv");
    let out = export(&path, &csv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_path(&csv).expect("csv");
    let mut cells = 0;
    for rec in reader.records() {
        for cell in rec.expect("record").iter() {
            cells += 1;
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a formula cell: {cell:?}"
            );
        }
    }
    assert!(cells > 0);
    let text = std::fs::read_to_string(&csv).expect("csv");
    assert!(text.contains("'=HYPERLINK") && text.contains("'@SUM(A1)") && text.contains("'+1 see"));
    // The report: the names are text in report.html, never markup.
    let report = tmp.path().join("report");
    let scores = tmp.path().join("scores.csv");
    std::fs::write(
        &scores,
        "case,probability\nC0001,0.25\nC0002,0.5\nC0003,0.75\n",
    )
    .expect("scores");
    let truth = tmp.path().join("truth.csv");
    std::fs::write(&truth, "case,label\nC0001,0\nC0002,1\nC0003,0\n").expect("truth");
    let out = sacro()
        .args(["stats", "--predictions"])
        .arg(&scores)
        .arg("--truth")
        .arg(&truth)
        .arg("--readers")
        .arg(&csv)
        .args(["--cutoffs", "0.3,0.5,0.7", "--out"])
        .arg(&report)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(report.join("report.html")).expect("html");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the name is missing"
    );
    assert!(
        !html.contains("<img") && !html.contains("<script"),
        "markup in the report"
    );
    for f in std::fs::read_dir(&report).expect("report") {
        let p = f.expect("entry").path();
        if p.extension().is_some_and(|e| e == "csv") {
            let mut r = csv::Reader::from_path(&p).expect("csv");
            for rec in r.records() {
                for cell in rec.expect("record").iter() {
                    let formula = cell.starts_with(['=', '@', '\t', '\r'])
                        || (cell.starts_with(['+', '-']) && cell.parse::<f64>().is_err());
                    assert!(!formula, "{}: formula cell {cell:?}", p.display());
                }
            }
        }
    }
}

/// Reader names that differ only in case, or carry control or bidirectional-override characters, were
/// accepted; so were control characters in comments and reasons.
#[test]
fn look_alike_names_and_control_characters_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_, store) = study(tmp.path(), &["Dr One"]);
    for name in [
        "dr one",
        "DR ONE",
        "Dr\u{202E}eno",
        "Dr\u{1b}[31mOne",
        " Dr One ",
    ] {
        assert!(
            store.add_reader(name, Role::Reader).is_err(),
            "{name:?} accepted"
        );
    }
    assert_eq!(store.readers().expect("readers").len(), 1);
    for comment in ["a\u{7}b", "\u{1b}]0;x\u{7}", "a\u{2066}b"] {
        let e = store
            .commit_reading(
                "Dr One",
                "C0001",
                &graded(G::Normal, G::Normal, Some(comment)),
                None,
            )
            .expect_err("control character");
        assert!(e.to_string().contains("character"), "{e}");
    }
    // A multi-line comment is fine.
    store
        .commit_reading(
            "Dr One",
            "C0001",
            &graded(G::Normal, G::Normal, Some("line one\nline two")),
            None,
        )
        .expect("multi-line comment");
}

/// A Body Part Examined carrying a terminal escape sequence reached the terminal raw.
#[test]
fn printed_text_cannot_drive_the_terminal() {
    use dicom_like::write_with_body_part;
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("x.dcm");
    write_with_body_part(&file, "PELVIS\u{1b}]0;owned\u{7}\u{1b}[2J");
    let out = sacro().arg("info").arg(&file).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("\\u{1b}"), "{text}");
}

mod dicom_like {
    /// A real test film with its Body Part Examined replaced (through `sacro convert`'s sibling: the
    /// phantom writer would do, but the real file keeps this independent of the generator).
    pub fn write_with_body_part(out: &std::path::Path, value: &str) {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/dicom/real/CR_spine_6154.dcm");
        let bytes = std::fs::read(&src).expect("test film");
        // (0018,0015) Body Part Examined, explicit VR little endian: tag, "CS", 2-byte length, value.
        let tag = [0x18u8, 0x00, 0x15, 0x00];
        let mut v = value.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(b' ');
        }
        let mut element = tag.to_vec();
        element.extend_from_slice(b"CS");
        element.extend_from_slice(&(v.len() as u16).to_le_bytes());
        element.extend_from_slice(&v);
        let at = bytes
            .windows(4)
            .position(|w| w == tag)
            .expect("Body Part Examined in the test film");
        let old_len = u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]) as usize;
        let mut outb = bytes[..at].to_vec();
        outb.extend_from_slice(&element);
        outb.extend_from_slice(&bytes[at + 8 + old_len..]);
        std::fs::write(out, outb).expect("write");
    }
}

/// With the sqlite3 shell, `UPDATE readings SET left_grade=4` changed a reading with no audit row,
/// `UPDATE meta … locked='0'` unlocked a locked study, and after `DROP TRIGGER` audit rows could be
/// rewritten; Sacro showed all of it as genuine. Now `verify` (and every open) says so.
#[test]
fn tampering_with_the_file_is_detected() {
    let tmp = tempfile::tempdir().expect("tmp");
    let make = |name: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        let (path, store) = study(&dir, &["ann", "bob"]);
        for (r, c) in [("ann", "C0001"), ("bob", "C0001"), ("ann", "C0002")] {
            store
                .commit_reading(r, c, &graded(G::Minimal, G::Normal, None), None)
                .expect("commit");
        }
        store
            .commit_reading(
                "ann",
                "C0001",
                &graded(G::Unequivocal, G::Normal, None),
                Some("second look"),
            )
            .expect("change");
        (path, store)
    };
    let verify = |path: &Path| {
        let out = sacro()
            .args(["study", "verify"])
            .arg(path)
            .output()
            .expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let sql = |path: &Path, sql: &str| {
        rusqlite::Connection::open(path)
            .expect("sqlite")
            .execute_batch(sql)
            .expect("tamper");
    };
    // Intact: nothing found, by the API and the command.
    let (clean, store) = make("clean");
    assert_eq!(store.verify().expect("verify"), Vec::<String>::new());
    store.lock().expect("lock");
    assert_eq!(store.verify().expect("verify"), Vec::<String>::new());
    drop(store);
    let (ok, text) = verify(&clean);
    assert!(ok && text.contains("intact"), "{text}");

    // A reading changed with SQL.
    let (p, store) = make("grade");
    drop(store);
    sql(
        &p,
        "UPDATE readings SET left_grade = 4 WHERE case_id = 'C0002'",
    );
    let (ok, text) = verify(&p);
    assert!(!ok && text.contains("case C0002 by ann differs"), "{text}");
    // Every command warns on open.
    let status = sacro()
        .args(["study", "status"])
        .arg(&p)
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&status.stderr).contains("changed outside Sacro"));

    // A reading added or removed without the trail.
    let (p, store) = make("delete");
    drop(store);
    sql(
        &p,
        "DELETE FROM readings WHERE case_id = 'C0001' AND reader_id = (SELECT id FROM readers WHERE name = 'bob')",
    );
    let (ok, text) = verify(&p);
    assert!(
        !ok && text.contains("case C0001 by bob") && text.contains("missing"),
        "{text}"
    );

    // A locked study unlocked.
    let (p, store) = make("unlock");
    store.lock().expect("lock");
    drop(store);
    sql(&p, "UPDATE meta SET value = '0' WHERE key = 'locked'");
    let (ok, text) = verify(&p);
    assert!(!ok && text.contains("marked unlocked"), "{text}");

    // An audit row rewritten after dropping the trigger (the reason of the change), and the last row
    // removed.
    let (p, store) = make("rewrite");
    drop(store);
    sql(
        &p,
        "DROP TRIGGER audit_no_update; UPDATE audit SET reason = 'typo' WHERE action = 'change_reading';",
    );
    let (ok, text) = verify(&p);
    assert!(
        !ok && text.contains("does not match the audit chain"),
        "{text}"
    );
    let (p, store) = make("truncate");
    drop(store);
    sql(
        &p,
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit);",
    );
    let (ok, text) = verify(&p);
    assert!(!ok && text.contains("head differs"), "{text}");
}

/// `convert` on a folder holding `a.dcm`, `a.DCM` and `a` reported "converted 3" and wrote one `a.tiff`;
/// an output folder inside the input folder was converted again on the next run.
#[test]
fn convert_writes_one_output_per_input_and_skips_its_own_output() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    let film = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/dicom/real/CR_spine_6154.dcm");
    for name in ["a.dcm", "a.DCM", "a"] {
        std::fs::copy(&film, input.join(name)).expect("copy");
    }
    let out = input.join("out");
    let run = || {
        let o = sacro()
            .arg("convert")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let first = run();
    assert!(first.contains("converted 3, failed 0"), "{first}");
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["a.tiff", "a_2.tiff", "a_3.tiff"]);
    let second = run();
    assert!(second.contains("converted 3, failed 0"), "{second}");
    assert_eq!(std::fs::read_dir(&out).expect("out").count(), 3);
}

/// `sacro info /dev/zero` read without limit (8 GB in 8 s): the type is told from the first bytes and
/// nothing more is read. Run under a 1 GiB address-space limit, where reading on would abort.
#[test]
fn a_device_or_a_non_image_is_not_read_whole() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 1048576; exec '{}' info /dev/zero",
            env!("CARGO_BIN_EXE_sacro")
        ))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("first bytes"),
        "{err}"
    );
}

/// A chest radiograph got the demo model's "probability 0.622" and a definite call at the sensitive
/// cut-off with no word that the model is for pelvic films. Now its result comes with a warning (a CSV
/// column and a line on standard error); pelvic films get none.
#[test]
fn a_film_outside_the_model_s_scope_is_flagged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let real = root.join("../shared/testdata/dicom/real");
    let out = tmp.path().join("p.csv");
    let o = sacro()
        .arg("predict")
        .arg("--model")
        .arg(root.join("models/demo-phantom"))
        .arg("--out")
        .arg(&out)
        .arg(root.join("assets/demo/P0001.dcm"))
        .arg(real.join("RG1_J2KI.dcm"))
        .arg(real.join("MR_small.dcm"))
        .arg(real.join("SC_rgb_rle.dcm"))
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("outside what the model is for"), "{err}");
    let mut r = csv::Reader::from_path(&out).expect("csv");
    let col = r
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == "scope_warning")
        .expect("scope_warning column");
    let warnings: std::collections::HashMap<String, String> = r
        .records()
        .map(|x| {
            let x = x.expect("row");
            (x[0].to_string(), x[col].to_string())
        })
        .collect();
    assert_eq!(warnings["P0001"], "", "a pelvic phantom is in scope");
    assert!(warnings["RG1_J2KI"].contains("CHEST"), "{warnings:?}");
    assert!(warnings["MR_small"].contains("modality MR"), "{warnings:?}");
    assert!(warnings["SC_rgb_rle"].contains("colour"), "{warnings:?}");
}

/// On a tiny set (4 positive, 3 negative cases) `sacro stats` refused everything, because the default
/// cross-validated cut-offs need five of each. Now it reports what can be computed and says why the
/// cut-offs were chosen without cross-validation.
#[test]
fn stats_on_a_tiny_set_report_what_can_be_computed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let scores = tmp.path().join("scores.csv");
    let truth = tmp.path().join("truth.csv");
    let p = [0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1];
    let y = [1, 1, 1, 1, 0, 0, 0];
    let mut s = String::from("case,probability\n");
    let mut t = String::from("case,label\n");
    for (i, (p, y)) in p.iter().zip(y).enumerate() {
        s.push_str(&format!("C{i},{p}\n"));
        t.push_str(&format!("C{i},{y}\n"));
    }
    std::fs::write(&scores, s).expect("scores");
    std::fs::write(&truth, t).expect("truth");
    let out = sacro()
        .args(["stats", "--json", "--predictions"])
        .arg(&scores)
        .arg("--truth")
        .arg(&truth)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let method = a["cutoff_method"].as_str().expect("method");
    assert!(
        method.contains("too few cases") && method.contains("4 positive, 3 negative"),
        "{method}"
    );
    // AUC by hand: 12 pairs, the negative 0.6 outranks the positive 0.3 once: 11/12.
    let auc = a["auc_delong"]["value"].as_f64().expect("auc");
    assert!((auc - 11.0 / 12.0).abs() < 1e-12, "{auc}");
}

/// A file name that is not UTF-8 made `info --json` fail on the whole folder without naming the file,
/// and `add-cases` store a path with replacement characters that no longer existed. Such names are now
/// skipped, shown escaped, and everything else is read.
#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_are_named_and_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("films");
    std::fs::create_dir(&dir).expect("mkdir");
    let film = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/dicom/real/CR_spine_6154.dcm");
    std::fs::copy(&film, dir.join("good.dcm")).expect("copy");
    std::fs::copy(&film, dir.join(std::ffi::OsStr::from_bytes(b"bad\xff.dcm"))).expect("copy");
    let out = sacro()
        .args(["info", "--json"])
        .arg(&dir)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().any(|v| {
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("bad\\xFF.dcm"))
    }));
    assert!(
        lines.iter().any(|v| v["width"].as_u64().is_some()),
        "{text}"
    );
    // add-cases: the good film becomes a case, the other is named and left out.
    let (study_path, _) = study(tmp.path(), &["ann"]);
    let out = sacro()
        .args(["study", "add-cases"])
        .arg(&study_path)
        .arg(&dir)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad\\xFF.dcm") && err.contains("not valid UTF-8"),
        "{err}"
    );
    let store = SqliteStore::open(&study_path).expect("open");
    let cases = store.cases().expect("cases");
    assert_eq!(cases.len(), 4, "three made by the helper and the good film");
    assert!(cases.iter().all(|c| {
        c.path
            .as_ref()
            .is_none_or(|p| !p.to_string_lossy().contains('\u{FFFD}'))
    }));
}

/// An 8-bit PNG went through the automatic percentile window before the model, so a model trained in
/// PyTorch or fastai on exported PNGs (pixels / 255) saw other inputs in Sacro. Display-ready 8-bit
/// images now go as stored (v / 255, what torchvision's `ToTensor` gives), exactly as through a DICOM
/// whose window maps v to v / 255; the card records the policy and `predict` follows it.
#[test]
fn eight_bit_images_reach_the_model_as_stored() {
    use sacro::imaging::{self, LoadOptions, Window, WindowPolicy, WindowPreset};
    let tmp = tempfile::tempdir().expect("tmp");
    let (w, h) = (96u32, 80u32);
    // A skewed histogram (mostly dark, a few bright pixels), as an exported radiograph has.
    let values: Vec<u8> = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            if (x * 7 + y * 13) % 53 == 0 {
                250
            } else {
                (30 + (x + 2 * y) % 90) as u8
            }
        })
        .collect();
    let png = tmp.path().join("export.png");
    image::GrayImage::from_raw(w, h, values.clone())
        .expect("image")
        .save(&png)
        .expect("png");
    let stored: Vec<u16> = values.iter().map(|&v| v.into()).collect();
    let windows = [WindowPreset {
        window: Window {
            // PS3.3 C.11.2.1.2.1 LINEAR: ((v - (c - 0.5)) / (w - 1) + 0.5) = v / 255 for c = 128, w = 256.
            center: 128.0,
            width: 256.0,
            function: sacro::imaging::VoiFunction::Linear,
        },
        explanation: None,
    }];
    let dcm = tmp.path().join("export.dcm");
    imaging::dicom_write::write_dicom(
        &dcm,
        &imaging::dicom_write::DicomImageSpec {
            width: w,
            height: h,
            pixels: &stored,
            bits_stored: 8,
            photometric: imaging::Photometric::Monochrome2,
            modality: "DX",
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.1",
            study_uid: "2.25.1",
            series_uid: "2.25.2",
            sop_instance_uid: "2.25.3",
            patient_name: "SYNTHETIC^WINDOW",
            patient_id: "SYN0",
            series_description: "synthetic test image",
            body_part: "PELVIS",
            view_position: "AP",
            study_date: "20260101",
            pixel_spacing_mm: (0.2, 0.2),
            windows: &windows,
            burned_in_annotation: false,
            deflate: false,
        },
    )
    .expect("dicom");
    let expected: Vec<f32> = values.iter().map(|&v| f32::from(v) / 255.0).collect();
    let png_r = imaging::load(&png, &LoadOptions::default()).expect("png");
    assert!(png_r.is_display_ready_8bit());
    assert_eq!(
        png_r.model_unit(WindowPolicy::AsStored8Bit).pixels,
        expected
    );
    // The old behaviour (kept for cards written before the policy): far from what PyTorch sees.
    let auto = png_r.model_unit(WindowPolicy::FileOrAuto).pixels;
    let rel = (auto
        .iter()
        .zip(&expected)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        / expected.iter().map(|&b| f64::from(b).powi(2)).sum::<f64>())
    .sqrt();
    assert!(rel > 0.05, "auto window {rel}");
    // A DICOM with its own window is not "as stored": its window is used, and this one maps v to v / 255.
    let dcm_r = imaging::load(&dcm, &LoadOptions::default()).expect("dcm");
    assert!(!dcm_r.is_display_ready_8bit());
    let via_window = dcm_r.model_unit(WindowPolicy::AsStored8Bit).pixels;
    let worst = via_window
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "window 128/256 gives v/255 ({worst})");

    // Cards: written before the policy → the old behaviour; new cards → as stored.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = root.join("models/demo-phantom");
    let card_text = std::fs::read_to_string(demo.join("model.json")).expect("card");
    let card: sacro::model::card::ModelCard = serde_json::from_str(&card_text).expect("card");
    assert_eq!(card.preprocess.window, WindowPolicy::FileOrAuto);
    assert_eq!(
        sacro::model::preprocess::Preprocess::imagenet(224).window,
        WindowPolicy::AsStored8Bit
    );
    // `predict` follows the card: with "as stored", the PNG and the DICOM give the same probability.
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).expect("dir");
    std::fs::copy(
        demo.join("weights.safetensors"),
        model.join("weights.safetensors"),
    )
    .expect("w");
    let mut json: serde_json::Value = serde_json::from_str(&card_text).expect("json");
    json["preprocess"]["window"] = "as_stored_8bit".into();
    std::fs::write(model.join("model.json"), json.to_string()).expect("card");
    let out = tmp.path().join("p.csv");
    let o = sacro()
        .args(["predict", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .arg(&png)
        .arg(&dcm)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut r = csv::Reader::from_path(&out).expect("csv");
    let p: Vec<f64> = r
        .records()
        .map(|x| x.expect("row")[2].parse().expect("probability"))
        .collect();
    assert_eq!(p.len(), 2);
    assert!((p[0] - p[1]).abs() < 1e-5, "{p:?}");
}

/// A study named patients: film paths as given (`PACS/DOE_JOHN_19700101_MRN12345/img3.dcm`) were printed
/// by `read --next` and `predict`. Paths are stored relative to the study's folder, never printed in a
/// reading session, and absent from every export; `--show-path(s)` shows them on the reader's own machine.
#[test]
fn identifying_paths_stay_out_of_reading_sessions_and_exports() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let folder = tmp.path().join("PACS/DOE_JOHN_19700101_MRN12345");
    std::fs::create_dir_all(&folder).expect("dir");
    let film = folder.join("img3.dcm");
    std::fs::copy(root.join("assets/demo/P0001.dcm"), &film).expect("copy");
    let study = tmp.path().join("study.sacro");
    let store = SqliteStore::create(&study, Protocol::Single, 5).expect("create");
    store.add_reader("ann", Role::Reader).expect("reader");
    drop(store);
    let run = |args: &[&str]| {
        let o = sacro()
            .args(args)
            .current_dir(tmp.path())
            .output()
            .expect("run");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let film_arg = film.to_str().expect("utf-8 temp path");
    run(&["study", "add-cases", "study.sacro", film_arg]);
    let store = SqliteStore::open(&study).expect("open");
    let cases = store.cases().expect("cases");
    let stored = cases[0].path.clone().expect("path");
    assert!(stored.is_relative(), "{}", stored.display());
    store
        .commit_reading(
            "ann",
            &cases[0].id,
            &graded(G::Normal, G::Normal, None),
            None,
        )
        .expect("commit");
    store.add_reader("bob", Role::Reader).expect("reader");
    drop(store);

    let next = run(&["read", "study.sacro", "--reader", "bob", "--next"]);
    assert!(
        next.contains("C0001") || next.contains(&cases[0].id),
        "{next}"
    );
    assert!(
        !next.contains("DOE_JOHN") && !next.contains("img3"),
        "{next}"
    );
    let shown = run(&[
        "read",
        "study.sacro",
        "--reader",
        "bob",
        "--next",
        "--show-path",
    ]);
    assert!(shown.contains("DOE_JOHN"), "asked for: {shown}");

    let mut everything = String::new();
    run(&["study", "export", "study.sacro", "--out", "export.csv"]);
    for f in ["export.csv", "export_consensus.csv"] {
        everything += &std::fs::read_to_string(tmp.path().join(f)).expect("export");
    }
    everything += &run(&["study", "audit", "study.sacro", "--json"]);
    everything += &run(&["study", "consensus", "study.sacro", "--json"]);
    everything += &run(&["study", "status", "study.sacro", "--json"]);
    run(&["predict", "--out", "p.csv", film_arg]);
    everything += &std::fs::read_to_string(tmp.path().join("p.csv")).expect("predictions");
    assert!(
        !everything.contains("DOE_JOHN") && !everything.contains("MRN12345"),
        "{everything}"
    );
    run(&["predict", "--show-paths", "--out", "q.csv", film_arg]);
    let q = std::fs::read_to_string(tmp.path().join("q.csv")).expect("predictions");
    assert!(q.contains("DOE_JOHN"), "asked for: {q}");
}
