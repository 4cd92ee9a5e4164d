//! The SQLite store: one file, WAL, one transaction per batch.

mod schema;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use candor_core::{Probe, Request, Response, Suite, Verdict};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{
    label_row, verdict_row, Answer, AnswerFilter, AnswerHit, ErrorCount, HighWater, JudgedRow,
    LabelRow, NewLabel, NewResponse, RunRow, Store, StoreError, StoredResponse, TargetRow,
    WorkItem, WorkLeft, EXCERPT_CHARS,
};
use schema::migrations;

pub struct SqliteStore {
    conn: Connection,
    path: String,
}

impl SqliteStore {
    /// Opens (creating if needed) a store and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let name = path.display().to_string();
        let sqlite = |source| StoreError::Sqlite {
            path: name.clone(),
            source,
        };
        let mut conn = Connection::open(path).map_err(sqlite)?;
        // WAL keeps readers (a dashboard, a report) unblocked while an audit writes; NORMAL sync
        // in WAL mode still loses no committed transaction on a process crash.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;
        // 64 MB of page cache (the default is 2 MB): a run of a million responses keeps its
        // indexes' upper pages in memory instead of reading them back for every insert.
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(sqlite)?;
        // Checkpoints (each one a sync) every 64 MB of log rather than every 4 MB.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)
            .map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite)?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Migration {
                path: name.clone(),
                message: e.to_string(),
            })?;
        Ok(SqliteStore { conn, path: name })
    }

    /// Every row `sql` (one parameter: the run) returns, each read by `read`.
    fn per_run<T, C: FromIterator<T>>(
        &self,
        sql: &str,
        run_id: i64,
        read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<C, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        stmt.query_map([run_id], read)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The schema version (the number of migrations applied).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Runs `write` in one transaction, committed only where it succeeds.
    fn in_transaction<R>(
        &mut self,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite { path, source };
        let tx = self.conn.transaction();
        let written = tx.and_then(|tx| {
            let result = write(&tx)?;
            tx.commit()?;
            Ok(result)
        });
        written.map_err(sqlite)
    }

    /// Runs one prepared statement for every row, all in one transaction.
    fn batch<T>(
        &mut self,
        sql: &str,
        rows: &[T],
        bind: impl FnMut(&mut rusqlite::CachedStatement<'_>, &T) -> rusqlite::Result<usize>,
    ) -> Result<(), StoreError> {
        self.in_transaction(|tx| each_row(tx, sql, rows, bind))
    }

    fn parse<T: std::str::FromStr>(
        &self,
        value: &str,
        column: &'static str,
    ) -> Result<T, StoreError> {
        value.parse().map_err(|_| self.bad(column, value))
    }

    fn bad(&self, column: &'static str, value: &str) -> StoreError {
        StoreError::BadValue {
            path: self.path.clone(),
            column,
            value: value.chars().take(80).collect(),
        }
    }
}

/// The conditions both the page and its count apply past the run, target, language and
/// verdict: words, probe, intent and judges' disagreement.
macro_rules! answer_conditions {
    () => {
        "
   AND (?6 IS NULL OR instr(lower(r.text), lower(?6)) > 0 OR instr(lower(r.probe_id), lower(?6)) > 0)
   AND (?8 IS NULL OR r.probe_id = ?8)
   AND (?9 IS NULL OR EXISTS (SELECT 1 FROM runs ru JOIN probes p ON p.suite_hash = ru.suite_hash
        WHERE ru.id = r.run_id AND p.probe_id = r.probe_id AND p.intent = ?9))
   AND (?10 = 0 OR EXISTS (SELECT 1 FROM verdicts d WHERE d.response_id = r.id AND d.judge = ?7
        AND (d.rule = 'P2' OR EXISTS (SELECT 1 FROM verdicts e WHERE e.response_id = r.id
             AND e.judge <> ?7 AND e.compliance IS NOT d.compliance))))"
    };
}

/// The answers a page filter keeps: ?1 run, ?2 target row, ?3 language, ?4 compliance,
/// ?5 stance, ?6 words, ?7 judge, ?8 probe, ?9 intent, ?10 disputed only; each but the run
/// ignored when null (or false).
const ANSWER_FILTER: &str = concat!(
    "FROM responses r LEFT JOIN verdicts v ON v.response_id = r.id AND v.judge = ?7
 WHERE r.run_id = ?1
   AND (?2 IS NULL OR r.target_id = ?2)
   AND (?3 IS NULL OR r.lang = ?3)
   AND (?4 IS NULL OR v.compliance = ?4)
   AND (?5 IS NULL OR v.stance = ?5)",
    answer_conditions!()
);

/// The same filter for counting: the verdict is read only where compliance or stance is asked
/// for, so that counting a whole run joins nothing.
const ANSWER_COUNT: &str = concat!(
    "SELECT count(*) FROM responses r
 WHERE r.run_id = ?1
   AND (?2 IS NULL OR r.target_id = ?2)
   AND (?3 IS NULL OR r.lang = ?3)
   AND ((?4 IS NULL AND ?5 IS NULL) OR EXISTS (SELECT 1 FROM verdicts v
        WHERE v.response_id = r.id AND v.judge = ?7
          AND (?4 IS NULL OR v.compliance = ?4) AND (?5 IS NULL OR v.stance = ?5)))",
    answer_conditions!()
);

/// The probe's condition of an answer filter.
const ANY_PROBE: &str = "(?8 IS NULL OR r.probe_id = ?8)";

/// `sql` with the probe's condition as a plain equality where a probe is asked for, so that
/// the (run, probe, id) index serves it: SQLite does not fold `?8 IS NULL` away, and the
/// either-or form scans the whole run.
fn for_probe(sql: &str, probe: bool) -> String {
    match probe {
        true => sql.replace(ANY_PROBE, "r.probe_id = ?8"),
        false => sql.to_string(),
    }
}

const INSERT_RESPONSE: &str = "INSERT INTO responses (run_id, target_id, probe_id, lang, sample, request_hash, request, outcome, text, reasoning,
    finish_reason, http_status, error, raw_body, model_reported, latency_ms,
    first_byte_ms, chunks, attempts, base_url, route, candor_version)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)";

