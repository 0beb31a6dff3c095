//! The statistics dashboard: the seed study's analysis of an open study, with the consensus (or one reader)
//! as the truth and the other readers and the model as raters. The numbers come from the same library
//! path as `sacro stats --study … --model …` (`report::study::data` then `report::analyse`), computed on a
//! worker thread because the bootstrap takes a moment.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use super::command::{Command, Commands, Level};
use crate::report::study::Reference;
use crate::report::{self, Analysis, CutoffSource, Settings};
use crate::session::StudyStore;
use crate::stats::Estimate;
use crate::stats::cutoffs::Cutoffs;

type Job = Receiver<Result<Analysis, String>>;

/// The dashboard's state.
#[derive(Default)]
pub struct Dashboard {
    /// What the truth is.
    pub reference: Reference,
    /// The last analysis (or why there is none).
    pub result: Option<Result<Analysis, String>>,
    /// What the result was computed for: (reference, model SHA-256).
    computed_for: Option<(Reference, String)>,
    job: Option<Job>,
    /// Folder the report is exported to.
    pub export_dir: String,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("reference", &self.reference)
            .field("running", &self.job.is_some())
            .finish()
    }
}

/// The analysis settings the dashboard uses: `sacro stats`' defaults, with the model's validation
/// cut-offs when its card has them (as `sacro stats --model` does).
pub fn settings(card_cutoffs: Option<Cutoffs>) -> Settings {
    Settings {
        cutoffs: card_cutoffs.map_or(CutoffSource::ThisSet, CutoffSource::ModelCard),
        ..Settings::default()
    }
}

fn ci(e: &Option<Estimate>) -> String {
    e.as_ref().map_or("—".into(), |e| {
        format!("{:.3} ({:.3}–{:.3})", e.value, e.lower, e.upper)
    })
}

impl Dashboard {
    /// Starts the analysis for `reference` and the model `sha` (data read here, analysis on a worker).
    pub fn start(
        &mut self,
        store: &dyn StudyStore,
        path: &Path,
        sha: &str,
        card_cutoffs: Option<Cutoffs>,
        ctx: &egui::Context,
    ) {
        self.computed_for = Some((self.reference.clone(), sha.to_string()));
        let data = match report::study::data(store, path, &self.reference, sha) {
            Ok(d) => d,
            Err(e) => {
                self.result = Some(Err(format!(
                    "{e}\n(predict every case of the study first: Overview, \"Predict all cases\")"
                )));
                self.job = None;
                return;
            }
        };
        let s = settings(card_cutoffs);
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("sacro-stats".into())
            .spawn(move || {
                let _ = tx.send(report::analyse(&data, &s).map_err(|e| e.to_string()));
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.job = Some(rx);
                self.result = None;
            }
            Err(e) => self.result = Some(Err(format!("cannot start the analysis: {e}"))),
        }
    }

    /// New predictions or readings: compute again when next shown.
    pub fn invalidate(&mut self) {
        self.computed_for = None;
    }

    /// Collects a finished analysis.
    pub fn poll(&mut self) {
        if let Some(rx) = &self.job
            && let Ok(r) = rx.try_recv()
        {
            self.result = Some(r);
            self.job = None;
        }
    }

    /// Whether the analysis is running.
    pub fn running(&self) -> bool {
        self.job.is_some()
    }

    /// Waits for the running analysis (tests).
    pub fn wait(&mut self) {
        if let Some(rx) = self.job.take() {
            self.result = Some(
                rx.recv_timeout(std::time::Duration::from_secs(300))
                    .unwrap_or_else(|e| Err(e.to_string())),
            );
        }
    }

    /// Whether the analysis shown is not the one for the chosen reference and `sha` (nor running):
    /// the app then starts it ([`Dashboard::start`], from the study's store).
    pub fn wants_analysis(&self, sha: &str) -> bool {
        !self.running() && self.computed_for != Some((self.reference.clone(), sha.to_string()))
    }

