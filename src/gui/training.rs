//! The training panel: data (the open study's consensus labels or a CSV), the schedule (the study's
//! defaults, editable, or a TOML file), base weights, a preview of augmented samples, the LR range test,
//! and a run with live plots, cancel and resume. Everything runs on a worker thread through the same
//! library calls and `Event`s as `sacro train` and `sacro lr-find`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::imaging::GreyImage;
use crate::model::predict::default_device;
use crate::train::trainer::{EpochRecord, Event, LrFind, Summary};
use crate::train::{Stage, TrainConfig, data};

/// What the worker sends.
enum Msg {
    Event(Event),
    Note(String),
    Preview(Result<GreyImage, String>),
    LrFind(Result<LrFind, String>),
    Trained(Result<Summary, String>),
}

/// The work the worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Preview,
    LrFind,
    Train { resume: bool },
}

/// A running job.
struct Job {
    task: Task,
    rx: Receiver<Msg>,
    cancel: Arc<AtomicBool>,
}

/// The panel's state.
pub struct TrainingPanel {
    /// Labels: a CSV or a study file (its consensus labels).
    pub data_path: String,
    /// A TOML configuration to load into the fields.
    pub config_path: String,
    /// The schedule being edited.
    pub cfg: TrainConfig,
    /// Base weights (model folder or .safetensors); empty = random initialisation.
    pub base: String,
    /// Output folder of the run.
    pub out_dir: String,
    job: Option<Job>,
    /// Training loss per batch: (global batch index, loss).
    pub batch_loss: Vec<[f64; 2]>,
    /// Learning rate of the head group per batch.
    pub batch_lr: Vec<[f64; 2]>,
    /// Validation per epoch.
    pub epochs: Vec<EpochRecord>,
    /// Progress text (phase, epoch, ETA).
    pub status: String,
    /// Fraction of the run done.
    pub progress: f32,
    total_batches: usize,
    batches_done: usize,
    phases: Vec<crate::train::Phase>,
    started: Option<std::time::Instant>,
    /// The LR range test's result.
    pub lr_find: Option<LrFind>,
    preview: Option<(GreyImage, Option<egui::TextureHandle>)>,
    /// The finished run (or why it stopped).
    pub finished: Option<Result<Summary, String>>,
    /// Messages for the notification area.
    notes: Vec<(String, bool)>,
}

impl std::fmt::Debug for TrainingPanel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingPanel")
            .field("data", &self.data_path)
            .field("running", &self.job.as_ref().map(|j| j.task))
            .finish()
    }
}

impl Default for TrainingPanel {
    fn default() -> Self {
        Self {
            data_path: String::new(),
            config_path: String::new(),
            cfg: TrainConfig::default(),
            base: String::new(),
            out_dir: String::new(),
            job: None,
            batch_loss: Vec::new(),
            batch_lr: Vec::new(),
            epochs: Vec::new(),
            status: String::new(),
            progress: 0.0,
            total_batches: 0,
            batches_done: 0,
            phases: Vec::new(),
            started: None,
            lr_find: None,
            preview: None,
            finished: None,
            notes: Vec::new(),
        }
    }
}

fn spawn_job(
    task: Task,
    data_path: PathBuf,
    cfg: TrainConfig,
    out: PathBuf,
    ctx: egui::Context,
) -> Result<Job, String> {
    let (tx, rx) = channel::<Msg>();
    let cancel = Arc::new(AtomicBool::new(false));
    let cancel_w = Arc::clone(&cancel);
    std::thread::Builder::new()
        .name("sacro-train".into())
        .spawn(move || {
            let send = |tx: &Sender<Msg>, m: Msg| {
                let _ = tx.send(m);
                ctx.request_repaint();
            };
            let progress = |done: usize, total: usize| {
                send(&tx, Msg::Event(Event::Loading { done, total }));
            };
            let loaded = data::open(&data_path, &cfg, &progress, &cancel_w);
            let ds = match loaded {
                Ok((ds, notes)) => {
                    for n in notes {
                        send(&tx, Msg::Note(n));
                    }
                    ds
                }
                Err(e) => {
                    let m = e.to_string();
                    send(
                        &tx,
                        match task {
                            Task::Preview => Msg::Preview(Err(m)),
                            Task::LrFind => Msg::LrFind(Err(m)),
                            Task::Train { .. } => Msg::Trained(Err(m)),
                        },
                    );
                    return;
                }
            };
            let device = default_device();
            let mut on_event = |e: Event| send(&tx, Msg::Event(e));
            match task {
                Task::Preview => {
                    let size = cfg.stages.first().map_or(224, |s| s.size).min(256);
                    let grid =
                        crate::train::preview::augmented_grid(&cfg, &ds, size, (4, 4), cfg.seed);
                    send(&tx, Msg::Preview(Ok(grid)));
                }
                Task::LrFind => {
                    let r = crate::train::lr_find(
                        &cfg,
                        &ds,
                        &device,
                        (1e-7, 10.0, 100),
                        &mut on_event,
                        &cancel_w,
                    )
                    .map_err(|e| e.to_string());
                    send(&tx, Msg::LrFind(r));
                }
                Task::Train { resume } => {
                    let r = crate::train::train(
                        &cfg,
                        &ds,
                        &out,
                        resume,
                        &device,
                        &mut on_event,
                        &cancel_w,
                    )
                    .map_err(|e| e.to_string());
                    send(&tx, Msg::Trained(r));
                }
            }
        })
        .map_err(|e| format!("cannot start the training thread: {e}"))?;
    Ok(Job { task, rx, cancel })
}