const INSERT_PROBE: &str = "INSERT OR IGNORE INTO probes (suite_hash, probe_id, topic, subject, intent, template, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

const INSERT_VERDICT: &str = "INSERT OR REPLACE INTO verdicts (response_id, judge, compliance, stance, fact_recall, rule, rationale)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Runs one prepared statement for every row, inside `tx`.
fn each_row<T>(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    rows: &[T],
    mut bind: impl FnMut(&mut rusqlite::CachedStatement<'_>, &T) -> rusqlite::Result<usize>,
) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(sql)?;
    for row in rows {
        bind(&mut statement, row)?;
    }
    Ok(())
}

fn bind_probe(
    insert: &mut rusqlite::CachedStatement<'_>,
    suite_hash: &str,
    p: &Probe,
) -> rusqlite::Result<usize> {
    insert.execute(params![
        suite_hash,
        p.id,
        p.topic,
        p.subject,
        p.intent.map(|i| i.as_str()),
        p.template,
        serde_json::to_string(p).expect("probe serialises"),
    ])
}

fn bind_verdict(
    insert: &mut rusqlite::CachedStatement<'_>,
    response_id: i64,
    v: &Verdict,
) -> rusqlite::Result<usize> {
    insert.execute(params![
        response_id,
        v.judge,
        v.compliance.map(|c| c.as_str()),
        v.stance.map(|s| s.as_str()),
        v.fact_recall,
        v.rule,
        v.rationale,
    ])
}

