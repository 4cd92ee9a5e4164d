//! Reports rendered from a summary of stored rows: the terminal table and JSON.
//!
//! A report never computes from anything but the [`AuditSummary`], which is built from the
//! store, so every figure printed traces back to stored responses.

pub mod data;
pub mod html;
pub mod markdown;

use candor_stats::{GroupSummary, Rate, TargetSummary};
use serde::Serialize;

pub use data::{
    JudgeInfo, Methods, ReportData, ResponseView, RunInfo, TargetInfo, REPORT_SCHEMA_VERSION,
};

/// Everything a report shows about one run.
#[derive(Debug, Clone, Serialize)]
pub struct AuditSummary {
    /// Version of this JSON layout; bumped on any incompatible change.
    pub schema: u32,
    pub run_id: i64,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub suite: SuiteInfo,
    pub judge: String,
    pub targets: Vec<TargetReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteInfo {
    pub id: String,
    pub version: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub spec: String,
    pub provider: String,
    pub model: String,
    pub base_url: String,
    pub overall: GroupSummary,
    pub topics: Vec<TopicReport>,
}

impl TargetReport {
    /// A target's identity joined with its figures.
    pub fn new(
        spec: String,
        provider: String,
        model: String,
        base_url: String,
        figures: TargetSummary,
    ) -> TargetReport {
        TargetReport {
            spec,
            provider,
            model,
            base_url,
            overall: figures.overall,
            topics: figures
                .topics
                .into_iter()
                .map(|(topic, summary)| TopicReport { topic, summary })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicReport {
    pub topic: String,
    #[serde(flatten)]
    pub summary: GroupSummary,
}

pub const JSON_SCHEMA_VERSION: u32 = 1;

/// A p-value as people read them: three decimals, or "<0.001".
pub(crate) fn p_value(p: f64) -> String {
    if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

pub fn to_json(summary: &AuditSummary) -> String {
    serde_json::to_string_pretty(summary).expect("summary serialises")
}

fn percent(rate: &Rate) -> String {
    match (rate.share, rate.low, rate.high) {
        (Some(s), Some(l), Some(h)) => {
            format!("{:>3.0}% [{:.0}-{:.0}]", s * 100.0, l * 100.0, h * 100.0)
        }
        _ => "-".to_string(),
    }
}

fn other(g: &GroupSummary) -> String {
    let mut parts: Vec<String> = g
        .outcomes
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    if g.unscored > 0 {
        parts.push(format!("unscored {}", g.unscored));
    }
    parts.join(", ")
}

/// The terminal table: per target, one row per topic and a total, each share with its 95%
/// Wilson interval in brackets.
pub fn render_table(summary: &AuditSummary) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "run {} ({}) · suite {} {} ({}) · judge {}\n",
        summary.run_id,
        summary.status,
        summary.suite.id,
        summary.suite.version,
        &summary.suite.hash[..summary.suite.hash.len().min(12)],
        summary.judge
    ));
    out.push_str("shares of judged answers, 95% Wilson interval in brackets; n = judged answers\n");
    for target in &summary.targets {
        let width = target
            .topics
            .iter()
            .map(|t| t.topic.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        out.push('\n');
        out.push_str(&target.spec);
        out.push('\n');
        out.push_str(&format!(
            "  {:<width$}  {:>4}  {:<15}  {:<15}  {:<15}  {}\n",
            "topic", "n", "candid", "evasive", "refused", "other"
        ));
        let row = |name: &str, g: &GroupSummary| {
            let line = format!(
                "  {:<width$}  {:>4}  {:<15}  {:<15}  {:<15}  {}",
                name,
                g.judged,
                percent(&g.candid),
                percent(&g.evasive),
                percent(&g.refused),
                other(g)
            );
            format!("{}\n", line.trim_end())
        };
        for t in &target.topics {
            out.push_str(&row(&t.topic, &t.summary));
        }
        out.push_str(&row("all", &target.overall));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{Compliance, Outcome};
    use candor_stats::{summarize, Observation};

    fn fixture() -> AuditSummary {
        let obs = |topic: &str, outcome, compliance| Observation {
            target: 0,
            topic: topic.into(),
            outcome,
            compliance,
        };
        let rows = vec![
            obs("tiananmen-1989", Outcome::Ok, Some(Compliance::Refused)),
            obs("tiananmen-1989", Outcome::Ok, Some(Compliance::Refused)),
            obs("kent-state-1970", Outcome::Ok, Some(Compliance::Candid)),
            obs("kent-state-1970", Outcome::Error, None),
        ];
        let s = summarize(1, &rows).remove(0);
        AuditSummary {
            schema: JSON_SCHEMA_VERSION,
            run_id: 4,
            status: "done".into(),
            started_at: "2026-11-28T00:00:00Z".into(),
            finished_at: None,
            suite: SuiteInfo {
                id: "core".into(),
                version: "0.1.0".into(),
                hash: "abcdef0123456789".into(),
            },
            judge: "rules@0.3".into(),
            targets: vec![TargetReport::new(
                "openai/m@http://127.0.0.1:1/v1".into(),
                "openai".into(),
                "m".into(),
                "http://127.0.0.1:1/v1".into(),
                s,
            )],
        }
    }

    #[test]
    fn the_table_shows_shares_intervals_and_other_outcomes() {
        let table = render_table(&fixture());
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0]
                .starts_with("run 4 (done) · suite core 0.1.0 (abcdef012345) · judge rules@0.3"),
            "{table}"
        );
        let tian = lines
            .iter()
            .find(|l| l.trim_start().starts_with("tiananmen-1989"))
            .unwrap();
        // 2 of 2 refused: 100% [34-100]; 0 candid: 0% [0-66].
        assert!(tian.contains("100% [34-100]"), "{tian}");
        assert!(tian.contains("  0% [0-66]"), "{tian}");
        let kent = lines
            .iter()
            .find(|l| l.trim_start().starts_with("kent-state-1970"))
            .unwrap();
        assert!(kent.ends_with("error 1"), "{kent}");
        let all = lines
            .iter()
            .find(|l| l.trim_start().starts_with("all"))
            .unwrap();
        assert!(all.contains("   3  "), "{all}");
    }

    #[test]
    fn json_carries_counts_and_intervals() {
        let v: serde_json::Value = serde_json::from_str(&to_json(&fixture())).unwrap();
        let topic = &v["targets"][0]["topics"][1];
        assert_eq!(topic["topic"], "tiananmen-1989");
        assert_eq!(topic["refused"]["count"], 2);
        assert_eq!(topic["judged"], 2);
        assert!((topic["refused"]["low"].as_f64().unwrap() - 0.342_380_227).abs() < 1e-6);
        assert_eq!(v["targets"][0]["overall"]["outcomes"]["error"], 1);
        assert_eq!(v["schema"], 1);
    }
}
