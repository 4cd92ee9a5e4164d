//! `candor proxy`: a guard in front of an OpenAI-compatible or Anthropic endpoint that judges
//! every answer as it passes, with the audit's judge and catalogue, and records it in the store.
//!
//! Push, not pull: the client's bytes go upstream unchanged and the upstream's come back
//! unchanged (status, headers, body, SSE events in order) unless the policy says otherwise.
//! Judging reads a copy. Streams are judged on the assembled text once they end, so a stream's
//! verdict can be recorded and counted, and announced in a trailing SSE comment, but not put in
//! its headers.

pub mod metrics;
pub mod policy;
pub mod record;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use candor_core::{Outcome, Verdict};
use candor_judge::{Exchange, Judge, RulesJudge};
use futures::StreamExt;
use serde_json::{json, Value};

use metrics::{labels, Metrics};
use policy::{Action, Decision, Facts, Policy};
use record::{Record, Recorder};

/// How the proxy was asked to run.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The upstream's base URL; a request's path is appended to it (a trailing `/v1` on the
    /// base and a leading `/v1` on the path count once).
    pub upstream: String,
    pub policy: Option<PathBuf>,
    /// The share of exchanges recorded (all are judged and counted).
    pub sample: f64,
    /// Record hashes of the user's and the model's text instead of the text.
    pub redact: bool,
    /// The largest request body forwarded, in bytes.
    pub max_body: usize,
}

/// The largest answer read for judging; the client still gets all of it.
const JUDGED_BYTES: usize = 16 << 20;

/// Hop-by-hop headers, which belong to one connection and are not forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    fn of(method: &Method, path: &str) -> Option<Api> {
        if method != Method::POST {
            return None;
        }
        if path.ends_with("/chat/completions") {
            Some(Api::OpenAi)
        } else if path.ends_with("/messages") {
            Some(Api::Anthropic)
        } else {
            None
        }
    }

    fn provider(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
        }
    }
}

pub struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    judge: Box<dyn Judge>,
    rules: RulesJudge,
    policy: RwLock<Policy>,
    policy_path: Option<PathBuf>,
    pub metrics: Arc<Metrics>,
    recorder: Option<Recorder>,
    sample: f64,
    max_body: usize,
    /// Answers judged off the request path, not yet settled.
    deferred: Arc<std::sync::atomic::AtomicUsize>,
    /// Where answers wait to be judged off the request path.
    judging: JudgePool,
}

/// Answers that may wait to be judged off the request path. A burst returns to its clients at
/// once and is judged behind them; past this many waiting, the next answer is judged in line
/// before it is returned (back-pressure), so a sustained overload slows the clients instead of
/// growing the proxy's memory.
const JUDGE_QUEUE: usize = 1024;

type JudgeJob = Box<dyn FnOnce() + Send>;

/// Lets the calling thread yield the cores to the request path: a burst of answers is judged
/// in the gaps between forwarding, not in front of it. (On Linux a thread's nice value is its
/// own.) Linux's idle class was tried: it lowered the added p50 at 200 ms upstream (medians
/// of five runs 0.76 -> 0.43 ms) but gave two of five runs a p99 tail of 6-7 ms, as when a
/// judging thread is preempted holding the metrics' lock; and an unprivileged thread cannot
/// leave that class again.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread (who 0) has no memory effects.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Threads that judge queued answers: one per core but one, which stays with forwarding (a
/// burst of answers then delays the clients less); more threads would only take turns. They
/// end when the pool is dropped.
struct JudgePool {
    sender: std::sync::mpsc::SyncSender<JudgeJob>,
}

impl JudgePool {
    fn start() -> Result<JudgePool, String> {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<JudgeJob>(JUDGE_QUEUE);
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get() - 1)
            .max(1);
        for n in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("candor-judge-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                })
                .map_err(|e| format!("cannot start a judging thread: {e}"))?;
        }
        Ok(JudgePool { sender })
    }

    /// Queues `job`; gives it back when the queue is full.
    fn offer(&self, job: JudgeJob) -> Result<(), JudgeJob> {
        self.sender.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(job)
            | std::sync::mpsc::TrySendError::Disconnected(job) => job,
        })
    }
}

