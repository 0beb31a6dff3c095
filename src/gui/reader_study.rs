//! The statistics tab's "Reader study" section: does the model help readers? The arm readings of an
//! aided-design study, analysed as `sacro stats --mrmc` does (AUC of the confidence scores, the
//! Obuchowski–Rockette test with Hillis's degrees of freedom, jackknife covariances), with each reader's
//! ROC curve per arm. The truth is the study's consensus or a reference CSV; while the study runs, the
//! cases every reader has read in both arms so far (an interim analysis, said as such).

use std::path::Path;

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::command::{Command, Commands};
use crate::grading::Reading;
use crate::session::reader_study::{CrossedStudy, commit_now, consensus_truth, crossed_study};
use crate::session::{Arm, CommitOutcome, StoreError, StudyStore, csv_io};
use crate::stats::mrmc::{self, CovMethod, Fom, Mrmc};
use crate::stats::roc::roc_curve;

/// What the section shows.
#[derive(Debug, Clone)]
pub struct ReaderStudyResult {
    /// The crossed study analysed.
    pub crossed: CrossedStudy,
    /// The analysis (None when too few readers or cases for it: `why` says).
    pub analysis: Result<Mrmc, String>,
    /// Where the truth came from.
    pub truth_from: String,
}

/// The section's state.
#[derive(Debug, Default)]
pub struct ReaderStudyView {
    /// A reference truth CSV (empty: the study's consensus).
    pub truth_file: String,
    /// The last result (or why there is none).
    pub result: Option<Result<ReaderStudyResult, String>>,
    /// The result is not the one for the study's readings now.
    stale: bool,
    computed: bool,
}

impl ReaderStudyView {
    /// Readings changed: compute again when next shown.
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Whether the section wants [`Command::ComputeReaderStudy`].
    pub fn wants(&self) -> bool {
        !self.computed || self.stale
    }

    /// Reads the arm readings and analyses them (the applier calls this).
    pub fn compute(&mut self, store: &dyn StudyStore) {
        self.computed = true;
        self.stale = false;
        self.result = Some(analyse(store, self.truth_file.trim()));
    }

    /// Draws the section.
    pub fn ui(&mut self, ui: &mut egui::Ui, commands: &mut Commands) {
        ui.heading("Reader study");
        ui.horizontal(|ui| {
            let l = ui.label("truth CSV (empty: consensus)");
            ui.add(egui::TextEdit::singleline(&mut self.truth_file).desired_width(260.0))
                .labelled_by(l.id);
            if ui.button("Analyse").clicked() {
                self.stale = true;
            }
        });
        if self.wants() {
            commands.send(Command::ComputeReaderStudy);
        }
        let r = match &self.result {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                ui.colored_label(Color32::LIGHT_RED, e);
                return;
            }
            None => return,
        };
        let s = &r.crossed.study;
        ui.label(format!(
            "{} readers × unaided/aided × {} cases ({} positive); truth from {}; left out: {} without truth, {} not yet read by every reader in both arms",
            s.readers.len(),
            s.cases.len(),
            s.truth.iter().filter(|t| **t).count(),
            r.truth_from,
            r.crossed.without_truth,
            r.crossed.incomplete
        ));
        let a = match &r.analysis {
            Ok(a) => a,
            Err(e) => {
                ui.colored_label(Color32::LIGHT_RED, format!("no analysis yet: {e}"));
                return;
            }
        };
        if r.crossed.incomplete > 0 {
            ui.small("interim: the cases complete so far");
        }
        egui::Grid::new("mrmc_auc").striped(true).show(ui, |ui| {
            ui.strong("AUC");
            for reader in &a.readers {
                ui.strong(reader);
            }
            ui.strong("mean");
            ui.end_row();
            for (i, m) in a.modalities.iter().enumerate() {
                ui.label(m);
                for v in &a.foms[i] {
                    ui.label(format!("{v:.3}"));
                }
                ui.label(RichText::new(format!("{:.3}", a.modality_means[i])).strong());
                ui.end_row();
            }
        });
        let inf = &a.rrrc;
        match (&inf.test, &inf.undefined) {
            (Some(t), _) => {
                ui.label(format!(
                    "Obuchowski–Rockette, random readers and cases (Hillis df): F = {:.3}, df = {:.0}, {:.2}, p = {:.4}",
                    t.statistic,
                    t.df1,
                    t.df2.unwrap_or(f64::NAN),
                    t.p
                ));
            }
            (None, Some(why)) => {
                ui.label(format!("test undefined: {why}"));
            }
            _ => {}
        }
        for d in &inf.differences {
            ui.label(
                RichText::new(format!(
                    "{}: {:+.3} (95 % CI {:+.3} to {:+.3}, p = {:.4})",
                    d.comparison, d.estimate, d.lower, d.upper, d.p
                ))
                .strong(),
            );
        }
        ui.columns(s.modalities.len(), |cols| {
            for (i, m) in s.modalities.iter().enumerate() {
                roc_plot(&mut cols[i], s, i, m);
            }
        });
    }
}

