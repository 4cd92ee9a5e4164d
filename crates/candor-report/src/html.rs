//! The HTML report: one self-contained file, no script, no external request (a Content
//! Security Policy forbids both, as a second wall behind escaping), charts as inline SVG.
//! Rendered with `maud`, which escapes every value unless told otherwise; the heat map,
//! forest plots, figures tables and answer cards are the dashboard's too ([`components`]).

use std::collections::{BTreeMap, HashMap};

use candor_core::Probe;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::components;
use crate::data::{ReportData, ResponseView};
use crate::finding::pct;

/// Escapes text for XML element content and attribute values (the gate's JUnit file).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An anchor id from any text: letters, digits and dashes only.
pub fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1120px;padding:1em 1.5em;color:#222}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}\
small{color:#555}pre{white-space:pre-wrap;background:#f8f8f8;padding:.5em}.prompt{font-style:italic}";

/// The report's anchor for a topic's answers: its template's section where it has one.
fn topic_anchor(data: &ReportData, topic: &str) -> String {
    let template = data
        .probes
        .iter()
        .find(|p| p.topic == topic)
        .and_then(|p| p.template.clone());
    match template {
        Some(t) => format!("#tpl-{}", slug(&t)),
        None => format!("#topic-{}", slug(topic)),
    }
}

pub fn render(data: &ReportData) -> String {
    let runs = data
        .runs
        .iter()
        .map(|r| r.id.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { "candor report: run " (runs) }
                style { (PreEscaped(STYLE)) (PreEscaped(components::css())) }
            }
            body {
                h1 { "candor report: run " (runs) }
                (summary(data))
                (heat_map(data))
                (gaps(data))
                (language(data))
                (outcomes(data))
                (figures_tables(data))
                (answers(data))
                (methodology(data))
            }
        }
    };
    page.into_string() + "\n"
}

fn summary(data: &ReportData) -> Markup {
    html! {
        h2 id="summary" { "Summary" }
        @for (t, a) in data.targets.iter().zip(&data.analysis) {
            p { b { (t.label) } ": " @for sentence in crate::finding::sentences(a, &data.focus) { (sentence) " " } }
        }
    }
}

fn heat_map(data: &ReportData) -> Markup {
    html! {
        h2 id="heat-map" { "Answers that were not candid, by topic and target" }
        p { "Share of judged answers that were refused or evasive; darker is more. Each cell links to the answers behind it. Operational probes are left out here and shown apart in the figures per target." }
        (components::heat_map(data, &|topic| topic_anchor(data, topic)))
    }
}

fn gaps(data: &ReportData) -> Markup {
    let template_href = |_: &str, template: &str| format!("#tpl-{}", slug(template));
    html! {
        h2 id="gaps" { "Selective censorship: the probe about " (data.focus) " minus matched controls" }
        @for (t, a) in data.targets.iter().zip(&data.analysis) {
            h3 { (t.label) }
            @if a.gaps.is_empty() {
                p { "No template with both a probe of interest and judged controls." }
            } @else {
                (components::forest_plot(&components::gap_rows(a, &template_href)))
            }
        }
    }
}

fn language(data: &ReportData) -> Markup {
    html! {
        h2 id="language" { "Language gap: the same probe in another language minus English" }
        @for (t, a) in data.targets.iter().zip(&data.analysis) {
            h3 { (t.label) }
            @if a.language_gaps.is_empty() {
                p { "Only one language was asked." }
            } @else {
                (components::forest_plot(&components::language_rows(a)))
            }
        }
    }
}

fn outcomes(data: &ReportData) -> Markup {
    html! {
        h2 id="outcomes" { "How exchanges ended, before any judging" }
        (components::outcome_bars(data))
        table {
            tr { th { "target" } @for (name, _) in components::OUTCOME_COLOURS { th { (name) } } }
            @for (t, a) in data.targets.iter().zip(&data.analysis) {
                tr {
                    td { (t.label) }
                    @for (name, _) in components::OUTCOME_COLOURS { td { (a.outcome_mix.get(*name).copied().unwrap_or(0)) } }
                }
            }
        }
    }
}

fn figures_tables(data: &ReportData) -> Markup {
    let topic_href = |topic: &str| topic_anchor(data, topic);
    html! {
        h2 id="figures" { "Figures per target" }
        p { "Shares of judged answers (answers cut off at the token limit included) with 95% Wilson intervals; n = judged answers. The rows about the subject of interest and about other governments cover different mixes of templates and intents: compare them through the paired gaps above, not with each other." }
        @for (i, (t, a)) in data.targets.iter().zip(&data.analysis).enumerate() {
            h3 { (t.label) }
            (components::figures_table(a, &data.focus, &topic_href))
            @if let Some(Some(c)) = data.corrected.get(i) {
                p { "Corrected for the judge's errors on its gold set: "
                    @for (k, name) in ["candid", "evasive", "refused"].iter().enumerate() {
                        @if k > 0 { ", " }
                        (name) " " (pct(c.share[k])) " [" (pct(c.low[k])) ", " (pct(c.high[k])) "]"
                    }
                    "."
                }
            }
        }
    }
}

