//! A run: suite -> runner -> targets -> store -> judge -> store.
//!
//! Before anything is asked, what a store already holds is reused: when continuing a run, the
//! run's own responses (only the missing ones are asked), and otherwise the cache, which copies
//! any earlier answer to the very same request (same target, prompt, language, sample and
//! settings) into the new run. A rerun after a crash therefore asks only what is missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candor_core::Suite;
use candor_judge::Judge;
use candor_runner::{Completed, Job, Lane, Progress, RetryPolicy, Runner, Sink};
use candor_store::{NewResponse, Store, WorkItem};

use crate::judging::judge_run;
use crate::plan::{plan, RunSettings};
use crate::Error;

/// An audit ready to run: every target built and answering, every request planned.
pub struct Audit {
    pub(crate) settings: RunSettings,
    pub(crate) suite: Suite,
    /// The stored run to continue, if any.
    pub(crate) existing: Option<i64>,
    pub(crate) lanes: Vec<Lane>,
    pub(crate) jobs: Vec<Job>,
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
        let audit = Audit::plan(settings, suite, existing)?;
        audit.runtime.block_on(preflight(&audit.lanes))?;
        Ok(audit)
    }

    /// As `prepare`, without asking the targets anything: for requests that another system
    /// sends (a provider's batch API).
    pub fn plan(
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
    /// Asks what the store does not hold yet, storing every response as it arrives, then
    /// judges the run with `judge`. `progress` is told the plan and returns what follows the
    /// answers as they come. The store comes back with the outcome.
    pub fn run(
        mut self,
        mut store: Box<dyn Store>,
        judge: &dyn Judge,
        use_cache: bool,
        progress: &dyn Fn(&Planned) -> Arc<dyn Progress>,
    ) -> Result<(Box<dyn Store>, RunOutcome), Error> {
        let begun = self.begin(store.as_mut(), use_cache)?;
        let Audit {
            settings,
            suite,
            lanes,
            runtime,
            ..
        } = self;
        let Begun {
            run_id,
            target_ids,
            specs,
            jobs,
            planned,
        } = begun;
        let reporter = progress(&planned);
        let sink = StoreSink {
            store,
            run_id,
            target_ids,
            specs,
            shared: None,
            stored: 0,
        };
        let started = Instant::now();
        let (sink, result) = runtime.block_on(runner(&settings).run(&lanes, jobs, sink, reporter));
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

    /// Records the run and what it has left to ask as shared work, and asks nothing: workers
    /// (`work`) on any machine take it from the store.
    pub fn enqueue(mut self, store: &mut dyn Store, use_cache: bool) -> Result<Planned, Error> {
        let begun = self.begin(store, use_cache)?;
        let items: Vec<WorkItem> = begun
            .jobs
            .iter()
            .map(|j| work_item(begun.target_ids[j.target], &j.request))
            .collect();
        store.add_work(begun.run_id, &items).map_err(Error::run)?;
        Ok(begun.planned)
    }

    /// Takes the shared work of the run this audit continues, a lease at a time, until none is
    /// left; the worker that finds the run complete judges it and marks it done. Any number of
    /// workers may run at once, on any machines that reach the store.
    pub fn work(
        self,
        store: Box<dyn Store>,
        judge: &dyn Judge,
        options: &WorkOptions,
        progress: &dyn Fn(&WorkProgress),
    ) -> Result<(Box<dyn Store>, WorkOutcome), Error> {
        let Some(run_id) = self.existing else {
            return Err(Error::usage("a worker needs the run it works on"));
        };
        let target_ids = self.target_ids(store.as_ref(), run_id)?;
        let Audit {
            settings,
            suite,
            lanes,
            jobs,
            runtime,
            ..
        } = self;
        let specs = target_specs(&lanes);
        let mut planned: HashMap<WorkItem, Job> = jobs
            .into_iter()
            .map(|j| (work_item(target_ids[j.target], &j.request), j))
            .collect();
        let runner = runner(&settings);
        let mut outcome = WorkOutcome::default();
        let mut sink = StoreSink {
            store,
            run_id,
            target_ids,
            specs,
            shared: Some((options.owner.clone(), options.lease)),
            stored: 0,
        };
        loop {
            let claimed = sink
                .store
                .claim_work(run_id, &options.owner, options.batch, options.lease)
                .map_err(Error::run)?;
            let left = sink.store.work_left(run_id).map_err(Error::run)?;
            progress(&WorkProgress {
                run_id,
                claimed: claimed.len(),
                stored_by_me: outcome.stored,
                left,
            });
            if claimed.is_empty() {
                if left.pending + left.leased == 0 {
                    break;
                }
                // Others hold what is left: wait for them to finish it, or for a dead
                // worker's lease to run out.
                std::thread::sleep(options.poll);
                continue;
            }
            let mut batch = Vec::with_capacity(claimed.len());
            for item in claimed {
                match planned.remove(&item) {
                    Some(job) => batch.push(job),
                    None => {
                        return Err(Error::run(format!(
                            "run {run_id}: the store holds work this worker's plan lacks ({} {} sample {} of target row {}): the run's settings or suite differ here",
                            item.probe_id, item.lang, item.sample, item.target_id
                        )))
                    }
                }
            }
            outcome.claimed += batch.len();
            let (back, result) =
                runtime.block_on(runner.run(&lanes, batch, sink, Arc::new(candor_runner::Silent)));
            sink = back;
            result.map_err(|e| {
                Error::run(format!(
                    "run {run_id}: {e}; the responses received so far stay in the store, and the rest return to the other workers when this one's lease runs out"
                ))
            })?;
            outcome.stored = sink.stored;
        }
        let mut store = sink.store;
        outcome.judged = judge_run(store.as_mut(), run_id, judge, &suite)?;
        let failed = failed_targets(store.as_ref(), run_id, &lanes, &sink.target_ids)?;
        let status = if failed.is_empty() { "done" } else { "failed" };
        store.finish_run(run_id, status).map_err(Error::run)?;
        outcome.failed_targets = failed;
        Ok((store, outcome))
    }

    pub(crate) fn target_ids(&self, store: &dyn Store, run_id: i64) -> Result<Vec<i64>, Error> {
        let ids: Vec<i64> = store
            .targets(run_id)
            .map_err(Error::run)?
            .into_iter()
            .map(|t| t.id)
            .collect();
        if ids.len() != self.lanes.len() {
            return Err(Error::usage(format!(
                "run {run_id} has {} targets stored, its settings name {}",
                ids.len(),
                self.lanes.len()
            )));
        }
        Ok(ids)
    }

    /// Creates the run (or finds the one continued), drops what it holds already and copies
    /// what the cache has: what is left is what the targets must be asked.
    /// Takes the audit's planned requests.
    pub(crate) fn begin(&mut self, store: &mut dyn Store, use_cache: bool) -> Result<Begun, Error> {
        let mut jobs = std::mem::take(&mut self.jobs);
        let (settings, suite, existing, lanes) =
            (&self.settings, &self.suite, self.existing, &self.lanes);
        let specs = target_specs(lanes);
        let (run_id, target_ids) = match existing {
            Some(run_id) => (run_id, self.target_ids(store, run_id)?),
            None => {
                let stored = serde_json::to_value(settings).expect("settings serialise");
                let run_id = store.create_run(suite, &stored).map_err(Error::run)?;
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
                store.put_probes(suite).map_err(Error::run)?;
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
            // Filtered in place: a second list as long as the plan would double the memory.
            let mut copies = Vec::new();
            let mut failed = None;
            jobs.retain(|job| {
                if failed.is_some() {
                    return true;
                }
                let (json, hash) = job.request.keyed(&specs[job.target]);
                match store.cached(&hash) {
                    Ok(Some(from)) => {
                        copies.push((target_ids[job.target], json, from));
                        false
                    }
                    Ok(None) => true,
                    Err(e) => {
                        failed = Some(e);
                        true
                    }
                }
            });
            if let Some(e) = failed {
                return Err(Error::run(e));
            }
            let rows: Vec<(i64, &str, i64)> = copies
                .iter()
                .map(|(t, j, f)| (*t, j.as_str(), *f))
                .collect();
            store.copy_cached(run_id, &rows).map_err(Error::run)?;
            from_cache = copies.len();
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
        Ok(Begun {
            run_id,
            target_ids,
            specs,
            jobs,
            planned,
        })
    }
}

/// A run begun: its id, its targets' row ids and specs, and what is left to ask.
pub(crate) struct Begun {
    pub(crate) run_id: i64,
    pub(crate) target_ids: Vec<i64>,
    pub(crate) specs: Vec<String>,
    pub(crate) jobs: Vec<Job>,
    pub(crate) planned: Planned,
}

/// How a worker takes its share.
#[derive(Debug, Clone)]
pub struct WorkOptions {
    /// Who holds a lease: unique per worker process.
    pub owner: String,
    /// Requests taken at a time.
    pub batch: usize,
    /// How long a taken request stays this worker's; past it, the request returns to others.
    /// Longer than a batch takes to ask.
    pub lease: Duration,
    /// How often to look again while others hold what is left.
    pub poll: Duration,
}

/// What a worker sees each time it takes work: its own part and the whole run's.
#[derive(Debug, Clone)]
pub struct WorkProgress {
    pub run_id: i64,
    /// Requests just taken.
    pub claimed: usize,
    /// Responses this worker has stored.
    pub stored_by_me: usize,
    /// The whole run's work left.
    pub left: candor_store::WorkLeft,
}

/// What a worker did.
#[derive(Debug, Clone, Default)]
pub struct WorkOutcome {
    pub claimed: usize,
    pub stored: usize,
    /// Answers judged when this worker found the run complete.
    pub judged: usize,
    pub failed_targets: Vec<String>,
}

pub(crate) fn work_item(target_id: i64, request: &candor_core::Request) -> WorkItem {
    WorkItem {
        target_id,
        probe_id: request.probe_id.clone(),
        lang: request.lang.clone(),
        sample: request.sample,
    }
}

pub(crate) fn target_specs(lanes: &[Lane]) -> Vec<String> {
    lanes
        .iter()
        .map(|l| l.target.provenance().spec.clone())
        .collect()
}

fn runner(settings: &RunSettings) -> Runner {
    Runner {
        retry: RetryPolicy {
            max_attempts: settings.retries.saturating_add(1),
            base_delay: Duration::from_secs_f64(settings.retry_delay.clamp(0.0, 3600.0)),
            ..RetryPolicy::default()
        },
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
    /// Shared work, with this worker's name and lease: each response retires its work item,
    /// one another worker stored first is not stored again, and the leases on what is still
    /// in flight are renewed while it runs.
    shared: Option<(String, Duration)>,
    /// Responses stored.
    stored: usize,
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
        if self.shared.is_some() {
            self.stored += self.store.complete_work(&rows).map_err(|e| e.to_string())?;
        } else {
            self.store
                .insert_responses(&rows)
                .map_err(|e| e.to_string())?;
            self.stored += rows.len();
        }
        Ok(())
    }

    /// A third of the lease: two renewals can fail or come late before another worker may take
    /// the work over.
    fn tick_every(&self) -> Option<Duration> {
        self.shared.as_ref().map(|(_, lease)| *lease / 3)
    }

    fn tick(&mut self) -> Result<(), String> {
        let Some((owner, lease)) = &self.shared else {
            return Ok(());
        };
        self.store
            .renew_leases(self.run_id, owner, *lease)
            .map(|_| ())
            .map_err(|e| format!("could not renew this worker's leases: {e}"))
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
