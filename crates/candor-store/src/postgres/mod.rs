//! The PostgreSQL store: a team's shared record. The same schema, version numbers and answers as
//! the SQLite store; a pool of connections, one transaction per batch.
//!
//! The `postgres` client drives its own small runtime, which cannot start inside another one; the
//! runner writes from inside tokio, so every call made there runs on a scoped thread of its own.

mod schema;
mod tls;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use candor_core::{Probe, Request, Response, Suite, Verdict};
use postgres::error::SqlState;
use postgres::Client;
use r2d2_postgres::PostgresConnectionManager;

use crate::{
    label_row, verdict_row, Answer, AnswerFilter, AnswerHit, ErrorCount, HighWater, JudgedRow,
    LabelRow, NewLabel, NewResponse, RunRow, Store, StoreError, StoredResponse, TargetRow,
    WorkItem, WorkLeft, EXCERPT_CHARS,
};
use schema::{migrations, NOW};

/// Connections one process holds at most: the runner writes on one, reports and the dashboard
/// read on the others.
const POOL_SIZE: u32 = 8;
/// Any key will do, so long as every candor process takes the same one: it keeps two processes
/// from migrating one database at once.
const MIGRATION_LOCK: i64 = 0x63616e646f72;

type Pool = r2d2::Pool<PostgresConnectionManager<tokio_postgres_rustls::MakeRustlsConnect>>;

pub struct PostgresStore {
    /// Always present; taken only by `drop`, which must close the connections off any runtime.
    pool: Option<Pool>,
    /// The URL without its password: what errors name.
    location: String,
}

/// Whether `location` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The URL with any password replaced by `***`, fit for errors and logs.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find('/').map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            if let Some(colon) = out[rest..rest + at].find(':') {
                out.replace_range(rest + colon + 1..rest + at, "***");
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let end = out[i..].find('&').map_or(out.len(), |e| i + e);
        out.replace_range(i + "password=".len()..end, "***");
    }
    out
}

/// Runs `f` where the `postgres` client may block: here, or on a scoped thread where this one is
/// inside a tokio runtime.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// PostgreSQL's text cannot hold a NUL character, which model output may carry: it is kept as
/// U+2400 (SYMBOL FOR NULL) rather than lose the row.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{2400}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

/// As [`describe`], naming what to do where the server's certificate was not trusted.
fn describe_tls(location: &str, e: &postgres::Error, root_cert: Option<&str>) -> StoreError {
    let mut error = describe(location, e);
    let text = format!("{e:?}");
    if text.contains("certificate") || text.contains("Certificate") {
        if let StoreError::Postgres { message, .. } = &mut error {
            message.push_str(&match root_cert {
                Some(path) => format!(" (the server's certificate does not verify against {path} or the public roots)"),
                None => " (the server's certificate does not verify against the public roots: name its CA with ?sslrootcert=PATH)".to_string(),
            });
        }
    }
    error
}

fn describe(location: &str, e: &postgres::Error) -> StoreError {
    let hint = match e.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            " (the server refused the login: check the user and password in the URL)"
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
            " (no such database on the server: create it first)"
        }
        _ if e.is_closed() => " (the connection was lost; what was committed is kept, and the run resumes where it stopped)",
        _ => "",
    };
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    };
    StoreError::Postgres {
        path: location.to_string(),
        message: format!("{detail}{hint}"),
    }
}

