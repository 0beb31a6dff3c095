//! The desktop application driven through egui_kittest on a software GPU (wgpu on Mesa's lavapipe or
//! llvmpipe): opening a study, choosing a reader and grading by keyboard with the readings landing in the
//! store; blinding of the panel before commit; the shader's window/level output read back and compared
//! with `src/imaging`'s CPU window/level on a real CR film; a snapshot of the main screen.

use std::path::{Path, PathBuf};

use egui::Key;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use sacro::grading::JointGrade;
use sacro::gui::{Launch, SacroApp};
use sacro::imaging::voi::{DisplayTransform, Voi};
use sacro::session::{NewCase, Protocol, Role, SqliteStore, StudySettings, StudyStore};

mod common;
mod pg;
mod support;

const SIZE: [f32; 2] = [1280.0, 800.0];

fn harness(launch: Launch) -> Harness<'static, SacroApp> {
    let mut h = Harness::builder()
        .with_size(SIZE)
        .with_pixels_per_point(1.0)
        // A film or model finishing on a worker thread mid-run adds frames (new widgets are styled on
        // the frame after they first appear): enough steps to settle, still failing on a repaint loop.
        .with_max_steps(32)
        .wgpu()
        .build_eframe(move |cc| SacroApp::new(cc, launch));
    h.state_mut().wait_for_films();
    h.run();
    h
}

/// Chooses the reader by the combo box's accessible labels and waits for their first film.
fn pick_reader(h: &mut Harness<'static, SacroApp>, label: &str) {
    h.get_by_label("Reader").click();
    h.run();
    h.get_by_label(label).click();
    h.run();
    h.state_mut().wait_for_films();
    h.run();
}

/// A single-reader study over copies of the first `n` bundled demo phantoms.
fn practice_study(dir: &Path, n: usize) -> PathBuf {
    let cases = common::demo_cases(dir, n);
    let path = dir.join("practice.sacro");
    let store = SqliteStore::create(&path, Protocol::TwoCentral, 3).expect("study");
    store.add_reader("Dr A", Role::Central1).expect("reader");
    store.add_reader("Dr B", Role::Central2).expect("reader");
    store.add_cases(&cases).expect("cases");
    path
}

#[test]
fn a_reader_grades_three_cases_by_keyboard_and_the_store_has_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let study = practice_study(tmp.path(), 4);
    // Dr B has read case C0001..: so that Dr A's panel has something to stay blind to.
    {
        let store = SqliteStore::open(&study).expect("open");
        store
            .set_settings(StudySettings {
                reveal_readers_after_commit: true,
                reveal_model_after_commit: true,
            })
            .expect("settings");
        for c in ["C0001", "C0002", "C0003", "C0004"] {
            store
                .commit_reading(
                    "Dr B",
                    c,
                    &sacro::grading::Reading::graded(JointGrade::Normal, JointGrade::Normal),
                    None,
                )
                .expect("Dr B");
        }
    }
    let mut h = harness(Launch::Path(study.clone()));
    // Pick the reader by the combo box's label.
    pick_reader(&mut h, "Dr A (central1)");
    // Blinded: nothing of Dr B before the commit.
    h.get_by_label("hidden until you commit (blinded)");
    assert!(h.query_by_label_contains("Dr B (central2)").is_none());

    let mut committed = Vec::new();
    for (left, right) in [(Key::W, Key::A), (Key::R, Key::D), (Key::T, Key::G)] {
        let case = match &h.state().source {
            sacro::gui::app::Source::Study(s) => s.worklist[s.index].case_id.clone(),
            _ => panic!("no study open"),
        };
        h.key_press(left);
        h.key_press(right);
        h.run();
        h.key_press(Key::Enter);
        h.run();
        h.state_mut().wait_for_films();
        h.run();
        committed.push(case);
    }
    let store = SqliteStore::open(&study).expect("reopen");
    let mine: Vec<_> = store
        .all_readings()
        .expect("readings")
        .into_iter()
        .filter(|r| r.reader == "Dr A")
        .collect();
    assert_eq!(mine.len(), 3);
    let grades = |case: &str| {
        mine.iter()
            .find(|r| r.case_id == case)
            .and_then(|r| r.reading.grades())
            .map(|g| (g.left.value(), g.right.value()))
    };
    assert_eq!(grades(&committed[0]), Some((1, 0)));
    assert_eq!(grades(&committed[1]), Some((3, 2)));
    assert_eq!(grades(&committed[2]), Some((4, 4)));
    // Going back to a committed case reveals the other reader (the study allows it).
    let index = match &h.state().source {
        sacro::gui::app::Source::Study(s) => s
            .worklist
            .iter()
            .position(|e| e.case_id == committed[0])
            .expect("in list"),
        _ => unreachable!(),
    };
    h.state_mut().go_to(index);
    h.run();
    h.get_by_label_contains("Dr B (central2)");
}

