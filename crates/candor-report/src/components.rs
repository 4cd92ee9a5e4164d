//! The pieces of HTML that the report and the dashboard share: the heat map, the forest plot,
//! the figures table, the verdict badge and the answer card. They are rendered with `maud`,
//! which escapes every value unless told otherwise, and styled by classes (see [`css`]), not
//! inline styles, so that they look the same under the dashboard's Content-Security-Policy,
//! which allows no inline style.
//!
//! Links are the caller's: the report points within its own file, the dashboard to its pages.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use candor_core::Intent;
use candor_stats::analysis::{Difference, Figures, Measure, TargetAnalysis};
use candor_stats::Rate;
use maud::{html, Markup};

use crate::data::ReportData;
use crate::finding::{measure_words, pct, points};

/// Steps of the heat map's colour scale: shares are shown to the nearest tenth.
const HEAT_STEPS: usize = 10;

/// The colour of a share of answers that were not candid: from grey to red.
fn heat_colour(share: f64) -> String {
    let s = share.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(247.0, 178.0),
        mix(247.0, 24.0),
        mix(247.0, 43.0)
    )
}

/// The heat-map class of a share: `h0` to `h10`.
fn heat_class(share: f64) -> String {
    let step = (share.clamp(0.0, 1.0) * HEAT_STEPS as f64).round() as usize;
    format!("heat h{step}")
}

/// The measures of a forest plot, each with its colour and its row offset.
const MEASURES: [(Measure, &str, f64); 4] = [
    (Measure::Refused, "#b2182b", -7.5),
    (Measure::NonCandid, "#e08214", -2.5),
    (Measure::StateNarrative, "#5e3c99", 2.5),
    (Measure::CensoredAnywhere, "#1b7837", 7.5),
];

/// How exchanges ended, each with its colour in the outcome bar.
pub const OUTCOME_COLOURS: &[(&str, &str)] = &[
    ("ok", "#4d9221"),
    ("filtered_input", "#762a83"),
    ("filtered_output", "#9970ab"),
    ("retracted", "#c51b7d"),
    ("truncated", "#e08214"),
    ("empty", "#bababa"),
    ("error", "#4d4d4d"),
];

/// The style of every component, for a page's stylesheet.
pub fn css() -> &'static str {
    static CSS: OnceLock<String> = OnceLock::new();
    CSS.get_or_init(|| {
        let mut css = String::from(
            "td.heat{text-align:center;min-width:5em}td.heat a{color:inherit}td.heat small{color:inherit}\
             .badge{display:inline-block;padding:0 .4em;border-radius:3px;font-size:.85em}\
             .badge.candid{background:#d9f0d3}.badge.evasive{background:#fee8c8}.badge.refused{background:#f4a582}.badge.other{background:#ddd}\
             details.answer-card{margin:.2em 0}details.answer-card summary{cursor:pointer}details.answer-card .answer{white-space:pre-wrap;overflow-wrap:anywhere}\
             svg.forest text,svg.outcomes text{font:12px system-ui,sans-serif}",
        );
        for step in 0..=HEAT_STEPS {
            let share = step as f64 / HEAT_STEPS as f64;
            let ink = if share > 0.55 { ";color:#fff" } else { "" };
            css.push_str(&format!(
                "td.h{step}{{background:{}{ink}}}",
                heat_colour(share)
            ));
        }
        for (measure, colour, _) in MEASURES {
            css.push_str(&format!(".m-{}{{color:{colour}}}", measure.as_str()));
        }
        for (name, colour) in OUTCOME_COLOURS {
            css.push_str(&format!(".o-{name}{{color:{colour}}}"));
        }
        css
    })
}

/// A share with its interval: "42% [30–55]".
pub fn rate(r: &Rate) -> Markup {
    match (r.share, r.low, r.high) {
        (Some(s), Some(l), Some(h)) => html! {
            (pct(s)) " " small { "[" (format!("{:.0}–{:.0}", l * 100.0, h * 100.0)) "]" }
        },
        _ => html! { "–" },
    }
}