impl PostgresStore {
    /// Connects to the database at `url`, creates or brings its schema up to date, and keeps a
    /// pool of connections to it.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let location = redact(url);
        let tls = tls::tls(url).map_err(|message| StoreError::Postgres {
            path: location.clone(),
            message,
        })?;
        off_runtime(|| {
            let mut config: postgres::Config =
                tls.url
                    .parse()
                    .map_err(|e: postgres::Error| StoreError::Postgres {
                        path: location.clone(),
                        message: format!("not a PostgreSQL URL: {e}"),
                    })?;
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(Duration::from_secs(10));
            }
            // One connection first, so that a refused login or a missing database is reported as
            // the server said it, not as a pool's timeout.
            let mut client = config
                .connect(tls.connector.clone())
                .map_err(|e| describe_tls(&location, &e, tls.root_cert.as_deref()))?;
            migrate(&mut client, &location)?;
            let pool = r2d2::Pool::builder()
                .max_size(POOL_SIZE)
                .min_idle(Some(1))
                .connection_timeout(Duration::from_secs(30))
                .build_unchecked(PostgresConnectionManager::new(config, tls.connector));
            Ok(PostgresStore {
                pool: Some(pool),
                location,
            })
        })
    }

    /// Whether this store's connections are encrypted, as the server sees them.
    pub fn uses_tls(&self) -> Result<bool, StoreError> {
        self.with(|c| {
            c.query_one(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .map(|r| r.get(0))
        })
    }

    /// The schema version (the number of migrations applied).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_one("SELECT version FROM candor_schema", &[])
                .map(|r| r.get(0))
        })
    }

    /// Runs `f` on a pooled connection. A connection the server has dropped is replaced at
    /// checkout (the pool tests it), so a lost connection costs only the call that was using it.
    fn with<R: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, postgres::Error> + Send,
    ) -> Result<R, StoreError> {
        off_runtime(|| {
            let pool = self
                .pool
                .as_ref()
                .expect("the pool lives as long as the store");
            let mut conn = pool.get().map_err(|e| StoreError::Postgres {
                path: self.location.clone(),
                message: format!("no connection to the server: {e}"),
            })?;
            f(&mut conn).map_err(|e| describe(&self.location, &e))
        })
    }

    fn bad(&self, column: &'static str, value: &str) -> StoreError {
        StoreError::BadValue {
            path: self.location.clone(),
            column,
            value: value.chars().take(80).collect(),
        }
    }

    fn parse<T: std::str::FromStr>(
        &self,
        value: &str,
        column: &'static str,
    ) -> Result<T, StoreError> {
        value.parse().map_err(|_| self.bad(column, value))
    }

    fn sample(&self, value: i64) -> Result<u32, StoreError> {
        u32::try_from(value).map_err(|_| self.bad("responses.sample", &value.to_string()))
    }

    fn no_run(&self, run: i64) -> StoreError {
        StoreError::NoRun {
            path: self.location.clone(),
            run,
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Closing a connection blocks on the client's own runtime too.
        let pool = self.pool.take();
        off_runtime(move || drop(pool));
    }
}

/// Applies the migrations the database lacks, in one transaction under an advisory lock, so
/// that workers starting together migrate once. A database newer than this candor is refused.
fn migrate(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let all = migrations();
    let known = all.len() as i64;
    let mut tx = client.transaction().map_err(|e| describe(location, &e))?;
    let applied = (|| {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS candor_schema (version BIGINT NOT NULL)")?;
        let version: Option<i64> = tx
            .query_opt("SELECT version FROM candor_schema", &[])?
            .map(|r| r.get(0));
        if version.is_none() {
            tx.execute("INSERT INTO candor_schema (version) VALUES (0)", &[])?;
        }
        Ok(version.unwrap_or(0))
    })()
    .map_err(|e: postgres::Error| describe(location, &e))?;
    if applied > known {
        return Err(StoreError::Migration {
            path: location.to_string(),
            message: format!(
                "the database is at schema version {applied}, newer than this candor knows ({known}): upgrade candor"
            ),
        });
    }
    for (i, sql) in all.iter().enumerate().skip(applied as usize) {
        tx.batch_execute(sql)
            .and_then(|_| tx.execute("UPDATE candor_schema SET version = $1", &[&(i as i64 + 1)]))
            .map_err(|e| StoreError::Migration {
                path: location.to_string(),
                message: format!("migration {}: {e}", i + 1),
            })?;
    }
    tx.commit().map_err(|e| describe(location, &e))
}

const RESPONSE_COLUMNS: &str = "id, target_id, probe_id, lang, sample, request, outcome, text, reasoning, finish_reason,
    http_status, error, raw_body, model_reported, latency_ms, first_byte_ms, chunks, attempts, base_url, route, cached_from";