fn number<T: egui::emath::Numeric>(
    ui: &mut egui::Ui,
    label: &str,
    v: &mut T,
    range: std::ops::RangeInclusive<T>,
) {
    let l = ui.label(label);
    ui.add(egui::DragValue::new(v).range(range))
        .labelled_by(l.id);
}

impl TrainingPanel {
    /// A panel whose data is `study` (the open study) and whose output goes beside it.
    pub fn for_study(study: &std::path::Path) -> Self {
        let out = study.with_file_name("sacro-training");
        Self {
            data_path: study.to_string_lossy().into_owned(),
            out_dir: out.to_string_lossy().into_owned(),
            ..Self::default()
        }
    }

    /// Whether a job is running.
    pub fn running(&self) -> bool {
        self.job.is_some()
    }

    /// Starts preview, LR finder or training with the current fields.
    fn start(&mut self, task: Task, ctx: &egui::Context) {
        let data_path = PathBuf::from(self.data_path.trim());
        if self.data_path.trim().is_empty() {
            self.notes.push((
                "choose the training data first (a CSV or a study)".into(),
                true,
            ));
            return;
        }
        let mut cfg = self.cfg.clone();
        cfg.base_weights = (!self.base.trim().is_empty()).then(|| PathBuf::from(self.base.trim()));
        if let Err(e) = cfg.check() {
            self.notes.push((format!("configuration: {e}"), true));
            return;
        }
        let out = PathBuf::from(self.out_dir.trim());
        if matches!(task, Task::Train { .. }) {
            if self.out_dir.trim().is_empty() {
                self.notes
                    .push(("choose an output folder first".into(), true));
                return;
            }
            self.batch_loss.clear();
            self.batch_lr.clear();
            self.epochs.clear();
            self.finished = None;
            self.batches_done = 0;
            self.total_batches = 0;
            self.phases = cfg.phases();
        }
        self.started = Some(std::time::Instant::now());
        self.status = "decoding the films…".into();
        self.progress = 0.0;
        match spawn_job(task, data_path, cfg, out, ctx.clone()) {
            Ok(j) => self.job = Some(j),
            Err(e) => self.notes.push((e, true)),
        }
    }

