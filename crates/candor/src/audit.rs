//! `candor audit`: suite -> runner -> targets -> store -> judge -> store -> report.
//!
//! Before anything is asked, what a store already holds is reused: with `--resume RUN` the
//! run's own responses (only the missing ones are asked), and otherwise the cache, which copies
//! any earlier answer to the very same request (same target, prompt, language, sample and
//! settings) into the new run. A rerun after a crash therefore asks only what is missing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candor_core::{Probe, Request, Suite, Verdict};
use candor_judge::{Exchange, Judge};
use candor_runner::{Completed, Job, Lane, RetryPolicy, Runner, Sink};
use candor_store::{NewResponse, SqliteStore};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::progress::Reporter;
use crate::targets::{self, TargetConfig};
use crate::Failure;

#[derive(Args)]
pub struct AuditArgs {
    /// A built-in suite name or a suite file (.toml, or .jsonl with one {"id", "prompt"} a line).
    /// Default: `core`, or the recorded exchanges when every target is a replay.
    #[arg(long)]
    suite: Option<String>,
    /// A target as PROVIDER/MODEL[@BASE_URL] (providers: openai, anthropic, replay, local), e.g.
    /// openai/qwen2.5-72b@http://127.0.0.1:8000/v1, replay/transcripts.jsonl,
    /// local/model.gguf or local/qwen2.5-coder-0.5b; repeatable. Without any target (and
    /// without --targets-file), the audit runs `local/qwen2.5-coder-0.5b` on the `quick` suite.
    #[arg(long = "target", value_name = "SPEC")]
    targets: Vec<String>,
    /// A TOML file of `[[target]]` tables with settings per target.
    #[arg(long, value_name = "FILE")]
    targets_file: Option<PathBuf>,
    /// Languages to ask in, comma-separated; every language of the suite by default.
    #[arg(long, value_delimiter = ',', value_name = "LANGS")]
    lang: Vec<String>,
    /// Ask every probe this many times (with distinct seeds).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    samples: u32,
    /// CPU threads of the local engine (default: every core the process may use).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Requests in flight per target (a target file may set its own); for a local model, the
    /// sequences decoded together in one batch.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Environment variable holding the API key (default: the provider's, e.g. OPENAI_API_KEY).
    #[arg(long, value_name = "NAME")]
    api_key_env: Option<String>,
    /// Also write the full report as JSON (docs/report-json.md) to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// System prompt sent before every probe.
    #[arg(long)]
    system: Option<String>,
    /// Sampling temperature (the provider's default when omitted).
    #[arg(long)]
    temperature: Option<f64>,
    #[arg(long)]
    top_p: Option<f64>,
    /// Most tokens per answer (the provider's default when omitted).
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Seed sent with every request; sample N uses seed + N.
    #[arg(long)]
    seed: Option<u64>,
    /// Extra JSON object merged into every request body, e.g. '{"enable_thinking": false}'.
    #[arg(long, value_name = "JSON")]
    extra_body: Option<String>,
    /// Ask for streamed answers and keep every event with its arrival time.
    #[arg(long)]
    stream: bool,
    /// Requests per minute allowed per target.
    #[arg(long)]
    rpm: Option<u32>,
    /// Tokens per minute allowed per target (estimated from prompt and max tokens).
    #[arg(long)]
    tpm: Option<u32>,
    /// Retries of a request that failed in a way that may pass (transport, 429, 5xx).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Seconds to wait before the first retry; doubled for each next one.
    #[arg(long, default_value_t = 0.5)]
    retry_delay: f64,
    /// Seconds one request may take in all.
    #[arg(long)]
    timeout: Option<f64>,
    /// Seconds to connect.
    #[arg(long)]
    connect_timeout: Option<f64>,
    /// Seconds of silence allowed within a stream.
    #[arg(long)]
    idle_timeout: Option<f64>,
    /// Ask again even what the store already has an answer to.
    #[arg(long)]
    no_cache: bool,
    /// Continue a stored run: ask only what it is missing, with its own settings.
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["suite", "targets", "targets_file", "lang", "samples"])]
    resume: Option<i64>,
    /// Where to write the HTML report of the run.
    #[arg(long, value_name = "FILE", default_value = "candor-report.html")]
    report: PathBuf,
    /// Write no HTML report.
    #[arg(long)]
    no_report: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    judge: crate::judge_cmd::JudgeChoice,
}