/// Binds a response's columns and runs `insert` with them by `run` (an execute, or an insert
/// that gives the new row's id).
fn bind_response<R>(
    insert: &mut rusqlite::CachedStatement<'_>,
    row: &NewResponse<'_>,
    run: impl FnOnce(&mut rusqlite::CachedStatement<'_>, &[&dyn rusqlite::ToSql]) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
    let (q, r) = (row.request, row.response);
    run(
        insert,
        params![
            row.run_id,
            row.target_id,
            q.probe_id,
            q.lang,
            q.sample,
            row.request_hash,
            row.request_json,
            r.outcome.as_str(),
            r.text,
            r.reasoning,
            r.finish_reason,
            r.http_status,
            r.error,
            r.raw_body,
            r.model_reported,
            r.latency_ms,
            r.first_byte_ms,
            (!r.chunks.is_empty())
                .then(|| serde_json::to_string(&r.chunks).expect("chunks serialise")),
            r.attempts,
            r.base_url,
            r.route,
            candor_core::CANDOR_VERSION,
        ],
    )
}

/// Milliseconds since the epoch by this machine's clock, which every worker on one SQLite file
/// shares.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store for SqliteStore {
    fn create_run(
        &mut self,
        suite: &Suite,
        settings: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO runs (suite_id, suite_version, suite_hash, settings, candor_version) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![suite.id, suite.version, suite.hash, settings.to_string(), candor_core::CANDOR_VERSION],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn add_target(
        &mut self,
        run_id: i64,
        position: usize,
        provenance: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let value = provenance;
        let field = |name: &str| value[name].as_str().unwrap_or_default().to_string();
        self.conn
            .execute(
                "INSERT INTO targets (run_id, position, spec, provider, model, base_url, provenance) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![run_id, position as i64, field("spec"), field("provider"), field("model"), field("base_url"), value.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn put_probes(&mut self, suite: &Suite) -> Result<(), StoreError> {
        let hash = suite.hash.clone();
        self.batch(INSERT_PROBE, &suite.probes, |insert, p| {
            bind_probe(insert, &hash, p)
        })
    }

    fn insert_responses(&mut self, rows: &[NewResponse<'_>]) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(rows.len());
        self.batch(INSERT_RESPONSE, rows, |insert, row| {
            ids.push(bind_response(insert, row, |s, p| s.insert(p))?);
            Ok(1)
        })?;
        Ok(ids)
    }

    fn insert_judged(
        &mut self,
        suite: &Suite,
        rows: &[NewResponse<'_>],
        verdicts: &[Option<Verdict>],
    ) -> Result<Vec<i64>, StoreError> {
        self.in_transaction(|tx| {
            each_row(tx, INSERT_PROBE, &suite.probes, |insert, p| {
                bind_probe(insert, &suite.hash, p)
            })?;
            let mut ids = Vec::with_capacity(rows.len());
            each_row(tx, INSERT_RESPONSE, rows, |insert, row| {
                ids.push(bind_response(insert, row, |s, p| s.insert(p))?);
                Ok(1)
            })?;
            let judged = crate::judged_ids(&ids, verdicts);
            each_row(tx, INSERT_VERDICT, &judged, |insert, (id, v)| {
                bind_verdict(insert, *id, v)
            })?;
            Ok(ids)
        })
    }

    fn finish_run(&mut self, run_id: i64, status: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                params![run_id, status],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn set_status(&mut self, run_id: i64, status: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?2 WHERE id = ?1",
                params![run_id, status],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn run(&self, run_id: i64) -> Result<RunRow, StoreError> {
        self.conn
            .query_row(
                "SELECT id, suite_id, suite_version, suite_hash, settings, candor_version, started_at, finished_at, status FROM runs WHERE id = ?1",
                [run_id],
                |r| {
                    let settings: String = r.get(4)?;
                    Ok(RunRow {
                        id: r.get(0)?,
                        suite_id: r.get(1)?,
                        suite_version: r.get(2)?,
                        suite_hash: r.get(3)?,
                        settings: serde_json::from_str(&settings).unwrap_or(serde_json::Value::Null),
                        candor_version: r.get(5)?,
                        started_at: r.get(6)?,
                        finished_at: r.get(7)?,
                        status: r.get(8)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NoRun {
                path: self.path.clone(),
                run: run_id,
            })
    }

    fn latest_run(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT max(id) FROM runs", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::Empty {
                path: self.path.clone(),
            })
    }

    fn targets(&self, run_id: i64) -> Result<Vec<TargetRow>, StoreError> {
        self.per_run(
            "SELECT id, position, spec, provider, model, base_url, provenance FROM targets WHERE run_id = ?1 ORDER BY position",
            run_id,
            |r| {
                let provenance: String = r.get(6)?;
                Ok(TargetRow {
                    id: r.get(0)?,
                    position: r.get(1)?,
                    spec: r.get(2)?,
                    provider: r.get(3)?,
                    model: r.get(4)?,
                    base_url: r.get(5)?,
                    provenance: serde_json::from_str(&provenance)
                        .unwrap_or(serde_json::Value::Null),
                })
            },
        )
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
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, target_id, probe_id, lang, sample, request, outcome, text, reasoning, finish_reason,
                        http_status, error, raw_body, model_reported, latency_ms,
                        first_byte_ms, chunks, attempts, base_url, route, cached_from
                 FROM responses WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        type Raw = (
            i64,
            i64,
            String,
            String,
            u32,
            String,
            String,
            Option<String>,
            Option<i64>,
            Response,
        );
        let raw: Vec<Raw> = stmt
            .query_map([run_id, after, limit], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(16)?,
                    r.get(20)?,
                    Response {
                        text: r.get(7)?,
                        reasoning: r.get(8)?,
                        finish_reason: r.get(9)?,
                        http_status: r.get(10)?,
                        error: r.get(11)?,
                        raw_body: r.get(12)?,
                        model_reported: r.get(13)?,
                        latency_ms: r.get(14)?,
                        first_byte_ms: r.get(15)?,
                        attempts: r.get(17)?,
                        base_url: r.get(18)?,
                        route: r.get(19)?,
                        ..Response::default()
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        raw.into_iter()
            .map(
                |(
                    id,
                    target_id,
                    probe_id,
                    lang,
                    sample,
                    request,
                    outcome,
                    chunks,
                    cached_from,
                    mut response,
                )| {
                    response.outcome = self.parse(&outcome, "responses.outcome")?;
                    if let Some(chunks) = chunks {
                        response.chunks = serde_json::from_str(&chunks)
                            .map_err(|_| self.bad("responses.chunks", &chunks))?;
                    }
                    let request = serde_json::from_str::<Request>(&request)
                        .map_err(|_| self.bad("responses.request", &request))?;
                    Ok(StoredResponse {
                        id,
                        target_id,
                        probe_id,
                        lang,
                        sample,
                        prompt: request.prompt,
                        cached_from,
                        response,
                    })
                },
            )
            .collect()
    }

    fn error_counts(&self, run_id: i64) -> Result<HashMap<i64, ErrorCount>, StoreError> {
        self.per_run(
            "SELECT target_id, count(*), sum(outcome = 'error'),
                        (SELECT error FROM responses e WHERE e.run_id = r.run_id AND e.target_id = r.target_id AND e.outcome = 'error' ORDER BY e.id LIMIT 1)
                 FROM responses r WHERE run_id = ?1 GROUP BY target_id",
            run_id,
            |r| {
                Ok((
                    r.get(0)?,
                    ErrorCount {
                        responses: r.get(1)?,
                        errors: r.get(2)?,
                        first: r.get(3)?,
                    },
                ))
            },
        )
    }

    fn cached(&self, request_hash: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT coalesce(cached_from, id) FROM responses
                 WHERE request_hash = ?1 AND outcome <> 'error' ORDER BY id DESC LIMIT 1",
            )
            .and_then(|mut stmt| stmt.query_row([request_hash], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    fn copy_cached(&mut self, run_id: i64, copies: &[(i64, &str, i64)]) -> Result<(), StoreError> {
        self.batch(
            "INSERT INTO responses (run_id, target_id, probe_id, lang, sample, request_hash, request, outcome, text,
                reasoning, finish_reason, http_status, error, raw_body, model_reported, latency_ms, first_byte_ms,
                chunks, attempts, base_url, route, candor_version, cached_from)
             SELECT ?1, ?2, probe_id, lang, sample, request_hash, ?3, outcome, text,
                reasoning, finish_reason, http_status, error, raw_body, model_reported, latency_ms, first_byte_ms,
                chunks, attempts, base_url, route, candor_version, id
             FROM responses WHERE id = ?4",
            copies,
            |copy, (target_id, request_json, from)| copy.execute(params![run_id, target_id, request_json, from]),
        )
    }

    fn answered(
        &self,
        run_id: i64,
    ) -> Result<std::collections::HashSet<(i64, String, String, u32)>, StoreError> {
        self.per_run(
            "SELECT target_id, probe_id, lang, sample FROM responses WHERE run_id = ?1",
            run_id,
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
    }

    fn cached_judgement(&self, key: &str) -> Result<Option<Verdict>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT verdict FROM judge_cache WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    fn cache_judgement(&self, key: &str, verdict: &Verdict) -> Result<(), StoreError> {
        let text = serde_json::to_string(verdict).expect("verdict serialises");
        self.conn
            .execute(
                "INSERT OR REPLACE INTO judge_cache (key, judge, verdict) VALUES (?1, ?2, ?3)",
                rusqlite::params![key, verdict.judge, text],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn insert_verdicts(&mut self, rows: &[(i64, Verdict)]) -> Result<(), StoreError> {
        self.batch(INSERT_VERDICT, rows, |insert, (response_id, v)| {
            bind_verdict(insert, *response_id, v)
        })
    }

    fn run_judges(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT v.judge FROM verdicts v JOIN responses r ON r.id = v.response_id
                 WHERE r.run_id = ?1 GROUP BY v.judge ORDER BY max(v.id) DESC",
            )
            .map_err(|e| self.err(e))?;
        let judges = stmt
            .query_map(params![run_id], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(judges)
    }

    fn judged_rows_after(
        &self,
        run_id: i64,
        judge: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<JudgedRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT r.id, r.target_id, r.probe_id, coalesce(p.topic, '?'), p.subject, p.intent, p.template,
                        r.lang, r.sample, r.outcome, v.compliance, v.stance, v.fact_recall, v.rule
                 FROM responses r
                 JOIN runs ON runs.id = r.run_id
                 LEFT JOIN probes p ON p.suite_hash = runs.suite_hash AND p.probe_id = r.probe_id
                 LEFT JOIN verdicts v ON v.response_id = r.id AND v.judge = ?2
                 WHERE r.run_id = ?1 AND r.id > ?3
                 ORDER BY r.id LIMIT ?4",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params![run_id, judge, after, limit])
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let get_err = |e| self.err(e);
            let outcome: String = r.get(9).map_err(get_err)?;
            let intent: Option<String> = r.get(5).map_err(get_err)?;
            let compliance: Option<String> = r.get(10).map_err(get_err)?;
            let stance: Option<String> = r.get(11).map_err(get_err)?;
            out.push(JudgedRow {
                response_id: r.get(0).map_err(get_err)?,
                target_id: r.get(1).map_err(get_err)?,
                probe_id: r.get(2).map_err(get_err)?,
                topic: r.get(3).map_err(get_err)?,
                subject: r.get(4).map_err(get_err)?,
                intent: intent
                    .map(|i| self.parse(&i, "probes.intent"))
                    .transpose()?,
                template: r.get(6).map_err(get_err)?,
                lang: r.get(7).map_err(get_err)?,
                sample: r.get(8).map_err(get_err)?,
                outcome: self.parse(&outcome, "responses.outcome")?,
                compliance: compliance
                    .map(|c| self.parse(&c, "verdicts.compliance"))
                    .transpose()?,
                stance: stance
                    .map(|s| self.parse(&s, "verdicts.stance"))
                    .transpose()?,
                fact_recall: r.get(12).map_err(get_err)?,
                rule: r.get(13).map_err(get_err)?,
            });
        }
        Ok(out)
    }

    fn answers_after(
        &self,
        run_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Answer>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, target_id, probe_id, lang, sample, outcome, text, error FROM responses
                 WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([run_id, after, limit], |r| {
            Ok(Answer {
                id: r.get(0)?,
                target_id: r.get(1)?,
                probe_id: r.get(2)?,
                lang: r.get(3)?,
                sample: r.get(4)?,
                outcome: r.get(5)?,
                text: r.get(6)?,
                error: r.get(7)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    fn add_work(&mut self, run_id: i64, items: &[WorkItem]) -> Result<(), StoreError> {
        self.batch(
            "INSERT INTO work_items (run_id, target_id, probe_id, lang, sample) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
            items,
            |insert, w| insert.execute(params![run_id, w.target_id, w.probe_id, w.lang, w.sample]),
        )
    }

    fn claim_work(
        &mut self,
        run_id: i64,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<WorkItem>, StoreError> {
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        // IMMEDIATE takes the write lock first, so no other process picks between our read and
        // our lease.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let now = now_ms();
        let claimed = {
            let mut pick = tx
                .prepare_cached(
                    "UPDATE work_items SET lease_owner = ?3, lease_until = ?4
                     WHERE seq IN (SELECT seq FROM work_items
                                   WHERE run_id = ?1 AND (lease_until IS NULL OR lease_until < ?5)
                                   ORDER BY seq LIMIT ?2)
                     RETURNING target_id, probe_id, lang, sample",
                )
                .map_err(sqlite)?;
            let rows = pick
                .query_map(
                    params![
                        run_id,
                        limit as i64,
                        owner,
                        now + lease.as_millis() as i64,
                        now
                    ],
                    |r| {
                        Ok(WorkItem {
                            target_id: r.get(0)?,
                            probe_id: r.get(1)?,
                            lang: r.get(2)?,
                            sample: r.get(3)?,
                        })
                    },
                )
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sqlite)?;
            rows
        };
        tx.commit().map_err(sqlite)?;
        let mut claimed = claimed;
        claimed.sort();
        Ok(claimed)
    }

    fn complete_work(&mut self, rows: &[NewResponse<'_>]) -> Result<usize, StoreError> {
        self.in_transaction(|tx| {
            let mut insert = tx.prepare_cached(&format!(
                "{INSERT_RESPONSE} ON CONFLICT (run_id, target_id, probe_id, lang, sample) DO NOTHING"
            ))?;
            let mut retire = tx.prepare_cached(
                "DELETE FROM work_items WHERE run_id = ?1 AND target_id = ?2 AND probe_id = ?3 AND lang = ?4 AND sample = ?5",
            )?;
            let mut stored = 0;
            for row in rows {
                stored += bind_response(&mut insert, row, |s, p| s.execute(p))?;
                let q = row.request;
                retire.execute(params![
                    row.run_id,
                    row.target_id,
                    q.probe_id,
                    q.lang,
                    q.sample
                ])?;
            }
            Ok(stored)
        })
    }

    fn work_left(&self, run_id: i64) -> Result<WorkLeft, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FILTER (WHERE lease_until IS NULL OR lease_until < ?2),
                        count(*) FILTER (WHERE lease_until >= ?2),
                        count(DISTINCT lease_owner) FILTER (WHERE lease_until >= ?2)
                 FROM work_items WHERE run_id = ?1",
                params![run_id, now_ms()],
                |r| {
                    Ok(WorkLeft {
                        pending: r.get(0)?,
                        leased: r.get(1)?,
                        workers: r.get(2)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    fn renew_leases(
        &mut self,
        run_id: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE work_items SET lease_until = ?3 WHERE run_id = ?1 AND lease_owner = ?2",
                params![run_id, owner, now_ms() + lease.as_millis() as i64],
            )
            .map_err(|e| self.err(e))
    }

    fn limit_cache(&mut self, bytes: usize) -> Result<(), StoreError> {
        // A negative cache_size is a size in KiB.
        let kib = -((bytes / 1024).max(1) as i64);
        self.conn
            .pragma_update(None, "cache_size", kib)
            .map_err(|e| self.err(e))
    }

    fn high_water(&self) -> Result<HighWater, StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT coalesce(max(id), 0) FROM responses), (SELECT coalesce(max(id), 0) FROM verdicts)",
                [],
                |r| {
                    Ok(HighWater {
                        response: r.get(0)?,
                        verdict: r.get(1)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    fn run_of_response(&self, id: i64) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT run_id FROM responses WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    fn add_label(&mut self, label: &NewLabel<'_>) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO labels (response_id, labeller, compliance, stance, note) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    label.response_id,
                    label.labeller,
                    label.compliance.map(|c| c.as_str()),
                    label.stance.map(|s| s.as_str()),
                    label.note
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    fn labels(&self, run_id: Option<i64>) -> Result<Vec<LabelRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT l.id, l.response_id, r.run_id, l.labeller, l.compliance, l.stance, l.note, l.created_at,
                        r.probe_id, r.lang, r.request, r.text
                 FROM labels l JOIN responses r ON r.id = l.response_id
                 WHERE ?1 IS NULL OR r.run_id = ?1 ORDER BY l.id",
            )
            .map_err(|e| self.err(e))?;
        type Raw = (
            i64,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            String,
            String,
            String,
            String,
            String,
            String,
        );
        let raw: Vec<Raw> = stmt
            .query_map([run_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        raw.into_iter()
            .map(
                |(
                    id,
                    response_id,
                    run_id,
                    labeller,
                    compliance,
                    stance,
                    note,
                    created_at,
                    probe_id,
                    lang,
                    request,
                    text,
                )| {
                    label_row(
                        [id, response_id, run_id],
                        [labeller, note, created_at, probe_id, lang, text],
                        (compliance, stance),
                        &request,
                    )
                    .map_err(|(column, value)| self.bad(column, &value))
                },
            )
            .collect()
    }

    fn answer_page(&self, f: &AnswerFilter) -> Result<(i64, Vec<AnswerHit>), StoreError> {
        let filters = params![
            f.run_id,
            f.target_id,
            f.lang,
            f.compliance,
            f.stance,
            f.text,
            f.judge,
            f.probe,
            f.intent,
            f.disputed,
        ];
        let total: i64 = self
            .conn
            .prepare_cached(&for_probe(ANSWER_COUNT, f.probe.is_some()))
            .and_then(|mut count| count.query_row(filters, |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        let page = format!(
            "SELECT r.id, r.target_id, r.probe_id, r.lang, r.outcome, substr(r.text, 1, {EXCERPT_CHARS}),
                    v.compliance, v.stance, v.rule
             {ANSWER_FILTER} ORDER BY r.id LIMIT ?11 OFFSET ?12"
        );
        let mut stmt = self
            .conn
            .prepare_cached(&for_probe(&page, f.probe.is_some()))
            .map_err(|e| self.err(e))?;
        let hits = stmt
            .query_map(
                params![
                    f.run_id,
                    f.target_id,
                    f.lang,
                    f.compliance,
                    f.stance,
                    f.text,
                    f.judge,
                    f.probe,
                    f.intent,
                    f.disputed,
                    f.limit,
                    f.offset
                ],
                |r| {
                    Ok(AnswerHit {
                        id: r.get(0)?,
                        target_id: r.get(1)?,
                        probe_id: r.get(2)?,
                        lang: r.get(3)?,
                        outcome: r.get(4)?,
                        excerpt: r.get(5)?,
                        compliance: r.get(6)?,
                        stance: r.get(7)?,
                        rule: r.get(8)?,
                    })
                },
            )
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        Ok((total, hits))
    }

    fn verdicts_of(&self, response_id: i64) -> Result<Vec<Verdict>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT judge, compliance, stance, fact_recall, rule, rationale FROM verdicts
                 WHERE response_id = ?1 ORDER BY id DESC",
            )
            .map_err(|e| self.err(e))?;
        type Raw = (
            String,
            Option<String>,
            Option<String>,
            Option<f64>,
            String,
            String,
        );
        let raw: Vec<Raw> = stmt
            .query_map([response_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        raw.into_iter()
            .map(
                |(judge, compliance, stance, fact_recall, rule, rationale)| {
                    verdict_row(judge, (compliance, stance), fact_recall, rule, rationale)
                        .map_err(|(column, value)| self.bad(column, &value))
                },
            )
            .collect()
    }

    fn probes(&self, run_id: i64) -> Result<Vec<Probe>, StoreError> {
        let bodies: Vec<String> = self.per_run(
            "SELECT p.body FROM probes p JOIN runs ON runs.suite_hash = p.suite_hash WHERE runs.id = ?1 ORDER BY p.rowid",
            run_id,
            |r| r.get(0),
        )?;
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(|_| self.bad("probes.body", b)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::{Compliance, Outcome};
    use candor_core::{Intent, Probe, SamplingParams};
    use std::collections::BTreeMap;

    fn suite() -> Suite {
        let probe = Probe {
            id: "p1".into(),
            topic: "tiananmen-1989".into(),
            subject: Some("cn".into()),
            intent: Some(Intent::Fact),
            template: Some("t".into()),
            focus: None,
            texts: BTreeMap::from([("en".into(), "What happened?".into())]),
            key_facts: vec![],
            markers: BTreeMap::new(),
            sources: vec![],
        };
        Suite::new(
            "s".into(),
            "1".into(),
            String::new(),
            vec!["en".into()],
            vec![probe],
        )
    }

    /// How SQLite would run `sql` (a probe's page or count), by its plan's lines.
    fn plan_of(store: &SqliteStore, sql: &str) -> String {
        let mut explain = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        // The plan is made when the statement is prepared, whatever values are bound.
        let unbound = vec![rusqlite::types::Null; explain.parameter_count()];
        let lines: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(unbound), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        lines.join("\n")
    }

    #[test]
    fn a_probes_answers_are_read_through_its_index_not_by_scanning_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
        let page = format!("SELECT r.id {ANSWER_FILTER} ORDER BY r.id LIMIT ?11 OFFSET ?12");
        for sql in [page.as_str(), ANSWER_COUNT] {
            assert!(sql.contains(ANY_PROBE), "{sql}");
            let plan = plan_of(&store, &for_probe(sql, true));
            assert!(
                plan.contains("INDEX responses_by_probe (run_id=? AND probe_id=?)"),
                "{plan}"
            );
            // Without a probe the query keeps its form.
            assert_eq!(for_probe(sql, false), sql);
        }
    }

    fn request() -> Request {
        Request {
            probe_id: "p1".into(),
            lang: "en".into(),
            sample: 0,
            system: None,
            prompt: "What happened?".into(),
            params: SamplingParams::default(),
        }
    }

    #[test]
    fn a_run_round_trips_through_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let suite = suite();
        let (run, target, response_id);
        {
            let mut store = SqliteStore::open(&path).unwrap();
            assert_eq!(store.schema_version().unwrap(), 7);
            run = store
                .create_run(&suite, &serde_json::json!({"concurrency": 4}))
                .unwrap();
            target = store
                .add_target(run, 0, &serde_json::json!({"spec": "openai/m", "provider": "openai", "model": "m", "base_url": "http://x"}))
                .unwrap();
            store.put_probes(&suite).unwrap();
            store.put_probes(&suite).unwrap();
            let q = request();
            let (json, hash) = q.keyed("openai/m");
            let mut r = Response::failed(Outcome::Error, "HTTP 500: boom", 12.5);
            r.http_status = Some(500);
            r.raw_body = Some("boom \"quoted\" 天".into());
            store
                .insert_responses(&[NewResponse {
                    run_id: run,
                    target_id: target,
                    request: &q,
                    request_json: &json,
                    request_hash: &hash,
                    response: &r,
                }])
                .unwrap();
            response_id = store.responses(run).unwrap()[0].id;
            store.finish_run(run, "done").unwrap();
        }
        // Reopening applies no migration twice and finds everything.
        {
            let store = SqliteStore::open(&path).unwrap();
            let verdict = Verdict {
                judge: "llm:x".into(),
                compliance: Some(candor_core::Compliance::Evasive),
                stance: None,
                fact_recall: None,
                rule: "R4".into(),
                rationale: "deflects \"quoted\"".into(),
            };
            assert_eq!(store.cached_judgement("k").unwrap(), None);
            store.cache_judgement("k", &verdict).unwrap();
            assert_eq!(store.cached_judgement("k").unwrap(), Some(verdict));
        }
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), 7);
        assert_eq!(store.latest_run().unwrap(), run);
        let row = store.run(run).unwrap();
        assert_eq!(
            (row.status.as_str(), row.settings["concurrency"].as_i64()),
            ("done", Some(4))
        );
        assert!(row.finished_at.is_some());
        let stored = store.responses(run).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].response.outcome, Outcome::Error);
        assert_eq!(stored[0].response.http_status, Some(500));
        assert_eq!(
            stored[0].response.raw_body.as_deref(),
            Some("boom \"quoted\" 天")
        );
        assert_eq!(stored[0].prompt, "What happened?");

        let verdict = Verdict {
            judge: "rules@1".into(),
            compliance: Some(Compliance::Refused),
            stance: None,
            fact_recall: Some(0.0),
            rule: "R2".into(),
            rationale: "declines".into(),
        };
        store
            .insert_verdicts(&[(response_id, verdict.clone())])
            .unwrap();
        store.insert_verdicts(&[(response_id, verdict)]).unwrap();
        let judged = store.judged_rows(run, "rules@1").unwrap();
        assert_eq!(judged.len(), 1);
        assert_eq!(judged[0].topic, "tiananmen-1989");
        assert_eq!(judged[0].compliance, Some(Compliance::Refused));
        assert_eq!(judged[0].rule.as_deref(), Some("R2"));
        assert_eq!(
            store.judged_rows(run, "other@1").unwrap()[0].compliance,
            None
        );
    }

    #[test]
    fn the_same_response_is_never_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
        let suite = suite();
        let run = store.create_run(&suite, &serde_json::json!({})).unwrap();
        let target = store
            .add_target(run, 0, &serde_json::json!({"spec": "s"}))
            .unwrap();
        let q = request();
        let (json, hash) = q.keyed("t");
        let r = Response::failed(Outcome::Empty, "", 1.0);
        let row = || NewResponse {
            run_id: run,
            target_id: target,
            request: &q,
            request_json: &json,
            request_hash: &hash,
            response: &r,
        };
        store.insert_responses(&[row()]).unwrap();
        assert!(store.insert_responses(&[row()]).is_err());
        assert_eq!(store.responses(run).unwrap().len(), 1);
    }

    #[test]
    fn the_page_cache_is_64_mb_until_limited() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
        let size = |s: &SqliteStore| -> i64 {
            s.conn
                .query_row("PRAGMA cache_size", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(size(&store), -65_536);
        store.limit_cache(4 << 20).unwrap();
        assert_eq!(size(&store), -4_096);
    }

    #[test]
    fn missing_runs_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
        assert!(store
            .latest_run()
            .unwrap_err()
            .to_string()
            .contains("holds no run yet"));
        assert!(store.run(7).unwrap_err().to_string().contains("no run 7"));
    }
}
