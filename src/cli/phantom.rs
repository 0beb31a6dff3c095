//! `sacro phantom`: synthetic pelvic radiographs with known grades, optionally with a ready study holding
//! simulated readings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use sacro::grading::Reading;
use sacro::phantom::{self, Phantom, PhantomConfig, PhantomFormat, SimulatedReader};
use sacro::session::{Arm, ArmCommit, Design, NewCase, Protocol, Role, SqliteStore, StudyStore};

/// Arguments of `sacro phantom`.
#[derive(Args)]
pub struct PhantomArgs {
    /// Number of phantoms.
    #[arg(long, default_value_t = 24)]
    n: usize,
    /// Seed (same seed, same files).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output folder (created; must not already hold a truth.csv).
    #[arg(long)]
    out: PathBuf,
    /// Image format.
    #[arg(long, value_enum, default_value_t = PhantomFormat::Dicom)]
    format: PhantomFormat,
    /// Image side in pixels (real CR/DX films are 2000–3000).
    #[arg(long, default_value_t = 2500, value_parser = clap::value_parser!(u32).range(64..=8192))]
    size: u32,
    /// Probability of definite radiographic sacroiliitis.
    #[arg(long, default_value_t = 0.66)]
    prevalence: f64,
    /// Simulated readers by role, comma-separated (local,central1,central2 | central1,central2[,adjudicator]
    /// | reader): writes DIR/study.sacro with their readings.
    #[arg(long, value_delimiter = ',')]
    readers: Vec<String>,
    /// standard, or aided: a reader study in which each simulated `reader` reads every case unaided and
    /// aided (aided readers misread less: `SimulatedReader::aided`), with confidence scores; the
    /// first arm is dated a washout before the second.
    #[arg(long, value_enum, default_value_t = super::reader_study::DesignKind::Standard)]
    design: super::reader_study::DesignKind,
    /// Aided design: the washout in days.
    #[arg(long, default_value_t = 28)]
    washout_days: u32,
}

fn protocol_for(roles: &[Role]) -> anyhow::Result<Protocol> {
    let p = if roles.contains(&Role::Local) {
        Protocol::Adjudicated
    } else if roles.contains(&Role::Central1) {
        Protocol::TwoCentral
    } else {
        Protocol::Single
    };
    if let Some(r) = roles.iter().find(|r| !p.roles().contains(r)) {
        bail!("role {} does not fit a {} study", r.as_str(), p.as_str());
    }
    Ok(p)
}

