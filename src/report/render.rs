//! The report as Markdown, as a self-contained HTML page (the Markdown rendered by pulldown-cmark, the
//! SVG plots inline), as CSV tables and as JSON.

use std::fmt::Write as _;
use std::path::Path;

use super::analysis::Analysis;
use super::inputs::InputError;
use crate::escape;
use crate::imaging::export::write_via_temp;
use crate::stats::Estimate;

fn est(e: Option<Estimate>) -> String {
    e.map(|e| format!("{:.3} ({:.3}–{:.3})", e.value, e.lower, e.upper))
        .unwrap_or_else(|| "–".into())
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

/// The report in Markdown (`plots` adds links to roc.png and pr.png). Every name from the data (readers,
/// the compared score) is written as literal text ([`escape::markdown`]).
pub fn markdown(a: &Analysis, plots: bool) -> String {
    let md = |s: &str| escape::markdown(s);
    let pct = (a.level * 100.0).round();
    let mut m = String::new();
    let _ = writeln!(m, "# Sacro statistics report\n");
    let _ = writeln!(
        m,
        "{} cases: {} with definite radiographic sacroiliitis by the reference, {} without{}. \
         Intervals are {pct}% (Wilson for proportions, DeLong and stratified bootstrap for the AUC, \
         case bootstrap for kappa; seed {}).\n",
        a.n,
        a.positives,
        a.negatives,
        if a.excluded_unlabelled > 0 {
            format!(
                "; {} case(s) without a reference label left out",
                a.excluded_unlabelled
            )
        } else {
            String::new()
        },
        a.seed
    );
    let _ = writeln!(m, "## Discrimination\n");
    let _ = writeln!(m, "| measure | value ({pct}% CI) |\n|---|---|");
    let _ = writeln!(m, "| AUC, DeLong | {} |", est(Some(a.auc_delong)));
    let _ = writeln!(
        m,
        "| AUC, stratified bootstrap ({} resamples, percentile) | {} |",
        a.auc_bootstrap.resamples,
        est(Some(a.auc_bootstrap.estimate))
    );
    let _ = writeln!(
        m,
        "| Average precision (scikit-learn's step definition, no interpolation) | {:.3} |",
        a.average_precision
    );
    if let Some((name, t)) = &a.comparison {
        let _ = writeln!(
            m,
            "| DeLong test against {} (AUC {:.3}) | z = {:.3}, p = {:.4} |",
            md(name),
            t.auc_b,
            t.z,
            t.p
        );
    }
    if plots {
        let _ = writeln!(
            m,
            "\n![ROC curve](roc.png) ![Precision-recall curve](pr.png)"
        );
    }
    let _ = writeln!(
        m,
        "\n## Cut-offs\n\nCut-offs {}. A case is called positive when its probability is ≥ the cut-off.\n",
        a.cutoff_method
    );
    let _ = writeln!(
        m,
        "| cut-off | value | TP | FP | TN | FN | sensitivity | specificity | PPV | NPV | accuracy | Cohen's kappa |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in &a.at_cutoffs {
        let _ = writeln!(
            m,
            "| {} | {:.4} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.name,
            c.cutoff,
            c.confusion.tp,
            c.confusion.fp,
            c.confusion.tn,
            c.confusion.fn_,
            est(c.metrics.sensitivity),
            est(c.metrics.specificity),
            est(c.metrics.ppv),
            est(c.metrics.npv),
            est(c.metrics.accuracy),
            est(c.kappa.map(|k| k.estimate))
        );
    }
    if !a.readers.is_empty() {
        let _ = writeln!(m, "\n## Readers against the reference\n");
        let _ = writeln!(
            m,
            "| reader | n | TP | FP | TN | FN | sensitivity | 1 − specificity | specificity | PPV | NPV | accuracy |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &a.readers {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md(&r.reader),
                r.n,
                r.confusion.tp,
                r.confusion.fp,
                r.confusion.tn,
                r.confusion.fn_,
                est(r.metrics.sensitivity),
                opt(r.metrics.specificity.map(|s| 1.0 - s.value)),
                est(r.metrics.specificity),
                est(r.metrics.ppv),
                est(r.metrics.npv),
                est(r.metrics.accuracy)
            );
        }
    }
    let _ = writeln!(m, "\n## Agreement (definite radiographic sacroiliitis)\n");
    let _ = writeln!(
        m,
        "| rater A | rater B | n | agreement | PABAK | Cohen's kappa ({pct}% CI) |\n|---|---|---|---|---|---|"
    );
    for p in &a.agreement {
        let kappa = match (&p.kappa, &p.note) {
            (Some(k), _) => est(Some(k.estimate)),
            (None, Some(note)) => format!("– ({note})"),
            _ => "–".into(),
        };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} |",
            md(&p.a),
            md(&p.b),
            p.n,
            opt(p.agreement),
            opt(p.pabak),
            kappa
        );
    }
    if !a.grade_agreement.is_empty() {
        let _ = writeln!(m, "\n## Joint grades (0–4), left and right joints pooled\n");
        let _ = writeln!(
            m,
            "| reader A | reader B | joints | linear-weighted kappa | quadratic-weighted kappa |\n|---|---|---|---|---|"
        );
        for g in &a.grade_agreement {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} |",
                md(&g.a),
                md(&g.b),
                g.joints,
                opt(g.linear),
                opt(g.quadratic)
            );
        }
    }
    if let Some(f) = &a.fleiss {
        let _ = writeln!(
            m,
            "\nFleiss' kappa of all {} readers ({}) on the {} cases every one of them called: {}.",
            f.readers.len(),
            f.readers
                .iter()
                .map(|r| md(r))
                .collect::<Vec<_>>()
                .join(", "),
            f.n,
            opt(f.kappa)
        );
    }
    if let Some(d) = &a.disagreement {
        let _ = writeln!(m, "\n## Cases where the readers disagree (n = {})\n", d.n);
        let _ = writeln!(
            m,
            "| cut-off | model positive | model negative | model agrees with reference |\n|---|---|---|---|"
        );
        for (name, pos, neg, agree) in &d.per_cutoff {
            let _ = writeln!(m, "| {name} | {pos} | {neg} | {agree} |");
        }
    }
    m
}

