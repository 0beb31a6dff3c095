//! `sacro predict` and `sacro explain`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sacro::imaging::{WindowPolicy, batch, overlay};
use sacro::model::gradcam::CamMethod;
use sacro::model::predict::{Predictor, default_device};

use super::films::{model_dir, windowed, windowed_film};

/// Arguments of `sacro predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// Model folder (model.json + weights.safetensors); default: the bundled demo model (synthetic
    /// phantoms only, not for clinical use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Radiographs: files or folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// CSV to write (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Add the raw outputs logit_0 … logit_{n-1}.
    #[arg(long)]
    logits: bool,
    /// Radiographs per forward pass.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    batch: u32,
    /// Decode one film at a time, after the previous batch's prediction (the least memory; the baseline
    /// of benches/predict_folder.sh). By default a batch's films decode at once and the next batch
    /// decodes while the model runs.
    #[arg(long)]
    sequential_decode: bool,
    /// Write each film's path as given in the `file` column (default: its file name only, because folder
    /// names of PACS exports often name the patient).
    #[arg(long)]
    show_paths: bool,
}

/// Arguments of `sacro explain`.
#[derive(Args)]
pub struct ExplainArgs {
    /// Model folder; default: the bundled demo model (synthetic phantoms only, not for clinical use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Radiograph.
    file: PathBuf,
    /// PNG to write: the windowed radiograph with the heatmap over it.
    #[arg(long)]
    out: PathBuf,
    /// Class to explain (default: the predicted class).
    #[arg(long)]
    class: Option<usize>,
    /// Opacity of the heatmap, 0–1.
    #[arg(long, default_value_t = 0.4)]
    opacity: f32,
    /// Grad-CAM++ instead of Grad-CAM.
    #[arg(long)]
    plus_plus: bool,
}

