//! `candor compare A B`: two targets, or one target before and after (two runs), on the same
//! questions, paired by probe, language and sample.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use candor_stats::analysis::{self, Comparison, Difference};
use clap::Args;
use serde::Serialize;

use crate::findings::observations;
use crate::report::open_store;
use crate::Failure;

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

fn side(
    store: &candor_store::SqliteStore,
    text: &str,
    judge: &crate::report::ReadJudge,
) -> Result<(String, Vec<analysis::Obs>), Failure> {
    let bad = || {
        Failure::usage(format!(
            "'{text}' is not RUN or RUN:N (N counts the run's targets from 1)"
        ))
    };
    let (run, n) = match text.split_once(':') {
        Some((r, n)) => (
            r.parse::<i64>().map_err(|_| bad())?,
            Some(n.parse::<usize>().map_err(|_| bad())?),
        ),
        None => (text.parse::<i64>().map_err(|_| bad())?, None),
    };
    let targets = store.targets(run).map_err(Failure::usage)?;
    if targets.is_empty() {
        return Err(Failure::usage(format!(
            "no run {run} with targets in the store"
        )));
    }
    let index = match n {
        Some(n) if n >= 1 && n <= targets.len() => n - 1,
        Some(n) => {
            return Err(Failure::usage(format!(
                "run {run} has {} targets, not {n}",
                targets.len()
            )))
        }
        None if targets.len() == 1 => 0,
        None => {
            return Err(Failure::usage(format!(
                "run {run} has {} targets: say which, as {run}:1 .. {run}:{}",
                targets.len(),
                targets.len()
            )))
        }
    };
    let target = &targets[index];
    let judge = judge.for_run(store, run)?;
    let rows = store.judged_rows(run, &judge).map_err(Failure::run)?;
    let obs = observations(rows, &[target.id], 0);
    Ok((format!("run {run} · {} · judge {judge}", target.spec), obs))
}

fn line(d: &Difference) -> String {
    let p = d
        .p_adjusted
        .or(d.p_value)
        .map_or("–".into(), |p| format!("{p:.3}"));
    format!(
        "{:<10}  {:>5.0}%  {:>5.0}%  {:>+5.0} [{:+.0}, {:+.0}]  p {p}  pairs {}",
        d.measure.as_str(),
        d.first * 100.0,
        d.second * 100.0,
        d.diff * 100.0,
        d.low * 100.0,
        d.high * 100.0,
        d.pairs
    )
}

pub fn run(store_path: &Path, args: CompareArgs) -> Result<(), Failure> {
    let store = open_store(store_path)?;
    let (first_name, first) = side(&store, &args.first, &args.judge)?;
    let (second_name, second) = side(&store, &args.second, &args.judge)?;
    let comparison = analysis::compare(&first, &second);
    if comparison.overall.is_empty() {
        return Err(Failure::usage(
            "the two sides share no judged question (same probe, language and sample)",
        ));
    }
    let mut out = String::new();
    let _ = writeln!(out, "A: {first_name}\nB: {second_name}\npaired by probe, language and sample; A minus B in points, 95% paired-bootstrap interval, exact McNemar p (Holm-adjusted across topics)\n");
    let _ = writeln!(
        out,
        "{:<28}  {:<10}  {:>6}  {:>6}  difference",
        "", "measure", "A", "B"
    );
    for d in &comparison.overall {
        let _ = writeln!(out, "{:<28}  {}", "all", line(d));
    }
    for (topic, diffs) in &comparison.by_topic {
        for d in diffs {
            let _ = writeln!(out, "{:<28}  {}", topic, line(d));
        }
    }
    print!("{out}");
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
        let mut md = format!("# candor comparison\n\nA: {first_name}  \nB: {second_name}\n\n| topic | measure | A | B | A minus B | p | pairs |\n|---|---|---|---|---|---|---|\n");
        for (topic, d) in comparison
            .overall
            .iter()
            .map(|d| ("all".to_string(), d))
            .chain(
                comparison
                    .by_topic
                    .iter()
                    .flat_map(|(t, ds)| ds.iter().map(move |d| (t.clone(), d))),
            )
        {
            let p = d
                .p_adjusted
                .or(d.p_value)
                .map_or("–".into(), |p| format!("{p:.3}"));
            let _ = writeln!(
                md,
                "| {} | {} | {:.0}% | {:.0}% | {:+.0} [{:+.0}, {:+.0}] | {p} | {} |",
                topic.replace('|', "\\|"),
                d.measure.as_str(),
                d.first * 100.0,
                d.second * 100.0,
                d.diff * 100.0,
                d.low * 100.0,
                d.high * 100.0,
                d.pairs
            );
        }
        std::fs::write(path, md)
            .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}
