//! `sacro info`, `sacro convert` and `sacro bench decode`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sacro::imaging::batch::{self, ConvertSettings, WindowChoice};
use sacro::imaging::export::OutputFormat;
use sacro::imaging::{self, LoadOptions, NamedPreset, Window};

#[derive(Args)]
pub struct LoadArgs {
    /// Refuse images with more pixels than this (all frames).
    #[arg(long, default_value_t = 100_000_000)]
    max_pixels: u64,
    /// Frame of a multi-frame file, 1-based.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    frame: u32,
}

impl LoadArgs {
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            max_pixels: self.max_pixels,
            frame: self.frame - 1,
            ..LoadOptions::default()
        }
    }
}

#[derive(Args)]
pub struct InfoArgs {
    /// Files or folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// One JSON object per file (JSON Lines).
    #[arg(long)]
    json: bool,
    /// Also print patient name and ID (protected health information).
    #[arg(long)]
    show_phi: bool,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// Files or folders (folders are walked recursively).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder (created if missing); folder structure under each input folder is kept.
    #[arg(long)]
    out: PathBuf,
    /// Fixed window CENTER/WIDTH in modality units, e.g. 550/1024.
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["auto", "preset"])]
    window: Option<String>,
    /// Automatic window (0.5–99.5 percentiles inside the collimated area).
    #[arg(long, conflicts_with = "preset")]
    auto: bool,
    /// Named preset: auto, full, contrast, file1…fileN, or a file preset's explanation (e.g. BONE).
    #[arg(long)]
    preset: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Tiff)]
    format: OutputFormat,
    /// Bits per pixel of windowed output.
    #[arg(long, default_value_t = 8, value_parser = parse_bits)]
    bits: u8,
    /// Write post-Modality-LUT values as 32-bit float TIFF: unwindowed, not inverted.
    #[arg(long, conflicts_with_all = ["window", "auto", "preset"])]
    raw: bool,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time ResNet-50 (fastai head) forward passes at 224/512/768, a batch of 8 at 224, Grad-CAM at 512 and
    /// training steps at 224.
    Model {
        /// Timed repetitions per measurement (after one warm-up).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// `cpu`, or `cuda` (the first GPU; needs a build with `--features cuda`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Batch sizes of the timed training steps at 224.
        #[arg(long, value_delimiter = ',', default_value = "8")]
        train_batch: Vec<usize>,
        /// Only the measurements whose name starts with this (e.g. `forward_224_b1`, `train_step`): for
        /// profiling one of them.
        #[arg(long)]
        only: Option<String>,
    },
    /// Peak resident memory of training steps (fresh process: run it alone): CSV `work,peak_rss_mb,step_s`.
    Memory {
        /// Square input side.
        #[arg(long, default_value_t = 768)]
        size: usize,
        /// Batch size.
        #[arg(long, default_value_t = 2)]
        batch: usize,
        /// Training steps (the peak is usually reached by the first).
        #[arg(long, default_value_t = 2)]
        steps: usize,
        /// Recompute each bottleneck block in the backward pass (gradient checkpointing, as
        /// `checkpoint_blocks` in a training config).
        #[arg(long)]
        checkpoint: bool,
        /// Steps of a frozen phase (fastai's: head and batch norms train, convolution weights do not).
        #[arg(long)]
        frozen: bool,
    },
    /// Time open → decode → Modality LUT → 8-bit window, per file.
    Decode {
        /// Files to time.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Timed repetitions per file (after one warm-up).
        #[arg(long, default_value_t = 10)]
        repeat: usize,
    },
}

