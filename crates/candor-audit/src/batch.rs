//! A run asked through a provider's batch API, or `vllm run-batch`: candor writes the request
//! files and reads the result files; the provider does the asking.
//!
//! Each request carries a `custom_id` made from its place in the run (run, target row, probe,
//! language, sample), so results join back whatever order they come in, and a result imported
//! twice is stored once (the responses' unique key).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candor_core::{Outcome, Request, Response};
use candor_judge::Judge;
use candor_store::{NewResponse, Store, WorkItem};
use candor_target::batch_api::BatchApi;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::judging::judge_run;
use crate::plan::{request, resume_settings, slots, Slot};
use crate::run::{target_specs, work_item, Audit, Planned};
use crate::Error;

/// The batch file format of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchFormat {
    /// OpenAI's Batch API (and `vllm run-batch`): one `{custom_id, method, url, body}` a line.
    OpenAi,
    /// Anthropic's Message Batches: one `{custom_id, params}` a line.
    Anthropic,
}

impl BatchFormat {
    pub fn parse(name: &str) -> Result<BatchFormat, Error> {
        match name {
            "openai" => Ok(BatchFormat::OpenAi),
            "anthropic" => Ok(BatchFormat::Anthropic),
            other => Err(Error::usage(format!(
                "no batch format '{other}' (formats: openai, anthropic)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BatchFormat::OpenAi => "openai",
            BatchFormat::Anthropic => "anthropic",
        }
    }

    /// The provider whose targets this format carries.
    fn provider(self) -> &'static str {
        self.name()
    }

    /// The provider's limits on one batch: requests and bytes.
    pub fn limits(self) -> (usize, u64) {
        match self {
            BatchFormat::OpenAi => (50_000, 200 * 1024 * 1024),
            BatchFormat::Anthropic => (100_000, 256 * 1024 * 1024),
        }
    }
}

/// The id of one request of a run, at most 64 characters of `[A-Za-z0-9_-]`, as both providers
/// require: readable where the probe id allows, else the probe part is a hash.
pub fn custom_id(run_id: i64, item: &WorkItem) -> String {
    let plain = format!(
        "r{run_id}-t{}-s{}-{}-{}",
        item.target_id, item.sample, item.lang, item.probe_id
    );
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if plain.len() <= 64 && plain.chars().all(allowed) {
        return plain;
    }
    let digest = Sha256::digest(format!("{}\u{0}{}", item.lang, item.probe_id).as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("r{run_id}-t{}-s{}-h{hex}", item.target_id, item.sample)
}

/// One file written by an export.
#[derive(Debug, Clone, Serialize)]
pub struct BatchFile {
    pub path: PathBuf,
    /// The target's place in the run, from 0.
    pub target: usize,
    pub spec: String,
    pub requests: usize,
    pub bytes: u64,
}

/// `manifest.json`: what an export wrote, and (once submitted) each file's batch id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub run: i64,
    pub format: BatchFormat,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The file's name in the manifest's folder.
    pub path: String,
    pub target: usize,
    pub spec: String,
    pub requests: usize,
    pub bytes: u64,
    /// The provider's batch id, once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest, Error> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::usage(format!(
                "cannot read {}: {e} (write it with `candor batch export --out {}`)",
                path.display(),
                dir.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::usage(format!("{}: not a batch manifest: {e}", path.display())))
    }