/// Topics in report order: those whose every probe is about the subject of interest first,
/// then the others, each by name. Operational probes are kept out.
pub fn topic_order(data: &ReportData) -> Vec<(String, bool)> {
    let mut focus: BTreeMap<String, bool> = BTreeMap::new();
    for p in data
        .probes
        .iter()
        .filter(|p| p.intent != Some(Intent::Operational))
    {
        *focus.entry(p.topic.clone()).or_insert(true) &= p.is_focus();
    }
    let mut topics: Vec<(String, bool)> = focus.into_iter().collect();
    topics.sort_by_key(|(t, f)| (!f, t.clone()));
    topics
}

/// The share of judged answers that were not candid, by topic (rows) and target (columns);
/// each cell links to `topic_href(topic)`.
pub fn heat_map(data: &ReportData, topic_href: &dyn Fn(&str) -> String) -> Markup {
    html! {
        table.heat-map {
            tr { th { "topic" } @for t in &data.targets { th { (t.label) } } }
            @for (topic, about_focus) in topic_order(data) {
                tr {
                    td { (topic) @if about_focus { " " small { "(" (data.focus) ")" } } }
                    @for a in &data.analysis {
                        @let cell = a.by_topic.iter().find(|(t, _)| *t == topic).map(|(_, f)| f).filter(|f| f.judged > 0);
                        @if let Some(f) = cell {
                            @let share = f.non_candid.share.unwrap_or(0.0);
                            td class=(heat_class(share)) {
                                a href=(topic_href(&topic)) { (pct(share)) } " " small { "n=" (f.judged) }
                            }
                        } @else {
                            td.heat { "–" }
                        }
                    }
                }
            }
        }
    }
}

/// One row of a forest plot: a label (linked where `link` is given), and per measure a point
/// with its interval.
pub struct ForestRow {
    pub label: String,
    pub link: Option<String>,
    pub diffs: Vec<Difference>,
}

/// The p-value beside a difference: Holm-adjusted where adjusted.
fn p_words(d: &Difference) -> String {
    d.p_adjusted
        .or(d.p_value)
        .map_or(String::new(), |p| match crate::p_value(p) {
            shown if shown.starts_with('<') => format!(" p{shown}"),
            shown => format!(" p={shown}"),
        })
}

/// Differences as points with 95% intervals on a scale of -100 to +100 points, one row each,
/// with the figures in words beside them; a difference from too few pairs is named, not drawn.
pub fn forest_plot(rows: &[ForestRow]) -> Markup {
    const LEFT: f64 = 230.0;
    const WIDTH: f64 = 340.0;
    const ROW: f64 = 26.0;
    let height = ROW * rows.len() as f64 + 40.0;
    let x = |d: f64| LEFT + (d.clamp(-1.0, 1.0) + 1.0) / 2.0 * WIDTH;
    html! {
        svg.forest role="img" width="1060" height=(height) viewBox={ "0 0 1060 " (height) } {
            @for tick in [-1.0, -0.5, 0.0, 0.5, 1.0] {
                line x1=(x(tick)) x2=(x(tick)) y1="10" y2=(height - 25.0) stroke=(if tick == 0.0 { "#444" } else { "#ddd" }) {}
                text x=(x(tick)) y=(height - 10.0) text-anchor="middle" { (points(tick)) }
            }
            @for (i, row) in rows.iter().enumerate() {
                @let y = 20.0 + ROW * i as f64;
                @if let Some(link) = &row.link {
                    a href=(link) { text x="4" y=(y + 4.0) { (row.label) } }
                } @else {
                    text x="4" y=(y + 4.0) { (row.label) }
                }
                @for (measure, colour, dy) in MEASURES {
                    @for d in row.diffs.iter().filter(|d| d.measure == measure && !d.too_few) {
                        line x1=(x(d.low)) x2=(x(d.high)) y1=(y + dy) y2=(y + dy) stroke=(colour) stroke-width="2" {}
                        circle cx=(x(d.diff)) cy=(y + dy) r="4" fill=(colour) {
                            title { (measure.as_str()) ": " (points(d.diff)) " [" (points(d.low)) ", " (points(d.high)) "]" }
                        }
                    }
                }
                text x=(LEFT + WIDTH + 10.0) y=(y + 4.0) { (forest_notes(&row.diffs)) }
            }
        }
        p { small {
            span.m-refused { "●" } " refused, "
            span.m-non_candid { "●" } " not candid (refused or evasive), "
            span.m-state_narrative { "●" } " state narrative (an official line asserted without the other story), "
            span.m-censored_anywhere { "●" } " censored anywhere (not candid, or blocked by the provider); "
            "points, with 95% intervals (Newcombe's score interval where each probe was asked once, a paired bootstrap where samples repeat); a difference from fewer than 5 pairs is not drawn, only named; p: exact McNemar, Holm-adjusted."
        } }
    }
}

