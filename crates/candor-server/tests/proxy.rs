//! The proxy against real servers on loopback: candor's mock (realistic answers to judge) and a
//! fixture upstream that sends exactly the bytes, headers, pieces and failures a test asks for.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::response::IntoResponse;
use candor_judge::learned::LearnedJudge;
use candor_judge::RulesJudge;
use candor_mock::{Kind, MockServer, Reply, Rule, Script};
use candor_server::proxy::metrics::Metrics;
use candor_server::proxy::record::Recorder;
use candor_server::proxy::{ProxyConfig, ProxyState, RunningProxy};
use candor_store::Store;
use proptest::prelude::*;
use serde_json::{json, Value};

const KEY: &str = "sk-test-7f3a9c-never-stored";

fn config(upstream: &str, policy: Option<&Path>) -> ProxyConfig {
    ProxyConfig {
        upstream: upstream.to_string(),
        policy: policy.map(Path::to_path_buf),
        sample: 1.0,
        redact: false,
        max_body: 1 << 20,
    }
}

fn judge() -> Box<dyn candor_judge::Judge> {
    Box::new(LearnedJudge::built_in(RulesJudge::new()))
}

/// A proxy to `upstream`, recording into `store` when given.
fn proxy(upstream: &str, policy: Option<&Path>, store: Option<Box<dyn Store>>) -> RunningProxy {
    proxy_with(config(upstream, policy), store, 64)
}

fn proxy_with(config: ProxyConfig, store: Option<Box<dyn Store>>, queue: usize) -> RunningProxy {
    let metrics = Arc::new(Metrics::default());
    let recorder = store.map(|s| {
        Recorder::start(
            s,
            &config.upstream,
            None,
            queue,
            config.redact,
            metrics.clone(),
        )
        .unwrap()
    });
    RunningProxy::start(ProxyState::new(&config, judge(), recorder, metrics).unwrap())
}

fn script() -> Script {
    let mut script = Script::canned();
    script.rules.push(Rule {
        contains: vec!["scripted outage".into()],
        reply: Reply {
            status: Some(500),
            body: Some("{\"error\": {\"message\": \"upstream is down\"}}".into()),
            ..Reply::default()
        },
    });
    script.rules.push(Rule {
        contains: vec!["withdrawn".into()],
        reply: Reply {
            kind: Kind::Candid,
            retract: true,
            ..Reply::default()
        },
    });
    script
}

