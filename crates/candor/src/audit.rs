//! `candor audit`: the command line of an audit; the audit itself is `candor_audit::run`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candor_audit::plan::{self, RunSettings, DEFAULT_TARGET};
use candor_audit::run::{Audit, Planned};
use candor_audit::targets::TargetConfig;
use clap::Args;

use crate::progress::Reporter;
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
    pub(crate) no_cache: bool,
    /// Continue a stored run: ask only what it is missing, with its own settings.
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["suite", "targets", "targets_file", "lang", "samples"])]
    resume: Option<i64>,
    /// Where to write the HTML report of the run.
    #[arg(long, value_name = "FILE", default_value = "candor-report.html")]
    report: PathBuf,
    /// Record the run and queue its requests for `candor worker RUN` processes, asking nothing
    /// here: for a store that workers on several machines share (PostgreSQL).
    #[arg(long)]
    workers_only: bool,
    /// Write no HTML report.
    #[arg(long)]
    no_report: bool,
    /// No progress output.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    judge: crate::judge_cmd::JudgeChoice,
}

/// The run the arguments ask for: its settings and suite, and the stored run it continues.
pub fn planned_run(
    store_path: &Path,
    args: &AuditArgs,
) -> Result<(RunSettings, candor_core::Suite, Option<i64>), Failure> {
    Ok(match args.resume {
        Some(run_id) => {
            let store = crate::report::open_store(store_path)?;
            let (settings, suite) = plan::resume_settings(store.as_ref(), run_id)?;
            (settings, suite, Some(run_id))
        }
        None => {
            let targets = plan::declared_targets(
                &args.targets,
                args.targets_file.as_deref(),
                &shared_settings(args)?,
            )?;
            let suite_name = args.suite.clone().or_else(|| {
                let default = targets.len() == 1 && targets[0].spec == DEFAULT_TARGET;
                default.then(|| "quick".to_string())
            });
            let suite = plan::load_suite(suite_name.as_deref(), &targets)?;
            let languages = plan::choose_languages(&suite, &args.lang)?;
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
    })
}

pub fn run(store_path: &Path, args: AuditArgs) -> Result<(), Failure> {
    let (settings, suite, existing) = planned_run(store_path, &args)?;
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
    // A judge that cannot be set up fails the audit before anything is asked.
    let judge = args.judge.build(&suite, Some(store_path))?;
    let audit = Audit::prepare(settings, suite, existing)?;
    let mut store = candor_store::open(store_path).map_err(Failure::run)?;
    if args.workers_only {
        let p = audit.enqueue(store.as_mut(), !args.no_cache)?;
        println!("{}", p.run_id);
        if !args.quiet {
            eprintln!(
                "candor: run {}: {} requests ({} stored before, {} from the cache) queued for workers; start them with `candor worker {} --store ...`, follow with `candor status {}`",
                p.run_id, p.to_ask, p.already, p.from_cache, p.run_id, p.run_id
            );
        }
        return Ok(());
    }
    let (suite_id, suite_hash) = (audit.suite().id.clone(), audit.suite().hash.clone());
    let quiet = args.quiet;
    let reporter: std::cell::RefCell<Option<Arc<Reporter>>> = Default::default();
    let progress = |p: &Planned| -> Arc<dyn candor_runner::Progress> {
        if !quiet {
            eprintln!(
                "candor: run {}: {} probes x {} languages x {} samples x {} targets = {} requests ({} stored before, {} from the cache, {} to ask); suite {suite_id} ({}), store {}",
                p.run_id,
                p.probes,
                p.languages,
                p.samples,
                p.targets,
                p.total,
                p.already,
                p.from_cache,
                p.to_ask,
                &suite_hash[..12],
                candor_store::location_name(store_path)
            );
        }
        let r = Arc::new(Reporter::new(p.to_ask as u64, quiet));
        *reporter.borrow_mut() = Some(r.clone());
        r
    };
    let (store, outcome) = audit.run(store, judge.as_ref(), !args.no_cache, &progress)?;
    if let Some(r) = reporter.borrow().as_ref() {
        r.finish();
    }
    let run_id = outcome.planned.run_id;
    if !quiet && outcome.planned.to_ask > 0 {
        eprintln!(
            "candor: run {run_id}: {} responses in {:.2} s ({:.1} requests/s)",
            outcome.stored,
            outcome.asked_secs,
            outcome.stored as f64 / outcome.asked_secs.max(1e-9)
        );
    }
    crate::summary::emit(
        store.as_ref(),
        run_id,
        judge.id(),
        false,
        args.json.as_deref(),
    )?;
    if !args.no_report {
        let data = candor_audit::figures::build(store.as_ref(), &[run_id], judge.id(), None)?;
        crate::report::write(&data, crate::report::Format::Html, Some(&args.report))?;
        if !quiet {
            eprintln!("candor: report written to {}", args.report.display());
        }
    }
    if outcome.failed_targets.is_empty() {
        Ok(())
    } else {
        Err(Failure::run(outcome.failed_targets.join("\n")))
    }
}

/// The settings every declared target takes unless it sets its own.
fn shared_settings(args: &AuditArgs) -> Result<TargetConfig, Failure> {
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
    Ok(TargetConfig {
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
    })
}
