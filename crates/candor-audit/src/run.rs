//! A run: suite -> runner -> targets -> store -> judge -> store.
//!
//! Before anything is asked, what a store already holds is reused: when continuing a run, the
//! run's own responses (only the missing ones are asked), and otherwise the cache, which copies
//! any earlier answer to the very same request (same target, prompt, language, sample and
//! settings) into the new run. A rerun after a crash therefore asks only what is missing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use candor_core::Suite;
use candor_judge::Judge;
use candor_runner::{Completed, Job, Lane, Progress, RetryPolicy, Runner, Sink};
use candor_store::{NewResponse, Store};

use crate::judging::judge_run;
use crate::plan::{plan, RunSettings};
use crate::Error;

/// An audit ready to run: every target built and answering, every request planned.
pub struct Audit {
    settings: RunSettings,
    suite: Suite,
    /// The stored run to continue, if any.
    existing: Option<i64>,
    lanes: Vec<Lane>,
    jobs: Vec<Job>,
    runtime: tokio::runtime::Runtime,
}

/// What a run is about to ask, before it asks: for the user to see.
#[derive(Debug, Clone)]
pub struct Planned {
    pub run_id: i64,
    pub probes: usize,
    pub languages: usize,
    pub samples: u32,
    pub targets: usize,
    /// Requests the audit asks in all.
    pub total: usize,
    /// Already in the run being continued.
    pub already: usize,
    /// Copied from earlier runs by the cache.
    pub from_cache: usize,
    /// Left to ask the targets.
    pub to_ask: usize,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub planned: Planned,
    /// Responses stored by this invocation (asked, not cached).
    pub stored: usize,
    pub asked_secs: f64,
    /// Answers the judge read.
    pub judged: usize,
    /// Targets whose every request failed: the run has failed, and says why for each.
    pub failed_targets: Vec<String>,
}

impl Audit {
    /// Builds every target, plans every request and checks that each target answers, before
    /// anything is stored.
    pub fn prepare(
        settings: RunSettings,
        suite: Suite,
        existing: Option<i64>,
    ) -> Result<Audit, Error> {
        let lanes: Vec<Lane> = settings
            .targets
            .iter()
            .map(|t| t.lane(settings.concurrency))
            .collect::<Result<_, _>>()?;
        let jobs = plan(&suite, &settings);
        if jobs.is_empty() {
            return Err(Error::usage(format!(
                "suite {} has no probe in {}",
                suite.id,
                settings.languages.join(", ")
            )));
        }
        let runtime = tokio::runtime::Runtime::new().map_err(Error::run)?;
        runtime.block_on(preflight(&lanes))?;
        Ok(Audit {
            settings,
            suite,
            existing,
            lanes,
            jobs,
            runtime,
        })
    }

    pub fn suite(&self) -> &Suite {
        &self.suite
    }