    /// Draws the dashboard. `readers` are the study's readers (possible references); `model` is the
    /// loaded model's SHA-256 and cut-offs. Sends [`Command::StartAnalysis`] when the analysis shown is
    /// not the one chosen.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        readers: &[String],
        model: Option<(&str, Option<Cutoffs>)>,
        commands: &mut Commands,
    ) {
        self.poll();
        let Some((sha, _)) = model else {
            ui.label("Load a model (top bar) and predict the study to see its statistics.");
            return;
        };
        ui.horizontal(|ui| {
            let label = |r: &Reference| match r {
                Reference::Consensus => "consensus".to_string(),
                Reference::Reader(n) => format!("reader {n}"),
            };
            egui::ComboBox::from_label("truth")
                .selected_text(label(&self.reference))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.reference, Reference::Consensus, "consensus");
                    for r in readers {
                        let v = Reference::Reader(r.clone());
                        let text = label(&v);
                        ui.selectable_value(&mut self.reference, v, text);
                    }
                });
            if ui
                .add_enabled(!self.running(), egui::Button::new("Recompute"))
                .clicked()
            {
                self.computed_for = None;
            }
            if self.running() {
                ui.spinner();
                ui.label("bootstrap running…");
            }
        });
        if self.wants_analysis(sha) {
            commands.send(Command::StartAnalysis);
        }
        let a = match &self.result {
            Some(Ok(a)) => a.clone(),
            Some(Err(e)) => {
                ui.colored_label(Color32::LIGHT_RED, e);
                return;
            }
            None => return,
        };
        ui.label(
            RichText::new(format!(
                "{} cases ({} positive, {} negative; {} without a label left out) — AUC {} DeLong, bootstrap {} — average precision {:.3}",
                a.n,
                a.positives,
                a.negatives,
                a.excluded_unlabelled,
                ci(&Some(a.auc_delong)),
                ci(&Some(a.auc_bootstrap.estimate)),
                a.average_precision
            ))
            .strong(),
        );
        ui.small(format!(
            "cut-offs: {} ({}); intervals {:.0}%, seed {}",
            a.cutoffs
                .named()
                .iter()
                .map(|(n, c)| format!("{n} {c:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            a.cutoff_method,
            a.level * 100.0,
            a.seed
        ));
        ui.horizontal(|ui| {
            let l = ui.label("report folder");
            ui.add(egui::TextEdit::singleline(&mut self.export_dir).desired_width(300.0))
                .labelled_by(l.id);
            if ui.button("Export report").clicked() {
                let dir = PathBuf::from(self.export_dir.trim());
                if self.export_dir.trim().is_empty() {
                    commands.notify("type a folder for the report first", Level::Error);
                } else {
                    match report::write_report(&dir, &a) {
                        Ok(()) => commands.notify(
                            format!(
                                "report written to {} (report.html, report.md, CSV, plots)",
                                dir.display()
                            ),
                            Level::Info,
                        ),
                        Err(e) => commands.notify(e.to_string(), Level::Error),
                    }
                }
            }
        });
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.columns(2, |cols| {
                roc_plot(&mut cols[0], &a);
                pr_plot(&mut cols[1], &a);
            });
            tables(ui, &a);
        });
    }
}

fn operating_points(a: &Analysis) -> (Vec<[f64; 2]>, Vec<[f64; 2]>) {
    let roc = a
        .readers
        .iter()
        .filter_map(|r| {
            Some([
                1.0 - r.metrics.specificity.as_ref()?.value,
                r.metrics.sensitivity.as_ref()?.value,
            ])
        })
        .collect();
    let cut = a
        .at_cutoffs
        .iter()
        .filter_map(|c| {
            Some([
                1.0 - c.metrics.specificity.as_ref()?.value,
                c.metrics.sensitivity.as_ref()?.value,
            ])
        })
        .collect();
    (roc, cut)
}

fn roc_plot(ui: &mut egui::Ui, a: &Analysis) {
    ui.strong("ROC");
    let curve: PlotPoints = a
        .roc
        .fpr
        .iter()
        .zip(&a.roc.tpr)
        .map(|(&x, &y)| [x, y])
        .collect();
    let (readers, cuts) = operating_points(a);
    Plot::new("roc")
        .height(280.0)
        .data_aspect(1.0)
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .x_axis_label("1 − specificity")
        .y_axis_label("sensitivity")
        .legend(Legend::default())
        .show(ui, |p| {
            p.line(
                Line::new("chance", PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]))
                    .color(Color32::GRAY),
            );
            p.line(
                Line::new(format!("model (AUC {:.3})", a.auc_delong.value), curve)
                    .allow_band(false)
                    .width(2.0),
            );
            p.points(
                Points::new("cut-offs", PlotPoints::from(cuts))
                    .radius(5.0)
                    .color(Color32::from_rgb(240, 170, 40)),
            );
            p.points(
                Points::new("readers", PlotPoints::from(readers))
                    .radius(5.0)
                    .shape(egui_plot::MarkerShape::Diamond)
                    .color(Color32::from_rgb(90, 200, 120)),
            );
        });
}

fn pr_plot(ui: &mut egui::Ui, a: &Analysis) {
    ui.strong("Precision–recall");
    let curve: PlotPoints =
        a.pr.recall
            .iter()
            .zip(&a.pr.precision)
            .map(|(&x, &y)| [x, y])
            .collect();
    let readers: Vec<[f64; 2]> = a
        .readers
        .iter()
        .filter_map(|r| {
            Some([
                r.metrics.sensitivity.as_ref()?.value,
                r.metrics.ppv.as_ref()?.value,
            ])
        })
        .collect();
    let cuts: Vec<[f64; 2]> = a
        .at_cutoffs
        .iter()
        .filter_map(|c| {
            Some([
                c.metrics.sensitivity.as_ref()?.value,
                c.metrics.ppv.as_ref()?.value,
            ])
        })
        .collect();
    Plot::new("pr")
        .height(280.0)
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .x_axis_label("recall (sensitivity)")
        .y_axis_label("precision (PPV)")
        .legend(Legend::default())
        .show(ui, |p| {
            p.line(
                Line::new(format!("model (AP {:.3})", a.average_precision), curve)
                    .allow_band(false)
                    .width(2.0),
            );
            p.points(
                Points::new("cut-offs", PlotPoints::from(cuts))
                    .radius(5.0)
                    .color(Color32::from_rgb(240, 170, 40)),
            );
            p.points(
                Points::new("readers", PlotPoints::from(readers))
                    .radius(5.0)
                    .shape(egui_plot::MarkerShape::Diamond)
                    .color(Color32::from_rgb(90, 200, 120)),
            );
        });
}

