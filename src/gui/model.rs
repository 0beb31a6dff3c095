//! The model in the workstation: a loaded model folder, predictions and Grad-CAM heatmaps computed on a
//! worker thread per film (the UI never waits for the network), kept per film and model.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use super::loader::next_key;
use super::viewer::{Film, Heatmap};
use crate::imaging::GreyImage;
use crate::model::gradcam::CamMethod;
use crate::model::predict::{Predictor, default_device};

/// The model's output for one film.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// Probability of definite radiographic sacroiliitis.
    pub probability: f32,
    /// Calls at the sensitive, balanced and specific cut-offs.
    pub calls: Option<[bool; 3]>,
    /// Grad-CAM of the predicted class over the film.
    pub heat: Heatmap,
    /// The class the heatmap explains.
    pub class: usize,
    /// Grad-CAM, or Grad-CAM++ when Grad-CAM was empty.
    pub method: CamMethod,
    /// Why the model should not be trusted on this film (its DICOM attributes are outside the card's
    /// scope), shown beside the result.
    pub warning: Option<String>,
}

type Done = (PathBuf, String, Result<ModelOutput, String>);

/// Finished work: (film, model SHA-256, probability) of each success, and (film, reason) of each failure.
pub type Finished = (Vec<(PathBuf, String, f32)>, Vec<(PathBuf, String)>);

/// A loaded model and its results.
pub struct ModelState {
    /// The model.
    pub predictor: Arc<Predictor>,
    /// Where it was loaded from.
    pub dir: PathBuf,
    results: HashMap<PathBuf, ModelOutput>,
    failed: HashMap<PathBuf, String>,
    pending: HashSet<PathBuf>,
    tx: Sender<Done>,
    rx: Receiver<Done>,
}

impl std::fmt::Debug for ModelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelState")
            .field("dir", &self.dir)
            .finish()
    }
}

/// Largest side of the heatmap texture (it is smooth: layer4's grid upsampled).
const HEAT_SIDE: u32 = 512;

/// The model's input and prediction for one radiograph as the viewer shows it by default.
fn predict_one(
    predictor: &Predictor,
    radiograph: &crate::imaging::Radiograph,
) -> Result<(crate::model::Tensor, crate::model::predict::Prediction), String> {
    let unit = radiograph.model_unit(predictor.card.preprocess.window);
    let input = predictor
        .input(&unit.pixels, unit.width, unit.height)
        .map_err(|e| e.to_string())?;
    let pred = predictor
        .predict(std::slice::from_ref(&input))
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no prediction")?;
    Ok((input, pred))
}

fn run(predictor: &Predictor, film: &Film) -> Result<ModelOutput, String> {
    let (input, pred) = predict_one(predictor, &film.radiograph)?;
    // The evidence for the class the model predicts (as `sacro explain` does by default).
    let class = pred
        .logits
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
        .0;
    let mut method = CamMethod::GradCam;
    let mut cam = predictor
        .explain(&input, class, method)
        .map_err(|e| e.to_string())?;
    if cam.values.iter().all(|&v| v <= 0.0) {
        // No positive Grad-CAM evidence anywhere: Grad-CAM++ (positive gradients only) still shows where
        // the class score rises.
        method = CamMethod::GradCamPlusPlus;
        cam = predictor
            .explain(&input, class, method)
            .map_err(|e| e.to_string())?;
    }
    let grid = GreyImage {
        width: cam.width as u32,
        height: cam.height as u32,
        pixels: cam.values,
    };
    let (w, h) = (film.radiograph.width(), film.radiograph.height());
    let f = (f64::from(HEAT_SIDE) / f64::from(w.max(h))).min(1.0);
    let (hw, hh) = (
        ((f64::from(w) * f).round() as u32).max(1),
        ((f64::from(h) * f).round() as u32).max(1),
    );
    let heat = predictor
        .card
        .preprocess
        .back_to_image(&grid, hw, hh)
        .map_err(|e| e.to_string())?;
    let r = &film.radiograph;
    Ok(ModelOutput {
        warning: predictor
            .card
            .scope
            .warning(&r.identity, r.photometric.is_colour()),
        probability: pred.probability,
        calls: pred.calls,
        class,
        method,
        heat: Heatmap {
            key: next_key(),
            width: hw,
            height: hh,
            rgba: Arc::new(crate::imaging::overlay::heat_rgba(&heat.pixels)),
        },
    })
}

impl ModelState {
    /// Loads a model folder (card + weights, checked).
    pub fn load(dir: &Path) -> Result<Self, String> {
        let predictor = Predictor::load(dir, default_device()).map_err(|e| e.to_string())?;
        let (tx, rx) = channel();
        Ok(Self {
            predictor: Arc::new(predictor),
            dir: dir.to_path_buf(),
            results: HashMap::new(),
            failed: HashMap::new(),
            pending: HashSet::new(),
            tx,
            rx,
        })
    }

    /// SHA-256 of the weights (identifies the model in the study store).
    pub fn sha256(&self) -> &str {
        &self.predictor.sha256
    }