impl PostgresStore {
    fn stored_response(&self, r: &postgres::Row) -> Result<StoredResponse, StoreError> {
        let outcome: String = r.get(6);
        let request: String = r.get(5);
        let chunks: Option<String> = r.get(16);
        let mut response = Response {
            outcome: self.parse(&outcome, "responses.outcome")?,
            text: r.get(7),
            reasoning: r.get(8),
            finish_reason: r.get(9),
            http_status: r
                .get::<_, Option<i64>>(10)
                .map(|s| {
                    u16::try_from(s).map_err(|_| self.bad("responses.http_status", &s.to_string()))
                })
                .transpose()?,
            error: r.get(11),
            raw_body: r.get(12),
            model_reported: r.get(13),
            latency_ms: r.get(14),
            first_byte_ms: r.get(15),
            attempts: u32::try_from(r.get::<_, i64>(17)).unwrap_or(u32::MAX),
            base_url: r.get(18),
            route: r.get(19),
            ..Response::default()
        };
        if let Some(chunks) = chunks {
            response.chunks =
                serde_json::from_str(&chunks).map_err(|_| self.bad("responses.chunks", &chunks))?;
        }
        let request = serde_json::from_str::<Request>(&request)
            .map_err(|_| self.bad("responses.request", &request))?;
        Ok(StoredResponse {
            id: r.get(0),
            target_id: r.get(1),
            probe_id: r.get(2),
            lang: r.get(3),
            sample: self.sample(r.get(4))?,
            prompt: request.prompt,
            cached_from: r.get(20),
            response,
        })
    }
}

/// The conditions both the page and its count apply past the run, target, language and
/// verdict: words, probe, intent and judges' disagreement.
macro_rules! answer_conditions {
    () => {
        "
   AND ($6::TEXT IS NULL OR strpos(lower(r.text), lower($6)) > 0 OR strpos(lower(r.probe_id), lower($6)) > 0)
   AND ($8::TEXT IS NULL OR r.probe_id = $8)
   AND ($9::TEXT IS NULL OR EXISTS (SELECT 1 FROM runs ru JOIN probes p ON p.suite_hash = ru.suite_hash
        WHERE ru.id = r.run_id AND p.probe_id = r.probe_id AND p.intent = $9))
   AND (NOT $10::BOOLEAN OR EXISTS (SELECT 1 FROM verdicts d WHERE d.response_id = r.id AND d.judge = $7
        AND (d.rule = 'P2' OR EXISTS (SELECT 1 FROM verdicts e WHERE e.response_id = r.id
             AND e.judge <> $7 AND e.compliance IS DISTINCT FROM d.compliance))))"
    };
}

/// The answers a page filter keeps: $1 run, $2 target row, $3 language, $4 compliance,
/// $5 stance, $6 words, $7 judge, $8 probe, $9 intent, $10 disputed only; each but the run
/// ignored when null (or false).
const ANSWER_FILTER: &str = concat!(
    "FROM responses r LEFT JOIN verdicts v ON v.response_id = r.id AND v.judge = $7
 WHERE r.run_id = $1
   AND ($2::BIGINT IS NULL OR r.target_id = $2)
   AND ($3::TEXT IS NULL OR r.lang = $3)
   AND ($4::TEXT IS NULL OR v.compliance = $4)
   AND ($5::TEXT IS NULL OR v.stance = $5)",
    answer_conditions!()
);

/// The same filter for counting: the verdict is read only where compliance or stance is asked
/// for, so that counting a whole run joins nothing.
const ANSWER_COUNT: &str = concat!(
    "SELECT count(*) FROM responses r
 WHERE r.run_id = $1
   AND ($2::BIGINT IS NULL OR r.target_id = $2)
   AND ($3::TEXT IS NULL OR r.lang = $3)
   AND (($4::TEXT IS NULL AND $5::TEXT IS NULL) OR EXISTS (SELECT 1 FROM verdicts v
        WHERE v.response_id = r.id AND v.judge = $7
          AND ($4::TEXT IS NULL OR v.compliance = $4) AND ($5::TEXT IS NULL OR v.stance = $5)))",
    answer_conditions!()
);

const INSERT_RESPONSE: &str = "INSERT INTO responses (run_id, target_id, probe_id, lang, sample, request_hash, request, outcome, text, reasoning,
    finish_reason, http_status, error, raw_body, model_reported, latency_ms,
    first_byte_ms, chunks, attempts, base_url, route, candor_version)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";

/// The server's clock in epoch milliseconds: leases are timed by one clock, whichever machine a
/// worker runs on.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

