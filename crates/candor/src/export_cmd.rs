//! `candor export`: stored runs as data, one row per response.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candor_store::export::{export_jsonl, ExportError, ParquetExport};
use candor_store::Store;
use clap::{Args, ValueEnum};

use crate::Failure;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object a line (schema in the README).
    Jsonl,
    /// Apache Parquet (Snappy): the same fields, the nested ones as structs.
    Parquet,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The runs to export (default: the latest).
    #[arg(value_name = "RUN")]
    runs: Vec<i64>,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Where to write; the file appears only once complete.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Whose verdicts (a judge id); default: the judge that judged each run last.
    #[arg(long, value_name = "JUDGE")]
    judge: Option<String>,
}

fn write(
    store: &dyn Store,
    runs: &[i64],
    format: Format,
    judge: Option<&str>,
    mut out: BufWriter<std::fs::File>,
) -> Result<usize, ExportError> {
    let mut rows = 0;
    match format {
        Format::Jsonl => {
            for &run in runs {
                rows += export_jsonl(store, run, judge, &mut out)?;
            }
            out.flush()?;
        }
        Format::Parquet => {
            let mut parquet = ParquetExport::new(out)?;
            for &run in runs {
                rows += parquet.add_run(store, run, judge)?;
            }
            parquet.finish()?.flush()?;
        }
    }
    Ok(rows)
}

pub fn run(store_path: &Path, args: ExportArgs) -> Result<(), Failure> {
    let store = candor_store::open(store_path).map_err(|e| Failure::usage(e.to_string()))?;
    let runs = match args.runs.is_empty() {
        true => vec![store
            .latest_run()
            .map_err(|e| Failure::usage(e.to_string()))?],
        false => args.runs.clone(),
    };
    for &run in &runs {
        store.run(run).map_err(|e| Failure::usage(e.to_string()))?;
    }
    let partial = args.out.with_extension("partial");
    let cannot = |e: &dyn std::fmt::Display| {
        Failure::run(format!("cannot write {}: {e}", args.out.display()))
    };
    let file = std::fs::File::create(&partial).map_err(|e| cannot(&e))?;
    let out = BufWriter::new(file);
    let written = write(
        store.as_ref(),
        &runs,
        args.format,
        args.judge.as_deref(),
        out,
    );
    let rows = written.map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        Failure::run(e.to_string())
    })?;
    std::fs::rename(&partial, &args.out).map_err(|e| cannot(&e))?;
    let runs: Vec<String> = runs.iter().map(i64::to_string).collect();
    eprintln!(
        "candor: exported {rows} responses of run {} to {}",
        runs.join(", "),
        args.out.display()
    );
    Ok(())
}
