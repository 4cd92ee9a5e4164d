//! The runner: sends every request to its target with bounded concurrency per target, and hands
//! each response to a [`Sink`] as soon as it arrives.
//!
//! The sink runs on a thread of its own and receives responses in small batches (whatever has
//! arrived while it was writing the last one), so a store can commit one transaction per batch:
//! durable within milliseconds of arrival without paying a commit per response at high rates.
//! If the sink fails, no new request is sent; what was stored stays stored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candor_core::{Request, Response};
use candor_target::Target;
use futures::StreamExt;
use tokio::sync::mpsc;

/// One request for one target (an index into the runner's target list).
#[derive(Debug, Clone)]
pub struct Job {
    pub target: usize,
    pub request: Request,
}

/// A request with the response it got.
#[derive(Debug, Clone)]
pub struct Completed {
    pub target: usize,
    pub request: Request,
    pub response: Response,
}

/// Where responses go as they arrive. `accept` must have persisted the batch when it returns.
pub trait Sink: Send + 'static {
    fn accept(&mut self, batch: &[Completed]) -> Result<(), String>;
}

/// Told about every batch the sink has accepted.
pub trait Progress: Send + Sync {
    fn advance(&self, batch: &[Completed]);
}

/// A progress that says nothing.
pub struct Silent;

impl Progress for Silent {
    fn advance(&self, _: &[Completed]) {}
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("stopped: could not store a response: {0}")]
    Sink(String),
    #[error("a request task failed: {0}")]
    Task(String),
}

/// Batches larger than this are split, to keep each transaction short.
const MAX_BATCH: usize = 512;

pub struct Runner {
    /// Requests in flight per target.
    pub concurrency: usize,
}

impl Runner {
    /// Runs every job; returns the sink back and how many responses it accepted.
    pub async fn run<S: Sink>(
        &self,
        targets: &[Arc<dyn Target>],
        jobs: Vec<Job>,
        sink: S,
        progress: Arc<dyn Progress>,
    ) -> (S, Result<usize, RunError>) {
        let (tx, rx) = mpsc::unbounded_channel::<Completed>();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || write_loop(sink, rx, &stop, progress.as_ref()))
        };

        let mut per_target: Vec<Vec<Job>> = vec![Vec::new(); targets.len()];
        for job in jobs {
            per_target[job.target].push(job);
        }
        let concurrency = self.concurrency.max(1);
        let mut tasks = Vec::with_capacity(targets.len());
        for (target, jobs) in targets.iter().cloned().zip(per_target) {
            let tx = tx.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                futures::stream::iter(jobs)
                    .map(|job| {
                        let target = target.clone();
                        let stop = stop.clone();
                        async move {
                            if stop.load(Ordering::Relaxed) {
                                return None;
                            }
                            let response = target.send(&job.request).await;
                            Some(Completed {
                                target: job.target,
                                request: job.request,
                                response,
                            })
                        }
                    })
                    .buffer_unordered(concurrency)
                    .for_each(|done| {
                        if let Some(done) = done {
                            // A closed channel means the writer stopped; `stop` is set then.
                            let _ = tx.send(done);
                        }
                        futures::future::ready(())
                    })
                    .await;
            }));
        }
        drop(tx);
        let mut task_error = None;
        for task in tasks {
            if let Err(e) = task.await {
                task_error.get_or_insert(RunError::Task(e.to_string()));
            }
        }
        let (sink, written) = writer.join().expect("the writer thread does not panic");
        let result = match (written, task_error) {
            (Err(e), _) => Err(RunError::Sink(e)),
            (Ok(_), Some(e)) => Err(e),
            (Ok(n), None) => Ok(n),
        };
        (sink, result)
    }
}

fn write_loop<S: Sink>(
    mut sink: S,
    mut rx: mpsc::UnboundedReceiver<Completed>,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> (S, Result<usize, String>) {
    let mut written = 0;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if let Err(e) = sink.accept(&batch) {
            stop.store(true, Ordering::Relaxed);
            rx.close();
            return (sink, Err(e));
        }
        written += batch.len();
        progress.advance(&batch);
        batch.clear();
    }
    (sink, Ok(written))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use candor_core::{Outcome, SamplingParams};
    use candor_target::Provenance;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Answers after a delay and records the highest number of requests in flight at once.
    struct Slow {
        provenance: Provenance,
        in_flight: AtomicUsize,
        peak: AtomicUsize,
    }

    #[async_trait]
    impl Target for Slow {
        fn provenance(&self) -> &Provenance {
            &self.provenance
        }
        async fn send(&self, request: &Request) -> Response {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let mut r = Response::failed(Outcome::Ok, "", 5.0);
            r.text = request.prompt.clone();
            r
        }
    }

    fn slow() -> Arc<Slow> {
        Arc::new(Slow {
            provenance: Provenance {
                spec: "test/slow".into(),
                provider: "test".into(),
                model: "slow".into(),
                base_url: String::new(),
                api_key_env: None,
            },
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    fn jobs(targets: usize, n: usize) -> Vec<Job> {
        (0..targets)
            .flat_map(|t| {
                (0..n).map(move |i| Job {
                    target: t,
                    request: Request {
                        probe_id: format!("p{i}"),
                        lang: "en".into(),
                        sample: 0,
                        system: None,
                        prompt: format!("prompt {i}"),
                        params: SamplingParams::default(),
                    },
                })
            })
            .collect()
    }

    #[derive(Default)]
    struct Collect {
        seen: Vec<(usize, String)>,
        fail_after: Option<usize>,
    }

    impl Sink for Collect {
        fn accept(&mut self, batch: &[Completed]) -> Result<(), String> {
            if let Some(limit) = self.fail_after {
                if self.seen.len() + batch.len() > limit {
                    return Err("disk full".into());
                }
            }
            self.seen
                .extend(batch.iter().map(|c| (c.target, c.response.text.clone())));
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_job_reaches_the_sink_once_with_bounded_concurrency() {
        let (a, b) = (slow(), slow());
        let targets: Vec<Arc<dyn Target>> = vec![a.clone(), b.clone()];
        let runner = Runner { concurrency: 4 };
        let (sink, result) = runner
            .run(&targets, jobs(2, 50), Collect::default(), Arc::new(Silent))
            .await;
        assert_eq!(result.unwrap(), 100);
        let mut seen = sink.seen.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 100);
        assert_eq!(a.peak.load(Ordering::SeqCst), 4);
        assert_eq!(b.peak.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_failing_sink_stops_the_run_and_keeps_what_it_stored() {
        let targets: Vec<Arc<dyn Target>> = vec![slow()];
        let runner = Runner { concurrency: 2 };
        let sink = Collect {
            fail_after: Some(10),
            ..Collect::default()
        };
        let (sink, result) = runner
            .run(&targets, jobs(1, 200), sink, Arc::new(Silent))
            .await;
        assert!(matches!(result, Err(RunError::Sink(ref e)) if e == "disk full"));
        assert!(sink.seen.len() <= 10 && !sink.seen.is_empty());
    }
}
