//! The reader-study (MRMC) report: Markdown, HTML, JSON and CSV. Names of readers and modalities come
//! from the user's CSV and are written as literal text ([`escape::markdown`], [`escape::csv_cell`]).

use std::fmt::Write as _;
use std::path::Path;

use super::inputs::InputError;
use super::render::{html_page, io_err, markdown_html, write_csv, write_text};
use crate::escape;
use crate::stats::mrmc::{Inference, Mrmc};

fn f(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
    } else {
        "—".into()
    }
}

fn p(v: f64) -> String {
    if v < 1e-4 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}

fn inference(out: &mut String, inf: &Inference, level: f64) {
    let _ = writeln!(out, "\n#### {}\n", inf.factors);
    match (&inf.test, &inf.undefined) {
        (Some(t), _) => {
            let _ = writeln!(
                out,
                "Test of equal modalities: {} = {}, df = {}{}, p = {}\n",
                if t.df2.is_some() { "F" } else { "χ²" },
                f(t.statistic),
                t.df1,
                t.df2.map(|d| format!(", {}", f(d))).unwrap_or_default(),
                p(t.p)
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(out, "Test of equal modalities: undefined ({why})\n");
        }
        _ => {}
    }
    if !inf.differences.is_empty() {
        let _ = writeln!(
            out,
            "| difference | estimate | std. error | df | {:.0} % CI | p |\n|---|---|---|---|---|---|",
            level * 100.0
        );
        for d in &inf.differences {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} to {} | {} |",
                escape::markdown(&d.comparison),
                f(d.estimate),
                f(d.std_err),
                d.df.map_or("normal".into(), f),
                f(d.lower),
                f(d.upper),
                p(d.p)
            );
        }
    }
    if !inf.modalities.is_empty() {
        let _ = writeln!(
            out,
            "\n| modality (its data alone) | estimate | std. error | df | {:.0} % CI |\n|---|---|---|---|---|",
            level * 100.0
        );
        for m in &inf.modalities {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} to {} |",
                escape::markdown(&m.modality),
                f(m.estimate),
                f(m.std_err),
                m.df.map_or("normal".into(), f),
                f(m.lower),
                f(m.upper)
            );
        }
    }
}

/// The report as Markdown.
pub fn markdown(analyses: &[Mrmc], excluded: usize) -> String {
    let mut out = String::from("# Reader study (multi-reader multi-case)\n");
    if let Some(a) = analyses.first() {
        let _ = writeln!(
            out,
            "\n{} readers × {} modalities × {} cases ({} positive, {} negative){}. Covariances: {:?}.\n",
            a.readers.len(),
            a.modalities.len(),
            a.cases.0,
            a.cases.1,
            a.cases.2,
            if excluded > 0 {
                format!("; {excluded} case(s) without truth left out")
            } else {
                String::new()
            },
            a.covariance_method
        );
    }
    for a in analyses {
        // The figure of merit is named by Sacro, not by the CSV.
        let _ = writeln!(out, "\n## {}\n", a.fom);
        let mut header = String::from("| modality |");
        let mut rule = String::from("|---|");
        for r in &a.readers {
            let _ = write!(header, " {} |", escape::markdown(r));
            rule.push_str("---|");
        }
        header.push_str(" mean |");
        rule.push_str("---|");
        let _ = writeln!(out, "{header}\n{rule}");
        for (i, m) in a.modalities.iter().enumerate() {
            let mut row = format!("| {} |", escape::markdown(m));
            for v in &a.foms[i] {
                let _ = write!(row, " {} |", f(*v));
            }
            let _ = writeln!(row, " {} |", f(a.modality_means[i]));
            out.push_str(&row);
        }
        let c = &a.covariances;
        let _ = writeln!(
            out,
            "\nObuchowski–Rockette: MS(T) {}, MS(R) {}, MS(T×R) {}; Var {}, Cov1 {}, Cov2 {}, Cov3 {}; \
             reader variance {}, treatment × reader variance {}.",
            f(a.ms_t),
            f(a.ms_r),
            f(a.ms_tr),
            f(c.var),
            f(c.cov1),
            f(c.cov2),
            f(c.cov3),
            f(a.var_r),
            f(a.var_tr)
        );
        inference(&mut out, &a.rrrc, a.level);
        inference(&mut out, &a.frrc, a.level);
        inference(&mut out, &a.rrfc, a.level);
        let d = &a.dbm;
        let _ = writeln!(
            out,
            "\n#### Dorfman–Berbaum–Metz (jackknife pseudovalues, Hillis's denominator)\n\nMS(T) {}, MS(T×R) {}, \
             MS(T×C) {}, MS(T×R×C) {}{}",
            f(d.ms_t),
            f(d.ms_tr),
            f(d.ms_tc),
            f(d.ms_trc),
            d.test
                .as_ref()
                .map(|t| format!(
                    "; F = {}, df = {}, {}, p = {}",
                    f(t.statistic),
                    t.df1,
                    t.df2.map_or_else(String::new, f),
                    p(t.p)
                ))
                .unwrap_or_else(|| "; the test is undefined".into())
        );
    }
    out
}

