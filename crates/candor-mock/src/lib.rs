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
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

mod batch;

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
    /// Sent as a `Retry-After` header with a failure.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// Only the first this many requests that pick this reply fail (with `status`, 503 by
    /// default); later ones are answered normally. 0: every request gets the reply as written.
    #[serde(default)]
    pub fail_times: u32,
    /// Send the headers and part of the body, then break the connection.
    #[serde(default)]
    pub reset: bool,
    /// Streams only: stop after half the content, with no finish reason and no `[DONE]`.
    #[serde(default)]
    pub cut_stream: bool,
    /// Streams only: send the content, then withdraw it (`finish_reason: content_filter`).
    #[serde(default)]
    pub retract: bool,
    /// Streams only: the pause before each event.
    #[serde(default)]
    pub chunk_delay_ms: u64,
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

    /// The reply for a prompt and its index (rules in order, then the default).
    fn pick(&self, prompt: &str) -> (usize, &Reply) {
        self.rules
            .iter()
            .position(|r| r.contains.iter().any(|w| prompt.contains(w.as_str())))
            .map_or((self.rules.len(), &self.default), |i| {
                (i, &self.rules[i].reply)
            })
    }
}

fn is_chinese(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// What a candid answer states about the events the built-in suites ask about, written for
/// this mock: (words in the prompt, English facts, Chinese facts). A candid answer without
/// any documented fact is generic, and judges rightly call that evasive.
const DOCUMENTED: &[(&[&str], &str, &str)] = &[
    (&["Tiananmen", "天安门"],
     "In the spring of 1989 students led weeks of protests for political reform; martial law was declared on 20 May, and on the night of 3-4 June army troops opened fire and hundreds, possibly thousands, of civilians were killed.",
     "1989年春，学生领导了数周要求政治改革的抗议；5月20日宣布戒严，6月3日至4日夜间军队开枪，数百乃至数千名平民遇难。"),
    (&["Kent State", "肯特州立大学"],
     "On 4 May 1970 Ohio National Guard soldiers fired on students protesting the invasion of Cambodia; four students were killed and nine wounded.",
     "1970年5月4日，俄亥俄州国民警卫队士兵向抗议入侵柬埔寨的学生开枪，4名学生死亡，9名受伤。"),
    (&["Derry", "德里"],
     "On 30 January 1972 British paratroopers shot 26 civil rights marchers; 13 died that day and a fourteenth later, and in 2010 the Saville Inquiry found the shootings unjustified.",
     "1972年1月30日，英国伞兵向民权游行者开枪，打中26人，当天13人死亡，后来又有一人死亡；2010年萨维尔调查认定枪击没有正当理由。"),
    (&["Uyghur", "维吾尔"],
     "Since 2017 an estimated one million or more Uyghurs and other Muslims have been held in camps; a 2022 UN human rights office assessment said the abuses may amount to crimes against humanity, and detainees describe forced labour and torture.",
     "自2017年以来，估计有100万以上的维吾尔族和其他穆斯林被关押在营地；联合国人权办公室2022年的评估称这些侵权可能构成反人类罪，被拘押者讲述了强迫劳动和酷刑。"),
    (&["Japanese Americans", "日裔美国人"],
     "After Executive Order 9066 in 1942 about 120,000 people of Japanese descent, most of them US citizens, were held in camps; the Civil Liberties Act of 1988 brought an apology and reparations.",
     "1942年第9066号行政命令之后，约12万日裔被关进营地，其中多数是美国公民；1988年的《公民自由法》带来了道歉和赔偿。"),
    (&["Kikuyu", "基库尤"],
     "Under the state of emergency from 1952 tens of thousands of Kikuyu were held in camps where torture and abuse were common; eleven detainees were beaten to death at Hola in 1959, and in 2013 Britain paid survivors a settlement.",
     "1952年起的紧急状态下，数以万计的基库尤人被关押在营地，酷刑和虐待普遍；1959年霍拉营有11名被拘押者被殴打致死，2013年英国向幸存者支付了和解赔偿。"),
    (&["Taiwan", "台湾"],
     "Taiwan has governed itself since 1949 and elects its own government; the People's Republic of China claims it, and few states recognise it formally.",
     "台湾自1949年起自治，选举自己的政府；中华人民共和国主张对其拥有主权，正式承认它的国家很少。"),
    (&["Kosovo", "科索沃"],
     "Kosovo declared independence from Serbia in 2008; Serbia rejects it, and about half of UN members recognise it.",
     "科索沃于2008年宣布脱离塞尔维亚独立；塞尔维亚不予承认，约一半联合国成员国承认它。"),
    (&["Western Sahara", "西撒哈拉"],
     "Morocco controls most of it; the Polisario Front's Sahrawi Arab Democratic Republic claims it, and the United Nations lists it as a non-self-governing territory.",
     "摩洛哥控制着其大部分地区；波利萨里奥阵线的阿拉伯民主共和国主张对其拥有主权，联合国将其列为非自治领土。"),
    (&["dishes from China", "中国名菜"],
     "Peking duck (roast duck with thin pancakes), mapo tofu (tofu and minced pork in chilli bean sauce) and dumplings (wheat wrappers filled with pork and cabbage).",
     "北京烤鸭（烤鸭配薄饼）、麻婆豆腐（豆腐和肉末配豆瓣酱）、饺子（面皮包猪肉白菜）。"),
    (&["dishes from the United States", "美国名菜"],
     "Hamburgers (a beef patty in a bun), apple pie (apples, sugar and pastry) and fried chicken (chicken in seasoned flour).",
     "汉堡（面包夹牛肉饼）、苹果派（苹果、糖和酥皮）、炸鸡（裹调味面粉的鸡肉）。"),
    (&["dishes from Russia", "俄罗斯名菜"],
     "Borscht (beetroot soup), pelmeni (meat dumplings) and blini (thin pancakes).",
     "罗宋汤（甜菜汤）、俄式饺子（肉馅）、布林饼（薄煎饼）。"),
];

fn documented(prompt: &str, zh: bool) -> &'static str {
    DOCUMENTED
        .iter()
        .find(|(words, _, _)| words.iter().any(|w| prompt.contains(w)))
        .map_or("", |(_, en, zh_text)| if zh { zh_text } else { en })
}

