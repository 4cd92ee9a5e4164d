use std::path::{Path, PathBuf};

use candor_judge::RulesJudge;
use candor_report::ReportData;
use candor_store::SqliteStore;
use clap::{Args, ValueEnum};

use crate::findings;
use crate::Failure;

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
    /// With the table: also write its summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The judge's confusion matrix on a gold set (JSON: labels, matrix), to correct rates
    /// for the judge's errors.
    #[arg(long, value_name = "FILE")]
    confusion: Option<PathBuf>,
}

pub fn open_store(path: &Path) -> Result<SqliteStore, Failure> {
    if !path.exists() {
        return Err(Failure::usage(format!(
            "no store at {}: run `candor audit` first or pass --store PATH",
            path.display()
        )));
    }
    SqliteStore::open(path).map_err(Failure::run)
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
            let summary =
                crate::summary::from_store(&store, run, RulesJudge::ID).map_err(Failure::usage)?;
            crate::summary::emit(&summary, args.json.as_deref())?;
        }
        return Ok(());
    }
    let data = findings::build(&store, &runs, RulesJudge::ID, confusion.as_ref())?;
    write(&data, args.format, args.out.as_deref())
}

pub fn render(data: &ReportData, format: Format) -> String {
    match format {
        Format::Html => candor_report::html::render(data),
        Format::Md => candor_report::markdown::render(data),
        Format::Json | Format::Table => {
            serde_json::to_string_pretty(data).expect("report serialises") + "\n"
        }
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
