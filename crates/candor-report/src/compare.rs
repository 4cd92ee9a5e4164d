//! A comparison of two targets (or one target in two runs) rendered for a terminal and for
//! Markdown.

use std::fmt::Write;

use candor_stats::analysis::{Comparison, Difference};

fn line(d: &Difference) -> String {
    let p = d
        .p_adjusted
        .or(d.p_value)
        .map_or("–".into(), |p| format!("{p:.3}"));
    format!(
        "{:<10}  {:>5.0}%  {:>5.0}%  {:>+5.0} [{:+.0}, {:+.0}]  p {p}  pairs {}",
        d.measure.as_str(),
        d.first * 100.0,
        d.second * 100.0,
        d.diff * 100.0,
        d.low * 100.0,
        d.high * 100.0,
        d.pairs
    )
}

/// The comparison for a terminal: one line per measure, overall and per topic.
pub fn text(first: &str, second: &str, comparison: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A: {first}\nB: {second}\npaired by probe, language and sample; A minus B in points, 95% interval (Newcombe's score interval where each probe was asked once, else a paired bootstrap), exact McNemar p (Holm-adjusted across topics)\n");
    let _ = writeln!(
        out,
        "{:<28}  {:<10}  {:>6}  {:>6}  difference",
        "", "measure", "A", "B"
    );
    for d in &comparison.overall {
        let _ = writeln!(out, "{:<28}  {}", "all", line(d));
    }
    for (topic, diffs) in &comparison.by_topic {
        for d in diffs {
            let _ = writeln!(out, "{:<28}  {}", topic, line(d));
        }
    }
    out
}

/// The comparison as a Markdown table, for a pull request.
pub fn markdown(first: &str, second: &str, comparison: &Comparison) -> String {
    let mut md = format!("# candor comparison\n\nA: {first}  \nB: {second}\n\n| topic | measure | A | B | A minus B | p | pairs |\n|---|---|---|---|---|---|---|\n");
    for (topic, d) in comparison
        .overall
        .iter()
        .map(|d| ("all".to_string(), d))
        .chain(
            comparison
                .by_topic
                .iter()
                .flat_map(|(t, ds)| ds.iter().map(move |d| (t.clone(), d))),
        )
    {
        let p = d
            .p_adjusted
            .or(d.p_value)
            .map_or("–".into(), |p| format!("{p:.3}"));
        let _ = writeln!(
            md,
            "| {} | {} | {:.0}% | {:.0}% | {:+.0} [{:+.0}, {:+.0}] | {p} | {} |",
            topic.replace('|', "\\|"),
            d.measure.as_str(),
            d.first * 100.0,
            d.second * 100.0,
            d.diff * 100.0,
            d.low * 100.0,
            d.high * 100.0,
            d.pairs
        );
    }
    md
}
