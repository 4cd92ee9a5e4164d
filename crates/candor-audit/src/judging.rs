//! Judging: a judge built from its spec, and a stored run judged page by page.

use std::collections::HashMap;
use std::path::Path;

use candor_core::{Probe, Suite, Verdict};
use candor_judge::learned::{LearnedJudge, LearnedModel};
use candor_judge::llm::{EnsembleJudge, LlmJudge, PanelJudge, VerdictCache};
use candor_judge::{Exchange, Judge, RulesJudge};
use candor_store::Store;

use crate::Error;

/// Which judge decides, as the user named it: `learned` (the default), `learned:FILE`,
/// `rules`, `llm:TARGET`, `ensemble:TARGET`; several make a panel.
#[derive(Debug, Clone, Default)]
pub struct JudgeSpec {
    pub specs: Vec<String>,
    /// Questions in flight to an LLM judge.
    pub concurrency: usize,
}

/// LLM judges' verdicts kept in the store (its own connection; WAL lets both write).
struct StoreCache(std::sync::Mutex<Box<dyn candor_store::Store>>);

impl VerdictCache for StoreCache {
    fn get(&self, key: &str) -> Option<candor_core::Verdict> {
        let store = self.0.lock().ok()?;
        store.cached_judgement(key).ok().flatten()
    }

    fn put(&self, key: &str, verdict: &candor_core::Verdict) {
        if let Ok(store) = self.0.lock() {
            if let Err(e) = store.cache_judgement(key, verdict) {
                tracing::warn!("judge cache: {e}");
            }
        }
    }
}

impl JudgeSpec {
    /// The judge chosen, reading key facts and markers from `suite`; LLM judges keep their
    /// verdicts in the store at `cache`, where given.
    pub fn build(&self, suite: &Suite, cache: Option<&Path>) -> Result<Box<dyn Judge>, Error> {
        let one = |spec: &str| -> Result<Box<dyn Judge>, Error> {
            let rules = RulesJudge::new().with_suite(suite);
            let model = |target: &str| -> Result<Box<dyn Judge>, Error> {
                let lane = crate::targets::TargetConfig::new(target.to_string()).lane(1)?;
                let mut judge = LlmJudge::new(
                    lane.target,
                    RulesJudge::new().with_suite(suite),
                    self.concurrency,
                )
                .map_err(Error::run)?;
                if let Some(path) = cache {
                    let store = candor_store::open(path).map_err(Error::run)?;
                    judge = judge.with_cache(Box::new(StoreCache(std::sync::Mutex::new(store))));
                }
                Ok(Box::new(judge))
            };
            if spec == "rules" {
                Ok(Box::new(rules))
            } else if spec == "learned" {
                Ok(Box::new(LearnedJudge::built_in(rules)))
            } else if let Some(path) = spec.strip_prefix("learned:") {
                Ok(Box::new(LearnedJudge::new(
                    rules,
                    read_model(Path::new(path))?,
                )))
            } else if let Some(target) = spec.strip_prefix("llm:") {
                model(target)
            } else if let Some(target) = spec.strip_prefix("ensemble:") {
                Ok(Box::new(EnsembleJudge::new(rules, model(target)?)))
            } else {
                Err(Error::usage(format!(
                    "unknown judge '{spec}': use rules, learned, learned:MODEL_FILE, llm:PROVIDER/MODEL[@URL] or ensemble:PROVIDER/MODEL[@URL]"
                )))
            }
        };
        match self.specs.as_slice() {
            [] => Ok(Box::new(LearnedJudge::built_in(
                RulesJudge::new().with_suite(suite),
            ))),
            [spec] => one(spec),
            many => Ok(Box::new(PanelJudge::new(
                many.iter().map(|s| one(s)).collect::<Result<_, _>>()?,
            ))),
        }
    }
}

/// A learned judge's model file, as `candor judge train` writes it.
pub fn read_model(path: &Path) -> Result<LearnedModel, Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::usage(format!("cannot read model {}: {e}", path.display())))?;
    LearnedModel::from_bytes(&bytes).map_err(|e| Error::usage(format!("{}: {e}", path.display())))
}

/// Judges every model answer of a run (`ok`, and `truncated` on the text received), a page at a
/// time; other outcomes are not model answers and get no verdict. Returns how many were judged.
pub fn judge_run(
    store: &mut dyn Store,
    run_id: i64,
    judge: &dyn Judge,
    suite: &Suite,
) -> Result<usize, Error> {
    const PAGE: i64 = 5_000;
    let probes: HashMap<&str, &Probe> = suite.probes.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut after = 0;
    let mut judged = 0;
    loop {
        let page = store
            .responses_after(run_id, after, PAGE)
            .map_err(Error::run)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let answers: Vec<_> = page
            .iter()
            .filter(|r| r.response.outcome.is_answer())
            .collect();
        let exchanges: Vec<Exchange<'_>> = answers
            .iter()
            .map(|r| Exchange {
                probe: probes.get(r.probe_id.as_str()).copied(),
                lang: &r.lang,
                prompt: &r.prompt,
                response: &r.response,
            })
            .collect();
        let verdicts: Vec<(i64, Verdict)> = answers
            .iter()
            .map(|r| r.id)
            .zip(judge.judge_batch(&exchanges))
            .collect();
        store.insert_verdicts(&verdicts).map_err(Error::run)?;
        judged += verdicts.len();
    }
    Ok(judged)
}