async fn chat(base: &str, prompt: &str, stream: bool) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn write_policy(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What the fixture upstream sends: status, headers, the body in pieces, and whether it
/// breaks the connection after them.
#[derive(Clone, Default)]
struct Fixture {
    status: u16,
    headers: Vec<(&'static str, String)>,
    pieces: Vec<Vec<u8>>,
    reset: bool,
}

struct Upstream {
    url: String,
    fixture: Arc<Mutex<Fixture>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Upstream {
    /// Tests drop it inside their own runtime, where a blocking shutdown is not allowed.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn upstream() -> Upstream {
    let fixture = Arc::new(Mutex::new(Fixture::default()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let shared = fixture.clone();
    let app = axum::Router::new().fallback(move || {
        let f = shared.lock().unwrap().clone();
        async move {
            let mut items: Vec<Result<Bytes, std::io::Error>> =
                f.pieces.into_iter().map(|p| Ok(Bytes::from(p))).collect();
            if f.reset {
                items.push(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "fixture reset",
                )));
            }
            let stream = futures::StreamExt::then(futures::stream::iter(items), |item| async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                item
            });
            let mut response = axum::body::Body::from_stream(stream).into_response();
            *response.status_mut() = axum::http::StatusCode::from_u16(f.status).unwrap();
            for (name, value) in f.headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
    });
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await });
    Upstream {
        url,
        fixture,
        runtime: Some(runtime),
    }
}

#[tokio::test]
async fn a_plain_answer_passes_byte_for_byte_with_the_upstreams_status_and_headers() {
    let up = tokio::task::spawn_blocking(upstream).await.unwrap();
    // Odd spacing and key order: a proxy that re-serialises would change them.
    let body = "{\"model\":\"m\",  \"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"The 1989 crackdown killed hundreds of protesters in Beijing; the army fired on crowds near Tiananmen Square.\"},\"finish_reason\":\"stop\"}] ,\"id\":\"x\"}";
    *up.fixture.lock().unwrap() = Fixture {
        status: 200,
        headers: vec![
            ("content-type", "application/json".into()),
            ("x-request-id", "req-42".into()),
        ],
        pieces: vec![
            body.as_bytes()[..40].to_vec(),
            body.as_bytes()[40..].to_vec(),
        ],
        reset: false,
    };
    let p = proxy(&up.url, None, None);
    let r = chat(&p.base_url(), "What happened at Tiananmen in 1989?", false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-request-id"), Some("req-42"));
    // The default policy logs: no header of candor's.
    assert!(r
        .headers()
        .keys()
        .all(|k| !k.as_str().starts_with("x-candor")));
    assert_eq!(r.text().await.unwrap(), body);

    // An error status and a body that is not JSON pass as they came.
    *up.fixture.lock().unwrap() = Fixture {
        status: 429,
        headers: vec![("retry-after", "7".into())],
        pieces: vec![b"slow down <b>now</b>".to_vec()],
        reset: false,
    };
    let r = chat(&p.base_url(), "anything", false).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("7"));
    assert_eq!(r.text().await.unwrap(), "slow down <b>now</b>");
    // A policy that only logs judges off the request path.
    p.state.settled().await;
    let metrics = p.state.metrics.render();
    assert!(
        metrics.contains("candor_proxy_exchanges_total{api=\"openai\",outcome=\"error\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("candor_proxy_exchanges_total{api=\"openai\",outcome=\"ok\"} 1"));
}

#[tokio::test]
async fn verdicts_come_as_headers_and_the_policy_flags_and_blocks() {
    let mock = MockServer::start(script());
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        r#"
default = "annotate"

[[rule]]
compliance = ["refused"]
lang = ["zh"]
action = "block"
message = "Withheld by policy: refused in Chinese."

[[rule]]
compliance = ["evasive"]
action = "flag"
message = "The model evaded this question."
"#,
    );
    let p = proxy(&mock.base_url(), Some(&policy), None);

    let r = chat(
        &p.base_url(),
        "What happened at Tiananmen Square in 1989?",
        false,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-candor-compliance"), Some("refused"));
    assert_eq!(header(&r, "x-candor-action"), Some("annotate"));
    assert_eq!(
        header(&r, "x-candor-topic").map(|t| t.starts_with("cn/")),
        Some(true)
    );
    let body: Value = r.json().await.unwrap();
    assert!(body.get("candor").is_none(), "annotate adds headers only");

    let r = chat(
        &p.base_url(),
        "Describe the situation of the Uyghurs in Xinjiang.",
        false,
    )
    .await;
    assert_eq!(header(&r, "x-candor-compliance"), Some("evasive"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["candor"]["notice"], "The model evaded this question.");
    assert_eq!(body["candor"]["compliance"], "evasive");
    assert!(
        body["choices"][0]["message"]["content"].as_str().is_some(),
        "the answer stays"
    );

    let r = chat(&p.base_url(), "1989年天安门广场发生了什么？", false).await;
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "x-candor-compliance"), Some("refused"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Withheld by policy: refused in Chinese."
    );
    assert_eq!(body["error"]["type"], "blocked_by_policy");

    let m = p.state.metrics.render();
    for line in [
        "candor_proxy_policy_actions_total{action=\"annotate\"} 1",
        "candor_proxy_policy_actions_total{action=\"flag\"} 1",
        "candor_proxy_policy_actions_total{action=\"block\"} 1",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    let refused: u64 = m
        .lines()
        .filter(|l| l.starts_with("candor_proxy_answers_total{compliance=\"refused\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(refused, 2);
    assert!(m.contains("lang=\"zh-Hans\""));
    assert!(m.contains("candor_proxy_upstream_latency_seconds_count 3"));

    // SIGHUP's reload: a broken file keeps the old policy, a good one replaces it.
    std::fs::write(&policy, "default = \"explode\"").unwrap();
    assert!(p.state.reload_policy().is_err());
    let r = chat(
        &p.base_url(),
        "What happened at Tiananmen Square in 1989?",
        false,
    )
    .await;
    assert_eq!(header(&r, "x-candor-action"), Some("annotate"));
    std::fs::write(&policy, "default = \"log\"").unwrap();
    p.state.reload_policy().unwrap();
    let r = chat(
        &p.base_url(),
        "What happened at Tiananmen Square in 1989?",
        false,
    )
    .await;
    assert_eq!(header(&r, "x-candor-action"), None);
}

#[tokio::test]
async fn streams_pass_event_by_event_and_are_judged_and_recorded_at_the_end() {
    let mock = MockServer::start(script());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("proxy.db");
    let store = candor_store::open(&db).unwrap();
    let p = proxy(&mock.base_url(), None, Some(store));

    let direct = chat(&mock.base_url(), "Tell me about Tiananmen in 1989", true).await;
    let direct_text = direct.text().await.unwrap();
    let r = chat(&p.base_url(), "Tell me about Tiananmen in 1989", true).await;
    assert_eq!(header(&r, "content-type"), Some("text/event-stream"));
    let proxied = r.text().await.unwrap();
    let data = |s: &str| -> Vec<String> {
        s.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| d.replace(|c: char| c.is_ascii_digit(), ""))
            .collect()
    };
    // The same events in the same order (the mock numbers its replies: digits aside).
    assert_eq!(data(&proxied), data(&direct_text));

    // Retracted mid-stream: the client sees what the upstream sent; the record says so.
    let r = chat(&p.base_url(), "the withdrawn answer", true).await;
    let _ = r.text().await.unwrap();
    // A failure upstream passes on, and is recorded as an error.
    let r = chat(&p.base_url(), "scripted outage", false).await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.text().await.unwrap(),
        "{\"error\": {\"message\": \"upstream is down\"}}"
    );

    let run = p.state.run_id().unwrap();
    drop(p); // writes the queue out
    let store = candor_store::open(&db).unwrap();
    let rows = store.answers(run).unwrap();
    assert_eq!(rows.len(), 3);
    let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["ok", "retracted", "error"]);
    let judge = store.run_judges(run).unwrap();
    let judged = store.judged_rows(run, &judge[0]).unwrap();
    let verdicts: Vec<Option<&str>> = judged
        .iter()
        .map(|r| r.compliance.map(|c| c.as_str()))
        .collect();
    assert_eq!(verdicts, [Some("refused"), None, None]);
    assert_eq!(store.run(run).unwrap().suite_id, "proxy");
    // The client's key is in no byte of the store.
    drop(store);
    let bytes = std::fs::read(&db).unwrap();
    let wal = std::fs::read(dir.path().join("proxy.db-wal")).unwrap_or_default();
    for file in [bytes, wal] {
        assert!(!file.windows(KEY.len()).any(|w| w == KEY.as_bytes()));
    }
}

#[tokio::test]
async fn anthropic_messages_and_the_model_list_pass_through() {
    let mock = MockServer::start(script());
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "default = \"annotate\"");
    let p = proxy(&mock.base_url(), Some(&policy), None);
    let client = reqwest::Client::new();
    let models = client
        .get(format!("{}/models", p.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let direct: Value = client
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models.json::<Value>().await.unwrap(), direct);

    for stream in [false, true] {
        let r = client
            .post(format!("{}/messages", p.base_url()))
            .header("x-api-key", KEY)
            .json(
                &json!({"model": "claude", "max_tokens": 100, "stream": stream,
                "messages": [{"role": "user", "content": "What did Xi Jinping do?"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if stream {
            let text = r.text().await.unwrap();
            assert!(text.contains("event: message_stop"), "{text}");
            // Annotated streams end with one comment line carrying the verdict.
            let comment = text.trim_end().lines().last().unwrap();
            assert!(comment.starts_with(": candor {"), "{text}");
            assert!(comment.contains("\"compliance\":\"refused\""), "{comment}");
        } else {
            assert_eq!(header(&r, "x-candor-compliance"), Some("refused"));
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["type"], "message");
        }
    }
    let m = p.state.metrics.render();
    assert!(
        m.contains("candor_proxy_exchanges_total{api=\"anthropic\",outcome=\"ok\"} 2"),
        "{m}"
    );
    assert!(!m.contains(KEY));
}

#[tokio::test]
async fn an_upstream_that_breaks_off_mid_stream_breaks_the_clients_stream_and_is_recorded() {
    let up = tokio::task::spawn_blocking(upstream).await.unwrap();
    let event = |text: &str| {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"delta": {"content": text}, "finish_reason": null}]})
        )
        .into_bytes()
    };
    *up.fixture.lock().unwrap() = Fixture {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into())],
        pieces: vec![event("The army "), event("fired on")],
        reset: true,
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let p = proxy(&up.url, None, Some(candor_store::open(&db).unwrap()));
    let r = chat(&p.base_url(), "Tiananmen?", true).await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(piece) = futures::StreamExt::next(&mut body).await {
        match piece {
            Ok(b) => received.extend_from_slice(&b),
            Err(_) => failed = true,
        }
    }
    assert!(failed, "the client learns that the stream broke");
    assert_eq!(received, [event("The army "), event("fired on")].concat());
    let run = p.state.run_id().unwrap();
    drop(p);
    let rows = candor_store::open(&db).unwrap().answers(run).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome.as_str(), "error");
}