/// Probes grouped by template (the probe of interest first), else by topic.
fn probe_groups(data: &ReportData) -> BTreeMap<(bool, String), Vec<&Probe>> {
    let mut groups: BTreeMap<(bool, String), Vec<&Probe>> = BTreeMap::new();
    for p in &data.probes {
        let key = match &p.template {
            Some(t) => (false, t.clone()),
            None => (true, p.topic.clone()),
        };
        groups.entry(key).or_default().push(p);
    }
    for probes in groups.values_mut() {
        probes.sort_by_key(|p| (!p.is_focus(), p.id.clone()));
    }
    groups
}

fn answers(data: &ReportData) -> Markup {
    let mut by_probe: HashMap<&str, Vec<&ResponseView>> = HashMap::new();
    for r in &data.responses {
        by_probe.entry(r.probe.as_str()).or_default().push(r);
    }
    html! {
        h2 id="answers" { "Every probe, its controls, and each target's answers" }
        @if data.responses.len() as u64 != data.responses_total {
            p { "This run holds " (data.responses_total) " responses; the report shows " (data.responses.len()) " of them (every probe and language, the first samples). All are in the store." }
        }
        @for ((by_topic, name), probes) in probe_groups(data) {
            section id=(if by_topic { format!("topic-{}", slug(&name)) } else { format!("tpl-{}", slug(&name)) }) {
                h3 { (name) }
                @for p in probes {
                    h4 id={ "p-" (slug(&p.id)) } {
                        (p.id) " " small { "topic " (p.topic) " · subject " (p.subject.as_deref().unwrap_or("–")) " · intent " (p.intent.map_or("–", |i| i.as_str())) }
                    }
                    @if let Some(responses) = by_probe.get(p.id.as_str()) {
                        @for (lang, prompt) in &p.texts {
                            @let mine = responses.iter().filter(|r| r.lang == *lang).collect::<Vec<_>>();
                            @if !mine.is_empty() {
                                p.prompt { "[" (lang) "] " (prompt) }
                                table {
                                    tr { th { "target" } th { "verdict" } th { "answer" } }
                                    @for r in mine { (answer_row(data, r)) }
                                }
                            }
                        }
                    } @else {
                        p { "No stored answer." }
                    }
                }
            }
        }
    }
}

fn answer_row(data: &ReportData, r: &ResponseView) -> Markup {
    let label = data.targets.get(r.target).map_or("?", |t| t.label.as_str());
    html! {
        tr id={ "r" (r.id) } {
            td { (label) @if r.sample > 0 { " " small { "sample " (r.sample) } } br; small { "#" (r.id) } }
            td {
                (components::verdict_badge(r.compliance.as_deref(), r.rule.as_deref(), &r.outcome))
                @if let Some(e) = &r.error { br; small { (e) } }
            }
            td { (components::answer_card(&r.text, 140, r.shortened)) }
        }
    }
}

fn methodology(data: &ReportData) -> Markup {
    let gold = match (data.judge.gold_accuracy, data.judge.gold_items) {
        (Some(acc), Some(n)) => format!("accuracy {} on {n} gold items", pct(acc)),
        _ => "not measured against a gold set in this report".into(),
    };
    let m = &data.methods;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    html! {
        h2 id="method" { "Methodology" }
        dl {
            @for r in &data.runs {
                dt { "run " (r.id) }
                dd { "suite " (r.suite_id) " " (r.suite_version) " (sha256 " (r.suite_hash) "); " (r.status) " from " (r.started_at) " to " (r.finished_at.as_deref().unwrap_or("–")) "; candor " (r.candor_version) }
            }
            dt { "judge" } dd { (data.judge.id) " (" (gold) ")" }
            dt { "intervals" } dd { (m.interval) }
            dt { "gaps" } dd { (m.gap) }
            dt { "tests" } dd { (m.test) }
            dt { "many topics" } dd { (m.multiple_testing) }
            dt { "bootstrap" } dd { (m.bootstrap_reps) " replicates, seed " (m.bootstrap_seed) }
            dt { "left out" } dd { (m.excluded) }
        }
        h3 { "Targets" }
        @for t in &data.targets { h4 { (t.label) } pre { (pretty(&t.provenance)) } }
        h3 { "Settings" }
        @for r in &data.runs { h4 { "run " (r.id) } pre { (pretty(&r.settings)) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_attributes() {
        assert_eq!(
            esc("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            esc("<img src=x onerror=\"a('b')\">&"),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(slug("Tiananmen 1989/中"), "tiananmen-1989--");
    }
}