    /// Asks what the store does not hold yet, storing every response as it arrives, then
    /// judges the run with `judge`. `progress` is told the plan and returns what follows the
    /// answers as they come. The store comes back with the outcome.
    pub fn run(
        self,
        mut store: Box<dyn Store>,
        judge: &dyn Judge,
        use_cache: bool,
        progress: &dyn Fn(&Planned) -> Arc<dyn Progress>,
    ) -> Result<(Box<dyn Store>, RunOutcome), Error> {
        let Audit {
            settings,
            suite,
            existing,
            lanes,
            mut jobs,
            runtime,
        } = self;
        let specs: Vec<String> = lanes
            .iter()
            .map(|l| l.target.provenance().spec.clone())
            .collect();
        let (run_id, target_ids) = match existing {
            Some(run_id) => {
                let ids: Vec<i64> = store
                    .targets(run_id)
                    .map_err(Error::run)?
                    .into_iter()
                    .map(|t| t.id)
                    .collect();
                if ids.len() != lanes.len() {
                    return Err(Error::usage(format!(
                        "run {run_id} has {} targets stored, its settings name {}",
                        ids.len(),
                        lanes.len()
                    )));
                }
                (run_id, ids)
            }
            None => {
                let stored = serde_json::to_value(&settings).expect("settings serialise");
                let run_id = store.create_run(&suite, &stored).map_err(Error::run)?;
                let mut ids = Vec::with_capacity(lanes.len());
                for (position, lane) in lanes.iter().enumerate() {
                    let provenance = serde_json::to_value(lane.target.provenance())
                        .expect("provenance serialises");
                    ids.push(
                        store
                            .add_target(run_id, position, &provenance)
                            .map_err(Error::run)?,
                    );
                }
                store.put_probes(&suite).map_err(Error::run)?;
                (run_id, ids)
            }
        };

        let total = jobs.len();
        let mut already = 0;
        if existing.is_some() {
            let answered = store.answered(run_id).map_err(Error::run)?;
            jobs.retain(|j| {
                let key = (
                    target_ids[j.target],
                    j.request.probe_id.clone(),
                    j.request.lang.clone(),
                    j.request.sample,
                );
                !answered.contains(&key)
            });
            already = total - jobs.len();
        }
        let mut from_cache = 0;
        if use_cache {
            let mut copies = Vec::new();
            let mut keep = Vec::with_capacity(jobs.len());
            for job in jobs {
                let (json, hash) = job.request.keyed(&specs[job.target]);
                match store.cached(&hash).map_err(Error::run)? {
                    Some(from) => copies.push((target_ids[job.target], json, from)),
                    None => keep.push(job),
                }
            }
            let rows: Vec<(i64, &str, i64)> = copies
                .iter()
                .map(|(t, j, f)| (*t, j.as_str(), *f))
                .collect();
            store.copy_cached(run_id, &rows).map_err(Error::run)?;
            from_cache = copies.len();
            jobs = keep;
        }
        let planned = Planned {
            run_id,
            probes: suite.probes.len(),
            languages: settings.languages.len(),
            samples: settings.samples,
            targets: lanes.len(),
            total,
            already,
            from_cache,
            to_ask: jobs.len(),
        };
        let reporter = progress(&planned);
        let sink = StoreSink {
            store,
            run_id,
            target_ids,
            specs,
        };
        let runner = Runner {
            retry: RetryPolicy {
                max_attempts: settings.retries.saturating_add(1),
                base_delay: Duration::from_secs_f64(settings.retry_delay.clamp(0.0, 3600.0)),
                ..RetryPolicy::default()
            },
        };
        let started = Instant::now();
        let (sink, result) = runtime.block_on(runner.run(&lanes, jobs, sink, reporter));
        let asked_secs = started.elapsed().as_secs_f64();
        let StoreSink {
            mut store,
            target_ids,
            ..
        } = sink;
        let stored = match result {
            Ok(n) => n,
            Err(e) => {
                let _ = store.finish_run(run_id, "failed");
                return Err(Error::run(format!(
                    "run {run_id}: {e}; the responses received so far stay in the store"
                )));
            }
        };
        let judged = judge_run(store.as_mut(), run_id, judge, &suite)?;
        let failed = failed_targets(store.as_ref(), run_id, &lanes, &target_ids)?;
        let status = if failed.is_empty() { "done" } else { "failed" };
        store.finish_run(run_id, status).map_err(Error::run)?;
        Ok((
            store,
            RunOutcome {
                planned,
                stored,
                asked_secs,
                judged,
                failed_targets: failed,
            },
        ))
    }
}

async fn preflight(lanes: &[Lane]) -> Result<(), Error> {
    let checks = lanes.iter().map(|l| l.target.preflight());
    for result in futures::future::join_all(checks).await {
        result.map_err(Error::run)?;
    }
    Ok(())
}

/// Writes each batch of responses to the store in one transaction as it arrives.
struct StoreSink {
    store: Box<dyn Store>,
    run_id: i64,
    target_ids: Vec<i64>,
    /// Target specs, which key the request hashes.
    specs: Vec<String>,
}

impl Sink for StoreSink {
    fn accept(&mut self, batch: &[Completed]) -> Result<(), String> {
        let keys: Vec<(String, String)> = batch
            .iter()
            .map(|c| c.request.keyed(&self.specs[c.target]))
            .collect();
        let rows: Vec<NewResponse<'_>> = batch
            .iter()
            .zip(&keys)
            .map(|(c, (json, hash))| NewResponse {
                run_id: self.run_id,
                target_id: self.target_ids[c.target],
                request: &c.request,
                request_json: json,
                request_hash: hash,
                response: &c.response,
            })
            .collect();
        self.store
            .insert_responses(&rows)
            .map_err(|e| e.to_string())
    }
}

/// Targets whose every request failed in transport or protocol: the audit says nothing about
/// them, so the run has failed.
fn failed_targets(
    store: &dyn Store,
    run_id: i64,
    lanes: &[Lane],
    target_ids: &[i64],
) -> Result<Vec<String>, Error> {
    let counts = store.error_counts(run_id).map_err(Error::run)?;
    let mut failed = Vec::new();
    for (lane, id) in lanes.iter().zip(target_ids) {
        if let Some(c) = counts.get(id) {
            if c.responses > 0 && c.responses == c.errors {
                failed.push(format!(
                    "target {}: all {} requests failed; first error: {}",
                    lane.target.provenance().spec,
                    c.responses,
                    c.first.as_deref().unwrap_or("unknown error")
                ));
            }
        }
    }
    Ok(failed)
}