/// What a run asks, as stored with it: enough to resume it exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunSettings {
    /// The `--suite` given, if any.
    suite: Option<String>,
    languages: Vec<String>,
    samples: u32,
    concurrency: u32,
    retries: u32,
    retry_delay: f64,
    targets: Vec<TargetConfig>,
}

/// What `candor audit` asks when no target is given: a small Chinese open-weight model on this
/// machine's CPU, pulled on first use.
pub const DEFAULT_TARGET: &str = "local/qwen2.5-coder-0.5b";

pub fn run(store_path: &Path, args: AuditArgs) -> Result<(), Failure> {
    let (settings, suite, existing) = match args.resume {
        Some(run_id) => resume_settings(store_path, run_id)?,
        None => {
            let targets = declared_targets(&args)?;
            let suite_name = args.suite.clone().or_else(|| {
                let default = targets.len() == 1 && targets[0].spec == DEFAULT_TARGET;
                default.then(|| "quick".to_string())
            });
            let suite = load_suite(suite_name.as_deref(), &targets)?;
            let languages = choose_languages(&suite, &args.lang)?;
            let settings = RunSettings {
                suite: suite_name,
                languages,
                samples: args.samples,
                concurrency: args.concurrency,
                retries: args.retries,
                retry_delay: args.retry_delay,
                targets,
            };
            (settings, suite, None)
        }
    };
    execute(store_path, &args, settings, suite, existing)
}

/// The targets of `--target` and `--targets-file`, each completed by the shared flags.
fn declared_targets(args: &AuditArgs) -> Result<Vec<TargetConfig>, Failure> {
    let extra_body = match &args.extra_body {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(Failure::usage(format!(
                    "--extra-body must be a JSON object, not {text}"
                )))
            }
        },
    };
    let shared = TargetConfig {
        api_key_env: args.api_key_env.clone(),
        stream: args.stream,
        system: args.system.clone(),
        temperature: args.temperature,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        seed: args.seed,
        extra_body,
        rpm: args.rpm,
        tpm: args.tpm,
        timeout: args.timeout,
        connect_timeout: args.connect_timeout,
        idle_timeout: args.idle_timeout,
        threads: args.threads,
        ..TargetConfig::new(String::new())
    };
    let mut declared: Vec<TargetConfig> = args
        .targets
        .iter()
        .map(|s| TargetConfig::new(s.clone()))
        .collect();
    if let Some(file) = &args.targets_file {
        declared.extend(targets::read_file(file)?);
    }
    if declared.is_empty() {
        declared.push(TargetConfig::new(DEFAULT_TARGET.to_string()));
    }
    let declared: Vec<TargetConfig> = declared.into_iter().map(|t| t.or(&shared)).collect();
    for t in &declared {
        t.parsed_spec()?;
    }
    Ok(declared)
}

/// The suite asked: the one named, else the recorded exchanges of a replay-only audit, else
/// the built-in `core`.
fn load_suite(name: Option<&str>, targets: &[TargetConfig]) -> Result<Suite, Failure> {
    if let Some(name) = name {
        return candor_suite::load(name).map_err(Failure::usage);
    }
    let specs: Vec<_> = targets
        .iter()
        .map(|t| t.parsed_spec())
        .collect::<Result<_, _>>()?;
    if !specs.is_empty() && specs.iter().all(|s| s.provider == "replay") {
        let replay = candor_target::ReplayTarget::open(&specs[0]).map_err(Failure::usage)?;
        return Ok(replay.suite());
    }
    candor_suite::load("core").map_err(Failure::usage)
}

fn resume_settings(
    store_path: &Path,
    run_id: i64,
) -> Result<(RunSettings, Suite, Option<i64>), Failure> {
    if !store_path.exists() {
        return Err(Failure::usage(format!(
            "no store at {}",
            store_path.display()
        )));
    }
    let store = SqliteStore::open(store_path).map_err(Failure::run)?;
    let run = store.run(run_id).map_err(Failure::usage)?;
    let settings: RunSettings = serde_json::from_value(run.settings.clone()).map_err(|e| {
        Failure::usage(format!(
            "run {run_id} was not stored with resumable settings: {e}"
        ))
    })?;
    let suite = load_suite(settings.suite.as_deref(), &settings.targets)?;
    if suite.hash != run.suite_hash {
        return Err(Failure::usage(format!(
            "run {run_id} asked suite {} with hash {}, but it now hashes to {}: it has changed, so the run cannot be resumed",
            run.suite_id,
            &run.suite_hash[..12],
            &suite.hash[..12]
        )));
    }
    Ok((settings, suite, Some(run_id)))
}