/// Runs `sacro predict`.
pub fn predict(args: PredictArgs) -> anyhow::Result<ExitCode> {
    let model = model_dir(args.model)?;
    let predictor = Predictor::load(&model, default_device())?;
    let classes = predictor.card.architecture.classes;
    if predictor.card.cutoffs.is_none() {
        esay!(
            "warning: {} has no cut-offs in its card; the call columns stay empty",
            model.display()
        );
    }
    let gathered = batch::gather_inputs(&args.inputs)?;
    for s in &gathered.skipped {
        esay!("skipped: {s}");
    }
    let inputs = gathered.files;
    if inputs.is_empty() {
        bail!("no image files found under the given inputs");
    }
    let out: Box<dyn std::io::Write> = match &args.out {
        Some(p) => {
            sacro::imaging::export::refuse_to_replace(p)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Box::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot write {}", p.display()))?,
            )
        }
        None => Box::new(std::io::stdout()),
    };
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = [
        "case",
        "file",
        "probability",
        "call_sensitive",
        "call_balanced",
        "call_specific",
    ]
    .map(String::from)
    .to_vec();
    if args.logits {
        header.extend((0..classes).map(|i| format!("logit_{i}")));
    }
    header.push("scope_warning".into());
    header.push("sop_instance_uid".into());
    w.write_record(&header)?;
    let mut out_of_scope = 0usize;
    let bar = ProgressBar::new(inputs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if args.out.is_none() || inputs.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut failures = Vec::new();
    // A batch's films decode at once, and the next batch decodes while the model runs on this one (two
    // batches in memory at most); the rows keep the files' order.
    let chunks: Vec<&[(PathBuf, PathBuf)]> = inputs.chunks(args.batch as usize).collect();
    let window = predictor.card.preprocess.window;
    let sequential = args.sequential_decode;
    let decode = |chunk: &[(PathBuf, PathBuf)]| -> Vec<_> {
        use rayon::prelude::*;
        if sequential {
            return chunk
                .iter()
                .map(|(_, file)| windowed_film(file, window))
                .collect();
        }
        chunk
            .par_iter()
            .map(|(_, file)| windowed_film(file, window))
            .collect()
    };
    let mut pending = chunks.first().map(|c| decode(c));
    for (ci, chunk) in chunks.iter().enumerate() {
        let mut tensors = Vec::new();
        let mut files = Vec::new();
        let decoded = pending.take().unwrap_or_default();
        for ((_, file), film) in chunk.iter().zip(decoded) {
            match film.and_then(|(img, _, r)| {
                let warning = predictor
                    .card
                    .scope
                    .warning(&r.identity, r.photometric.is_colour());
                Ok((
                    predictor.input(&img.pixels, img.width, img.height)?,
                    (warning, r.identity.sop_instance_uid),
                ))
            }) {
                Ok((t, warning)) => {
                    tensors.push(t);
                    files.push((file, warning));
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        let (predictions, next) = if sequential {
            let predictions = predictor.predict(&tensors);
            (predictions, chunks.get(ci + 1).map(|c| decode(c)))
        } else {
            rayon::join(
                || predictor.predict(&tensors),
                || chunks.get(ci + 1).map(|c| decode(c)),
            )
        };
        pending = next;
        for ((file, (warning, uid)), p) in files.iter().zip(predictions?) {
            let case = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let call = |i: usize| {
                p.calls
                    .map(|c| u8::from(c[i]).to_string())
                    .unwrap_or_default()
            };
            let shown = if args.show_paths {
                file.display().to_string()
            } else {
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let mut row = vec![
                case,
                shown,
                format!("{:.6}", p.probability),
                call(0),
                call(1),
                call(2),
            ];
            if args.logits {
                row.extend(p.logits.iter().map(|l| format!("{l:.6}")));
            }
            if let Some(w) = warning {
                out_of_scope += 1;
                esay!("warning: {}: {w}", file.display());
            }
            row.push(warning.clone().unwrap_or_default());
            row.push(uid.clone().unwrap_or_default());
            w.write_record(row.iter().map(|c| sacro::escape::csv_cell(c).into_owned()))?;
        }
        bar.inc(chunk.len() as u64);
    }
    w.flush()?;
    bar.finish_and_clear();
    if out_of_scope > 0 {
        esay!(
            "warning: {out_of_scope} film(s) outside what the model is for (column scope_warning)"
        );
    }
    for f in &failures {
        esay!("failed: {f}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs `sacro explain`.
pub fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let model = model_dir(args.model)?;
    let predictor = Predictor::load(&model, default_device())?;
    let (img, grey) = windowed(&args.file, predictor.card.preprocess.window)?;
    let input = predictor.input(&img.pixels, img.width, img.height)?;
    let prediction = predictor
        .predict(std::slice::from_ref(&input))?
        .into_iter()
        .next()
        .context("no prediction")?;
    let predicted = prediction
        .logits
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
        .0;
    let class = args.class.unwrap_or(predicted);
    let method = if args.plus_plus {
        CamMethod::GradCamPlusPlus
    } else {
        CamMethod::GradCam
    };
    let heat = predictor.explain_on_film(&input, class, method, (img.width, img.height))?;
    let rgb = overlay::heatmap_overlay(&grey, &heat.pixels, img.width, img.height, args.opacity)?;
    overlay::write_png(&args.out, &rgb)?;
    say!(
        "{}: probability {:.4} of {}; heatmap for class {} ({}) written to {}",
        args.file.display(),
        prediction.probability,
        predictor.card.class_names[predictor.card.positive_class],
        class,
        predictor
            .card
            .class_names
            .get(class)
            .map(String::as_str)
            .unwrap_or("?"),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Model folders: import a PyTorch checkpoint, show a card.
#[derive(clap::Subcommand)]
pub enum ModelCommand {
    /// Import a PyTorch checkpoint (torchvision state dict, or fastai's learn.save) into a model folder.
    Import {
        /// The .pth file.
        #[arg(long)]
        pth: PathBuf,
        /// Model folder to write.
        #[arg(long)]
        out: PathBuf,
        /// `sacroiliitis` (ResNet-50 + fastai head, 2 classes) or `imagenet` (ResNet-50 + fc, 1000 classes).
        #[arg(long, default_value = "sacroiliitis")]
        arch: String,
        /// Input size of the model's pre-processing.
        #[arg(long, default_value_t = 512)]
        size: u32,
        /// How the checkpoint's training fed films: `as-stored` (8-bit PNG/JPEG/TIFF exports as v/255, as
        /// torchvision and fastai read them) or `file-or-auto` (every film through its window or the
        /// automatic one).
        #[arg(long, default_value = "as-stored", value_parser = WindowPolicy::parse)]
        window_policy: WindowPolicy,
        /// Cut-offs SENSITIVE,BALANCED,SPECIFIC to put in the card.
        #[arg(long)]
        cutoffs: Option<String>,
        /// What the weights were trained on (goes into the card).
        #[arg(long, default_value = "unknown: imported checkpoint")]
        training_data: String,
    },
    /// Copy a model folder with its weights stored as f16 (half the size; for shipping a model).
    Half {
        /// Model folder to read.
        dir: PathBuf,
        /// Model folder to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a model folder's card.
    Info {
        /// Model folder.
        dir: PathBuf,
    },
    /// How much of a whole-image model's Grad-CAM (positive class) lies inside the true joint boxes of
    /// films whose boxes are known (a phantom truth.csv), beside the boxes' share of the film.
    Localisation {
        /// The truth.csv of `sacro phantom` (columns case, file, definite and the boxes).
        truth: PathBuf,
        /// Model folder; default: the bundled demo model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Per-film CSV to write.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `sacro model …`.
pub fn model(cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    use sacro::model::card::{self, ModelCard};
    use sacro::model::preprocess::Preprocess;
    use sacro::model::{NetworkConfig, pth, weights};
    match cmd {
        ModelCommand::Localisation { truth, model, out } => {
            return super::localisation::localisation(&truth, model, out.as_deref());
        }
        ModelCommand::Import {
            pth: file,
            out,
            arch,
            size,
            window_policy,
            cutoffs,
            training_data,
        } => {
            let (config, class_names, positive) = match arch.as_str() {
                "sacroiliitis" => (
                    NetworkConfig::sacroiliitis(),
                    vec![
                        "no definite sacroiliitis".to_string(),
                        "definite radiographic sacroiliitis".to_string(),
                    ],
                    1,
                ),
                "imagenet" => (
                    NetworkConfig::imagenet_resnet50(),
                    (0..1000).map(|i| format!("imagenet_{i}")).collect(),
                    0,
                ),
                other => bail!("--arch {other:?}: sacroiliitis or imagenet"),
            };
            let cutoffs = match cutoffs {
                Some(text) => Some(
                    sacro::stats::cutoffs::Cutoffs::parse(&text)
                        .map_err(|e| anyhow::anyhow!("--cutoffs {e}"))?,
                ),
                None => None,
            };
            let tensors = pth::read_pth(&file)?;
            let (_, varmap) =
                weights::from_tensors(&file, config, &tensors, &sacro::model::Device::Cpu)?;
            let source_sha = weights::sha256_hex(&std::fs::read(&file)?);
            let card = ModelCard {
                name: out
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into()),
                architecture: config,
                preprocess: Preprocess {
                    window: window_policy,
                    ..Preprocess::imagenet(size)
                },
                class_names,
                positive_class: positive,
                cutoffs,
                training_data: format!(
                    "{training_data} (imported from {}, SHA-256 {source_sha})",
                    file.display()
                ),
                intended_use: "research; not validated for clinical use".into(),
                weights_sha256: String::new(),
                sacro_version: String::new(),
                scope: Default::default(),
            };
            let card = card::save(&out, &card, &varmap)?;
            say!(
                "wrote {} (weights SHA-256 {})",
                out.display(),
                card.weights_sha256
            );
        }
        ModelCommand::Half { dir, out } => {
            let card = card::save_half(&dir, &out)?;
            say!(
                "wrote {} (f16 weights, SHA-256 {})",
                out.display(),
                card.weights_sha256
            );
        }
        ModelCommand::Info { dir } => {
            let text = std::fs::read_to_string(dir.join(card::CARD_FILE))
                .with_context(|| format!("{}: no model card", dir.display()))?;
            let card: ModelCard = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a model card", dir.display()))?;
            say!("{}", serde_json::to_string_pretty(&card)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `sacro bench model`: CSV `work,median_s,min_s,repeat`. On a GPU each timing waits for the device
/// to finish (candle's CUDA work is asynchronous). `only`: the measurements whose name starts with it.
pub fn bench_model(
    repeat: usize,
    device: &str,
    train_batch: &[usize],
    only: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use sacro::model::{Device, Network, NetworkConfig};
    use std::time::Instant;
    let device = match device {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0)
            .context("--device cuda: no CUDA device (is this a build with --features cuda?)")?,
        other => bail!("--device {other:?}: cpu or cuda"),
    };
    if train_batch.iter().any(|&b| b == 0 || b > 512) {
        bail!("--train-batch {train_batch:?}: batch sizes from 1 to 512");
    }
    // As `sacro predict` runs it: the weights as plain tensors (no autograd graph).
    let net = {
        let config = NetworkConfig::sacroiliitis();
        let (_, varmap) = Network::initialised(config, &device)?;
        sacro::model::weights::inference_network(config, &varmap)?
    };
    let time = |f: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<(f64, f64)> {
        f()?;
        device.synchronize()?;
        let mut t: Vec<f64> = Vec::new();
        for _ in 0..repeat.max(1) {
            let s = Instant::now();
            f()?;
            device.synchronize()?;
            t.push(s.elapsed().as_secs_f64());
        }
        t.sort_by(f64::total_cmp);
        Ok((t[t.len() / 2], t[0]))
    };
    let wanted = |work: &str| only.is_none_or(|prefix| work.starts_with(prefix));
    say!("work,median_s,min_s,repeat");
    for (size, batch) in [(224usize, 1usize), (512, 1), (768, 1), (224, 8)] {
        if !wanted(&format!("forward_{size}_b{batch}")) {
            continue;
        }
        let x = sacro::model::random_input(batch, size, &device)?;
        let (med, min) = time(&|| {
            net.forward_t(&x, false)?;
            Ok(())
        })?;
        say!("forward_{size}_b{batch},{med:.4},{min:.4},{repeat}");
    }
    if wanted("gradcam_512") {
        let x = sacro::model::random_input(1, 512, &device)?;
        let (med, min) = time(&|| {
            sacro::model::gradcam::cam(&net, &x, 1, sacro::model::gradcam::CamMethod::GradCam)?;
            Ok(())
        })?;
        say!("gradcam_512,{med:.4},{min:.4},{repeat}");
    }
    drop(net);
    // Training steps as `sacro train` takes them: train-mode forward, cross-entropy, backward, AdamW.
    for &batch in train_batch {
        if !wanted(&format!("train_step_224_b{batch}")) {
            continue;
        }
        let bench =
            std::cell::RefCell::new(sacro::train::bench::StepBench::new(batch, 224, &device)?);
        let (med, min) = time(&|| {
            bench.borrow_mut().step()?;
            Ok(())
        })?;
        say!("train_step_224_b{batch},{med:.4},{min:.4},{repeat}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `sacro bench memory`: training steps at `size`² and batch `batch` on the CPU, then the process's
/// peak resident memory (Linux's `VmHWM`), which includes the network, its gradients and the optimiser's
/// moments.
pub fn bench_memory(
    size: usize,
    batch: usize,
    steps: usize,
    checkpoint: bool,
    frozen: bool,
) -> anyhow::Result<ExitCode> {
    use std::time::Instant;
    if !(32..=2048).contains(&size) || !(1..=256).contains(&batch) {
        bail!("--size {size} --batch {batch}: sizes 32–2048, batches 1–256");
    }
    let device = sacro::model::Device::Cpu;
    let mut bench = sacro::train::bench::StepBench::new(batch, size, &device)?;
    bench.set_checkpointing(checkpoint);
    bench.set_frozen(frozen);
    let mut times = Vec::new();
    for _ in 0..steps.max(1) {
        let s = Instant::now();
        bench.step()?;
        times.push(s.elapsed().as_secs_f64());
    }
    let status = std::fs::read_to_string("/proc/self/status")
        .context("peak memory: /proc/self/status (Linux only)")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("peak memory: no VmHWM in /proc/self/status")?;
    say!("work,peak_rss_mb,step_s");
    say!(
        "train_step_{size}_b{batch}{}{},{:.0},{:.3}",
        if checkpoint { "_checkpointed" } else { "" },
        if frozen { "_frozen" } else { "" },
        kb / 1024.0,
        times.last().copied().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
