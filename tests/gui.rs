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

const SIZE: [f32; 2] = [1280.0, 800.0];

fn harness(launch: Launch) -> Harness<'static, SacroApp> {
    let mut h = Harness::builder()
        .with_size(SIZE)
        .with_pixels_per_point(1.0)
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
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    let mut cases = Vec::new();
    for i in 1..=n {
        let name = format!("P{i:04}.dcm");
        std::fs::copy(demo.join(&name), dir.join(&name)).expect("copy film");
        cases.push(NewCase {
            path: Some(dir.join(&name)),
            sop_instance_uid: None,
            case_id: None,
        });
    }
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
