//! `candor serve`: the store in a browser. Runs, a run's figures (the report's), its answers
//! with filters and search, one answer with its verdict, and blind labelling that feeds the
//! judge's gold (`candor labels export`).
//!
//! Model text is hostile input: every page is rendered by `maud`, which escapes whatever it is
//! not told is markup, model text never goes into an attribute or a script, and each answer
//! carries a Content-Security-Policy that allows no script but `/static/app.js`, no style but
//! `/static/app.css`, and no request to any other host. Every page works without the script,
//! which only adds keyboard shortcuts to the labelling form.

mod pages;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use candor_audit::label_queue;
use candor_core::{Compliance, Stance};
use candor_report::ReportData;
use candor_store::{HighWater, NewLabel, Store};
use serde::Deserialize;

/// How the dashboard is served.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    pub listen: SocketAddr,
    /// Required on every request when set (bearer header or the cookie the login form sets);
    /// `serve` refuses an address off loopback without one.
    pub token: Option<String>,
}

struct Dashboard {
    store: Mutex<Box<dyn Store>>,
    /// Each run's figures as last built, with the store's mark and the run's status then.
    figures: Mutex<FiguresCache>,
    /// Each run's last judge, with the verdict mark it was read at.
    judges: Mutex<std::collections::HashMap<i64, (i64, Option<String>)>>,
    /// Sent in every form and checked on every POST: another site cannot post for the user.
    csrf: String,
    token: Option<String>,
}

type Shared = Arc<Dashboard>;

/// Runs whose figures are kept.
const FIGURES_KEPT: usize = 8;

/// A run's figures are built once and kept until the store's mark moves (an answer or a
/// verdict stored anywhere) or the run's status changes: building them reads every verdict of
/// the run and resamples its pairs, the overview's whole cost.
#[derive(Default)]
struct FiguresCache {
    /// run -> (mark, status, figures, when it was last used).
    runs: std::collections::HashMap<i64, (HighWater, String, Arc<ReportData>, u64)>,
    clock: u64,
}

impl FiguresCache {
    fn get(&mut self, run: i64, mark: HighWater, status: &str) -> Option<Arc<ReportData>> {
        self.clock += 1;
        let clock = self.clock;
        let (at, was, data, used) = self.runs.get_mut(&run)?;
        if *at != mark || was != status {
            return None;
        }
        *used = clock;
        Some(data.clone())
    }

    fn put(&mut self, run: i64, mark: HighWater, status: String, data: Arc<ReportData>) {
        self.clock += 1;
        if self.runs.len() >= FIGURES_KEPT && !self.runs.contains_key(&run) {
            let oldest = self.runs.iter().min_by_key(|(_, e)| e.3).map(|(r, _)| *r);
            if let Some(oldest) = oldest {
                self.runs.remove(&oldest);
            }
        }
        self.runs.insert(run, (mark, status, data, self.clock));
    }
}

/// The judge that judged a run last (none: not judged), read again only when a verdict has
/// been stored since: the query reads every verdict of the run.
fn last_judge(shared: &Dashboard, store: &dyn Store, run: i64) -> Result<Option<String>, Failure> {
    let mark = store.high_water().map_err(internal)?;
    last_judge_at(shared, store, run, mark)
}

/// [`last_judge`] where the store's mark has just been read.
fn last_judge_at(
    shared: &Dashboard,
    store: &dyn Store,
    run: i64,
    mark: HighWater,
) -> Result<Option<String>, Failure> {
    let mark = mark.verdict;
    let cache = || shared.judges.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, judge)) = cache().get(&run) {
        if *at == mark {
            return Ok(judge.clone());
        }
    }
    let judge = store.run_judges(run).map_err(internal)?.into_iter().next();
    cache().insert(run, (mark, judge.clone()));
    Ok(judge)
}

/// A run's figures as its last judge judged it, from the cache where the store has not moved.
fn run_figures(
    shared: &Dashboard,
    store: &dyn Store,
    run: i64,
) -> Result<Arc<ReportData>, Failure> {
    let row = known_run(store, run)?;
    let mark = store.high_water().map_err(internal)?;
    let cache = || shared.figures.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(data) = cache().get(run, mark, &row.status) {
        return Ok(data);
    }
    let judge = candor_audit::figures::judge_or_default(last_judge_at(shared, store, run, mark)?);
    let data =
        Arc::new(candor_audit::figures::figures_only(store, &[run], &judge).map_err(internal)?);
    cache().put(run, mark, row.status, data.clone());
    Ok(data)
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const TOKEN_COOKIE: &str = "candor_token";

/// Answers shown per page.
pub const PAGE_SIZE: usize = 50;

/// An error page with its status; never a panic, never the store's internals beyond its message.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, pages::error(self.0, &self.1)).into_response()
    }
}