/// Writes each batch of responses to the store in one transaction as it arrives.
struct StoreSink {
    store: SqliteStore,
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

fn execute(
    store_path: &Path,
    args: &AuditArgs,
    settings: RunSettings,
    suite: Suite,
    existing: Option<i64>,
) -> Result<(), Failure> {
    // Everything that can be known wrong is checked before any request is sent.
    let report = (!args.no_report).then_some(args.report.as_path());
    for output in report.into_iter().chain(args.json.as_deref()) {
        let dir = output
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(Failure::usage(format!(
                "cannot write {}: the folder {} does not exist",
                output.display(),
                dir.display()
            )));
        }
    }
    let lanes: Vec<Lane> = settings
        .targets
        .iter()
        .map(|t| t.lane(settings.concurrency))
        .collect::<Result<_, _>>()?;
    // A judge that cannot be set up fails the audit before anything is asked.
    let judge = args.judge.build(&suite, Some(store_path))?;
    let specs: Vec<String> = lanes
        .iter()
        .map(|l| l.target.provenance().spec.clone())
        .collect();
    let mut jobs = plan(&suite, &settings);
    if jobs.is_empty() {
        return Err(Failure::usage(format!(
            "suite {} has no probe in {}",
            suite.id,
            settings.languages.join(", ")
        )));
    }
    let retry = RetryPolicy {
        max_attempts: settings.retries.saturating_add(1),
        base_delay: Duration::from_secs_f64(settings.retry_delay.clamp(0.0, 3600.0)),
        ..RetryPolicy::default()
    };
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::run)?;
    runtime.block_on(preflight(&lanes))?;

    let mut store = SqliteStore::open(store_path).map_err(Failure::run)?;
    let (run_id, target_ids) = match existing {
        Some(run_id) => {
            let ids: Vec<i64> = store
                .targets(run_id)
                .map_err(Failure::run)?
                .into_iter()
                .map(|t| t.id)
                .collect();
            if ids.len() != lanes.len() {
                return Err(Failure::usage(format!(
                    "run {run_id} has {} targets stored, its settings name {}",
                    ids.len(),
                    lanes.len()
                )));
            }
            (run_id, ids)
        }
        None => {
            let stored = serde_json::to_value(&settings).expect("settings serialise");
            let run_id = store.create_run(&suite, &stored).map_err(Failure::run)?;
            let mut ids = Vec::with_capacity(lanes.len());
            for (position, lane) in lanes.iter().enumerate() {
                ids.push(
                    store
                        .add_target(run_id, position, lane.target.provenance())
                        .map_err(Failure::run)?,
                );
            }
            store.put_probes(&suite).map_err(Failure::run)?;
            (run_id, ids)
        }
    };

    let total = jobs.len();
    let mut already = 0;
    if existing.is_some() {
        let answered = store.answered(run_id).map_err(Failure::run)?;
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
    if !args.no_cache {
        let mut copies = Vec::new();
        let mut keep = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (json, hash) = job.request.keyed(&specs[job.target]);
            match store.cached(&hash).map_err(Failure::run)? {
                Some(from) => copies.push((target_ids[job.target], json, from)),
                None => keep.push(job),
            }
        }
        let rows: Vec<(i64, &str, i64)> = copies
            .iter()
            .map(|(t, j, f)| (*t, j.as_str(), *f))
            .collect();
        store.copy_cached(run_id, &rows).map_err(Failure::run)?;
        from_cache = copies.len();
        jobs = keep;
    }
    if !args.quiet {
        eprintln!(
            "candor: run {run_id}: {} probes x {} languages x {} samples x {} targets = {total} requests ({already} stored before, {from_cache} from the cache, {} to ask); suite {} ({}), store {}",
            suite.probes.len(),
            settings.languages.len(),
            settings.samples,
            lanes.len(),
            jobs.len(),
            suite.id,
            &suite.hash[..12],
            store_path.display()
        );
    }

    let asking = jobs.len();
    let reporter = Arc::new(Reporter::new(asking as u64, args.quiet));
    let sink = StoreSink {
        store,
        run_id,
        target_ids,
        specs,
    };
    let runner = Runner { retry };
    let started = Instant::now();
    let (sink, result) = runtime.block_on(runner.run(&lanes, jobs, sink, reporter.clone()));
    let asked_secs = started.elapsed().as_secs_f64();
    reporter.finish();
    let StoreSink {
        mut store,
        target_ids,
        ..
    } = sink;
    let stored = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = store.finish_run(run_id, "failed");
            return Err(Failure::run(format!(
                "run {run_id}: {e}; the responses received so far stay in {}",
                store_path.display()
            )));
        }
    };
    if !args.quiet && asking > 0 {
        eprintln!(
            "candor: run {run_id}: {stored} responses in {asked_secs:.2} s ({:.0} requests/s)",
            stored as f64 / asked_secs.max(1e-9)
        );
    }

    judge_run(&mut store, run_id, judge.as_ref(), &suite)?;
    let failed = failed_targets(&store, run_id, &lanes, &target_ids)?;
    let status = if failed.is_empty() { "done" } else { "failed" };
    store.finish_run(run_id, status).map_err(Failure::run)?;

    crate::summary::emit(&store, run_id, judge.id(), false, args.json.as_deref())?;
    if !args.no_report {
        let data = crate::findings::build(&store, &[run_id], judge.id(), None)?;
        crate::report::write(&data, crate::report::Format::Html, Some(&args.report))?;
        if !args.quiet {
            eprintln!("candor: report written to {}", args.report.display());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::run(failed.join("\n")))
    }
}

