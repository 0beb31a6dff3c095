//! The reader study (aided design) on the command line: reading in arms with a confidence score, the
//! arms in `sacro study status`, and `sacro study export --mrmc`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::bail;
use sacro::session::reader_study::{MrmcRow, mrmc_rows};
use sacro::session::{self, Arm, Design, Study, csv_io};

/// Parses an arm name.
pub fn parse_arm(s: &str) -> Result<Arm, String> {
    Arm::parse(s).ok_or_else(|| format!("{s:?}: unaided or aided"))
}

/// A study's design on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DesignKind {
    /// Each reader reads each case once.
    Standard,
    /// A reader study: unaided and aided arms with a washout.
    Aided,
}

impl DesignKind {
    /// The store's design.
    pub fn design(self, washout_days: u32) -> Design {
        match self {
            Self::Standard => Design::Standard,
            Self::Aided => Design::Aided { washout_days },
        }
    }
}

/// `sacro read --next` for an arm reader.
pub fn next(store: &Study, reader: &str) -> anyhow::Result<Option<(String, Arm)>> {
    let plan = store.arm_plan(reader, chrono::Utc::now())?;
    let left = plan.entries.iter().find(|e| !e.done);
    match left {
        Some(e) => Ok(Some((e.case_id.clone(), plan.current))),
        None => {
            say!("nothing to read now: {}", plan.summary());
            Ok(None)
        }
    }
}

/// `sacro study export --mrmc`: the arm readings in the long format, truth from `truth` (a CSV) or the
/// study's consensus.
pub fn export_mrmc(store: &Study, out: &Path, truth: Option<&Path>) -> anyhow::Result<()> {
    if !matches!(store.design()?, Design::Aided { .. }) {
        bail!(
            "{} is not a reader study (create it with --design aided): there are no arms to export",
            store.location()
        );
    }
    let (truth, source): (HashMap<String, bool>, String) = match truth {
        Some(p) => (csv_io::read_truth(p)?, p.display().to_string()),
        None => (
            session::reader_study::consensus_truth(&**store)?,
            "the study's consensus".into(),
        ),
    };
    let cases = store.cases()?;
    let ids: std::collections::HashSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    let unknown = truth.keys().filter(|k| !ids.contains(k.as_str())).count();
    if unknown > 0 {
        esay!("note: {unknown} case(s) of {source} are not in the study (ignored)");
    }
    let rows: Vec<MrmcRow> = mrmc_rows(&store.readers()?, &store.arm_readings()?, &truth);
    if rows.is_empty() {
        bail!("no arm readings yet: nothing to export");
    }
    let without: Vec<&str> = cases
        .iter()
        .filter(|c| !truth.contains_key(&c.id))
        .map(|c| c.id.as_str())
        .collect();
    csv_io::write_mrmc(out, &rows)?;
    say!(
        "wrote {} ({} rows; truth from {source})",
        out.display(),
        rows.len()
    );
    if !without.is_empty() {
        esay!(
            "note: {} case(s) have no truth ({}{}): their rows have an empty truth and the analysis \
             leaves them out",
            without.len(),
            without
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            if without.len() > 5 { ", …" } else { "" }
        );
    }
    Ok(())
}
