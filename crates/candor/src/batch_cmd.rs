//! `candor batch export|import`: a run asked through a provider's batch API (OpenAI's Batch
//! API, Anthropic's Message Batches) or `vllm run-batch`.

use std::path::{Path, PathBuf};

use std::time::Duration;

use candor_audit::batch::{fetch_batches, import_batch, submit_batches, BatchFormat, Manifest};
use candor_audit::run::Audit;
use clap::{Args, Subcommand};

use crate::Failure;

#[derive(Args)]
pub struct BatchArgs {
    #[command(subcommand)]
    command: BatchCommand,
}

#[derive(Subcommand)]
enum BatchCommand {
    /// Record a run as pending and write its requests as batch files (split at the provider's
    /// limits), with a manifest; the audit's options choose suite, targets and settings.
    Export(Box<ExportArgs>),
    /// Store a run's batch results (joined by custom_id; a file imported twice stores nothing
    /// twice), judge the run, and mark it done once every request has its response.
    Import(ImportArgs),
    /// Upload an export's files to the targets' providers and create their batches (through
    /// the Files and Batches endpoints, or Message Batches); the batch ids go in the manifest.
    Submit(SubmitArgs),
    /// Wait for an export's batches, download the results of those that ended, import them.
    Fetch(FetchArgs),
}

#[derive(Args)]
struct SubmitArgs {
    /// The folder `candor batch export --out` wrote.
    dir: PathBuf,
    /// Environment variable holding the API key (default: the one the target was declared
    /// with, else the provider's, e.g. OPENAI_API_KEY).
    #[arg(long, value_name = "NAME")]
    api_key_env: Option<String>,
}

#[derive(Args)]
struct FetchArgs {
    /// The folder `candor batch export --out` wrote and `candor batch submit` submitted.
    dir: PathBuf,
    /// Seconds to wait for every batch to end (0: look once).
    #[arg(long, default_value_t = 0.0)]
    wait: f64,
    /// Seconds between looks while waiting.
    #[arg(long, default_value_t = 60.0)]
    poll: f64,
    #[arg(long, value_name = "NAME")]
    api_key_env: Option<String>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    judge: crate::judge_cmd::JudgeChoice,
}

#[derive(Args)]
struct ExportArgs {
    /// `openai` (OpenAI's Batch API; also `vllm run-batch`) or `anthropic` (Message Batches).
    #[arg(long, value_name = "FORMAT")]
    format: String,
    /// The folder for the request files and manifest.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Requests per file at most (default and ceiling: the provider's limit, 50,000 for
    /// OpenAI, 100,000 for Anthropic; files also stay under its size limit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_requests: Option<u32>,
    #[command(flatten)]
    audit: crate::audit::AuditArgs,
}

#[derive(Args)]
struct ImportArgs {
    /// The run the results belong to (its id is in every custom_id and in manifest.json).
    run: i64,
    /// Result files (JSONL), as the provider returns them.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Store only: judge later, once, with `candor rejudge RUN` (for many result files).
    #[arg(long)]
    no_judge: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    judge: crate::judge_cmd::JudgeChoice,
}

pub fn run(store_path: &Path, args: BatchArgs) -> Result<(), Failure> {
    match args.command {
        BatchCommand::Export(args) => export(store_path, *args),
        BatchCommand::Import(args) => import(store_path, args),
        BatchCommand::Submit(args) => submit(store_path, args),
        BatchCommand::Fetch(args) => fetch(store_path, args),
    }
}

fn submit(store_path: &Path, args: SubmitArgs) -> Result<(), Failure> {
    let store = crate::report::open_store(store_path)?;
    let manifest = submit_batches(store.as_ref(), &args.dir, args.api_key_env.as_deref())?;
    for f in &manifest.files {
        println!(
            "{}\t{}\t{} requests\t{}",
            f.path,
            f.batch.as_deref().unwrap_or("-"),
            f.requests,
            f.spec
        );
    }
    Ok(())
}