/// Runs `sacro phantom`.
pub fn phantom(args: PhantomArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.prevalence) {
        bail!("--prevalence {} must be between 0 and 1", args.prevalence);
    }
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let roles = args
        .readers
        .iter()
        .map(|r| Role::parse(r.trim()).with_context(|| format!("unknown reader role {r:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.design != super::reader_study::DesignKind::Standard && !roles.contains(&Role::Reader) {
        bail!(
            "--design aided needs simulated readers, at least one with the role reader (--readers reader,reader)"
        );
    }
    let protocol = if roles.is_empty() {
        None
    } else {
        Some(protocol_for(&roles)?)
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let truth_path = args.out.join("truth.csv");
    let study_path = args.out.join("study.sacro");
    if truth_path.exists() || study_path.exists() {
        bail!(
            "{} already holds phantoms (truth.csv or study.sacro); choose an empty folder",
            args.out.display()
        );
    }
    let config = PhantomConfig {
        size: args.size,
        prevalence: args.prevalence,
        seed: args.seed,
    };
    let bar = ProgressBar::new(args.n as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut truth = csv::Writer::from_path(&truth_path)
        .with_context(|| format!("cannot write {}", truth_path.display()))?;
    truth.write_record(phantom::TRUTH_HEADER)?;
    let mut made: Vec<(Phantom, PathBuf)> = Vec::with_capacity(args.n);
    // Each phantom depends only on the seed and its index, so they are made in parallel, a chunk at a time
    // (bounded memory), and written to truth.csv in index order.
    let chunk = rayon::current_num_threads().max(1) * 4;
    let indices: Vec<usize> = (1..=args.n).collect();
    for part in indices.chunks(chunk) {
        let done: Vec<anyhow::Result<(Phantom, PathBuf)>> = part
            .par_iter()
            .map(|&i| {
                let p = phantom::generate(&config, i);
                let file = phantom::write(&args.out, &config, &p, args.format)?;
                bar.inc(1);
                Ok((p, file))
            })
            .collect();
        for result in done {
            let (p, file) = result?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            truth.write_record(phantom::truth_row(&p, &name))?;
            // Keep only what the study needs, not the pixels.
            made.push((
                Phantom {
                    pixels: Vec::new(),
                    ..p
                },
                file,
            ));
        }
    }
    truth.flush()?;
    bar.finish_and_clear();
    let definite = made
        .iter()
        .filter(|(p, _)| p.grades.definite_sacroiliitis())
        .count();
    say!(
        "wrote {} synthetic phantom(s) ({} with definite sacroiliitis) and truth.csv to {}",
        made.len(),
        definite,
        args.out.display()
    );
    if let Some(protocol) = protocol {
        let design = args.design.design(args.washout_days);
        simulate_study(&study_path, protocol, design, &roles, &made, args.seed)?;
        say!(
            "wrote {} ({} protocol, simulated readers: {})",
            study_path.display(),
            protocol.as_str(),
            args.readers.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn simulate_study(
    path: &Path,
    protocol: Protocol,
    design: Design,
    roles: &[Role],
    made: &[(Phantom, PathBuf)],
    seed: u64,
) -> anyhow::Result<()> {
    let store = SqliteStore::create(path, protocol, seed)?;
    store.set_design(design)?;
    let cases: Vec<NewCase> = made
        .iter()
        .map(|(p, file)| NewCase {
            path: Some(file.clone()),
            sop_instance_uid: None,
            case_id: Some(p.case_id.clone()),
            archive: None,
        })
        .collect();
    store.add_cases(&cases)?;
    // Several readers of one role are numbered.
    let names: Vec<String> = roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if roles.iter().filter(|x| *x == r).count() > 1 {
                let n = roles[..=i].iter().filter(|x| *x == r).count();
                format!("simulated {} {n}", r.as_str())
            } else {
                format!("simulated {}", r.as_str())
            }
        })
        .collect();
    for (name, role) in names.iter().zip(roles) {
        store.add_reader(name, *role)?;
    }
    let reader = SimulatedReader::default();
    // Primary readers first, then those who read only what the protocol assigns them (adjudicators).
    let adjudicates = |r: Role| {
        r == Role::Adjudicator || (protocol == Protocol::Adjudicated && r == Role::Central2)
    };
    let order: Vec<usize> = (0..roles.len())
        .filter(|&i| !adjudicates(roles[i]))
        .chain((0..roles.len()).filter(|&i| adjudicates(roles[i])))
        .collect();
    for i in order {
        if let Design::Aided { washout_days } = design
            && roles[i] == Role::Reader
        {
            simulate_arms(&store, &names[i], i, made, seed, washout_days)?;
            continue;
        }
        for entry in store.worklist(&names[i])? {
            let Some((p, _)) = made.iter().find(|(p, _)| p.case_id == entry.case_id) else {
                continue;
            };
            let grades = reader.read(p.grades, seed ^ ((i as u64 + 1) << 40) ^ p.index as u64);
            store.commit_reading(
                &names[i],
                &entry.case_id,
                &Reading::graded(grades.left, grades.right),
                None,
            )?;
        }
    }
    Ok(())
}

/// One simulated reader through both arms of a reader study: the first arm dated a washout and a day
/// before now, the second now.
fn simulate_arms(
    store: &SqliteStore,
    name: &str,
    i: usize,
    made: &[(Phantom, PathBuf)],
    seed: u64,
    washout_days: u32,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let times = [
        now - chrono::Duration::days(i64::from(washout_days) + 1),
        now,
    ];
    for at in times {
        let plan = store.arm_plan(name, at)?;
        let reader = match plan.current {
            Arm::Unaided => SimulatedReader::default(),
            Arm::Aided => SimulatedReader::aided(),
        };
        for entry in plan.entries {
            let Some((p, _)) = made.iter().find(|(p, _)| p.case_id == entry.case_id) else {
                continue;
            };
            let s =
                seed ^ ((i as u64 + 1) << 40) ^ ((plan.current as u64 + 1) << 36) ^ p.index as u64;
            let grades = reader.read(p.grades, s);
            let commit = ArmCommit {
                arm: plan.current,
                reading: &Reading::graded(grades.left, grades.right),
                confidence: reader.confidence(grades, s),
                reason: None,
                now: at,
            };
            store.commit_arm_reading(name, &entry.case_id, &commit)?;
        }
    }
    Ok(())
}
