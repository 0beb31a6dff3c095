//! Notifications: non-blocking toasts in the bottom-right corner, information for 5 s and errors for 15 s,
//! each also logged; a click dismisses one.

use egui::{Color32, RichText};

use crate::gui::command::Level;

/// A non-blocking notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    /// Text.
    pub text: String,
    /// Severity.
    pub level: Level,
    /// When it was shown (egui time, s).
    pub since: f64,
}

/// The notifications shown and those waiting for the next frame.
#[derive(Debug, Default)]
pub struct Notifications {
    shown: Vec<Toast>,
    pending: Vec<(String, Level)>,
}

impl Notifications {
    /// Queues a notification for the next frame.
    pub fn push(&mut self, text: impl Into<String>, level: Level) {
        self.pending.push((text.into(), level));
    }

    /// The notifications on screen (and those queued, with time 0).
    pub fn iter(&self) -> impl Iterator<Item = Toast> + '_ {
        self.shown
            .iter()
            .cloned()
            .chain(self.pending.iter().map(|(text, level)| Toast {
                text: text.clone(),
                level: *level,
                since: 0.0,
            }))
    }

    /// Shows the queued notifications, drops expired ones and draws the rest.
    pub fn ui(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|i| i.time);
        for (text, level) in self.pending.drain(..) {
            match level {
                Level::Error => tracing::warn!("{text}"),
                Level::Info => tracing::info!("{text}"),
            }
            self.shown.push(Toast {
                text,
                level,
                since: now,
            });
        }
        self.shown.retain(|t| {
            now - t.since
                < match t.level {
                    Level::Info => 5.0,
                    Level::Error => 15.0,
                }
        });
        if self.shown.is_empty() {
            return;
        }
        let mut dismiss = None;
        egui::Area::new(egui::Id::unique("sacro-toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -36.0])
            .show(ctx, |ui| {
                for (i, t) in self.shown.iter().enumerate() {
                    let fill = match t.level {
                        Level::Info => Color32::from_rgb(30, 60, 40),
                        Level::Error => Color32::from_rgb(110, 30, 30),
                    };
                    egui::Frame::popup(ui.style()).fill(fill).show(ui, |ui| {
                        ui.set_max_width(420.0);
                        if ui
                            .add(
                                egui::Label::new(RichText::new(&t.text).color(Color32::WHITE))
                                    .sense(egui::Sense::click()),
                            )
                            .on_hover_text("click to dismiss")
                            .clicked()
                        {
                            dismiss = Some(i);
                        }
                    });
                }
            });
        if let Some(i) = dismiss {
            self.shown.remove(i);
        }
        ctx.request_repaint_after(std::time::Duration::from_millis(500));
    }
}
