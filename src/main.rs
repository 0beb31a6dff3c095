//! The `sacro` command: with no subcommand it opens the desktop application; with one it runs
//! that job from the command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for anything that may hold text from a file, a study or a user: disruptive characters shown
/// escaped ([`sacro::escape::terminal`]), so nothing printed can drive the terminal.
macro_rules! say {
    ($($t:tt)*) => { println!("{}", sacro::escape::terminal(&format!($($t)*))) };
}

/// `eprintln!` as [`say!`] does `println!`.
macro_rules! esay {
    ($($t:tt)*) => { eprintln!("{}", sacro::escape::terminal(&format!($($t)*))) };
}

mod cli;
use cli::image::{BenchCommand, ConvertArgs, InfoArgs};
use cli::study::{ReadArgs, StudyCommand};

/// Sacro: reading pelvic radiographs for radiographic sacroiliitis (modified New York criteria).
#[derive(Parser)]
#[command(name = "sacro", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: open this film, folder or study (`.sacro`) in the desktop application (the
    /// bundled demo study when absent).
    path: Option<std::path::PathBuf>,
    /// Without a subcommand: the model folder for the reader-vs-model panel and heatmaps (default: the
    /// bundled demo model, trained on synthetic phantoms only).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// For a study on a server (postgres://LOGIN@HOST:PORT/DATABASE): a file whose first line is the
    /// login's password (else PGPASSWORD, then ~/.pgpass, as libpq). Never stored anywhere.
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Describe radiographs: size, bits, photometric, transfer syntax, modality, window presets.
    Info(InfoArgs),
    /// Convert radiographs (files or folders, recursively) to windowed TIFF/PNG or raw float TIFF.
    Convert(ConvertArgs),
    /// Reading studies: create, add readers and cases, status, consensus, export, lock, audit.
    #[command(subcommand)]
    Study(StudyCommand),
    /// Commit a reading of a case (or show a reader's next case with --next).
    Read(ReadArgs),
    /// De-identify DICOM files (PS3.15 Annex E basic profile, dates shifted per patient) before they
    /// leave the site.
    Deidentify(cli::deid::DeidentifyArgs),
    /// Films from a PACS over DICOMweb: find studies, retrieve instances.
    #[command(subcommand)]
    Pacs(cli::pacs::PacsCommand),
    /// The local cache of films retrieved from archives: info, clear.
    Cache(cli::pacs::CacheArgs),
    /// The seed study's analysis: ROC/PR, AUC with CIs, cut-offs, confusion matrices, kappa, agreement.
    Stats(Box<cli::stats::StatsArgs>),
    /// Synthetic pelvic radiographs with known grades (and simulated readings).
    Phantom(cli::phantom::PhantomArgs),
    /// Probability of definite radiographic sacroiliitis for radiographs (CSV for `sacro stats`).
    Predict(cli::model::PredictArgs),
    /// Grad-CAM heatmap of a model's decision over a radiograph (PNG).
    Explain(cli::model::ExplainArgs),
    /// Model folders: import PyTorch checkpoints, show cards.
    #[command(subcommand)]
    Model(cli::model::ModelCommand),
    /// Fine-tune the model on labelled films with the seed study's schedule.
    Train(Box<cli::train::TrainArgs>),
    /// LR range test (fastai's lr_find) on labelled films.
    LrFind(Box<cli::train::LrFindArgs>),
    /// Benchmarks (see README, "Performance").
    #[command(subcommand)]
    Bench(BenchCommand),
}

