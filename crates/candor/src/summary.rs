use candor_report::{AuditSummary, SuiteInfo, TargetReport, JSON_SCHEMA_VERSION};
use candor_stats::{summarize, Observation};
use candor_store::{SqliteStore, StoreError};

/// The figures of one run, computed from the store's rows only.
pub fn from_store(
    store: &SqliteStore,
    run_id: i64,
    judge: &str,
) -> Result<AuditSummary, StoreError> {
    let run = store.run(run_id)?;
    let targets = store.targets(run_id)?;
    let rows = store.judged_rows(run_id, judge)?;
    let observations: Vec<Observation> = rows
        .into_iter()
        .filter_map(|row| {
            let target = targets.iter().position(|t| t.id == row.target_id)?;
            Some(Observation {
                target,
                topic: row.topic,
                outcome: row.outcome,
                compliance: row.compliance,
            })
        })
        .collect();
    let summaries = summarize(targets.len(), &observations);
    Ok(AuditSummary {
        schema: JSON_SCHEMA_VERSION,
        run_id,
        status: run.status,
        started_at: run.started_at,
        finished_at: run.finished_at,
        suite: SuiteInfo {
            id: run.suite_id,
            version: run.suite_version,
            hash: run.suite_hash,
        },
        judge: judge.to_string(),
        targets: targets
            .into_iter()
            .zip(summaries)
            .map(|(t, figures)| TargetReport::new(t.spec, t.provider, t.model, t.base_url, figures))
            .collect(),
    })
}

/// Prints the table and writes the JSON file when asked.
pub fn emit(summary: &AuditSummary, json: Option<&std::path::Path>) -> Result<(), crate::Failure> {
    print!("{}", candor_report::render_table(summary));
    if let Some(path) = json {
        std::fs::write(path, candor_report::to_json(summary) + "\n")
            .map_err(|e| crate::Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}