    /// Collects the worker's messages; returns the notes for the notification area (text, is error) and
    /// the model folder of a run that just finished.
    pub fn poll(&mut self) -> (Vec<(String, bool)>, Option<PathBuf>) {
        let mut new_model = None;
        let mut done = false;
        let mut msgs = Vec::new();
        let mut gone = false;
        if let Some(j) = &self.job {
            loop {
                match j.rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        gone = true;
                        break;
                    }
                }
            }
        }
        {
            for m in msgs {
                match m {
                    Msg::Event(e) => self.on_event(e),
                    Msg::Note(n) => self.notes.push((n, false)),
                    Msg::Preview(r) => {
                        done = true;
                        match r {
                            Ok(g) => self.preview = Some((g, None)),
                            Err(e) => self.notes.push((e, true)),
                        }
                    }
                    Msg::LrFind(r) => {
                        done = true;
                        match r {
                            Ok(l) => {
                                self.status = match l.suggestion {
                                    Some(s) => format!("LR range test: valley at {s:.2e}"),
                                    None => "LR range test: no suggestion (the loss did not fall)"
                                        .into(),
                                };
                                self.lr_find = Some(l);
                            }
                            Err(e) => self.notes.push((format!("LR range test: {e}"), true)),
                        }
                    }
                    Msg::Trained(r) => {
                        done = true;
                        match &r {
                            Ok(s) => {
                                self.status = format!(
                                    "done: validation AUC {:.4}, model in {}",
                                    s.valid_auc,
                                    s.model_dir.display()
                                );
                                self.progress = 1.0;
                                new_model = Some(s.model_dir.clone());
                            }
                            Err(e) => {
                                self.status = format!("stopped: {e}");
                                self.notes.push((format!("training: {e}"), true));
                            }
                        }
                        self.finished = Some(r);
                    }
                }
            }
        }
        if gone && !done {
            // The worker ended without its final message: it panicked.
            self.status = "stopped: the training thread failed unexpectedly".into();
            self.notes.push((self.status.clone(), true));
            done = true;
        }
        if done {
            self.job = None;
        }
        (std::mem::take(&mut self.notes), new_model)
    }

    /// Waits for the running job (tests).
    pub fn wait(&mut self, timeout: std::time::Duration) -> (Vec<(String, bool)>, Option<PathBuf>) {
        let start = std::time::Instant::now();
        let (mut notes, mut model) = (Vec::new(), None);
        while self.job.is_some() && start.elapsed() < timeout {
            let (n, m) = self.poll();
            notes.extend(n);
            model = model.or(m);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let (n, m) = self.poll();
        notes.extend(n);
        (notes, model.or(m))
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Loading { done, total } => {
                self.status = format!("decoding films {done}/{total}");
                self.progress = done as f32 / total.max(1) as f32;
            }
            Event::PhaseStarted {
                phase,
                phases,
                batches,
                micro_batch,
            } => {
                // Batches per epoch are known once the data is split: this phase's exactly, the later
                // phases' from the training set size they imply.
                let n_train = batches * phase.batch;
                let later: usize = self
                    .phases
                    .iter()
                    .filter(|p| p.index > phase.index)
                    .map(|p| p.epochs * n_train.div_ceil(p.batch.max(1)))
                    .sum();
                self.total_batches = self.batches_done + phase.epochs * batches + later;
                self.status = format!(
                    "phase {}/{phases}: {}², {}, batch {} (micro-batch {micro_batch})",
                    phase.index + 1,
                    phase.size,
                    if phase.frozen { "frozen" } else { "unfrozen" },
                    phase.batch
                );
            }
            Event::Batch {
                phase,
                epoch,
                batch,
                batches,
                loss,
                lr,
            } => {
                let x = self.batch_loss.len() as f64;
                self.batch_loss.push([x, loss]);
                self.batch_lr.push([x, lr]);
                self.batches_done += 1;
                self.progress = self.batches_done as f32 / self.total_batches.max(1) as f32;
                let eta = self.started.map(|t| {
                    t.elapsed().as_secs_f64() / self.batches_done as f64
                        * self.total_batches.saturating_sub(self.batches_done) as f64
                });
                self.status = format!(
                    "phase {} epoch {} batch {}/{batches}: loss {loss:.4}, lr {lr:.2e}{}",
                    phase + 1,
                    epoch + 1,
                    batch + 1,
                    eta.map(|s| format!(", about {:.0} s left", s))
                        .unwrap_or_default()
                );
            }
            Event::Epoch(r) => self.epochs.push(r),
            Event::LrStep {
                iteration,
                lr,
                loss,
                ..
            } => {
                self.status = format!(
                    "LR range test {}/100: lr {lr:.2e}, loss {loss:.4}",
                    iteration + 1
                );
                self.progress = (iteration + 1) as f32 / 100.0;
            }
            Event::Message(m) => self.notes.push((m, false)),
        }
    }

    /// Draws the panel; returns a model folder the user asked to use for predictions.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<PathBuf> {
        let mut use_model = None;
        let running = self.running();
        ui.heading("Training");
        ui.label("Fine-tune the ResNet-50 on consensus labels with the seed study's schedule (fastai's defaults where the paper is silent).");
        egui::Grid::new("train-fields")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("data (CSV or study)");
                ui.add(egui::TextEdit::singleline(&mut self.data_path).desired_width(420.0))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("base weights");
                ui.add(
                    egui::TextEdit::singleline(&mut self.base)
                        .hint_text("model folder or .safetensors (empty: random initialisation)")
                        .desired_width(420.0),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("output folder");
                ui.add(egui::TextEdit::singleline(&mut self.out_dir).desired_width(420.0))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("configuration (TOML)");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.config_path)
                            .hint_text("optional: load a train.toml into the fields")
                            .desired_width(330.0),
                    )
                    .labelled_by(l.id);
                    if ui.button("Load").clicked() {
                        match TrainConfig::load(std::path::Path::new(self.config_path.trim())) {
                            Ok(c) => self.cfg = c,
                            Err(e) => self.notes.push((e.to_string(), true)),
                        }
                    }
                    if ui.button("Study defaults").clicked() {
                        self.cfg = TrainConfig::default();
                    }
                });
                ui.end_row();
            });
        ui.add_enabled_ui(!running, |ui| self.schedule_fields(ui));
        ui.horizontal(|ui| {
            ui.label(format!("device: {:?}", default_device()));
            ui.separator();
            if ui
                .add_enabled(!running, egui::Button::new("Preview augmentations"))
                .clicked()
            {
                self.start(Task::Preview, ui.ctx());
            }
            if ui
                .add_enabled(!running, egui::Button::new("LR range test"))
                .clicked()
            {
                self.start(Task::LrFind, ui.ctx());
            }
            if ui
                .add_enabled(!running, egui::Button::new("Start training"))
                .clicked()
            {
                self.start(Task::Train { resume: false }, ui.ctx());
            }
            if ui
                .add_enabled(!running, egui::Button::new("Resume"))
                .on_hover_text("continue the run in the output folder from its last checkpoint")
                .clicked()
            {
                self.start(Task::Train { resume: true }, ui.ctx());
            }
            if let Some(j) = &self.job {
                if ui.button("Cancel").clicked() {
                    j.cancel.store(true, Ordering::Relaxed);
                }
                ui.spinner();
            }
        });
        if !self.status.is_empty() {
            ui.add(egui::ProgressBar::new(self.progress).text(self.status.clone()));
        }
        if let Some(Ok(s)) = &self.finished {
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(format!(
                        "New model: {} (validation AUC {:.4}{})",
                        s.model_dir.display(),
                        s.valid_auc,
                        s.test_auc
                            .map(|a| format!(", test AUC {a:.4}"))
                            .unwrap_or_default()
                    ))
                    .strong(),
                );
                if ui.button("Use this model for predictions").clicked() {
                    use_model = Some(s.model_dir.clone());
                }
            });
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            self.plots(ui);
            self.preview_ui(ui);
        });
        use_model
    }

    fn schedule_fields(&mut self, ui: &mut egui::Ui) {
        let c = &mut self.cfg;
        ui.collapsing("Schedule", |ui| {
            ui.horizontal(|ui| {
                number(ui, "seed", &mut c.seed, 0..=u64::MAX);
                number(ui, "validation share", &mut c.valid_pct, 0.05..=0.5);
                number(ui, "frozen max LR", &mut c.lr_frozen, 1e-6..=1.0);
                number(ui, "unfrozen LR from", &mut c.lr_unfrozen[0], 1e-8..=1.0);
                number(ui, "to", &mut c.lr_unfrozen[1], 1e-8..=1.0);
            });
            ui.horizontal(|ui| {
                number(ui, "MixUp α (0 = off)", &mut c.mixup_alpha, 0.0..=2.0);
                number(ui, "label smoothing ε", &mut c.label_smoothing, 0.0..=0.5);
                ui.checkbox(&mut c.augment_enabled, "augment");
                number(
                    ui,
                    "largest micro-batch (0 = from memory)",
                    &mut c.max_micro_batch,
                    0..=512,
                );
                ui.checkbox(&mut c.checkpoint_blocks, "save memory")
                    .on_hover_text(
                        "Recompute each bottleneck block in the backward pass instead of keeping its \
                         intermediates (gradient checkpointing, CPU): a tenth to a fifth less memory \
                         for 35–60 % more time per step.",
                    );
            });
            ui.label("Progressive resizing stages (each frozen, then unfrozen):");
            let mut remove = None;
            egui::Grid::new("stages").striped(true).show(ui, |ui| {
                let ids: Vec<egui::Id> = ["size", "batch", "frozen epochs", "unfrozen epochs"]
                    .iter()
                    .map(|h| ui.strong(*h).id)
                    .collect();
                ui.end_row();
                for (i, s) in c.stages.iter_mut().enumerate() {
                    ui.add(egui::DragValue::new(&mut s.size).range(32..=2048))
                        .labelled_by(ids[0]);
                    ui.add(egui::DragValue::new(&mut s.batch).range(1..=512))
                        .labelled_by(ids[1]);
                    ui.add(egui::DragValue::new(&mut s.frozen_epochs).range(0..=1000))
                        .labelled_by(ids[2]);
                    ui.add(egui::DragValue::new(&mut s.unfrozen_epochs).range(0..=1000))
                        .labelled_by(ids[3]);
                    if ui.button("remove").clicked() {
                        remove = Some(i);
                    }
                    ui.end_row();
                }
            });
            if let Some(i) = remove {
                c.stages.remove(i);
            }
            if ui.button("Add stage").clicked() {
                let last = c.stages.last().copied().unwrap_or(Stage {
                    size: 224,
                    batch: 16,
                    frozen_epochs: 1,
                    unfrozen_epochs: 1,
                });
                c.stages.push(last);
            }
        });
    }

    fn plots(&self, ui: &mut egui::Ui) {
        if !self.batch_loss.is_empty() || !self.epochs.is_empty() {
            ui.columns(2, |cols| {
                cols[0].strong("Loss");
                let per_epoch = |f: fn(&EpochRecord) -> f64| -> Vec<[f64; 2]> {
                    let per = self.batch_loss.len() as f64 / self.epochs.len().max(1) as f64;
                    self.epochs
                        .iter()
                        .enumerate()
                        .map(|(i, r)| [(i + 1) as f64 * per, f(r)])
                        .collect()
                };
                Plot::new("train-loss")
                    .height(220.0)
                    .x_axis_label("batch")
                    .legend(Legend::default())
                    .show(&mut cols[0], |p| {
                        p.line(Line::new(
                            "training (per batch)",
                            PlotPoints::from(self.batch_loss.clone()),
                        ));
                        p.line(
                            Line::new(
                                "validation (per epoch)",
                                PlotPoints::from(per_epoch(|r| r.valid_loss)),
                            )
                            .color(Color32::from_rgb(240, 170, 40)),
                        );
                    });
                cols[1].strong("Validation AUC and learning rate");
                let auc: Vec<[f64; 2]> = self
                    .epochs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| [(i + 1) as f64, r.valid_auc])
                    .collect();
                let best: Vec<[f64; 2]> = self
                    .epochs
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.best)
                    .map(|(i, r)| [(i + 1) as f64, r.valid_auc])
                    .collect();
                Plot::new("train-auc")
                    .height(105.0)
                    .include_y(0.5)
                    .include_y(1.0)
                    .x_axis_label("epoch")
                    .legend(Legend::default())
                    .show(&mut cols[1], |p| {
                        p.line(Line::new("validation AUC", PlotPoints::from(auc)));
                        p.points(
                            Points::new("best checkpoints", PlotPoints::from(best))
                                .radius(4.0)
                                .color(Color32::from_rgb(90, 200, 120)),
                        );
                    });
                Plot::new("train-lr")
                    .height(105.0)
                    .x_axis_label("batch")
                    .legend(Legend::default())
                    .show(&mut cols[1], |p| {
                        p.line(Line::new(
                            "head learning rate",
                            PlotPoints::from(self.batch_lr.clone()),
                        ));
                    });
            });
        }
        if let Some(l) = &self.lr_find {
            ui.strong("LR range test (loss against log10 learning rate)");
            let pts: Vec<[f64; 2]> = l
                .lrs
                .iter()
                .zip(&l.losses)
                .map(|(&lr, &loss)| [lr.log10(), loss])
                .collect();
            Plot::new("lr-find")
                .height(200.0)
                .x_axis_label("log10 learning rate")
                .legend(Legend::default())
                .show(ui, |p| {
                    p.line(Line::new("smoothed loss", PlotPoints::from(pts)).allow_band(false));
                    if let Some(s) = l.suggestion {
                        p.vline(egui_plot::VLine::new(format!("valley {s:.2e}"), s.log10()));
                    }
                });
        }
    }

    fn preview_ui(&mut self, ui: &mut egui::Ui) {
        let Some((grid, tex)) = &mut self.preview else {
            return;
        };
        let tex = tex.get_or_insert_with(|| {
            let rgba: Vec<u8> = grid
                .pixels
                .iter()
                .flat_map(|&v| {
                    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    [g, g, g, 255]
                })
                .collect();
            ui.ctx().load_texture(
                "augment-preview",
                egui::ColorImage::from_rgba_unmultiplied(
                    [grid.width as usize, grid.height as usize],
                    &rgba,
                ),
                egui::TextureOptions::LINEAR,
            )
        });
        ui.strong("Augmented training samples, as the model is fed them (+ definite, − not)");
        let side = ui.available_width().min(512.0);
        ui.image((
            tex.id(),
            egui::vec2(side, side * grid.height as f32 / grid.width.max(1) as f32),
        ));
    }
}