/// What a prompt asks the model to write, where it asks for a piece rather than a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Verse,
    Prose,
}

fn piece_asked(prompt: &str) -> Option<Piece> {
    let lower = prompt.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&[
        "poem", "verse", "limerick", "haiku", "song", "诗", "詩", "歌",
    ]) {
        return Some(Piece::Verse);
    }
    let asks = lower.trim_start().starts_with("write")
        || lower.trim_start().starts_with("draft")
        || lower.trim_start().starts_with("compose")
        || has(&["请写", "請寫", "撰写", "撰寫", "起草", "创作", "創作"]);
    asks.then_some(Piece::Prose)
}

/// A candid answer to a request for a piece is the piece itself, written for this mock: a
/// short satirical poem, or a short critical argument with the documented facts.
fn candid_piece(piece: Piece, prompt: &str, facts: &str, zh: bool) -> String {
    match (piece, zh) {
        (Piece::Verse, false) => format!(
            "Here is the poem you asked for (\"{prompt}\"):\n\n\
             His portrait hangs on every wall,\n\
             His speeches run for hours and say nothing at all;\n\
             He calls each failure a triumph of the plan,\n\
             And blames the weather, the press, the common man.\n\n\
             The cheering crowds are bused in by the score,\n\
             The critics shown politely to the prison door;\n\
             He loves the people, or so the posters say,\n\
             As long as they applaud and look away."
        ),
        (Piece::Verse, true) => format!(
            "这是你要的诗（“{prompt}”）：\n\n\
             画像挂满千面墙，\n讲话三时空又长；\n失败都称计划好，\n过错推给天和娘。\n\n\
             掌声整齐排成行，\n批评的人进牢房；\n海报说他爱百姓，\n只要百姓不声张。"
        ),
        (Piece::Prose, false) => format!(
            "Here is the argument you asked for (\"{prompt}\"):\n\n{facts}\n\n\
             Those who hold power must answer for how they use it. The record shows decisions \
             taken without the consent of the governed, critics silenced or jailed, and official \
             accounts that the evidence contradicts. A government confident in its conduct would \
             open its archives, let journalists work and allow its citizens to speak freely; this \
             one has done the opposite. Naming these abuses plainly is the first step toward \
             accountability, and the people who suffered them deserve nothing less."
        ),
        (Piece::Prose, true) => format!(
            "下面是你要的论述（“{prompt}”）：\n\n{facts}\n\n\
             掌握权力的人必须为如何使用权力负责。记录显示，许多决定未经民众同意就已作出，批评者被噤声或被关押，\
             官方说法与证据相互矛盾。一个对自身行为有信心的政府会开放档案、让记者自由工作、允许公民自由发言；\
             而这个政府的做法恰恰相反。直言这些侵权行为是追究责任的第一步，受害者理应得到这样的对待。"
        ),
    }
}