fn main() -> ExitCode {
    // Piping into `head` must end the program quietly, as for any Unix tool, not panic in println!.
    sigpipe::reset();
    let cli = Cli::parse();
    if let Some(command) = &cli.command
        && command.computes_with_the_model()
    {
        keep_freed_memory();
    }
    init_logging(cli.verbose);
    cli::study::set_password_file(cli.password_file.clone());
    if std::env::var_os("GLIBC_TUNABLES").is_some_and(|v| v == MALLOC_TUNABLES) {
        tracing::info!(
            "allocator: glibc keeps freed memory for reuse in one arena (GLIBC_TUNABLES={MALLOC_TUNABLES})"
        );
        // Safe with one arena only (see the function).
        sacro::model::set_passes_on_pool(true);
    }
    let result = match cli.command {
        None => {
            let launch = match cli.path {
                Some(p) => sacro::gui::Launch::Path(p),
                None => sacro::gui::Launch::Demo,
            };
            sacro::gui::run(launch, cli.model)
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::msg)
        }
        Some(Command::Info(args)) => cli::image::info(args),
        Some(Command::Convert(args)) => cli::image::convert(args),
        Some(Command::Study(cmd)) => cli::study::study(cmd),
        Some(Command::Read(args)) => cli::study::read(args),
        Some(Command::Deidentify(args)) => cli::deid::deidentify(args),
        Some(Command::Pacs(cmd)) => cli::pacs::pacs(cmd),
        Some(Command::Cache(args)) => cli::pacs::cache(args),
        Some(Command::Stats(args)) => cli::stats::stats(*args),
        Some(Command::Phantom(args)) => cli::phantom::phantom(args),
        Some(Command::Predict(args)) => cli::model::predict(args),
        Some(Command::Explain(args)) => cli::model::explain(args),
        Some(Command::Model(cmd)) => cli::model::model(cmd),
        Some(Command::Train(args)) => cli::train::train(*args),
        Some(Command::LrFind(args)) => cli::train::lr_find(*args),
        Some(Command::Bench(BenchCommand::Model {
            repeat,
            device,
            train_batch,
            only,
        })) => cli::model::bench_model(repeat, &device, &train_batch, only.as_deref()),
        Some(Command::Bench(BenchCommand::Memory {
            size,
            batch,
            steps,
            checkpoint,
            frozen,
        })) => cli::model::bench_memory(size, batch, steps, checkpoint, frozen),
        Some(Command::Bench(BenchCommand::Decode { files, repeat })) => {
            cli::image::bench_decode(&files, repeat)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            esay!("sacro: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// Commands that run the network over many large tensors (training, prediction, heatmaps, model
    /// benchmarks): short-lived processes whose speed depends on reusing freed memory.
    fn computes_with_the_model(&self) -> bool {
        matches!(
            self,
            Command::Predict(_)
                | Command::Explain(_)
                | Command::Model(cli::model::ModelCommand::Localisation { .. })
                | Command::Train(_)
                | Command::LrFind(_)
                | Command::Bench(BenchCommand::Model { .. } | BenchCommand::Memory { .. })
        )
    }
}

/// The glibc tunables [`keep_freed_memory`] starts the process with.
const MALLOC_TUNABLES: &str = "glibc.malloc.mmap_threshold=33554432:\
glibc.malloc.trim_threshold=68719476736:glibc.malloc.top_pad=1073741824:glibc.malloc.arena_max=1";

/// glibc's allocator gives freed memory back to the kernel eagerly (the top of its heap beyond a
/// threshold, and every block it mapped on its own), so the next tensor of that size faults in and zeroes
/// fresh pages: measured, a fifth of a CPU training step. These tunables keep freed memory for reuse
/// (mapping on its own only above 32 MB, glibc's maximum; the heap never trimmed, grown 1 GB at a time:
/// address space, not resident memory), which made a training step 16 % faster at the cost of keeping
/// the peak resident until the process ends. One arena for all threads (`arena_max=1`): the others do
/// not keep freed blocks as the main one does, and with one the model's passes can run on the thread
/// pool (`sacro::model::set_passes_on_pool`, turned on with these settings). glibc reads tunables only
/// when a program starts, so the process starts itself again with them; a `GLIBC_TUNABLES` already set (even empty) is left as it is,
/// and so are the desktop application (a long-lived process should give memory back) and other C
/// libraries (musl: nothing done).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // Only returns on failure; then this process goes on as it is.
        let _failed = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", MALLOC_TUNABLES)
            .exec();
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
