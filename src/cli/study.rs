//! `sacro study …` (the coordinator's commands) and `sacro read` (a reader's).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sacro::grading::{Assessment, JointGrade, JointGrades, Reading};
use sacro::imaging::{self, LoadOptions, batch};
use sacro::session::{
    self, Arm, CommitOutcome, Design, NewCase, PgStore, Protocol, Role, ServerLogin, SqliteStore,
    Study, StudySettings, StudyStore, csv_io, is_server_url,
};

static PASSWORD_FILE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// Where the server login's password is (`--password-file`).
pub fn set_password_file(path: Option<PathBuf>) {
    let _ = PASSWORD_FILE.set(path);
}

/// The first line of a password file (at most 4 KiB).
fn read_password_file(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read the password file", path.display()))?;
    if !meta.is_file() || meta.len() > 4096 {
        bail!(
            "{}: not a password file (a small text file whose first line is the password)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the password file", path.display()))?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.is_empty() {
        bail!(
            "{}: the password file's first line is empty",
            path.display()
        );
    }
    Ok(line)
}

/// The login's password from `--password-file`, if given.
pub fn password() -> anyhow::Result<Option<String>> {
    PASSWORD_FILE
        .get()
        .and_then(Option::as_ref)
        .map(|p| read_password_file(p))
        .transpose()
}

/// A server study's URL with the login's password.
fn server_login(location: &Path) -> anyhow::Result<Option<ServerLogin>> {
    location
        .to_str()
        .filter(|s| is_server_url(s))
        .map(|url| -> anyhow::Result<ServerLogin> {
            Ok(ServerLogin {
                url: url.to_string(),
                password: password()?,
            })
        })
        .transpose()
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    Protocol::parse(s)
        .ok_or_else(|| format!("{s:?}: protocol must be adjudicated, two-central or single"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        format!("{s:?}: role must be local, central1, central2, adjudicator or reader")
    })
}

fn parse_grade(s: &str) -> Result<JointGrade, String> {
    let v: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a grade (0–4)"))?;
    JointGrade::from_value(v).map_err(|e| e.to_string())
}

