//! A comparison of two targets (or one target in two runs) rendered for a terminal and for
//! Markdown.

use std::fmt::Write;

use candor_stats::analysis::{Comparison, Difference};

/// The (Holm-adjusted where adjusted) p-value, or a dash.
pub fn p_text(d: &Difference) -> String {
    d.p_adjusted
        .or(d.p_value)
        .map_or("–".into(), |p| format!("{p:.3}"))
}

/// The difference and its interval in points, or that the pairs are too few to say.
pub fn interval_text(d: &Difference) -> String {
    if d.too_few {
        format!("{:+.0} (too few pairs to say)", d.diff * 100.0)
    } else {
        format!(
            "{:+.0} [{:+.0}, {:+.0}]",
            d.diff * 100.0,
            d.low * 100.0,
            d.high * 100.0
        )
    }
}

fn line(d: &Difference) -> String {
    format!(
        "{:<17}  {:>5.0}%  {:>5.0}%  {:>14}  p {}  pairs {}",
        d.measure.as_str(),
        d.first * 100.0,
        d.second * 100.0,
        interval_text(d),
        p_text(d),
        d.pairs
    )
}

/// The comparison for a terminal: one line per measure, overall and per topic.
pub fn text(first: &str, second: &str, comparison: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A: {first}\nB: {second}\npaired by probe, language and sample; A minus B in points, 95% interval (Newcombe's score interval where each probe was asked once, else a paired bootstrap), exact McNemar p (Holm-adjusted across topics)\n");
    let _ = writeln!(
        out,
        "{:<28}  {:<17}  {:>6}  {:>6}  difference",
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
        let _ = writeln!(
            md,
            "| {} | {} | {:.0}% | {:.0}% | {} | {} | {} |",
            topic.replace('|', "\\|"),
            d.measure.as_str(),
            d.first * 100.0,
            d.second * 100.0,
            interval_text(d),
            p_text(d),
            d.pairs
        );
    }
    md
}