/// A store that fails every write, or takes its time: the proxy serves on and counts drops.
struct Faulty {
    inner: Box<dyn Store>,
    fail: bool,
    delay: Duration,
}

impl Faulty {
    /// Takes its time, then fails where this store fails writes.
    fn fault(&self) -> Result<(), candor_store::StoreError> {
        std::thread::sleep(self.delay);
        match self.fail {
            true => Err(candor_store::StoreError::Empty {
                path: "read-only disk".into(),
            }),
            false => Ok(()),
        }
    }
}

macro_rules! pass {
    ($($name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(fn $name(&self $(, $arg: $ty)*) -> $ret { self.inner.$name($($arg),*) })*
    };
}

impl Store for Faulty {
    fn create_run(
        &mut self,
        suite: &candor_core::Suite,
        settings: &Value,
    ) -> Result<i64, candor_store::StoreError> {
        self.inner.create_run(suite, settings)
    }
    fn add_target(
        &mut self,
        run: i64,
        position: usize,
        provenance: &Value,
    ) -> Result<i64, candor_store::StoreError> {
        self.inner.add_target(run, position, provenance)
    }
    fn put_probes(&mut self, suite: &candor_core::Suite) -> Result<(), candor_store::StoreError> {
        self.inner.put_probes(suite)
    }
    fn finish_run(&mut self, run: i64, status: &str) -> Result<(), candor_store::StoreError> {
        self.inner.finish_run(run, status)
    }
    fn set_status(&mut self, run: i64, status: &str) -> Result<(), candor_store::StoreError> {
        self.inner.set_status(run, status)
    }
    fn insert_responses(
        &mut self,
        rows: &[candor_store::NewResponse<'_>],
    ) -> Result<Vec<i64>, candor_store::StoreError> {
        self.fault()?;
        self.inner.insert_responses(rows)
    }
    fn insert_judged(
        &mut self,
        suite: &candor_core::Suite,
        rows: &[candor_store::NewResponse<'_>],
        verdicts: &[Option<candor_core::Verdict>],
    ) -> Result<Vec<i64>, candor_store::StoreError> {
        self.fault()?;
        self.inner.insert_judged(suite, rows, verdicts)
    }
    fn copy_cached(
        &mut self,
        run: i64,
        copies: &[(i64, &str, i64)],
    ) -> Result<(), candor_store::StoreError> {
        self.inner.copy_cached(run, copies)
    }
    fn insert_verdicts(
        &mut self,
        rows: &[(i64, candor_core::Verdict)],
    ) -> Result<(), candor_store::StoreError> {
        self.inner.insert_verdicts(rows)
    }
    fn add_work(
        &mut self,
        run: i64,
        items: &[candor_store::WorkItem],
    ) -> Result<(), candor_store::StoreError> {
        self.inner.add_work(run, items)
    }
    fn claim_work(
        &mut self,
        run: i64,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<candor_store::WorkItem>, candor_store::StoreError> {
        self.inner.claim_work(run, owner, limit, lease)
    }
    fn renew_leases(
        &mut self,
        run: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<usize, candor_store::StoreError> {
        self.inner.renew_leases(run, owner, lease)
    }
    fn complete_work(
        &mut self,
        rows: &[candor_store::NewResponse<'_>],
    ) -> Result<usize, candor_store::StoreError> {
        self.inner.complete_work(rows)
    }
    fn add_label(
        &mut self,
        label: &candor_store::NewLabel<'_>,
    ) -> Result<i64, candor_store::StoreError> {
        self.inner.add_label(label)
    }
    pass! {
        run_of_response(&self, id: i64) -> Result<Option<i64>, candor_store::StoreError>;
        answer_page(&self, filter: &candor_store::AnswerFilter) -> Result<(i64, Vec<candor_store::AnswerHit>), candor_store::StoreError>;
        verdicts_of(&self, id: i64) -> Result<Vec<candor_core::Verdict>, candor_store::StoreError>;
        high_water(&self) -> Result<candor_store::HighWater, candor_store::StoreError>;
        labels(&self, run: Option<i64>) -> Result<Vec<candor_store::LabelRow>, candor_store::StoreError>;
        work_left(&self, id: i64) -> Result<candor_store::WorkLeft, candor_store::StoreError>;
        run(&self, id: i64) -> Result<candor_store::RunRow, candor_store::StoreError>;
        latest_run(&self) -> Result<i64, candor_store::StoreError>;
        targets(&self, id: i64) -> Result<Vec<candor_store::TargetRow>, candor_store::StoreError>;
        probes(&self, id: i64) -> Result<Vec<candor_core::Probe>, candor_store::StoreError>;
        responses(&self, id: i64) -> Result<Vec<candor_store::StoredResponse>, candor_store::StoreError>;
        responses_after(&self, id: i64, after: i64, limit: i64) -> Result<Vec<candor_store::StoredResponse>, candor_store::StoreError>;
        answered(&self, id: i64) -> Result<std::collections::HashSet<(i64, String, String, u32)>, candor_store::StoreError>;
        error_counts(&self, id: i64) -> Result<std::collections::HashMap<i64, candor_store::ErrorCount>, candor_store::StoreError>;
        cached(&self, hash: &str) -> Result<Option<i64>, candor_store::StoreError>;
        cached_judgement(&self, key: &str) -> Result<Option<candor_core::Verdict>, candor_store::StoreError>;
        cache_judgement(&self, key: &str, verdict: &candor_core::Verdict) -> Result<(), candor_store::StoreError>;
        run_judges(&self, id: i64) -> Result<Vec<String>, candor_store::StoreError>;
        judged_rows_after(&self, id: i64, judge: &str, after: i64, limit: i64) -> Result<Vec<candor_store::JudgedRow>, candor_store::StoreError>;
        answers_after(&self, id: i64, after: i64, limit: i64) -> Result<Vec<candor_store::Answer>, candor_store::StoreError>;
    }
}

#[tokio::test]
async fn a_failing_or_slow_store_drops_records_and_never_the_answer() {
    let mock = MockServer::start(script());
    let dir = tempfile::tempdir().unwrap();
    for (fail, delay, queue, reason) in [
        (true, Duration::ZERO, 64, "store_error"),
        (false, Duration::from_millis(300), 1, "queue_full"),
    ] {
        let store = Faulty {
            inner: candor_store::open(&dir.path().join(format!("{reason}.db"))).unwrap(),
            fail,
            delay,
        };
        let p = proxy_with(config(&mock.base_url(), None), Some(Box::new(store)), queue);
        for n in 0..8 {
            let r = chat(
                &p.base_url(),
                &format!("question {n} about Hong Kong"),
                false,
            )
            .await;
            assert_eq!(r.status(), 200, "{reason}");
            assert!(r.text().await.unwrap().contains("choices"));
        }
        let metrics = p.state.metrics.clone();
        drop(p); // the writer finishes what it holds
        let dropped = metrics.value(
            "candor_proxy_record_dropped_total",
            &format!("{{reason=\"{reason}\"}}"),
        );
        let recorded = metrics.value("candor_proxy_recorded_total", "");
        assert!(dropped > 0, "{reason}: {}", metrics.render());
        assert_eq!(
            dropped + recorded,
            8,
            "{reason}: every exchange is recorded or counted as dropped"
        );
    }
}

#[tokio::test]
async fn redaction_keeps_hashes_and_verdicts_only_and_bodies_over_the_limit_are_refused() {
    let mock = MockServer::start(script());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let mut config = config(&mock.base_url(), None);
    config.redact = true;
    config.max_body = 2000;
    let p = proxy_with(config, Some(candor_store::open(&db).unwrap()), 64);
    let secret_question = "My neighbour Wang Lihua asked about Tiananmen in 1989";
    let r = chat(&p.base_url(), secret_question, false).await;
    assert_eq!(r.status(), 200);
    let r = chat(&p.base_url(), &"x".repeat(5000), false).await;
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2000 bytes"));
    let run = p.state.run_id().unwrap();
    drop(p);
    let store = candor_store::open(&db).unwrap();
    let rows = store.answers(run).unwrap();
    assert_eq!(rows.len(), 1, "a refused body never went upstream");
    assert!(rows[0].text.starts_with("sha256:"));
    let judge = &store.run_judges(run).unwrap()[0];
    let judged = store.judged_rows(run, judge).unwrap();
    assert_eq!(judged[0].compliance.map(|c| c.as_str()), Some("refused"));
    drop(store);
    let mut bytes = std::fs::read(&db).unwrap();
    bytes.extend(std::fs::read(dir.path().join("r.db-wal")).unwrap_or_default());
    for secret in ["Wang Lihua", "I'm sorry"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret}"
        );
    }
}

fn sse_events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(str::to_string)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    /// However the upstream's bytes are cut into pieces, the client receives the same events
    /// and the proxy reads the same answer.
    #[test]
    fn any_split_of_the_upstreams_stream_reaches_the_client_unchanged(
        words in proptest::collection::vec("[a-zA-Z天安门]{1,12}", 1..6),
        cuts in proptest::collection::vec(0usize..400, 0..8),
    ) {
        let mut stream = String::new();
        for w in &words {
            stream.push_str(&format!("data: {}\n\n", json!({"choices": [{"delta": {"content": w}, "finish_reason": null}]})));
        }
        stream.push_str("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        let bytes = stream.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % bytes.len()).collect();
        points.sort_unstable();
        points.dedup();
        let mut pieces = Vec::new();
        let mut at = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            if p > at {
                pieces.push(bytes[at..p].to_vec());
                at = p;
            }
        }
        let up = upstream();
        *up.fixture.lock().unwrap() = Fixture {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into())],
            pieces,
            reset: false,
        };
        let p = proxy(&up.url, None, None);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let received = runtime.block_on(async {
            let text = chat(&p.base_url(), "q", true).await.text().await.unwrap();
            p.state.settled().await;
            text
        });
        prop_assert_eq!(sse_events(&received), sse_events(&stream));
        prop_assert_eq!(received, stream);
        let m = p.state.metrics.render();
        prop_assert!(m.contains("candor_proxy_exchanges_total{api=\"openai\",outcome=\"ok\"} 1"), "{}", m);
    }
}
