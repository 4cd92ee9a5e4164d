//! Builds the full report of one or more stored runs: every figure from the store's rows.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use candor_core::Compliance;
use candor_report::{
    JudgeInfo, Methods, ReportData, ResponseView, RunInfo, TargetInfo, REPORT_SCHEMA_VERSION,
};
use candor_stats::analysis::{self, Obs, ProbeFacts};
use candor_store::{for_each_page, JudgedRow, Store, READ_PAGE};
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

/// One shared copy of each string that observations repeat (probes, topics, languages), and
/// of each probe's facts.
#[derive(Default)]
pub struct Strings {
    texts: HashSet<Arc<str>>,
    probes: HashSet<Arc<ProbeFacts>>,
}

impl Strings {
    pub fn get(&mut self, text: String) -> Arc<str> {
        if let Some(shared) = self.texts.get(text.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = text.into();
        self.texts.insert(shared.clone());
        shared
    }

    fn probe(&mut self, facts: ProbeFacts) -> Arc<ProbeFacts> {
        if let Some(shared) = self.probes.get(&facts) {
            return shared.clone();
        }
        let shared = Arc::new(facts);
        self.probes.insert(shared.clone());
        shared
    }
}

/// A response's observation, its target numbered from `offset` by its place in `target_ids`
/// (`None` for another target's); `focus` holds the ids of the probes of interest.
pub fn observation(
    r: JudgedRow,
    target_ids: &[i64],
    offset: usize,
    focus: &HashSet<String>,
    strings: &mut Strings,
) -> Option<Obs> {
    let target = offset + target_ids.iter().position(|&id| id == r.target_id)?;
    let facts = ProbeFacts {
        focus: focus.contains(&r.probe_id),
        id: strings.get(r.probe_id),
        topic: strings.get(r.topic),
        subject: r.subject.map(|s| strings.get(s)),
        intent: r.intent,
        template: r.template.map(|t| strings.get(t)),
    };
    Some(Obs {
        response_id: r.response_id,
        target,
        probe: strings.probe(facts),
        lang: strings.get(r.lang),
        sample: r.sample,
        outcome: r.outcome,
        compliance: r.compliance,
        stance: r.stance,
        fact_recall: r.fact_recall,
    })
}

/// Observations of one run's targets in `target_ids`, read a page at a time.
fn observe_run(
    store: &dyn Store,
    run_id: i64,
    judge: &str,
    target_ids: &[i64],
    offset: usize,
    strings: &mut Strings,
    mut each: impl FnMut(Obs, Option<Arc<str>>),
) -> Result<(), Error> {
    let focus: HashSet<String> = store
        .probes(run_id)
        .map_err(Error::run)?
        .into_iter()
        .filter(|p| p.is_focus())
        .map(|p| p.id)
        .collect();
    for_each_page(
        |after| store.judged_rows_after(run_id, judge, after, READ_PAGE),
        |r| r.response_id,
        |page| {
            for mut row in page {
                let rule = row.rule.take().map(|r| strings.get(r));
                if let Some(o) = observation(row, target_ids, offset, &focus, strings) {
                    each(o, rule);
                }
            }
            Ok(())
        },
    )
    .map_err(Error::run)
}

/// Builds the report's figures from the store, reading a page of rows at a time: it holds one
/// small observation per response (strings shared) and only the answers it shows, so that a
/// run of a million responses fits in a few hundred megabytes.
pub fn build(
    store: &dyn Store,
    run_ids: &[i64],
    judge: &str,
    confusion: Option<&Confusion>,
) -> Result<ReportData, Error> {
    build_with(store, run_ids, judge, confusion, true)
}

/// The figures alone, for a page that links to the answers instead of carrying them
/// (`responses` empty, `responses_total` counted): it reads no answer text.
pub fn figures_only(store: &dyn Store, run_ids: &[i64], judge: &str) -> Result<ReportData, Error> {
    build_with(store, run_ids, judge, None, false)
}

fn build_with(
    store: &dyn Store,
    run_ids: &[i64],
    judge: &str,
    confusion: Option<&Confusion>,
    with_answers: bool,
) -> Result<ReportData, Error> {
    let mut runs = Vec::new();
    let mut targets = Vec::new();
    let mut obs = Vec::new();
    let mut rules = Vec::new();
    let mut probes = Vec::new();
    let mut seen_probes = HashSet::new();
    let mut strings = Strings::default();
    let mut run_targets = Vec::new();
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
        // Sized once: a vector grown by doubling holds its old and new buffers at once, half
        // as much again at a million answers.
        let answers: usize = store
            .error_counts(run_id)
            .map_err(Error::run)?
            .values()
            .map(|c| c.responses as usize)
            .sum();
        obs.reserve_exact(answers);
        rules.reserve_exact(answers);
        observe_run(
            store,
            run_id,
            judge,
            &ids,
            offset,
            &mut strings,
            |o, rule| {
                obs.push(o);
                rules.push(rule);
            },
        )?;
        for p in store.probes(run_id).map_err(Error::run)? {
            if seen_probes.insert(p.id.clone()) {
                probes.push(p);
            }
        }
        run_targets.push((run_id, offset, ids));
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
    drop(strings);
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
    let responses_total = obs.len() as u64;
    let responses = match with_answers {
        true => shown(store, &run_targets, &obs, &rules)?,
        false => Vec::new(),
    };
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
/// samples of every (target, probe, language), with texts shortened to fit the budget. Only
/// those are read from the store, a page at a time.
fn shown(
    store: &dyn Store,
    run_targets: &[(i64, usize, Vec<i64>)],
    obs: &[Obs],
    rules: &[Option<Arc<str>>],
) -> Result<Vec<ResponseView>, Error> {
    let per_group = if obs.len() <= MAX_SHOWN {
        u32::MAX
    } else {
        let groups: HashSet<(usize, &str, &str)> = obs
            .iter()
            .map(|o| (o.target, &*o.probe.id, &*o.lang))
            .collect();
        (MAX_SHOWN / groups.len().max(1)).max(1) as u32
    };
    // The shown answers' observations, by response id.
    let kept: HashMap<i64, usize> = obs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.sample < per_group)
        .map(|(i, o)| (o.response_id, i))
        .collect();
    let limit = (TEXT_BUDGET / kept.len().max(1)).clamp(200, 20_000);
    let mut out: Vec<ResponseView> = Vec::with_capacity(kept.len());
    for (run_id, offset, ids) in run_targets {
        for_each_page(
            |after| store.answers_after(*run_id, after, READ_PAGE),
            |a| a.id,
            |page| {
                for a in page {
                    let Some(t) = ids.iter().position(|&id| id == a.target_id) else {
                        continue;
                    };
                    let Some(&i) = kept.get(&a.id) else {
                        continue;
                    };
                    let v = &obs[i];
                    let shortened = a.text.chars().count() > limit;
                    let text = if shortened {
                        a.text.chars().take(limit).collect::<String>() + "…"
                    } else {
                        a.text
                    };
                    out.push(ResponseView {
                        id: a.id,
                        target: offset + t,
                        probe: a.probe_id,
                        lang: a.lang,
                        sample: a.sample,
                        outcome: a.outcome,
                        compliance: v.compliance.map(|c| c.as_str().to_string()),
                        rule: rules[i].as_deref().map(str::to_string),
                        stance: v.stance.map(|s| s.as_str().to_string()),
                        fact_recall: v.fact_recall,
                        error: a.error,
                        text,
                        shortened,
                    });
                }
                Ok(())
            },
        )
        .map_err(Error::run)?;
    }
    out.sort_by_key(|r| (r.target, r.id));
    Ok(out)
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
        (None, last) => Ok(judge_or_default(last.cloned())),
    }
}

