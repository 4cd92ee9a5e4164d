//! The proxy's record: exchanges go to the store off the request path, through a bounded
//! queue to one writer thread. A full queue or a failing store drops the record (counted and
//! logged), never the client's answer.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use candor_core::{Probe, Request, Response, SamplingParams, Suite, Verdict};
use candor_store::{NewResponse, Store};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::metrics::{labels, Metrics};

/// The store's page cache while recording (SQLite's is 64 MB for audits).
const RECORD_PAGE_CACHE: usize = 4 << 20;

/// One exchange as the proxy saw it.
pub struct Record {
    pub prompt: String,
    pub lang: String,
    pub topic: Option<String>,
    pub subject: Option<String>,
    pub response: Response,
    pub verdict: Option<Verdict>,
}

/// The queue's sending end; the writer thread stops when it is dropped.
pub struct Recorder {
    sender: Option<SyncSender<Record>>,
    metrics: Arc<Metrics>,
    pub run_id: i64,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// The suite a proxy run is filed under: its questions arrive one by one, so its hash names
/// the upstream, not a set of probes.
fn proxy_suite(upstream: &str) -> Suite {
    Suite {
        id: "proxy".into(),
        version: "1".into(),
        description: format!("questions that passed through candor proxy to {upstream}"),
        languages: Vec::new(),
        probes: Vec::new(),
        hash: format!("proxy:{}", hex(upstream.as_bytes())),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Recorder {
    /// Opens a run for `upstream` (or continues `run`), and starts the writer.
    pub fn start(
        mut store: Box<dyn Store>,
        upstream: &str,
        run: Option<i64>,
        queue: usize,
        redact: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Recorder, String> {
        // The record only appends: a small page cache keeps the proxy's memory down.
        store
            .limit_cache(RECORD_PAGE_CACHE)
            .map_err(|e| e.to_string())?;
        let suite = proxy_suite(upstream);
        let (run_id, target_id) = match run {
            Some(id) => {
                let row = store.run(id).map_err(|e| e.to_string())?;
                if row.suite_id != "proxy" {
                    return Err(format!(
                        "run {id} is an audit of suite {}, not a proxy run: leave out --run to start one",
                        row.suite_id
                    ));
                }
                let target = store
                    .targets(id)
                    .map_err(|e| e.to_string())?
                    .first()
                    .map(|t| t.id)
                    .ok_or_else(|| format!("run {id} has no target"))?;
                (id, target)
            }
            None => {
                let settings = json!({"proxy": {"upstream": upstream, "redact": redact}});
                let id = store
                    .create_run(&suite, &settings)
                    .map_err(|e| e.to_string())?;
                let provenance = json!({
                    "spec": format!("proxy:{upstream}"),
                    "provider": "proxy",
                    "model": "as requested",
                    "base_url": upstream,
                });
                let target = store
                    .add_target(id, 0, &provenance)
                    .map_err(|e| e.to_string())?;
                (id, target)
            }
        };
        // Samples are numbered in the order recorded: a continued run goes on from its count.
        let first_sample: i64 = store
            .error_counts(run_id)
            .map_err(|e| e.to_string())?
            .values()
            .map(|c| c.responses)
            .sum();
        let (sender, receiver) = sync_channel(queue.max(1));
        let writer_metrics = metrics.clone();
        let writer = std::thread::Builder::new()
            .name("candor-proxy-record".into())
            .spawn(move || {
                let mut writer = Writer {
                    store,
                    suite,
                    run_id,
                    target_id,
                    next_sample: first_sample as u32,
                    redact,
                    metrics: writer_metrics,
                };
                writer.drain(receiver);
            })
            .map_err(|e| format!("cannot start the record thread: {e}"))?;
        Ok(Recorder {
            sender: Some(sender),
            metrics,
            run_id,
            writer: Some(writer),
        })
    }

    /// Queues a record; a full queue drops it.
    pub fn offer(&self, record: Record) {
        let Some(sender) = &self.sender else { return };
        self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                self.metrics.count(
                    "candor_proxy_record_dropped_total",
                    labels(&[("reason", "queue_full")]),
                    1,
                );
                tracing::warn!("record queue full: an exchange was not recorded");
            }
        }
    }
}

impl Drop for Recorder {
    /// Writes what is queued, then stops.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

struct Writer {
    store: Box<dyn Store>,
    suite: Suite,
    run_id: i64,
    target_id: i64,
    next_sample: u32,
    redact: bool,
    metrics: Arc<Metrics>,
}

/// Records written in one transaction at most.
const BATCH: usize = 64;

impl Writer {
    fn drain(&mut self, receiver: Receiver<Record>) {
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match receiver.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            self.metrics
                .queue_depth
                .fetch_sub(batch.len() as i64, Ordering::Relaxed);
            let n = batch.len() as u64;
            match self.write(batch) {
                Ok(()) => self
                    .metrics
                    .count("candor_proxy_recorded_total", String::new(), n),
                Err(e) => {
                    self.metrics.count(
                        "candor_proxy_record_dropped_total",
                        labels(&[("reason", "store_error")]),
                        n,
                    );
                    tracing::warn!("{n} exchanges not recorded: {e}");
                }
            }
        }
        if let Err(e) = self.store.finish_run(self.run_id, "done") {
            tracing::warn!("cannot close proxy run {}: {e}", self.run_id);
        }
    }

    fn write(&mut self, batch: Vec<Record>) -> Result<(), String> {
        let mut probes = Vec::new();
        let mut requests = Vec::new();
        let mut responses = Vec::new();
        let mut verdicts = Vec::new();
        for mut record in batch {
            let prompt = match self.redact {
                true => format!("sha256:{}", hex(record.prompt.as_bytes())),
                false => record.prompt,
            };
            if self.redact {
                redact(&mut record.response);
            }
            let probe_id = format!("q-{}", &hex(prompt.as_bytes())[..16]);
            probes.push(Probe {
                id: probe_id.clone(),
                topic: record.topic.unwrap_or_else(|| "unclassified".into()),
                subject: record.subject,
                intent: None,
                template: None,
                focus: None,
                texts: [(record.lang.clone(), prompt.clone())].into(),
                key_facts: Vec::new(),
                markers: Default::default(),
                sources: Vec::new(),
            });
            let request = Request {
                probe_id,
                lang: record.lang,
                sample: self.next_sample,
                system: None,
                prompt,
                params: SamplingParams::default(),
            };
            self.next_sample += 1;
            let (json, hash) = request.keyed("proxy");
            requests.push((request, json, hash));
            responses.push(record.response);
            verdicts.push(record.verdict);
        }
        let suite = Suite {
            probes,
            ..self.suite.clone()
        };
        let rows: Vec<NewResponse<'_>> = requests
            .iter()
            .zip(&responses)
            .map(|((request, json, hash), response)| NewResponse {
                run_id: self.run_id,
                target_id: self.target_id,
                request,
                request_json: json,
                request_hash: hash,
                response,
            })
            .collect();
        // One transaction: a batch is kept whole, each answer with its verdict, or not at all.
        self.store
            .insert_judged(&suite, &rows, &verdicts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Keeps only hashes of what the user and the model wrote: the verdict and the outcome stay.
fn redact(response: &mut Response) {
    fn hashed(text: &str) -> String {
        format!("sha256:{}", hex(text.as_bytes()))
    }
    response.text = hashed(&response.text);
    response.reasoning = response.reasoning.as_deref().map(hashed);
    response.raw_body = None;
    response.chunks.clear();
    response.error = response.error.as_ref().map(|_| "redacted".to_string());
}