/// A row's differences in words, in the order they came.
fn forest_notes(diffs: &[Difference]) -> String {
    diffs
        .iter()
        .map(|d| match d.too_few {
            true => format!(
                "{} {} ({} pairs: too few to say)",
                measure_words(d.measure),
                points(d.diff),
                d.pairs
            ),
            false => format!(
                "{} {} [{}, {}]{}",
                measure_words(d.measure),
                points(d.diff),
                points(d.low),
                points(d.high),
                p_words(d)
            ),
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The forest rows of a target's selective gaps, one per template and one pooled;
/// `template_href(topic, template)` links each template's row.
pub fn gap_rows(
    a: &TargetAnalysis,
    template_href: &dyn Fn(&str, &str) -> String,
) -> Vec<ForestRow> {
    let mut rows: Vec<ForestRow> = a
        .gaps
        .iter()
        .map(|g| ForestRow {
            label: format!("{} ({})", g.topic, g.template),
            link: Some(template_href(&g.topic, &g.template)),
            diffs: g.differences.clone(),
        })
        .collect();
    if let Some(p) = &a.pooled_gap {
        rows.push(ForestRow {
            label: "all templates, pooled".into(),
            link: None,
            diffs: p.differences.clone(),
        });
    }
    rows
}

/// The forest rows of a target's language gaps, one per language.
pub fn language_rows(a: &TargetAnalysis) -> Vec<ForestRow> {
    a.language_gaps
        .iter()
        .map(|g| ForestRow {
            label: format!("{}, {} probes", g.lang, g.probes),
            link: None,
            diffs: g.differences.clone(),
        })
        .collect()
}

/// How each target's exchanges ended, as one bar per target, with a legend.
pub fn outcome_bars(data: &ReportData) -> Markup {
    let height = 30.0 * data.targets.len() as f64 + 30.0;
    html! {
        svg.outcomes role="img" width="900" height=(height) viewBox={ "0 0 900 " (height) } {
            @for (i, (t, a)) in data.targets.iter().zip(&data.analysis).enumerate() {
                @let y = 10.0 + 30.0 * i as f64;
                @let total = a.outcome_mix.values().sum::<u64>().max(1);
                text x="4" y=(y + 14.0) { (t.label) }
                @for (name, colour, x, w) in outcome_segments(a, total) {
                    rect x=(x) y=(y) width=(w) height="20" fill=(colour) { title { (name) ": " (a.outcome_mix[name]) } }
                }
            }
        }
        p { small { @for (name, _) in OUTCOME_COLOURS { span class={ "o-" (name) } { "■" } " " (name) " " } } }
    }
}

/// Each outcome a target had: its name, colour, left edge and width in the bar.
fn outcome_segments(a: &TargetAnalysis, total: u64) -> Vec<(&'static str, &'static str, f64, f64)> {
    let mut x = 300.0;
    let mut segments = Vec::new();
    for (name, colour) in OUTCOME_COLOURS {
        let n = a.outcome_mix.get(*name).copied().unwrap_or(0);
        if n > 0 {
            let w = 560.0 * n as f64 / total as f64;
            segments.push((*name, *colour, x, w));
            x += w;
        }
    }
    segments
}

/// One target's figures: overall, about the subject of interest, about other governments,
/// operational, then by language, intent and topic (each topic linked by `topic_href`).
pub fn figures_table(
    a: &TargetAnalysis,
    focus: &str,
    topic_href: &dyn Fn(&str) -> String,
) -> Markup {
    let row = |name: &str, link: Option<String>, f: &Figures| {
        let mut other: Vec<String> = f.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        if f.truncated > 0 {
            other.insert(0, format!("{} of n cut off", f.truncated));
        }
        html! {
            tr {
                td { @if let Some(l) = link { a href=(l) { (name) } } @else { (name) } }
                td.num { (f.judged) }
                td { (rate(&f.candid)) }
                td { (rate(&f.evasive)) }
                td { (rate(&f.refused)) }
                td { (rate(&f.state_narrative)) }
                td { (rate(&f.censored_anywhere)) }
                td { (f.fact_recall_mean.map_or("–".into(), pct)) }
                td { (other.join(", ")) }
            }
        }
    };
    html! {
        table.figures {
            tr { th {} th { "n" } th { "candid" } th { "evasive" } th { "refused" } th { "state narrative" } th { "censored anywhere" } th { "fact recall" } th { "other outcomes" } }
            (row("all (operational excluded)", None, &a.overall))
            (row(&format!("about {focus}"), None, &a.china))
            (row("about other governments", None, &a.controls))
            (row("operational probes", None, &a.operational))
            @for (lang, f) in &a.by_lang { (row(&format!("in {lang}"), None, f)) }
            @for (intent, f) in &a.by_intent { (row(&format!("intent {intent}"), None, f)) }
            @for (topic, f) in &a.by_topic { (row(topic, Some(topic_href(topic)), f)) }
        }
    }
}

/// The verdict on an answer: its compliance and the rule that decided (where given), or the
/// outcome where there was nothing to judge.
pub fn verdict_badge(compliance: Option<&str>, rule: Option<&str>, outcome: &str) -> Markup {
    html! {
        @match (compliance, outcome) {
            (Some(c), _) => {
                span class={ "badge " (badge_class(c)) } { (c) }
                @if let Some(rule) = rule { " " small { "rule " (rule) } }
            }
            (None, "ok") => { span.badge.other { "unscored" } }
            (None, outcome) => { span.badge.other { (outcome) } }
        }
    }
}

/// The badge's class: one of candor's labels, never text from elsewhere.
fn badge_class(compliance: &str) -> &'static str {
    match compliance {
        "candid" => "candid",
        "evasive" => "evasive",
        "refused" => "refused",
        _ => "other",
    }
}

/// An answer folded to its first line of `head` characters; the whole text opens on a click.
pub fn answer_card(text: &str, head: usize, shortened: bool) -> Markup {
    let first: String = text.chars().take(head).collect();
    html! {
        details.answer-card {
            summary { (first) }
            div.answer { (text) }
            @if shortened { small { "(shortened; whole in the store)" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_text_is_escaped_in_every_component() {
        let card =
            answer_card("<script>alert('x')</script><img src=x onerror=y>", 10, true).into_string();
        assert!(
            !card.contains("<script") && !card.contains("<img"),
            "{card}"
        );
        assert!(card.contains("&lt;script&gt;"), "{card}");
        let badge = verdict_badge(Some("\"><b>"), Some("<i>"), "ok").into_string();
        assert!(badge.contains("class=\"badge other\""), "{badge}");
        assert!(!badge.contains("<b>") && !badge.contains("<i>"), "{badge}");
        let plot = forest_plot(&[ForestRow {
            label: "<svg onload=x>".into(),
            link: Some("#a\"b".into()),
            diffs: vec![],
        }])
        .into_string();
        assert!(!plot.contains("<svg onload"), "{plot}");
        assert!(plot.contains("href=\"#a&quot;b\""), "{plot}");
    }

    #[test]
    fn heat_classes_step_by_tenths_and_each_has_a_colour() {
        assert_eq!(heat_class(0.0), "heat h0");
        assert_eq!(heat_class(0.54), "heat h5");
        assert_eq!(heat_class(1.0), "heat h10");
        assert_eq!(heat_class(2.0), "heat h10");
        assert_eq!(heat_colour(0.0), "#f7f7f7");
        assert_eq!(heat_colour(1.0), "#b2182b");
        for step in 0..=HEAT_STEPS {
            assert!(
                css().contains(&format!("td.h{step}{{background:#")),
                "h{step}"
            );
        }
        assert!(css().contains("td.h10{background:#b2182b;color:#fff}"));
    }
}
