//! ROC and precision–recall plots (PNG and SVG) with plotters, with the readers' operating points and
//! the model's cut-offs marked on the ROC plot, as the seed study's figure did.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::analysis::Analysis;

static FONT: &[u8] = crate::assets::DEJAVU_SANS;
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The bundled font is valid; if registration failed, plotters would fall back to no text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

type DrawResult = Result<(), String>;

type UnitChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A white chart over [0, 1] × [0, 1] with a caption and axis titles, its mesh drawn.
fn unit_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    caption: String,
    x_desc: &str,
    y_desc: &str,
) -> Result<UnitChart<'a, DB>, String> {
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0f64..1.0, 0.0f64..1.0)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    Ok(chart)
}

/// The series' legend in the lower right, then the drawing finished.
fn legend_and_present<'a, DB: DrawingBackend + 'a>(
    root: &DrawingArea<DB, Shift>,
    chart: &mut UnitChart<'a, DB>,
) -> DrawResult {
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)
}

fn draw_roc<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, a: &Analysis) -> DrawResult {
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    let mut chart = unit_chart(
        root,
        format!(
            "ROC — AUC {:.3} ({:.3}–{:.3})",
            a.auc_delong.value, a.auc_delong.lower, a.auc_delong.upper
        ),
        "1 − specificity",
        "sensitivity",
    )?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.25)))
        .map_err(e)?;
    chart
        .draw_series(LineSeries::new(
            a.roc.fpr.iter().zip(&a.roc.tpr).map(|(&x, &y)| (x, y)),
            BLUE.stroke_width(2),
        ))
        .map_err(e)?
        .label("model")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE.stroke_width(2)));
    let marks = [RED, MAGENTA, GREEN];
    for (c, colour) in a.at_cutoffs.iter().zip(marks) {
        let (Some(sens), Some(spec)) = (c.metrics.sensitivity, c.metrics.specificity) else {
            continue;
        };
        chart
            .draw_series([TriangleMarker::new(
                (1.0 - spec.value, sens.value),
                8,
                colour.filled(),
            )])
            .map_err(e)?
            .label(format!("cut-off {} {:.3}", c.name, c.cutoff))
            .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 6, colour.filled()));
    }
    for (i, r) in a.readers.iter().enumerate() {
        let (Some(sens), Some(spec)) = (r.metrics.sensitivity, r.metrics.specificity) else {
            continue;
        };
        let colour = Palette99::pick(i + 3).to_rgba();
        chart
            .draw_series([Circle::new(
                (1.0 - spec.value, sens.value),
                5,
                colour.filled(),
            )])
            .map_err(e)?
            .label(format!("reader {}", r.reader))
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, colour.filled()));
    }
    legend_and_present(root, &mut chart)
}

fn draw_pr<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, a: &Analysis) -> DrawResult {
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    let mut chart = unit_chart(
        root,
        format!("Precision–recall — AP {:.3}", a.average_precision),
        "recall (sensitivity)",
        "precision (PPV)",
    )?;
    // Step plot, as average precision is defined (precision held until the next recall).
    let mut pts = Vec::new();
    for i in 0..a.pr.recall.len() {
        if i > 0 {
            pts.push((a.pr.recall[i], a.pr.precision[i - 1]));
        }
        pts.push((a.pr.recall[i], a.pr.precision[i]));
    }
    chart
        .draw_series(LineSeries::new(pts, BLUE.stroke_width(2)))
        .map_err(e)?;
    let prevalence = a.positives as f64 / a.n as f64;
    chart
        .draw_series(LineSeries::new(
            [(0.0, prevalence), (1.0, prevalence)],
            BLACK.mix(0.25),
        ))
        .map_err(e)?;
    root.present().map_err(e)
}

/// Writes roc.png, roc.svg, pr.png, pr.svg into `dir`.
pub fn write_plots(dir: &Path, a: &Analysis) -> DrawResult {
    register_font();
    let size = (720, 640);
    let (roc_png, roc_svg, pr_png, pr_svg) = (
        dir.join("roc.png"),
        dir.join("roc.svg"),
        dir.join("pr.png"),
        dir.join("pr.svg"),
    );
    draw_roc(&BitMapBackend::new(&roc_png, size).into_drawing_area(), a)?;
    draw_roc(&SVGBackend::new(&roc_svg, size).into_drawing_area(), a)?;
    draw_pr(&BitMapBackend::new(&pr_png, size).into_drawing_area(), a)?;
    draw_pr(&SVGBackend::new(&pr_svg, size).into_drawing_area(), a)?;
    Ok(())
}

