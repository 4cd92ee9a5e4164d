//! `candor export`: stored runs as data, one row per response.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use candor_store::export::export_jsonl;
use clap::{Args, ValueEnum};

use crate::Failure;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object a line (schema in the README).
    Jsonl,
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
    let mut out = BufWriter::new(file);
    let mut rows = 0;
    for &run in &runs {
        rows += match args.format {
            Format::Jsonl => export_jsonl(store.as_ref(), run, args.judge.as_deref(), &mut out),
        }
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            Failure::run(e.to_string())
        })?;
    }
    drop(out);
    std::fs::rename(&partial, &args.out).map_err(|e| cannot(&e))?;
    let runs: Vec<String> = runs.iter().map(i64::to_string).collect();
    eprintln!(
        "candor: exported {rows} responses of run {} to {}",
        runs.join(", "),
        args.out.display()
    );
    Ok(())
}
