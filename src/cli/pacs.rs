//! `sacro pacs …`: films from a PACS or archive over DICOMweb.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use sacro::escape::terminal;
use sacro::pacs::{Credentials, DicomWeb, Query};

/// DICOMweb commands. Credentials: SACRO_DICOMWEB_USER and SACRO_DICOMWEB_PASSWORD (HTTP basic) or
/// SACRO_DICOMWEB_TOKEN (bearer); never stored.
#[derive(Subcommand)]
pub enum PacsCommand {
    /// Find studies, their series and instances (QIDO-RS), one line each.
    Find {
        /// The DICOMweb root, e.g. https://pacs.example.org/dicom-web.
        url: String,
        /// Patient ID.
        #[arg(long)]
        patient_id: Option<String>,
        /// Study date or range: YYYYMMDD or YYYYMMDD-YYYYMMDD.
        #[arg(long)]
        study_date: Option<String>,
        /// Modalities, comma-separated (e.g. CR,DX).
        #[arg(long, value_delimiter = ',')]
        modality: Vec<String>,
        /// Body part examined (e.g. PELVIS).
        #[arg(long)]
        body_part: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Also show patient names and IDs (protected health information; hidden by default).
        #[arg(long)]
        show_phi: bool,
        /// A PEM file of the CA that signed the archive's certificate (a private CA).
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
    },
    /// Store DICOM files in an archive (STOW-RS). Each file is checked first (a readable film; no
    /// burned-in text unless --allow-burned-in); one refused file stops the upload before anything is
    /// sent.
    Upload {
        /// The DICOMweb root.
        url: String,
        /// DICOM files or folders.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Send the films as they are, with the patient's identity (e.g. to the hospital's own PACS).
        #[arg(long, conflicts_with = "deidentify")]
        identified: bool,
        /// De-identify each film first (as `sacro deidentify`); only the de-identified film is sent.
        #[arg(long)]
        deidentify: bool,
        #[command(flatten)]
        deid: crate::cli::deid::DeidArgs,
        /// A PEM file of the CA that signed the archive's certificate.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
    },
    /// Retrieve a study's (or one series') instances as DICOM files (WADO-RS), one per instance,
    /// each checked to be a readable film with the UID asked for.
    Get {
        /// The DICOMweb root.
        url: String,
        /// Study Instance UID.
        #[arg(long)]
        study_uid: String,
        /// Series Instance UID (default: every series of the study).
        #[arg(long)]
        series_uid: Option<String>,
        /// Folder to write `<SOP Instance UID>.dcm` files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// A PEM file of the CA that signed the archive's certificate.
        #[arg(long, value_name = "PEM")]
        ca_cert: Option<PathBuf>,
    },
}

/// `sacro cache info|clear`: the local film cache of films retrieved from archives.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// info or clear.
    #[arg(value_parser = ["info", "clear"])]
    action: String,
    /// The cache folder (default: SACRO_CACHE_DIR, else ~/.cache/sacro/films).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// JSON output (info).
    #[arg(long)]
    json: bool,
}

