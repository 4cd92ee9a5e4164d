//! What the terminal shows after a run: the report's figures model rendered for a terminal.

use std::path::Path;

use candor_store::Store;

use crate::Failure;

/// Prints the finding and the figures of `run_id` as `judge` read it, and writes the full
/// report as JSON to `json` when asked. `by_topic` adds a row per topic.
pub fn emit(
    store: &dyn Store,
    run_id: i64,
    judge: &str,
    by_topic: bool,
    json: Option<&Path>,
) -> Result<(), Failure> {
    let data = candor_audit::figures::build(store, &[run_id], judge, None)?;
    print!("{}", candor_report::terminal::render(&data, by_topic));
    if let Some(path) = json {
        std::fs::write(path, candor_report::to_json(&data))
            .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}
