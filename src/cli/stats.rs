//! `sacro stats`: the seed study's analysis of predictions against a reference and readers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use sacro::report::{self, CutoffSource, Settings, inputs};
use sacro::session::Study;
use sacro::stats::cutoffs::{Cutoffs, Targets};

/// Arguments of `sacro stats`.
#[derive(Args)]
pub struct StatsArgs {
    /// Model predictions: CSV with columns case,probability (the output of `sacro predict` works).
    #[arg(long, required_unless_present_any = ["model", "mrmc"])]
    predictions: Option<PathBuf>,
    /// With --study: the model folder whose predictions are recorded in the study (by the SHA-256 of its
    /// weights, as the app records them); its validation cut-offs are used unless others are given.
    #[arg(long, requires = "study", conflicts_with = "predictions")]
    model: Option<PathBuf>,
    /// Reference labels: CSV case,label (0/1; empty = no consensus, left out).
    #[arg(long, required_unless_present_any = ["study", "mrmc"])]
    truth: Option<PathBuf>,
    /// Reader calls: CSV case,reader,label and optionally left_grade,right_grade.
    #[arg(long)]
    readers: Option<PathBuf>,
    /// A Sacro study: its consensus is the reference and its readings are the readers.
    #[arg(long, conflicts_with_all = ["truth", "readers"])]
    study: Option<PathBuf>,
    /// Cut-offs from a validation set (CSV case,probability,label; chosen there by repeated CV) or a JSON
    /// file {"sensitive":…,"balanced":…,"specific":…}.
    #[arg(long, conflicts_with = "cutoffs")]
    cutoffs_from: Option<PathBuf>,
    /// Cut-offs given directly: SENSITIVE,BALANCED,SPECIFIC.
    #[arg(long, value_parser = Cutoffs::parse)]
    cutoffs: Option<Cutoffs>,
    /// A second model's predictions on the same cases, compared by the DeLong test.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Folder for the report (Markdown, HTML, CSV, PNG/SVG plots, JSON).
    #[arg(long, required_unless_present_any = ["json", "mrmc"])]
    out: Option<PathBuf>,
    /// Print the numbers as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Minimum sensitivity of the sensitivity-favouring cut-off.
    #[arg(long, default_value_t = 0.95)]
    sens_target: f64,
    /// Minimum specificity of the specificity-favouring cut-off.
    #[arg(long, default_value_t = 0.95)]
    spec_target: f64,
    /// Cross-validation folds for choosing cut-offs.
    #[arg(long, default_value_t = 5)]
    cv_folds: usize,
    /// Cross-validation repeats.
    #[arg(long, default_value_t = 10)]
    cv_repeats: usize,
    /// Seed of the cross-validation and bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bootstrap resamples for the AUC interval.
    #[arg(long, default_value_t = 2000)]
    bootstrap: usize,
    /// Bootstrap resamples for kappa intervals.
    #[arg(long, default_value_t = 1000)]
    kappa_bootstrap: usize,
    /// Confidence level of every interval.
    #[arg(long, default_value_t = 0.95)]
    level: f64,
    /// A reader study (multi-reader multi-case): CSV `reader,modality,case,truth,rating`, every reader
    /// rating every case in every modality; Obuchowski–Rockette with Hillis's degrees of freedom and DBM.
    #[arg(long, conflicts_with_all = ["predictions", "model", "truth", "readers", "study", "compare", "cutoffs_from", "cutoffs"])]
    mrmc: Option<PathBuf>,
    /// Error covariances of the reader-study analysis: jackknife, delong or bootstrap (with --seed and
    /// --bootstrap resamples).
    #[arg(long, default_value = "jackknife", requires = "mrmc")]
    mrmc_cov: String,
    /// With --mrmc: also analyse the sensitivity and specificity of the calls "rating ≥ this value".
    #[arg(long, requires = "mrmc")]
    call_at: Option<f64>,
}