#[test]
fn the_shader_window_level_equals_the_cpu_and_keys_change_it() {
    let film =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/dicom/real/RG3_UNCR.dcm");
    let mut h = harness(Launch::Path(film));
    // 1:1, so that every screen pixel is one film pixel.
    h.key_press(Key::Num0);
    h.run();
    let check = |h: &mut Harness<'static, SacroApp>, what: &str| -> Vec<u8> {
        let img = h.render().expect("render");
        let app = h.state();
        let film = app.current_film().expect("film");
        let view = app.view_state().expect("view").clone();
        let rect = app.last_view_rect.expect("viewer drawn");
        let display = DisplayTransform {
            voi: Voi::Window(view.window),
            invert: view.invert,
        };
        let origin = rect.center() - view.center.to_vec2();
        let r = &film.radiograph;
        let (mut n, mut worst, mut grey) = (0, 0i32, Vec::new());
        // A grid of screen pixels well inside the view.
        for sy in (rect.top() as u32 + 20..rect.bottom() as u32 - 20).step_by(7) {
            for sx in (rect.left() as u32 + 20..rect.right() as u32 - 20).step_by(7) {
                let ix = (sx as f32 + 0.5 - origin.x).floor();
                let iy = (sy as f32 + 0.5 - origin.y).floor();
                if ix < 0.0 || iy < 0.0 || ix >= r.width() as f32 || iy >= r.height() as f32 {
                    continue;
                }
                let v = r.image.get(ix as u32, iy as u32);
                let want = (display.apply(v) * 255.0).round() as i32;
                let got = i32::from(img.get_pixel(sx, sy)[0]);
                worst = worst.max((want - got).abs());
                grey.push(got as u8);
                n += 1;
            }
        }
        assert!(n > 5000, "{what}: {n} pixels compared");
        assert!(
            worst <= 1,
            "{what}: shader differs from the CPU by {worst} grey levels"
        );
        grey
    };
    let default = check(&mut h, "default window");
    // Full-range preset (key 4), then inversion (I): the output changes and still equals the CPU.
    h.key_press(Key::Num4);
    h.run();
    let full = check(&mut h, "full range");
    assert_ne!(default, full);
    h.key_press(Key::I);
    h.run();
    let inverted = check(&mut h, "inverted");
    assert_ne!(full, inverted);
}

#[test]
fn main_screen_snapshot() {
    let tmp = tempfile::tempdir().expect("tmp");
    let study = practice_study(tmp.path(), 2);
    let mut h = harness(Launch::Path(study));
    pick_reader(&mut h, "Dr A (central1)");
    h.key_press(Key::E);
    h.run();
    h.snapshot("main_screen");
}

/// `sacro` with no argument opens the demo as its demo reader on the first case not yet read, with its
/// film: not an empty screen asking who you are.
#[test]
fn the_demo_opens_as_its_reader_on_a_film() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(Launch::Nothing);
    h.state_mut().open_demo_in(tmp.path());
    h.state_mut().wait_for_films();
    h.run();
    match &h.state().source {
        sacro::gui::app::Source::Study(s) => {
            assert_eq!(s.mode.reader(), Some(sacro::gui::DEMO_READER));
            assert!(!s.worklist[s.index].done);
            assert!(s.worklist[..s.index].iter().all(|e| e.done));
        }
        _ => panic!("the demo study is not open"),
    }
    assert!(h.state().current_film().is_some(), "no film shown");
    h.get_by_label_contains("of 24 read");
    h.get_by_label("not yet read");
}

