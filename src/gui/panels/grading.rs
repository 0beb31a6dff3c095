//! The grading panel: the current case's two joints graded 0–4 by mouse or keyboard (Q–T left, A–G
//! right), "not assessable" with its reason, a comment, the mNY call derived as the reader grades, and
//! Commit (Enter); after the commit, what the study reveals of other readers and the model.

use egui::{Color32, Key, RichText};

use super::model_output::{self, ModelView};
use crate::grading::{Assessment, Classification, JointGrade, JointGrades, Reading};
use crate::gui::command::{Command, Commands};
use crate::session::{Arm, ReadingRecord};

/// Grading keys: left joint 0–4.
pub const LEFT_KEYS: [Key; 5] = [Key::Q, Key::W, Key::E, Key::R, Key::T];
/// Right joint 0–4.
pub const RIGHT_KEYS: [Key; 5] = [Key::A, Key::S, Key::D, Key::F, Key::G];
/// Confidence digits 0–9.
const DIGIT_KEYS: [Key; 10] = [
    Key::Num0,
    Key::Num1,
    Key::Num2,
    Key::Num3,
    Key::Num4,
    Key::Num5,
    Key::Num6,
    Key::Num7,
    Key::Num8,
    Key::Num9,
];
const KEY_NAMES_LEFT: [&str; 5] = ["Q", "W", "E", "R", "T"];
const KEY_NAMES_RIGHT: [&str; 5] = ["A", "S", "D", "F", "G"];

/// A reading being prepared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// Left joint.
    pub left: Option<JointGrade>,
    /// Right joint.
    pub right: Option<JointGrade>,
    /// Not assessable.
    pub not_assessable: bool,
    /// Why not assessable.
    pub reason: String,
    /// Comment.
    pub comment: String,
    /// Reader studies: confidence 0–100 of definite sacroiliitis.
    pub confidence: Option<u8>,
    /// Digits typed for the confidence so far.
    pub typed: String,
}

impl Draft {
    /// The draft of a committed reading (to change it).
    pub fn from_reading(r: &Reading) -> Self {
        let mut d = Self {
            comment: r.comment.clone().unwrap_or_default(),
            ..Self::default()
        };
        match &r.assessment {
            Assessment::Graded(g) => {
                d.left = Some(g.left);
                d.right = Some(g.right);
            }
            Assessment::NotAssessable { reason } => {
                d.not_assessable = true;
                d.reason = reason.clone();
            }
        }
        d
    }

    /// The reading, when complete.
    pub fn reading(&self) -> Result<Reading, String> {
        let comment = Some(self.comment.trim().to_string()).filter(|c| !c.is_empty());
        if self.not_assessable {
            if self.reason.trim().is_empty() {
                return Err("\"not assessable\" needs a reason".into());
            }
            return Ok(Reading {
                assessment: Assessment::NotAssessable {
                    reason: self.reason.trim().to_string(),
                },
                comment,
            });
        }
        match (self.left, self.right) {
            (Some(l), Some(r)) => Ok(Reading {
                assessment: Assessment::Graded(JointGrades::new(l, r)),
                comment,
            }),
            _ => Err("grade both joints first".into()),
        }
    }
}

/// What the grading panel shows besides the draft.
#[derive(Debug, Clone, Copy)]
pub struct CaseView<'a> {
    /// The case ID.
    pub case: &'a str,
    /// The reader's committed reading of it.
    pub own: Option<&'a ReadingRecord>,
    /// Other readers' readings, when revealed.
    pub others: Option<&'a [ReadingRecord]>,
    /// The study is locked.
    pub locked: bool,
    /// The study reveals the model after the reader's commit.
    pub reveal_model: bool,
    /// Reader studies: the arm this case is read in (the model is shown before grading in the aided
    /// arm, never in the unaided one; a confidence score is asked for).
    pub arm: Option<Arm>,
}

/// A digit typed for the confidence: appended while the number stays 0–100 (at most three digits),
/// else it starts a new number.
fn type_digit(draft: &mut Draft, digit: u8) {
    let mut typed = format!("{}{digit}", draft.typed);
    if typed.len() > 3 || typed.parse::<u16>().map_or(true, |v| v > 100) {
        typed = digit.to_string();
    }
    draft.confidence = typed.parse().ok();
    draft.typed = typed;
}

