//! The store: every run, target, probe, response and verdict.
//!
//! The store is the single source of truth: reports are computed from its rows only. Runs are
//! append-only; responses are written in one transaction per batch as they arrive. The
//! [`Store`] trait is what the application sees; [`open`] returns a SQLite file's or, for a
//! `postgres://` URL, a PostgreSQL database's.

pub mod export;
mod postgres;
mod rows;
mod sqlite;
#[doc(hidden)]
pub mod test_support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use candor_core::{Probe, Suite, Verdict};

pub use postgres::{is_postgres_url, redact, PostgresStore};
pub use rows::*;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store {path}: {message}")]
    Postgres { path: String, message: String },
    #[error("store {path}: cannot bring the schema up to date: {message}")]
    Migration { path: String, message: String },
    #[error("store {path}: no run {run}")]
    NoRun { path: String, run: i64 },
    #[error("store {path}: it holds no run yet")]
    Empty { path: String },
    #[error("store {path}: bad value in column {column}: {value}")]
    BadValue {
        path: String,
        column: &'static str,
        value: String,
    },
}

/// Everything the application asks of a store, grouped by what it touches. SQLite implements
/// it ([`SqliteStore`]), and so does PostgreSQL ([`PostgresStore`]), for a team's shared
/// record; nothing above this crate needs to know which one it has.
pub trait Store: Send {
    // Runs: a run, its targets and the probes it asked.

    /// Starts a run of `suite` with the settings it was asked with; returns its id.
    fn create_run(
        &mut self,
        suite: &Suite,
        settings: &serde_json::Value,
    ) -> Result<i64, StoreError>;

    /// Adds a run's target at `position` with its provenance (spec, provider, model, base URL
    /// and how it was reached); returns its row id.
    fn add_target(
        &mut self,
        run_id: i64,
        position: usize,
        provenance: &serde_json::Value,
    ) -> Result<i64, StoreError>;

    /// Records the suite's probes; probes are keyed by suite hash, so a rerun adds nothing.
    fn put_probes(&mut self, suite: &Suite) -> Result<(), StoreError>;

    /// Marks a run `done` or `failed`, with the time.
    fn finish_run(&mut self, run_id: i64, status: &str) -> Result<(), StoreError>;

    /// Sets a run's status while it is under way (`pending`: waiting for a batch's results).
    fn set_status(&mut self, run_id: i64, status: &str) -> Result<(), StoreError>;

    /// A run as stored; an error naming the run where there is none.
    fn run(&self, run_id: i64) -> Result<RunRow, StoreError>;

    /// The newest run's id.
    fn latest_run(&self) -> Result<i64, StoreError>;

    /// A run's targets in the order asked.
    fn targets(&self, run_id: i64) -> Result<Vec<TargetRow>, StoreError>;

    /// The probes a run asked, as stored with its suite hash.
    fn probes(&self, run_id: i64) -> Result<Vec<Probe>, StoreError>;

    // Responses, written as they arrive.