/// Runs `sacro cache`.
pub fn cache(args: CacheArgs) -> anyhow::Result<ExitCode> {
    use sacro::pacs::cache::{DEFAULT_LIMIT, FilmCache};
    let dir = args.dir.unwrap_or_else(FilmCache::default_dir);
    let cache = FilmCache::open(&dir, DEFAULT_LIMIT)?;
    if args.action == "clear" {
        let n = cache.clear()?;
        say!("removed {n} film(s) from {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let info = cache.info();
    if args.json {
        say!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        say!(
            "{}: {} film(s), {:.1} MiB of {:.1} GiB",
            info.dir.display(),
            info.films,
            info.bytes as f64 / (1u64 << 20) as f64,
            info.limit as f64 / (1u64 << 30) as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `sacro pacs upload`.
fn upload(
    url: &str,
    files: &[PathBuf],
    identified: bool,
    deidentify: bool,
    deid: crate::cli::deid::DeidArgs,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    if !deidentify {
        if !identified {
            bail!(
                "say how the films leave the site: --deidentify (PS3.15 Annex E, as `sacro \
                 deidentify`; what a central archive should receive) or --identified (sent as they \
                 are, e.g. to the hospital's own PACS)"
            );
        }
        return upload_identified(url, files, deid.allow_burned_in, ca_cert);
    }
    let de = deid.deidentifier()?;
    let client = DicomWeb::new(url, &Credentials::from_env(), ca_cert)?;
    let paths = upload_inputs(files)?;
    // Every film is de-identified and checked before the first is sent.
    let refused: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            DicomWeb::deidentify_checked(p, &de)
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    refuse_all(&refused)?;
    for p in &paths {
        let stored = client.store_deidentified(p, &de)?;
        say!("{} {}", stored.sop_instance_uid, p.display());
    }
    esay!("{} de-identified file(s) stored", paths.len());
    Ok(ExitCode::SUCCESS)
}

fn upload_inputs(files: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let gathered = sacro::imaging::batch::gather_inputs(files)?;
    for s in &gathered.skipped {
        esay!("skipped: {s}");
    }
    let paths: Vec<PathBuf> = gathered.files.into_iter().map(|(_, f)| f).collect();
    if paths.is_empty() {
        bail!("no DICOM files to send");
    }
    Ok(paths)
}

fn refuse_all(refused: &[String]) -> anyhow::Result<()> {
    if !refused.is_empty() {
        bail!(
            "nothing sent; {} file(s) refused:\n  {}",
            refused.len(),
            refused.join("\n  ")
        );
    }
    Ok(())
}

fn upload_identified(
    url: &str,
    files: &[PathBuf],
    allow_burned_in: bool,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let client = DicomWeb::new(url, &Credentials::from_env(), ca_cert)?;
    // Every file is checked before the first is sent: a refused film stops the whole upload.
    let paths = upload_inputs(files)?;
    let refused: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            DicomWeb::check_upload(p, allow_burned_in)
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    refuse_all(&refused)?;
    for p in &paths {
        let stored = client.store(p, allow_burned_in)?;
        say!("{} {}", stored.sop_instance_uid, p.display());
    }
    esay!("{} file(s) stored", paths.len());
    Ok(ExitCode::SUCCESS)
}

/// Runs a `sacro pacs` subcommand.
pub fn pacs(cmd: PacsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PacsCommand::Upload {
            url,
            files,
            identified,
            deidentify,
            deid,
            ca_cert,
        } => {
            return upload(
                &url,
                &files,
                identified,
                deidentify,
                deid,
                ca_cert.as_deref(),
            );
        }
        PacsCommand::Find {
            url,
            patient_id,
            study_date,
            modality,
            body_part,
            json,
            show_phi,
            ca_cert,
        } => {
            let client = DicomWeb::new(&url, &Credentials::from_env(), ca_cert.as_deref())?;
            let mut studies = client.find(&Query {
                patient_id,
                study_date,
                modalities: modality,
                body_part,
            })?;
            if !show_phi {
                for s in &mut studies {
                    s.patient_name = None;
                    s.patient_id = None;
                }
            }
            if json {
                say!("{}", serde_json::to_string_pretty(&studies)?);
                return Ok(ExitCode::SUCCESS);
            }
            for s in &studies {
                let who = if show_phi {
                    format!(
                        " {} [{}]",
                        terminal(s.patient_name.as_deref().unwrap_or("-")),
                        terminal(s.patient_id.as_deref().unwrap_or("-"))
                    )
                } else {
                    String::new()
                };
                say!(
                    "study {} {} {}{who}",
                    s.study_uid,
                    terminal(s.study_date.as_deref().unwrap_or("-")),
                    terminal(s.description.as_deref().unwrap_or("-"))
                );
                for se in &s.series {
                    say!(
                        "  series {} {} {} ({} instance(s))",
                        se.series_uid,
                        terminal(se.modality.as_deref().unwrap_or("-")),
                        terminal(se.body_part.as_deref().unwrap_or("-")),
                        se.instances.len()
                    );
                    for i in &se.instances {
                        say!("    instance {i}");
                    }
                }
            }
            esay!("{} stud(ies)", studies.len());
        }
        PacsCommand::Get {
            url,
            study_uid,
            series_uid,
            out,
            ca_cert,
        } => {
            let client = DicomWeb::new(&url, &Credentials::from_env(), ca_cert.as_deref())?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("{}: cannot create the folder", out.display()))?;
            let series = match series_uid {
                Some(s) => vec![s],
                None => client.series_of(&study_uid)?,
            };
            let mut fetched = 0;
            let mut failures = Vec::new();
            for se in &series {
                for sop in client.instances(&study_uid, se)? {
                    match client.retrieve(&study_uid, se, &sop, &out) {
                        Ok(p) => {
                            fetched += 1;
                            say!("{}", p.display());
                        }
                        Err(e) => failures.push(e.to_string()),
                    }
                }
            }
            if !failures.is_empty() {
                bail!(
                    "{fetched} instance(s) retrieved; {} failed:\n  {}",
                    failures.len(),
                    failures.join("\n  ")
                );
            }
            if fetched == 0 {
                bail!("study {study_uid}: no instances found");
            }
            esay!("{fetched} instance(s) retrieved into {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