/// What a reader with an empty work list is told: in a reader study between arms, when the next opens.
pub(super) fn nothing_to_read(store: &dyn StudyStore, name: &str) -> String {
    match store.arm_plan(name, chrono::Utc::now()) {
        Ok(p) => format!("{name}: nothing to read now: {}", p.summary()),
        Err(_) => format!("{name} has no cases to read"),
    }
}

/// Commits the grading panel's reading: in the entry's arm with the confidence for an arm reader (now,
/// by this machine's clock), else as a reading of the study.
pub(super) fn commit(
    store: &dyn StudyStore,
    reader: &str,
    case: &str,
    arm: Option<Arm>,
    reading: &Reading,
    confidence: Option<u8>,
    reason: Option<&str>,
) -> Result<CommitOutcome, StoreError> {
    if arm.is_none() {
        return store.commit_reading(reader, case, reading, reason);
    }
    commit_now(store, reader, case, arm, reading, confidence, reason).map(|(_, o)| o)
}

fn analyse(store: &dyn StudyStore, truth_file: &str) -> Result<ReaderStudyResult, String> {
    let (truth, truth_from) = if truth_file.is_empty() {
        (
            consensus_truth(store).map_err(|e| e.to_string())?,
            "the consensus".to_string(),
        )
    } else {
        (
            csv_io::read_truth(Path::new(truth_file)).map_err(|e| e.to_string())?,
            truth_file.to_string(),
        )
    };
    let cases: Vec<String> = store
        .cases()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let crossed = crossed_study(
        &store.readers().map_err(|e| e.to_string())?,
        &store.arm_readings().map_err(|e| e.to_string())?,
        &truth,
        &cases,
    );
    let analysis = mrmc::analyse(&crossed.study, Fom::Auc, CovMethod::Jackknife, 0.95)
        .map_err(|e| e.to_string());
    Ok(ReaderStudyResult {
        crossed,
        analysis,
        truth_from,
    })
}

fn roc_plot(ui: &mut egui::Ui, s: &mrmc::Study, modality: usize, name: &str) {
    ui.label(RichText::new(format!("ROC, {name}")).strong());
    let n = s.cases.len();
    Plot::new(format!("mrmc_roc_{name}"))
        .legend(Legend::default())
        .height(220.0)
        .data_aspect(1.0)
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |p| {
            for (j, reader) in s.readers.iter().enumerate() {
                let start = (modality * s.readers.len() + j) * n;
                let Some(scores) = s.ratings.get(start..start + n) else {
                    continue;
                };
                if let Ok(c) = roc_curve(&s.truth, scores, true) {
                    let pts: PlotPoints = c.fpr.iter().zip(&c.tpr).map(|(x, y)| [*x, *y]).collect();
                    p.line(Line::new(reader.clone(), pts));
                }
            }
            p.line(
                Line::new("chance", PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]))
                    .color(Color32::GRAY),
            );
        });
}
