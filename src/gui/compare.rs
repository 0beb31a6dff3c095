//! The coordinator's compare view: every case with each reader's grades and call, the consensus, and the
//! model's probability and call, sortable and filterable; a click opens the case. Discordant cases are
//! what readers review.

use std::collections::BTreeMap;

use egui::{Color32, RichText};
use egui_extras::{Column, TableBuilder};

use crate::session::{self, ConsensusMethod, StudyStore};
use crate::stats::cutoffs::Cutoffs;

/// One reader's reading of a case in the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Joint grades (left, right), None when not assessable.
    pub grades: Option<(u8, u8)>,
    /// Definite call, None when not assessable.
    pub definite: Option<bool>,
}

/// One case.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Case ID (pseudonymous).
    pub case: String,
    /// Readings by reader name.
    pub readers: BTreeMap<String, Cell>,
    /// Consensus label.
    pub consensus: Option<bool>,
    /// How the consensus was reached, or why not.
    pub method: ConsensusMethod,
    /// The model's probability, if recorded for the loaded model.
    pub probability: Option<f64>,
}

impl Row {
    /// Readers who called the case disagree on definite sacroiliitis (a not-assessable reading counts as
    /// a different call).
    pub fn readers_disagree(&self) -> bool {
        let calls: Vec<Option<bool>> = self.readers.values().map(|c| c.definite).collect();
        calls.len() >= 2 && calls.iter().any(|c| *c != calls[0])
    }

    /// The model's call at `cutoff` (probability ≥ cut-off is definite), if predicted.
    pub fn model_call(&self, cutoff: f64) -> Option<bool> {
        self.probability.map(|p| p >= cutoff)
    }

    /// The model's call differs from the consensus (both present).
    pub fn model_disagrees(&self, cutoff: f64) -> bool {
        matches!((self.model_call(cutoff), self.consensus), (Some(m), Some(c)) if m != c)
    }
}

/// Which rows are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every case.
    #[default]
    All,
    /// The model's call differs from the consensus.
    ModelVsConsensus,
    /// Readers disagree.
    ReadersDisagree,
    /// No consensus label yet (awaiting readings or adjudication, or unresolved).
    NoConsensus,
    /// Anything to review: model vs consensus, or readers disagree.
    Discordant,
}

impl Filter {
    /// Every filter, in menu order.
    pub const ALL: [Filter; 5] = [
        Filter::All,
        Filter::Discordant,
        Filter::ModelVsConsensus,
        Filter::ReadersDisagree,
        Filter::NoConsensus,
    ];

    /// Menu text.
    pub fn label(self) -> &'static str {
        match self {
            Filter::All => "all cases",
            Filter::ModelVsConsensus => "model disagrees with consensus",
            Filter::ReadersDisagree => "readers disagree",
            Filter::NoConsensus => "no consensus yet",
            Filter::Discordant => "discordant (model or readers)",
        }
    }

    /// Whether `row` passes at `cutoff`.
    pub fn keeps(self, row: &Row, cutoff: f64) -> bool {
        match self {
            Filter::All => true,
            Filter::ModelVsConsensus => row.model_disagrees(cutoff),
            Filter::ReadersDisagree => row.readers_disagree(),
            Filter::NoConsensus => row.consensus.is_none(),
            Filter::Discordant => row.model_disagrees(cutoff) || row.readers_disagree(),
        }
    }
}

/// Sort column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Case ID.
    #[default]
    Case,
    /// Consensus label.
    Consensus,
    /// Model probability.
    Probability,
    /// A reader's call (index into the readers).
    Reader(usize),
}

/// The table's state.
#[derive(Debug, Default)]
pub struct CompareView {
    /// Rows, in store order.
    pub rows: Vec<Row>,
    /// Reader names (columns).
    pub readers: Vec<String>,
    /// Filter.
    pub filter: Filter,
    /// Sort column and direction.
    pub sort: (SortKey, bool),
    /// Which of the model's cut-offs gives its call (0 sensitive, 1 balanced, 2 specific).
    pub cutoff_index: usize,
    /// Model SHA-256 the probabilities belong to.
    pub model_sha: Option<String>,
    /// New readings or predictions arrived: rebuild, keeping filter and sort.
    pub stale: bool,
}

