use std::path::{Path, PathBuf};

use candor_judge::RulesJudge;
use candor_store::SqliteStore;
use clap::Args;

use crate::Failure;

#[derive(Args)]
pub struct ReportArgs {
    /// The run to report; the latest in the store when omitted.
    run: Option<i64>,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn run(store_path: &Path, args: ReportArgs) -> Result<(), Failure> {
    if !store_path.exists() {
        return Err(Failure::usage(format!(
            "no store at {}: run `candor audit` first or pass --store PATH",
            store_path.display()
        )));
    }
    let store = SqliteStore::open(store_path).map_err(Failure::run)?;
    let run_id = match args.run {
        Some(id) => id,
        None => store.latest_run().map_err(Failure::usage)?,
    };
    let summary =
        crate::summary::from_store(&store, run_id, RulesJudge::ID).map_err(Failure::usage)?;
    crate::summary::emit(&summary, args.json.as_deref())
}
