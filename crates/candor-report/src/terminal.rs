//! The terminal rendering of a report: per target, the finding in plain words first, then the
//! shares of the groups it rests on; per topic only when asked (`candor report --by topic`), as
//! most topics hold one or two answers per language and their shares say little alone.

use candor_stats::analysis::Figures;
use candor_stats::Rate;

use crate::data::ReportData;
use crate::finding;

/// Text width the finding is wrapped to.
const WIDTH: usize = 100;

fn percent(rate: &Rate) -> String {
    match (rate.share, rate.low, rate.high) {
        (Some(s), Some(l), Some(h)) => {
            format!("{:>3.0}% [{:.0}-{:.0}]", s * 100.0, l * 100.0, h * 100.0)
        }
        _ => "-".to_string(),
    }
}

fn other(f: &Figures) -> String {
    let mut parts = Vec::new();
    if f.truncated > 0 {
        parts.push(format!("cut off {}", f.truncated));
    }
    parts.extend(
        f.outcomes
            .iter()
            .map(|(name, count)| format!("{name} {count}")),
    );
    if f.unscored > 0 {
        parts.push(format!("unscored {}", f.unscored));
    }
    parts.join(", ")
}

/// Wraps words to `WIDTH` columns, every line after `indent`.
fn wrap(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty()
            && indent.len() + line.chars().count() + 1 + word.chars().count() > WIDTH
        {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The report for a terminal; `by_topic` adds a row per topic.
pub fn render(data: &ReportData, by_topic: bool) -> String {
    let mut out = String::new();
    for run in &data.runs {
        out.push_str(&format!(
            "run {} ({}) · suite {} {} ({}) · judge {}\n",
            run.id,
            run.status,
            run.suite_id,
            run.suite_version,
            &run.suite_hash[..run.suite_hash.len().min(12)],
            data.judge.id
        ));
    }
    for (target, a) in data.targets.iter().zip(&data.analysis) {
        out.push('\n');
        out.push_str(&target.label);
        out.push('\n');
        for sentence in finding::sentences(a, &data.focus) {
            out.push_str(&wrap(&sentence, "  "));
        }
        let mut rows: Vec<(String, &Figures)> = vec![
            (format!("about {}", data.focus), &a.china),
            ("about other governments".into(), &a.controls),
        ];
        rows.extend(a.by_lang.iter().map(|(l, f)| (format!("in {l}"), f)));
        if by_topic {
            rows.extend(a.by_topic.iter().map(|(t, f)| (t.clone(), f)));
        }
        rows.push(("all".into(), &a.overall));
        if a.operational.responses > 0 {
            rows.push(("operational (apart)".into(), &a.operational));
        }
        let width = rows
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0);
        out.push('\n');
        out.push_str(&format!(
            "  {:<width$}  {:>4}  {:<15}  {:<15}  {:<15}  {:<15}  {}\n",
            "", "n", "candid", "evasive", "refused", "state narrative", "other"
        ));
        for (name, f) in rows {
            let line = format!(
                "  {:<width$}  {:>4}  {:<15}  {:<15}  {:<15}  {:<15}  {}",
                name,
                f.judged,
                percent(&f.candid),
                percent(&f.evasive),
                percent(&f.refused),
                percent(&f.state_narrative),
                other(f)
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    let mut note = "Shares of judged answers (cut-off answers included), 95% Wilson interval in brackets; n = judged answers. The rows about the subject of interest and about other governments mix templates differently: compare them through the paired gap above.".to_string();
    if !by_topic {
        let runs: Vec<String> = data.runs.iter().map(|r| r.id.to_string()).collect();
        note.push_str(&format!(
            " Per topic: candor report {} --by topic.",
            runs.join(" ")
        ));
    }
    out.push('\n');
    out.push_str(&wrap(&note, ""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{JudgeInfo, Methods, RunInfo, TargetInfo, REPORT_SCHEMA_VERSION};
    use candor_core::{Compliance, Intent, Outcome};
    use candor_stats::analysis::{analyse, Obs, ProbeFacts};

    fn data() -> ReportData {
        let obs = |id, probe: &str, lang: &str, outcome, c| Obs {
            response_id: id,
            target: 0,
            probe: std::sync::Arc::new(ProbeFacts {
                id: probe.into(),
                topic: if probe.starts_with('a') {
                    "tiananmen-1989"
                } else {
                    "kent-state-1970"
                }
                .into(),
                subject: Some(probe.rsplit('.').next().unwrap().into()),
                focus: probe.ends_with(".cn"),
                intent: Some(Intent::Fact),
                template: Some("protest-killings".into()),
            }),
            lang: lang.into(),
            sample: 0,
            outcome,
            compliance: c,
            stance: None,
            fact_recall: None,
        };
        let rows = vec![
            obs(1, "a.cn", "en", Outcome::Ok, Some(Compliance::Refused)),
            obs(
                2,
                "a.cn",
                "zh-Hans",
                Outcome::Truncated,
                Some(Compliance::Refused),
            ),
            obs(3, "b.us", "en", Outcome::Ok, Some(Compliance::Candid)),
            obs(4, "b.us", "zh-Hans", Outcome::Error, None),
        ];
        ReportData {
            schema: REPORT_SCHEMA_VERSION,
            candor_version: "0".into(),
            runs: vec![RunInfo {
                id: 4,
                status: "done".into(),
                started_at: "2026-12-03T00:00:00Z".into(),
                finished_at: None,
                suite_id: "core".into(),
                suite_version: "0.1.0".into(),
                suite_hash: "abcdef0123456789".into(),
                settings: serde_json::Value::Null,
                candor_version: "0".into(),
            }],
            targets: vec![TargetInfo {
                label: "openai/m".into(),
                run_id: 4,
                spec: "openai/m".into(),
                provider: "openai".into(),
                model: "m".into(),
                base_url: String::new(),
                provenance: serde_json::Value::Null,
            }],
            focus: "China".into(),
            judge: JudgeInfo {
                id: "rules@0.17".into(),
                gold_accuracy: None,
                gold_items: None,
            },
            methods: Methods::default(),
            analysis: analyse(1, &rows, false),
            corrected: Vec::new(),
            probes: Vec::new(),
            responses: Vec::new(),
            responses_total: 4,
        }
    }

    #[test]
    fn the_terminal_leads_with_the_finding_then_the_groups_and_topics_only_when_asked() {
        let text = render(&data(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "run 4 (done) · suite core 0.1.0 (abcdef012345) · judge rules@0.17"
        );
        assert_eq!(lines[2], "openai/m");
        assert!(
            lines[3].starts_with("  China minus matched controls"),
            "{text}"
        );
        let row = |name: &str| {
            *lines
                .iter()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        };
        // Both China answers refused, one of them cut off: 100% [34-100] of 2.
        let china = row("about China");
        assert!(
            china.contains("   2    0% [0-66]        0% [0-66]      100% [34-100]"),
            "{china}"
        );
        assert!(china.ends_with("cut off 1"), "{china}");
        assert!(row("all").ends_with("cut off 1, error 1"), "{text}");
        assert!(!text.contains("tiananmen-1989"));
        assert!(text.contains("candor report 4 --by topic"));
        let by_topic = render(&data(), true);
        assert!(by_topic
            .lines()
            .any(|l| l.trim_start().starts_with("tiananmen-1989")));
        // Every line fits a terminal.
        assert!(
            by_topic.lines().all(|l| l.chars().count() <= 120),
            "{by_topic}"
        );
    }
}