    /// Starts the model on a film unless done, running or failed.
    pub fn request(&mut self, path: &Path, film: &Arc<Film>, ctx: &egui::Context) {
        if self.results.contains_key(path)
            || self.pending.contains(path)
            || self.failed.contains_key(path)
        {
            return;
        }
        self.pending.insert(path.to_path_buf());
        let (predictor, film, tx, ctx) = (
            Arc::clone(&self.predictor),
            Arc::clone(film),
            self.tx.clone(),
            ctx.clone(),
        );
        let path = path.to_path_buf();
        let sha = self.predictor.sha256.clone();
        let spawned = std::thread::Builder::new()
            .name("sacro-model".into())
            .spawn(move || {
                let out = run(&predictor, &film);
                let _ = tx.send((path, sha, out));
                ctx.request_repaint();
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the model thread: {e}");
        }
    }

    /// Collects finished results; returns (film, model SHA-256, probability) of each new success and the
    /// failures.
    pub fn poll(&mut self) -> Finished {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        while let Ok((path, sha, out)) = self.rx.try_recv() {
            self.pending.remove(&path);
            match out {
                Ok(o) => {
                    ok.push((path.clone(), sha, o.probability));
                    self.results.insert(path, o);
                }
                Err(e) => {
                    bad.push((path.clone(), e.clone()));
                    self.failed.insert(path, e);
                }
            }
        }
        (ok, bad)
    }

    /// The result for a film, if computed.
    pub fn result(&self, path: &Path) -> Option<&ModelOutput> {
        self.results.get(path)
    }

    /// Whether the model is running on a film.
    pub fn is_pending(&self, path: &Path) -> bool {
        self.pending.contains(path)
    }

    /// Waits until nothing is running (tests).
    pub fn wait_idle(&mut self, timeout: std::time::Duration) -> Finished {
        let start = std::time::Instant::now();
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        while !self.pending.is_empty() && start.elapsed() < timeout {
            let (o, b) = self.poll();
            ok.extend(o);
            bad.extend(b);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (o, b) = self.poll();
        ok.extend(o);
        bad.extend(b);
        (ok, bad)
    }
}

/// One case's outcome in a whole-study run.
type CaseDone = (String, Result<f32, String>);

/// The model over a whole study on a worker thread: decode, predict, report each case; cancellable
/// between cases. The UI records every result in the study store as it arrives.
pub struct StudyRun {
    /// Cases to run.
    pub total: usize,
    /// Cases finished (successes and failures).
    pub done: usize,
    /// Cases that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// SHA-256 of the model the run uses.
    pub sha256: String,
    cancel: Arc<AtomicBool>,
    rx: Receiver<CaseDone>,
    started: std::time::Instant,
    stopped: bool,
}

impl std::fmt::Debug for StudyRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudyRun")
            .field("done", &self.done)
            .field("total", &self.total)
            .finish()
    }
}

impl StudyRun {
    /// Starts the model on `cases` (case ID, film).
    pub fn start(
        predictor: &Arc<Predictor>,
        cases: Vec<(String, PathBuf)>,
        ctx: &egui::Context,
    ) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let total = cases.len();
        let (predictor_w, cancel_w, ctx_w) =
            (Arc::clone(predictor), Arc::clone(&cancel), ctx.clone());
        let spawned = std::thread::Builder::new()
            .name("sacro-study-model".into())
            .spawn(move || {
                for (case, path) in cases {
                    if cancel_w.load(Ordering::Relaxed) {
                        break;
                    }
                    let out = crate::imaging::load(&path, &crate::imaging::LoadOptions::default())
                        .map_err(|e| e.to_string())
                        .and_then(|r| predict_one(&predictor_w, &r).map(|(_, p)| p.probability));
                    if tx.send((case, out)).is_err() {
                        break;
                    }
                    ctx_w.request_repaint();
                }
            });
        let mut run = Self {
            total,
            done: 0,
            failed: Vec::new(),
            sha256: predictor.sha256.clone(),
            cancel,
            rx,
            started: std::time::Instant::now(),
            stopped: false,
        };
        if let Err(e) = spawned {
            run.failed
                .push((String::new(), format!("cannot start the model thread: {e}")));
            run.total = 0;
            run.stopped = true;
        }
        run
    }

    /// Asks the worker to stop after the case it is on.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether cancel was asked for.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// New successes (case ID, probability); failures are kept in `failed`.
    pub fn poll(&mut self) -> Vec<(String, f32)> {
        let mut ok = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok((case, out)) => {
                    self.done += 1;
                    match out {
                        Ok(p) => ok.push((case, p)),
                        Err(e) => self.failed.push((case, e)),
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.stopped = true;
                    break;
                }
            }
        }
        ok
    }

    /// The worker has stopped (every case done, or cancelled) and everything it sent was collected.
    pub fn finished(&self) -> bool {
        self.stopped
    }

    /// Seconds left at the pace so far.
    pub fn eta_s(&self) -> Option<f64> {
        (self.done > 0).then(|| {
            self.started.elapsed().as_secs_f64() / self.done as f64
                * (self.total - self.done.min(self.total)) as f64
        })
    }
}
