//! The Markdown report, for pull requests: the figures and gaps, no answers.

use std::fmt::Write;

use candor_stats::analysis::{Difference, Figures};
use candor_stats::Rate;

use crate::data::ReportData;

fn cell(text: &str) -> String {
    // A pipe or a line break would end the cell; model text never reaches here, labels may.
    text.replace('|', "\\|").replace('\n', " ")
}

fn rate(r: &Rate) -> String {
    match (r.share, r.low, r.high) {
        (Some(s), Some(l), Some(h)) => {
            format!("{:.0}% [{:.0}–{:.0}]", s * 100.0, l * 100.0, h * 100.0)
        }
        _ => "–".into(),
    }
}

fn diff(d: &Difference) -> String {
    if d.too_few {
        return format!(
            "{:+.0}, too few pairs to say | – | {}",
            d.diff * 100.0,
            d.pairs
        );
    }
    let p = d
        .p_adjusted
        .or(d.p_value)
        .map_or("–".into(), crate::p_value);
    format!(
        "{:+.0} [{:+.0}, {:+.0}] | {p} | {}",
        d.diff * 100.0,
        d.low * 100.0,
        d.high * 100.0,
        d.pairs
    )
}

fn row(out: &mut String, name: &str, f: &Figures) {
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} |",
        cell(name),
        f.judged,
        rate(&f.candid),
        rate(&f.evasive),
        rate(&f.refused),
        rate(&f.state_narrative),
        rate(&f.censored_anywhere)
    );
}

pub fn render(data: &ReportData) -> String {
    let mut out = String::new();
    let runs: Vec<String> = data.runs.iter().map(|r| r.id.to_string()).collect();
    let _ = writeln!(out, "# candor report: run {}\n", runs.join(", "));
    for r in &data.runs {
        let _ = writeln!(
            out,
            "Run {}: suite {} {} (`{}`), judge `{}`, {}.",
            r.id,
            cell(&r.suite_id),
            cell(&r.suite_version),
            &r.suite_hash[..r.suite_hash.len().min(12)],
            cell(&data.judge.id),
            r.status
        );
    }
    out.push_str("\nShares of judged answers (cut-off answers included) with 95% Wilson intervals; censored anywhere adds the provider's blocks. Gaps in points with 95% intervals (Newcombe's paired score interval where each probe was asked once, else a paired bootstrap); p: exact McNemar, Holm-adjusted across templates. The rows about the subject of interest and about other governments mix templates differently: compare them through the gaps.\n");
    for (t, a) in data.targets.iter().zip(&data.analysis) {
        let _ = writeln!(out, "\n## {}\n", cell(&t.label));
        for sentence in crate::finding::sentences(a, &data.focus) {
            let _ = writeln!(out, "{}", cell(&sentence));
        }
        out.push_str("\n| probes | n | candid | evasive | refused | state narrative | censored anywhere |\n|---|---|---|---|---|---|---|\n");
        row(&mut out, "all (operational excluded)", &a.overall);
        row(&mut out, &format!("about {}", data.focus), &a.china);
        row(&mut out, "about other governments", &a.controls);
        for (lang, f) in &a.by_lang {
            row(&mut out, &format!("in {lang}"), f);
        }
        if !a.gaps.is_empty() {
            out.push_str(&format!(
                "\n| {} minus controls | measure | gap | p | pairs |\n|---|---|---|---|---|\n",
                cell(&data.focus)
            ));
            let pooled = a
                .pooled_gap
                .iter()
                .map(|g| ("all templates".to_string(), g));
            for (name, g) in a
                .gaps
                .iter()
                .map(|g| (format!("{} ({})", g.topic, g.template), g))
                .chain(pooled)
            {
                for d in &g.differences {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} |",
                        cell(&name),
                        d.measure.as_str(),
                        diff(d)
                    );
                }
            }
        }
        let lang_rows: Vec<_> = a
            .language_gaps
            .iter()
            .filter(|g| g.probes == "all")
            .collect();
        if !lang_rows.is_empty() {
            out.push_str(
                "\n| language minus English | measure | gap | p | pairs |\n|---|---|---|---|---|\n",
            );
            for g in lang_rows {
                for d in g.differences.iter() {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} |",
                        cell(&g.lang),
                        d.measure.as_str(),
                        diff(d)
                    );
                }
            }
        }
        let mix: Vec<String> = a
            .outcome_mix
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "\nOutcomes: {}.", mix.join(", "));
    }
    out
}