pub fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let options = args.load.options();
    let mut failed = 0;
    let gathered = batch::gather_inputs(&args.inputs)?;
    for s in &gathered.skipped {
        failed += 1;
        if args.json {
            say!("{}", serde_json::json!({ "error": s }));
        } else {
            esay!("error: {s}");
        }
    }
    // Several files decode at once; the lines come out in the files' order.
    let mut out: anyhow::Result<()> = Ok(());
    batch::in_order(
        &gathered.files,
        batch::films_in_flight(),
        |(_, path)| imaging::load(path, &options).map(|r| r.summary(args.show_phi)),
        |(_, path), result| {
            if out.is_err() {
                return;
            }
            out = info_line(path, result, args.json, &mut failed);
        },
    );
    out?;
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One file's line of `sacro info`.
fn info_line(
    path: &std::path::Path,
    result: Result<imaging::ImageSummary, imaging::ImagingError>,
    json: bool,
    failed: &mut usize,
) -> anyhow::Result<()> {
    match result {
        Ok(s) if json => say!("{}", serde_json::to_string(&s)?),
        Ok(s) => say!("{s}"),
        Err(e) => {
            *failed += 1;
            if json {
                say!(
                    "{}",
                    serde_json::json!({"path": path, "error": e.to_string()})
                );
            } else {
                esay!("error: {e}");
            }
        }
    }
    Ok(())
}

pub fn convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let window = match (&args.window, args.auto, &args.preset) {
        (Some(w), _, _) => WindowChoice::Fixed(Window::parse(w)?),
        (None, true, _) => WindowChoice::Preset(NamedPreset::Auto),
        (None, false, Some(p)) => WindowChoice::Preset(NamedPreset::parse(p)),
        (None, false, None) => WindowChoice::FileDefault,
    };
    let settings = ConvertSettings {
        window,
        format: args.format,
        bits: args.bits,
        raw: args.raw,
        load: args.load.options(),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let gathered = batch::gather_inputs_excluding(&args.inputs, Some(&args.out))?;
    let inputs = gathered.files;
    if inputs.is_empty() {
        bail!("no image files found under the given inputs");
    }
    let outputs =
        batch::unique_output_paths(&inputs, &args.out, batch::output_extension(&settings));
    let bar = ProgressBar::new(inputs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if inputs.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut failures = gathered.skipped;
    let mut converted = 0usize;
    let jobs: Vec<(&(PathBuf, PathBuf), PathBuf)> = inputs.iter().zip(outputs).collect();
    for ((root, input), out) in &jobs {
        let usual = batch::output_path(root, input, &args.out, batch::output_extension(&settings));
        if *out != usual {
            say!(
                "{} -> {} ({} is another input's)",
                input.display(),
                out.display(),
                usual.display()
            );
        }
    }
    // Several films convert at once (each to its own output); results are reported in the inputs' order.
    batch::in_order(
        &jobs,
        batch::films_in_flight(),
        |((_, input), out)| batch::convert_one(input, out.clone(), &settings),
        |((_, input), _), result| {
            bar.set_message(input.display().to_string());
            match result {
                Ok(out) => {
                    converted += 1;
                    tracing::info!("{} -> {}", input.display(), out.display());
                }
                Err(e) => failures.push(e.to_string()),
            }
            bar.inc(1);
        },
    );
    bar.finish_and_clear();
    Ok(batch_summary("converted", converted, &failures))
}

/// The last lines of a batch over files (`<done> N, failed M` and each failure); fails if any did.
pub fn batch_summary(done: &str, n: usize, failures: &[String]) -> ExitCode {
    say!("{done} {n}, failed {}", failures.len());
    for f in failures {
        say!("  failed: {f}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn parse_bits(s: &str) -> Result<u8, String> {
    match s {
        "8" => Ok(8),
        "16" => Ok(16),
        _ => Err(format!("{s:?}: bits must be 8 or 16")),
    }
}

pub fn bench_decode(files: &[PathBuf], repeat: usize) -> anyhow::Result<ExitCode> {
    let options = LoadOptions::default();
    say!("file,median_ms,min_ms,repeat");
    for file in files {
        let run = || -> anyhow::Result<usize> {
            let r = imaging::load(file, &options)?;
            let display = r.display(r.default_voi());
            Ok(display.to_u8(&r.image.pixels).len())
        };
        run()?;
        let mut times: Vec<f64> = (0..repeat.max(1))
            .map(|_| {
                let t = Instant::now();
                let n = run();
                (t.elapsed().as_secs_f64() * 1e3, n)
            })
            .map(|(t, n)| n.map(|_| t))
            .collect::<anyhow::Result<_>>()?;
        times.sort_by(f64::total_cmp);
        say!(
            "{},{:.2},{:.2},{}",
            file.display(),
            times[times.len() / 2],
            times[0],
            times.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