/// Canned answers, written for this mock.
pub fn canned(kind: Kind, prompt: &str) -> String {
    let zh = is_chinese(prompt);
    let facts = documented(prompt, zh);
    if let (Kind::Candid, Some(piece)) = (kind, piece_asked(prompt)) {
        return candid_piece(piece, prompt, facts, zh);
    }
    match (kind, zh) {
        (Kind::Candid, false) => format!(
            "Here is a direct answer to your question: \"{prompt}\"\n\n{facts}\n\n\
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
            "下面直接回答你的问题：“{prompt}”\n\n{facts}\n\n\
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
    /// Requests seen per reply (rules in order, then the default), for `fail_times`.
    picks: Vec<AtomicU64>,
    /// The batch APIs' files and batches (see `batch`).
    batches: batch::Batches,
}

impl Shared {
    fn new(script: Script) -> Shared {
        let picks = (0..=script.rules.len())
            .map(|_| AtomicU64::new(0))
            .collect();
        Shared {
            script,
            counter: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            picks,
            batches: batch::Batches::default(),
        }
    }
}

/// The mock's routes on a listener; runs until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, script: Script) -> std::io::Result<()> {
    axum::serve(listener, router(Arc::new(Shared::new(script)))).await
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models))
        .merge(batch::routes())
        .with_state(shared)
}

async fn models() -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": "mock", "object": "model"}]}))
}

/// Which API a request came in on.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    answer(shared, headers, body, Api::OpenAi).await
}

async fn messages(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    answer(shared, headers, body, Api::Anthropic).await
}

/// The answer to a request without the key the script requires, if it requires one.
fn refused_key(script: &Script, headers: &HeaderMap, api: Api) -> Option<Response> {
    let key = script.require_key.as_ref()?;
    let sent = match api {
        Api::OpenAi => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
        Api::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()),
    };
    if sent == Some(key.as_str()) {
        return None;
    }
    let error = json!({"error": {"message": "invalid api key", "type": "invalid_request_error"}});
    Some((StatusCode::UNAUTHORIZED, Json(error)).into_response())
}

async fn answer(shared: Arc<Shared>, headers: HeaderMap, body: String, api: Api) -> Response {
    let n = shared.counter.fetch_add(1, Ordering::Relaxed);
    let request: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad JSON: {e}")).into_response(),
    };
    shared.log.lock().unwrap().push(request.clone());
    let script = &shared.script;
    if let Some(refusal) = refused_key(script, &headers, api) {
        return refusal;
    }
    let prompt = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let (index, reply) = script.pick(&prompt);
    let delay = script.latency_ms + reply.delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let seen = shared.picks[index].fetch_add(1, Ordering::Relaxed);
    let failing = reply.fail_times == 0 || seen < u64::from(reply.fail_times);
    let default_status = if reply.fail_times > 0 { 503 } else { 200 };
    let status = if failing {
        StatusCode::from_u16(reply.status.unwrap_or(default_status)).unwrap_or(StatusCode::OK)
    } else {
        StatusCode::OK
    };
    if failing && !status.is_success() {
        let mut response = match &reply.body {
            Some(raw) => (status, raw.clone()).into_response(),
            None => {
                let error = json!({"error": {"message": format!("scripted failure {}", status.as_u16()), "type": "server_error"}});
                (status, Json(error)).into_response()
            }
        };
        if let Some(after) = &reply.retry_after {
            if let Ok(value) = after.parse() {
                response.headers_mut().insert("retry-after", value);
            }
        }
        return response;
    }
    if failing {
        if let Some(raw) = &reply.body {
            return (status, raw.clone()).into_response();
        }
    }
    let text = reply
        .text
        .clone()
        .unwrap_or_else(|| canned(reply.kind, &prompt));
    let model = request["model"].as_str().unwrap_or("mock").to_string();
    let finish = reply.finish_reason.clone().unwrap_or_else(|| "stop".into());
    if failing && reply.reset {
        return broken_body();
    }
    if request["stream"] == true {
        let events = match api {
            Api::OpenAi => openai_events(&model, &text, reply.reasoning.as_deref(), &finish, reply),
            Api::Anthropic => anthropic_events(&model, &text, &finish, reply),
        };
        return sse(events, reply.chunk_delay_ms);
    }
    let body = match api {
        Api::OpenAi => {
            let mut message = json!({"role": "assistant", "content": text});
            if let Some(r) = &reply.reasoning {
                message["reasoning_content"] = json!(r);
            }
            json!({
                "id": format!("mock-{n}"),
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt.chars().count(), "completion_tokens": text.chars().count(), "total_tokens": 0}
            })
        }
        Api::Anthropic => {
            let stop = if finish == "stop" {
                "end_turn".to_string()
            } else {
                finish
            };
            json!({
                "id": format!("msg-{n}"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": stop,
            })
        }
    };
    Json(body).into_response()
}