/// Writes `mrmc.md`, `mrmc.html` (with the plots inline), `mrmc.json`, `mrmc_foms.csv`,
/// `mrmc_differences.csv` and each modality's per-reader ROC plot (`mrmc_roc_N.png/svg`) into `dir`.
pub fn write(
    dir: &Path,
    study: &crate::stats::mrmc::Study,
    analyses: &[Mrmc],
    excluded: usize,
) -> Result<(), InputError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let svgs = super::plots::write_reader_rocs(dir, study)
        .map_err(|e| io_err(&dir.join("mrmc_roc_1.svg"), e))?;
    let md = markdown(analyses, excluded);
    // Markdown links the PNGs; the HTML has the SVGs inline so the page stands alone.
    let mut links = String::from("\n## ROC curves by reader\n\n");
    let mut plots = String::from("<h2>ROC curves by reader</h2>");
    for s in &svgs {
        links.push_str(&format!("![{s}]({})\n", s.replace(".svg", ".png")));
        let svg = std::fs::read_to_string(dir.join(s)).map_err(|e| io_err(&dir.join(s), e))?;
        plots.push_str(&format!("<div class=\"plot\">{svg}</div>"));
    }
    write_text(dir, "mrmc.md", &format!("{md}{links}"))?;
    let body = markdown_html(&md) + &plots;
    write_text(dir, "mrmc.html", &html_page("Sacro reader study", &body))?;
    let json =
        serde_json::to_string_pretty(analyses).map_err(|e| io_err(&dir.join("mrmc.json"), e))?;
    write_text(dir, "mrmc.json", &json)?;
    write_csv(
        &dir.join("mrmc_foms.csv"),
        &["fom", "modality", "reader", "value"],
        analyses.iter().flat_map(|a| {
            a.modalities.iter().enumerate().flat_map(move |(i, m)| {
                a.readers.iter().enumerate().map(move |(j, r)| {
                    vec![
                        a.fom.clone(),
                        m.clone(),
                        r.clone(),
                        a.foms[i][j].to_string(),
                    ]
                })
            })
        }),
    )?;
    write_csv(
        &dir.join("mrmc_differences.csv"),
        &[
            "fom",
            "analysis",
            "comparison",
            "estimate",
            "std_err",
            "df",
            "lower",
            "upper",
            "p",
        ],
        analyses.iter().flat_map(|a| {
            [&a.rrrc, &a.frrc, &a.rrfc]
                .into_iter()
                .flat_map(move |inf| {
                    inf.differences.iter().map(move |d| {
                        vec![
                            a.fom.clone(),
                            inf.factors.clone(),
                            d.comparison.clone(),
                            d.estimate.to_string(),
                            d.std_err.to_string(),
                            d.df.map(|v| v.to_string()).unwrap_or_default(),
                            d.lower.to_string(),
                            d.upper.to_string(),
                            d.p.to_string(),
                        ]
                    })
                })
        }),
    )
}