#[test]
fn the_demo_study_opens_with_a_reader_for_the_user() {
    let tmp = tempfile::tempdir().expect("tmp");
    let study = sacro::gui::demo_study_in(tmp.path()).expect("demo copied");
    // A second call reuses the copy.
    assert_eq!(sacro::gui::demo_study_in(tmp.path()).expect("again"), study);
    let mut h = harness(Launch::Path(study.clone()));
    h.get_by_label("Reader").click();
    h.run();
    h.get_by_label(&format!("{} (reader)", sacro::gui::DEMO_READER))
        .click();
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    h.get_by_label_contains("of 24 read");
    h.key_press(Key::E);
    h.key_press(Key::S);
    h.key_press(Key::Enter);
    h.run();
    let store = SqliteStore::open(&study).expect("open");
    let mine = store
        .all_readings()
        .expect("readings")
        .into_iter()
        .filter(|r| r.reader == sacro::gui::DEMO_READER)
        .count();
    assert_eq!(mine, 1);
}

#[test]
fn an_unreadable_film_is_a_notification_not_a_crash() {
    let bad = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/dicom/malformed/UN_sequence.dcm");
    assert!(bad.is_file());
    let mut h = harness(Launch::Path(bad));
    h.run();
    assert!(
        h.state()
            .toasts
            .iter()
            .any(|t| t.text.contains("UN_sequence.dcm")),
        "{:?}",
        h.state().toasts
    );
    h.get_by_label_contains("Cannot show");
    // A path that does not exist: a notification too.
    h.state_mut().open(Path::new("/nonexistent/film.dcm"));
    h.run();
    assert!(
        h.state()
            .toasts
            .iter()
            .any(|t| t.text.contains("no such file"))
    );
}