fn draw_reader_rocs<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    modality: &str,
    curves: &[(String, f64, crate::stats::roc::RocCurve)],
) -> DrawResult {
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    let mut chart = unit_chart(
        root,
        format!("ROC by reader — {modality}"),
        "1 − specificity",
        "sensitivity",
    )?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.25)))
        .map_err(e)?;
    for (i, (reader, auc, roc)) in curves.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                roc.fpr.iter().zip(&roc.tpr).map(|(&x, &y)| (x, y)),
                colour.stroke_width(2),
            ))
            .map_err(e)?
            .label(format!("{reader} (AUC {auc:.3})"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    legend_and_present(root, &mut chart)
}

/// Writes `mrmc_roc_N.png` and `.svg` for each modality N (1-based): every reader's empirical ROC curve.
/// Returns the SVG file names.
pub fn write_reader_rocs(
    dir: &Path,
    study: &crate::stats::mrmc::Study,
) -> Result<Vec<String>, String> {
    register_font();
    let size = (720, 640);
    let (nj, nk) = (study.readers.len(), study.cases.len());
    let mut svgs = Vec::new();
    for (i, modality) in study.modalities.iter().enumerate() {
        let curves = study
            .readers
            .iter()
            .enumerate()
            .map(|(j, reader)| {
                let scores = &study.ratings[(i * nj + j) * nk..(i * nj + j + 1) * nk];
                let roc = crate::stats::roc::roc_curve(&study.truth, scores, true)
                    .map_err(|e| e.to_string())?;
                let auc =
                    crate::stats::roc::roc_auc(&study.truth, scores).map_err(|e| e.to_string())?;
                Ok((reader.clone(), auc, roc))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let (png, svg) = (
            format!("mrmc_roc_{}.png", i + 1),
            format!("mrmc_roc_{}.svg", i + 1),
        );
        draw_reader_rocs(
            &BitMapBackend::new(&dir.join(&png), size).into_drawing_area(),
            modality,
            &curves,
        )?;
        draw_reader_rocs(
            &SVGBackend::new(&dir.join(&svg), size).into_drawing_area(),
            modality,
            &curves,
        )?;
        svgs.push(svg);
    }
    Ok(svgs)
}

/// A learning-rate plot (PNG): loss against a logarithmic learning-rate axis, with an optional suggested
/// rate marked (the LR range test's curve).
pub fn lr_find_png(
    path: &Path,
    lrs: &[f64],
    losses: &[f64],
    suggestion: Option<f64>,
) -> DrawResult {
    register_font();
    let root = BitMapBackend::new(path, (720, 480)).into_drawing_area();
    let e2 =
        |err: DrawingAreaErrorKind<<BitMapBackend as DrawingBackend>::ErrorType>| err.to_string();
    root.fill(&WHITE).map_err(e2)?;
    let finite: Vec<(f64, f64)> = lrs
        .iter()
        .zip(losses)
        .filter(|(l, v)| l.is_finite() && **l > 0.0 && v.is_finite())
        .map(|(&l, &v)| (l, v))
        .collect();
    let (x0, x1) = finite
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &(l, _)| {
            (a.min(l), b.max(l))
        });
    let (y0, y1) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(_, v)| {
            (a.min(v), b.max(v))
        });
    if finite.len() < 2 || x1 <= x0 {
        return Err("too few points to plot".into());
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            match suggestion {
                Some(s) => format!("LR range test — valley {s:.2e}"),
                None => "LR range test".to_string(),
            },
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0..x1).log_scale(), (y0 - pad)..(y1 + pad))
        .map_err(e2)?;
    chart
        .configure_mesh()
        .x_desc("learning rate")
        .y_desc("smoothed loss")
        .x_label_formatter(&|v| format!("{v:.0e}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(e2)?;
    chart
        .draw_series(LineSeries::new(
            finite.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(e2)?;
    if let Some(s) = suggestion
        && let Some(&(_, v)) = finite.iter().min_by(|a, b| {
            (a.0.ln() - s.ln())
                .abs()
                .total_cmp(&(b.0.ln() - s.ln()).abs())
        })
    {
        chart
            .draw_series([Circle::new((s, v), 6, RED.filled())])
            .map_err(e2)?;
    }
    root.present().map_err(e2)
}

/// Writes an LR-finder result as CSV (`lr,smoothed_loss`) and a PNG plot of it (`sacro lr-find`).
pub fn write_lr_find(
    csv_path: &std::path::Path,
    png_path: &std::path::Path,
    lrs: &[f64],
    losses: &[f64],
    suggestion: Option<f64>,
) -> Result<(), String> {
    let mut text = String::from("lr,smoothed_loss\n");
    for (lr, loss) in lrs.iter().zip(losses) {
        text.push_str(&format!("{lr},{loss}\n"));
    }
    crate::imaging::export::write_via_temp(csv_path, |tmp| {
        std::fs::write(tmp, &text).map_err(|e| e.to_string())
    })
    .map_err(|e| format!("{}: {e}", csv_path.display()))?;
    lr_find_png(png_path, lrs, losses, suggestion)
        .map_err(|e| format!("{}: {e}", png_path.display()))
}
