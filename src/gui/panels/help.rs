//! The key help window.

/// The window, while `open`.
pub fn ui(ctx: &egui::Context, open: &mut bool) {
    egui::Window::new("Keys").open(open).show(ctx, |ui| {
        egui::Grid::new("keys").show(ui, |ui| {
            for (k, what) in [
                ("Q W E R T", "left joint 0–4"),
                ("A S D F G", "right joint 0–4"),
                ("Enter", "commit"),
                ("N / P, arrows", "next / previous case"),
                ("right drag", "window (↔) and level (↕)"),
                ("1–5", "presets: file 1, file 2, auto, full, contrast"),
                (
                    "0–9",
                    "reader studies: type the confidence 0–100, Backspace clears (the presets are then buttons only)",
                ),
                ("I", "invert"),
                ("wheel, left drag", "zoom about the cursor, pan"),
                ("Home / 0", "fit / 1:1"),
                ("Space", "reset view and window"),
                ("C / Esc", "crop tool on / off"),
                (
                    "B",
                    "joint boxes: drag the patient's right joint, then the left (B again: skip, off)",
                ),
                (
                    "H",
                    "Grad-CAM heatmap on / off (when the model may be shown)",
                ),
                ("F12", "frame-time overlay"),
            ] {
                ui.monospace(k);
                ui.label(what);
                ui.end_row();
            }
        });
    });
}
