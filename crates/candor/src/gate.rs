//! `candor gate RUN --config gate.toml`: thresholds a model must meet before it ships. Exit 0
//! when every rule passes, 1 when any fails (each failure explained in a line), 2 when the
//! configuration is wrong. `--junit` writes the same as JUnit XML for CI systems.

use std::path::{Path, PathBuf};

use candor_audit::gate::{check_all, read_rules};
use clap::Args;

use crate::report::open_store;
use crate::Failure;

#[derive(Args)]
pub struct GateArgs {
    /// The run to check.
    run: i64,
    /// The thresholds (TOML: [[rule]] tables).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Also write the results as JUnit XML.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    #[command(flatten)]
    judge: crate::report::ReadJudge,
}

pub fn run(store_path: &Path, args: GateArgs) -> Result<(), Failure> {
    let rules = read_rules(&args.config)?;
    let store = open_store(store_path)?;
    let judge = args.judge.for_run(store.as_ref(), args.run)?;
    let data = candor_audit::figures::build(store.as_ref(), &[args.run], &judge, None)?;
    let checks = check_all(&rules, &data);
    println!("gate: run {}, verdicts of judge {judge}", args.run);
    for c in &checks {
        println!(
            "{} {}: {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.rule,
            c.target,
            c.message
        );
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, candor_report::gate::junit(&checks))
            .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    if failed > 0 {
        return Err(Failure::run(format!(
            "gate: {failed} of {} checks failed",
            checks.len()
        )));
    }
    println!("gate: all {} checks passed", checks.len());
    Ok(())
}
