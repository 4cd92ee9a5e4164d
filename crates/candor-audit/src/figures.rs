//! Builds the full report of one or more stored runs: every figure from the store's rows.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candor_core::Compliance;
use candor_report::{
    JudgeInfo, Methods, ReportData, ResponseView, RunInfo, TargetInfo, REPORT_SCHEMA_VERSION,
};
use candor_stats::analysis::{self, Obs};
use candor_store::{JudgedRow, Store};
use serde::Deserialize;

use crate::Error;

/// Past this many responses the report shows only the first samples of each probe.
const MAX_SHOWN: usize = 5_000;
/// Characters of answer text the whole report may carry; each answer gets its share.
const TEXT_BUDGET: usize = 4_000_000;

/// A judge's confusion matrix on a gold set, for judge-error correction.
#[derive(Debug, Clone, Deserialize)]
pub struct Confusion {
    /// Must be candid, evasive, refused, in this order.
    pub labels: Vec<String>,
    /// Rows: the gold label; columns: the judge's.
    pub matrix: Vec<Vec<u64>>,
}

pub fn read_confusion(path: &Path) -> Result<Confusion, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
    let c: Confusion = serde_json::from_str(&text)
        .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
    let expected: Vec<&str> = Compliance::ALL.iter().map(|c| c.as_str()).collect();
    if c.labels != expected || c.matrix.len() != 3 || c.matrix.iter().any(|r| r.len() != 3) {
        return Err(Error::usage(format!(
            "{}: labels must be {expected:?} and the matrix 3 x 3 (rows gold, columns judge)",
            path.display()
        )));
    }
    Ok(c)
}

/// Observations of one run, targets numbered from `offset`; `focus` holds the ids of the probes
/// of interest.
pub fn observations(
    rows: Vec<JudgedRow>,
    target_ids: &[i64],
    offset: usize,
    focus: &HashSet<String>,
) -> Vec<Obs> {
    rows.into_iter()
        .filter_map(|r| {
            let target = offset + target_ids.iter().position(|&id| id == r.target_id)?;
            Some(Obs {
                response_id: r.response_id,
                target,
                focus: focus.contains(&r.probe_id),
                probe: r.probe_id,
                topic: r.topic,
                subject: r.subject,
                intent: r.intent,
                template: r.template,
                lang: r.lang,
                sample: r.sample,
                outcome: r.outcome,
                compliance: r.compliance,
                stance: r.stance,
                fact_recall: r.fact_recall,
            })
        })
        .collect()
}