/// Reader vs model: the model stays hidden (and is not even run) before the reader's commit; after it the
/// probability and the calls at the three cut-offs appear, the prediction is cached in the study with the
/// model's SHA-256, and the heatmap key (H) changes the rendered film and nothing else.
#[test]
fn the_model_appears_after_commit_and_the_heatmap_toggles() {
    let tmp = tempfile::tempdir().expect("tmp");
    let study = practice_study(tmp.path(), 2);
    {
        let store = SqliteStore::open(&study).expect("open");
        store
            .set_settings(StudySettings {
                reveal_readers_after_commit: true,
                reveal_model_after_commit: true,
            })
            .expect("settings");
    }
    let model_dir = tmp.path().join("model");
    let card = common::model_folder(&model_dir);
    let mut h = harness(Launch::Path(study.clone()));
    h.state_mut().load_model(&model_dir);
    pick_reader(&mut h, "Dr A (central1)");
    let path = h.state().current_path().expect("film");
    assert!(h.query_by_label_contains("Model: probability").is_none());
    assert!(h.state().model_output().is_none());
    assert!(
        !h.state().model.as_ref().expect("model").is_pending(&path),
        "the model must not run before the reader's commit"
    );
    h.key_press(Key::R);
    h.key_press(Key::D);
    h.key_press(Key::Enter);
    h.run();
    // Back to the committed case (the commit moved on to the next one).
    h.state_mut().go_to(0);
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    h.state_mut().wait_for_model();
    h.run();
    let case = match &h.state().source {
        sacro::gui::app::Source::Study(s) => s.worklist[0].case_id.clone(),
        _ => unreachable!(),
    };
    h.get_by_label_contains("Model: probability");
    h.get_by_label_contains("balanced cut-off 0.500");
    let p = h.state().model_output().expect("output").probability;
    let store = SqliteStore::open(&study).expect("reopen");
    let rec = store
        .prediction_for_reader("Dr A", &case, &card.weights_sha256)
        .expect("allowed after commit")
        .expect("cached");
    assert!((rec.probability - f64::from(p)).abs() < 1e-6);

    let max_alpha = h
        .state()
        .model_output()
        .expect("output")
        .heat
        .rgba
        .chunks(4)
        .map(|p| p[3])
        .max()
        .unwrap_or(0);
    assert!(max_alpha > 0, "an empty heatmap");
    let before = h.render().expect("render");
    h.key_press(Key::H);
    h.run();
    let after = h.render().expect("render");
    let rect = h.state().last_view_rect.expect("viewer");
    let (mut inside, mut outside) = (0u64, 0u64);
    for (x, y, a) in before.enumerate_pixels() {
        let b = after.get_pixel(x, y);
        let d: u64 = (0..3).map(|c| u64::from(a[c].abs_diff(b[c]))).sum();
        if rect.contains(egui::pos2(x as f32 + 0.5, y as f32 + 0.5)) {
            inside += d;
        } else if !(1000..1280).contains(&x) {
            // The side panel's checkbox changes too; everything else must not.
            outside += d;
        }
    }
    assert!(inside > 10_000, "the heatmap changed the film by {inside}");
    assert_eq!(outside, 0, "outside the viewer and the side panel");
    // Inside both sacroiliac joints: their boxes from the phantom's truth, mapped to the screen as the
    // viewer maps the film (fit to the view, centred).
    let film_path = h.state().current_path().expect("film");
    let file = film_path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let truth = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/truth.csv"),
    )
    .expect("truth");
    let row: Vec<f32> = truth
        .lines()
        .find(|l| l.split(',').nth(1) == Some(file.as_str()))
        .expect("truth row")
        .split(',')
        .skip(5)
        .map(|v| v.parse().expect("number"))
        .collect();
    let film = h.state().current_film().expect("film");
    let (fw, fh) = (
        film.radiograph.width() as f32,
        film.radiograph.height() as f32,
    );
    let view = h.state().view_state().expect("view");
    let scale = view
        .zoom
        .unwrap_or((rect.width() / fw).min(rect.height() / fh) * 0.98);
    for (side, b) in ["left", "right"].iter().zip(row.chunks(4)) {
        let to_screen = |x: f32, y: f32| rect.center() + (egui::pos2(x, y) - view.center) * scale;
        let (a, z) = (to_screen(b[0], b[1]), to_screen(b[0] + b[2], b[1] + b[3]));
        let mut changed = 0u64;
        for y in a.y.max(0.0) as u32..z.y.min(after.height() as f32) as u32 {
            for x in a.x.max(0.0) as u32..z.x.min(after.width() as f32) as u32 {
                let (p, q) = (before.get_pixel(x, y), after.get_pixel(x, y));
                changed += (0..3).map(|c| u64::from(p[c].abs_diff(q[c]))).sum::<u64>();
            }
        }
        assert!(
            changed > 100,
            "the heatmap did not change the {side} joint ({changed})"
        );
    }
}

/// Another program holding the study's write lock: the commit fails quickly with a notification, the
/// window does not freeze, the reader's grades stay in the panel, and Enter commits once the lock is gone.
#[test]
fn a_busy_study_keeps_the_draft_and_commits_later() {
    let tmp = tempfile::tempdir().expect("tmp");
    let study = practice_study(tmp.path(), 2);
    let mut h = harness(Launch::Path(study.clone()));
    pick_reader(&mut h, "Dr A (central1)");
    let other = rusqlite::Connection::open(&study).expect("other program");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    h.key_press(Key::E);
    h.key_press(Key::E);
    h.key_press(Key::D);
    let t = std::time::Instant::now();
    h.key_press(Key::Enter);
    h.run();
    assert!(
        t.elapsed().as_secs() < 10,
        "the window waited {:?}",
        t.elapsed()
    );
    assert!(
        h.state().toasts.iter().any(|t| t.text.contains("busy")),
        "{:?}",
        h.state().toasts
    );
    match &h.state().source {
        sacro::gui::app::Source::Study(s) => {
            assert!(s.own.is_none());
            assert_eq!(s.draft.left, Some(JointGrade::Minimal));
            assert_eq!(s.draft.right, Some(JointGrade::Minimal));
        }
        _ => unreachable!(),
    }
    other.execute_batch("COMMIT").expect("unlock");
    h.key_press(Key::Enter);
    h.run();
    let store = SqliteStore::open(&study).expect("open");
    assert_eq!(
        store
            .all_readings()
            .expect("readings")
            .iter()
            .filter(|r| r.reader == "Dr A")
            .count(),
        1
    );
}