impl ProxyState {
    /// The proxy's state; `recorder` is where exchanges are recorded (none: counted only).
    pub fn new(
        config: &ProxyConfig,
        judge: Box<dyn Judge>,
        recorder: Option<Recorder>,
        metrics: Arc<Metrics>,
    ) -> Result<ProxyState, String> {
        let policy = match &config.policy {
            Some(path) => Policy::read(path)?,
            None => Policy::default(),
        };
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(ProxyState {
            upstream: config.upstream.trim_end_matches('/').to_string(),
            client,
            judge,
            rules: RulesJudge::new(),
            policy: RwLock::new(policy),
            policy_path: config.policy.clone(),
            metrics,
            recorder,
            sample: config.sample,
            max_body: config.max_body,
            deferred: Arc::default(),
            judging: JudgePool::start()?,
        })
    }

    /// Reads the policy file again; a broken file leaves the policy in force.
    pub fn reload_policy(&self) -> Result<(), String> {
        let Some(path) = &self.policy_path else {
            return Ok(());
        };
        let policy = Policy::read(path)?;
        *self.policy.write().expect("policy lock") = policy;
        Ok(())
    }

    /// Waits until every answer judged off the request path is settled (counted, queued for
    /// the record): at shutdown, and in tests.
    pub async fn settled(&self) {
        while self.deferred.load(std::sync::atomic::Ordering::Acquire) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// Whether the policy can change an answer: if not, the client need not wait for its
    /// verdict.
    fn policy_acts(&self) -> bool {
        self.policy.read().expect("policy lock").acts()
    }

    pub fn run_id(&self) -> Option<i64> {
        self.recorder.as_ref().map(|r| r.run_id)
    }

    fn url(&self, path_and_query: &str) -> String {
        match (
            self.upstream.ends_with("/v1"),
            path_and_query.strip_prefix("/v1"),
        ) {
            (true, Some(rest)) if rest.is_empty() || rest.starts_with(['/', '?']) => {
                format!("{}{rest}", self.upstream)
            }
            _ => format!("{}{path_and_query}", self.upstream),
        }
    }
}

/// The proxy's routes: its own `/metrics` and `/healthz`; everything else goes upstream.
pub fn router(state: Arc<ProxyState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(forward)
        .with_state(state)
}

/// Turns Nagle's algorithm off for a client's connection: a relayed stream writes each event
/// as it comes, and a small write held back until the client acknowledges the one before can
/// wait for its delayed acknowledgement (up to 40 ms on Linux). The upstream's side is
/// reqwest's, which sets it already.
fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY not set on a client connection: {e}");
    }
}

