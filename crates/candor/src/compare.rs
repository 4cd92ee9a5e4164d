//! `candor compare A B`: two targets, or one target before and after (two runs), on the same
//! questions, paired by probe, language and sample.

use std::path::{Path, PathBuf};

use candor_stats::analysis::{self, Comparison};
use clap::Args;
use serde::Serialize;

use crate::report::open_store;
use crate::Failure;
use candor_audit::figures::comparison_side;

#[derive(Args)]
pub struct CompareArgs {
    /// The first side: RUN (a run with one target) or RUN:N (its N-th target, from 1).
    first: String,
    /// The second side, written the same way.
    second: String,
    /// Also write the comparison as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the comparison as Markdown to this file.
    #[arg(long, value_name = "FILE")]
    md: Option<PathBuf>,
    #[command(flatten)]
    judge: crate::report::ReadJudge,
}

#[derive(Serialize)]
struct Output<'a> {
    first: &'a str,
    second: &'a str,
    comparison: &'a Comparison,
}

pub fn run(store_path: &Path, args: CompareArgs) -> Result<(), Failure> {
    let store = open_store(store_path)?;
    let judge = args.judge.id.as_deref();
    let (first_name, first) = comparison_side(store.as_ref(), &args.first, judge)?;
    let (second_name, second) = comparison_side(store.as_ref(), &args.second, judge)?;
    let comparison = analysis::compare(&first, &second);
    if comparison.overall.is_empty() {
        return Err(Failure::usage(
            "the two sides share no judged question (same probe, language and sample)",
        ));
    }
    print!(
        "{}",
        candor_report::compare::text(&first_name, &second_name, &comparison)
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&Output {
            first: &first_name,
            second: &second_name,
            comparison: &comparison,
        })
        .expect("serialises");
        std::fs::write(path, json + "\n")
            .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(path) = &args.md {
        let md = candor_report::compare::markdown(&first_name, &second_name, &comparison);
        std::fs::write(path, md)
            .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}