fn cmp_opt<T: PartialOrd>(a: Option<T>, b: Option<T>) -> std::cmp::Ordering {
    // Missing values sort last in ascending order.
    match (a, b) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

impl CompareView {
    /// Builds the table from the store: consensus and readings of every case, and the predictions of the
    /// model with `model_sha` (none when no model is loaded).
    pub fn build(
        store: &dyn StudyStore,
        model_sha: Option<&str>,
    ) -> Result<Self, crate::session::StoreError> {
        let predictions: BTreeMap<String, f64> = match model_sha {
            Some(sha) => store
                .predictions(sha)?
                .into_iter()
                .map(|p| (p.case_id, p.probability))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut readers: Vec<String> = Vec::new();
        let rows = session::consensus(store)?
            .into_iter()
            .map(|c| {
                let cells = c
                    .calls
                    .iter()
                    .map(|call| {
                        if !readers.contains(&call.reader) {
                            readers.push(call.reader.clone());
                        }
                        (
                            call.reader.clone(),
                            Cell {
                                grades: call
                                    .left
                                    .zip(call.right)
                                    .map(|(l, r)| (l.value(), r.value())),
                                definite: call.definite,
                            },
                        )
                    })
                    .collect();
                Row {
                    probability: predictions.get(&c.case_id).copied(),
                    case: c.case_id,
                    readers: cells,
                    consensus: c.label,
                    method: c.method,
                }
            })
            .collect();
        readers.sort();
        Ok(Self {
            rows,
            readers,
            cutoff_index: 1,
            model_sha: model_sha.map(str::to_string),
            ..Self::default()
        })
    }

    /// The cut-off for the model's call: the card's chosen one, else 0.5.
    pub fn cutoff(&self, cutoffs: Option<Cutoffs>) -> f64 {
        cutoffs.map_or(0.5, |c| {
            [c.sensitive, c.balanced, c.specific][self.cutoff_index.min(2)]
        })
    }

    /// Indices of the rows shown, filtered and sorted.
    pub fn visible(&self, cutoff: f64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.rows.len())
            .filter(|&i| self.filter.keeps(&self.rows[i], cutoff))
            .collect();
        let (key, descending) = self.sort;
        idx.sort_by(|&a, &b| {
            let (ra, rb) = (&self.rows[a], &self.rows[b]);
            let o = match key {
                SortKey::Case => ra.case.cmp(&rb.case),
                SortKey::Consensus => cmp_opt(ra.consensus, rb.consensus),
                SortKey::Probability => cmp_opt(ra.probability, rb.probability),
                SortKey::Reader(i) => {
                    let name = self.readers.get(i);
                    let call =
                        |r: &Row| name.and_then(|n| r.readers.get(n)).and_then(|c| c.definite);
                    cmp_opt(call(ra), call(rb))
                }
            };
            let o = if descending { o.reverse() } else { o };
            o.then_with(|| ra.case.cmp(&rb.case))
        });
        idx
    }

    fn header(&mut self, ui: &mut egui::Ui, text: &str, key: SortKey) {
        let arrow = match self.sort {
            (k, false) if k == key => " ▲",
            (k, true) if k == key => " ▼",
            _ => "",
        };
        if ui
            .button(RichText::new(format!("{text}{arrow}")).strong())
            .on_hover_text("sort")
            .clicked()
        {
            self.sort = if self.sort.0 == key {
                (key, !self.sort.1)
            } else {
                (key, false)
            };
        }
    }

    /// Draws the view; returns the case clicked, if any.
    pub fn ui(&mut self, ui: &mut egui::Ui, cutoffs: Option<Cutoffs>) -> Option<String> {
        let mut clicked = None;
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("show")
                .selected_text(self.filter.label())
                .show_ui(ui, |ui| {
                    for f in Filter::ALL {
                        ui.selectable_value(&mut self.filter, f, f.label());
                    }
                });
            match cutoffs {
                Some(_) => {
                    egui::ComboBox::from_label("model cut-off")
                        .selected_text(
                            ["sensitive", "balanced", "specific"][self.cutoff_index.min(2)],
                        )
                        .show_ui(ui, |ui| {
                            for (i, n) in ["sensitive", "balanced", "specific"].iter().enumerate() {
                                ui.selectable_value(&mut self.cutoff_index, i, *n);
                            }
                        });
                }
                None => {
                    ui.label("model call at 0.5 (the model has no validation cut-offs)");
                }
            }
        });
        let cutoff = self.cutoff(cutoffs);
        let shown = self.visible(cutoff);
        let predicted = self.rows.iter().filter(|r| r.probability.is_some()).count();
        ui.label(format!(
            "{} of {} cases shown; model cut-off {cutoff:.3}; {predicted} cases predicted{}",
            shown.len(),
            self.rows.len(),
            if self.model_sha.is_none() {
                " (no model loaded)"
            } else {
                ""
            }
        ));
        let yes_no = |v: Option<bool>| match v {
            Some(true) => RichText::new("definite").color(Color32::from_rgb(230, 120, 90)),
            Some(false) => RichText::new("not definite"),
            None => RichText::new("—").weak(),
        };
        let readers = self.readers.clone();
        let mut table = TableBuilder::new(ui)
            .striped(true)
            .sense(egui::Sense::click())
            .column(Column::auto().at_least(70.0));
        for _ in &readers {
            table = table.column(Column::auto().at_least(110.0));
        }
        table
            .column(Column::auto().at_least(150.0))
            .column(Column::remainder().at_least(140.0))
            .header(24.0, |mut h| {
                h.col(|ui| self.header(ui, "case", SortKey::Case));
                for (i, r) in readers.iter().enumerate() {
                    h.col(|ui| self.header(ui, r, SortKey::Reader(i)));
                }
                h.col(|ui| self.header(ui, "consensus", SortKey::Consensus));
                h.col(|ui| self.header(ui, "model", SortKey::Probability));
            })
            .body(|body| {
                body.rows(36.0, shown.len(), |mut row| {
                    let r = &self.rows[shown[row.index()]];
                    let discordant = r.model_disagrees(cutoff) || r.readers_disagree();
                    row.col(|ui| {
                        let t = RichText::new(&r.case).monospace();
                        if ui
                            .link(if discordant { t.strong() } else { t })
                            .on_hover_text("open the case")
                            .clicked()
                        {
                            clicked = Some(r.case.clone());
                        }
                    });
                    for name in &readers {
                        row.col(|ui| match r.readers.get(name) {
                            Some(c) => {
                                let g = c
                                    .grades
                                    .map_or("n/a".to_string(), |(l, rr)| format!("{l}/{rr}"));
                                ui.label(g);
                                ui.label(yes_no(c.definite));
                            }
                            None => {
                                ui.label(RichText::new("not read").weak());
                            }
                        });
                    }
                    row.col(|ui| {
                        ui.label(yes_no(r.consensus));
                        ui.small(r.method.as_str());
                    });
                    row.col(|ui| match r.probability {
                        Some(p) => {
                            ui.label(format!("{p:.3}"));
                            let t = yes_no(r.model_call(cutoff));
                            ui.label(if r.model_disagrees(cutoff) {
                                t.strong().underline()
                            } else {
                                t
                            });
                        }
                        None => {
                            ui.label(RichText::new("not predicted").weak());
                        }
                    });
                    if row.response().clicked() {
                        clicked = Some(r.case.clone());
                    }
                });
            });
        clicked
    }
}
