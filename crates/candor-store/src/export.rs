//! Runs exported as data: one row per response, with its probe's metadata, its verdict and its
//! provenance, for analysis outside candor (pandas, DuckDB, Hugging Face `datasets`).
//!
//! Rows are read a page at a time, so a run of any size exports in bounded memory (the verdicts
//! of one run are held, without text). The schema is [`EXPORT_SCHEMA`]; the README documents
//! each field. JSON lines or Parquet: the same fields, nested objects as Parquet structs.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, NullBufferBuilder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use candor_core::Probe;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
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
    #[error("cannot write the Parquet file: {0}")]
    Parquet(String),
}

impl From<parquet::errors::ParquetError> for ExportError {
    fn from(e: parquet::errors::ParquetError) -> ExportError {
        ExportError::Parquet(e.to_string())
    }
}

/// Writes every response of `run` as one JSON line; verdicts are `judge`'s, or those of the
/// judge that judged the run last. Returns how many rows were written.
pub fn export_jsonl(
    store: &dyn Store,
    run: i64,
    judge: Option<&str>,
    out: &mut dyn Write,
) -> Result<usize, ExportError> {
    let written = for_each_row(store, run, judge, |row| {
        // serde_json escapes every control character: model text cannot break a line.
        serde_json::to_writer(&mut *out, &row).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        Ok(())
    })?;
    out.flush()?;
    Ok(written)
}

/// Calls `each` with every response of `run` as an export row, a page of responses at a time.
fn for_each_row(
    store: &dyn Store,
    run: i64,
    judge: Option<&str>,
    mut each: impl FnMut(Value) -> Result<(), ExportError>,
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
            each(export_row(
                &run_fields,
                stored,
                targets.get(&stored.target_id),
                probes.get(&stored.probe_id),
                judge.as_deref(),
                verdicts.get(&stored.id),
            ))?;
            written += 1;
        }
    }
    Ok(written)
}

/// A Parquet file of export rows, with the same fields as the JSON lines (the nested ones as
/// structs), written a row group at a time so that memory stays bounded.
pub struct ParquetExport<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: usize,
}

/// Rows buffered before they go to the file as one record batch.
const PARQUET_BATCH: usize = 8192;

impl<W: Write + Send> ParquetExport<W> {
    pub fn new(out: W) -> Result<ParquetExport<W>, ExportError> {
        let schema = Arc::new(parquet_schema());
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            // Row groups are buffered in memory until written: bound them by size too.
            .set_max_row_group_row_count(Some(PARQUET_BATCH * 4))
            .set_max_row_group_bytes(Some(64 << 20))
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(properties))?;
        Ok(ParquetExport {
            writer,
            schema,
            columns: COLUMNS
                .iter()
                .map(|(name, shape)| Column::new(name, shape))
                .collect(),
            rows: 0,
        })
    }

    /// Appends every response of `run` (see [`export_jsonl`]); returns how many.
    pub fn add_run(
        &mut self,
        store: &dyn Store,
        run: i64,
        judge: Option<&str>,
    ) -> Result<usize, ExportError> {
        for_each_row(store, run, judge, |row| self.push(&row))
    }

    fn push(&mut self, row: &Value) -> Result<(), ExportError> {
        for column in &mut self.columns {
            column.push(&row[column.name]);
        }
        self.rows += 1;
        if self.rows == PARQUET_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        if self.rows == 0 {
            return Ok(());
        }
        let arrays = self.columns.iter_mut().map(Column::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| ExportError::Parquet(e.to_string()))?;
        self.writer.write(&batch)?;
        self.rows = 0;
        Ok(())
    }

    /// Writes what is buffered and the file's footer.
    pub fn finish(mut self) -> Result<W, ExportError> {
        self.flush()?;
        Ok(self.writer.into_inner()?)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Real,
    Flag,
}

enum Shape {
    Leaf(Kind),
    /// A nested object, null where the row has none (a response's target or verdict).
    Struct(&'static [(&'static str, Kind)]),
}

