//! `sacro train` and `sacro lr-find`: fine-tuning with the seed study's schedule from a TOML configuration,
//! on a study's consensus labels or a folder + CSV.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sacro::model::predict::default_device;
use sacro::train::data::{self, Dataset};
use sacro::train::trainer::{self, Event};
use sacro::train::{Stage, TrainConfig};

/// Where the data and the schedule come from (shared by `train` and `lr-find`).
#[derive(Args)]
pub struct DataArgs {
    /// Labels: a CSV (`file,label` or `file,left_grade,right_grade`, optional `split`) or a study file
    /// (`.sacro`, its consensus labels).
    #[arg(long)]
    data: PathBuf,
    /// Training configuration (TOML); the study's schedule when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override the epochs of every phase: `FROZEN,UNFROZEN` (e.g. `2,4`).
    #[arg(long)]
    epochs: Option<String>,
    /// Override the stages' sizes and batches: `SIZE:BATCH,…` (e.g. `224:16,512:8`).
    #[arg(long)]
    sizes: Option<String>,
    /// Start from these weights (model folder or .safetensors).
    #[arg(long)]
    base: Option<PathBuf>,
    /// Recompute each bottleneck block in the backward pass (gradient checkpointing, CPU): less memory
    /// for about a third more arithmetic; as `checkpoint_blocks = true` in the configuration.
    #[arg(long)]
    checkpoint_blocks: bool,
}

/// Arguments of `sacro train`.
#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Output folder: train.toml, metrics.csv, checkpoint/, model/.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Only write a grid of augmented training samples to this PNG and stop.
    #[arg(long)]
    preview: Option<PathBuf>,
}

/// Arguments of `sacro lr-find`.
#[derive(Args)]
pub struct LrFindArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Output prefix: PREFIX.csv and PREFIX.png.
    #[arg(long, default_value = "lr_find")]
    out: PathBuf,
    /// Number of mini-batches.
    #[arg(long, default_value_t = 100)]
    iterations: usize,
    /// First learning rate.
    #[arg(long, default_value_t = 1e-7)]
    start: f64,
    /// Last learning rate.
    #[arg(long, default_value_t = 10.0)]
    end: f64,
}

fn config_of(args: &DataArgs, resume_dir: Option<&Path>) -> anyhow::Result<TrainConfig> {
    let mut cfg = match (&args.config, resume_dir) {
        (Some(path), _) => TrainConfig::load(path)?,
        (None, Some(dir)) if dir.join("train.toml").exists() => {
            TrainConfig::load(&dir.join("train.toml"))?
        }
        _ => TrainConfig::default(),
    };
    if let Some(text) = &args.sizes {
        let mut stages = Vec::new();
        for part in text.split(',') {
            let (s, b) = part
                .split_once(':')
                .with_context(|| format!("--sizes {text:?}: SIZE:BATCH,…"))?;
            let template = cfg.stages.first().copied().unwrap_or(Stage {
                size: 224,
                batch: 64,
                frozen_epochs: 1,
                unfrozen_epochs: 1,
            });
            stages.push(Stage {
                size: s
                    .trim()
                    .parse()
                    .with_context(|| format!("--sizes: size {s:?}"))?,
                batch: b
                    .trim()
                    .parse()
                    .with_context(|| format!("--sizes: batch {b:?}"))?,
                ..template
            });
        }
        cfg.stages = stages;
    }
    if let Some(text) = &args.epochs {
        let v: Vec<usize> = text
            .split(',')
            .map(|x| x.trim().parse())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--epochs {text:?}: FROZEN,UNFROZEN"))?;
        let [frozen, unfrozen] = v[..] else {
            bail!("--epochs {text:?}: FROZEN,UNFROZEN");
        };
        for s in &mut cfg.stages {
            s.frozen_epochs = frozen;
            s.unfrozen_epochs = unfrozen;
        }
    }
    if let Some(base) = &args.base {
        cfg.base_weights = Some(base.clone());
    }
    if args.checkpoint_blocks {
        cfg.checkpoint_blocks = true;
    }
    cfg.check()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    Ok(cfg)
}

/// A flag that the first Ctrl-C (SIGINT) or SIGTERM sets: the run stops before its next batch (or film,
/// while decoding) and says how to resume. A second Ctrl-C exits at once (status 130).
fn cancel_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let cancel = Arc::new(AtomicBool::new(false));
    // The shutdown first: it acts only when the flag is already set, i.e. on the second signal.
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&cancel))
        .context("installing the Ctrl-C handler")?;
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&cancel))
            .context("installing the Ctrl-C handler")?;
    }
    Ok(cancel)
}

/// `result`, or the exit status 130 and what to do next where the user cancelled.
fn unless_cancelled<T>(
    result: Result<T, sacro::train::TrainError>,
    resume: Option<&Path>,
) -> anyhow::Result<Result<T, ExitCode>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(sacro::train::TrainError::Cancelled) => {
            match resume {
                Some(out) if trainer::resumable(out) => esay!(
                    "cancelled: the last completed epoch is checkpointed in {}; the same command with \
                     --resume continues from it",
                    out.display()
                ),
                Some(_) => esay!(
                    "cancelled before the first epoch ended: nothing was checkpointed; the same \
                     command without --resume starts again"
                ),
                None => esay!("cancelled"),
            }
            Ok(Err(ExitCode::from(130)))
        }
        Err(e) => Err(e.into()),
    }
}

