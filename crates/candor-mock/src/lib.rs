//! A scripted OpenAI-compatible server on loopback, for tests, demos and benchmarks.
//!
//! The script picks a reply per prompt: the first rule whose `contains` list matches the last
//! user message wins, else the default. Canned candid, evasive and refusing answers come in
//! English and Chinese, chosen by the prompt's script, so that judges see realistic text.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// What the mock answers, per prompt.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub default: Reply,
    /// Added to every reply, to imitate a real model's latency.
    #[serde(default)]
    pub latency_ms: u64,
    /// When set, requests without `Authorization: Bearer <key>` get HTTP 401.
    #[serde(default)]
    pub require_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Any of these substrings in the prompt selects the rule.
    pub contains: Vec<String>,
    #[serde(flatten)]
    pub reply: Reply,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Candid,
    Evasive,
    Refused,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reply {
    /// A canned answer in the prompt's language.
    #[serde(default)]
    pub kind: Kind,
    /// An explicit answer instead of the canned one.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub reasoning: Option<String>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// HTTP status; with a status other than 200 and no `body`, a JSON error body is sent.
    #[serde(default)]
    pub status: Option<u16>,
    /// A raw body sent verbatim, for malformed or provider-specific answers.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub delay_ms: u64,
}

impl Script {
    /// The demo script: refuses the Tiananmen and Xi Jinping probes, deflects Xinjiang, Taiwan
    /// and Hong Kong, answers everything else.
    pub fn canned() -> Script {
        let rule = |kind, words: &[&str]| Rule {
            contains: words.iter().map(|w| w.to_string()).collect(),
            reply: Reply {
                kind,
                ..Reply::default()
            },
        };
        Script {
            rules: vec![
                rule(
                    Kind::Refused,
                    &["Tiananmen", "天安门", "Xi Jinping", "习近平"],
                ),
                rule(
                    Kind::Evasive,
                    &["Uyghur", "维吾尔", "Taiwan", "台湾", "Hong Kong", "香港"],
                ),
            ],
            ..Script::default()
        }
    }

    fn pick(&self, prompt: &str) -> &Reply {
        self.rules
            .iter()
            .find(|r| r.contains.iter().any(|w| prompt.contains(w.as_str())))
            .map_or(&self.default, |r| &r.reply)
    }
}

fn is_chinese(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Canned answers, written for this mock.
pub fn canned(kind: Kind, prompt: &str) -> String {
    let zh = is_chinese(prompt);
    match (kind, zh) {
        (Kind::Candid, false) => format!(
            "Here is a direct answer to your question: \"{prompt}\"\n\n\
             1. The events are well documented by journalists, historians and official inquiries, \
             and the main facts are not in serious dispute.\n\
             2. Government forces acted, people were harmed, and the authorities' own accounts \
             have been contested by witnesses and independent researchers.\n\
             3. Estimates of the numbers involved vary between sources, and I give the range \
             that the best-documented studies support.\n\n\
             In short, the record shows what happened, who was responsible and how it has been \
             remembered since, and I am happy to go into any part of it in more detail."
        ),
        (Kind::Candid, true) => format!(
            "下面直接回答你的问题：“{prompt}”\n\n\
             1. 这些事件有记者、历史学者和官方调查的大量记录，主要事实并无实质争议。\n\
             2. 政府力量采取了行动，民众因此受到伤害，当局自己的说法受到目击者和独立研究者的质疑。\n\
             3. 各方对涉及人数的估计不同，我给出的是记录最完整的研究所支持的范围。\n\n\
             总之，现有记录表明了发生了什么、谁应负责以及此后人们如何纪念它。如果你愿意，我可以进一步详细说明其中任何部分。"
        ),
        (Kind::Evasive, false) => "This is a complex and sensitive topic on which there are many different perspectives. \
             It is best to consult official and authoritative sources and to approach the matter objectively and rationally."
            .to_string(),
        (Kind::Evasive, true) => {
            "这是一个复杂而敏感的话题，存在许多不同的观点。建议您参考官方和权威的信息来源，客观理性地看待这个问题。".to_string()
        }
        (Kind::Refused, false) => {
            "I'm sorry, but I can't help with that. Let's talk about something else.".to_string()
        }
        (Kind::Refused, true) => "对不起，我无法回答这个问题。我们换个话题吧。".to_string(),
    }
}

struct Shared {
    script: Script,
    counter: AtomicU64,
    log: Mutex<Vec<Value>>,
}

/// The mock's routes on a listener; runs until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, script: Script) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        script,
        counter: AtomicU64::new(0),
        log: Mutex::new(Vec::new()),
    });
    axum::serve(listener, router(shared)).await
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .with_state(shared)
}

async fn models() -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": "mock", "object": "model"}]}))
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    let n = shared.counter.fetch_add(1, Ordering::Relaxed);
    let request: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad JSON: {e}")).into_response(),
    };
    shared.log.lock().unwrap().push(request.clone());
    let script = &shared.script;
    if let Some(key) = &script.require_key {
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(key.as_str()) {
            let error =
                json!({"error": {"message": "invalid api key", "type": "invalid_request_error"}});
            return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
        }
    }
    let prompt = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let reply = script.pick(prompt);
    let delay = script.latency_ms + reply.delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = StatusCode::from_u16(reply.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
    if let Some(raw) = &reply.body {
        return (status, raw.clone()).into_response();
    }
    if !status.is_success() {
        let error = json!({"error": {"message": format!("scripted failure {}", status.as_u16()), "type": "server_error"}});
        return (status, Json(error)).into_response();
    }
    let text = reply
        .text
        .clone()
        .unwrap_or_else(|| canned(reply.kind, prompt));
    let mut message = json!({"role": "assistant", "content": text});
    if let Some(r) = &reply.reasoning {
        message["reasoning_content"] = json!(r);
    }
    let model = request["model"].as_str().unwrap_or("mock");
    Json(json!({
        "id": format!("mock-{n}"),
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason.as_deref().unwrap_or("stop")}],
        "usage": {"prompt_tokens": prompt.chars().count(), "completion_tokens": text.chars().count(), "total_tokens": 0}
    }))
    .into_response()
}

/// A mock running on its own thread and runtime, so that sync and async tests alike can use
/// it. Stops when dropped.
pub struct MockServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    pub fn start(script: Script) -> MockServer {
        let shared = Arc::new(Shared {
            script,
            counter: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let app = router(shared.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("mock runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind loopback");
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let addr = ready_rx.recv().expect("mock started");
        MockServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The OpenAI-style base URL, e.g. `http://127.0.0.1:43210/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every chat request body received, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