fn insert_probes(tx: &mut postgres::Transaction<'_>, suite: &Suite) -> Result<(), postgres::Error> {
    let insert = tx.prepare(
        "INSERT INTO probes (suite_hash, probe_id, topic, subject, intent, template, body) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT DO NOTHING",
    )?;
    for p in &suite.probes {
        let body = serde_json::to_string(p).expect("probe serialises");
        tx.execute(
            &insert,
            &[
                &suite.hash,
                &p.id,
                &p.topic,
                &p.subject,
                &p.intent.map(|i| i.as_str()),
                &p.template,
                &text(&body),
            ],
        )?;
    }
    Ok(())
}

fn insert_responses(
    tx: &mut postgres::Transaction<'_>,
    rows: &[NewResponse<'_>],
) -> Result<Vec<i64>, postgres::Error> {
    let insert = tx.prepare(&format!("{INSERT_RESPONSE} RETURNING id"))?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let id = execute_response(tx, &insert, row, |tx, s, p| tx.query_one(s, p))?;
        ids.push(id.get(0));
    }
    Ok(ids)
}

/// A verdict that replaces another takes a new id, as SQLite's REPLACE gives it: the judge
/// that wrote last is the one whose verdicts have the highest ids.
fn upsert_verdicts(
    tx: &mut postgres::Transaction<'_>,
    rows: &[(i64, &Verdict)],
) -> Result<(), postgres::Error> {
    let upsert = tx.prepare(&format!(
        "INSERT INTO verdicts (response_id, judge, compliance, stance, fact_recall, rule, rationale)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (response_id, judge) DO UPDATE SET
            id = nextval(pg_get_serial_sequence('verdicts', 'id')),
            compliance = EXCLUDED.compliance, stance = EXCLUDED.stance,
            fact_recall = EXCLUDED.fact_recall, rule = EXCLUDED.rule,
            rationale = EXCLUDED.rationale, created_at = {NOW}"
    ))?;
    for (response_id, v) in rows {
        tx.execute(
            &upsert,
            &[
                response_id,
                &v.judge,
                &v.compliance.map(|c| c.as_str()),
                &v.stance.map(|s| s.as_str()),
                &v.fact_recall,
                &v.rule,
                &text(&v.rationale),
            ],
        )?;
    }
    Ok(())
}

