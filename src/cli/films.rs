//! What the model commands share: the model folder to use, and a film windowed as a model's
//! pre-processing expects.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sacro::imaging::{self, GreyImage, LoadOptions, WindowPolicy};

/// The model folder given, or the bundled demo model (said on standard error, since its predictions mean
/// nothing for patients).
pub fn model_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let dir = sacro::model::card::bundled_demo()
        .context("no --model given and no bundled demo model found")?;
    esay!(
        "no --model: using the bundled demo model {} (trained on synthetic phantoms only; not for clinical use)",
        dir.display()
    );
    Ok(dir)
}

/// A radiograph windowed as the model's pre-processing expects ([`imaging::Radiograph::default_unit`]),
/// with its 8-bit grey levels for overlays.
pub fn windowed(path: &Path, policy: WindowPolicy) -> anyhow::Result<(GreyImage, Vec<u8>)> {
    windowed_film(path, policy).map(|(unit, grey, _)| (unit, grey))
}

/// [`windowed`] and the radiograph's attributes, for the model's scope check.
pub fn windowed_film(
    path: &Path,
    policy: WindowPolicy,
) -> anyhow::Result<(GreyImage, Vec<u8>, imaging::Radiograph)> {
    let r = imaging::load(path, &LoadOptions::default())?;
    let unit = r.model_unit(policy);
    let grey = unit
        .pixels
        .iter()
        .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    Ok((unit, grey, r))
}