/// Writes a screenshot into `assets/screenshots/NAME.png` when `SACRO_SCREENSHOTS` is set (how the
/// README's pictures are made: `SACRO_SCREENSHOTS=1 cargo test --test gui`).
fn screenshot(h: &mut Harness<'static, SacroApp>, name: &str) {
    if std::env::var_os("SACRO_SCREENSHOTS").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots folder");
    let img = h.render().expect("render");
    img.save(dir.join(format!("{name}.png")))
        .expect("save screenshot");
}

/// A two-central study of 10 demo phantoms read by both readers, who disagree on cases 3, 6 and 9.
fn read_study(dir: &Path) -> PathBuf {
    let study = practice_study(dir, 10);
    let store = SqliteStore::open(&study).expect("open");
    use JointGrade as G;
    for i in 1..=10usize {
        let case = format!("C{i:04}");
        let positive = i % 2 == 0;
        let a = if positive {
            (G::Minimal, G::Minimal)
        } else {
            (G::Normal, G::Suspicious)
        };
        let b = if i % 3 == 0 {
            if positive {
                (G::Normal, G::Suspicious)
            } else {
                (G::Unequivocal, G::Normal)
            }
        } else {
            a
        };
        for (reader, (l, r)) in [("Dr A", a), ("Dr B", b)] {
            store
                .commit_reading(reader, &case, &sacro::grading::Reading::graded(l, r), None)
                .expect("reading");
        }
    }
    study
}

fn open_coordinator(h: &mut Harness<'static, SacroApp>) {
    h.get_by_label("Coordinator view").click();
    h.run();
}

/// `read_study` with the fixture model loaded and every case predicted through "Predict all cases".
fn predicted_study(
    dir: &Path,
) -> (
    PathBuf,
    PathBuf,
    sacro::model::card::ModelCard,
    Harness<'static, SacroApp>,
) {
    let study = read_study(dir);
    let model_dir = dir.join("model");
    let card = common::model_folder(&model_dir);
    let mut h = harness(Launch::Path(study.clone()));
    h.state_mut().load_model(&model_dir);
    h.run();
    open_coordinator(&mut h);
    h.get_by_label("Predict all cases").click();
    h.run();
    h.state_mut().wait_for_study_run();
    h.run();
    (study, model_dir, card, h)
}

#[test]
fn the_whole_study_is_predicted_and_the_compare_table_filters_and_opens_cases() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (study, _, card, mut h) = predicted_study(tmp.path());
    let store = SqliteStore::open(&study).expect("reopen");
    let recorded = store
        .predictions(&card.weights_sha256)
        .expect("predictions");
    assert_eq!(
        recorded.len(),
        10,
        "every case predicted and cached by SHA-256"
    );
    // Nothing left to do: the button is disabled and a second run would start nothing.
    h.get_by_label_contains("10 of 10 cases have the prediction");

    h.get_by_label("Compare").click();
    h.run();
    h.get_by_label_contains("10 of 10 cases shown");
    // Readers disagree on cases 3, 6 and 9 (computed here from the readings above, not by the app).
    h.get_by_label("show").click();
    h.run();
    h.get_by_label("readers disagree").click();
    h.run();
    h.get_by_label_contains("3 of 10 cases shown");
    let shown = match &h.state().source {
        sacro::gui::app::Source::Study(s) => {
            let c = s.compare.as_ref().expect("table");
            let cutoff = c.cutoff(card.cutoffs);
            c.visible(cutoff)
                .into_iter()
                .map(|i| c.rows[i].case.clone())
                .collect::<Vec<_>>()
        }
        _ => unreachable!(),
    };
    assert_eq!(shown, vec!["C0003", "C0006", "C0009"]);
    // Model vs consensus at the balanced cut-off, checked against the store's own numbers.
    let consensus: std::collections::HashMap<String, Option<bool>> =
        sacro::session::consensus(&store)
            .expect("consensus")
            .into_iter()
            .map(|c| (c.case_id, c.label))
            .collect();
    let expected = recorded
        .iter()
        .filter(|p| consensus[&p.case_id].is_some_and(|c| (p.probability >= 0.5) != c))
        .count();
    h.get_by_label("show").click();
    h.run();
    h.get_by_label("model disagrees with consensus").click();
    h.run();
    h.get_by_label_contains(&format!("{expected} of 10 cases shown"));
    h.get_by_label("show").click();
    h.run();
    h.get_by_label("readers disagree").click();
    h.run();
    screenshot(&mut h, "compare");
    // A click on a row opens the case for review, with every reading and the model.
    h.get_by_label("C0006").click();
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    h.state_mut().wait_for_model();
    h.run();
    match &h.state().source {
        sacro::gui::app::Source::Study(s) => {
            assert!(s.mode.is_reviewing() && !s.mode.is_coordinating());
            assert_eq!(s.worklist[s.index].case_id, "C0006");
        }
        _ => unreachable!(),
    }
    h.get_by_label("Case C0006");
    h.get_by_label_contains("Model: probability");
    h.get_by_label("Back to the compare table").click();
    h.run();
    assert!(matches!(&h.state().source, sacro::gui::app::Source::Study(s) if s.is_coordinating()));
}

