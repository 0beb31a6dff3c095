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
    h.get_by_label("Reader").click();
    h.run();
    h.get_by_label("Dr A (central1)").click();
    h.run();
    h.state_mut().wait_for_films();
    h.run();
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
    h.get_by_label("Reader").click();
    h.run();
    h.get_by_label("Dr A (central1)").click();
    h.run();
    h.state_mut().wait_for_films();
    h.run();
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
