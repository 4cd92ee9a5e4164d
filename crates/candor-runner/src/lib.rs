//! The runner: sends every request to its target with bounded concurrency per target, and hands
//! each response to a [`Sink`] as soon as it arrives.
//!
//! The sink runs on a thread of its own and receives responses in small batches (whatever has
//! arrived while it was writing the last one), so a store can commit one transaction per batch:
//! durable within milliseconds of arrival without paying a commit per response at high rates.
//! If the sink fails, no new request is sent; what was stored stays stored.
//!
//! Retries (with backoff, jitter and the provider's `Retry-After`) and rate limits live here,
//! not in the targets, so that every provider gets the same behaviour.

mod limits;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candor_core::{Request, Response};
use candor_target::Target;
use futures::StreamExt;
use tokio::sync::mpsc;

pub use limits::{Bucket, RateLimits, RetryPolicy};

/// One target with its own concurrency and limits.
#[derive(Clone)]
pub struct Lane {
    pub target: Arc<dyn Target>,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub limits: RateLimits,
}

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

    /// How often the sink wants [`Sink::tick`] while requests are in flight; none: never.
    fn tick_every(&self) -> Option<Duration> {
        None
    }

    /// Called about every [`Sink::tick_every`] while the run lasts, between batches: a sink
    /// that holds leases on shared work renews them here. An error stops the run as a failed
    /// batch does.
    fn tick(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// What the request tasks tell the writer: an answer, or that it is time to tick.
// Answers travel unboxed, as they did before ticks; a box each would cost an allocation per
// answer to save space on the rare tick.
#[allow(clippy::large_enum_variant)]
enum Event {
    Done(Completed),
    Tick,
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
    pub retry: RetryPolicy,
}

impl Runner {
    /// Runs every job; returns the sink back and how many responses it accepted.
    pub async fn run<S: Sink>(
        &self,
        lanes: &[Lane],
        jobs: Vec<Job>,
        sink: S,
        progress: Arc<dyn Progress>,
    ) -> (S, Result<usize, RunError>) {
        let (tx, rx) = mpsc::unbounded_channel::<Event>();
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = sink.tick_every().map(|every| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                interval.tick().await;
                loop {
                    interval.tick().await;
                    if tx.send(Event::Tick).is_err() {
                        break;
                    }
                }
            })
        });
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || write_loop(sink, rx, &stop, progress.as_ref()))
        };

        let mut per_lane: Vec<Vec<Job>> = vec![Vec::new(); lanes.len()];
        for job in jobs {
            per_lane[job.target].push(job);
        }
        let mut tasks = Vec::with_capacity(lanes.len());
        for (lane, jobs) in lanes.iter().cloned().zip(per_lane) {
            let tx = tx.clone();
            let stop = stop.clone();
            let retry = self.retry;
            let limiter = Arc::new(lane.limits.limiter());
            tasks.push(tokio::spawn(async move {
                futures::stream::iter(jobs)
                    .map(|job| {
                        let target = lane.target.clone();
                        let stop = stop.clone();
                        let limiter = limiter.clone();
                        async move {
                            if stop.load(Ordering::Relaxed) {
                                return None;
                            }
                            let response =
                                ask(target.as_ref(), &job.request, &retry, &limiter, &stop).await;
                            Some(Completed {
                                target: job.target,
                                request: job.request,
                                response,
                            })
                        }
                    })
                    .buffer_unordered(lane.concurrency.max(1))
                    .for_each(|done| {
                        if let Some(done) = done {
                            // A closed channel means the writer stopped; `stop` is set then.
                            let _ = tx.send(Event::Done(done));
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
        // The ticker holds the last sender: the writer ends once it is gone.
        if let Some(ticker) = ticker {
            ticker.abort();
            let _ = ticker.await;
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

/// Sends one request, within the lane's rate limits, retrying what may succeed on a second
/// try. Moderation outcomes and client errors are final.
async fn ask(
    target: &dyn Target,
    request: &Request,
    retry: &RetryPolicy,
    limiter: &limits::Limiter,
    stop: &AtomicBool,
) -> Response {
    let cost = limits::estimate_tokens(request);
    let mut failures = 0;
    loop {
        limiter.acquire(cost).await;
        let mut response = target.send(request).await;
        response.attempts = failures + 1;
        let again = target.retries()
            && retry.retryable(&response)
            && failures + 1 < retry.max_attempts
            && !stop.load(Ordering::Relaxed);
        if !again {
            return response;
        }
        failures += 1;
        let asked = response.retry_after_ms.map(Duration::from_millis);
        tokio::time::sleep(retry.delay(failures, asked, fastrand::f64())).await;
    }
}

fn write_loop<S: Sink>(
    mut sink: S,
    mut rx: mpsc::UnboundedReceiver<Event>,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> (S, Result<usize, String>) {
    let mut written = 0;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let fail = |rx: &mut mpsc::UnboundedReceiver<Event>| {
        stop.store(true, Ordering::Relaxed);
        rx.close();
    };
    while let Some(first) = rx.blocking_recv() {
        let mut ticked = false;
        match first {
            Event::Done(done) => batch.push(done),
            Event::Tick => ticked = true,
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Event::Done(next)) => batch.push(next),
                Ok(Event::Tick) => ticked = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            if let Err(e) = sink.accept(&batch) {
                fail(&mut rx);
                return (sink, Err(e));
            }
            written += batch.len();
            progress.advance(&batch);
            batch.clear();
        }
        if ticked {
            if let Err(e) = sink.tick() {
                fail(&mut rx);
                return (sink, Err(e));
            }
        }
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
                base_urls: Vec::new(),
                stream: false,
                extra_body: Default::default(),
                api_key_env: None,
                candor_version: "test",
                engine: None,
            },
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    fn lane(target: Arc<Slow>, concurrency: usize) -> Lane {
        Lane {
            target,
            concurrency,
            limits: RateLimits::default(),
        }
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
        every: Option<Duration>,
        ticks: usize,
        tick_fails: bool,
    }

    impl Sink for Collect {
        fn tick_every(&self) -> Option<Duration> {
            self.every
        }
        fn tick(&mut self) -> Result<(), String> {
            self.ticks += 1;
            match self.tick_fails {
                true => Err("lease lost".into()),
                false => Ok(()),
            }
        }

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
        let lanes = vec![lane(a.clone(), 4), lane(b.clone(), 3)];
        let runner = Runner {
            retry: RetryPolicy::default(),
        };
        let (sink, result) = runner
            .run(&lanes, jobs(2, 50), Collect::default(), Arc::new(Silent))
            .await;
        assert_eq!(result.unwrap(), 100);
        let mut seen = sink.seen.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 100);
        assert_eq!(a.peak.load(Ordering::SeqCst), 4);
        assert_eq!(b.peak.load(Ordering::SeqCst), 3);
    }

    /// Fails with a scripted list of (status, Retry-After ms) before it answers.
    struct Flaky {
        provenance: Provenance,
        failures: std::sync::Mutex<Vec<(u16, Option<u64>)>>,
        sent_at: std::sync::Mutex<Vec<tokio::time::Instant>>,
    }

    #[async_trait]
    impl Target for Flaky {
        fn provenance(&self) -> &Provenance {
            &self.provenance
        }
        async fn send(&self, _: &Request) -> Response {
            self.sent_at
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
            let next = self.failures.lock().unwrap().pop();
            match next {
                Some((status, retry_after)) => {
                    let mut r = Response::failed(Outcome::Error, format!("HTTP {status}"), 1.0);
                    r.http_status = Some(status);
                    r.retry_after_ms = retry_after;
                    r
                }
                None => Response {
                    outcome: Outcome::Ok,
                    text: "fine".into(),
                    ..Response::default()
                },
            }
        }
    }

    fn flaky(mut failures: Vec<(u16, Option<u64>)>) -> Arc<Flaky> {
        failures.reverse();
        Arc::new(Flaky {
            provenance: slow().provenance.clone(),
            failures: std::sync::Mutex::new(failures),
            sent_at: std::sync::Mutex::new(Vec::new()),
        })
    }

    async fn run_one(target: Arc<Flaky>, limits: RateLimits, n: usize) -> Vec<Completed> {
        #[derive(Default)]
        struct Keep(Vec<Completed>);
        impl Sink for Keep {
            fn accept(&mut self, batch: &[Completed]) -> Result<(), String> {
                self.0.extend_from_slice(batch);
                Ok(())
            }
        }
        let runner = Runner {
            retry: RetryPolicy::default(),
        };
        let lane = Lane {
            target,
            concurrency: 1,
            limits,
        };
        let (sink, result) = runner
            .run(&[lane], jobs(1, n), Keep::default(), Arc::new(Silent))
            .await;
        result.unwrap();
        sink.0
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_are_retried_with_backoff_and_retry_after_is_honoured() {
        let target = flaky(vec![(503, None), (429, Some(7_000))]);
        let done = run_one(target.clone(), RateLimits::default(), 1).await;
        assert_eq!(
            (done[0].response.outcome, done[0].response.attempts),
            (Outcome::Ok, 3)
        );
        let sent = target.sent_at.lock().unwrap().clone();
        let first_wait = sent[1] - sent[0];
        assert!(
            first_wait >= Duration::from_millis(250) && first_wait <= Duration::from_millis(500),
            "{first_wait:?}"
        );
        assert_eq!(sent[2] - sent[1], Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_are_final_and_retries_stop_at_the_limit() {
        let done = run_one(flaky(vec![(400, None)]), RateLimits::default(), 1).await;
        assert_eq!(
            (done[0].response.http_status, done[0].response.attempts),
            (Some(400), 1)
        );
        let done = run_one(flaky(vec![(500, None); 9]), RateLimits::default(), 1).await;
        assert_eq!(
            (done[0].response.outcome, done[0].response.attempts),
            (Outcome::Error, 4)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_rate_limit_spaces_the_requests() {
        let target = flaky(Vec::new());
        let limits = RateLimits {
            rpm: Some(120),
            tpm: None,
        };
        run_one(target.clone(), limits, 11).await;
        let sent = target.sent_at.lock().unwrap().clone();
        // 2 a second with a burst of 2: the 11th waits for 9 refills.
        let span = *sent.last().unwrap() - sent[0];
        assert!(
            span >= Duration::from_millis(4_400) && span <= Duration::from_millis(5_100),
            "{span:?}"
        );
    }

    #[tokio::test]
    async fn a_sink_is_ticked_while_requests_are_in_flight_and_a_failed_tick_stops_the_run() {
        let runner = Runner {
            retry: RetryPolicy::default(),
        };
        // 100 requests of 5 ms one at a time: half a second, ten ticks of 50 ms.
        let sink = Collect {
            every: Some(Duration::from_millis(50)),
            ..Collect::default()
        };
        let (sink, result) = runner
            .run(&[lane(slow(), 1)], jobs(1, 100), sink, Arc::new(Silent))
            .await;
        assert_eq!(result.unwrap(), 100);
        assert!((4..=14).contains(&sink.ticks), "{} ticks", sink.ticks);
        // A sink that ticks never without being asked.
        let (quiet, _) = runner
            .run(
                &[lane(slow(), 1)],
                jobs(1, 20),
                Collect::default(),
                Arc::new(Silent),
            )
            .await;
        assert_eq!(quiet.ticks, 0);

        let failing = Collect {
            every: Some(Duration::from_millis(20)),
            tick_fails: true,
            ..Collect::default()
        };
        let (failing, result) = runner
            .run(&[lane(slow(), 1)], jobs(1, 400), failing, Arc::new(Silent))
            .await;
        assert!(matches!(result, Err(RunError::Sink(ref e)) if e == "lease lost"));
        assert_eq!(failing.ticks, 1);
        assert!(failing.seen.len() < 400, "the run stopped early");
    }

    #[tokio::test]
    async fn a_failing_sink_stops_the_run_and_keeps_what_it_stored() {
        let runner = Runner {
            retry: RetryPolicy::default(),
        };
        let sink = Collect {
            fail_after: Some(10),
            ..Collect::default()
        };
        let (sink, result) = runner
            .run(&[lane(slow(), 2)], jobs(1, 200), sink, Arc::new(Silent))
            .await;
        assert!(matches!(result, Err(RunError::Sink(ref e)) if e == "disk full"));
        assert!(sink.seen.len() <= 10 && !sink.seen.is_empty());
    }
}