pub fn build(
    store: &dyn Store,
    run_ids: &[i64],
    judge: &str,
    confusion: Option<&Confusion>,
) -> Result<ReportData, Error> {
    let mut runs = Vec::new();
    let mut targets = Vec::new();
    let mut obs = Vec::new();
    let mut probes = Vec::new();
    let mut seen_probes = HashSet::new();
    let mut answers = Vec::new();
    let mut verdicts: HashMap<i64, JudgedRow> = HashMap::new();
    for &run_id in run_ids {
        let run = store.run(run_id).map_err(Error::usage)?;
        let rows = store.targets(run_id).map_err(Error::run)?;
        let ids: Vec<i64> = rows.iter().map(|t| t.id).collect();
        let offset = targets.len();
        for t in rows {
            let label = if run_ids.len() > 1 {
                format!("run {run_id} · {}", t.spec)
            } else {
                t.spec.clone()
            };
            targets.push(TargetInfo {
                label,
                run_id,
                spec: t.spec,
                provider: t.provider,
                model: t.model,
                base_url: t.base_url,
                provenance: t.provenance,
            });
        }
        let judged = store.judged_rows(run_id, judge).map_err(Error::run)?;
        for r in &judged {
            verdicts.insert(r.response_id, r.clone());
        }
        let asked = store.probes(run_id).map_err(Error::run)?;
        let focus: HashSet<String> = asked
            .iter()
            .filter(|p| p.is_focus())
            .map(|p| p.id.clone())
            .collect();
        obs.extend(observations(judged, &ids, offset, &focus));
        for p in asked {
            if seen_probes.insert(p.id.clone()) {
                probes.push(p);
            }
        }
        for a in store.answers(run_id).map_err(Error::run)? {
            if let Some(t) = ids.iter().position(|&id| id == a.target_id) {
                answers.push((offset + t, a));
            }
        }
        runs.push(RunInfo {
            id: run.id,
            status: run.status,
            started_at: run.started_at,
            finished_at: run.finished_at,
            suite_id: run.suite_id,
            suite_version: run.suite_version,
            suite_hash: run.suite_hash,
            settings: run.settings,
            candor_version: run.candor_version,
        });
    }
    let analysis = analysis::analyse(targets.len(), &obs, false);
    let corrected = match confusion {
        Some(c) => analysis
            .iter()
            .map(|a| {
                let f = &a.overall;
                let observed = [f.candid.count, f.evasive.count, f.refused.count];
                candor_stats::correct(
                    &observed,
                    &c.matrix,
                    1_000,
                    candor_stats::bootstrap::DEFAULT_SEED,
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let responses_total = answers.len() as u64;
    let responses = shown(answers, &verdicts);
    let judge = JudgeInfo {
        id: judge.to_string(),
        gold_accuracy: confusion.map(|c| {
            let total: u64 = c.matrix.iter().flatten().sum();
            let right: u64 = (0..3).map(|i| c.matrix[i][i]).sum();
            right as f64 / total.max(1) as f64
        }),
        gold_items: confusion.map(|c| c.matrix.iter().flatten().sum()),
    };
    Ok(ReportData {
        schema: REPORT_SCHEMA_VERSION,
        candor_version: candor_core::CANDOR_VERSION.to_string(),
        runs,
        targets,
        judge,
        focus: focus_name(&analysis),
        methods: Methods::default(),
        analysis,
        corrected,
        probes,
        responses,
        responses_total,
    })
}

/// The answers the report shows: all of them in ordinary runs; in very large ones the first
/// samples of every (target, probe, language), with texts shortened to fit the budget.
fn shown(
    answers: Vec<(usize, candor_store::Answer)>,
    verdicts: &HashMap<i64, JudgedRow>,
) -> Vec<ResponseView> {
    let groups: HashSet<(usize, &str, &str)> = answers
        .iter()
        .map(|(t, a)| (*t, a.probe_id.as_str(), a.lang.as_str()))
        .collect();
    let per_group = if answers.len() <= MAX_SHOWN {
        u32::MAX
    } else {
        (MAX_SHOWN / groups.len().max(1)).max(1) as u32
    };
    let kept = answers
        .iter()
        .filter(|(_, a)| a.sample < per_group)
        .count()
        .max(1);
    let limit = (TEXT_BUDGET / kept).clamp(200, 20_000);
    let mut out: Vec<ResponseView> = Vec::with_capacity(kept);
    for (t, a) in answers {
        if a.sample >= per_group {
            continue;
        }
        let v = verdicts.get(&a.id);
        let shortened = a.text.chars().count() > limit;
        let text = if shortened {
            a.text.chars().take(limit).collect::<String>() + "…"
        } else {
            a.text
        };
        out.push(ResponseView {
            id: a.id,
            target: t,
            probe: a.probe_id,
            lang: a.lang,
            sample: a.sample,
            outcome: a.outcome,
            compliance: v.and_then(|v| v.compliance).map(|c| c.as_str().to_string()),
            rule: v.and_then(|v| v.rule.clone()),
            stance: v.and_then(|v| v.stance).map(|s| s.as_str().to_string()),
            fact_recall: v.and_then(|v| v.fact_recall),
            error: a.error,
            text,
            shortened,
        });
    }
    out.sort_by_key(|r| (r.target, r.id));
    out
}

/// The judge whose verdicts a read shows for `run`: the one asked for, which must have judged
/// it, or the one that judged it last.
pub fn judge_for_run(store: &dyn Store, run: i64, asked: Option<&str>) -> Result<String, Error> {
    let judges = store.run_judges(run).map_err(Error::run)?;
    match (asked, judges.first()) {
        (Some(id), _) if judges.iter().any(|j| j == id) => Ok(id.to_string()),
        (Some(id), _) => Err(Error::usage(format!(
            "run {run} has no verdicts of judge '{id}'; it has: {}",
            if judges.is_empty() {
                "none".to_string()
            } else {
                judges.join(", ")
            }
        ))),
        (None, Some(last)) => Ok(last.clone()),
        // Not judged yet (a run cut short): nothing to read, whichever judge is named.
        (None, None) => Ok(candor_judge::learned::LearnedJudge::ID.to_string()),
    }
}

/// One side of a comparison, written RUN (a run with one target) or RUN:N (its N-th target,
/// from 1): its name and its observations, read as `judge` (default: the run's last) judged.
pub fn comparison_side(
    store: &dyn Store,
    text: &str,
    judge: Option<&str>,
) -> Result<(String, Vec<Obs>), Error> {
    let bad = || {
        Error::usage(format!(
            "'{text}' is not RUN or RUN:N (N counts the run's targets from 1)"
        ))
    };
    let (run, n) = match text.split_once(':') {
        Some((r, n)) => (
            r.parse::<i64>().map_err(|_| bad())?,
            Some(n.parse::<usize>().map_err(|_| bad())?),
        ),
        None => (text.parse::<i64>().map_err(|_| bad())?, None),
    };
    let targets = store.targets(run).map_err(Error::usage)?;
    if targets.is_empty() {
        return Err(Error::usage(format!(
            "no run {run} with targets in the store"
        )));
    }
    let index = match n {
        Some(n) if n >= 1 && n <= targets.len() => n - 1,
        Some(n) => {
            return Err(Error::usage(format!(
                "run {run} has {} targets, not {n}",
                targets.len()
            )))
        }
        None if targets.len() == 1 => 0,
        None => {
            return Err(Error::usage(format!(
                "run {run} has {} targets: say which, as {run}:1 .. {run}:{}",
                targets.len(),
                targets.len()
            )))
        }
    };
    let target = &targets[index];
    let judge = judge_for_run(store, run, judge)?;
    let rows = store.judged_rows(run, &judge).map_err(Error::run)?;
    let focus: HashSet<String> = store
        .probes(run)
        .map_err(Error::run)?
        .into_iter()
        .filter(|p| p.is_focus())
        .map(|p| p.id)
        .collect();
    let obs = observations(rows, &[target.id], 0, &focus);
    Ok((format!("run {run} · {} · judge {judge}", target.spec), obs))
}

/// What a report calls the subject of the probes of interest: "China" for `cn` (the built-in
/// suites), a government of the catalogue of official lines by its name, else its code.
fn focus_name(analysis: &[analysis::TargetAnalysis]) -> String {
    let code = analysis
        .iter()
        .find_map(|a| a.focus.as_deref())
        .unwrap_or(candor_core::DEFAULT_FOCUS);
    if code == candor_core::DEFAULT_FOCUS {
        return "China".into();
    }
    candor_judge::narratives::Catalogue::built_in()
        .governments
        .iter()
        .find(|g| g.code == code)
        .map_or_else(|| code.to_string(), |g| g.name.clone())
}