#[test]
fn the_dashboard_shows_the_numbers_of_sacro_stats() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (study, model_dir, _, mut h) = predicted_study(tmp.path());
    h.get_by_label("Statistics").click();
    // One frame starts the analysis (a spinner repaints until it ends).
    h.step();
    let analysis = match &mut h.state_mut().source {
        sacro::gui::app::Source::Study(s) => {
            s.dashboard.wait();
            match &s.dashboard.result {
                Some(Ok(a)) => a.clone(),
                other => panic!("no analysis: {other:?}"),
            }
        }
        _ => unreachable!(),
    };
    h.run();
    h.get_by_label_contains("— AUC ");
    screenshot(&mut h, "dashboard");
    // The command line on the same study and model.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sacro"))
        .args(["stats", "--json", "--study"])
        .arg(&study)
        .arg("--model")
        .arg(&model_dir)
        .output()
        .expect("sacro stats");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let gui = serde_json::to_value(&analysis).expect("json");
    assert_eq!(gui, cli, "the dashboard and `sacro stats` differ");
    // 6 of the 10 cases have a consensus (3 disagreements await adjudication... and 1 of them is even).
    assert_eq!(analysis.n + analysis.excluded_unlabelled, 10);
    assert_eq!(analysis.excluded_unlabelled, 3);
    // Export writes the report files.
    let report = tmp.path().join("report");
    match &mut h.state_mut().source {
        sacro::gui::app::Source::Study(s) => {
            s.dashboard.export_dir = report.to_string_lossy().into_owned();
        }
        _ => unreachable!(),
    }
    h.run();
    h.get_by_label("Export report").click();
    h.run();
    for f in sacro::report::report_files(&report) {
        assert!(f.exists(), "{} missing", f.display());
    }
}

#[test]
fn the_training_panel_trains_a_tiny_model_that_becomes_the_model() {
    let tmp = tempfile::tempdir().expect("tmp");
    let csv = common::phantoms(tmp.path(), 12);
    let mut h = harness(Launch::Nothing);
    h.get_by_label("Training").click();
    h.run();
    {
        let t = &mut h.state_mut().training;
        t.data_path = csv.to_string_lossy().into_owned();
        t.out_dir = tmp.path().join("run").to_string_lossy().into_owned();
        t.cfg = sacro::train::TrainConfig::parse(common::TINY).expect("config");
    }
    h.run();
    h.get_by_label("Preview augmentations").click();
    h.step();
    let (notes, _) = h
        .state_mut()
        .training
        .wait(std::time::Duration::from_secs(120));
    assert!(notes.iter().all(|(_, error)| !error), "{notes:?}");
    h.run();
    h.get_by_label_contains("Augmented training samples");
    h.get_by_label("Start training").click();
    h.step();
    assert!(h.state().training.running());
    let (notes, model) = h
        .state_mut()
        .training
        .wait(std::time::Duration::from_secs(300));
    assert!(notes.iter().all(|(_, error)| !error), "{notes:?}");
    let model = model.expect("a new model folder");
    h.run();
    // Live history: one validation point per epoch of the schedule (1 frozen + 2 unfrozen).
    assert_eq!(h.state().training.epochs.len(), 3);
    assert!(!h.state().training.batch_loss.is_empty());
    screenshot(&mut h, "training");
    h.get_by_label("Use this model for predictions").click();
    h.run();
    let loaded = h.state().model.as_ref().expect("model loaded");
    assert_eq!(loaded.dir, model);
}