/// Serves until `shutdown` resolves; SIGHUP reloads the policy.
pub async fn serve(
    state: Arc<ProxyState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let state = state.clone();
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match state.reload_policy() {
                    Ok(()) => tracing::info!("policy reloaded"),
                    Err(e) => tracing::warn!("policy not reloaded, the old one stays: {e}"),
                }
            }
        });
    }
    use axum::serve::ListenerExt;
    axum::serve(listener.tap_io(no_delay), router(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    state.settled().await;
    Ok(())
}

/// A proxy on its own thread and runtime, for tests and benchmarks; stops when dropped.
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub state: Arc<ProxyState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningProxy {
    pub fn start(state: ProxyState) -> RunningProxy {
        let state = Arc::new(state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let served = state.clone();
        let settling = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind loopback");
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                let _ = axum::serve(listener, router(served))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
                settling.settled().await;
            });
        });
        let addr = ready_rx.recv().expect("proxy started");
        RunningProxy {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn metrics_page(State(state): State<Arc<ProxyState>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}

/// An error the proxy itself answers with, in the API's own error shape.
fn own_error(api: Option<Api>, status: StatusCode, kind: &str, message: &str) -> Response {
    let body = match api {
        Some(Api::Anthropic) => {
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        _ => json!({"error": {"message": message, "type": kind, "code": kind}}),
    };
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The question a chat request asks: its last user message's text.
fn question(body: &Value) -> String {
    let Some(messages) = body["messages"].as_array() else {
        return String::new();
    };
    let Some(last) = messages.iter().rev().find(|m| m["role"] == "user") else {
        return String::new();
    };
    match &last["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The question's language, as the suites tag it: Chinese script or not.
fn language(prompt: &str) -> &'static str {
    let cjk = prompt
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count();
    if cjk * 4 >= prompt.chars().filter(|c| !c.is_whitespace()).count().max(1) {
        "zh-Hans"
    } else {
        "en"
    }
}

/// What one exchange was found to be.
struct Judged {
    response: candor_core::Response,
    verdict: Option<Verdict>,
    official_line: Option<String>,
}

impl ProxyState {
    /// Reads and judges an upstream answer (a copy: the client's bytes are not touched).
    fn judge_answer(
        &self,
        api: Api,
        status: u16,
        body: &str,
        stream: bool,
        prompt: &str,
        lang: &str,
    ) -> Judged {
        let response = candor_target::classify_body(api.provider(), status, body, stream)
            .expect("both APIs are known providers");
        if !response.outcome.is_answer() {
            return Judged {
                response,
                verdict: None,
                official_line: None,
            };
        }
        let exchange = Exchange {
            probe: None,
            lang,
            prompt,
            response: &response,
        };
        let verdict = self.judge.judge(&exchange);
        let official_line = self.rules.official_line(&exchange);
        Judged {
            response,
            verdict: Some(verdict),
            official_line,
        }
    }

    /// Counts, records and decides on a judged exchange.
    fn settle(
        &self,
        api: Api,
        judged: Judged,
        prompt: String,
        lang: &str,
        upstream_seconds: f64,
    ) -> (Decision, Vec<(String, String)>) {
        let topic = self.rules.topic_of(&prompt);
        let verdict = judged.verdict.as_ref();
        let compliance = verdict.and_then(|v| v.compliance).map(|c| c.as_str());
        let stance = verdict.and_then(|v| v.stance).map(|s| s.as_str());
        let outcome = judged.response.outcome.as_str();
        let topic_name = topic.map(|(_, t)| t);
        let decision = self.policy.read().expect("policy lock").decide(&Facts {
            outcome,
            compliance,
            stance,
            lang,
            topic: topic_name,
        });
        let m = &self.metrics;
        m.count(
            "candor_proxy_exchanges_total",
            labels(&[("api", api.provider()), ("outcome", outcome)]),
            1,
        );
        if let Some(compliance) = compliance {
            m.count(
                "candor_proxy_answers_total",
                labels(&[
                    ("compliance", compliance),
                    ("stance", stance.unwrap_or("none")),
                    ("lang", lang),
                    ("topic", topic_name.unwrap_or("unclassified")),
                ]),
                1,
            );
        }
        m.count(
            "candor_proxy_policy_actions_total",
            labels(&[("action", decision.action.as_str())]),
            1,
        );
        m.observe("candor_proxy_upstream_latency_seconds", upstream_seconds);

        let mut headers = vec![("x-candor-outcome".to_string(), outcome.to_string())];
        if let Some(v) = verdict {
            headers.push(("x-candor-judge".into(), v.judge.clone()));
            headers.push(("x-candor-rule".into(), v.rule.clone()));
            if let Some(c) = compliance {
                headers.push(("x-candor-compliance".into(), c.into()));
            }
            if let Some(s) = stance {
                headers.push(("x-candor-stance".into(), s.into()));
            }
        }
        if let Some(line) = &judged.official_line {
            // The claim's id, or whose voice: the phrase itself may be in any script.
            let id = line.split(" (\"").next().unwrap_or(line);
            headers.push(("x-candor-official-line".into(), id.to_string()));
        }
        if let Some((government, topic)) = topic {
            headers.push(("x-candor-topic".into(), format!("{government}/{topic}")));
        }
        headers.push(("x-candor-lang".into(), lang.to_string()));
        headers.push(("x-candor-action".into(), decision.action.as_str().into()));

        if let Some(recorder) = &self.recorder {
            if self.sample >= 1.0 || fastrand::f64() < self.sample {
                recorder.offer(Record {
                    prompt,
                    lang: lang.to_string(),
                    topic: topic.map(|(_, t)| t.to_string()),
                    subject: topic.map(|(g, _)| g.to_string()),
                    response: judged.response,
                    verdict: judged.verdict,
                });
            }
        }
        (decision, headers)
    }
}

/// A header value from any text: non-ASCII and control characters become `?`, so that model
/// text can never split or forge a header.
fn header_value(text: &str) -> HeaderValue {
    let safe: String = text
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    HeaderValue::from_str(&safe).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || n == "host" || n == "content-length" {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let api = Api::of(&parts.method, parts.uri.path());
    let body = match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return own_error(
                api,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &format!(
                    "candor proxy: the request body is over the limit of {} bytes",
                    state.max_body
                ),
            )
        }
    };
    let asked: Option<Value> = api.and_then(|_| serde_json::from_slice(&body).ok());
    let stream = asked
        .as_ref()
        .is_some_and(|b| b["stream"].as_bool() == Some(true));
    let prompt = asked.as_ref().map(question).unwrap_or_default();
    let lang = language(&prompt);

    let forwarded_at = Instant::now();
    let upstream = state
        .client
        .request(parts.method.clone(), state.url(&path))
        .headers(forwarded_headers(&parts.headers))
        .body(body)
        .send()
        .await;
    let sent_at = Instant::now();
    let reply = match upstream {
        Ok(r) => r,
        Err(e) => {
            let message = format!("candor proxy: the upstream did not answer: {e}");
            if let Some(api) = api {
                let judged = Judged {
                    response: candor_core::Response {
                        outcome: Outcome::Error,
                        error: Some(message.clone()),
                        ..Default::default()
                    },
                    verdict: None,
                    official_line: None,
                };
                state.settle(
                    api,
                    judged,
                    prompt,
                    lang,
                    sent_at.duration_since(started).as_secs_f64(),
                );
            }
            return own_error(
                api,
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                &message,
            );
        }
    };
    let status = reply.status();
    let mut headers = HeaderMap::new();
    for (name, value) in reply.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "content-length" {
            headers.append(name.clone(), value.clone());
        }
    }
    let Some(api) = api else {
        let mut response = Response::new(Body::from_stream(reply.bytes_stream()));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        return response;
    };
    let is_stream = stream
        && status.is_success()
        && headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_stream {
        return relay_stream(state, api, reply, status, headers, prompt, lang, started);
    }

    let bytes = match reply.bytes().await {
        Ok(b) => b,
        Err(e) => {
            let message = format!("candor proxy: the upstream broke off its answer: {e}");
            let judged = Judged {
                response: candor_core::Response {
                    outcome: Outcome::Error,
                    http_status: Some(status.as_u16()),
                    error: Some(message.clone()),
                    ..Default::default()
                },
                verdict: None,
                official_line: None,
            };
            state.settle(api, judged, prompt, lang, started.elapsed().as_secs_f64());
            return own_error(
                Some(api),
                StatusCode::BAD_GATEWAY,
                "upstream_broke_off",
                &message,
            );
        }
    };
    let upstream_seconds = started.elapsed().as_secs_f64();
    let judged_at = Instant::now();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let judging = state.clone();
    let judged_prompt = prompt.clone();
    if !state.policy_acts() {
        // The verdict cannot change the answer: the client has it now, and it is judged behind.
        state
            .deferred
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let job: JudgeJob = Box::new(move || {
            let judged =
                judging.judge_answer(api, status.as_u16(), &text, false, &judged_prompt, lang);
            judging.settle(api, judged, judged_prompt, lang, upstream_seconds);
            judging
                .deferred
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        });
        if let Err(job) = state.judging.offer(job) {
            // The queue is full: this answer waits for its own judging.
            tokio::task::spawn_blocking(job)
                .await
                .expect("judging does not panic");
        }
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        state.metrics.observe(
            "candor_proxy_overhead_seconds",
            judged_at.elapsed().as_secs_f64() + forwarded_at.duration_since(started).as_secs_f64(),
        );
        return response;
    }
    let judged = tokio::task::spawn_blocking(move || {
        judging.judge_answer(api, status.as_u16(), &text, false, &judged_prompt, lang)
    })
    .await
    .expect("judging does not panic");
    let (decision, verdict_headers) = state.settle(api, judged, prompt, lang, upstream_seconds);
    let response = apply(api, decision, status, headers, bytes, &verdict_headers);
    state.metrics.observe(
        "candor_proxy_overhead_seconds",
        judged_at.elapsed().as_secs_f64() + forwarded_at.duration_since(started).as_secs_f64(),
    );
    response
}

/// The verdict headers as JSON fields (`x-candor-official-line` -> `official_line`), for a
/// flagged body's notice and a stream's closing comment.
fn verdict_fields(verdict: &[(String, String)]) -> serde_json::Map<String, Value> {
    verdict
        .iter()
        .map(|(k, v)| {
            (
                k.trim_start_matches("x-candor-").replace('-', "_"),
                Value::String(v.clone()),
            )
        })
        .collect()
}

/// The client's answer under the policy's decision.
fn apply(
    api: Api,
    decision: Decision,
    status: StatusCode,
    mut headers: HeaderMap,
    body: Bytes,
    verdict: &[(String, String)],
) -> Response {
    let annotate = |headers: &mut HeaderMap| {
        for (name, value) in verdict {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                headers.insert(name, header_value(value));
            }
        }
    };
    let body = match decision.action {
        Action::Log => body,
        Action::Annotate => {
            annotate(&mut headers);
            body
        }
        Action::Flag => {
            annotate(&mut headers);
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(mut object)) => {
                    let mut notice = verdict_fields(verdict);
                    notice.insert(
                        "notice".into(),
                        Value::String(decision.message.clone().unwrap_or_else(|| {
                            "candor flagged this answer under the operator's policy".into()
                        })),
                    );
                    object.insert("candor".into(), Value::Object(notice));
                    Bytes::from(Value::Object(object).to_string())
                }
                // Not a JSON object: passed through as it came, flagged by its headers.
                _ => body,
            }
        }
        Action::Block => {
            let message = decision.message.clone().unwrap_or_else(|| {
                "candor proxy: this answer was withheld under the operator's policy".into()
            });
            let mut blocked = own_error(
                Some(api),
                StatusCode::FORBIDDEN,
                "blocked_by_policy",
                &message,
            );
            annotate(blocked.headers_mut());
            return blocked;
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Relays a stream event by event as it arrives, keeping a copy; judges the copy at the end.
#[allow(clippy::too_many_arguments)]
fn relay_stream(
    state: Arc<ProxyState>,
    api: Api,
    reply: reqwest::Response,
    status: StatusCode,
    headers: HeaderMap,
    prompt: String,
    lang: &'static str,
    started: Instant,
) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    state
        .deferred
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    let relaying = state.clone();
    tokio::spawn(async move {
        relay(state, api, reply, status, sender, prompt, lang, started).await;
        relaying
            .deferred
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    });
    let stream = futures::stream::unfold(receiver, |mut r| async move {
        r.recv().await.map(|item| (item, r))
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Reads the upstream's stream to its end, passing each piece on, then judges and settles.
#[allow(clippy::too_many_arguments)]
async fn relay(
    state: Arc<ProxyState>,
    api: Api,
    reply: reqwest::Response,
    status: StatusCode,
    sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    prompt: String,
    lang: &'static str,
    started: Instant,
) {
    {
        let mut upstream = reply.bytes_stream();
        let mut copy: Vec<u8> = Vec::new();
        let mut broke_off = None;
        let mut client_gone = false;
        while let Some(piece) = upstream.next().await {
            match piece {
                Ok(bytes) => {
                    if copy.len() < JUDGED_BYTES {
                        copy.extend_from_slice(&bytes);
                    }
                    // A client that left does not stop the record: the answer is read to its end.
                    if !client_gone && sender.send(Ok(bytes)).await.is_err() {
                        client_gone = true;
                    }
                }
                Err(e) => {
                    broke_off = Some(e.to_string());
                    break;
                }
            }
        }
        let upstream_seconds = started.elapsed().as_secs_f64();
        // Nothing will be appended: the client's stream ends now, before judging.
        let sender = match broke_off.is_some() || state.policy_acts() {
            true => Some(sender),
            false => None,
        };
        let text = String::from_utf8_lossy(&copy).into_owned();
        let judging = state.clone();
        let judged_prompt = prompt.clone();
        let mut judged = tokio::task::spawn_blocking(move || {
            judging.judge_answer(api, status.as_u16(), &text, true, &judged_prompt, lang)
        })
        .await
        .expect("judging does not panic");
        if let Some(why) = &broke_off {
            judged.response.outcome = Outcome::Error;
            judged.response.error = Some(format!("the upstream broke off mid-stream: {why}"));
            judged.verdict = None;
        }
        let (decision, verdict) = state.settle(api, judged, prompt, lang, upstream_seconds);
        let Some(sender) = sender else { return };
        if let Some(why) = broke_off {
            let _ = sender
                .send(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    format!("the upstream broke off mid-stream: {why}"),
                )))
                .await;
            return;
        }
        if decision.action != Action::Log && !client_gone {
            let mut fields = verdict_fields(&verdict);
            if let Some(message) = decision.message {
                fields.insert("notice".into(), Value::String(message));
            }
            // A comment line: SSE clients ignore it, a person reading the stream sees it.
            let comment = format!(": candor {}\n\n", Value::Object(fields));
            let _ = sender.send(Ok(Bytes::from(comment))).await;
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The nice value of each thread of this process whose name starts with `prefix`.
    fn nice_values(prefix: &str) -> Vec<i32> {
        std::fs::read_dir("/proc/self/task")
            .expect("Linux lists a process's threads")
            .filter_map(|task| {
                let task = task.ok()?.path();
                let name = std::fs::read_to_string(task.join("comm")).ok()?;
                let tid: libc::id_t = task.file_name()?.to_str()?.parse().ok()?;
                // SAFETY: getpriority only reads a thread's nice value.
                name.starts_with(prefix)
                    .then(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) })
            })
            .collect()
    }

    #[test]
    fn a_client_connection_sends_small_writes_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut accepted, _) = listener.accept().await.unwrap();
            assert!(!accepted.nodelay().unwrap());
            no_delay(&mut accepted);
            assert!(accepted.nodelay().unwrap());
        });
    }

    #[test]
    fn answers_are_judged_at_a_lower_priority_than_forwarding() {
        // SAFETY: getpriority only reads the calling thread's nice value.
        let own = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let pool = JudgePool::start().unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        // A job runs, so a thread has set its priority before it is read.
        pool.offer(Box::new(move || done.send(()).unwrap()))
            .unwrap_or_else(|_| panic!("an empty queue takes a job"));
        finished.recv().unwrap();
        // The other threads set theirs as they start, which may be a moment later.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let mut values = nice_values("candor-judge-");
        while values.iter().any(|&v| v != 10) && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            values = nice_values("candor-judge-");
        }
        assert!(!values.is_empty());
        assert!(
            values.iter().all(|&v| v == 10),
            "judging threads' nice values: {values:?}"
        );
        // The thread that runs this test keeps its own.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, own);
    }
}