/// The run's last judge; for a run not judged yet (one cut short), the default judge, whose
/// read finds nothing, whichever judge is named.
pub fn judge_or_default(last: Option<String>) -> String {
    last.unwrap_or_else(|| candor_judge::learned::LearnedJudge::ID.to_string())
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
    let mut obs = Vec::new();
    let mut strings = Strings::default();
    observe_run(store, run, &judge, &[target.id], 0, &mut strings, |o, _| {
        obs.push(o)
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{Outcome, Probe, Request, Response, SamplingParams, Suite, Verdict};
    use candor_store::test_support::insert_exchanges;

    fn probe(id: &str) -> Probe {
        Probe {
            id: id.into(),
            topic: format!("topic-{id}"),
            subject: Some("cn".into()),
            intent: None,
            template: Some("t".into()),
            focus: None,
            texts: [("en".to_string(), format!("Question {id}?"))].into(),
            key_facts: vec![],
            markers: Default::default(),
            sources: vec![],
        }
    }

    /// A run larger than the report shows: the figures count every response, the report
    /// carries the first samples of each probe, each with its own verdict.
    #[test]
    fn a_large_run_is_counted_whole_and_shows_its_first_samples_with_their_verdicts() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = candor_store::open(&dir.path().join("s.db")).unwrap();
        let suite = Suite::new(
            "s".into(),
            "1".into(),
            String::new(),
            vec!["en".into()],
            vec![probe("a"), probe("b"), probe("c")],
        );
        let run = store.create_run(&suite, &serde_json::json!({})).unwrap();
        let target = store
            .add_target(run, 0, &serde_json::json!({"spec": "openai/m"}))
            .unwrap();
        store.put_probes(&suite).unwrap();
        let samples = 2_000u32;
        let items: Vec<(Request, Response)> = ["a", "b", "c"]
            .iter()
            .flat_map(|p| {
                (0..samples).map(move |n| {
                    (
                        Request {
                            probe_id: p.to_string(),
                            lang: "en".into(),
                            sample: n,
                            system: None,
                            prompt: format!("Question {p}?"),
                            params: SamplingParams::default(),
                        },
                        Response {
                            outcome: Outcome::Ok,
                            text: format!("answer {p} {n}"),
                            ..Response::default()
                        },
                    )
                })
            })
            .collect();
        insert_exchanges(store.as_mut(), run, target, "openai/m", &items).unwrap();
        // Every third answer refused, the rest candid: the verdict must follow its answer.
        let verdicts: Vec<(i64, Verdict)> = store
            .answers(run)
            .unwrap()
            .iter()
            .map(|a| {
                let refused = a.sample % 3 == 0;
                let verdict = Verdict {
                    judge: "j@1".into(),
                    compliance: Some(if refused {
                        Compliance::Refused
                    } else {
                        Compliance::Candid
                    }),
                    stance: None,
                    fact_recall: None,
                    rule: if refused { "R2" } else { "R8" }.into(),
                    rationale: String::new(),
                };
                (a.id, verdict)
            })
            .collect();
        store.insert_verdicts(&verdicts).unwrap();

        let data = build(store.as_ref(), &[run], "j@1", None).unwrap();
        assert_eq!(data.responses_total, 6_000);
        let overall = &data.analysis[0].overall;
        assert_eq!(overall.refused.count, 3 * 667);
        assert_eq!(overall.candid.count, 3 * 1_333);
        let per_probe = (MAX_SHOWN / 3) as u32;
        assert_eq!(data.responses.len(), 3 * per_probe as usize);
        for r in &data.responses {
            assert!(r.sample < per_probe, "{}", r.sample);
            assert_eq!(r.text, format!("answer {} {}", r.probe, r.sample));
            let refused = r.sample % 3 == 0;
            assert_eq!(
                r.compliance.as_deref(),
                Some(if refused { "refused" } else { "candid" })
            );
            assert_eq!(r.rule.as_deref(), Some(if refused { "R2" } else { "R8" }));
        }
    }
}
