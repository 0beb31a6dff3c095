//! The joint-box tool in the app (issue 29's localiser labels): B, a drag over the film for the patient's
//! right joint, a second drag for the left; the boxes land in the store in film pixels, are drawn back,
//! and can be removed from the image panel.

mod common;

use egui::{Key, Pos2, Vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use sacro::gui::app::Source;
use sacro::gui::{Launch, SacroApp};
use sacro::session::joint_boxes::Side;
use sacro::session::{Protocol, Role, SqliteStore, StudyStore};

fn drag(h: &mut Harness<'static, SacroApp>, from: Pos2, to: Pos2) {
    h.hover_at(from);
    h.run();
    h.drag_at(from);
    h.run();
    h.hover_at(from + (to - from) / 2.0);
    h.run();
    h.hover_at(to);
    h.run();
    h.drop_at(to);
    h.run();
}

#[test]
fn a_reader_draws_both_joint_boxes_and_the_store_has_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("boxes.sacro");
    let store = SqliteStore::create(&path, Protocol::Single, 2).expect("study");
    store.add_reader("Dr A", Role::Reader).expect("reader");
    store
        .add_cases(&common::demo_cases(tmp.path(), 1))
        .expect("cases");
    drop(store);
    let mut h = Harness::builder()
        .with_size([1280.0, 900.0])
        .with_pixels_per_point(1.0)
        .with_max_steps(32)
        .wgpu()
        .build_eframe(move |cc| SacroApp::new(cc, Launch::Path(path.clone())));
    h.state_mut().wait_for_films();
    h.run();
    if h.query_by_label("Dr A (reader)").is_none() {
        h.get_by_label("Reader").click();
        h.run();
    }
    if let Some(n) = h.query_by_label("Dr A (reader)") {
        n.click();
        h.run();
    }
    h.state_mut().wait_for_films();
    h.run();
    let view = h.state().last_view_rect.expect("the film is shown");
    let c = view.center();
    h.key_press(Key::B);
    h.run();
    drag(
        &mut h,
        c + Vec2::new(-200.0, -60.0),
        c + Vec2::new(-120.0, 60.0),
    );
    drag(
        &mut h,
        c + Vec2::new(120.0, -60.0),
        c + Vec2::new(200.0, 60.0),
    );
    let store = SqliteStore::open(&tmp.path().join("boxes.sacro")).expect("open");
    let boxes = store.all_joint_boxes().expect("boxes");
    assert_eq!(boxes.len(), 2, "{boxes:?}");
    let right = boxes.iter().find(|b| b.side == Side::Right).expect("right");
    let left = boxes.iter().find(|b| b.side == Side::Left).expect("left");
    // The patient's right joint was drawn on the viewer's left: its box lies left of the other.
    assert!(right.rect.x + right.rect.width <= left.rect.x, "{boxes:?}");
    assert!(right.rect.width >= 8 && left.rect.height >= 8);
    // The tool is off after the second box (a drag pans again); the panel shows both and removes one.
    match &h.state().source {
        Source::Study(s) => assert_eq!(s.own_joint_boxes().iter().flatten().count(), 2),
        _ => panic!("no study"),
    }
    h.get_by_label("Remove patient's left").click();
    h.run();
    assert_eq!(store.all_joint_boxes().expect("boxes").len(), 1);
    drag(
        &mut h,
        c + Vec2::new(120.0, -60.0),
        c + Vec2::new(200.0, 60.0),
    );
    assert_eq!(
        store.all_joint_boxes().expect("boxes").len(),
        1,
        "the tool is off"
    );
}
