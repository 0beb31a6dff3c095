//! The reader study (aided design) in the app: an arm reader grades the unaided arm with the film alone
//! (the model neither shown nor run), is asked for a confidence score typed with the digit keys, and
//! then reads the aided arm with the model's output shown before grading; the coordinator sees the
//! progress per arm and the statistics tab's "Reader study" section with the MRMC result.

mod common;

use std::path::{Path, PathBuf};

use egui::Key;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use sacro::gui::app::Source;
use sacro::gui::{Launch, SacroApp};
use sacro::session::{Arm, Design, Protocol, Role, SqliteStore, StudyStore};

fn harness(launch: Launch) -> Harness<'static, SacroApp> {
    let mut h = Harness::builder()
        .with_size([1280.0, 900.0])
        .with_pixels_per_point(1.0)
        .with_max_steps(32)
        .wgpu()
        .build_eframe(move |cc| SacroApp::new(cc, launch));
    h.state_mut().wait_for_films();
    h.run();
    h
}

/// An aided-design study (no washout, so that the app reaches the second arm) over two demo phantoms.
fn aided_study(dir: &Path) -> PathBuf {
    let cases = common::demo_cases(dir, 2);
    let path = dir.join("aided.sacro");
    let store = SqliteStore::create(&path, Protocol::Single, 4).expect("study");
    store
        .set_design(Design::Aided { washout_days: 0 })
        .expect("design");
    store.add_reader("ann", Role::Reader).expect("reader");
    store.add_cases(&cases).expect("cases");
    path
}

fn current(h: &Harness<'static, SacroApp>) -> (String, Option<Arm>) {
    match &h.state().source {
        Source::Study(s) => (s.worklist[s.index].case_id.clone(), s.worklist[s.index].arm),
        _ => panic!("no study open"),
    }
}

#[test]
fn an_arm_reader_reads_unaided_then_aided_and_the_coordinator_sees_the_study() {
    let tmp = tempfile::tempdir().expect("tmp");
    let study = aided_study(tmp.path());
    let model_dir = tmp.path().join("model");
    common::model_folder(&model_dir);
    let mut h = harness(Launch::Path(study.clone()));
    h.state_mut().load_model(&model_dir);
    h.get_by_label("Reader").click();
    h.run();
    h.get_by_label("ann (reader)").click();
    h.run();
    h.state_mut().wait_for_films();
    h.run();

    // Unaided arm: the film alone; the model does not run.
    h.get_by_label_contains("unaided arm: the film alone");
    let path = h.state().current_path().expect("film");
    assert!(h.state().model_output().is_none());
    assert!(!h.state().model.as_ref().expect("model").is_pending(&path));
    let (case, arm) = current(&h);
    assert_eq!(arm, Some(Arm::Unaided));
    // Grades without a confidence are not committed.
    h.key_press(Key::E);
    h.key_press(Key::D);
    h.key_press(Key::Enter);
    h.run();
    let store = SqliteStore::open(&study).expect("open");
    assert!(store.arm_readings().expect("arms").is_empty());
    // Typed confidence, then Enter.
    for k in [Key::Num6, Key::Num5, Key::Enter] {
        h.key_press(k);
        h.run();
    }
    let arms = store.arm_readings().expect("arms");
    assert_eq!(arms.len(), 1);
    assert_eq!(
        (arms[0].case_id.as_str(), arms[0].arm, arms[0].confidence),
        (case.as_str(), Arm::Unaided, 65)
    );
    // The second case of the arm; then the aided arm opens (no washout in this study).
    for k in [Key::W, Key::A, Key::Num2, Key::Num0, Key::Enter] {
        h.key_press(k);
        h.run();
    }
    h.state_mut().wait_for_films();
    h.run();
    let (_, arm) = current(&h);
    assert_eq!(arm, Some(Arm::Aided));
    h.get_by_label_contains("aided arm: the model's output before you grade");
    // The model runs and is shown before grading in the aided arm.
    h.state_mut().wait_for_model();
    h.run();
    assert!(h.state().model_output().is_some());
    // The other arm's reading is not shown: the draft starts empty.
    match &h.state().source {
        Source::Study(s) => {
            assert!(s.own.is_none());
            assert_eq!(s.draft.confidence, None);
        }
        _ => unreachable!(),
    }
    for _ in 0..2 {
        for k in [Key::R, Key::F, Key::Num9, Key::Num0, Key::Enter] {
            h.key_press(k);
            h.run();
        }
        h.state_mut().wait_for_films();
        h.run();
    }
    assert_eq!(store.arm_readings().expect("arms").len(), 4);
    assert!(
        store
            .arm_readings()
            .expect("arms")
            .iter()
            .filter(|a| a.arm == Arm::Aided)
            .all(|a| a.confidence == 90)
    );

    // The coordinator: progress per arm, and the reader study in the statistics tab.
    h.get_by_label("Coordinator view").click();
    h.run();
    h.get_by_label_contains("unaided first; unaided 2/2, aided 2/2");
    h.get_by_label("Statistics").click();
    // One frame starts the dashboard's analysis (a spinner repaints until it ends).
    h.step();
    match &mut h.state_mut().source {
        Source::Study(s) => s.dashboard.wait(),
        _ => unreachable!(),
    }
    h.run();
    h.get_by_label_contains("Reader study: unaided vs aided");
    // No consensus in this study: the section says there is no truth for any case.
    h.get_by_label_contains("2 without truth");
    // With the truth from a reference file the analysis runs (one reader: the test is undefined, the
    // AUCs are shown).
    let truth = tmp.path().join("truth.csv");
    std::fs::write(&truth, "case,truth\nC0001,1\nC0002,0\n").expect("truth");
    match &mut h.state_mut().source {
        Source::Study(s) => s.reader_study.truth_file = truth.display().to_string(),
        _ => unreachable!(),
    }
    h.get_by_label("Analyse").click();
    h.run();
    h.get_by_label_contains("1 readers × unaided/aided × 2 cases (1 positive)");
}
