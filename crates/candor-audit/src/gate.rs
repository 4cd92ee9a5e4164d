//! The gate: thresholds a model must meet before it ships, checked on a run's figures.

use std::path::Path;

use candor_report::gate::Check;
use candor_report::ReportData;
use candor_stats::analysis::{Difference, Figures, Measure, TargetAnalysis};
use candor_stats::Rate;
use serde::Deserialize;

use crate::Error;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Metric {
    /// China probe minus matched controls (pooled over templates, or one `template`).
    Gap,
    /// Another language (`lang`) minus English.
    LanguageGap,
    /// A plain share over `probes`.
    Rate,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Label {
    Refused,
    NonCandid,
    Evasive,
    Candid,
    StateNarrative,
    /// Not candid, or blocked by the provider (filters, retractions).
    CensoredAnywhere,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
enum Use {
    /// The interval's upper bound (lower bound for `min`): the rule holds with 95% confidence.
    #[default]
    Bound,
    /// The point estimate.
    Estimate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    name: String,
    metric: Metric,
    measure: Label,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default, rename = "use")]
    use_: Use,
    /// For rates and language gaps: `all`, `china` or `controls`.
    #[serde(default = "all")]
    probes: String,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    template: Option<String>,
    /// Only targets whose spec contains this.
    #[serde(default)]
    target: Option<String>,
}

fn all() -> String {
    "all".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateFile {
    rule: Vec<Rule>,
}

/// The rules of a gate file; a broken one is a usage error naming the file and line.
pub fn read_rules(path: &Path) -> Result<Vec<Rule>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
    let file: GateFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map_or(1, |s| candor_suite::line_col(&text, s.start).0);
        Error::usage(format!("{}:{line}: {}", path.display(), e.message().trim()))
    })?;
    for r in &file.rule {
        if r.max.is_none() && r.min.is_none() {
            return Err(Error::usage(format!(
                "{}: rule '{}' needs max or min",
                path.display(),
                r.name
            )));
        }
        let difference_label = matches!(
            r.measure,
            Label::Refused | Label::NonCandid | Label::StateNarrative | Label::CensoredAnywhere
        );
        if r.metric != Metric::Rate && !difference_label {
            return Err(Error::usage(format!(
                "{}: rule '{}': gaps measure refused, non_candid, state_narrative or censored_anywhere",
                path.display(),
                r.name
            )));
        }
        if r.metric == Metric::LanguageGap && r.lang.is_none() {
            return Err(Error::usage(format!(
                "{}: rule '{}': a language gap needs lang",
                path.display(),
                r.name
            )));
        }
        if !["all", "china", "controls"].contains(&r.probes.as_str()) {
            return Err(Error::usage(format!(
                "{}: rule '{}': probes is all, china or controls",
                path.display(),
                r.name
            )));
        }
    }
    Ok(file.rule)
}

fn measure(label: Label) -> Measure {
    match label {
        Label::Refused => Measure::Refused,
        Label::StateNarrative => Measure::StateNarrative,
        Label::CensoredAnywhere => Measure::CensoredAnywhere,
        _ => Measure::NonCandid,
    }
}

/// (estimate, low, high) of what a rule looks at, or why there is none.
fn value(rule: &Rule, a: &TargetAnalysis) -> Result<(f64, f64, f64), String> {
    let from_diff = |diffs: &[Difference]| {
        diffs
            .iter()
            .find(|d| d.measure == measure(rule.measure))
            .map(|d| (d.diff, d.low, d.high))
            .ok_or_else(|| "no paired answers to measure".to_string())
    };
    match rule.metric {
        Metric::Gap => {
            let gap = match &rule.template {
                Some(t) => a.gaps.iter().find(|g| &g.template == t),
                None => a.pooled_gap.as_ref(),
            };
            from_diff(
                &gap.ok_or("no China probe with judged controls")?
                    .differences,
            )
        }
        Metric::LanguageGap => {
            let lang = rule.lang.as_deref().unwrap_or_default();
            let g = a
                .language_gaps
                .iter()
                .find(|g| g.lang == lang && g.probes == rule.probes)
                .ok_or(format!("no answers in {lang} paired with English"))?;
            from_diff(&g.differences)
        }
        Metric::Rate => {
            let f: &Figures = match rule.probes.as_str() {
                "china" => &a.china,
                "controls" => &a.controls,
                _ => &a.overall,
            };
            let r: &Rate = match rule.measure {
                Label::Refused => &f.refused,
                Label::NonCandid => &f.non_candid,
                Label::Evasive => &f.evasive,
                Label::Candid => &f.candid,
                Label::StateNarrative => &f.state_narrative,
                Label::CensoredAnywhere => &f.censored_anywhere,
            };
            match (r.share, r.low, r.high) {
                (Some(s), Some(l), Some(h)) => Ok((s, l, h)),
                _ => Err("no judged answers".into()),
            }
        }
    }
}

fn check(rule: &Rule, target: &str, a: &TargetAnalysis) -> Check {
    let fail = |message: String| Check {
        rule: rule.name.clone(),
        target: target.to_string(),
        passed: false,
        message,
    };
    let (estimate, low, high) = match value(rule, a) {
        Ok(v) => v,
        Err(why) => return fail(format!("cannot be checked: {why}")),
    };
    let shown = format!(
        "{:.1}% [{:.1}, {:.1}]",
        estimate * 100.0,
        low * 100.0,
        high * 100.0
    );
    let mut problems = Vec::new();
    if let Some(max) = rule.max {
        let (v, what) = if rule.use_ == Use::Bound {
            (high, "upper bound")
        } else {
            (estimate, "estimate")
        };
        if v > max {
            problems.push(format!(
                "{what} {:.1}% is above the maximum {:.1}%",
                v * 100.0,
                max * 100.0
            ));
        }
    }
    if let Some(min) = rule.min {
        let (v, what) = if rule.use_ == Use::Bound {
            (low, "lower bound")
        } else {
            (estimate, "estimate")
        };
        if v < min {
            problems.push(format!(
                "{what} {:.1}% is below the minimum {:.1}%",
                v * 100.0,
                min * 100.0
            ));
        }
    }
    Check {
        rule: rule.name.clone(),
        target: target.to_string(),
        passed: problems.is_empty(),
        message: if problems.is_empty() {
            format!("{shown} within bounds")
        } else {
            format!("{shown}: {}", problems.join("; "))
        },
    }
}

/// Every rule checked on every target it names, in rule order.
pub fn check_all(rules: &[Rule], data: &ReportData) -> Vec<Check> {
    let mut checks = Vec::new();
    for rule in rules {
        for (t, a) in data.targets.iter().zip(&data.analysis) {
            if rule
                .target
                .as_ref()
                .is_some_and(|f| !t.spec.contains(f.as_str()))
            {
                continue;
            }
            checks.push(check(rule, &t.spec, a));
        }
    }
    checks
}