fn load_data(
    args: &DataArgs,
    cfg: &TrainConfig,
    cancel: &AtomicBool,
) -> anyhow::Result<Result<Dataset, ExitCode>> {
    let bar = bar(0, "decoding");
    let opened = data::open(
        &args.data,
        cfg,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
        cancel,
    );
    bar.finish_and_clear();
    let (ds, notes) = match unless_cancelled(opened, None)? {
        Ok(opened) => opened,
        Err(code) => return Ok(Err(code)),
    };
    for n in notes {
        esay!("{n}");
    }
    let count = |s| ds.indices(s).len();
    esay!(
        "{} films: {} training, {} validation, {} test",
        ds.examples.len(),
        count(data::Split::Train),
        count(data::Split::Valid),
        count(data::Split::Test)
    );
    Ok(Ok(ds))
}

fn bar(len: u64, msg: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:10} {bar:40} {pos}/{len} {elapsed}<{eta} {prefix}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(msg);
    bar
}

/// Runs `sacro train`.
pub fn train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let cfg = config_of(&args.data, args.resume.then_some(args.out.as_path()))?;
    let cancel = cancel_on_signals()?;
    let data = match load_data(&args.data, &cfg, &cancel)? {
        Ok(data) => data,
        Err(code) => return Ok(code),
    };
    if let Some(png) = &args.preview {
        let size = cfg.stages.first().map_or(224, |s| s.size).min(256);
        let grid = sacro::train::preview::augmented_grid(&cfg, &data, size, (4, 4), cfg.seed);
        let levels = sacro::imaging::export::GreyLevels::Eight(
            grid.pixels
                .iter()
                .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect(),
        );
        sacro::imaging::export::write_grey(
            png,
            grid.width,
            grid.height,
            &levels,
            sacro::imaging::export::OutputFormat::Png,
        )?;
        say!(
            "{}: 16 augmented training samples at {size}² (+ definite, − not)",
            png.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let device = default_device();
    esay!("training on {device:?}");
    let mut epoch_bar: Option<ProgressBar> = None;
    let mut on_event = |e: Event| match e {
        Event::PhaseStarted {
            phase,
            phases,
            batches,
            micro_batch,
        } => {
            if let Some(b) = epoch_bar.take() {
                b.finish_and_clear();
            }
            esay!(
                "phase {}/{}: {}², {}, {} epochs, batch {} (micro-batch {micro_batch})",
                phase.index + 1,
                phases,
                phase.size,
                if phase.frozen { "frozen" } else { "unfrozen" },
                phase.epochs,
                phase.batch
            );
            epoch_bar = Some(bar(batches as u64, "epoch"));
        }
        Event::Batch { batch, loss, .. } => {
            if let Some(b) = &epoch_bar {
                b.set_position(batch as u64 + 1);
                b.set_prefix(format!("loss {loss:.4}"));
            }
        }
        Event::Epoch(r) => {
            if let Some(b) = &epoch_bar {
                b.reset();
            }
            let line = format!(
                "  epoch {:>3}: train loss {:.4}  valid loss {:.4}  AUC {:.4}{}  {:.0} s",
                r.epoch + 1,
                r.train_loss,
                r.valid_loss,
                r.valid_auc,
                if r.best { " *" } else { "" },
                r.seconds
            );
            match &epoch_bar {
                Some(b) => b.suspend(|| esay!("{line}")),
                None => esay!("{line}"),
            }
        }
        Event::Message(m) => esay!("{m}"),
        Event::Loading { .. } | Event::LrStep { .. } => {}
    };
    let trained = sacro::train::train(
        &cfg,
        &data,
        &args.out,
        args.resume,
        &device,
        &mut on_event,
        &cancel,
    );
    if let Some(b) = epoch_bar {
        b.finish_and_clear();
    }
    let summary = match unless_cancelled(trained, Some(&args.out))? {
        Ok(summary) => summary,
        Err(code) => return Ok(code),
    };
    say!(
        "model: {}\nvalidation AUC {:.4}{}",
        summary.model_dir.display(),
        summary.valid_auc,
        summary
            .test_auc
            .map(|a| format!(", test AUC {a:.4}"))
            .unwrap_or_default()
    );
    if let Some(c) = summary.cutoffs {
        say!(
            "cut-offs (validation): sensitive {:.4}, balanced {:.4}, specific {:.4}",
            c.sensitive,
            c.balanced,
            c.specific
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `sacro lr-find`.
pub fn lr_find(args: LrFindArgs) -> anyhow::Result<ExitCode> {
    if !(args.start > 0.0 && args.end > args.start && args.iterations >= 10) {
        bail!("--start must be > 0 and below --end, with at least 10 --iterations");
    }
    let cfg = config_of(&args.data, None)?;
    let cancel = cancel_on_signals()?;
    let data = match load_data(&args.data, &cfg, &cancel)? {
        Ok(data) => data,
        Err(code) => return Ok(code),
    };
    let device = default_device();
    let bar = bar(args.iterations as u64, "lr_find");
    let found = sacro::train::lr_find(
        &cfg,
        &data,
        &device,
        (args.start, args.end, args.iterations),
        &mut |e| {
            if let Event::LrStep {
                iteration,
                lr,
                loss,
            } = e
            {
                bar.set_position(iteration as u64 + 1);
                bar.set_prefix(format!("lr {lr:.2e} loss {loss:.4}"));
            }
        },
        &cancel,
    );
    bar.finish_and_clear();
    let result = match unless_cancelled(found, None)? {
        Ok(result) => result,
        Err(code) => return Ok(code),
    };
    let csv = args.out.with_extension("csv");
    let png = args.out.with_extension("png");
    sacro::report::plots::write_lr_find(&csv, &png, &result.lrs, &result.losses, result.suggestion)
        .map_err(anyhow::Error::msg)?;
    match result.suggestion {
        Some(s) => say!("valley: {s:.3e}"),
        None => say!("no suggestion (the loss did not fall)"),
    }
    say!("{} and {}", csv.display(), png.display());
    Ok(ExitCode::SUCCESS)
}