/// Binds a response's columns and runs `insert` with them by `run` (an execute, or a query of
/// the new row's id).
fn execute_response<R>(
    tx: &mut postgres::Transaction<'_>,
    insert: &postgres::Statement,
    row: &NewResponse<'_>,
    run: impl FnOnce(
        &mut postgres::Transaction<'_>,
        &postgres::Statement,
        &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<R, postgres::Error>,
) -> Result<R, postgres::Error> {
    let (q, r) = (row.request, row.response);
    let chunks =
        (!r.chunks.is_empty()).then(|| serde_json::to_string(&r.chunks).expect("chunks serialise"));
    run(
        tx,
        insert,
        &[
            &row.run_id,
            &row.target_id,
            &q.probe_id,
            &q.lang,
            &i64::from(q.sample),
            &row.request_hash,
            &text(row.request_json),
            &r.outcome.as_str(),
            &text(&r.text),
            &opt_text(&r.reasoning),
            &opt_text(&r.finish_reason),
            &r.http_status.map(i64::from),
            &opt_text(&r.error),
            &opt_text(&r.raw_body),
            &opt_text(&r.model_reported),
            &r.latency_ms,
            &r.first_byte_ms,
            &chunks,
            &i64::from(r.attempts),
            &r.base_url,
            &r.route,
            &candor_core::CANDOR_VERSION,
        ],
    )
}

impl Store for PostgresStore {
    fn create_run(
        &mut self,
        suite: &Suite,
        settings: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let settings = settings.to_string();
        self.with(|c| {
            c.query_one(
                "INSERT INTO runs (suite_id, suite_version, suite_hash, settings, candor_version) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&suite.id, &suite.version, &suite.hash, &settings, &candor_core::CANDOR_VERSION],
            )
            .map(|r| r.get(0))
        })
    }

    fn add_target(
        &mut self,
        run_id: i64,
        position: usize,
        provenance: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let field = |name: &str| provenance[name].as_str().unwrap_or_default().to_string();
        let (spec, provider, model, base_url) = (
            field("spec"),
            field("provider"),
            field("model"),
            field("base_url"),
        );
        let provenance = provenance.to_string();
        self.with(|c| {
            c.query_one(
                "INSERT INTO targets (run_id, position, spec, provider, model, base_url, provenance) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[&run_id, &(position as i64), &spec, &provider, &model, &base_url, &provenance],
            )
            .map(|r| r.get(0))
        })
    }

    fn put_probes(&mut self, suite: &Suite) -> Result<(), StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            insert_probes(&mut tx, suite)?;
            tx.commit()
        })
    }

    fn finish_run(&mut self, run_id: i64, status: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                &format!("UPDATE runs SET status = $2, finished_at = {NOW} WHERE id = $1"),
                &[&run_id, &status],
            )
            .map(|_| ())
        })
    }

    fn set_status(&mut self, run_id: i64, status: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET status = $2 WHERE id = $1",
                &[&run_id, &status],
            )
            .map(|_| ())
        })
    }

    fn run(&self, run_id: i64) -> Result<RunRow, StoreError> {
        let row = self.with(|c| {
            c.query_opt(
                "SELECT id, suite_id, suite_version, suite_hash, settings, candor_version, started_at, finished_at, status FROM runs WHERE id = $1",
                &[&run_id],
            )
        })?;
        let r = row.ok_or_else(|| self.no_run(run_id))?;
        let settings: String = r.get(4);
        Ok(RunRow {
            id: r.get(0),
            suite_id: r.get(1),
            suite_version: r.get(2),
            suite_hash: r.get(3),
            settings: serde_json::from_str(&settings).unwrap_or(serde_json::Value::Null),
            candor_version: r.get(5),
            started_at: r.get(6),
            finished_at: r.get(7),
            status: r.get(8),
        })
    }

    fn latest_run(&self) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_one("SELECT max(id) FROM runs", &[])
                .map(|r| r.get::<_, Option<i64>>(0))
        })?
        .ok_or(StoreError::Empty {
            path: self.location.clone(),
        })
    }

    fn targets(&self, run_id: i64) -> Result<Vec<TargetRow>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT id, position, spec, provider, model, base_url, provenance FROM targets WHERE run_id = $1 ORDER BY position",
                &[&run_id],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                let provenance: String = r.get(6);
                TargetRow {
                    id: r.get(0),
                    position: r.get(1),
                    spec: r.get(2),
                    provider: r.get(3),
                    model: r.get(4),
                    base_url: r.get(5),
                    provenance: serde_json::from_str(&provenance)
                        .unwrap_or(serde_json::Value::Null),
                }
            })
            .collect())
    }

    fn probes(&self, run_id: i64) -> Result<Vec<Probe>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT p.body FROM probes p JOIN runs ON runs.suite_hash = p.suite_hash WHERE runs.id = $1 ORDER BY p.seq",
                &[&run_id],
            )
        })?;
        rows.iter()
            .map(|r| {
                let body: String = r.get(0);
                serde_json::from_str(&body).map_err(|_| self.bad("probes.body", &body))
            })
            .collect()
    }

    fn insert_responses(&mut self, rows: &[NewResponse<'_>]) -> Result<Vec<i64>, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let ids = insert_responses(&mut tx, rows)?;
            tx.commit()?;
            Ok(ids)
        })
    }

    fn insert_judged(
        &mut self,
        suite: &Suite,
        rows: &[NewResponse<'_>],
        verdicts: &[Option<Verdict>],
    ) -> Result<Vec<i64>, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            insert_probes(&mut tx, suite)?;
            let ids = insert_responses(&mut tx, rows)?;
            let judged = crate::judged_ids(&ids, verdicts);
            upsert_verdicts(&mut tx, &judged)?;
            tx.commit()?;
            Ok(ids)
        })
    }

    fn responses(&self, run_id: i64) -> Result<Vec<StoredResponse>, StoreError> {
        self.responses_after(run_id, 0, i64::MAX)
    }

    fn responses_after(
        &self,
        run_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredResponse>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                &format!("SELECT {RESPONSE_COLUMNS} FROM responses WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
                &[&run_id, &after, &limit],
            )
        })?;
        rows.iter().map(|r| self.stored_response(r)).collect()
    }

    fn answered(&self, run_id: i64) -> Result<HashSet<(i64, String, String, u32)>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT target_id, probe_id, lang, sample FROM responses WHERE run_id = $1",
                &[&run_id],
            )
        })?;
        rows.iter()
            .map(|r| Ok((r.get(0), r.get(1), r.get(2), self.sample(r.get(3))?)))
            .collect()
    }

    fn error_counts(&self, run_id: i64) -> Result<HashMap<i64, ErrorCount>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT target_id, count(*), count(*) FILTER (WHERE outcome = 'error'),
                        (SELECT error FROM responses e WHERE e.run_id = $1 AND e.target_id = r.target_id AND e.outcome = 'error' ORDER BY e.id LIMIT 1)
                 FROM responses r WHERE run_id = $1 GROUP BY target_id",
                &[&run_id],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    ErrorCount {
                        responses: r.get(1),
                        errors: r.get(2),
                        first: r.get(3),
                    },
                )
            })
            .collect())
    }

    fn cached(&self, request_hash: &str) -> Result<Option<i64>, StoreError> {
        self.with(|c| {
            c.query_opt(
                "SELECT coalesce(cached_from, id) FROM responses
                 WHERE request_hash = $1 AND outcome <> 'error' ORDER BY id DESC LIMIT 1",
                &[&request_hash],
            )
            .map(|row| row.map(|r| r.get(0)))
        })
    }

    fn copy_cached(&mut self, run_id: i64, copies: &[(i64, &str, i64)]) -> Result<(), StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let copy = tx.prepare(
                "INSERT INTO responses (run_id, target_id, probe_id, lang, sample, request_hash, request, outcome, text,
                    reasoning, finish_reason, http_status, error, raw_body, model_reported, latency_ms, first_byte_ms,
                    chunks, attempts, base_url, route, candor_version, cached_from)
                 SELECT $1, $2, probe_id, lang, sample, request_hash, $3, outcome, text,
                    reasoning, finish_reason, http_status, error, raw_body, model_reported, latency_ms, first_byte_ms,
                    chunks, attempts, base_url, route, candor_version, id
                 FROM responses WHERE id = $4",
            )?;
            for (target_id, request_json, from) in copies {
                tx.execute(&copy, &[&run_id, target_id, &text(request_json), from])?;
            }
            tx.commit()
        })
    }

    fn cached_judgement(&self, key: &str) -> Result<Option<Verdict>, StoreError> {
        let verdict: Option<String> = self.with(|c| {
            c.query_opt("SELECT verdict FROM judge_cache WHERE key = $1", &[&key])
                .map(|row| row.map(|r| r.get(0)))
        })?;
        Ok(verdict.and_then(|t| serde_json::from_str(&t).ok()))
    }

    fn cache_judgement(&self, key: &str, verdict: &Verdict) -> Result<(), StoreError> {
        let json = serde_json::to_string(verdict).expect("verdict serialises");
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO judge_cache (key, judge, verdict) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO UPDATE SET judge = EXCLUDED.judge, verdict = EXCLUDED.verdict, created_at = {NOW}"
                ),
                &[&key, &verdict.judge, &text(&json)],
            )
            .map(|_| ())
        })
    }

    fn insert_verdicts(&mut self, rows: &[(i64, Verdict)]) -> Result<(), StoreError> {
        let rows: Vec<(i64, &Verdict)> = rows.iter().map(|(id, v)| (*id, v)).collect();
        self.with(|c| {
            let mut tx = c.transaction()?;
            upsert_verdicts(&mut tx, &rows)?;
            tx.commit()
        })
    }

    fn run_judges(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT v.judge FROM verdicts v JOIN responses r ON r.id = v.response_id
                 WHERE r.run_id = $1 GROUP BY v.judge ORDER BY max(v.id) DESC",
                &[&run_id],
            )
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn judged_rows_after(
        &self,
        run_id: i64,
        judge: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<JudgedRow>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT r.id, r.target_id, r.probe_id, coalesce(p.topic, '?'), p.subject, p.intent, p.template,
                        r.lang, r.sample, r.outcome, v.compliance, v.stance, v.fact_recall, v.rule
                 FROM responses r
                 JOIN runs ON runs.id = r.run_id
                 LEFT JOIN probes p ON p.suite_hash = runs.suite_hash AND p.probe_id = r.probe_id
                 LEFT JOIN verdicts v ON v.response_id = r.id AND v.judge = $2
                 WHERE r.run_id = $1 AND r.id > $3
                 ORDER BY r.id LIMIT $4",
                &[&run_id, &judge, &after, &limit],
            )
        })?;
        rows.iter()
            .map(|r| {
                let outcome: String = r.get(9);
                let intent: Option<String> = r.get(5);
                let compliance: Option<String> = r.get(10);
                let stance: Option<String> = r.get(11);
                Ok(JudgedRow {
                    response_id: r.get(0),
                    target_id: r.get(1),
                    probe_id: r.get(2),
                    topic: r.get(3),
                    subject: r.get(4),
                    intent: intent
                        .map(|i| self.parse(&i, "probes.intent"))
                        .transpose()?,
                    template: r.get(6),
                    lang: r.get(7),
                    sample: self.sample(r.get(8))?,
                    outcome: self.parse(&outcome, "responses.outcome")?,
                    compliance: compliance
                        .map(|c| self.parse(&c, "verdicts.compliance"))
                        .transpose()?,
                    stance: stance
                        .map(|s| self.parse(&s, "verdicts.stance"))
                        .transpose()?,
                    fact_recall: r.get(12),
                    rule: r.get(13),
                })
            })
            .collect()
    }

    fn add_work(&mut self, run_id: i64, items: &[WorkItem]) -> Result<(), StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let insert = tx.prepare(
                "INSERT INTO work_items (run_id, target_id, probe_id, lang, sample) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
            )?;
            for w in items {
                tx.execute(&insert, &[&run_id, &w.target_id, &w.probe_id, &w.lang, &i64::from(w.sample)])?;
            }
            tx.commit()
        })
    }

    fn claim_work(
        &mut self,
        run_id: i64,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<WorkItem>, StoreError> {
        // SKIP LOCKED: workers claiming at once each take different rows without waiting on
        // one another.
        let rows = self.with(|c| {
            c.query(
                &format!(
                    "UPDATE work_items SET lease_owner = $3, lease_until = {NOW_MS} + $4
                     WHERE seq IN (SELECT seq FROM work_items
                                   WHERE run_id = $1 AND (lease_until IS NULL OR lease_until < {NOW_MS})
                                   ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING target_id, probe_id, lang, sample"
                ),
                &[&run_id, &(limit as i64), &owner, &(lease.as_millis() as i64)],
            )
        })?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok(WorkItem {
                    target_id: r.get(0),
                    probe_id: r.get(1),
                    lang: r.get(2),
                    sample: self.sample(r.get(3))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort();
        Ok(claimed)
    }

    fn complete_work(&mut self, rows: &[NewResponse<'_>]) -> Result<usize, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let insert = tx.prepare(&format!(
                "{INSERT_RESPONSE} ON CONFLICT (run_id, target_id, probe_id, lang, sample) DO NOTHING"
            ))?;
            let retire = tx.prepare(
                "DELETE FROM work_items WHERE run_id = $1 AND target_id = $2 AND probe_id = $3 AND lang = $4 AND sample = $5",
            )?;
            let mut stored = 0;
            for row in rows {
                stored += execute_response(&mut tx, &insert, row, |tx, s, p| tx.execute(s, p))? as usize;
                let q = row.request;
                tx.execute(
                    &retire,
                    &[&row.run_id, &row.target_id, &q.probe_id, &q.lang, &i64::from(q.sample)],
                )?;
            }
            tx.commit()?;
            Ok(stored)
        })
    }

    fn work_left(&self, run_id: i64) -> Result<WorkLeft, StoreError> {
        self.with(|c| {
            c.query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE lease_until IS NULL OR lease_until < {NOW_MS}),
                            count(*) FILTER (WHERE lease_until >= {NOW_MS}),
                            count(DISTINCT lease_owner) FILTER (WHERE lease_until >= {NOW_MS})
                     FROM work_items WHERE run_id = $1"
                ),
                &[&run_id],
            )
            .map(|r| WorkLeft {
                pending: r.get(0),
                leased: r.get(1),
                workers: r.get(2),
            })
        })
    }

    fn renew_leases(
        &mut self,
        run_id: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<usize, StoreError> {
        self.with(|c| {
            c.execute(
                &format!(
                    "UPDATE work_items SET lease_until = {NOW_MS} + $3 WHERE run_id = $1 AND lease_owner = $2"
                ),
                &[&run_id, &owner, &(lease.as_millis() as i64)],
            )
            .map(|n| n as usize)
        })
    }

    fn high_water(&self) -> Result<HighWater, StoreError> {
        self.with(|c| {
            c.query_one(
                "SELECT (SELECT coalesce(max(id), 0) FROM responses), (SELECT coalesce(max(id), 0) FROM verdicts)",
                &[],
            )
            .map(|r| HighWater {
                response: r.get(0),
                verdict: r.get(1),
            })
        })
    }

    fn run_of_response(&self, id: i64) -> Result<Option<i64>, StoreError> {
        self.with(|c| {
            c.query_opt("SELECT run_id FROM responses WHERE id = $1", &[&id])
                .map(|row| row.map(|r| r.get(0)))
        })
    }

    fn add_label(&mut self, label: &NewLabel<'_>) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_one(
                "INSERT INTO labels (response_id, labeller, compliance, stance, note) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &label.response_id,
                    &text(label.labeller),
                    &label.compliance.map(|c| c.as_str()),
                    &label.stance.map(|s| s.as_str()),
                    &text(label.note),
                ],
            )
            .map(|r| r.get(0))
        })
    }

    fn labels(&self, run_id: Option<i64>) -> Result<Vec<LabelRow>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT l.id, l.response_id, r.run_id, l.labeller, l.compliance, l.stance, l.note, l.created_at,
                        r.probe_id, r.lang, r.request, r.text
                 FROM labels l JOIN responses r ON r.id = l.response_id
                 WHERE $1::BIGINT IS NULL OR r.run_id = $1 ORDER BY l.id",
                &[&run_id],
            )
        })?;
        rows.iter()
            .map(|r| {
                let request: String = r.get(10);
                label_row(
                    [r.get(0), r.get(1), r.get(2)],
                    [r.get(3), r.get(6), r.get(7), r.get(8), r.get(9), r.get(11)],
                    (r.get(4), r.get(5)),
                    &request,
                )
                .map_err(|(column, value)| self.bad(column, &value))
            })
            .collect()
    }

    fn answer_page(&self, f: &AnswerFilter) -> Result<(i64, Vec<AnswerHit>), StoreError> {
        let (total, rows) = self.with(|c| {
            let filters: [&(dyn postgres::types::ToSql + Sync); 10] = [
                &f.run_id,
                &f.target_id,
                &f.lang,
                &f.compliance,
                &f.stance,
                &f.text,
                &f.judge,
                &f.probe,
                &f.intent,
                &f.disputed,
            ];
            let total: i64 = c
                .query_one(ANSWER_COUNT, &filters)?
                .get(0);
            let mut page = filters.to_vec();
            page.extend([&f.limit as &(dyn postgres::types::ToSql + Sync), &f.offset]);
            let rows = c.query(
                &format!(
                    "SELECT r.id, r.target_id, r.probe_id, r.lang, r.outcome, substr(r.text, 1, {EXCERPT_CHARS}),
                            v.compliance, v.stance, v.rule
                     {ANSWER_FILTER} ORDER BY r.id LIMIT $11 OFFSET $12"
                ),
                &page,
            )?;
            Ok((total, rows))
        })?;
        let hits = rows
            .iter()
            .map(|r| AnswerHit {
                id: r.get(0),
                target_id: r.get(1),
                probe_id: r.get(2),
                lang: r.get(3),
                outcome: r.get(4),
                excerpt: r.get(5),
                compliance: r.get(6),
                stance: r.get(7),
                rule: r.get(8),
            })
            .collect();
        Ok((total, hits))
    }

    fn verdicts_of(&self, response_id: i64) -> Result<Vec<Verdict>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT judge, compliance, stance, fact_recall, rule, rationale FROM verdicts
                 WHERE response_id = $1 ORDER BY id DESC",
                &[&response_id],
            )
        })?;
        rows.iter()
            .map(|r| {
                verdict_row(r.get(0), (r.get(1), r.get(2)), r.get(3), r.get(4), r.get(5))
                    .map_err(|(column, value)| self.bad(column, &value))
            })
            .collect()
    }

    fn answers_after(
        &self,
        run_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Answer>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT id, target_id, probe_id, lang, sample, outcome, text, error FROM responses
                 WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&run_id, &after, &limit],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok(Answer {
                    id: r.get(0),
                    target_id: r.get(1),
                    probe_id: r.get(2),
                    lang: r.get(3),
                    sample: self.sample(r.get(4))?,
                    outcome: r.get(5),
                    text: r.get(6),
                    error: r.get(7),
                })
            })
            .collect()
    }
}
