//! The grading panel: the current case's two joints graded 0–4 by mouse or keyboard (Q–T left, A–G
//! right), "not assessable" with its reason, a comment, the mNY call derived as the reader grades, and
//! Commit (Enter); after the commit, what the study reveals of other readers and the model.

use egui::{Color32, Key, RichText};

use super::model_output::{self, ModelView};
use crate::grading::{Assessment, Classification, JointGrade, JointGrades, Reading};
use crate::gui::command::{Command, Commands};
use crate::session::ReadingRecord;

/// Grading keys: left joint 0–4.
pub const LEFT_KEYS: [Key; 5] = [Key::Q, Key::W, Key::E, Key::R, Key::T];
/// Right joint 0–4.
pub const RIGHT_KEYS: [Key; 5] = [Key::A, Key::S, Key::D, Key::F, Key::G];
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
}

/// The grading keys of this frame: Q–T and A–G set the joints, Enter sends [`Command::Commit`]. Nothing
/// when a text field has the keyboard.
pub fn keys(ctx: &egui::Context, draft: &mut Draft, commands: &mut Commands) {
    if ctx.egui_wants_keyboard_input() {
        return;
    }
    let pressed = |k: Key| ctx.input(|i| i.key_pressed(k));
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
    let label = if case.own.is_some() {
        "Commit change (Enter)"
    } else {
        "Commit (Enter)"
    };
    if ui
        .add_enabled(
            draft.reading().is_ok() && !case.locked,
            egui::Button::new(label),
        )
        .clicked()
    {
        commands.send(Command::Commit);
    }
    ui.separator();
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
                keys(u.ctx(), &mut s.draft, &mut s.commands);
                let case = CaseView {
                    case: "C0001",
                    own: None,
                    others: None,
                    locked: false,
                    reveal_model: true,
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
