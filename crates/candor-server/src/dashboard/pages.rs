//! The dashboard's pages, rendered with `maud`: every value is escaped unless marked as markup,
//! and no value from the store goes into an attribute but ids and names that candor writes.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use candor_core::Verdict;
use candor_report::components;
use candor_report::ReportData;
use candor_store::{AnswerHit, LabelRow, RunRow, StoredResponse, TargetRow, WorkLeft};
use maud::{html, Markup, DOCTYPE};

use super::{Filters, PAGE_SIZE};
use candor_audit::label_queue::Mode;

fn layout(title: &str, body: Markup) -> Markup {
    layout_refreshing(title, None, body)
}

/// A page that the browser reloads every `refresh` seconds (a run in progress), with no script.
fn layout_refreshing(title: &str, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if let Some(seconds) = refresh { meta http-equiv="refresh" content=(seconds); }
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · candor" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                nav { a href="/" { "candor" } " · " a href="/compare" { "compare" } " · " a href="/label" { "label" } }
                main { (body) }
            }
        }
    }
}

pub fn error(status: StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("error"),
        html! { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } p { (message) } },
    )
}

pub fn login(csrf: &str, refused: bool) -> Markup {
    layout(
        "log in",
        html! {
            h1 { "Log in" }
            @if refused { p.error { "That token is not the server's." } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Token (CANDOR_TOKEN) " input type="password" name="token" autofocus; }
                button { "Log in" }
            }
        },
    )
}

pub struct RunLine {
    pub run: RunRow,
    pub targets: Vec<String>,
    pub responses: i64,
    pub judge: Option<String>,
}