/// The coordinator's commands.
#[derive(Subcommand)]
pub enum StudyCommand {
    /// Create a study: a file, or on a PostgreSQL server in an empty database the login owns.
    Create {
        /// Study file to create (e.g. mystudy.sacro), or postgres://LOGIN@HOST:PORT/DATABASE.
        study: PathBuf,
        /// adjudicated (PROOF), two-central (GESPIC) or single.
        #[arg(long, value_parser = parse_protocol)]
        protocol: Protocol,
        /// Seed of the per-reader randomised case order.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// standard, or aided: a reader study where each reader with the role `reader` reads every
        /// case unaided and aided by the model, with a confidence score (study files only).
        #[arg(long, value_enum, default_value_t = super::reader_study::DesignKind::Standard)]
        design: super::reader_study::DesignKind,
        /// Aided design: days between a case's first-arm and second-arm reading.
        #[arg(long, default_value_t = 28)]
        washout_days: u32,
    },
    /// Add a reader (on a server: with their own login, or tie an existing reader to a login).
    AddReader {
        /// Study file or server URL.
        study: PathBuf,
        /// Reader's name (unique in the study).
        #[arg(long)]
        name: String,
        /// local, central1, central2, adjudicator or reader (may be left out when tying an existing
        /// reader of a server study to a login).
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Server studies: the reader's PostgreSQL login, created (or, if it exists, granted the study's
        /// reader role).
        #[arg(long)]
        login: Option<String>,
        /// Server studies: a file whose first line is the new login's password (hashed with SCRAM here;
        /// the password itself never reaches the server).
        #[arg(long, requires = "login", value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// Copy a study file to a server (an empty database the login owns), verbatim: readers, cases,
    /// readings, predictions, crops, settings and the whole audit trail; compared after the copy.
    Push {
        /// Study file.
        file: PathBuf,
        /// postgres://LOGIN@HOST:PORT/DATABASE (the coordinator's login, owner of the database).
        url: String,
    },
    /// Copy a server study into a new study file (archive, offline analysis); compared and verified
    /// after the copy.
    Pull {
        /// postgres://LOGIN@HOST:PORT/DATABASE (the coordinator's login).
        url: String,
        /// Study file to create.
        file: PathBuf,
    },
    /// Add cases: image files, folders (recursively) or CSV case lists (columns path and/or uid, optional case_id).
    AddCases {
        /// Study file or server URL.
        study: PathBuf,
        /// Files, folders or .csv case lists (a list may have a `dicomweb` column of
        /// STUDY_UID/SERIES_UID[/SOP_UID] for films in the archive named by --dicomweb).
        #[arg(required_unless_present = "study_uid")]
        paths: Vec<PathBuf>,
        /// A DICOMweb archive the films are in: the cases refer to it and the films are fetched on
        /// demand into the local film cache (credentials as for `sacro pacs`).
        #[arg(long, value_name = "URL")]
        dicomweb: Option<String>,
        /// With --dicomweb: the study whose instances become cases (one case per instance).
        #[arg(long, requires = "dicomweb")]
        study_uid: Option<String>,
        /// With --study-uid: only this series.
        #[arg(long, requires = "study_uid")]
        series_uid: Option<String>,
        /// Server studies: the folder the films' paths are stored relative to (each site keeps the
        /// same layout below its own films folder; default: the current folder).
        #[arg(long, value_name = "DIR")]
        films: Option<PathBuf>,
    },
    /// Progress per reader and cases awaiting adjudication.
    Status {
        /// Study file.
        study: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Consensus label of every case and how it was reached.
    Consensus {
        /// Study file.
        study: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Export readings (FILE.csv) and consensus (FILE_consensus.csv), pseudonymous case IDs only.
    Export {
        /// Study file.
        study: PathBuf,
        /// Readings CSV to write; the consensus goes beside it as <stem>_consensus.csv.
        #[arg(long, required_unless_present_any = ["mrmc", "boxes"])]
        out: Option<PathBuf>,
        /// A reader study's arm readings in the long format of `sacro stats --mrmc`
        /// (reader,modality,case,truth,rating; the rating is the confidence score).
        #[arg(long, value_name = "FILE")]
        mrmc: Option<PathBuf>,
        /// Every reader's joint boxes and each case's consensus box (the mean):
        /// case,reader,side,x,y,w,h.
        #[arg(long, value_name = "FILE")]
        boxes: Option<PathBuf>,
        /// With --mrmc: the truth from this CSV (columns case and truth, label or definite: 0/1), not
        /// from the study's consensus.
        #[arg(long, requires = "mrmc", value_name = "CSV")]
        truth: Option<PathBuf>,
    },
    /// Fetch the films of the study's archived cases (--dicomweb) into the local film cache, so that
    /// they read offline (a reader's own list on a server login; every case for the coordinator).
    Fetch {
        /// Study file or server URL.
        study: PathBuf,
    },
    /// Lock the study: after this nothing changes.
    Lock {
        /// Study file.
        study: PathBuf,
    },
    /// The audit trail.
    Audit {
        /// Study file.
        study: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Check the study against its audit trail (hash chain, lock, readings replayed): exit 1 and one
    /// line per finding when it was changed outside Sacro.
    Verify {
        /// Study file.
        study: PathBuf,
    },
    /// Change what readers may see after committing a case.
    Set {
        /// Study file.
        study: PathBuf,
        /// Readers see other readers' readings of a case after committing their own.
        #[arg(long)]
        reveal_readers: Option<bool>,
        /// Readers see the model's output for a case after committing their own reading.
        #[arg(long)]
        reveal_model: Option<bool>,
    },
    /// Other readers' readings of a case, as a reader sees them (refused while blinded).
    Readings {
        /// Study file.
        study: PathBuf,
        /// Who is asking.
        #[arg(long = "as")]
        reader: String,
        /// Case ID.
        #[arg(long)]
        case: String,
    },
}

/// A reader's command: commit a reading, or show the next case.
#[derive(Args)]
pub struct ReadArgs {
    /// Study file, or postgres://LOGIN@HOST:PORT/DATABASE (then the reader is whoever logs in).
    study: PathBuf,
    /// Reader's name (a study file: required; a server study: the login's reader, refused if it names
    /// someone else).
    #[arg(long)]
    reader: Option<String>,
    /// Case ID to read.
    #[arg(long, required_unless_present = "next")]
    case: Option<String>,
    /// Show this reader's next unread case instead of committing: its case ID and SOP Instance UID.
    #[arg(long, conflicts_with_all = ["case", "left", "right", "not_assessable", "delete"])]
    next: bool,
    /// With --next, also show the film's path on this machine (paths may name patients: PACS exports
    /// put names and record numbers in folder names, so they are not shown unless asked for).
    #[arg(long, requires = "next")]
    show_path: bool,
    /// Server studies: the folder this site keeps the study's films in (default: the current folder).
    #[arg(long, value_name = "DIR")]
    films: Option<PathBuf>,
    /// Left sacroiliac joint grade 0–4.
    #[arg(long, value_parser = parse_grade, requires = "right")]
    left: Option<JointGrade>,
    /// Right sacroiliac joint grade 0–4.
    #[arg(long, value_parser = parse_grade, requires = "left")]
    right: Option<JointGrade>,
    /// The film cannot be assessed, with the reason.
    #[arg(long, conflicts_with_all = ["left", "right"])]
    not_assessable: Option<String>,
    /// Free-text comment.
    #[arg(long)]
    comment: Option<String>,
    /// Reason for changing or deleting an earlier reading (kept in the audit trail).
    #[arg(long)]
    reason: Option<String>,
    /// Reader studies: your confidence 0–100 that the film shows definite sacroiliitis.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    confidence: Option<u8>,
    /// Reader studies: the arm (default: the arm your work list holds now).
    #[arg(long, value_parser = super::reader_study::parse_arm)]
    arm: Option<Arm>,
    /// The reader's box around the patient's left sacroiliac joint: X,Y,W,H in film pixels (none removes
    /// it); with or without grades.
    #[arg(long, value_parser = super::boxes::parse_box, value_name = "X,Y,W,H")]
    left_box: Option<super::boxes::BoxArg>,
    /// The box around the patient's right sacroiliac joint.
    #[arg(long, value_parser = super::boxes::parse_box, value_name = "X,Y,W,H")]
    right_box: Option<super::boxes::BoxArg>,
    /// Delete this reader's reading of the case (needs --reason).
    #[arg(long, requires = "reason", conflicts_with_all = ["left", "right", "not_assessable"])]
    delete: bool,
}

/// Opens a study (a file or a server URL) and checks it against its audit trail where this login
/// sees all of it: what does not hold is printed as a warning (every command still runs; `sacro study
/// verify` fails on it).
fn open(path: &Path) -> anyhow::Result<Study> {
    let store = Study::open(path, password()?)?;
    if store.is_coordinator() {
        let problems = store.verify()?;
        if !problems.is_empty() {
            esay!(
                "warning: {} was changed outside Sacro ({} finding(s); `sacro study verify` lists them):",
                store.location(),
                problems.len()
            );
            for p in problems.iter().take(5) {
                esay!("  {p}");
            }
        }
    }
    if store.is_read_only() {
        esay!(
            "note: {} is open read-only (no permission to write it)",
            path.display()
        );
    }
    Ok(store)
}

/// Runs a `sacro study` subcommand.
pub fn study(cmd: StudyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        StudyCommand::Create {
            study,
            protocol,
            seed,
            design,
            washout_days,
        } => {
            let design = design.design(washout_days);
            let shown = match server_login(&study)? {
                Some(_) if design != Design::Standard => bail!(
                    "reader studies (--design aided) are kept in a study file: the server store has no \
                     reader-study arms yet"
                ),
                Some(login) => PgStore::create(&login, protocol, seed)?
                    .location()
                    .to_string(),
                None => {
                    let store = SqliteStore::create(&study, protocol, seed)?;
                    if let Err(e) = store.set_design(design) {
                        drop(store);
                        let _ = std::fs::remove_file(&study);
                        return Err(e.into());
                    }
                    study.display().to_string()
                }
            };
            let design = match design {
                Design::Standard => String::new(),
                Design::Aided { washout_days } => {
                    format!(", reader study: unaided and aided arms, washout {washout_days} days")
                }
            };
            say!(
                "created {shown} ({} protocol, seed {seed}{design})",
                protocol.as_str()
            );
        }
        StudyCommand::AddReader {
            study,
            name,
            role,
            login,
            new_password_file,
        } => {
            let store = open(&study)?;
            match (&store, login) {
                (Study::Server(pg), Some(login)) => {
                    let password = new_password_file
                        .as_deref()
                        .map(read_password_file)
                        .transpose()?;
                    let r = pg.add_reader_login(&name, role, &login, password.as_deref())?;
                    say!(
                        "reader {} ({}) logs in as {login}{}",
                        r.name,
                        r.role.as_str(),
                        if password.is_none() {
                            " (no password set: give --new-password-file, or set one on the server)"
                        } else {
                            ""
                        }
                    );
                }
                (Study::Server(_), None) => bail!(
                    "a reader of a server study needs a login of their own: give --login NAME"
                ),
                (Study::File(_), Some(_)) => {
                    bail!("--login is for studies on a server (postgres://…), not study files")
                }
                (Study::File(_), None) => {
                    let role = role.context("--role is required")?;
                    let r = store.add_reader(&name, role)?;
                    say!("added reader {} ({})", r.name, r.role.as_str());
                }
            }
        }
        StudyCommand::Push { file, url } => {
            let source = SqliteStore::open(&file)?;
            let problems = source.verify()?;
            if !problems.is_empty() {
                bail!(
                    "{}: not pushed: the study was changed outside Sacro ({}); `sacro study verify` lists \
                     the findings",
                    file.display(),
                    problems.join("; ")
                );
            }
            let dump = source.dump()?;
            let login = ServerLogin {
                url,
                password: password()?,
            };
            let target = PgStore::create_from(&login, &dump)?;
            say!(
                "pushed {} to {}: {} (equal after the copy); tie each reader to a login with \
                 `sacro study add-reader URL --name NAME --login LOGIN`",
                file.display(),
                target.location(),
                dump.summary()
            );
        }
        StudyCommand::Pull { url, file } => {
            let login = ServerLogin {
                url,
                password: password()?,
            };
            let source = PgStore::open(&login)?;
            let dump = source.dump()?;
            SqliteStore::create_from(&file, &dump)?;
            let copy = SqliteStore::open(&file)?;
            let problems = copy.verify()?;
            if !problems.is_empty() {
                bail!(
                    "{}: pulled, but the copy does not verify: {}",
                    file.display(),
                    problems.join("; ")
                );
            }
            say!(
                "pulled {} into {}: {} (equal after the copy, audit chain intact)",
                source.location(),
                file.display(),
                dump.summary()
            );
        }
        StudyCommand::AddCases {
            study,
            paths,
            films,
            dicomweb,
            study_uid,
            series_uid,
        } => {
            let archive = dicomweb.map(|url| ArchiveArgs {
                url,
                study_uid,
                series_uid,
            });
            add_cases(&study, &paths, films.as_deref(), archive)?
        }
        StudyCommand::Status { study, json } => {
            let s = session::status(&*open(&study)?)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                say!(
                    "{} protocol, {} cases, {} labelled{}",
                    s.info.protocol.as_str(),
                    s.cases,
                    s.labelled,
                    if s.info.locked { ", LOCKED" } else { "" }
                );
                if let Design::Aided { washout_days } = s.design {
                    say!("  reader study: unaided and aided arms, washout {washout_days} days");
                }
                for r in &s.readers {
                    say!(
                        "  {:<20} {:<11} {:>4} of {:>4} read{}",
                        r.reader,
                        r.role.as_str(),
                        r.done,
                        r.assigned,
                        r.arms
                            .as_ref()
                            .map(|p| format!(" ({})", p.summary()))
                            .unwrap_or_default()
                    );
                }
                say!(
                    "  awaiting adjudication: {}{}",
                    s.awaiting_adjudication.len(),
                    if s.awaiting_adjudication.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", s.awaiting_adjudication.join(", "))
                    }
                );
            }
        }
        StudyCommand::Consensus { study, json } => {
            let c = session::consensus(&*open(&study)?)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                for case in &c {
                    let label = match case.label {
                        Some(true) => "definite",
                        Some(false) => "not definite",
                        None => "-",
                    };
                    let calls: Vec<String> = case
                        .calls
                        .iter()
                        .map(|r| match (r.left, r.right) {
                            (Some(l), Some(rg)) => format!("{} {l}/{rg}", r.reader),
                            _ => format!("{} n/a", r.reader),
                        })
                        .collect();
                    say!(
                        "{:<10} {:<13} {:<22} {}",
                        case.case_id,
                        label,
                        case.method.as_str(),
                        calls.join(", ")
                    );
                }
            }
        }
        StudyCommand::Export {
            study,
            out,
            mrmc,
            truth,
            boxes,
        } => {
            let store = open(&study)?;
            if let Some(b) = boxes {
                super::boxes::export(&store, &b)?;
            }
            if let Some(mrmc) = mrmc {
                super::reader_study::export_mrmc(&store, &mrmc, truth.as_deref())?;
            }
            let Some(out) = out else {
                return Ok(ExitCode::SUCCESS);
            };
            csv_io::write_readings(&out, &store.all_readings()?)?;
            let stem = out
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "readings".into());
            let cons_path = out.with_file_name(format!("{stem}_consensus.csv"));
            csv_io::write_consensus(&cons_path, &session::consensus(&*store)?)?;
            say!("wrote {} and {}", out.display(), cons_path.display());
        }
        StudyCommand::Verify { study } => {
            let store = Study::open(&study, password()?)?;
            let problems = store.verify()?;
            if problems.is_empty() {
                let rows = store.audit()?.len();
                say!(
                    "{}: intact: {rows} audit rows in an unbroken chain, the lock state as recorded, every \
                     reading equal to the trail's replay",
                    study.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            for p in &problems {
                say!("{}: {p}", study.display());
            }
            return Ok(ExitCode::FAILURE);
        }
        StudyCommand::Fetch { study } => return fetch_films(&study),
        StudyCommand::Lock { study } => {
            open(&study)?.lock()?;
            say!("locked {}", study.display());
        }
        StudyCommand::Audit { study, json } => {
            let rows = open(&study)?.audit()?;
            if json {
                say!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in rows {
                    say!(
                        "{:>5} {} {:<16} {:<15} {:<8} {} -> {}{}",
                        r.seq,
                        r.at,
                        r.actor,
                        r.action,
                        r.case_id.unwrap_or_default(),
                        r.old_value.unwrap_or_else(|| "-".into()),
                        r.new_value.unwrap_or_else(|| "-".into()),
                        r.reason
                            .map(|x| format!(" (reason: {x})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        StudyCommand::Set {
            study,
            reveal_readers,
            reveal_model,
        } => {
            let store = open(&study)?;
            let old = store.info()?.settings;
            let new = StudySettings {
                reveal_readers_after_commit: reveal_readers
                    .unwrap_or(old.reveal_readers_after_commit),
                reveal_model_after_commit: reveal_model.unwrap_or(old.reveal_model_after_commit),
            };
            store.set_settings(new)?;
            say!("{}", serde_json::to_string(&new)?);
        }
        StudyCommand::Readings {
            study,
            reader,
            case,
        } => {
            let others = open(&study)?.others_readings(&reader, &case)?;
            say!("{}", serde_json::to_string_pretty(&others)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `add-cases --dicomweb URL [--study-uid UID [--series-uid UID]]`.
struct ArchiveArgs {
    url: String,
    study_uid: Option<String>,
    series_uid: Option<String>,
}

/// Cases for films in an archive: each (study, series) listed one case per instance (QIDO-RS), or the
/// instance given. A case ID from a list fits only a series of one instance.
fn archive_cases(archive: &ArchiveArgs, listed: Vec<NewCase>) -> anyhow::Result<Vec<NewCase>> {
    use sacro::pacs::{Credentials, DicomWeb};
    use sacro::session::ArchiveRef;
    let ca = sacro::pacs::ca_cert_from_env();
    let client = DicomWeb::new(&archive.url, &Credentials::from_env(), ca.as_deref())?;
    let mut wanted: Vec<NewCase> = listed;
    if let Some(study) = &archive.study_uid {
        let series = match &archive.series_uid {
            Some(s) => vec![s.clone()],
            None => client.series_of(study)?,
        };
        for s in series {
            wanted.push(NewCase {
                path: None,
                sop_instance_uid: None,
                case_id: None,
                archive: Some(ArchiveRef {
                    url: String::new(),
                    study_uid: study.clone(),
                    series_uid: s,
                }),
            });
        }
    }
    let mut out = Vec::new();
    for mut case in wanted {
        let Some(a) = case.archive.as_mut() else {
            out.push(case);
            continue;
        };
        a.url = archive.url.trim().trim_end_matches('/').to_string();
        if case.sop_instance_uid.is_some() {
            out.push(case);
            continue;
        }
        let instances = client.instances(&a.study_uid, &a.series_uid)?;
        if instances.is_empty() {
            bail!(
                "{}: series {} of study {} has no instances",
                archive.url,
                a.series_uid,
                a.study_uid
            );
        }
        if case.case_id.is_some() && instances.len() > 1 {
            bail!(
                "case {}: series {} holds {} instances; a case ID names one film (add the SOP \
                 Instance UID to the list's dicomweb column)",
                case.case_id.as_deref().unwrap_or_default(),
                a.series_uid,
                instances.len()
            );
        }
        for sop in instances {
            out.push(NewCase {
                sop_instance_uid: Some(sop),
                ..case.clone()
            });
        }
    }
    Ok(out)
}

fn add_cases(
    study: &Path,
    paths: &[PathBuf],
    films: Option<&Path>,
    archive: Option<ArchiveArgs>,
) -> anyhow::Result<()> {
    let mut store = open(study)?;
    set_films(&mut store, films)?;
    let mut new = Vec::new();
    let mut images = Vec::new();
    for p in paths {
        if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            new.extend(csv_io::read_case_list(p)?);
        } else {
            let gathered = batch::gather_inputs(std::slice::from_ref(p))?;
            for s in &gathered.skipped {
                esay!("skipped: {s}");
            }
            images.extend(gathered.files.into_iter().map(|(_, f)| f));
        }
    }
    let mut failures = Vec::new();
    for file in images {
        match imaging::load(&file, &LoadOptions::default()) {
            Ok(r) => new.push(NewCase {
                path: Some(file),
                sop_instance_uid: r.identity.sop_instance_uid,
                case_id: None,
                archive: None,
            }),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        bail!(
            "no cases added; {} file(s) cannot be read:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    let in_archive = new.iter().any(|c| c.archive.is_some());
    match archive {
        Some(a) => new = archive_cases(&a, new)?,
        None if in_archive => {
            bail!("the case list has a dicomweb column: give the archive's URL with --dicomweb")
        }
        None => {}
    }
    if new.is_empty() {
        bail!("no image files found under the given paths");
    }
    let added = store.add_cases(&new)?;
    for c in &added {
        say!("{}", c.id);
    }
    esay!("added {} case(s) to {}", added.len(), study.display());
    Ok(())
}

/// Runs `sacro study fetch`: every archived case's film into the film cache; the failures named.
fn fetch_films(study: &Path) -> anyhow::Result<ExitCode> {
    use sacro::pacs::Credentials;
    use sacro::pacs::cache::FilmCache;
    let store = open(study)?;
    let cases: Vec<_> = store
        .cases()?
        .into_iter()
        .filter(|c| c.archive.is_some())
        .collect();
    if cases.is_empty() {
        say!("no case of {} refers to an archive", study.display());
        return Ok(ExitCode::SUCCESS);
    }
    let cache = FilmCache::open_default()?;
    let credentials = Credentials::from_env();
    let (mut cached, mut fetched, mut failures) = (0usize, 0usize, Vec::new());
    for c in &cases {
        let (Some(a), Some(sop)) = (&c.archive, &c.sop_instance_uid) else {
            continue;
        };
        if cache.get(sop).is_some() {
            cached += 1;
            continue;
        }
        match cache.film(&a.url, &credentials, &a.study_uid, &a.series_uid, sop) {
            Ok(_) => {
                fetched += 1;
                say!("{} fetched", c.id);
            }
            Err(e) => failures.push(format!("{}: {e}", c.id)),
        }
    }
    say!(
        "{} archived case(s): {fetched} fetched, {cached} already cached, {} failed",
        cases.len(),
        failures.len()
    );
    for f in &failures {
        say!("  failed: {f}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where a server study's films are on this machine (`--films`); a study file keeps them beside itself.
fn set_films(store: &mut Study, films: Option<&Path>) -> anyhow::Result<()> {
    match (store, films) {
        (Study::Server(pg), Some(dir)) => {
            if !dir.is_dir() {
                bail!("--films {}: not a folder", dir.display());
            }
            pg.set_films_root(dir);
        }
        (Study::File(_), Some(_)) => {
            bail!("--films is for server studies; a study file's films are found beside it")
        }
        _ => {}
    }
    Ok(())
}

/// Runs `sacro read`.
pub fn read(args: ReadArgs) -> anyhow::Result<ExitCode> {
    let mut store = open(&args.study)?;
    set_films(&mut store, args.films.as_deref())?;
    // On a server the reader is whoever logged in; a --reader naming someone else is refused.
    let reader = match (store.logged_in_reader()?, args.reader.clone()) {
        (Some(me), Some(named)) if named != me => bail!(
            "logged in as reader {me:?}: cannot read as {named:?} (each reader uses their own login)"
        ),
        (Some(me), _) => me,
        (None, Some(named)) => named,
        (None, None) => match &store {
            Study::Server(_) => bail!(
                "the login of {} is not tied to a reader of the study",
                store.location()
            ),
            Study::File(_) => bail!("--reader NAME is required for a study file"),
        },
    };
    let in_arms = store
        .readers()?
        .iter()
        .find(|r| r.name == reader)
        .is_some_and(|r| store.design().is_ok_and(|d| d.reads_in_arms(r)));
    if args.next && in_arms {
        if let Some((case, arm)) = super::reader_study::next(&store, &reader)? {
            let shown = if arm == Arm::Aided {
                "aided arm: look at the model's output (sacro explain) before grading"
            } else {
                "unaided arm: the film alone"
            };
            say!("{case} ({shown}; commit with --confidence 0–100)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.next {
        let list = store.worklist(&reader)?;
        let done = list.iter().filter(|e| e.done).count();
        match list.iter().find(|e| !e.done) {
            Some(e) => {
                let case = store.case(&e.case_id)?;
                let uid = case
                    .sop_instance_uid
                    .as_deref()
                    .map(|u| format!(" SOP Instance UID {u}"))
                    .unwrap_or_default();
                let file = if args.show_path {
                    store
                        .resolve(&case)
                        .map(|p| format!(" {}", p.display()))
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                say!("{}{uid}{file} ({} of {} read)", e.case_id, done, list.len());
            }
            None => say!("all {} assigned case(s) read", list.len()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let case = args.case.context("--case is required")?;
    if args.left_box.is_some() || args.right_box.is_some() {
        super::boxes::set(&store, &reader, &case, [args.left_box, args.right_box])?;
        if args.left.is_none() && args.not_assessable.is_none() && !args.delete {
            return Ok(ExitCode::SUCCESS);
        }
    }
    if args.delete {
        store.delete_reading(&reader, &case, args.reason.as_deref().unwrap_or_default())?;
        say!("deleted {reader}'s reading of {case}");
        return Ok(ExitCode::SUCCESS);
    }
    let assessment = match (args.left, args.right, args.not_assessable) {
        (Some(l), Some(r), None) => Assessment::Graded(JointGrades::new(l, r)),
        (None, None, Some(reason)) => Assessment::NotAssessable { reason },
        _ => bail!("give --left and --right grades, or --not-assessable REASON"),
    };
    let reading = Reading {
        assessment,
        comment: args.comment,
    };
    let mut arm_said = String::new();
    let outcome = if in_arms {
        let (arm, outcome) = session::reader_study::commit_now(
            &*store,
            &reader,
            &case,
            args.arm,
            &reading,
            args.confidence,
            args.reason.as_deref(),
        )?;
        arm_said = format!(" in the {} arm", arm.as_str());
        outcome
    } else {
        if args.confidence.is_some() || args.arm.is_some() {
            bail!("--confidence and --arm are for readers of a reader study (--design aided)");
        }
        store.commit_reading(&reader, &case, &reading, args.reason.as_deref())?
    };
    let what = match reading.grades() {
        Some(g) => format!(
            "left {}, right {}: {} ({})",
            g.left,
            g.right,
            if g.definite_sacroiliitis() {
                "definite radiographic sacroiliitis"
            } else {
                "no definite radiographic sacroiliitis"
            },
            g.classification().abbreviation()
        ),
        None => "not assessable".into(),
    };
    let verb = match outcome {
        CommitOutcome::Created => "committed",
        CommitOutcome::Changed => "changed",
        CommitOutcome::Unchanged => "unchanged",
    };
    say!("{verb} {case} for {reader}{arm_said}: {what}");
    Ok(ExitCode::SUCCESS)
}