/// The export's fields in order: those of [`export_row`].
const COLUMNS: &[(&str, Shape)] = {
    use Kind::*;
    use Shape::*;
    &[
        ("schema", Leaf(Int)),
        (
            "run",
            Struct(&[
                ("id", Int),
                ("suite", Text),
                ("suite_version", Text),
                ("suite_hash", Text),
                ("started_at", Text),
                ("candor_version", Text),
            ]),
        ),
        ("response_id", Leaf(Int)),
        (
            "target",
            Struct(&[
                ("spec", Text),
                ("provider", Text),
                ("model", Text),
                ("base_url", Text),
            ]),
        ),
        (
            "probe",
            Struct(&[
                ("id", Text),
                ("topic", Text),
                ("subject", Text),
                ("intent", Text),
                ("template", Text),
                ("focus", Flag),
            ]),
        ),
        ("lang", Leaf(Text)),
        ("sample", Leaf(Int)),
        ("prompt", Leaf(Text)),
        ("outcome", Leaf(Text)),
        ("text", Leaf(Text)),
        ("reasoning", Leaf(Text)),
        ("finish_reason", Leaf(Text)),
        ("http_status", Leaf(Int)),
        ("error", Leaf(Text)),
        ("model_reported", Leaf(Text)),
        ("route", Leaf(Text)),
        ("latency_ms", Leaf(Real)),
        ("first_byte_ms", Leaf(Real)),
        ("attempts", Leaf(Int)),
        ("cached_from", Leaf(Int)),
        (
            "verdict",
            Struct(&[
                ("judge", Text),
                ("compliance", Text),
                ("stance", Text),
                ("fact_recall", Real),
                ("rule", Text),
            ]),
        ),
    ]
};

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Text => DataType::Utf8,
        Kind::Int => DataType::Int64,
        Kind::Real => DataType::Float64,
        Kind::Flag => DataType::Boolean,
    }
}

fn struct_fields(children: &[(&str, Kind)]) -> Fields {
    children
        .iter()
        .map(|(name, kind)| Field::new(*name, data_type(*kind), true))
        .collect()
}

fn parquet_schema() -> Schema {
    Schema::new(
        COLUMNS
            .iter()
            .map(|(name, shape)| match shape {
                Shape::Leaf(kind) => Field::new(*name, data_type(*kind), true),
                Shape::Struct(children) => {
                    Field::new(*name, DataType::Struct(struct_fields(children)), true)
                }
            })
            .collect::<Vec<_>>(),
    )
}

enum Leaf {
    Text(StringBuilder),
    Int(Int64Builder),
    Real(Float64Builder),
    Flag(BooleanBuilder),
}

impl Leaf {
    fn new(kind: Kind) -> Leaf {
        match kind {
            Kind::Text => Leaf::Text(StringBuilder::new()),
            Kind::Int => Leaf::Int(Int64Builder::new()),
            Kind::Real => Leaf::Real(Float64Builder::new()),
            Kind::Flag => Leaf::Flag(BooleanBuilder::new()),
        }
    }

    fn push(&mut self, value: &Value) {
        match self {
            Leaf::Text(b) => b.append_option(value.as_str()),
            Leaf::Int(b) => b.append_option(value.as_i64()),
            Leaf::Real(b) => b.append_option(value.as_f64()),
            Leaf::Flag(b) => b.append_option(value.as_bool()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Leaf::Text(b) => Arc::new(b.finish()),
            Leaf::Int(b) => Arc::new(b.finish()),
            Leaf::Real(b) => Arc::new(b.finish()),
            Leaf::Flag(b) => Arc::new(b.finish()),
        }
    }
}

struct Column {
    name: &'static str,
    body: ColumnBody,
}

enum ColumnBody {
    Leaf(Leaf),
    Struct {
        fields: Fields,
        children: Vec<(&'static str, Leaf)>,
        present: NullBufferBuilder,
    },
}

impl Column {
    fn new(name: &'static str, shape: &Shape) -> Column {
        let body = match shape {
            Shape::Leaf(kind) => ColumnBody::Leaf(Leaf::new(*kind)),
            Shape::Struct(children) => ColumnBody::Struct {
                fields: struct_fields(children),
                children: children.iter().map(|(n, k)| (*n, Leaf::new(*k))).collect(),
                present: NullBufferBuilder::new(PARQUET_BATCH),
            },
        };
        Column { name, body }
    }

    fn push(&mut self, value: &Value) {
        match &mut self.body {
            ColumnBody::Leaf(leaf) => leaf.push(value),
            ColumnBody::Struct {
                children, present, ..
            } => {
                present.append(!value.is_null());
                for (name, leaf) in children {
                    leaf.push(&value[*name]);
                }
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match &mut self.body {
            ColumnBody::Leaf(leaf) => leaf.finish(),
            ColumnBody::Struct {
                fields,
                children,
                present,
            } => {
                let arrays = children.iter_mut().map(|(_, leaf)| leaf.finish()).collect();
                Arc::new(StructArray::new(fields.clone(), arrays, present.finish()))
            }
        }
    }
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
