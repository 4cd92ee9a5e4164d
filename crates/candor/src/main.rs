//! `candor`: audit language models for political censorship and narrative bias.
//!
//! One module per subcommand: parsing, printing and exit codes. The application itself is the
//! `candor-audit` library.

mod audit;
mod batch_cmd;
mod compare;
mod export_cmd;
mod gate;
mod judge_cmd;
mod model_cmd;
mod narratives_cmd;
mod progress;
mod proxy_cmd;
mod report;
mod serve_cmd;
mod suite_cmd;
mod summary;
mod worker_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "candor",
    version,
    about = "Audit language models for political censorship and narrative bias"
)]
struct Cli {
    /// Where every run, response and verdict is kept: a SQLite file, or a PostgreSQL database
    /// shared by a team (`postgres://USER@HOST/DB`).
    #[arg(
        long,
        global = true,
        env = "CANDOR_STORE",
        default_value = "candor.db",
        value_name = "PATH|URL"
    )]
    store: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask every probe of a suite to every target, judge the answers, print the figures.
    Audit(Box<audit::AuditArgs>),
    /// The figures of stored runs: terminal table, HTML, Markdown or JSON.
    Report(report::ReportArgs),
    /// Compare two targets, or one target in two runs, on the same questions.
    Compare(compare::CompareArgs),
    /// Check a run against thresholds; exit 1 when any rule fails (for CI).
    Gate(gate::GateArgs),
    /// Judge a JSONL file of exchanges, or score the judge against gold labels (`judge eval`).
    Judge(Box<judge_cmd::JudgeArgs>),
    /// Judge a stored run again, without asking the targets.
    Rejudge(judge_cmd::RejudgeArgs),
    /// List, show, count, check and import probe suites.
    Suite(suite_cmd::SuiteArgs),
    /// The local engine's models: list, pull (verified by SHA-256), path.
    Model(model_cmd::ModelArgs),
    /// The catalogue of official lines that stance is read against: list, show, check.
    Narratives(narratives_cmd::NarrativesArgs),
    /// Write stored runs as data: one JSON line per response, with probe, verdict, provenance.
    Export(export_cmd::ExportArgs),
    /// Guard a model's endpoint: pass every request through, judge every answer, record it.
    Proxy(Box<proxy_cmd::ProxyArgs>),
    /// A run through a provider's batch API: write the request files, import the results.
    Batch(batch_cmd::BatchArgs),
    /// The store in a browser: runs, figures, answers, search, and blind labelling.
    Serve(serve_cmd::ServeArgs),
    /// People's labels: export them as gold for `candor judge eval` and `candor judge train`.
    Labels(serve_cmd::LabelsArgs),
    /// Take a queued run's requests from a shared store, a lease at a time, with other workers.
    Worker(worker_cmd::WorkerArgs),
    /// A run's progress: responses stored, requests waiting and leased, workers.
    Status(worker_cmd::StatusArgs),
}

/// Errors sorted by exit code: 2 for bad usage (nothing was run), 1 for a failed run.
pub use candor_audit::Error as Failure;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`candor suite stats | head`) instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // The local engine's compute threads are sized once per process from the environment, so
    // this must happen before any thread starts.
    let threads = match &cli.command {
        Command::Audit(args) => args.threads.map(|t| t as usize),
        _ => None,
    };
    candor_local::size_thread_pools(threads);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CANDOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Audit(args) => audit::run(&cli.store, *args),
        Command::Report(args) => report::run(&cli.store, args),
        Command::Compare(args) => compare::run(&cli.store, args),
        Command::Gate(args) => gate::run(&cli.store, args),
        Command::Judge(args) => judge_cmd::run(&cli.store, *args),
        Command::Rejudge(args) => judge_cmd::rejudge(&cli.store, args),
        Command::Suite(args) => suite_cmd::run(args),
        Command::Model(args) => model_cmd::run(args),
        Command::Narratives(args) => narratives_cmd::run(args),
        Command::Export(args) => export_cmd::run(&cli.store, args),
        Command::Proxy(args) => proxy_cmd::run(&cli.store, *args),
        Command::Batch(args) => batch_cmd::run(&cli.store, args),
        Command::Serve(args) => serve_cmd::serve_dashboard(&cli.store, args),
        Command::Labels(args) => serve_cmd::labels(&cli.store, args),
        Command::Worker(args) => worker_cmd::worker(&cli.store, args),
        Command::Status(args) => worker_cmd::status(&cli.store, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