/// Runs `sacro stats`.
pub fn stats(args: StatsArgs) -> anyhow::Result<ExitCode> {
    if !(0.5..1.0).contains(&args.level) {
        bail!("--level {} must be in [0.5, 1)", args.level);
    }
    if let Some(path) = &args.mrmc {
        return reader_study(&args, path);
    }
    let store = match &args.study {
        Some(study) => Some(Study::open(study, super::study::password()?)?),
        None => None,
    };
    let mut card_cutoffs = None;
    let study = args.study.as_ref().zip(store.as_deref());
    let (predictions_path, predictions) = match (&args.predictions, &args.model, study) {
        (Some(p), ..) => (p.clone(), inputs::read_predictions(p)?),
        (None, Some(dir), Some((study, store))) => {
            let card = sacro::model::card::read_card(dir)?;
            card_cutoffs = card.cutoffs;
            let p = report::study::predictions(store, study, &card.weights_sha256)?;
            if p.is_empty() {
                bail!(
                    "{}: no predictions of the model in {} are recorded (predict the study in the app first)",
                    study.display(),
                    dir.display()
                );
            }
            (study.clone(), p)
        }
        _ => bail!("give --predictions, or --study with --model"),
    };
    let (truth_path, truth, readers) = match (study, &args.truth) {
        (Some((study, store)), _) => {
            let (t, r) = report::study::inputs(store, study, &report::study::Reference::Consensus)?;
            (study.clone(), t, Some((study.clone(), r)))
        }
        (None, Some(t)) => {
            let readers = match &args.readers {
                Some(r) => Some((r.clone(), inputs::read_readers(r)?)),
                None => None,
            };
            (t.clone(), inputs::read_truth(t)?, readers)
        }
        _ => bail!("give --truth or --study"),
    };
    let comparison = match &args.compare {
        Some(p) => Some((p.clone(), inputs::read_predictions(p)?)),
        None => None,
    };
    let data = report::match_inputs(
        (&predictions_path, &predictions),
        (&truth_path, &truth),
        readers.as_ref().map(|(p, r)| (p.as_path(), r.as_slice())),
        comparison.as_ref().map(|(p, c)| (p.as_path(), c)),
    )?;
    let cutoffs = match (&args.cutoffs, &args.cutoffs_from) {
        (Some(c), _) => CutoffSource::Given(*c),
        (None, Some(p))
            if p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json")) =>
        {
            CutoffSource::Given(inputs::read_cutoffs_json(p)?)
        }
        (None, Some(p)) => {
            let (y, s) = inputs::read_validation(p)?;
            CutoffSource::Validation(y, s)
        }
        (None, None) => card_cutoffs.map_or(CutoffSource::ThisSet, CutoffSource::ModelCard),
    };
    let settings = Settings {
        level: args.level,
        auc_resamples: args.bootstrap,
        kappa_resamples: args.kappa_bootstrap,
        seed: args.seed,
        cutoffs,
        targets: Targets {
            sensitivity: args.sens_target,
            specificity: args.spec_target,
        },
        cv: (args.cv_folds, args.cv_repeats),
    };
    // Progress on standard error (hidden when it is not a terminal): a million rows with the default
    // resamples take a while even on all cores.
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} bootstrap resamples, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} cases", data.truth.len()));
    let analysis = report::analyse_with(&data, &settings, &|done, total| {
        if bar.length() != Some(total as u64) {
            bar.set_length(total as u64);
        }
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let analysis = analysis?;
    if let Some(out) = &args.out {
        report::write_report(out, &analysis)?;
        esay!(
            "wrote the report to {} (report.html, report.md, CSV tables, plots)",
            out.display()
        );
    }
    if args.json {
        say!("{}", serde_json::to_string_pretty(&analysis)?);
    } else {
        print!("{}", report::markdown(&analysis, false));
    }
    Ok(ExitCode::SUCCESS)
}

/// `sacro stats --mrmc`: the reader study's MRMC analyses (AUC; sensitivity and specificity with
/// --call-at).
fn reader_study(args: &StatsArgs, path: &std::path::Path) -> anyhow::Result<ExitCode> {
    use sacro::stats::mrmc::{self, CovMethod, Fom};
    let method = match args.mrmc_cov.as_str() {
        "jackknife" => CovMethod::Jackknife,
        "delong" => CovMethod::DeLong,
        "bootstrap" => CovMethod::Bootstrap {
            resamples: args.bootstrap,
            seed: args.seed,
        },
        other => bail!("--mrmc-cov {other:?}: jackknife, delong or bootstrap"),
    };
    let (study, excluded) = inputs::read_mrmc(path)?;
    let mut foms = vec![Fom::Auc];
    if let Some(t) = args.call_at {
        if !t.is_finite() {
            bail!("--call-at {t}: a number");
        }
        foms.extend([Fom::Sensitivity(t), Fom::Specificity(t)]);
    }
    let analyses = foms
        .into_iter()
        .map(|f| mrmc::analyse(&study, f, method, args.level))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Some(out) = &args.out {
        report::mrmc::write(out, &study, &analyses, excluded)?;
        esay!("wrote the reader-study report to {}", out.display());
    }
    if args.json {
        say!("{}", serde_json::to_string_pretty(&analyses)?);
    } else {
        print!("{}", report::mrmc::markdown(&analyses, excluded));
    }
    Ok(ExitCode::SUCCESS)
}
