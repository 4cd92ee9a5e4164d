//! `candor audit`: suite -> runner -> targets -> store -> judge -> store -> report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candor_core::{Outcome, Probe, Request, SamplingParams, Suite, TargetSpec, Verdict};
use candor_judge::{Exchange, Judge, RulesJudge};
use candor_runner::{Completed, Job, Runner, Sink};
use candor_store::{NewResponse, SqliteStore, StoredResponse};
use candor_target::{Target, TargetOptions};
use clap::Args;
use serde_json::json;

use crate::progress::Reporter;
use crate::Failure;

#[derive(Args)]
pub struct AuditArgs {
    /// A built-in suite name or a suite file (.toml, or .jsonl with one {"id", "prompt"} a line).
    #[arg(long, default_value = "core")]
    suite: String,
    /// A target as PROVIDER/MODEL[@BASE_URL], e.g. openai/qwen2.5-72b@http://127.0.0.1:8000/v1;
    /// repeat for several.
    #[arg(long = "target", value_name = "SPEC")]
    targets: Vec<TargetSpec>,
    /// Languages to ask in, comma-separated; every language of the suite by default.
    #[arg(long, value_delimiter = ',', value_name = "LANGS")]
    lang: Vec<String>,
    /// Requests in flight per target.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Environment variable holding the API key (default: the provider's, e.g. OPENAI_API_KEY).
    #[arg(long, value_name = "NAME")]
    api_key_env: Option<String>,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// System prompt sent before every probe.
    #[arg(long)]
    system: Option<String>,
    /// Sampling temperature (the provider's default when omitted).
    #[arg(long)]
    temperature: Option<f64>,
    /// Most tokens per answer (the provider's default when omitted).
    #[arg(long)]
    max_tokens: Option<u32>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
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

pub fn run(store_path: &Path, args: AuditArgs) -> Result<(), Failure> {
    // Everything that can be known wrong is checked before any request is sent.
    if args.targets.is_empty() {
        return Err(Failure::usage(
            "no target: give --target PROVIDER/MODEL[@BASE_URL], e.g. --target openai/qwen2.5-7b@http://127.0.0.1:8000/v1",
        ));
    }
    let suite = candor_suite::load(&args.suite).map_err(Failure::usage)?;
    let langs = choose_languages(&suite, &args.lang)?;
    let options = TargetOptions {
        api_key_env: args.api_key_env.clone(),
        ..TargetOptions::default()
    };
    let targets: Vec<Arc<dyn Target>> = args
        .targets
        .iter()
        .map(|spec| candor_target::build(spec, &options).map(Arc::from))
        .collect::<Result<_, _>>()
        .map_err(Failure::usage)?;
    let params = SamplingParams {
        temperature: args.temperature,
        max_tokens: args.max_tokens,
        ..SamplingParams::default()
    };
    let jobs = plan(
        &suite,
        &langs,
        targets.len(),
        args.system.as_deref(),
        &params,
    );
    if jobs.is_empty() {
        return Err(Failure::usage(format!(
            "suite {} has no probe in {}",
            suite.id,
            langs.join(", ")
        )));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("CW")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )
        .enable_all()
        .build()
        .map_err(Failure::run)?;
    runtime.block_on(preflight(&targets))?;

    let mut store = SqliteStore::open(store_path).map_err(Failure::run)?;
    let settings = json!({
        "suite": args.suite,
        "languages": langs,
        "concurrency": args.concurrency,
        "system": args.system,
        "params": params,
        "targets": args.targets.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
    });
    let run_id = store.create_run(&suite, &settings).map_err(Failure::run)?;
    let mut target_ids = Vec::with_capacity(targets.len());
    for (position, target) in targets.iter().enumerate() {
        let id = store
            .add_target(run_id, position, target.provenance())
            .map_err(Failure::run)?;
        target_ids.push(id);
    }
    store.put_probes(&suite).map_err(Failure::run)?;

    let total = jobs.len();
    if !args.quiet {
        eprintln!(
            "candor: run {run_id}: {} probes x {} languages x {} targets = {total} requests, suite {} ({}), store {}",
            suite.probes.len(),
            langs.len(),
            targets.len(),
            suite.id,
            &suite.hash[..12],
            store_path.display()
        );
    }
    let reporter = Arc::new(Reporter::new(total as u64, args.quiet));
    let sink = StoreSink {
        store,
        run_id,
        target_ids,
        specs: targets
            .iter()
            .map(|t| t.provenance().spec.clone())
            .collect(),
    };
    let runner = Runner {
        concurrency: args.concurrency as usize,
    };
    let started = Instant::now();
    let (sink, result) = runtime.block_on(runner.run(&targets, jobs, sink, reporter.clone()));
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
    if !args.quiet {
        eprintln!(
            "candor: run {run_id}: {stored} responses in {asked_secs:.2} s ({:.0} requests/s)",
            stored as f64 / asked_secs.max(1e-9)
        );
    }

    let responses = store.responses(run_id).map_err(Failure::run)?;
    let judge = RulesJudge::new().with_suite(&suite);
    let verdicts = judge_all(&judge, &suite, &responses);
    store.insert_verdicts(&verdicts).map_err(Failure::run)?;
    let failed = failed_targets(&targets, &responses, &target_ids);
    let status = if failed.is_empty() { "done" } else { "failed" };
    store.finish_run(run_id, status).map_err(Failure::run)?;

    let summary = crate::summary::from_store(&store, run_id, judge.id()).map_err(Failure::run)?;
    crate::summary::emit(&summary, args.json.as_deref())?;
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

/// Every (target, probe, language) the audit asks, target by target.
fn plan(
    suite: &Suite,
    langs: &[String],
    targets: usize,
    system: Option<&str>,
    params: &SamplingParams,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    for target in 0..targets {
        for probe in &suite.probes {
            for lang in langs {
                if let Some(prompt) = probe.texts.get(lang) {
                    jobs.push(Job {
                        target,
                        request: Request {
                            probe_id: probe.id.clone(),
                            lang: lang.clone(),
                            sample: 0,
                            system: system.map(str::to_string),
                            prompt: prompt.clone(),
                            params: params.clone(),
                        },
                    });
                }
            }
        }
    }
    jobs
}

async fn preflight(targets: &[Arc<dyn Target>]) -> Result<(), Failure> {
    let checks = targets.iter().map(|t| t.preflight());
    for result in futures::future::join_all(checks).await {
        result.map_err(Failure::run)?;
    }
    Ok(())
}

/// Judges every `ok` response; other outcomes are not model answers and get no verdict.
fn judge_all(
    judge: &dyn Judge,
    suite: &Suite,
    responses: &[StoredResponse],
) -> Vec<(i64, Verdict)> {
    let probes: HashMap<&str, &Probe> = suite.probes.iter().map(|p| (p.id.as_str(), p)).collect();
    responses
        .iter()
        .filter(|r| r.response.outcome == Outcome::Ok)
        .map(|r| {
            let exchange = Exchange {
                probe: probes.get(r.probe_id.as_str()).copied(),
                lang: &r.lang,
                prompt: &r.prompt,
                response: &r.response,
            };
            (r.id, judge.judge(&exchange))
        })
        .collect()
}

/// Targets whose every request failed in transport or protocol: the audit says nothing about
/// them, so the run has failed.
fn failed_targets(
    targets: &[Arc<dyn Target>],
    responses: &[StoredResponse],
    target_ids: &[i64],
) -> Vec<String> {
    let mut failed = Vec::new();
    for (target, id) in targets.iter().zip(target_ids) {
        let mine: Vec<&StoredResponse> = responses.iter().filter(|r| r.target_id == *id).collect();
        if !mine.is_empty() && mine.iter().all(|r| r.response.outcome == Outcome::Error) {
            let first = mine[0].response.error.as_deref().unwrap_or("unknown error");
            failed.push(format!(
                "target {}: all {} requests failed; first error: {first}",
                target.provenance().spec,
                mine.len()
            ));
        }
    }
    failed
}
