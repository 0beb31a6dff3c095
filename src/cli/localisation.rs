//! `sacro model localisation`: how much of a whole-image model's Grad-CAM lies on the sacroiliac joints,
//! on films whose joint boxes are known (a phantom `truth.csv`). The share of the heatmap's mass inside
//! the two boxes, film by film, beside the share their area would get by chance.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use sacro::model::gradcam::{CamMethod, concentration};
use sacro::model::predict::{Predictor, default_device};

use super::films::{model_dir, windowed};

/// One film of the truth file: its path, definite or not, and the two joint boxes.
struct Film {
    case: String,
    path: PathBuf,
    definite: bool,
    boxes: [(usize, usize, usize, usize); 2],
}

fn read_truth(truth: &Path) -> anyhow::Result<Vec<Film>> {
    let base = truth.parent().unwrap_or(Path::new("."));
    let mut r = csv::Reader::from_path(truth)
        .with_context(|| format!("cannot read {}", truth.display()))?;
    let headers = r.headers()?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "{}: no column {name:?} (a phantom truth.csv has it)",
                truth.display()
            )
        })
    };
    let names = [
        "case", "file", "definite", "left_x", "left_y", "left_w", "left_h", "right_x", "right_y",
        "right_w", "right_h",
    ];
    let cols = names.map(col);
    let cols: Vec<usize> = cols.into_iter().collect::<anyhow::Result<_>>()?;
    let mut films = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let row = i + 2;
        let rec = rec.with_context(|| format!("{}: row {row}", truth.display()))?;
        let get = |k: usize| rec.get(cols[k]).unwrap_or_default().trim();
        let num = |k: usize| {
            get(k).parse::<usize>().with_context(|| {
                format!(
                    "{}: row {row}: {} {:?} is not a pixel coordinate",
                    truth.display(),
                    names[k],
                    get(k)
                )
            })
        };
        films.push(Film {
            case: get(0).to_string(),
            path: base.join(get(1)),
            definite: get(2) == "1",
            boxes: [
                (num(3)?, num(4)?, num(5)?, num(6)?),
                (num(7)?, num(8)?, num(9)?, num(10)?),
            ],
        });
    }
    if films.is_empty() {
        bail!("{}: no films", truth.display());
    }
    Ok(films)
}

/// Runs `sacro model localisation`.
pub fn localisation(
    truth: &Path,
    model: Option<PathBuf>,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let films = read_truth(truth)?;
    let predictor = Predictor::load(&model_dir(model)?, default_device())?;
    let positive = predictor.card.positive_class;
    let mut rows = Vec::with_capacity(films.len());
    for f in &films {
        let (img, _) = windowed(&f.path, predictor.card.preprocess.window)?;
        let input = predictor.input(&img.pixels, img.width, img.height)?;
        let heat = predictor.explain_on_film(
            &input,
            positive,
            CamMethod::GradCam,
            (img.width, img.height),
        )?;
        let w = img.width as usize;
        let inside: f64 = f
            .boxes
            .iter()
            .map(|b| concentration(&heat.pixels, w, *b))
            .sum();
        let area: f64 = f.boxes.iter().map(|b| (b.2 * b.3) as f64).sum::<f64>()
            / (img.width as f64 * img.height as f64);
        let empty = heat.pixels.iter().all(|v| *v <= 0.0);
        rows.push((f, inside, area, empty));
    }
    if let Some(out) = out {
        let mut w = csv::Writer::from_path(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        w.write_record([
            "case",
            "definite",
            "mass_in_joints",
            "area_share",
            "empty_heatmap",
        ])?;
        for (f, inside, area, empty) in &rows {
            w.write_record([
                sacro::escape::csv_cell(&f.case).into_owned(),
                u8::from(f.definite).to_string(),
                format!("{inside:.6}"),
                format!("{area:.6}"),
                u8::from(*empty).to_string(),
            ])?;
        }
        w.flush()?;
    }
    for (label, keep) in [
        ("all films", None),
        ("definite sacroiliitis", Some(true)),
        ("not definite", Some(false)),
    ] {
        let of: Vec<&(&Film, f64, f64, bool)> = rows
            .iter()
            .filter(|r| !r.3 && keep.is_none_or(|k| r.0.definite == k))
            .collect();
        if of.is_empty() {
            continue;
        }
        let n = of.len() as f64;
        let mass = of.iter().map(|r| r.1).sum::<f64>() / n;
        let area = of.iter().map(|r| r.2).sum::<f64>() / n;
        say!(
            "{label}: {} films with a heatmap; mean share of Grad-CAM mass inside the two joint boxes {:.3} (their area: {:.3} of the film, {:.1}x chance)",
            of.len(),
            mass,
            area,
            mass / area.max(1e-12)
        );
    }
    let empty = rows.iter().filter(|r| r.3).count();
    if empty > 0 {
        say!("{empty} film(s) gave an empty heatmap for the positive class (left out above)");
    }
    Ok(ExitCode::SUCCESS)
}