/// The README's screenshots, made by driving the real application as `cargo run --release` starts it:
/// the bundled demo study opened as its demo reader, the bundled demo model loaded. The reading screen
/// (a draft, blind to the model), the same case after the commit (the model and its Grad-CAM revealed),
/// the coordinator's compare table after "Predict all cases", the statistics dashboard, and a short
/// fine-tuning of the demo model on the demo study's consensus in the training panel.
/// Run by `assets/screenshots/make.sh` (minutes on a CPU; not part of the test suite).
#[test]
#[ignore = "makes the README's screenshots: assets/screenshots/make.sh"]
fn readme_screenshots() {
    let tmp = tempfile::tempdir().expect("tmp");
    let demo_model = sacro::model::card::bundled_demo().expect("the bundled demo model");
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .with_pixels_per_point(1.0)
        .with_max_steps(32)
        .wgpu()
        .build_eframe(move |cc| SacroApp::new(cc, Launch::Nothing));
    h.state_mut().open_demo_in(tmp.path());
    h.state_mut().load_model(&demo_model);
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    // Reading: a draft (left 2, right 3), blind to the model and the other readers.
    h.key_press(Key::E);
    h.key_press(Key::F);
    h.run();
    screenshot(&mut h, "reading");
    h.key_press(Key::Enter);
    h.run();
    h.state_mut().go_to(0);
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    h.state_mut().wait_for_model();
    h.key_press(Key::H);
    h.run();
    h.state_mut().wait_for_model();
    h.run();
    screenshot(&mut h, "committed");
    // The coordinator: every case predicted, the compare table, the dashboard.
    open_coordinator(&mut h);
    h.get_by_label("Predict all cases").click();
    h.run();
    h.state_mut().wait_for_study_run();
    h.run();
    h.get_by_label("Compare").click();
    h.run();
    screenshot(&mut h, "compare");
    h.get_by_label("Statistics").click();
    h.step();
    if let sacro::gui::app::Source::Study(s) = &mut h.state_mut().source {
        s.dashboard.wait();
    }
    h.run();
    screenshot(&mut h, "dashboard");
    // Training: the demo model fine-tuned on the demo study's consensus labels.
    let study = tmp.path().join("demo/study.sacro");
    h.get_by_label("Training").click();
    h.run();
    {
        let t = &mut h.state_mut().training;
        t.data_path = study.to_string_lossy().into_owned();
        t.out_dir = tmp.path().join("run").to_string_lossy().into_owned();
        t.base = demo_model.to_string_lossy().into_owned();
        t.cfg = sacro::train::TrainConfig::parse(
            r#"
seed = 3
valid_pct = 0.34
max_micro_batch = 8
mixup_alpha = 0.0
[[stages]]
size = 224
batch = 8
frozen_epochs = 1
unfrozen_epochs = 3
"#,
        )
        .expect("config");
    }
    h.run();
    h.get_by_label("Start training").click();
    h.step();
    let (notes, model) = h
        .state_mut()
        .training
        .wait(std::time::Duration::from_secs(3600));
    assert!(notes.iter().all(|(_, error)| !error), "{notes:?}");
    assert!(model.is_some(), "a fine-tuned model");
    h.run();
    screenshot(&mut h, "training");
}

