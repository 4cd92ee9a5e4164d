use std::path::{Path, PathBuf};

use candor_report::ReportData;
use candor_store::Store;
use clap::{Args, ValueEnum};

use crate::Failure;
use candor_audit::figures as findings;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The terminal table.
    Table,
    /// One self-contained HTML file.
    Html,
    /// Markdown, for pull requests.
    Md,
    /// The full report as JSON (docs/report-json.md).
    Json,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Runs to report; the latest in the store when none is given.
    runs: Vec<i64>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write the report here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// With the table: also write the full report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// With the table: a row per topic as well.
    #[arg(long)]
    by_topic: bool,
    /// The judge's confusion matrix on a gold set (JSON: labels, matrix), to correct rates
    /// for the judge's errors.
    #[arg(long, value_name = "FILE")]
    confusion: Option<PathBuf>,
    /// Correct rates with the judge's confusion matrix against the labels people gave these
    /// runs' answers in `candor serve` (each labeller's newest label).
    #[arg(long, conflicts_with = "confusion")]
    confusion_from_labels: bool,
    #[command(flatten)]
    judge: ReadJudge,
}

/// Whose verdicts a read shows.
#[derive(clap::Args, Clone, Default)]
pub struct ReadJudge {
    /// The judge whose verdicts to read (e.g. `rules@0.17`); by default the one that judged
    /// the run last (the audit's judge, or the latest `candor rejudge`).
    #[arg(long = "judge", value_name = "JUDGE_ID")]
    pub id: Option<String>,
}

impl ReadJudge {
    /// The judge id to read for `run`: the one asked for, which must have judged it, or the
    /// one that judged it last.
    pub fn for_run(&self, store: &dyn Store, run: i64) -> Result<String, Failure> {
        candor_audit::figures::judge_for_run(store, run, self.id.as_deref())
    }
}

pub fn open_store(path: &Path) -> Result<Box<dyn Store>, Failure> {
    let is_url = path.to_str().is_some_and(candor_store::is_postgres_url);
    if !is_url && !path.exists() {
        return Err(Failure::usage(format!(
            "no store at {}: run `candor audit` first or pass --store PATH",
            path.display()
        )));
    }
    candor_store::open(path).map_err(Failure::run)
}

pub fn run(store_path: &Path, args: ReportArgs) -> Result<(), Failure> {
    let store = open_store(store_path)?;
    let runs = if args.runs.is_empty() {
        vec![store.latest_run().map_err(Failure::usage)?]
    } else {
        args.runs.clone()
    };
    let confusion = args
        .confusion
        .as_deref()
        .map(findings::read_confusion)
        .transpose()?;
    if args.format == Format::Table {
        for &run in &runs {
            let judge = args.judge.for_run(store.as_ref(), run)?;
            crate::summary::emit(
                store.as_ref(),
                run,
                &judge,
                args.by_topic,
                args.json.as_deref(),
            )?;
        }
        return Ok(());
    }
    let judge = args.judge.for_run(store.as_ref(), runs[0])?;
    let confusion = match args.confusion_from_labels {
        true => Some(candor_audit::labels::label_confusion(
            store.as_ref(),
            &runs,
            &judge,
        )?),
        false => confusion,
    };
    let data = findings::build(store.as_ref(), &runs, &judge, confusion.as_ref())?;
    write(&data, args.format, args.out.as_deref())
}

pub fn render(data: &ReportData, format: Format) -> String {
    match format {
        Format::Html => candor_report::html::render(data),
        Format::Md => candor_report::markdown::render(data),
        Format::Json => candor_report::to_json(data),
        Format::Table => candor_report::terminal::render(data, true),
    }
}

pub fn write(data: &ReportData, format: Format, out: Option<&Path>) -> Result<(), Failure> {
    let text = render(data, format);
    match out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