pub fn runs(rows: &[RunLine]) -> Markup {
    layout(
        "runs",
        html! {
            h1 { "Runs" }
            @if rows.is_empty() { p { "The store holds no run yet: run `candor audit`." } }
            @else {
                table id="runs" {
                    thead { tr { th { "run" } th { "suite" } th { "targets" } th { "status" } th { "started" } th { "responses" } th { "judge" } } }
                    tbody {
                        @for r in rows {
                            tr {
                                td { a href={ "/runs/" (r.run.id) } { (r.run.id) } }
                                td { (r.run.suite_id) " " (r.run.suite_version) }
                                td { @for t in &r.targets { div { (t) } } }
                                td { (r.run.status) }
                                td { (r.run.started_at) }
                                td.num { (r.responses) }
                                td { (r.judge.as_deref().unwrap_or("not judged")) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The comparison page: a form (runs as RUN or RUN:N) and, once both sides are named, the
/// paired differences overall and per topic.
pub fn compare(
    a: &str,
    b: &str,
    result: Option<&(String, String, candor_stats::analysis::Comparison)>,
) -> Markup {
    use candor_report::compare::{interval_text, p_text};
    layout(
        "compare",
        html! {
            h1 { "Compare two targets" }
            form id="compare-form" method="get" action="/compare" {
                label { "A " input type="text" name="a" value=(a) placeholder="RUN or RUN:N" required; }
                " "
                label { "B " input type="text" name="b" value=(b) placeholder="RUN or RUN:N" required; }
                " "
                button type="submit" { "Compare" }
            }
            p { "A run with one target is named by its id; a run's N-th target as RUN:N (from 1). Answers are paired by probe, language and sample." }
            @if let Some((name_a, name_b, c)) = result {
                p { "A: " (name_a) } p { "B: " (name_b) }
                table id="comparison" {
                    thead { tr { th { "topic" } th { "measure" } th { "A" } th { "B" } th { "A minus B (points, 95% interval)" } th { "p" } th { "pairs" } } }
                    tbody {
                        @for (topic, d) in c.overall.iter().map(|d| ("all", d)).chain(c.by_topic.iter().flat_map(|(t, ds)| ds.iter().map(move |d| (t.as_str(), d)))) {
                            tr {
                                td { (topic) } td { (d.measure.as_str()) }
                                td.num { (format!("{:.0}%", d.first * 100.0)) } td.num { (format!("{:.0}%", d.second * 100.0)) }
                                td.num { (interval_text(d)) } td.num { (p_text(d)) } td.num { (d.pairs) }
                            }
                        }
                    }
                }
                @if c.overall.is_empty() { p { "No answers pair up: the two sides asked no common probe in a common language." } }
            }
        },
    )
}

/// A probe's page: its template's probes side by side.
pub struct ProbeView {
    pub run: i64,
    pub asked: String,
    pub judge: Option<String>,
    pub targets: Vec<TargetRow>,
    /// Each probe of the template, how many answers it has, and the first of them.
    pub columns: Vec<(candor_core::Probe, i64, Vec<AnswerHit>)>,
}

pub fn probe(view: &ProbeView) -> Markup {
    let target_name: HashMap<i64, &str> = view
        .targets
        .iter()
        .map(|t| (t.id, t.spec.as_str()))
        .collect();
    layout(
        &format!("probe {}", view.asked),
        html! {
            h1 { "Probe " (view.asked) " and its controls" }
            p { "Run " a href={ "/runs/" (view.run) } { (view.run) } " · verdicts of " (view.judge.as_deref().unwrap_or("no judge")) ". The same template asked about each government, side by side." }
            div.side-by-side id="probes" {
                @for (p, total, hits) in &view.columns {
                    section.probe-column {
                        h2 { (p.id) @if p.id == view.asked { " (this probe)" } }
                        p { "About " (p.subject.as_deref().unwrap_or("-")) @if p.is_focus() { ", the probe of interest" } " · topic " (p.topic) }
                        @for (lang, text) in &p.texts { p.prompt { span.lang { (lang) } " " (text) } }
                        @if !p.key_facts.is_empty() {
                            details { summary { "Key facts (" (p.key_facts.len()) ")" } ul { @for f in &p.key_facts { li { (f.statement) } } } }
                        }
                        @let markers = p.markers.values().flatten().collect::<Vec<_>>();
                        @if !markers.is_empty() {
                            details { summary { "Official-line markers (" (markers.len()) ")" } ul { @for m in markers { li { (m) } } } }
                        }
                        p { (total) " answers"
                            @if *total > hits.len() as i64 { ", the first " (hits.len()) " shown: " a href={ "/runs/" (view.run) "/answers?probe=" (encode(&p.id)) } { "all of them" } }
                        }
                        table.answers {
                            thead { tr { th { "target" } th { "lang" } th { "verdict" } th { "answer" } } }
                            tbody {
                                @for h in hits {
                                    tr {
                                        td { (target_name.get(&h.target_id).copied().unwrap_or("?")) }
                                        td { (h.lang) }
                                        td { (components::verdict_badge(h.compliance.as_deref(), h.rule.as_deref(), &h.outcome)) @if let Some(st) = &h.stance { br; small { (st) } } }
                                        td { a href={ "/answers/" (h.id) } { (excerpt(&h.excerpt, 160)) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A probe's answers counted by the judge's verdict.
#[derive(Debug, Default, Clone, Copy)]
pub struct TopicCounts {
    pub answers: u64,
    pub candid: u64,
    pub evasive: u64,
    pub refused: u64,
    pub state_narrative: u64,
}

pub struct TopicView {
    pub run: i64,
    pub topic: String,
    pub judge: Option<String>,
    pub rows: Vec<(candor_core::Probe, TopicCounts)>,
}

pub fn topic(view: &TopicView) -> Markup {
    layout(
        &format!("topic {}", view.topic),
        html! {
            h1 { "Topic " (view.topic) }
            p { "Run " a href={ "/runs/" (view.run) } { (view.run) } " · verdicts of " (view.judge.as_deref().unwrap_or("no judge")) ". Each probe with its answers by verdict; a probe's page sets it beside its controls." }
            table id="topic-probes" {
                thead { tr { th { "probe" } th { "about" } th { "intent" } th { "prompt" } th { "answers" } th { "candid" } th { "evasive" } th { "refused" } th { "state narrative" } } }
                tbody {
                    @for (p, c) in &view.rows {
                        tr {
                            td { a href={ "/runs/" (view.run) "/probes/" (encode(&p.id)) } { (p.id) } }
                            td { (p.subject.as_deref().unwrap_or("-")) @if p.is_focus() { " (of interest)" } }
                            td { (p.intent.map(|i| i.as_str()).unwrap_or("-")) }
                            td.text { (p.texts.values().next().map(|t| excerpt(t, 120)).unwrap_or_default()) }
                            td.num { a href={ "/runs/" (view.run) "/answers?probe=" (encode(&p.id)) } { (c.answers) } }
                            td.num { (c.candid) } td.num { (c.evasive) } td.num { (c.refused) } td.num { (c.state_narrative) }
                        }
                    }
                }
            }
        },
    )
}

/// Cohen's kappa on compliance between every two labellers, over the answers both labelled
/// (each one's newest label).
pub fn agreement(labels: &[LabelRow]) -> Vec<(String, String, usize, f64)> {
    let mut newest: BTreeMap<&str, HashMap<i64, &str>> = BTreeMap::new();
    for l in labels {
        if let Some(c) = l.compliance {
            newest
                .entry(&l.labeller)
                .or_default()
                .insert(l.response_id, c.as_str());
        }
    }
    let people: Vec<&str> = newest.keys().copied().collect();
    let mut out = Vec::new();
    for (i, a) in people.iter().enumerate() {
        for b in &people[i + 1..] {
            let pairs: Vec<(&str, &str)> = newest[a]
                .iter()
                .filter_map(|(id, x)| newest[b].get(id).map(|y| (*x, *y)))
                .collect();
            if let Some(k) = kappa(&pairs) {
                out.push((a.to_string(), b.to_string(), pairs.len(), k));
            }
        }
    }
    out
}

fn kappa(pairs: &[(&str, &str)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let observed = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let mut first: HashMap<&str, f64> = HashMap::new();
    let mut second: HashMap<&str, f64> = HashMap::new();
    for (a, b) in pairs {
        *first.entry(a).or_default() += 1.0;
        *second.entry(b).or_default() += 1.0;
    }
    let expected: f64 = first
        .iter()
        .map(|(k, v)| v * second.get(k).copied().unwrap_or(0.0))
        .sum::<f64>()
        / (n * n);
    Some(if expected < 1.0 {
        (observed - expected) / (1.0 - expected)
    } else {
        1.0
    })
}

/// Seconds between reloads of a run in progress.
pub const LIVE_REFRESH: u32 = 2;

/// Whether a run is still being asked or fed: its page follows it live.
pub fn in_progress(status: &str) -> bool {
    matches!(status, "running" | "pending")
}

pub fn run(
    run: i64,
    data: &ReportData,
    agreement: &[(String, String, usize, f64)],
    work: &WorkLeft,
) -> Markup {
    let status = data.runs.first().map_or("?", |r| r.status.as_str());
    let live = in_progress(status);
    let topic_href = |topic: &str| format!("/runs/{run}/topics/{}", encode(topic));
    layout_refreshing(
        &format!("run {run}"),
        live.then_some(LIVE_REFRESH),
        html! {
            h1 { "Run " (run) }
            @if live {
                p.notice id="progress" {
                    "In progress (" (status) "): " (data.responses_total) " responses stored so far"
                    @if work.pending + work.leased > 0 {
                        "; " (work.pending) " requests waiting, " (work.leased) " leased to " (work.workers) " workers"
                    }
                    ". The figures below are those of the stored responses; this page reloads every " (LIVE_REFRESH) " s."
                }
            } @else {
                p id="status" { "Status: " (status) ", " (data.responses_total) " responses." }
            }
            p { "Judge: " (data.judge.id) ". " a href={ "/runs/" (run) "/answers" } { "All answers" } " · " a href={ "/label?run=" (run) } { "Label answers" } }
            @if let Some(a) = data.analysis.first() {
                @if !a.by_topic.is_empty() {
                    p id="topics" { "Topics: "
                        @for (n, (topic, _)) in a.by_topic.iter().enumerate() {
                            @if n > 0 { " · " }
                            a href={ "/runs/" (run) "/topics/" (encode(topic)) } { (topic) }
                        }
                    }
                }
            }
            @if !data.analysis.is_empty() {
                h2 { "Answers that were not candid, by topic and target" }
                (components::heat_map(data, &topic_href))
            }
            @for (t, a) in data.targets.iter().zip(&data.analysis) {
                section.target {
                    h2 { (t.label) }
                    @for s in candor_report::finding::sentences(a, &data.focus) { p.finding { (s) } }
                    (components::figures_table(a, &data.focus, &topic_href))
                    @if !a.gaps.is_empty() {
                        h3 { "The probe about " (data.focus) " minus matched controls" }
                        (components::forest_plot(&components::gap_rows(a, &|topic, _| topic_href(topic))))
                    }
                    @if !a.language_gaps.is_empty() {
                        h3 { "The same probe in another language minus English" }
                        (components::forest_plot(&components::language_rows(a)))
                    }
                }
            }
            @if !agreement.is_empty() {
                h2 { "Labellers' agreement (compliance)" }
                table id="agreement" {
                    thead { tr { th { "labellers" } th { "answers both labelled" } th { "Cohen's kappa" } } }
                    tbody { @for (a, b, n, k) in agreement { tr { td { (a) " · " (b) } td.num { (n) } td.num { (format!("{k:.3}")) } } } }
                }
            }
        },
    )
}

/// The first characters of a text, for a table cell.
fn excerpt(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if text.chars().nth(chars).is_some() {
        out.push('…');
    }
    out
}

fn query_string(filters: &Filters, page: usize) -> String {
    let mut parts = Vec::new();
    for (name, value) in [
        ("target", &filters.target),
        ("lang", &filters.lang),
        ("compliance", &filters.compliance),
        ("stance", &filters.stance),
        ("q", &filters.q),
        ("probe", &filters.probe),
        ("intent", &filters.intent),
        ("disputed", &filters.disputed),
    ] {
        if let Some(v) = Filters::set(value) {
            parts.push(format!("{name}={}", encode(v)));
        }
    }
    parts.push(format!("page={page}"));
    parts.join("&")
}

/// Percent-encoding for a query value: everything but unreserved ASCII.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn answers(
    run: i64,
    filters: &Filters,
    page: usize,
    total: usize,
    rows: &[AnswerHit],
    targets: &[TargetRow],
) -> Markup {
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let picked = |v: &Option<String>, option: &str| Filters::set(v) == Some(option);
    layout(
        &format!("run {run}: answers"),
        html! {
            h1 { "Run " a href={ "/runs/" (run) } { (run) } ": answers" }
            form id="filters" method="get" {
                label { "target " select name="target" { option value="" { "any" } @for t in targets { option value=(t.spec) selected[picked(&filters.target, &t.spec)] { (t.spec) } } } }
                label { "language " input name="lang" value=(Filters::set(&filters.lang).unwrap_or("")) size="8"; }
                label { "compliance " select name="compliance" { option value="" { "any" } @for c in ["candid", "evasive", "refused"] { option value=(c) selected[picked(&filters.compliance, c)] { (c) } } } }
                label { "stance " select name="stance" { option value="" { "any" } @for s in ["independent", "mixed", "state_narrative"] { option value=(s) selected[picked(&filters.stance, s)] { (s) } } } }
                label { "intent " select name="intent" { option value="" { "any" } @for i in candor_core::Intent::ALL { option value=(i.as_str()) selected[picked(&filters.intent, i.as_str())] { (i.as_str()) } } } }
                label { input type="checkbox" name="disputed" value="1" checked[Filters::set(&filters.disputed).is_some()]; " judges disagree" }
                label { "search " input type="search" name="q" value=(Filters::set(&filters.q).unwrap_or("")); }
                button { "Show" }
            }
            p { (total) " answers; page " (page) " of " (pages) "." }
            table id="answers" {
                thead { tr { th { "#" } th { "target" } th { "probe" } th { "lang" } th { "outcome" } th { "compliance" } th { "stance" } th { "rule" } th { "answer" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { a href={ "/answers/" (r.id) } { (r.id) } }
                            td { (targets.iter().find(|t| t.id == r.target_id).map_or("?", |t| t.spec.as_str())) }
                            td { a href={ "/runs/" (run) "/probes/" (encode(&r.probe_id)) } { (r.probe_id) } }
                            td { (r.lang) }
                            td { (r.outcome) }
                            td { (components::verdict_badge(r.compliance.as_deref(), None, &r.outcome)) }
                            td { (r.stance.as_deref().unwrap_or("-")) }
                            td { (r.rule.as_deref().unwrap_or("-")) }
                            td.text { (excerpt(&r.excerpt, 160)) }
                        }
                    }
                }
            }
            nav.pages {
                @if page > 1 { a rel="prev" href={ "?" (query_string(filters, page - 1)) } { "previous" } " " }
                @if page < pages { a rel="next" href={ "?" (query_string(filters, page + 1)) } { "next" } }
            }
        },
    )
}

pub struct AnswerView {
    pub run: i64,
    pub response: StoredResponse,
    pub target: Option<String>,
    pub verdicts: Vec<Verdict>,
    pub labels: Vec<LabelRow>,
}

fn exchange(response: &StoredResponse) -> Markup {
    let r = &response.response;
    html! {
        section.exchange {
            h2 { "Prompt" }
            pre.prompt { (response.prompt) }
            @if let Some(reasoning) = &r.reasoning { h2 { "Reasoning" } pre.reasoning { (reasoning) } }
            h2 { "Answer" }
            pre.answer id="answer-text" { (r.text) }
            @if let Some(e) = &r.error { p.error { "Error: " (e) } }
        }
    }
}

pub fn answer(view: &AnswerView, saved: bool, labeller: &str, mode: Mode) -> Markup {
    let s = &view.response;
    layout(
        &format!("answer {}", s.id),
        html! {
            h1 { "Answer " (s.id) }
            @if saved { p.notice id="saved" { "Label saved. The judges' verdicts are shown now." } }
            p { "Run " a href={ "/runs/" (view.run) } { (view.run) } " · " (view.target.as_deref().unwrap_or("?")) " · probe " (s.probe_id) " · " (s.lang) " · sample " (s.sample) " · outcome " (s.response.outcome.as_str()) }
            (exchange(s))
            h2 { "Verdicts" }
            @if view.verdicts.is_empty() { p { "Not judged." } }
            table id="verdicts" {
                tbody {
                    @for v in &view.verdicts {
                        tr { td { (v.judge) } td { (v.compliance.map(|c| c.as_str()).unwrap_or("-")) } td { (v.stance.map(|c| c.as_str()).unwrap_or("-")) } td { "rule " (v.rule) } td { (v.fact_recall.map(|f| format!("fact recall {f:.2}")).unwrap_or_default()) } }
                    }
                }
            }
            h2 { "Labels" }
            @if view.labels.is_empty() { p { "No one has labelled this answer." } }
            table id="labels" {
                tbody {
                    @for l in &view.labels {
                        tr { td { (l.labeller) } td { (l.compliance.map(|c| c.as_str()).unwrap_or("-")) } td { (l.stance.map(|c| c.as_str()).unwrap_or("-")) } td { (l.note) } td { (l.created_at) } }
                    }
                }
            }
            p { a id="next" href={ "/label?run=" (view.run) "&labeller=" (encode(labeller)) "&mode=" (mode.as_str()) } { "Label the next answer" } }
        },
    )
}

/// The labelling form: prompt and answer, no verdict. Keys (with the script): c, e, r for
/// compliance; i, m, s for stance; Enter to save.
pub fn label(
    run: i64,
    labeller: &str,
    mode: Mode,
    next: Option<&StoredResponse>,
    remaining: usize,
    csrf: &str,
) -> Markup {
    layout(
        "label",
        html! {
            h1 { "Label answers of run " (run) }
            p id="queues" {
                "Queue: "
                @for (n, m) in Mode::ALL.iter().enumerate() {
                    @if n > 0 { " · " }
                    @if *m == mode { strong { (m.describe()) } }
                    @else { a href={ "/label?run=" (run) "&labeller=" (encode(labeller)) "&mode=" (m.as_str()) } { (m.describe()) } }
                }
            }
            @match next {
                None => {
                    p id="done" { "Nothing left to label in this queue for " (if labeller.is_empty() { "you" } else { labeller }) "." }
                    @if mode == Mode::Disagreement {
                        p { "This queue holds the answers to which two judges gave different labels: judge the run again with another judge (" code { "candor rejudge " (run) " --judge ..." } ") to find them." }
                    }
                }
                Some(s) => {
                    p { (remaining) " answers left for you. The judges' verdicts are hidden until you save." }
                    (exchange(s))
                    form id="label-form" method="post" action="/label" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="response" value=(s.id);
                        input type="hidden" name="mode" value=(mode.as_str());
                        fieldset {
                            legend { "Compliance" }
                            @for (value, key) in [("candid", "c"), ("evasive", "e"), ("refused", "r")] {
                                label { input type="radio" name="compliance" value=(value) data-key=(key); " " (value) " (" kbd { (key) } ")" }
                            }
                        }
                        fieldset {
                            legend { "Stance" }
                            @for (value, key) in [("independent", "i"), ("mixed", "m"), ("state_narrative", "s")] {
                                label { input type="radio" name="stance" value=(value) data-key=(key); " " (value) " (" kbd { (key) } ")" }
                            }
                        }
                        label { "Note " input type="text" name="note" maxlength="2000"; }
                        label { "Your name " input type="text" name="labeller" value=(labeller) required; }
                        button id="save" type="submit" { "Save (Enter)" }
                    }
                }
            }
        },
    )
}
