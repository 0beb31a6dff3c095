//! `sacro deidentify`: DICOM PS3.15 Annex E de-identification of films before they leave a site.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use sacro::imaging::batch;
use sacro::imaging::deid::{self, Deidentifier};

/// Secret and burned-in choices shared by `deidentify` and `pacs upload --deidentify`.
#[derive(Args, Clone)]
pub struct DeidArgs {
    /// The site's secret that decides new UIDs, pseudonyms and date shifts (created on first use;
    /// default SACRO_DEID_SECRET_FILE, else ~/.config/sacro/deid-secret). Keep it at the site: the
    /// same secret gives the same pseudonyms, so later films of a patient link to earlier ones.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// De-identify films that may carry burned-in text (Burned In Annotation YES, or a secondary
    /// capture or ultrasound without it), after checking their pixels yourself.
    #[arg(long)]
    pub allow_burned_in: bool,
}

impl DeidArgs {
    /// The de-identifier these arguments ask for.
    pub fn deidentifier(&self) -> anyhow::Result<Deidentifier> {
        let path = self
            .secret_file
            .clone()
            .unwrap_or_else(deid::default_secret_path);
        let secret = deid::load_or_create_secret(&path)?;
        Ok(Deidentifier::new(&secret, self.allow_burned_in)?)
    }
}

#[derive(Args)]
pub struct DeidentifyArgs {
    /// DICOM files or folders (recursively).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Folder for the de-identified files, each named `<new SOP Instance UID>.dcm`.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    deid: DeidArgs,
}

/// True if `out` is one of the input folders or inside one (its files would become inputs).
fn inside_inputs(out: &Path, inputs: &[PathBuf]) -> bool {
    let Ok(out) = out.canonicalize() else {
        return false;
    };
    inputs
        .iter()
        .filter_map(|i| i.canonicalize().ok())
        .any(|i| i.is_dir() && out.starts_with(&i))
}

/// Runs `sacro deidentify`.
pub fn deidentify(args: DeidentifyArgs) -> anyhow::Result<ExitCode> {
    let de = args.deid.deidentifier()?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create the folder: {e}", args.out.display()))?;
    if inside_inputs(&args.out, &args.inputs) {
        bail!(
            "{}: the output folder is inside an input folder; de-identified films must not sit \
             beside (or be read back as) the identified ones",
            args.out.display()
        );
    }
    let gathered = batch::gather_inputs_excluding(&args.inputs, Some(&args.out))?;
    if gathered.files.is_empty() {
        bail!("no files found under the given inputs");
    }
    let mut failures = gathered.skipped;
    let mut written = 0usize;
    batch::in_order(
        &gathered.files,
        batch::films_in_flight(),
        |(_, input)| de.file(input, &args.out),
        |(_, input), result| match result {
            Ok(d) => {
                written += 1;
                say!(
                    "{} -> {} ({}, dates {:+} days)",
                    input.display(),
                    d.path.display(),
                    d.pseudonym,
                    d.date_shift_days
                );
            }
            Err(e) => failures.push(e.to_string()),
        },
    );
    Ok(super::image::batch_summary(
        "de-identified",
        written,
        &failures,
    ))
}
