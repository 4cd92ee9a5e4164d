//! `candor worker RUN` and `candor status RUN`: a run's requests shared by any number of
//! processes through the store, and its progress seen from anywhere.

use std::path::Path;
use std::time::Duration;

use candor_audit::plan;
use candor_audit::run::{Audit, WorkOptions, WorkProgress};
use clap::Args;

use crate::Failure;

#[derive(Args)]
pub struct WorkerArgs {
    /// The run to work on: one queued by `candor audit --workers-only`.
    run: i64,
    /// Requests taken at a time (default: four per request in flight).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: Option<u32>,
    /// Seconds a taken request stays this worker's. A worker killed midway holds its requests
    /// this long before others take them; a live one renews its leases every third of this.
    #[arg(long, default_value_t = 120.0)]
    lease: f64,
    /// Seconds between looks while other workers hold what is left.
    #[arg(long, default_value_t = 1.0)]
    poll: f64,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    judge: crate::judge_cmd::JudgeChoice,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The run (default: the latest).
    run: Option<i64>,
}

/// Who holds a lease: this machine and process, and a random part so that a reused pid on
/// another machine with the same name never takes over a lease.
fn owner() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

fn seconds(value: f64, name: &str) -> Result<Duration, Failure> {
    if !(value.is_finite() && value > 0.0 && value <= 86_400.0) {
        return Err(Failure::usage(format!(
            "--{name} must be a number of seconds above 0 and at most 86400, not {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

pub fn worker(store_path: &Path, args: WorkerArgs) -> Result<(), Failure> {
    let lease = seconds(args.lease, "lease")?;
    let poll = seconds(args.poll, "poll")?;
    let store = crate::report::open_store(store_path)?;
    let (settings, suite) = plan::resume_settings(store.as_ref(), args.run)?;
    let batch = args
        .batch
        .map_or(settings.concurrency as usize * 4, |b| b as usize);
    let judge = args.judge.build(&suite, Some(store_path))?;
    let audit = Audit::prepare(settings, suite, Some(args.run))?;
    let options = WorkOptions {
        owner: owner(),
        batch,
        lease,
        poll,
    };
    let quiet = args.quiet;
    if !quiet {
        eprintln!(
            "candor worker {}: run {}, {} requests at a time, lease {:.0} s, store {}",
            options.owner,
            args.run,
            batch,
            lease.as_secs_f64(),
            candor_store::location_name(store_path)
        );
    }
    let last_line = std::cell::Cell::new(std::time::Instant::now() - Duration::from_secs(60));
    let progress = |p: &WorkProgress| {
        // One line a second at most: the whole run's state, as every worker sees it.
        if quiet || last_line.get().elapsed() < Duration::from_secs(1) {
            return;
        }
        last_line.set(std::time::Instant::now());
        eprintln!(
            "candor worker: run {}: {} stored by this worker; left in the run: {} waiting, {} leased to {} workers",
            p.run_id, p.stored_by_me, p.left.pending, p.left.leased, p.left.workers
        );
    };
    let (_store, outcome) = audit.work(store, judge.as_ref(), &options, &progress)?;
    if !quiet {
        eprintln!(
            "candor worker: run {} complete: {} requests taken, {} responses stored by this worker; {} answers judged by {}",
            args.run,
            outcome.claimed,
            outcome.stored,
            outcome.judged,
            judge.id()
        );
    }
    if outcome.failed_targets.is_empty() {
        Ok(())
    } else {
        Err(Failure::run(outcome.failed_targets.join("\n")))
    }
}

pub fn status(store_path: &Path, args: StatusArgs) -> Result<(), Failure> {
    let store = crate::report::open_store(store_path)?;
    let run_id = match args.run {
        Some(run) => run,
        None => store.latest_run().map_err(Failure::usage)?,
    };
    let run = store.run(run_id).map_err(Failure::usage)?;
    let left = store.work_left(run_id).map_err(Failure::run)?;
    // Counted by the database, per target: the run's keys are never read.
    let counts = store.error_counts(run_id).map_err(Failure::run)?;
    let stored: i64 = counts.values().map(|c| c.responses).sum();
    let errors: i64 = counts.values().map(|c| c.errors).sum();
    println!(
        "run {run_id}: {} (suite {} {}, started {}{})",
        run.status,
        run.suite_id,
        run.suite_version,
        run.started_at,
        run.finished_at
            .as_deref()
            .map(|f| format!(", finished {f}"))
            .unwrap_or_default()
    );
    for t in store.targets(run_id).map_err(Failure::run)? {
        println!("  target {}: {}", t.position, t.spec);
    }
    let total = stored + left.pending + left.leased;
    println!(
        "  {stored} of {total} responses stored ({errors} errors); {} waiting for a worker, {} leased to {} workers",
        left.pending, left.leased, left.workers
    );
    Ok(())
}