/// The grading keys of this frame: Q–T and A–G set the joints, Enter sends [`Command::Commit`]; in a
/// reader study (`confidence`) the digit keys type the confidence score. Nothing when a text field has
/// the keyboard.
pub fn keys(ctx: &egui::Context, draft: &mut Draft, confidence: bool, commands: &mut Commands) {
    if ctx.egui_wants_keyboard_input() {
        return;
    }
    let pressed = |k: Key| ctx.input(|i| i.key_pressed(k));
    if confidence {
        if pressed(Key::Backspace) {
            draft.typed.clear();
            draft.confidence = None;
        }
        for (d, k) in DIGIT_KEYS.iter().enumerate() {
            if pressed(*k) {
                type_digit(draft, d as u8);
            }
        }
    }
    for v in 0..5u8 {
        if pressed(LEFT_KEYS[v as usize]) {
            draft.left = JointGrade::from_value(i64::from(v)).ok();
            draft.not_assessable = false;
        }
        if pressed(RIGHT_KEYS[v as usize]) {
            draft.right = JointGrade::from_value(i64::from(v)).ok();
            draft.not_assessable = false;
        }
    }
    if pressed(Key::Enter) {
        commands.send(Command::Commit);
    }
}

/// The panel.
pub fn ui(
    ui: &mut egui::Ui,
    case: CaseView<'_>,
    draft: &mut Draft,
    model: &ModelView<'_>,
    commands: &mut Commands,
) {
    ui.heading(format!("Case {}", case.case));
    match case.arm {
        Some(Arm::Aided) => {
            ui.label(
                RichText::new("Reader study, aided arm: the model's output before you grade")
                    .strong()
                    .color(Color32::from_rgb(240, 170, 40)),
            );
            model_output::ui(ui, model);
            ui.separator();
        }
        Some(Arm::Unaided) => {
            ui.label(RichText::new("Reader study, unaided arm: the film alone").strong());
        }
        None => {}
    }
    match case.own {
        Some(o) => ui.label(
            RichText::new(format!("committed {}", o.committed_at)).color(Color32::LIGHT_GREEN),
        ),
        None => ui.label("not yet read"),
    };
    ui.add_space(6.0);
    for (side, keys, title) in [
        (0, KEY_NAMES_LEFT, "Left sacroiliac joint (patient's left)"),
        (
            1,
            KEY_NAMES_RIGHT,
            "Right sacroiliac joint (patient's right)",
        ),
    ] {
        ui.label(RichText::new(title).strong());
        let mut slot = if side == 0 { draft.left } else { draft.right };
        ui.horizontal_wrapped(|ui| {
            for v in 0..5i64 {
                let Ok(g) = JointGrade::from_value(v) else {
                    continue;
                };
                let label = format!("{v} [{}]", keys[v as usize]);
                let resp = ui
                    .selectable_label(slot == Some(g), label)
                    .on_hover_text(format!("{}: {}", g.name(), g.description()));
                if resp.clicked() {
                    slot = Some(g);
                    draft.not_assessable = false;
                }
            }
        });
        if side == 0 {
            draft.left = slot;
        } else {
            draft.right = slot;
        }
        if let Some(g) = slot {
            ui.small(format!("{}: {}", g.name(), g.description()));
        }
        ui.add_space(4.0);
    }
    ui.separator();
    match draft.reading() {
        Ok(r) => match r.definite() {
            Some(d) => {
                let text = format!(
                    "Definite radiographic sacroiliitis: {} ({})",
                    if d { "YES" } else { "no" },
                    Classification::from_definite(d).abbreviation()
                );
                ui.label(RichText::new(text).strong().color(if d {
                    Color32::from_rgb(255, 170, 80)
                } else {
                    Color32::LIGHT_BLUE
                }));
            }
            None => {
                ui.label("Not assessable");
            }
        },
        Err(e) => {
            ui.label(RichText::new(e).weak());
        }
    }
    ui.small("mNY: definite = grade ≥ 2 on both sides or ≥ 3 on one");
    ui.add_space(4.0);
    ui.checkbox(&mut draft.not_assessable, "Not assessable");
    if draft.not_assessable {
        ui.add(egui::TextEdit::singleline(&mut draft.reason).hint_text("reason (required)"));
    }
    ui.add(
        egui::TextEdit::multiline(&mut draft.comment)
            .hint_text("comment")
            .desired_rows(2),
    );
    if case.arm.is_some() {
        let l = ui.label(RichText::new("Confidence of definite sacroiliitis (0–100)").strong());
        let mut v = draft.confidence.unwrap_or(50);
        let slider = ui
            .add(egui::Slider::new(&mut v, 0..=100).show_value(false))
            .labelled_by(l.id);
        if slider.changed() {
            draft.confidence = Some(v);
            draft.typed.clear();
        }
        match draft.confidence {
            Some(c) => ui.small(format!(
                "confidence {c} % (digit keys type it, Backspace clears)"
            )),
            None => ui.small("not given yet: type it with the digit keys or drag the slider"),
        };
    }
    let label = if case.own.is_some() {
        "Commit change (Enter)"
    } else {
        "Commit (Enter)"
    };
    let complete = draft.reading().is_ok() && (case.arm.is_none() || draft.confidence.is_some());
    if ui
        .add_enabled(complete && !case.locked, egui::Button::new(label))
        .clicked()
    {
        commands.send(Command::Commit);
    }
    ui.separator();
    if case.arm.is_some() {
        ui.label("Reader study: other readers' readings stay hidden; the model is shown in the aided arm only.");
        return;
    }
    // Blinding: nothing of other readers or the model before the reader's own commit.
    ui.label(RichText::new("Other readers and model").strong());
    if case.own.is_none() {
        ui.label("hidden until you commit (blinded)");
        return;
    }
    match case.others {
        Some([]) => {
            ui.label("no other readings yet");
        }
        Some(others) => {
            for o in others {
                let call = match o.reading.definite() {
                    Some(true) => "definite",
                    Some(false) => "not definite",
                    None => "not assessable",
                };
                let grades = o
                    .reading
                    .grades()
                    .map(|g| format!("{}/{}", g.left.value(), g.right.value()))
                    .unwrap_or_else(|| "–".into());
                ui.label(format!(
                    "{} ({}): {grades}, {call}",
                    o.reader,
                    o.role.as_str()
                ));
            }
        }
        None => {
            ui.label("this study does not reveal other readings");
        }
    }
    if case.reveal_model {
        model_output::ui(ui, model);
    } else {
        ui.label("this study does not reveal the model");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    struct State {
        draft: Draft,
        commands: Commands,
    }

    /// The panel alone: Q, S and Enter grade the joints 0 and 1 and send one commit; a click on a grade
    /// button does what its key does.
    #[test]
    fn keys_grade_and_enter_commits() {
        let state = State {
            draft: Draft::default(),
            commands: Commands::default(),
        };
        let mut h = Harness::new_ui_state(
            |u, s: &mut State| {
                keys(u.ctx(), &mut s.draft, false, &mut s.commands);
                let case = CaseView {
                    case: "C0001",
                    own: None,
                    others: None,
                    locked: false,
                    reveal_model: true,
                    arm: None,
                };
                ui(u, case, &mut s.draft, &ModelView::none(), &mut s.commands);
            },
            state,
        );
        h.key_press(Key::Q);
        h.key_press(Key::S);
        h.run();
        assert_eq!(h.state().draft.left, Some(JointGrade::Normal));
        assert_eq!(h.state().draft.right, Some(JointGrade::Suspicious));
        assert!(h.state().commands.queued().is_empty());
        h.get_by_label_contains("Definite radiographic sacroiliitis: no");
        h.key_press(Key::Enter);
        h.run();
        assert_eq!(h.state().commands.queued(), &[Command::Commit]);
        h.get_by_label("4 [G]").click();
        h.run();
        assert_eq!(h.state().draft.right, Some(JointGrade::Ankylosis));
        h.get_by_label_contains("Definite radiographic sacroiliitis: YES");
        h.get_by_label("hidden until you commit (blinded)");
    }

    /// In a reader study the digit keys type the confidence (0–100; a digit that would pass 100 starts a
    /// new number), and Commit waits for it.
    #[test]
    fn reader_study_asks_for_the_confidence() {
        let state = State {
            draft: Draft::default(),
            commands: Commands::default(),
        };
        let mut h = Harness::new_ui_state(
            |u, s: &mut State| {
                keys(u.ctx(), &mut s.draft, true, &mut s.commands);
                let case = CaseView {
                    case: "C0002",
                    own: None,
                    others: None,
                    locked: false,
                    reveal_model: true,
                    arm: Some(Arm::Unaided),
                };
                ui(u, case, &mut s.draft, &ModelView::none(), &mut s.commands);
            },
            state,
        );
        h.get_by_label_contains("unaided arm: the film alone");
        h.key_press(Key::E);
        h.key_press(Key::D);
        h.run();
        h.get_by_label_contains("not given yet");
        for k in [Key::Num7, Key::Num5] {
            h.key_press(k);
        }
        h.run();
        assert_eq!(h.state().draft.confidence, Some(75));
        h.key_press(Key::Num8);
        h.run();
        assert_eq!(h.state().draft.confidence, Some(8), "758 > 100 starts anew");
        // Backspace clears it; then 100.
        for k in [Key::Backspace, Key::Num1, Key::Num0, Key::Num0] {
            h.key_press(k);
        }
        h.run();
        assert_eq!(h.state().draft.confidence, Some(100));
        h.get_by_label_contains("confidence 100 %");
        h.get_by_label_contains("other readers' readings stay hidden");
    }

    /// A draft is a reading only when complete: both joints, or "not assessable" with a reason.
    #[test]
    fn a_draft_is_a_reading_only_when_complete() {
        let mut draft = Draft::default();
        assert!(draft.reading().is_err());
        draft.not_assessable = true;
        assert_eq!(
            draft.reading(),
            Err("\"not assessable\" needs a reason".to_string())
        );
        draft.reason = "rotated".into();
        assert!(draft.reading().is_ok());
    }
}
