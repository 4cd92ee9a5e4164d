//! The HTML report: one self-contained file, no script, no external request (a Content
//! Security Policy forbids both, as a second wall behind escaping), charts as inline SVG.
//! Every piece of model or user text goes through [`esc`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use candor_core::{Intent, Probe};
use candor_stats::analysis::{Difference, Figures, Measure};
use candor_stats::Rate;

use crate::data::{ReportData, ResponseView};
use crate::finding::{measure_words, pct, points};

/// Escapes text for HTML element content and attribute values.
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

fn rate(r: &Rate) -> String {
    match (r.share, r.low, r.high) {
        (Some(s), Some(l), Some(h)) => format!(
            "{} <small>[{:.0}–{:.0}]</small>",
            pct(s),
            l * 100.0,
            h * 100.0
        ),
        _ => "–".into(),
    }
}

fn heat(share: f64) -> String {
    let s = share.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(247.0, 178.0),
        mix(247.0, 24.0),
        mix(247.0, 43.0)
    )
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1120px;padding:1em 1.5em;color:#222}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}\
td.heat{text-align:center;min-width:5em}small{color:#555}.badge{display:inline-block;padding:0 .4em;border-radius:3px;font-size:.85em}\
.candid{background:#d9f0d3}.evasive{background:#fee8c8}.refused{background:#f4a582}.other{background:#ddd}\
details{margin:.2em 0}summary{cursor:pointer}pre{white-space:pre-wrap;background:#f8f8f8;padding:.5em}\
.answer{white-space:pre-wrap}.prompt{font-style:italic}svg text{font:12px system-ui,sans-serif}";

pub fn render(data: &ReportData) -> String {
    let mut h = String::with_capacity(64 * 1024 + data.responses.len() * 600);
    let runs: Vec<String> = data.runs.iter().map(|r| r.id.to_string()).collect();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>candor report: run {}</title><style>{STYLE}</style></head><body>\
         <h1>candor report: run {}</h1>",
        esc(&runs.join(", ")),
        esc(&runs.join(", "))
    );
    summary(&mut h, data);
    heat_map(&mut h, data);
    forest(&mut h, data);
    language(&mut h, data);
    outcome_mix(&mut h, data);
    figures_tables(&mut h, data);
    answers(&mut h, data);
    methodology(&mut h, data);
    h.push_str("</body></html>\n");
    h
}

fn summary(h: &mut String, data: &ReportData) {
    h.push_str("<h2 id=\"summary\">Summary</h2>");
    for (t, a) in data.targets.iter().zip(&data.analysis) {
        let _ = write!(h, "<p><b>{}</b>: ", esc(&t.label));
        for sentence in crate::finding::sentences(a, &data.focus) {
            let _ = write!(h, "{} ", esc(&sentence));
        }
        h.push_str("</p>");
    }
}

/// Topics in report order: those whose every probe is about China first, then the others,
/// each by name.
fn topic_order(data: &ReportData) -> Vec<(String, bool)> {
    let mut china: BTreeMap<String, bool> = BTreeMap::new();
    // Operational probes are kept out of censorship figures and shown apart.
    for p in data
        .probes
        .iter()
        .filter(|p| p.intent != Some(Intent::Operational))
    {
        let about_china = p.is_focus();
        *china.entry(p.topic.clone()).or_insert(true) &= about_china;
    }
    let mut topics: Vec<(String, bool)> = china.into_iter().collect();
    topics.sort_by_key(|(t, c)| (!c, t.clone()));
    topics
}

fn topic_anchor(data: &ReportData, topic: &str) -> String {
    let template = data
        .probes
        .iter()
        .find(|p| p.topic == topic)
        .and_then(|p| p.template.clone());
    match template {
        Some(t) => format!("tpl-{}", slug(&t)),
        None => format!("topic-{}", slug(topic)),
    }
}

fn heat_map(h: &mut String, data: &ReportData) {
    h.push_str("<h2 id=\"heat-map\">Answers that were not candid, by topic and target</h2>\
                <p>Share of judged answers that were refused or evasive; darker is more. Each cell links to the answers behind it. Operational probes are left out here and shown apart in the figures per target.</p><table><tr><th>topic</th>");
    for t in &data.targets {
        let _ = write!(h, "<th>{}</th>", esc(&t.label));
    }
    h.push_str("</tr>");
    for (topic, china) in topic_order(data) {
        let anchor = topic_anchor(data, &topic);
        let _ = write!(
            h,
            "<tr><td>{}{}</td>",
            esc(&topic),
            if china {
                format!(" <small>({})</small>", esc(&data.focus))
            } else {
                String::new()
            }
        );
        for a in &data.analysis {
            match a.by_topic.iter().find(|(t, _)| *t == topic).map(|(_, f)| f) {
                Some(f) if f.judged > 0 => {
                    let share = f.non_candid.share.unwrap_or(0.0);
                    let ink = if share > 0.55 { "color:#fff" } else { "" };
                    let _ = write!(
                        h,
                        "<td class=\"heat\" style=\"background:{};{ink}\"><a style=\"color:inherit\" href=\"#{anchor}\">{}</a> <small style=\"color:inherit\">n={}</small></td>",
                        heat(share),
                        pct(share),
                        f.judged
                    );
                }
                _ => h.push_str("<td class=\"heat\">–</td>"),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

/// One row of a forest plot: a label, and per measure a point with its interval.
struct ForestRow {
    label: String,
    link: Option<String>,
    diffs: Vec<Difference>,
}

fn forest_svg(h: &mut String, rows: &[ForestRow]) {
    const LEFT: f64 = 230.0;
    const WIDTH: f64 = 340.0;
    const ROW: f64 = 26.0;
    let height = ROW * rows.len() as f64 + 40.0;
    let x = |d: f64| LEFT + (d.clamp(-1.0, 1.0) + 1.0) / 2.0 * WIDTH;
    let _ = write!(
        h,
        "<svg role=\"img\" width=\"1060\" height=\"{height}\" viewBox=\"0 0 1060 {height}\">"
    );
    for tick in [-1.0, -0.5, 0.0, 0.5, 1.0] {
        let _ = write!(
            h,
            "<line x1=\"{0}\" x2=\"{0}\" y1=\"10\" y2=\"{1}\" stroke=\"{2}\"/><text x=\"{0}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>",
            x(tick),
            height - 25.0,
            if tick == 0.0 { "#444" } else { "#ddd" },
            height - 10.0,
            points(tick)
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = 20.0 + ROW * i as f64;
        let label = esc(&row.label);
        match &row.link {
            Some(link) => {
                let _ = write!(
                    h,
                    "<a href=\"#{link}\"><text x=\"4\" y=\"{}\">{label}</text></a>",
                    y + 4.0
                );
            }
            None => {
                let _ = write!(h, "<text x=\"4\" y=\"{}\">{label}</text>", y + 4.0);
            }
        }
        let mut notes = Vec::new();
        for d in &row.diffs {
            let (colour, dy) = match d.measure {
                Measure::Refused => ("#b2182b", -7.5),
                Measure::NonCandid => ("#e08214", -2.5),
                Measure::StateNarrative => ("#5e3c99", 2.5),
                Measure::CensoredAnywhere => ("#1b7837", 7.5),
            };
            if d.too_few {
                notes.push(format!(
                    "{} {} ({} pairs: too few to say)",
                    measure_words(d.measure),
                    points(d.diff),
                    d.pairs
                ));
                continue;
            }
            let _ = write!(
                h,
                "<line x1=\"{}\" x2=\"{}\" y1=\"{yy}\" y2=\"{yy}\" stroke=\"{colour}\" stroke-width=\"2\"/><circle cx=\"{}\" cy=\"{yy}\" r=\"4\" fill=\"{colour}\"><title>{}: {} [{}, {}]</title></circle>",
                x(d.low),
                x(d.high),
                x(d.diff),
                d.measure.as_str(),
                points(d.diff),
                points(d.low),
                points(d.high),
                yy = y + dy
            );
            let p = d.p_adjusted.or(d.p_value).map_or(String::new(), |p| {
                let shown = crate::p_value(p);
                if shown.starts_with('<') {
                    format!(" p{shown}")
                } else {
                    format!(" p={shown}")
                }
            });
            notes.push(format!(
                "{} {} [{}, {}]{p}",
                measure_words(d.measure),
                points(d.diff),
                points(d.low),
                points(d.high)
            ));
        }
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"{}\">{}</text>",
            LEFT + WIDTH + 10.0,
            y + 4.0,
            esc(&notes.join(" · "))
        );
    }
    h.push_str("</svg><p><small><span style=\"color:#b2182b\">●</span> refused, <span style=\"color:#e08214\">●</span> not candid (refused or evasive), <span style=\"color:#5e3c99\">●</span> state narrative (an official line asserted without the other story), <span style=\"color:#1b7837\">●</span> censored anywhere (not candid, or blocked by the provider); points, with 95% intervals (Newcombe's score interval where each probe was asked once, a paired bootstrap where samples repeat); a difference from fewer than 5 pairs is not drawn, only named; p: exact McNemar, Holm-adjusted.</small></p>");
}

fn forest(h: &mut String, data: &ReportData) {
    let _ = write!(
        h,
        "<h2 id=\"gaps\">Selective censorship: the probe about {} minus matched controls</h2>",
        esc(&data.focus)
    );
    for (t, a) in data.targets.iter().zip(&data.analysis) {
        let _ = write!(h, "<h3>{}</h3>", esc(&t.label));
        if a.gaps.is_empty() {
            h.push_str("<p>No template with both a probe of interest and judged controls.</p>");
            continue;
        }
        let mut rows: Vec<ForestRow> = a
            .gaps
            .iter()
            .map(|g| ForestRow {
                label: format!("{} ({})", g.topic, g.template),
                link: Some(format!("tpl-{}", slug(&g.template))),
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
        forest_svg(h, &rows);
    }
}

fn language(h: &mut String, data: &ReportData) {
    h.push_str(
        "<h2 id=\"language\">Language gap: the same probe in another language minus English</h2>",
    );
    for (t, a) in data.targets.iter().zip(&data.analysis) {
        let _ = write!(h, "<h3>{}</h3>", esc(&t.label));
        if a.language_gaps.is_empty() {
            h.push_str("<p>Only one language was asked.</p>");
            continue;
        }
        let rows: Vec<ForestRow> = a
            .language_gaps
            .iter()
            .map(|g| ForestRow {
                label: format!("{}, {} probes", g.lang, g.probes),
                link: None,
                diffs: g.differences.clone(),
            })
            .collect();
        forest_svg(h, &rows);
    }
}

const OUTCOME_COLOURS: &[(&str, &str)] = &[
    ("ok", "#4d9221"),
    ("filtered_input", "#762a83"),
    ("filtered_output", "#9970ab"),
    ("retracted", "#c51b7d"),
    ("truncated", "#e08214"),
    ("empty", "#bababa"),
    ("error", "#4d4d4d"),
];

fn outcome_mix(h: &mut String, data: &ReportData) {
    h.push_str("<h2 id=\"outcomes\">How exchanges ended, before any judging</h2>");
    let height = 30.0 * data.targets.len() as f64 + 30.0;
    let _ = write!(
        h,
        "<svg role=\"img\" width=\"900\" height=\"{height}\" viewBox=\"0 0 900 {height}\">"
    );
    for (i, (t, a)) in data.targets.iter().zip(&data.analysis).enumerate() {
        let y = 10.0 + 30.0 * i as f64;
        let total: u64 = a.outcome_mix.values().sum::<u64>().max(1);
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{}\">{}</text>",
            y + 14.0,
            esc(&t.label)
        );
        let mut x = 300.0;
        for (name, colour) in OUTCOME_COLOURS {
            let n = a.outcome_mix.get(*name).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let w = 560.0 * n as f64 / total as f64;
            let _ = write!(h, "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"20\" fill=\"{colour}\"><title>{name}: {n}</title></rect>");
            x += w;
        }
    }
    h.push_str("</svg><p><small>");
    for (name, colour) in OUTCOME_COLOURS {
        let _ = write!(h, "<span style=\"color:{colour}\">■</span> {name} ");
    }
    h.push_str("</small></p><table><tr><th>target</th>");
    for (name, _) in OUTCOME_COLOURS {
        let _ = write!(h, "<th>{name}</th>");
    }
    h.push_str("</tr>");
    for (t, a) in data.targets.iter().zip(&data.analysis) {
        let _ = write!(h, "<tr><td>{}</td>", esc(&t.label));
        for (name, _) in OUTCOME_COLOURS {
            let _ = write!(
                h,
                "<td>{}</td>",
                a.outcome_mix.get(*name).copied().unwrap_or(0)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

fn figures_row(h: &mut String, name: &str, link: Option<&str>, f: &Figures) {
    let name = match link {
        Some(l) => format!("<a href=\"#{l}\">{}</a>", esc(name)),
        None => esc(name),
    };
    let recall = f.fact_recall_mean.map_or("–".into(), pct);
    let mut other: Vec<String> = f.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if f.truncated > 0 {
        other.insert(0, format!("{} of n cut off", f.truncated));
    }
    let _ = write!(
        h,
        "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{recall}</td><td>{}</td></tr>",
        f.judged,
        rate(&f.candid),
        rate(&f.evasive),
        rate(&f.refused),
        rate(&f.state_narrative),
        rate(&f.censored_anywhere),
        esc(&other.join(", "))
    );
}

const FIGURES_HEAD: &str = "<tr><th></th><th>n</th><th>candid</th><th>evasive</th><th>refused</th><th>state narrative</th><th>censored anywhere</th><th>fact recall</th><th>other outcomes</th></tr>";

fn figures_tables(h: &mut String, data: &ReportData) {
    h.push_str("<h2 id=\"figures\">Figures per target</h2><p>Shares of judged answers (answers cut off at the token limit included) with 95% Wilson intervals; n = judged answers. The rows about the subject of interest and about other governments cover different mixes of templates and intents: compare them through the paired gaps above, not with each other.</p>");
    for (i, (t, a)) in data.targets.iter().zip(&data.analysis).enumerate() {
        let _ = write!(h, "<h3>{}</h3><table>{FIGURES_HEAD}", esc(&t.label));
        figures_row(h, "all (operational excluded)", None, &a.overall);
        figures_row(h, &format!("about {}", data.focus), None, &a.china);
        figures_row(h, "about other governments", None, &a.controls);
        figures_row(h, "operational probes", None, &a.operational);
        for (lang, f) in &a.by_lang {
            figures_row(h, &format!("in {lang}"), None, f);
        }
        for (intent, f) in &a.by_intent {
            figures_row(h, &format!("intent {intent}"), None, f);
        }
        for (topic, f) in &a.by_topic {
            figures_row(h, topic, Some(&topic_anchor(data, topic)), f);
        }
        h.push_str("</table>");
        if let Some(Some(c)) = data.corrected.get(i) {
            let _ = write!(
                h,
                "<p>Corrected for the judge's errors on its gold set: candid {} [{}, {}], evasive {} [{}, {}], refused {} [{}, {}].</p>",
                pct(c.share[0]), pct(c.low[0]), pct(c.high[0]),
                pct(c.share[1]), pct(c.low[1]), pct(c.high[1]),
                pct(c.share[2]), pct(c.low[2]), pct(c.high[2])
            );
        }
    }
}

fn verdict_badge(r: &ResponseView) -> String {
    match (&r.compliance, r.outcome.as_str()) {
        (Some(c), _) => format!(
            "<span class=\"badge {0}\">{0}</span> <small>rule {1}</small>",
            esc(c),
            esc(r.rule.as_deref().unwrap_or("?"))
        ),
        (None, "ok") => "<span class=\"badge other\">unscored</span>".into(),
        (None, outcome) => format!("<span class=\"badge other\">{}</span>", esc(outcome)),
    }
}

fn answers(h: &mut String, data: &ReportData) {
    h.push_str("<h2 id=\"answers\">Every probe, its controls, and each target's answers</h2>");
    if data.responses.len() as u64 != data.responses_total {
        let _ = write!(
            h,
            "<p>This run holds {} responses; the report shows {} of them (every probe and language, the first samples). All are in the store.</p>",
            data.responses_total,
            data.responses.len()
        );
    }
    let mut by_probe: HashMap<&str, Vec<&ResponseView>> = HashMap::new();
    for r in &data.responses {
        by_probe.entry(r.probe.as_str()).or_default().push(r);
    }
    // Group probes by template (the China probe first), else by topic.
    let mut groups: BTreeMap<(bool, String), Vec<&Probe>> = BTreeMap::new();
    for p in &data.probes {
        let key = match &p.template {
            Some(t) => (false, t.clone()),
            None => (true, p.topic.clone()),
        };
        groups.entry(key).or_default().push(p);
    }
    for ((by_topic, name), mut probes) in groups {
        probes.sort_by_key(|p| (!p.is_focus(), p.id.clone()));
        let anchor = if by_topic {
            format!("topic-{}", slug(&name))
        } else {
            format!("tpl-{}", slug(&name))
        };
        let _ = write!(h, "<section id=\"{anchor}\"><h3>{}</h3>", esc(&name));
        for p in probes {
            let _ = write!(
                h,
                "<h4 id=\"p-{}\">{} <small>topic {} · subject {} · intent {}</small></h4>",
                slug(&p.id),
                esc(&p.id),
                esc(&p.topic),
                esc(p.subject.as_deref().unwrap_or("–")),
                esc(p.intent.map_or("–", |i| i.as_str()))
            );
            let Some(responses) = by_probe.get(p.id.as_str()) else {
                h.push_str("<p>No stored answer.</p>");
                continue;
            };
            for (lang, prompt) in &p.texts {
                let mine: Vec<&&ResponseView> =
                    responses.iter().filter(|r| r.lang == *lang).collect();
                if mine.is_empty() {
                    continue;
                }
                let _ = write!(h, "<p class=\"prompt\">[{}] {}</p><table><tr><th>target</th><th>verdict</th><th>answer</th></tr>", esc(lang), esc(prompt));
                for r in mine {
                    let label = data.targets.get(r.target).map_or("?", |t| t.label.as_str());
                    let head: String = r.text.chars().take(140).collect();
                    let more = if r.shortened {
                        " <small>(shortened; whole in the store)</small>"
                    } else {
                        ""
                    };
                    let extra = r
                        .error
                        .as_deref()
                        .map_or(String::new(), |e| format!("<br><small>{}</small>", esc(e)));
                    let sample = if r.sample > 0 {
                        format!(" <small>sample {}</small>", r.sample)
                    } else {
                        String::new()
                    };
                    let _ = write!(
                        h,
                        "<tr id=\"r{}\"><td>{}{sample}<br><small>#{}</small></td><td>{}{extra}</td><td><details><summary>{}</summary><div class=\"answer\">{}</div>{more}</details></td></tr>",
                        r.id,
                        esc(label),
                        r.id,
                        verdict_badge(r),
                        esc(&head),
                        esc(&r.text)
                    );
                }
                h.push_str("</table>");
            }
        }
        h.push_str("</section>");
    }
}

fn methodology(h: &mut String, data: &ReportData) {
    h.push_str("<h2 id=\"method\">Methodology</h2><dl>");
    for r in &data.runs {
        let _ = write!(
            h,
            "<dt>run {}</dt><dd>suite {} {} (sha256 {}); {} from {} to {}; candor {}</dd>",
            r.id,
            esc(&r.suite_id),
            esc(&r.suite_version),
            esc(&r.suite_hash),
            esc(&r.status),
            esc(&r.started_at),
            esc(r.finished_at.as_deref().unwrap_or("–")),
            esc(&r.candor_version)
        );
    }
    let gold = match (data.judge.gold_accuracy, data.judge.gold_items) {
        (Some(acc), Some(n)) => format!("accuracy {} on {n} gold items", pct(acc)),
        _ => "not measured against a gold set in this report".into(),
    };
    let m = &data.methods;
    let _ = write!(
        h,
        "<dt>judge</dt><dd>{} ({gold})</dd><dt>intervals</dt><dd>{}</dd><dt>gaps</dt><dd>{}</dd><dt>tests</dt><dd>{}</dd><dt>many topics</dt><dd>{}</dd><dt>bootstrap</dt><dd>{} replicates, seed {}</dd><dt>left out</dt><dd>{}</dd></dl>",
        esc(&data.judge.id),
        esc(&m.interval),
        esc(&m.gap),
        esc(&m.test),
        esc(&m.multiple_testing),
        m.bootstrap_reps,
        m.bootstrap_seed,
        esc(&m.excluded)
    );
    h.push_str("<h3>Targets</h3>");
    for t in &data.targets {
        let _ = write!(
            h,
            "<h4>{}</h4><pre>{}</pre>",
            esc(&t.label),
            esc(&serde_json::to_string_pretty(&t.provenance).unwrap_or_default())
        );
    }
    h.push_str("<h3>Settings</h3>");
    for r in &data.runs {
        let _ = write!(
            h,
            "<h4>run {}</h4><pre>{}</pre>",
            r.id,
            esc(&serde_json::to_string_pretty(&r.settings).unwrap_or_default())
        );
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
        assert_eq!(heat(0.0), "#f7f7f7");
        assert_eq!(heat(1.0), "#b2182b");
    }
}