pub(super) fn io_err(path: &Path, e: impl std::fmt::Display) -> InputError {
    InputError {
        path: path.to_path_buf(),
        row: None,
        detail: format!("cannot write: {e}"),
    }
}

pub(super) fn write_csv(
    path: &Path,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<(), InputError> {
    write_via_temp(path, |tmp| {
        let mut w = csv::Writer::from_path(tmp).map_err(|e| e.to_string())?;
        w.write_record(header).map_err(|e| e.to_string())?;
        for r in rows {
            w.write_record(r.iter().map(|c| escape::csv_cell(c).into_owned()))
                .map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())
    })
    .map_err(|e| io_err(path, e))
}

/// Writes `text` to `dir/name` through a temporary file.
pub(super) fn write_text(dir: &Path, name: &str, text: &str) -> Result<(), InputError> {
    let path = dir.join(name);
    write_via_temp(&path, |tmp| {
        std::fs::write(tmp, text).map_err(|e| e.to_string())
    })
    .map_err(|e| io_err(&path, e))
}

fn num(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Markdown as HTML; raw HTML in the Markdown (none is written; a name could only bring it in) is shown
/// as text.
pub(super) fn markdown_html(md: &str) -> String {
    let events = pulldown_cmark::Parser::new_ext(md, pulldown_cmark::Options::ENABLE_TABLES).map(
        |e| match e {
            pulldown_cmark::Event::Html(h) | pulldown_cmark::Event::InlineHtml(h) => {
                pulldown_cmark::Event::Text(h)
            }
            e => e,
        },
    );
    let mut body = String::new();
    pulldown_cmark::html::push_html(&mut body, events);
    body
}

/// A standalone page around an HTML body (`title` is Sacro's own text).
pub(super) fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\
         body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}.plot{{display:inline-block;width:48%}}.plot svg{{width:100%;height:auto}}\
         </style></head><body>\n{body}\n</body></html>\n"
    )
}