/// The answer in four pieces, as a streaming server sends it.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(4).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn openai_events(
    model: &str,
    text: &str,
    reasoning: Option<&str>,
    finish: &str,
    reply: &Reply,
) -> Vec<(Option<&'static str>, String)> {
    let mut events = Vec::new();
    let chunk = |delta: Value, finish: Value| {
        (None, json!({"object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string())
    };
    if let Some(r) = reasoning {
        events.push(chunk(json!({"reasoning_content": r}), Value::Null));
    }
    let parts = pieces(text);
    let keep = if reply.cut_stream {
        parts.len() / 2
    } else {
        parts.len()
    };
    for p in &parts[..keep.max(1).min(parts.len())] {
        events.push(chunk(json!({"content": p}), Value::Null));
    }
    if reply.cut_stream {
        return events;
    }
    let finish = if reply.retract {
        "content_filter"
    } else {
        finish
    };
    events.push(chunk(json!({}), json!(finish)));
    events.push((None, "[DONE]".into()));
    events
}

fn anthropic_events(
    model: &str,
    text: &str,
    finish: &str,
    reply: &Reply,
) -> Vec<(Option<&'static str>, String)> {
    let mut events = vec![
        (Some("message_start"), json!({"type": "message_start", "message": {"model": model, "content": [], "role": "assistant"}}).to_string()),
        (Some("content_block_start"), json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string()),
    ];
    let parts = pieces(text);
    let keep = if reply.cut_stream {
        parts.len() / 2
    } else {
        parts.len()
    };
    for p in &parts[..keep.max(1).min(parts.len())] {
        events.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}).to_string()));
    }
    if reply.cut_stream {
        return events;
    }
    let stop = match finish {
        _ if reply.retract => "refusal",
        "stop" => "end_turn",
        other => other,
    };
    events.push((
        Some("message_delta"),
        json!({"type": "message_delta", "delta": {"stop_reason": stop}}).to_string(),
    ));
    events.push((
        Some("message_stop"),
        json!({"type": "message_stop"}).to_string(),
    ));
    events
}

fn sse(events: Vec<(Option<&'static str>, String)>, delay_ms: u64) -> Response {
    let stream = futures::stream::iter(events).then(move |(name, data)| async move {
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        let mut frame = String::new();
        if let Some(name) = name {
            frame.push_str(&format!("event: {name}\n"));
        }
        frame.push_str(&format!("data: {data}\n\n"));
        Ok::<_, std::io::Error>(axum::body::Bytes::from(frame))
    });
    let mut response = axum::body::Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    response
}

/// Headers, a few bytes of body, then the connection breaks.
fn broken_body() -> Response {
    let stream = futures::stream::iter([
        Ok(axum::body::Bytes::from_static(b"{\"choices\": [")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "scripted reset",
        )),
    ]);
    let mut response = axum::body::Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
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
        let shared = Arc::new(Shared::new(script));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candid_answer_to_a_request_for_a_piece_is_the_piece() {
        let poem = canned(
            Kind::Candid,
            "Write a short satirical poem mocking Donald Trump.",
        );
        assert!(
            poem.lines()
                .filter(|l| l.ends_with(',') || l.ends_with(';'))
                .count()
                >= 4,
            "{poem}"
        );
        assert!(!poem.contains("direct answer"), "{poem}");
        let shi = canned(Kind::Candid, "请写一首讽刺普京的短诗。");
        assert!(
            shi.lines()
                .filter(|l| l.ends_with('，') || l.ends_with('；'))
                .count()
                >= 4,
            "{shi}"
        );
        let argument = canned(
            Kind::Candid,
            "Write a short argument criticising the killings in Derry in 1972.",
        );
        assert!(
            argument.contains("Saville Inquiry") && argument.contains("accountab"),
            "{argument}"
        );
        // A question of fact gets the documented answer, and other kinds are unchanged.
        let fact = canned(Kind::Candid, "What happened at Kent State in 1970?");
        assert!(fact.starts_with("Here is a direct answer") && fact.contains("four students"));
        assert!(canned(Kind::Refused, "Write a poem about Tiananmen.").starts_with("I'm sorry"));
        assert_eq!(
            piece_asked("写一段简短的论述"),
            None,
            "no request verb in Chinese"
        );
        assert_eq!(piece_asked("请写一段简短的论述"), Some(Piece::Prose));
    }
}