fn not_found(what: impl Into<String>) -> Failure {
    Failure(StatusCode::NOT_FOUND, what.into())
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Runs `read` on the store off the async threads: the store blocks.
async fn with_store<T: Send + 'static>(
    shared: &Shared,
    read: impl FnOnce(&mut dyn Store) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        read(store.as_mut())
    })
    .await
    .map_err(internal)?
}

pub fn router(store: Box<dyn Store>, token: Option<String>) -> Router {
    routes(dashboard(store, token))
}

fn dashboard(store: Box<dyn Store>, token: Option<String>) -> Shared {
    Arc::new(Dashboard {
        store: Mutex::new(store),
        figures: Mutex::default(),
        judges: Mutex::default(),
        csrf: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
        token,
    })
}

/// Builds the newest run's figures before anyone asks, off the async threads, so that the
/// first look at it finds them ready.
fn warm_up(shared: &Shared) {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(run) = store.latest_run() {
            // A failure here is the page's to report when it is asked for.
            let _ = run_figures(&shared, store.as_ref(), run);
        }
    });
}

fn routes(shared: Shared) -> Router {
    Router::new()
        .route("/", get(runs))
        .route("/runs/{run}", get(run))
        .route("/runs/{run}/answers", get(answers))
        .route("/runs/{run}/probes/{probe}", get(probe))
        .route("/runs/{run}/topics/{topic}", get(topic))
        .route("/answers/{id}", get(answer))
        .route("/label", get(label_form).post(label_save))
        .route("/compare", get(compare))
        .route("/static/app.js", get(script))
        .route("/static/app.css", get(style))
        // Browsers ask for it on their own; nothing to show.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/login", get(login_form).post(login))
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// The token check (where one is set) and the headers every answer carries.
async fn guard(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &shared.token {
        let path = request.uri().path();
        let open = path == "/login" || path == "/favicon.ico" || path.starts_with("/static/");
        if !open && !presents(request.headers(), token) {
            return Redirect::to("/login").into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn presents(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .next();
    [bearer, cookie]
        .into_iter()
        .flatten()
        .any(|sent| constant_time_eq(sent.as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn login_form(State(shared): State<Shared>) -> Response {
    pages::login(&shared.csrf, false).into_response()
}

#[derive(Deserialize)]
struct Login {
    token: String,
    csrf: String,
}

async fn login(State(shared): State<Shared>, Form(form): Form<Login>) -> Response {
    if form.csrf != shared.csrf {
        return Failure(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or stale: reload the page".into(),
        )
        .into_response();
    }
    match &shared.token {
        Some(token) if constant_time_eq(form.token.as_bytes(), token.as_bytes()) => {
            let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            let mut response = Redirect::to("/").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Some(_) => (StatusCode::UNAUTHORIZED, pages::login(&shared.csrf, true)).into_response(),
        None => Redirect::to("/").into_response(),
    }
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("app.js"),
    )
        .into_response()
}

/// The dashboard's own style, then that of the components it shares with the report.
async fn style() -> Response {
    static CSS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let css = CSS.get_or_init(|| {
        format!(
            "{}\n{}\n",
            include_str!("app.css"),
            candor_report::components::css()
        )
    });
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        css.as_str(),
    )
        .into_response()
}

async fn runs(State(shared): State<Shared>) -> Result<Response, Failure> {
    let cached = shared.clone();
    let rows = with_store(&shared, move |store| {
        let Ok(latest) = store.latest_run() else {
            return Ok(Vec::new());
        };
        let mut rows = Vec::new();
        for id in (1..=latest).rev() {
            let Ok(run) = store.run(id) else { continue };
            let targets = store.targets(id).map_err(internal)?;
            let answered: i64 = store
                .error_counts(id)
                .map_err(internal)?
                .values()
                .map(|c| c.responses)
                .sum();
            rows.push(pages::RunLine {
                run,
                targets: targets.into_iter().map(|t| t.spec).collect(),
                responses: answered,
                judge: last_judge(&cached, store, id)?,
            });
        }
        Ok(rows)
    })
    .await?;
    Ok(pages::runs(&rows).into_response())
}

async fn run(State(shared): State<Shared>, Path(run): Path<String>) -> Result<Response, Failure> {
    let run = parse_id(&run)?;
    let cached = shared.clone();
    let (data, labels, work) = with_store(&shared, move |store| {
        let data = run_figures(&cached, store, run)?;
        let labels = store.labels(Some(run)).map_err(internal)?;
        let work = store.work_left(run).map_err(internal)?;
        Ok((data, labels, work))
    })
    .await?;
    Ok(pages::run(run, &data, &pages::agreement(&labels), &work).into_response())
}

#[derive(Deserialize)]
struct CompareQuery {
    a: Option<String>,
    b: Option<String>,
}

/// Two targets, or one target in two runs, paired by probe, language and sample: the same
/// figures as `candor compare`.
async fn compare(
    State(shared): State<Shared>,
    Query(query): Query<CompareQuery>,
) -> Result<Response, Failure> {
    let side = |s: Option<String>| s.unwrap_or_default().trim().to_string();
    let (a, b) = (side(query.a), side(query.b));
    if a.is_empty() || b.is_empty() {
        return Ok(pages::compare(&a, &b, None).into_response());
    }
    let (first, second) = (a.clone(), b.clone());
    let result = with_store(&shared, move |store| {
        let bad = |e: candor_audit::Error| Failure(StatusCode::BAD_REQUEST, e.to_string());
        let (name_a, obs_a) =
            candor_audit::figures::comparison_side(store, &first, None).map_err(bad)?;
        let (name_b, obs_b) =
            candor_audit::figures::comparison_side(store, &second, None).map_err(bad)?;
        let comparison = candor_stats::analysis::compare(&obs_a, &obs_b);
        Ok((name_a, name_b, comparison))
    })
    .await?;
    Ok(pages::compare(&a, &b, Some(&result)).into_response())
}

/// Answers shown per probe on a probe's page; the answers page has the rest.
const PROBE_ANSWERS: i64 = 100;

/// A probe beside its template's other probes (the probe of interest and its controls), each
/// with every target's answers and their verdicts.
async fn probe(
    State(shared): State<Shared>,
    Path((run, probe)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let run = parse_id(&run)?;
    let cached = shared.clone();
    let view = with_store(&shared, move |store| {
        known_run(store, run)?;
        let probes = store.probes(run).map_err(internal)?;
        let asked = probes
            .iter()
            .find(|p| p.id == probe)
            .ok_or_else(|| not_found(format!("run {run} asked no probe '{probe}'")))?;
        let mut family: Vec<candor_core::Probe> = match &asked.template {
            Some(t) => probes
                .iter()
                .filter(|p| p.template.as_ref() == Some(t))
                .cloned()
                .collect(),
            None => vec![asked.clone()],
        };
        interest_first(&mut family);
        let judge = last_judge(&cached, store, run)?;
        let targets = store.targets(run).map_err(internal)?;
        let mut columns = Vec::new();
        for p in family {
            let (total, hits) = store
                .answer_page(&candor_store::AnswerFilter {
                    run_id: run,
                    judge: judge.clone(),
                    probe: Some(p.id.clone()),
                    limit: PROBE_ANSWERS,
                    ..Default::default()
                })
                .map_err(internal)?;
            columns.push((p, total, hits));
        }
        Ok(pages::ProbeView {
            run,
            asked: probe,
            judge,
            targets,
            columns,
        })
    })
    .await?;
    Ok(pages::probe(&view).into_response())
}

/// A topic of a run: its probes, each with its answers counted by verdict, read a page of the
/// run at a time.
async fn topic(
    State(shared): State<Shared>,
    Path((run, topic)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let run = parse_id(&run)?;
    let cached = shared.clone();
    let view = with_store(&shared, move |store| {
        known_run(store, run)?;
        let mut probes: Vec<candor_core::Probe> = store
            .probes(run)
            .map_err(internal)?
            .into_iter()
            .filter(|p| p.topic == topic)
            .collect();
        if probes.is_empty() {
            return Err(not_found(format!(
                "run {run} asked nothing on topic '{topic}'"
            )));
        }
        interest_first(&mut probes);
        let judge = last_judge(&cached, store, run)?;
        let mut counts: std::collections::HashMap<String, pages::TopicCounts> =
            std::collections::HashMap::new();
        candor_store::for_each_page(
            |after| {
                store.judged_rows_after(
                    run,
                    judge.as_deref().unwrap_or_default(),
                    after,
                    candor_store::READ_PAGE,
                )
            },
            |r| r.response_id,
            |page| {
                for r in page.into_iter().filter(|r| r.topic == topic) {
                    let c = counts.entry(r.probe_id).or_default();
                    c.answers += 1;
                    match r.compliance {
                        Some(Compliance::Candid) => c.candid += 1,
                        Some(Compliance::Evasive) => c.evasive += 1,
                        Some(Compliance::Refused) => c.refused += 1,
                        None => {}
                    }
                    c.state_narrative += u64::from(r.stance == Some(Stance::StateNarrative));
                }
                Ok(())
            },
        )
        .map_err(internal)?;
        let rows = probes
            .into_iter()
            .map(|p| {
                let c = counts.remove(&p.id).unwrap_or_default();
                (p, c)
            })
            .collect();
        Ok(pages::TopicView {
            run,
            topic,
            judge,
            rows,
        })
    })
    .await?;
    Ok(pages::topic(&view).into_response())
}

/// The probe of interest first, then the controls by government.
fn interest_first(probes: &mut [candor_core::Probe]) {
    probes.sort_by(|a, b| {
        (!a.is_focus(), &a.subject, &a.id).cmp(&(!b.is_focus(), &b.subject, &b.id))
    });
}

/// The run, or a 404 naming it.
fn known_run(store: &dyn Store, run: i64) -> Result<candor_store::RunRow, Failure> {
    store.run(run).map_err(|e| not_found(e.to_string()))
}

fn parse_id(text: &str) -> Result<i64, Failure> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| not_found(format!("no such id: {text}")))
}

/// The answers page's filters, as they appear in its URL.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    pub target: Option<String>,
    pub lang: Option<String>,
    pub compliance: Option<String>,
    pub stance: Option<String>,
    /// Words the answer or the prompt contains (any case; Chinese as written).
    pub q: Option<String>,
    /// One probe's answers.
    pub probe: Option<String>,
    /// Answers to probes of one intent.
    pub intent: Option<String>,
    /// Any value: only answers on which the run's judges disagree.
    pub disputed: Option<String>,
    pub page: Option<String>,
}

impl Filters {
    fn set(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
}

async fn answers(
    State(shared): State<Shared>,
    Path(run): Path<String>,
    Query(filters): Query<Filters>,
) -> Result<Response, Failure> {
    let run = parse_id(&run)?;
    let page: usize = match Filters::set(&filters.page) {
        None => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| not_found(format!("no page {p}")))?,
    };
    let wanted = filters.clone();
    let cached = shared.clone();
    let (rows, targets, total) = with_store(&shared, move |store| {
        known_run(store, run)?;
        let targets = store.targets(run).map_err(internal)?;
        let target_id = match Filters::set(&wanted.target) {
            Some(spec) => Some(
                targets
                    .iter()
                    .find(|t| t.spec == spec)
                    .map(|t| t.id)
                    .ok_or_else(|| not_found(format!("run {run} has no target {spec}")))?,
            ),
            None => None,
        };
        let text = |v: &Option<String>| Filters::set(v).map(str::to_string);
        let filter = candor_store::AnswerFilter {
            run_id: run,
            judge: last_judge(&cached, store, run)?,
            target_id,
            lang: text(&wanted.lang),
            compliance: text(&wanted.compliance),
            stance: text(&wanted.stance),
            text: text(&wanted.q),
            probe: text(&wanted.probe),
            intent: text(&wanted.intent),
            disputed: Filters::set(&wanted.disputed).is_some(),
            offset: ((page - 1) * PAGE_SIZE) as i64,
            limit: PAGE_SIZE as i64,
        };
        let (total, rows) = store.answer_page(&filter).map_err(internal)?;
        if page > 1 && rows.is_empty() {
            return Err(not_found(format!("no page {page}: {total} answers match")));
        }
        Ok((rows, targets, total as usize))
    })
    .await?;
    Ok(pages::answers(run, &filters, page, total, &rows, &targets).into_response())
}

#[derive(Deserialize)]
struct AnswerQuery {
    saved: Option<String>,
    labeller: Option<String>,
    mode: Option<String>,
}

async fn answer(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<AnswerQuery>,
) -> Result<Response, Failure> {
    let id = parse_id(&id)?;
    let view = with_store(&shared, move |store| {
        let (run, response) = store
            .response_by_id(id)
            .map_err(internal)?
            .ok_or_else(|| not_found(format!("no answer {id}")))?;
        let target = store
            .targets(run)
            .map_err(internal)?
            .into_iter()
            .find(|t| t.id == response.target_id);
        let verdicts = store.verdicts_of(id).map_err(internal)?;
        let labels = store
            .labels(Some(run))
            .map_err(internal)?
            .into_iter()
            .filter(|l| l.response_id == id)
            .collect();
        Ok(pages::AnswerView {
            run,
            response,
            target: target.map(|t| t.spec),
            verdicts,
            labels,
        })
    })
    .await?;
    Ok(pages::answer(
        &view,
        query.saved.is_some(),
        query.labeller.as_deref().unwrap_or_default(),
        label_queue::Mode::parse(query.mode.as_deref()).unwrap_or_default(),
    )
    .into_response())
}

#[derive(Deserialize)]
struct LabelQuery {
    run: Option<String>,
    labeller: Option<String>,
    mode: Option<String>,
}

/// The next answer of a run for this labeller, its verdict hidden: answers no one has labelled
/// come first, in an order that mixes targets, languages and topics.
async fn label_form(
    State(shared): State<Shared>,
    Query(query): Query<LabelQuery>,
) -> Result<Response, Failure> {
    let labeller = query
        .labeller
        .clone()
        .unwrap_or_default()
        .trim()
        .to_string();
    let run = match query.run.as_deref() {
        Some(r) => Some(parse_id(r)?),
        None => None,
    };
    let mode = label_queue::Mode::parse(query.mode.as_deref())
        .map_err(|m| Failure(StatusCode::BAD_REQUEST, m))?;
    let csrf = shared.csrf.clone();
    let who = labeller.clone();
    let next = with_store(&shared, move |store| {
        let run = match run {
            Some(r) => r,
            None => store.latest_run().map_err(|e| not_found(e.to_string()))?,
        };
        known_run(store, run)?;
        let labels = store.labels(Some(run)).map_err(internal)?;
        let mine: std::collections::HashSet<i64> = labels
            .iter()
            .filter(|l| l.labeller == who)
            .map(|l| l.response_id)
            .collect();
        let anyone: std::collections::HashSet<i64> = labels.iter().map(|l| l.response_id).collect();
        let candidates = label_queue::candidates(store, run, mode).map_err(internal)?;
        let (next, remaining) = label_queue::next(&candidates, &mine, &anyone, mode);
        let next = match next {
            Some(id) => Some(
                store
                    .response_by_id(id)
                    .map_err(internal)?
                    .ok_or_else(|| not_found(format!("no answer {id}")))?
                    .1,
            ),
            None => None,
        };
        Ok((run, next, remaining))
    })
    .await?;
    let (run, next, remaining) = next;
    Ok(pages::label(run, &labeller, mode, next.as_ref(), remaining, &csrf).into_response())
}

#[derive(Deserialize)]
struct LabelForm {
    csrf: String,
    response: String,
    labeller: String,
    #[serde(default)]
    mode: String,
    compliance: Option<String>,
    stance: Option<String>,
    #[serde(default)]
    note: String,
}

async fn label_save(
    State(shared): State<Shared>,
    Form(form): Form<LabelForm>,
) -> Result<Response, Failure> {
    if !constant_time_eq(form.csrf.as_bytes(), shared.csrf.as_bytes()) {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or stale: reload the page".into(),
        ));
    }
    let bad = |m: String| Failure(StatusCode::BAD_REQUEST, m);
    let id = parse_id(&form.response)?;
    let labeller = form.labeller.trim().to_string();
    if labeller.is_empty() || labeller.chars().count() > 80 {
        return Err(bad(
            "a label needs the labeller's name (at most 80 characters)".into(),
        ));
    }
    let compliance: Option<Compliance> = match form.compliance.as_deref().filter(|c| !c.is_empty())
    {
        Some(c) => Some(c.parse().map_err(|_| bad(format!("no compliance '{c}'")))?),
        None => None,
    };
    let stance: Option<Stance> = match form.stance.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse().map_err(|_| bad(format!("no stance '{s}'")))?),
        None => None,
    };
    if compliance.is_none() && stance.is_none() {
        return Err(bad("choose a compliance or a stance".into()));
    }
    let note = form.note.chars().take(2000).collect::<String>();
    let who = labeller.clone();
    with_store(&shared, move |store| {
        store
            .response_by_id(id)
            .map_err(internal)?
            .ok_or_else(|| not_found(format!("no answer {id}")))?;
        store
            .add_label(&NewLabel {
                response_id: id,
                labeller: &who,
                compliance,
                stance,
                note: &note,
            })
            .map_err(internal)
    })
    .await?;
    let mode = label_queue::Mode::parse(Some(&form.mode)).unwrap_or_default();
    Ok(Redirect::to(&format!(
        "/answers/{id}?saved=1&labeller={}&mode={}",
        pages::encode(&labeller),
        mode.as_str()
    ))
    .into_response())
}

/// Serves the dashboard until `shutdown` resolves.
pub async fn serve(
    config: DashboardConfig,
    store: Box<dyn Store>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = dashboard(store, config.token);
    warm_up(&shared);
    axum::serve(listener, routes(shared))
        .with_graceful_shutdown(shutdown)
        .await
}
