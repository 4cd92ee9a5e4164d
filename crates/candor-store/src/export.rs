//! Runs exported as data: one row per response, with its probe's metadata, its verdict and its
//! provenance, for analysis outside candor (pandas, DuckDB, Hugging Face `datasets`).
//!
//! Rows are read a page at a time, so a run of any size exports in bounded memory (the verdicts
//! of one run are held, without text). The schema is [`EXPORT_SCHEMA`]; the README documents
//! each field.

use std::collections::HashMap;
use std::io::Write;

use candor_core::Probe;
use serde_json::{json, Value};

use crate::{JudgedRow, Store, StoreError, StoredResponse, TargetRow};

/// Bumped when a field changes meaning or goes; new fields may be added within a version.
pub const EXPORT_SCHEMA: u32 = 1;

/// Responses read at once.
const PAGE: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes every response of `run` as one JSON line; verdicts are `judge`'s, or those of the
/// judge that judged the run last. Returns how many rows were written.
pub fn export_jsonl(
    store: &dyn Store,
    run: i64,
    judge: Option<&str>,
    out: &mut dyn Write,
) -> Result<usize, ExportError> {
    let run_row = store.run(run)?;
    let judge = match judge {
        Some(j) => Some(j.to_string()),
        None => store.run_judges(run)?.into_iter().next(),
    };
    let targets: HashMap<i64, TargetRow> =
        store.targets(run)?.into_iter().map(|t| (t.id, t)).collect();
    let probes: HashMap<String, Probe> = store
        .probes(run)?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let verdicts: HashMap<i64, JudgedRow> = match &judge {
        Some(j) => store
            .judged_rows(run, j)?
            .into_iter()
            .map(|r| (r.response_id, r))
            .collect(),
        None => HashMap::new(),
    };
    let run_fields = json!({
        "id": run,
        "suite": run_row.suite_id,
        "suite_version": run_row.suite_version,
        "suite_hash": run_row.suite_hash,
        "started_at": run_row.started_at,
        "candor_version": run_row.candor_version,
    });
    let mut written = 0;
    let mut after = 0;
    loop {
        let page = store.responses_after(run, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for stored in &page {
            let row = export_row(
                &run_fields,
                stored,
                targets.get(&stored.target_id),
                probes.get(&stored.probe_id),
                judge.as_deref(),
                verdicts.get(&stored.id),
            );
            // serde_json escapes every control character: model text cannot break a line.
            serde_json::to_writer(&mut *out, &row).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            written += 1;
        }
    }
    out.flush()?;
    Ok(written)
}

fn export_row(
    run: &Value,
    stored: &StoredResponse,
    target: Option<&TargetRow>,
    probe: Option<&Probe>,
    judge: Option<&str>,
    verdict: Option<&JudgedRow>,
) -> Value {
    let r = &stored.response;
    json!({
        "schema": EXPORT_SCHEMA,
        "run": run,
        "response_id": stored.id,
        "target": target.map(|t| json!({
            "spec": t.spec,
            "provider": t.provider,
            "model": t.model,
            "base_url": t.base_url,
        })),
        "probe": {
            "id": stored.probe_id,
            "topic": probe.map(|p| p.topic.as_str()),
            "subject": probe.and_then(|p| p.subject.as_deref()),
            "intent": probe.and_then(|p| p.intent).map(|i| i.as_str()),
            "template": probe.and_then(|p| p.template.as_deref()),
            "focus": probe.map(|p| p.is_focus()),
        },
        "lang": stored.lang,
        "sample": stored.sample,
        "prompt": stored.prompt,
        "outcome": r.outcome.as_str(),
        "text": r.text,
        "reasoning": r.reasoning,
        "finish_reason": r.finish_reason,
        "http_status": r.http_status,
        "error": r.error,
        "model_reported": r.model_reported,
        "route": r.route,
        "latency_ms": r.latency_ms,
        "first_byte_ms": r.first_byte_ms,
        "attempts": r.attempts,
        "cached_from": stored.cached_from,
        "verdict": judge.map(|j| json!({
            "judge": j,
            "compliance": verdict.and_then(|v| v.compliance).map(|c| c.as_str()),
            "stance": verdict.and_then(|v| v.stance).map(|s| s.as_str()),
            "fact_recall": verdict.and_then(|v| v.fact_recall),
            "rule": verdict.and_then(|v| v.rule.as_deref()),
        })),
    })
}