/// TP, FP, FN, TN, then sensitivity, specificity, PPV and NPV with their intervals: one cell each.
fn confusion_cells(
    ui: &mut egui::Ui,
    m: &crate::stats::confusion::ConfusionMatrix,
    metrics: &crate::stats::confusion::Metrics,
) {
    for v in [m.tp, m.fp, m.fn_, m.tn] {
        ui.label(v.to_string());
    }
    for e in [
        &metrics.sensitivity,
        &metrics.specificity,
        &metrics.ppv,
        &metrics.npv,
    ] {
        ui.label(ci(e));
    }
}

fn tables(ui: &mut egui::Ui, a: &Analysis) {
    ui.separator();
    ui.strong("The model at its cut-offs");
    egui::Grid::new("cutoffs").striped(true).show(ui, |ui| {
        for h in [
            "cut-off",
            "value",
            "TP",
            "FP",
            "FN",
            "TN",
            "sensitivity",
            "specificity",
            "PPV",
            "NPV",
            "kappa vs truth",
        ] {
            ui.strong(h);
        }
        ui.end_row();
        for c in &a.at_cutoffs {
            ui.label(&c.name);
            ui.label(format!("{:.3}", c.cutoff));
            confusion_cells(ui, &c.confusion, &c.metrics);
            ui.label(ci(&c.kappa.as_ref().map(|k| k.estimate)));
            ui.end_row();
        }
    });
    if !a.readers.is_empty() {
        ui.separator();
        ui.strong("Readers against the truth");
        egui::Grid::new("readers").striped(true).show(ui, |ui| {
            for h in [
                "reader",
                "n",
                "TP",
                "FP",
                "FN",
                "TN",
                "sensitivity",
                "specificity",
                "PPV",
                "NPV",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for r in &a.readers {
                ui.label(&r.reader);
                ui.label(r.n.to_string());
                confusion_cells(ui, &r.confusion, &r.metrics);
                ui.end_row();
            }
        });
    }
    ui.separator();
    ui.strong("Agreement of every pair of raters (definite sacroiliitis)");
    egui::Grid::new("agreement").striped(true).show(ui, |ui| {
        for h in ["rater", "rater", "n", "agreement", "PABAK", "Cohen's kappa"] {
            ui.strong(h);
        }
        ui.end_row();
        for p in &a.agreement {
            ui.label(&p.a);
            ui.label(&p.b);
            ui.label(p.n.to_string());
            ui.label(p.agreement.map_or("—".into(), |v| format!("{v:.3}")));
            ui.label(p.pabak.map_or("—".into(), |v| format!("{v:.3}")));
            ui.label(match (&p.kappa, &p.note) {
                (Some(k), _) => ci(&Some(k.estimate)),
                (None, Some(n)) => n.clone(),
                (None, None) => "—".into(),
            });
            ui.end_row();
        }
    });
    if !a.grade_agreement.is_empty() {
        ui.separator();
        ui.strong("Weighted kappa on the joint grades (0–4, both joints pooled)");
        egui::Grid::new("grades").striped(true).show(ui, |ui| {
            for h in ["reader", "reader", "joints", "linear", "quadratic"] {
                ui.strong(h);
            }
            ui.end_row();
            for g in &a.grade_agreement {
                ui.label(&g.a);
                ui.label(&g.b);
                ui.label(g.joints.to_string());
                ui.label(g.linear.map_or("—".into(), |v| format!("{v:.3}")));
                ui.label(g.quadratic.map_or("—".into(), |v| format!("{v:.3}")));
                ui.end_row();
            }
        });
    }
    if let Some(f) = &a.fleiss {
        ui.label(format!(
            "Fleiss' kappa of {} readers on {} cases: {}",
            f.readers.len(),
            f.n,
            f.kappa.map_or("—".into(), |k| format!("{k:.3}"))
        ));
    }
    if let Some(d) = &a.disagreement {
        ui.label(format!(
            "Cases where readers disagree: {}; model agrees with the truth there: {}",
            d.n,
            d.per_cutoff
                .iter()
                .map(|(n, _, _, agree)| format!("{n} {agree}/{}", d.n))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}