fn fetch(store_path: &Path, args: FetchArgs) -> Result<(), Failure> {
    let seconds = |v: f64, name: &str| {
        if v.is_finite() && (0.0..=7.0 * 86_400.0).contains(&v) {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(Failure::usage(format!(
                "--{name} must be a number of seconds from 0 to 604800, not {v}"
            )))
        }
    };
    let (wait, poll) = (seconds(args.wait, "wait")?, seconds(args.poll, "poll")?);
    let mut store = crate::report::open_store(store_path)?;
    let manifest = Manifest::read(&args.dir)?;
    let suite = candor_audit::plan::resume_settings(store.as_ref(), manifest.run)?.1;
    let judge = args.judge.build(&suite, Some(store_path))?;
    let fetched = fetch_batches(
        store.as_mut(),
        &args.dir,
        args.api_key_env.as_deref(),
        wait,
        poll,
        Some(judge.as_ref()),
    )?;
    let i = &fetched.import;
    for bad in &i.bad {
        eprintln!("candor batch: {bad}");
    }
    if !args.quiet {
        eprintln!(
            "candor batch: run {}: {} batches ended, {} running; {} responses stored, {} stored before, {} not answered by the provider; {} requests left; {} answers judged by {}",
            manifest.run,
            fetched.ended,
            fetched.running.len(),
            i.stored,
            i.already,
            i.unanswered,
            i.left,
            i.judged,
            judge.id()
        );
    }
    if !i.bad.is_empty() {
        return Err(Failure::run(format!(
            "{} result lines could not be read (above); every other line is stored",
            i.bad.len()
        )));
    }
    if !fetched.running.is_empty() {
        let running: Vec<String> = fetched
            .running
            .iter()
            .map(|(file, status)| format!("{file} ({status})"))
            .collect();
        return Err(Failure::run(format!(
            "batches still running: {}; fetch again later (what ended is stored)",
            running.join(", ")
        )));
    }
    Ok(())
}

fn export(store_path: &Path, args: ExportArgs) -> Result<(), Failure> {
    let format = BatchFormat::parse(&args.format)?;
    let (settings, suite, existing) = crate::audit::planned_run(store_path, &args.audit)?;
    let audit = Audit::plan(settings, suite, existing)?;
    let mut store = candor_store::open(store_path).map_err(Failure::run)?;
    let written = audit.export_batch(
        store.as_mut(),
        format,
        args.max_requests.map(|n| n as usize),
        &args.out,
        !args.audit.no_cache,
    )?;
    let p = &written.planned;
    println!("{}", p.run_id);
    if !args.audit.quiet {
        let requests: usize = written.files.iter().map(|f| f.requests).sum();
        eprintln!(
            "candor batch: run {} pending: {requests} requests in {} {} file(s) in {} ({} stored before, {} from the cache); import the results with `candor batch import {} FILE...`",
            p.run_id,
            written.files.len(),
            format.name(),
            args.out.display(),
            p.already,
            p.from_cache,
            p.run_id
        );
    }
    Ok(())
}

fn import(store_path: &Path, args: ImportArgs) -> Result<(), Failure> {
    let mut store = crate::report::open_store(store_path)?;
    let run = store.run(args.run).map_err(Failure::usage)?;
    let suite = candor_audit::plan::resume_settings(store.as_ref(), run.id)?.1;
    let judge = match args.no_judge {
        true => None,
        false => Some(args.judge.build(&suite, Some(store_path))?),
    };
    let outcome = import_batch(store.as_mut(), args.run, &args.files, judge.as_deref())?;
    for bad in &outcome.bad {
        eprintln!("candor batch: {bad}");
    }
    if !args.quiet {
        eprintln!(
            "candor batch: run {}: {} result lines, {} responses stored, {} stored before, {} not answered by the provider (left to ask again), {} unreadable; {} requests left; {} answers judged by {}",
            args.run,
            outcome.lines,
            outcome.stored,
            outcome.already,
            outcome.unanswered,
            outcome.bad.len(),
            outcome.left,
            outcome.judged,
            judge.as_ref().map_or("no judge", |j| j.id())
        );
    }
    if outcome.bad.is_empty() {
        Ok(())
    } else {
        Err(Failure::run(format!(
            "{} result lines could not be read (above); every other line is stored",
            outcome.bad.len()
        )))
    }
}