    /// Stores a batch of responses in one transaction; gives their ids, in the order of `rows`.
    fn insert_responses(&mut self, rows: &[NewResponse<'_>]) -> Result<Vec<i64>, StoreError>;

    /// Stores judged answers in one transaction: the probes they answer, the responses, and
    /// the verdict given with each (`None` where none was). A failure stores none of them, so
    /// an answer is never kept without the verdict it was given. Gives the responses' ids, in
    /// the order of `rows`.
    fn insert_judged(
        &mut self,
        suite: &Suite,
        rows: &[NewResponse<'_>],
        verdicts: &[Option<Verdict>],
    ) -> Result<Vec<i64>, StoreError>;

    /// Every response of a run, in the order stored.
    fn responses(&self, run_id: i64) -> Result<Vec<StoredResponse>, StoreError>;

    /// Up to `limit` responses of a run with ids above `after`, in id order: a page, so that
    /// large runs are read without holding every raw body at once.
    fn responses_after(
        &self,
        run_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredResponse>, StoreError>;

    /// What a run already holds, as (target row id, probe id, language, sample): resume asks
    /// only for the rest.
    fn answered(
        &self,
        run_id: i64,
    ) -> Result<std::collections::HashSet<(i64, String, String, u32)>, StoreError>;

    /// Per target row id: how many responses, how many errors and the first error, for telling
    /// a target whose every request failed.
    fn error_counts(&self, run_id: i64) -> Result<HashMap<i64, ErrorCount>, StoreError>;

    // Caches: answers to the very same request, and what an LLM judge said.

    /// The newest reusable response (any outcome but `error`) to a request with this hash,
    /// from any run: the cache. Returns the original, never a copy.
    fn cached(&self, request_hash: &str) -> Result<Option<i64>, StoreError>;

    /// Stores copies of cached responses into a run in one transaction: (target row id,
    /// request JSON, response id to copy).
    fn copy_cached(&mut self, run_id: i64, copies: &[(i64, &str, i64)]) -> Result<(), StoreError>;

    /// A judge's earlier verdict on the exchange hashed to `key`.
    fn cached_judgement(&self, key: &str) -> Result<Option<Verdict>, StoreError>;

    /// Keeps a judge's verdict on the exchange hashed to `key`.
    fn cache_judgement(&self, key: &str, verdict: &Verdict) -> Result<(), StoreError>;

    // Verdicts.

    /// Stores verdicts in one transaction; a verdict by the same judge replaces the old one.
    fn insert_verdicts(&mut self, rows: &[(i64, Verdict)]) -> Result<(), StoreError>;

    /// The judges with verdicts on a run's answers, the one that wrote last first: the audit's
    /// judge, or the latest `rejudge`.
    fn run_judges(&self, run_id: i64) -> Result<Vec<String>, StoreError>;

    // Reads for reports: rows joined with their probes and verdicts.

    /// A page of a run's responses with their topics and, where `judge` judged them, the
    /// verdicts: at most `limit`, those with ids above `after`, in id order. Pages keep a
    /// reader of a million responses from holding them all.
    fn judged_rows_after(
        &self,
        run_id: i64,
        judge: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<JudgedRow>, StoreError>;

    /// Every response of a run with its topic and, where `judge` judged it, the verdict.
    fn judged_rows(&self, run_id: i64, judge: &str) -> Result<Vec<JudgedRow>, StoreError> {
        let mut all = Vec::new();
        for_each_page(
            |after| self.judged_rows_after(run_id, judge, after, READ_PAGE),
            |r| r.response_id,
            |page| {
                all.extend(page);
                Ok(())
            },
        )?;
        Ok(all)
    }

    /// A page of a run's answers, without raw bodies and stream events: at most `limit`, those
    /// with ids above `after`, in id order.
    fn answers_after(&self, run_id: i64, after: i64, limit: i64)
        -> Result<Vec<Answer>, StoreError>;

    /// Every answer of a run, without raw bodies and stream events.
    fn answers(&self, run_id: i64) -> Result<Vec<Answer>, StoreError> {
        let mut all = Vec::new();
        for_each_page(
            |after| self.answers_after(run_id, after, READ_PAGE),
            |a| a.id,
            |page| {
                all.extend(page);
                Ok(())
            },
        )?;
        Ok(all)
    }

    // Work shared by workers: any number of processes ask a run's requests under leases.

    /// Adds requests for workers to take; one already there is not added again.
    fn add_work(&mut self, run_id: i64, items: &[WorkItem]) -> Result<(), StoreError>;

    /// Leases up to `limit` requests that no live lease holds to `owner` until `lease` from
    /// now, oldest first. Two workers never hold the same request at once; a request whose
    /// worker died returns once its lease runs out.
    fn claim_work(
        &mut self,
        run_id: i64,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<WorkItem>, StoreError>;

    /// Extends, to `lease` from now, the leases `owner` still holds in a run: a worker renews
    /// them while its requests are in flight, so that a batch slower than one lease is not
    /// taken over and asked twice. Returns how many were renewed.
    fn renew_leases(
        &mut self,
        run_id: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<usize, StoreError>;

    /// Stores leased requests' responses and retires their work items, in one transaction. A
    /// response another worker stored first is not stored again (the unique key decides);
    /// returns how many were stored.
    fn complete_work(&mut self, rows: &[NewResponse<'_>]) -> Result<usize, StoreError>;

    /// What is left of a run's shared work.
    fn work_left(&self, run_id: i64) -> Result<WorkLeft, StoreError>;

    // People's labels, which the judge is measured against.

    /// The run a response belongs to, if there is such a response.
    fn run_of_response(&self, id: i64) -> Result<Option<i64>, StoreError>;

    /// One response by its id, with its run's id.
    fn response_by_id(&self, id: i64) -> Result<Option<(i64, StoredResponse)>, StoreError> {
        let Some(run) = self.run_of_response(id)? else {
            return Ok(None);
        };
        Ok(self
            .responses_after(run, id - 1, 1)?
            .into_iter()
            .find(|r| r.id == id)
            .map(|r| (run, r)))
    }

    /// Keeps a label; a labeller may label an answer again (the newest counts).
    fn add_label(&mut self, label: &NewLabel<'_>) -> Result<i64, StoreError>;

    /// The labels of one run's answers, or of every run's, oldest first.
    fn labels(&self, run_id: Option<i64>) -> Result<Vec<LabelRow>, StoreError>;

    // Pages for a browser: a slice of a large run, never the whole of it.

    /// How many answers match `filter`, and those of its page, in id order.
    fn answer_page(&self, filter: &AnswerFilter) -> Result<(i64, Vec<AnswerHit>), StoreError>;

    /// Every judge's verdict on one response, the latest first.
    fn verdicts_of(&self, response_id: i64) -> Result<Vec<Verdict>, StoreError>;

    /// Caps the memory the backend keeps as a cache of the database's pages, for a process
    /// that only appends (the proxy's record); backends without such a cache ignore it.
    fn limit_cache(&mut self, _bytes: usize) -> Result<(), StoreError> {
        Ok(())
    }

    /// The highest response id and verdict id in the store. Storing an answer or a verdict
    /// (a new one, or one that replaces a judge's earlier verdict) raises one of them, and
    /// neither is ever deleted: figures computed at one mark hold until it moves.
    fn high_water(&self) -> Result<HighWater, StoreError>;
}

/// See [`Store::high_water`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HighWater {
    pub response: i64,
    pub verdict: i64,
}

/// Rows a paged read asks for at a time.
pub const READ_PAGE: i64 = 10_000;

/// Reads pages by keyset (`next(after)` gives the rows with ids above `after`) and hands each
/// to `each`, until a page comes back empty.
pub fn for_each_page<T>(
    mut next: impl FnMut(i64) -> Result<Vec<T>, StoreError>,
    id: impl Fn(&T) -> i64,
    mut each: impl FnMut(Vec<T>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut after = i64::MIN;
    loop {
        let page = next(after)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = id(last);
        each(page)?;
    }
}

/// The stored ids of a judged batch beside their verdicts, leaving out the rows not judged.
fn judged_ids<'v>(ids: &[i64], verdicts: &'v [Option<Verdict>]) -> Vec<(i64, &'v Verdict)> {
    assert_eq!(ids.len(), verdicts.len(), "a verdict or none for each row");
    ids.iter()
        .zip(verdicts)
        .filter_map(|(id, v)| Some((*id, v.as_ref()?)))
        .collect()
}

/// How to name the store at `location` in messages: a URL without its password.
pub fn location_name(location: &Path) -> String {
    redact(&location.display().to_string())
}

/// Opens the store at `location` and brings its schema up to date: a PostgreSQL database for a
/// `postgres://` or `postgresql://` URL, else a SQLite file (created if needed).
pub fn open(location: &Path) -> Result<Box<dyn Store>, StoreError> {
    match location.to_str() {
        Some(url) if is_postgres_url(url) => Ok(Box::new(PostgresStore::open(url)?)),
        _ => Ok(Box::new(SqliteStore::open(location)?)),
    }
}