/// Writes every report file into `dir` (created if missing).
pub fn write_report(dir: &Path, a: &Analysis) -> Result<(), InputError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    super::plots::write_plots(dir, a).map_err(|e| io_err(&dir.join("roc.png"), e))?;
    let md = markdown(a, true);
    write_text(dir, "report.md", &md)?;
    // HTML: the same Markdown, with the PNG links replaced by the inline SVGs so the page stands alone.
    let mut svgs = String::new();
    for f in ["roc.svg", "pr.svg"] {
        let svg = std::fs::read_to_string(dir.join(f)).map_err(|e| io_err(&dir.join(f), e))?;
        svgs.push_str(&format!("<div class=\"plot\">{svg}</div>"));
    }
    let body_md = md.replace(
        "![ROC curve](roc.png) ![Precision-recall curve](pr.png)",
        "PLOTS_HERE",
    );
    let body = markdown_html(&body_md).replace("<p>PLOTS_HERE</p>", &svgs);
    write_text(
        dir,
        "report.html",
        &html_page("Sacro statistics report", &body),
    )?;
    let json = serde_json::to_string_pretty(a).map_err(|e| io_err(&dir.join("report.json"), e))?;
    write_text(dir, "report.json", &json)?;

    write_csv(
        &dir.join("roc.csv"),
        &["fpr", "tpr", "threshold"],
        a.roc
            .fpr
            .iter()
            .zip(&a.roc.tpr)
            .zip(&a.roc.thresholds)
            .map(|((f, t), th)| vec![f.to_string(), t.to_string(), th.to_string()]),
    )?;
    write_csv(
        &dir.join("pr.csv"),
        &["recall", "precision", "threshold"],
        a.pr.recall
            .iter()
            .zip(&a.pr.precision)
            .enumerate()
            .map(|(i, (r, p))| {
                vec![
                    r.to_string(),
                    p.to_string(),
                    a.pr.thresholds
                        .get(i)
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                ]
            }),
    )?;
    let metric_cols = |m: &crate::stats::confusion::Metrics| -> Vec<String> {
        [m.sensitivity, m.specificity, m.ppv, m.npv, m.accuracy]
            .iter()
            .flat_map(|e| {
                [
                    num(e.map(|e| e.value)),
                    num(e.map(|e| e.lower)),
                    num(e.map(|e| e.upper)),
                ]
            })
            .collect()
    };
    let metric_header = [
        "sensitivity",
        "sensitivity_lower",
        "sensitivity_upper",
        "specificity",
        "specificity_lower",
        "specificity_upper",
        "ppv",
        "ppv_lower",
        "ppv_upper",
        "npv",
        "npv_lower",
        "npv_upper",
        "accuracy",
        "accuracy_lower",
        "accuracy_upper",
    ];
    let mut h = vec!["cutoff_name", "cutoff", "tp", "fp", "tn", "fn"];
    h.extend(metric_header);
    h.extend(["kappa", "kappa_lower", "kappa_upper"]);
    write_csv(
        &dir.join("cutoffs.csv"),
        &h,
        a.at_cutoffs.iter().map(|c| {
            let mut r = vec![
                c.name.clone(),
                c.cutoff.to_string(),
                c.confusion.tp.to_string(),
                c.confusion.fp.to_string(),
                c.confusion.tn.to_string(),
                c.confusion.fn_.to_string(),
            ];
            r.extend(metric_cols(&c.metrics));
            let k = c.kappa.map(|k| k.estimate);
            r.extend([
                num(k.map(|k| k.value)),
                num(k.map(|k| k.lower)),
                num(k.map(|k| k.upper)),
            ]);
            r
        }),
    )?;
    let mut h = vec!["reader", "n", "tp", "fp", "tn", "fn"];
    h.extend(metric_header);
    write_csv(
        &dir.join("readers.csv"),
        &h,
        a.readers.iter().map(|r| {
            let mut row = vec![
                r.reader.clone(),
                r.n.to_string(),
                r.confusion.tp.to_string(),
                r.confusion.fp.to_string(),
                r.confusion.tn.to_string(),
                r.confusion.fn_.to_string(),
            ];
            row.extend(metric_cols(&r.metrics));
            row
        }),
    )?;
    write_csv(
        &dir.join("agreement.csv"),
        &[
            "rater_a",
            "rater_b",
            "n",
            "agreement",
            "pabak",
            "kappa",
            "kappa_lower",
            "kappa_upper",
        ],
        a.agreement.iter().map(|p| {
            let k = p.kappa.map(|k| k.estimate);
            vec![
                p.a.clone(),
                p.b.clone(),
                p.n.to_string(),
                num(p.agreement),
                num(p.pabak),
                num(k.map(|k| k.value)),
                num(k.map(|k| k.lower)),
                num(k.map(|k| k.upper)),
            ]
        }),
    )?;
    Ok(())
}