fn choose_languages(suite: &Suite, asked: &[String]) -> Result<Vec<String>, Failure> {
    if asked.is_empty() {
        return Ok(suite.languages.clone());
    }
    let mut langs = Vec::new();
    for lang in asked.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if !suite.languages.iter().any(|l| l == lang) {
            return Err(Failure::usage(format!(
                "suite {} has no language '{lang}' (it has: {})",
                suite.id,
                suite.languages.join(", ")
            )));
        }
        if !langs.iter().any(|l| l == lang) {
            langs.push(lang.to_string());
        }
    }
    Ok(langs)
}

/// Every (target, probe, language, sample) the audit asks, target by target. With several
/// samples each gets its own seed (the target's seed plus the sample number).
fn plan(suite: &Suite, settings: &RunSettings) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (target, config) in settings.targets.iter().enumerate() {
        let base = config.params();
        for probe in &suite.probes {
            for lang in &settings.languages {
                let Some(prompt) = probe.texts.get(lang) else {
                    continue;
                };
                for sample in 0..settings.samples {
                    let mut params = base.clone();
                    if settings.samples > 1 {
                        params.seed = Some(base.seed.unwrap_or(0) + u64::from(sample));
                    }
                    jobs.push(Job {
                        target,
                        request: Request {
                            probe_id: probe.id.clone(),
                            lang: lang.clone(),
                            sample,
                            system: config.system.clone(),
                            prompt: prompt.clone(),
                            params,
                        },
                    });
                }
            }
        }
    }
    jobs
}

async fn preflight(lanes: &[Lane]) -> Result<(), Failure> {
    let checks = lanes.iter().map(|l| l.target.preflight());
    for result in futures::future::join_all(checks).await {
        result.map_err(Failure::run)?;
    }
    Ok(())
}

/// Judges every model answer of a run (`ok`, and `truncated` on the text received), a page at a
/// time; other outcomes are not model answers and get no verdict. Returns how many were judged.
pub fn judge_run(
    store: &mut SqliteStore,
    run_id: i64,
    judge: &dyn Judge,
    suite: &Suite,
) -> Result<usize, Failure> {
    const PAGE: i64 = 5_000;
    let probes: HashMap<&str, &Probe> = suite.probes.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut after = 0;
    let mut judged = 0;
    loop {
        let page = store
            .responses_after(run_id, after, PAGE)
            .map_err(Failure::run)?;
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
        store.insert_verdicts(&verdicts).map_err(Failure::run)?;
        judged += verdicts.len();
    }
    Ok(judged)
}

/// Targets whose every request failed in transport or protocol: the audit says nothing about
/// them, so the run has failed.
fn failed_targets(
    store: &SqliteStore,
    run_id: i64,
    lanes: &[Lane],
    target_ids: &[i64],
) -> Result<Vec<String>, Failure> {
    let counts = store.error_counts(run_id).map_err(Failure::run)?;
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