    /// Written whole to a temporary file, then renamed: a crash leaves the old one.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join("manifest.json");
        let partial = dir.join("manifest.json.partial");
        std::fs::write(
            &partial,
            serde_json::to_string_pretty(self).expect("a manifest serialises"),
        )
        .and_then(|_| std::fs::rename(&partial, &path))
        .map_err(|e| write_error(&path, e))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct BatchExport {
    pub planned: Planned,
    pub files: Vec<BatchFile>,
}

impl Audit {
    /// Records the run as pending (its requests as work left), and writes what is left to ask
    /// as batch request files in `dir`, split at the provider's limits (or at `max_requests`
    /// below them), with a manifest.
    pub fn export_batch(
        mut self,
        store: &mut dyn Store,
        format: BatchFormat,
        max_requests: Option<usize>,
        dir: &Path,
        use_cache: bool,
    ) -> Result<BatchExport, Error> {
        for lane in &self.lanes {
            let p = lane.target.provenance();
            if p.provider != format.provider() {
                return Err(Error::usage(format!(
                    "target {} is not a {} target: the {} batch format carries only those",
                    p.spec,
                    format.provider(),
                    format.name()
                )));
            }
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
        let begun = self.begin(store, use_cache)?;
        let run_id = begun.run_id;
        // A chunk at a time: a million requests' work items at once would double the memory.
        for chunk in begun.jobs.chunks(10_000) {
            let items: Vec<WorkItem> = chunk
                .iter()
                .map(|j| work_item(begun.target_ids[j.target], &j.request))
                .collect();
            store.add_work(run_id, &items).map_err(Error::run)?;
        }
        store.set_status(run_id, "pending").map_err(Error::run)?;

        let (limit, max_bytes) = format.limits();
        let max_requests = max_requests.map_or(limit, |n| n.clamp(1, limit));
        // One model per file, as OpenAI requires: each target's requests in files of its own.
        let mut order: Vec<usize> = (0..begun.jobs.len()).collect();
        order.sort_by_key(|&i| begun.jobs[i].target);
        let mut files: Vec<BatchFile> = Vec::new();
        let mut writer: Option<BufWriter<std::fs::File>> = None;
        for i in order {
            let job = &begun.jobs[i];
            let item = &work_item(begun.target_ids[job.target], &job.request);
            let target = &self.lanes[job.target].target;
            let body = target.batch_body(&job.request).ok_or_else(|| {
                Error::usage(format!(
                    "target {} cannot be asked through a batch API",
                    target.provenance().spec
                ))
            })?;
            let id = custom_id(run_id, item);
            let line = match format {
                BatchFormat::OpenAi => json!({
                    "custom_id": id,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": body,
                }),
                BatchFormat::Anthropic => json!({ "custom_id": id, "params": body }),
            };
            let mut line = serde_json::to_vec(&line).expect("a request serialises");
            line.push(b'\n');
            let fits = files.last().is_some_and(|f| {
                f.target == job.target
                    && f.requests < max_requests
                    && f.bytes + line.len() as u64 <= max_bytes
            });
            if !fits {
                if let (Some(mut w), Some(f)) = (writer.take(), files.last()) {
                    w.flush().map_err(|e| write_error(&f.path, e))?;
                }
                let seq = files.iter().filter(|f| f.target == job.target).count() + 1;
                let path = dir.join(format!("requests-t{}-{seq:04}.jsonl", job.target + 1));
                let file = std::fs::File::create(&path).map_err(|e| write_error(&path, e))?;
                writer = Some(BufWriter::new(file));
                files.push(BatchFile {
                    path,
                    target: job.target,
                    spec: target.provenance().spec.clone(),
                    requests: 0,
                    bytes: 0,
                });
            }
            let f = files.last_mut().expect("a file is open");
            let w = writer.as_mut().expect("a file is open");
            w.write_all(&line).map_err(|e| write_error(&f.path, e))?;
            f.requests += 1;
            f.bytes += line.len() as u64;
        }
        if let (Some(mut w), Some(f)) = (writer, files.last()) {
            w.flush().map_err(|e| write_error(&f.path, e))?;
        }
        let manifest = Manifest {
            schema: 1,
            run: run_id,
            format,
            files: files
                .iter()
                .map(|f| ManifestFile {
                    path: file_name(&f.path),
                    target: f.target,
                    spec: f.spec.clone(),
                    requests: f.requests,
                    bytes: f.bytes,
                    batch: None,
                })
                .collect(),
        };
        manifest.write(dir)?;
        Ok(BatchExport {
            planned: begun.planned,
            files,
        })
    }
}

fn write_error(path: &Path, e: std::io::Error) -> Error {
    Error::run(format!("cannot write {}: {e}", path.display()))
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchImport {
    /// Result lines read.
    pub lines: usize,
    /// Responses stored now.
    pub stored: usize,
    /// Results already stored (imported before, or answered otherwise).
    pub already: usize,
    /// Results the provider did not answer (expired or canceled): left to ask again.
    pub unanswered: usize,
    /// Lines that could not be read, as `file:line: why`; the rest is imported.
    pub bad: Vec<String>,
    /// The run's requests still without a response.
    pub left: i64,
    /// Answers judged after the import.
    pub judged: usize,
}

fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// Lines stored in one transaction.
const IMPORT_BATCH: usize = 5_000;

/// Reads batch result files (either provider's format, told apart line by line), stores each
/// result as the response to its request, and judges the run (unless `judge` is `None`); the
/// run is done once every request has its response. Errors and moderation become outcomes as a live exchange's would.
pub fn import_batch(
    store: &mut dyn Store,
    run_id: i64,
    files: &[PathBuf],
    judge: Option<&dyn Judge>,
) -> Result<BatchImport, Error> {
    let (settings, suite) = resume_settings(store, run_id)?;
    let lanes: Vec<candor_runner::Lane> = settings
        .targets
        .iter()
        .map(|t| t.lane(settings.concurrency))
        .collect::<Result<_, _>>()?;
    let target_ids: Vec<i64> = store
        .targets(run_id)
        .map_err(Error::run)?
        .into_iter()
        .map(|t| t.id)
        .collect();
    if target_ids.len() != lanes.len() {
        return Err(Error::usage(format!(
            "run {run_id} has {} targets stored, its settings name {}",
            target_ids.len(),
            lanes.len()
        )));
    }
    let specs = target_specs(&lanes);
    let providers: Vec<String> = lanes
        .iter()
        .map(|l| l.target.provenance().provider.clone())
        .collect();
    // Requests are found by their custom id's hash and built again when their result comes:
    // a million requests' slots take 16 MB where their requests would take hundreds.
    let slot_item = |slot: Slot| WorkItem {
        target_id: target_ids[slot.target as usize],
        probe_id: suite.probes[slot.probe as usize].id.clone(),
        lang: settings.languages[slot.lang as usize].clone(),
        sample: slot.sample,
    };
    let by_id: HashMap<u64, Slot> = slots(&suite, &settings)
        .map(|slot| (id_hash(&custom_id(run_id, &slot_item(slot))), slot))
        .collect();
    let mut outcome = BatchImport::default();
    let mut pending: Vec<(usize, Request, Response)> = Vec::new();
    let mut flush = |pending: &mut Vec<(usize, Request, Response)>,
                     outcome: &mut BatchImport|
     -> Result<(), Error> {
        let keys: Vec<(String, String)> = pending
            .iter()
            .map(|(t, q, _)| q.keyed(&specs[*t]))
            .collect();
        let rows: Vec<NewResponse<'_>> = pending
            .iter()
            .zip(&keys)
            .map(|((t, q, r), (json, hash))| NewResponse {
                run_id,
                target_id: target_ids[*t],
                request: q,
                request_json: json,
                request_hash: hash,
                response: r,
            })
            .collect();
        let stored = store.complete_work(&rows).map_err(Error::run)?;
        outcome.stored += stored;
        outcome.already += rows.len() - stored;
        pending.clear();
        Ok(())
    };
    for path in files {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let at = format!("{}:{}", path.display(), n + 1);
            let line = line.map_err(|e| Error::run(format!("{at}: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            outcome.lines += 1;
            let result: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => {
                    outcome.bad.push(format!("{at}: not JSON: {e}"));
                    continue;
                }
            };
            let Some(id) = result["custom_id"].as_str() else {
                outcome.bad.push(format!("{at}: no custom_id"));
                continue;
            };
            let slot = by_id
                .get(&id_hash(id))
                .copied()
                .filter(|slot| custom_id(run_id, &slot_item(*slot)) == id);
            let Some(slot) = slot else {
                outcome.bad.push(format!(
                    "{at}: custom_id {id} is no request of run {run_id}"
                ));
                continue;
            };
            let target = slot.target as usize;
            match read_result(&result, &providers[target]) {
                Ok(Some(response)) => {
                    pending.push((target, request(&suite, &settings, slot), response));
                }
                Ok(None) => outcome.unanswered += 1,
                Err(why) => outcome.bad.push(format!("{at}: {why}")),
            }
            if pending.len() >= IMPORT_BATCH {
                flush(&mut pending, &mut outcome)?;
            }
        }
    }
    flush(&mut pending, &mut outcome)?;
    let left = store.work_left(run_id).map_err(Error::run)?;
    outcome.left = left.pending + left.leased;
    if let Some(judge) = judge.filter(|_| outcome.stored > 0 || outcome.left == 0) {
        outcome.judged = judge_run(store, run_id, judge, &suite)?;
    }
    let status = if outcome.left == 0 { "done" } else { "pending" };
    if status == "done" {
        store.finish_run(run_id, status).map_err(Error::run)?;
    } else {
        store.set_status(run_id, status).map_err(Error::run)?;
    }
    Ok(outcome)
}

/// The batch API that serves a run's target at `position`, with the key from `key_env` or the
/// one the target was declared with.
fn batch_api(
    targets: &[candor_store::TargetRow],
    position: usize,
    key_env: Option<&str>,
) -> Result<BatchApi, Error> {
    let target = targets
        .iter()
        .find(|t| t.position == position as i64)
        .ok_or_else(|| Error::usage(format!("the run has no target at position {position}")))?;
    let env = key_env.or_else(|| target.provenance["api_key_env"].as_str());
    BatchApi::new(&target.provider, &target.base_url, env).map_err(Error::usage)
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::run)
}

/// Uploads every file of the export in `dir` not submitted yet and creates its batch at the
/// target's provider, writing each batch id into the manifest as soon as it exists, so that a
/// failure midway submits nothing twice when run again.
pub fn submit_batches(
    store: &dyn Store,
    dir: &Path,
    key_env: Option<&str>,
) -> Result<Manifest, Error> {
    let mut manifest = Manifest::read(dir)?;
    let targets = store.targets(manifest.run).map_err(Error::run)?;
    let runtime = runtime()?;
    for i in 0..manifest.files.len() {
        if manifest.files[i].batch.is_some() {
            continue;
        }
        let file = &manifest.files[i];
        let api = batch_api(&targets, file.target, key_env)?;
        let path = dir.join(&file.path);
        let content = std::fs::read(&path)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
        let id = runtime
            .block_on(api.submit(&file.path, content))
            .map_err(Error::run)?;
        manifest.files[i].batch = Some(id);
        manifest.write(dir)?;
    }
    Ok(manifest)
}

/// What a fetch found.
#[derive(Debug, Clone, Default)]
pub struct BatchFetch {
    /// Batches that ended, their results downloaded and imported.
    pub ended: usize,
    /// Batches still running when the wait ran out: (file, the provider's status).
    pub running: Vec<(String, String)>,
    pub import: BatchImport,
}

/// Looks at every submitted batch of the export in `dir` until all have ended or `wait` has
/// passed, downloads the results of those that ended (`results-FILE` beside the requests),
/// and imports them into the run.
pub fn fetch_batches(
    store: &mut dyn Store,
    dir: &Path,
    key_env: Option<&str>,
    wait: Duration,
    poll: Duration,
    judge: Option<&dyn Judge>,
) -> Result<BatchFetch, Error> {
    let manifest = Manifest::read(dir)?;
    let targets = store.targets(manifest.run).map_err(Error::run)?;
    let runtime = runtime()?;
    let deadline = Instant::now() + wait;
    let mut fetched = BatchFetch::default();
    let mut results = Vec::new();
    let mut waiting: Vec<&ManifestFile> = manifest.files.iter().collect();
    if let Some(unsent) = waiting.iter().find(|f| f.batch.is_none()) {
        return Err(Error::usage(format!(
            "{} was never submitted: run `candor batch submit {}` first",
            unsent.path,
            dir.display()
        )));
    }
    loop {
        let mut still = Vec::new();
        fetched.running.clear();
        for file in waiting {
            let api = batch_api(&targets, file.target, key_env)?;
            let id = file.batch.as_deref().expect("checked above");
            let state = runtime.block_on(api.look(id)).map_err(Error::run)?;
            if !state.ended {
                fetched.running.push((file.path.clone(), state.status));
                still.push(file);
                continue;
            }
            let bytes = runtime.block_on(api.results(&state)).map_err(Error::run)?;
            let path = dir.join(format!("results-{}", file.path));
            std::fs::write(&path, bytes).map_err(|e| write_error(&path, e))?;
            results.push(path);
            fetched.ended += 1;
        }
        waiting = still;
        if waiting.is_empty() || Instant::now() + poll > deadline {
            break;
        }
        std::thread::sleep(poll);
    }
    fetched.import = import_batch(store, manifest.run, &results, judge)?;
    Ok(fetched)
}

/// One result line as the response it carries: `Ok(None)` where the provider never asked the
/// model (the batch expired or was canceled), so that the request stays to ask again.
fn read_result(result: &Value, provider: &str) -> Result<Option<Response>, String> {
    let raw = |v: &Value| serde_json::to_string(v).expect("JSON serialises");
    // OpenAI and vLLM: {"response": {"status_code", "body"}, "error"}.
    if result.get("response").is_some() || result.get("error").is_some() {
        if let Some(response) = result.get("response").filter(|r| !r.is_null()) {
            let status = response["status_code"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .ok_or("a response without a status_code")?;
            let body = match &response["body"] {
                Value::String(s) => s.clone(),
                other => raw(other),
            };
            return classified(provider, status, &body);
        }
        let error = &result["error"];
        let message = error["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| raw(error));
        let code = error["code"].as_str().unwrap_or("error");
        if matches!(code, "batch_expired" | "batch_cancelled" | "batch_canceled") {
            return Ok(None);
        }
        let mut r = Response::failed(Outcome::Error, format!("batch: {code}: {message}"), 0.0);
        r.raw_body = Some(raw(error));
        r.route = Some("batch".into());
        return Ok(Some(r));
    }
    // Anthropic: {"result": {"type": succeeded|errored|canceled|expired, ...}}.
    let outcome = &result["result"];
    match outcome["type"].as_str() {
        Some("succeeded") => classified(provider, 200, &raw(&outcome["message"])),
        Some("errored") => {
            let error = &outcome["error"];
            // The error of an errored request sits one level down in the API's own shape.
            let inner = if error["error"].is_object() {
                &error["error"]
            } else {
                error
            };
            let kind = inner["type"].as_str().unwrap_or("error");
            let message = inner["message"].as_str().unwrap_or_default();
            // A request the provider's moderation refused reads as a live one would.
            let status = if kind == "invalid_request_error" {
                400
            } else {
                500
            };
            let body = raw(error);
            match candor_target::classify_body(provider, status, &body, false) {
                Some(mut r) if r.outcome != Outcome::Error => {
                    r.route = Some("batch".into());
                    Ok(Some(r))
                }
                _ => {
                    let mut r =
                        Response::failed(Outcome::Error, format!("batch: {kind}: {message}"), 0.0);
                    r.raw_body = Some(body);
                    r.route = Some("batch".into());
                    Ok(Some(r))
                }
            }
        }
        Some("canceled") | Some("expired") => Ok(None),
        Some(other) => Err(format!("a result of unknown type '{other}'")),
        None => Err("neither an OpenAI nor an Anthropic batch result".into()),
    }
}

fn classified(provider: &str, status: u16, body: &str) -> Result<Option<Response>, String> {
    let mut r = candor_target::classify_body(provider, status, body, false)
        .ok_or_else(|| format!("no batch results for provider {provider}"))?;
    r.route = Some("batch".into());
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(probe: &str) -> WorkItem {
        WorkItem {
            target_id: 3,
            probe_id: probe.into(),
            lang: "zh-Hans".into(),
            sample: 2,
        }
    }

    #[test]
    fn custom_ids_are_readable_where_they_can_be_and_always_valid() {
        assert_eq!(
            custom_id(7, &item("tiananmen-01")),
            "r7-t3-s2-zh-Hans-tiananmen-01"
        );
        let odd = custom_id(7, &item("台湾.question/1"));
        assert!(odd.starts_with("r7-t3-s2-h") && odd.len() <= 64, "{odd}");
        let long = custom_id(7, &item(&"x".repeat(80)));
        assert!(long.len() <= 64, "{long}");
        assert_ne!(
            custom_id(7, &item(&"x".repeat(80))),
            custom_id(7, &item(&"x".repeat(81)))
        );
        assert_eq!(odd, custom_id(7, &item("台湾.question/1")));
    }

    #[test]
    fn results_of_both_providers_read_as_live_exchanges_do() {
        let ok = json!({"custom_id": "a", "response": {"status_code": 200, "body": {
            "model": "m", "choices": [{"message": {"content": "An answer."}, "finish_reason": "stop"}]}}, "error": null});
        let r = read_result(&ok, "openai").unwrap().unwrap();
        assert_eq!((r.outcome, r.text.as_str()), (Outcome::Ok, "An answer."));
        assert_eq!(r.route.as_deref(), Some("batch"));

        let filtered = json!({"custom_id": "a", "response": {"status_code": 200, "body": {
            "choices": [{"message": {"content": ""}, "finish_reason": "content_filter"}]}}});
        assert_eq!(
            read_result(&filtered, "openai").unwrap().unwrap().outcome,
            Outcome::FilteredOutput
        );

        let failed = json!({"custom_id": "a", "response": null, "error": {"code": "server_error", "message": "boom"}});
        let r = read_result(&failed, "openai").unwrap().unwrap();
        assert_eq!(
            (r.outcome, r.error.as_deref()),
            (Outcome::Error, Some("batch: server_error: boom"))
        );

        let expired = json!({"custom_id": "a", "response": null, "error": {"code": "batch_expired", "message": "late"}});
        assert!(read_result(&expired, "openai").unwrap().is_none());

        let claude = json!({"custom_id": "a", "result": {"type": "succeeded", "message": {
            "model": "c", "content": [{"type": "text", "text": "Yes."}], "stop_reason": "end_turn"}}});
        let r = read_result(&claude, "anthropic").unwrap().unwrap();
        assert_eq!((r.outcome, r.text.as_str()), (Outcome::Ok, "Yes."));
        let errored = json!({"custom_id": "a", "result": {"type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": "down"}}}});
        let r = read_result(&errored, "anthropic").unwrap().unwrap();
        assert_eq!(
            (r.outcome, r.error.as_deref()),
            (Outcome::Error, Some("batch: api_error: down"))
        );
        let gone = json!({"custom_id": "a", "result": {"type": "expired"}});
        assert!(read_result(&gone, "anthropic").unwrap().is_none());
        assert!(read_result(&json!({"custom_id": "a"}), "openai").is_err());
    }
}