#[test]
fn a_reader_logs_in_to_a_server_study_and_grades_by_keyboard() {
    use egui::accesskit::Role as A11y;
    let tmp = tempfile::tempdir().expect("tmp");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    let s = pg::ServerStudy::create(
        Protocol::TwoCentral,
        &[("Dr A", Role::Central1), ("Dr B", Role::Central2)],
        0,
    );
    let cases: Vec<NewCase> = (1..=2)
        .map(|i| {
            let film = tmp.path().join(format!("P{i:04}.dcm"));
            std::fs::copy(demo.join(format!("P{i:04}.dcm")), &film).expect("copy film");
            NewCase {
                path: Some(film),
                sop_instance_uid: None,
                case_id: None,
                archive: None,
            }
        })
        .collect();
    s.coord_store().add_cases(&cases).expect("cases");
    let login = s.reader_login("Dr A");
    let mut h = harness(Launch::Nothing);
    h.get_by_label("Server study…").click();
    h.run();
    let url = h.get_by_role_and_label(A11y::TextInput, "Study URL (your own login):");
    url.focus();
    url.type_text(&login.url);
    h.run();
    let pw = h.get_by_role_and_label(
        A11y::PasswordInput,
        "Password (empty: PGPASSWORD or ~/.pgpass):",
    );
    pw.focus();
    pw.type_text(login.password.as_deref().expect("password"));
    h.run();
    h.get_by_label("Log in and open").click();
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    // The login is the reader: straight onto Dr A's list, no coordinator view, nobody else to pick.
    match &h.state().source {
        sacro::gui::app::Source::Study(st) => {
            assert_eq!(st.mode.reader(), Some("Dr A"), "{:?}", h.state().toasts);
            assert_eq!(st.worklist.len(), 2);
        }
        _ => panic!("no study open: {:?}", h.state().toasts),
    }
    assert!(h.query_by_label("Coordinator view").is_none());
    h.key_press(Key::R);
    h.key_press(Key::D);
    h.run();
    h.key_press(Key::Enter);
    h.run();
    let all = s.coord_store().all_readings().expect("readings");
    assert_eq!(all.len(), 1, "{:?}", h.state().toasts);
    assert_eq!(all[0].reader, "Dr A");
    assert_eq!(
        all[0]
            .reading
            .grades()
            .map(|g| (g.left.value(), g.right.value())),
        Some((3, 2))
    );
    // Nothing of the password stays in the app's state.
    assert!(!format!("{:?}", h.state()).contains(login.password.as_deref().unwrap_or("x")));
}

#[test]
fn a_commit_while_the_server_is_down_is_kept_and_lands_when_it_is_back() {
    let srv = pg::dedicated();
    let tmp = tempfile::tempdir().expect("tmp");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    let s = pg::ServerStudy::create_on(srv, Protocol::Single, &[("Dr A", Role::Reader)], 0);
    let film = tmp.path().join("P0001.dcm");
    std::fs::copy(demo.join("P0001.dcm"), &film).expect("copy film");
    s.coord_store()
        .add_cases(&[NewCase {
            path: Some(film),
            sop_instance_uid: None,
            case_id: None,
            archive: None,
        }])
        .expect("case");
    let login = s.reader_login("Dr A");
    let mut h = harness(Launch::Nothing);
    h.state_mut()
        .apply_command(sacro::gui::command::Command::OpenServer {
            url: login.url.clone(),
            password: sacro::gui::command::Secret(login.password.clone().expect("pw")),
            films: String::new(),
        });
    h.run();
    h.state_mut().wait_for_films();
    h.run();
    srv.stop_immediate();
    h.key_press(Key::E);
    h.key_press(Key::E);
    h.key_press(Key::D);
    h.key_press(Key::Enter);
    h.run();
    assert!(
        h.state()
            .toasts
            .iter()
            .any(|t| t.text.contains("retries by itself")),
        "{:?}",
        h.state().toasts
    );
    match &h.state().source {
        sacro::gui::app::Source::Study(st) => {
            assert!(st.pending.is_some());
            assert_eq!(st.draft.left, Some(JointGrade::Minimal));
        }
        _ => unreachable!(),
    }
    srv.pg_ctl_start();
    // Bounded wait: the retry is due 2 s after the failure.
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        h.run();
        if matches!(&h.state().source, sacro::gui::app::Source::Study(st) if st.pending.is_none()) {
            break;
        }
    }
    let all = s.coord_store().all_readings().expect("readings");
    assert_eq!(all.len(), 1, "{:?}", h.state().toasts);
    assert_eq!(
        all[0]
            .reading
            .grades()
            .map(|g| (g.left.value(), g.right.value())),
        Some((2, 2))
    );
    assert!(
        h.state()
            .toasts
            .iter()
            .any(|t| t.text.contains("after the connection came back")),
        "{:?}",
        h.state().toasts
    );
}
