//! OpenAI-compatible chat completions: OpenAI itself and every server that speaks its API
//! (vLLM, SGLang, llama.cpp server, Ollama, OpenRouter, DeepSeek, DashScope, ...), streamed or
//! not.

use async_trait::async_trait;
use candor_core::{Outcome, Request, Response, SamplingParams, TargetSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{self, looks_filtered, split_think, Endpoint, ProviderInfo, Wire};
use crate::{Provenance, Target, TargetError, TargetSettings};

const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_KEY_ENV: &str = "OPENAI_API_KEY";

pub struct OpenAiTarget {
    endpoint: Endpoint,
}

const INFO: ProviderInfo = ProviderInfo {
    name: "openai",
    default_base: DEFAULT_BASE_URL,
    key_env: DEFAULT_KEY_ENV,
    path: "/chat/completions",
    models_path: "/models",
    strip_suffix: None,
};

impl OpenAiTarget {
    pub fn new(spec: &TargetSpec, settings: &TargetSettings) -> Result<Self, TargetError> {
        Ok(OpenAiTarget {
            endpoint: Endpoint::new(spec, settings, &INFO)?,
        })
    }

    fn body<'a>(&'a self, request: &'a Request) -> ChatRequest<'a> {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &request.system {
            messages.push(ChatMessage {
                role: "system",
                content: system,
            });
        }
        messages.push(ChatMessage {
            role: "user",
            content: &request.prompt,
        });
        let settings = &self.endpoint.settings;
        ChatRequest {
            model: &self.endpoint.provenance.model,
            messages,
            stream: settings.stream,
            params: &request.params,
            extra: &settings.extra_body,
        }
    }

    fn authorised(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.endpoint.key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        }
    }
}

#[async_trait]
impl Target for OpenAiTarget {
    fn provenance(&self) -> &Provenance {
        &self.endpoint.provenance
    }

    fn batch_body(&self, request: &Request) -> Option<Value> {
        let mut body = serde_json::to_value(self.body(request)).ok()?;
        body.as_object_mut()?.remove("stream");
        Some(body)
    }

    async fn preflight(&self) -> Result<(), TargetError> {
        self.endpoint.preflight().await
    }

    async fn send(&self, request: &Request) -> Response {
        let e = &self.endpoint;
        let (base, url) = e.replicas.pick();
        let builder = self
            .authorised(e.client.post(url))
            .json(&self.body(request));
        let wire = http::exchange(builder, e.settings.stream, e.settings.idle_timeout).await;
        read(wire, base, e.settings.stream)
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    stream: bool,
    /// temperature, top_p, max_tokens, seed: sent only when set.
    #[serde(flatten)]
    params: &'a SamplingParams,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, Value>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    /// OpenRouter names the upstream provider that served the request.
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize, Default)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    delta: Option<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
}

/// Reads an exchange into a response.
pub(crate) fn read(wire: Wire, base: &str, stream: bool) -> Response {
    wire.into_response(base, |w| interpret(w, stream))
}

/// What a 2xx exchange says: outcome, text, reasoning, finish reason, model.
fn interpret(wire: &Wire, stream: bool) -> Response {
    let mut r = Response::default();
    let (text, reasoning, finish, done) = if stream {
        match accumulate(wire) {
            Ok(parts) => parts,
            Err(error) => {
                r.outcome = Outcome::Error;
                r.error = Some(error);
                return r;
            }
        }
    } else {
        let completion: Completion = match serde_json::from_str(&wire.body) {
            Ok(c) => c,
            Err(e) => {
                r.outcome = Outcome::Error;
                r.error = Some(format!("malformed JSON body: {e}"));
                return r;
            }
        };
        r.model_reported = completion.model;
        r.route = completion.provider;
        let Some(choice) = completion.choices.into_iter().next() else {
            r.outcome = Outcome::Error;
            r.error = Some("the body has no choices".into());
            return r;
        };
        let message = choice.message.unwrap_or_default();
        let reasoning = message.reasoning_content.or(message.reasoning);
        let text = message.content.unwrap_or_default();
        Partial {
            text,
            reasoning,
            finish: choice.finish_reason,
            replaced: false,
            error: None,
        }
        .into_parts(true)
    };
    if stream {
        let (model, route) = stream_identity(wire);
        r.model_reported = model;
        r.route = route;
    }
    let (text, think) = split_think(&text);
    r.reasoning = reasoning.or(think);
    r.finish_reason = finish.clone();
    r.text = text;
    let streamed_text = !r.text.trim().is_empty();
    (r.outcome, r.error) = match (finish.as_deref(), done) {
        (_, Done::Retracted(why)) => (Outcome::Retracted, Some(why)),
        (_, Done::Filtered(why)) => (Outcome::FilteredOutput, Some(why)),
        (_, Done::BrokenOff(why)) => (Outcome::Error, Some(why)),
        (Some("content_filter"), _) if streamed_text && stream => (
            Outcome::Retracted,
            Some("content streamed, then finish_reason: content_filter".into()),
        ),
        (Some("content_filter"), _) => (
            Outcome::FilteredOutput,
            Some("finish_reason: content_filter".into()),
        ),
        (Some("length"), _) => (Outcome::Truncated, Some("stopped at max tokens".into())),
        _ if !streamed_text => (Outcome::Empty, Some("no answer text".into())),
        _ => (Outcome::Ok, None),
    };
    r
}

/// How a stream ended, beyond its finish reason.
enum Done {
    Finished,
    /// Content was sent, then withdrawn or replaced.
    Retracted(String),
    /// Moderation stopped it before any content.
    Filtered(String),
    /// The stream ended before it finished.
    BrokenOff(String),
}

struct Partial {
    text: String,
    reasoning: Option<String>,
    finish: Option<String>,
    replaced: bool,
    error: Option<String>,
}

impl Partial {
    fn into_parts(self, finished: bool) -> (String, Option<String>, Option<String>, Done) {
        let done = if self.replaced {
            Done::Retracted("content streamed, then replaced by a different message".into())
        } else if let Some(error) = self.error {
            if looks_filtered(&error) && !self.text.trim().is_empty() {
                Done::Retracted(format!("content streamed, then moderation error: {error}"))
            } else if looks_filtered(&error) {
                Done::Filtered(format!("moderation error in stream: {error}"))
            } else {
                Done::BrokenOff(format!("error event in stream: {error}"))
            }
        } else if !finished {
            Done::BrokenOff("the stream ended before it finished".into())
        } else {
            Done::Finished
        };
        (self.text, self.reasoning, self.finish, done)
    }
}

/// Folds the streamed events into text, reasoning and finish reason.
fn accumulate(wire: &Wire) -> Result<(String, Option<String>, Option<String>, Done), String> {
    let mut partial = Partial {
        text: String::new(),
        reasoning: None,
        finish: None,
        replaced: false,
        error: None,
    };
    let mut finished = false;
    for (_, event) in &wire.events {
        let data = event.data.trim();
        if data == "[DONE]" {
            finished = true;
            continue;
        }
        if data.is_empty() {
            continue;
        }
        let chunk: Completion = serde_json::from_str(data)
            .map_err(|e| format!("malformed stream event: {e}: {}", http::excerpt(data)))?;
        if let Some(error) = chunk.error {
            partial.error = Some(http::excerpt(&error.to_string()));
            break;
        }
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(delta) = choice.delta {
                if let Some(t) = delta.content {
                    partial.text.push_str(&t);
                }
                if let Some(t) = delta.reasoning_content.or(delta.reasoning) {
                    partial
                        .reasoning
                        .get_or_insert_with(String::new)
                        .push_str(&t);
                }
            }
            // A whole message inside a stream replaces what was streamed: some hosted services
            // withdraw an answer this way.
            if let Some(message) = choice.message {
                if let Some(t) = message.content {
                    if !partial.text.is_empty() && t != partial.text {
                        partial.replaced = true;
                    }
                    partial.text = t;
                }
            }
            if choice.finish_reason.is_some() {
                partial.finish = choice.finish_reason;
            }
        }
    }
    // A stream that sent a finish reason but no [DONE] has still finished.
    let finished = finished || partial.finish.is_some();
    match (&wire.failure, finished, &partial.error) {
        (Some(failure), false, None) => Ok((
            partial.text,
            partial.reasoning,
            partial.finish,
            Done::BrokenOff(format!("the stream broke off: {failure}")),
        )),
        _ => Ok(partial.into_parts(finished)),
    }
}

fn stream_identity(wire: &Wire) -> (Option<String>, Option<String>) {
    let mut model = None;
    let mut route = None;
    for (_, event) in &wire.events {
        if let Ok(chunk) = serde_json::from_str::<Completion>(&event.data) {
            model = model.or(chunk.model);
            route = route.or(chunk.provider);
            if model.is_some() && route.is_some() {
                break;
            }
        }
    }
    (model, route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Event;
    use serde_json::json;

    fn wire(status: u16, body: &str) -> Wire {
        Wire {
            status: Some(status),
            body: body.into(),
            events: Vec::new(),
            failure: None,
            first_byte_ms: Some(1.0),
            latency_ms: 2.0,
            retry_after_ms: None,
        }
    }

    fn streamed(events: &[&str], failure: Option<&str>) -> Wire {
        let mut w = wire(200, "");
        w.events = events
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    i as f64,
                    Event {
                        event: None,
                        data: d.to_string(),
                    },
                )
            })
            .collect();
        w.failure = failure.map(str::to_string);
        w
    }

    fn ok_body(content: &str, finish: &str) -> String {
        json!({"model": "m-1", "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": finish}]}).to_string()
    }

    fn delta(content: &str) -> String {
        json!({"model": "m-s", "choices": [{"delta": {"content": content}, "finish_reason": null}]})
            .to_string()
    }

    fn finish(reason: &str) -> String {
        json!({"choices": [{"delta": {}, "finish_reason": reason}]}).to_string()
    }

    #[test]
    fn classifies_every_kind_of_body() {
        let r = read(wire(200, &ok_body("Hello.", "stop")), "b", false);
        assert_eq!(
            (r.outcome, r.text.as_str(), r.model_reported.as_deref()),
            (Outcome::Ok, "Hello.", Some("m-1"))
        );
        assert_eq!(r.base_url.as_deref(), Some("b"));
        assert_eq!(
            read(wire(200, &ok_body("Hel", "length")), "b", false).outcome,
            Outcome::Truncated
        );
        assert_eq!(
            read(wire(200, &ok_body("", "content_filter")), "b", false).outcome,
            Outcome::FilteredOutput
        );
        assert_eq!(
            read(wire(200, &ok_body("  ", "stop")), "b", false).outcome,
            Outcome::Empty
        );
        assert_eq!(
            read(wire(200, "{not json"), "b", false).outcome,
            Outcome::Error
        );
        assert_eq!(
            read(wire(200, r#"{"choices": []}"#), "b", false).outcome,
            Outcome::Error
        );
        let filtered = read(
            wire(
                400,
                r#"{"error":{"code":"data_inspection_failed","message":"Input data may contain inappropriate content."}}"#,
            ),
            "b",
            false,
        );
        assert_eq!(filtered.outcome, Outcome::FilteredInput);
        let err = read(wire(500, "upstream exploded"), "b", false);
        assert_eq!(err.outcome, Outcome::Error);
        assert_eq!(err.error.as_deref(), Some("HTTP 500: upstream exploded"));
        let route = json!({"model": "x", "provider": "DeepInfra", "choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}]});
        assert_eq!(
            read(wire(200, &route.to_string()), "b", false)
                .route
                .as_deref(),
            Some("DeepInfra")
        );
    }

    #[test]
    fn reasoning_is_kept_apart_from_the_answer() {
        let r = read(
            wire(
                200,
                &ok_body("<think>\nrecall 1989\n</think>\n\nI cannot say.", "stop"),
            ),
            "b",
            false,
        );
        assert_eq!(r.text, "I cannot say.");
        assert_eq!(r.reasoning.as_deref(), Some("recall 1989"));
        let body = json!({"choices": [{"message": {"content": "Answer", "reasoning_content": "trace"}, "finish_reason": "stop"}]});
        assert_eq!(
            read(wire(200, &body.to_string()), "b", false)
                .reasoning
                .as_deref(),
            Some("trace")
        );
    }

    #[test]
    fn streams_are_folded_and_their_endings_told_apart() {
        let r = read(
            streamed(
                &[&delta("Hel"), &delta("lo."), &finish("stop"), "[DONE]"],
                None,
            ),
            "b",
            true,
        );
        assert_eq!((r.outcome, r.text.as_str()), (Outcome::Ok, "Hello."));
        assert_eq!(r.model_reported.as_deref(), Some("m-s"));
        assert_eq!(r.chunks.len(), 4);

        let reasoning = json!({"choices": [{"delta": {"reasoning_content": "think"}}]}).to_string();
        let r = read(
            streamed(&[&reasoning, &delta("A"), &finish("stop")], None),
            "b",
            true,
        );
        assert_eq!(
            (r.outcome, r.reasoning.as_deref()),
            (Outcome::Ok, Some("think"))
        );

        let r = read(
            streamed(
                &[&delta("The army"), &finish("content_filter"), "[DONE]"],
                None,
            ),
            "b",
            true,
        );
        assert_eq!(r.outcome, Outcome::Retracted);
        assert_eq!(r.text, "The army");

        let replaced = json!({"choices": [{"message": {"content": "Let's talk about something else."}, "finish_reason": "stop"}]}).to_string();
        let r = read(
            streamed(&[&delta("In 1989 the army"), &replaced], None),
            "b",
            true,
        );
        assert_eq!(r.outcome, Outcome::Retracted);

        let r = read(streamed(&[&finish("content_filter")], None), "b", true);
        assert_eq!(r.outcome, Outcome::FilteredOutput);

        let r = read(
            streamed(
                &[&delta("Half an ans")],
                Some("the body broke off: connection reset"),
            ),
            "b",
            true,
        );
        assert_eq!(
            (r.outcome, r.text.as_str()),
            (Outcome::Error, "Half an ans")
        );
        assert!(r.error.unwrap().contains("broke off"));

        let r = read(streamed(&[&delta("Half")], None), "b", true);
        assert_eq!(r.outcome, Outcome::Error);

        let r = read(streamed(&[&delta("x"), "{oops"], None), "b", true);
        assert_eq!(r.outcome, Outcome::Error);
        assert!(r.error.unwrap().starts_with("malformed stream event"));

        let err = json!({"error": {"message": "Content Exists Risk"}}).to_string();
        assert_eq!(
            read(streamed(&[&delta("x"), &err], None), "b", true).outcome,
            Outcome::Retracted
        );
        assert_eq!(
            read(streamed(&[&err], None), "b", true).outcome,
            Outcome::FilteredOutput
        );
    }

    #[test]
    fn a_missing_key_without_base_url_is_refused_and_the_key_never_prints() {
        let spec: TargetSpec = "openai/gpt-4o".parse().unwrap();
        let settings = TargetSettings {
            api_key_env: Some("CANDOR_TEST_UNSET_KEY_VAR".into()),
            ..TargetSettings::default()
        };
        let err = OpenAiTarget::new(&spec, &settings)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("CANDOR_TEST_UNSET_KEY_VAR"), "{err}");
        assert_eq!(
            format!("{:?}", crate::Secret("sk-secret".into())),
            "Secret(***)"
        );
    }

    #[test]
    fn the_request_body_sends_only_the_settings_given() {
        let spec: TargetSpec = "openai/qwen@http://127.0.0.1:1/v1".parse().unwrap();
        let mut extra = serde_json::Map::new();
        extra.insert("enable_thinking".into(), json!(false));
        let settings = TargetSettings {
            extra_body: extra,
            replicas: vec!["http://127.0.0.1:2/v1/".into()],
            ..TargetSettings::default()
        };
        let target = OpenAiTarget::new(&spec, &settings).unwrap();
        let request = Request {
            probe_id: "p".into(),
            lang: "en".into(),
            sample: 0,
            system: Some("Be brief.".into()),
            prompt: "Q?".into(),
            params: SamplingParams {
                temperature: Some(0.0),
                max_tokens: Some(256),
                ..SamplingParams::default()
            },
        };
        let body = serde_json::to_value(target.body(&request)).unwrap();
        assert_eq!(
            body,
            json!({"model": "qwen", "stream": false, "temperature": 0.0, "max_tokens": 256, "enable_thinking": false,
                   "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]})
        );
        let picks: Vec<String> = (0..4)
            .map(|_| target.endpoint.replicas.pick().1.to_string())
            .collect();
        assert_eq!(picks[0], "http://127.0.0.1:1/v1/chat/completions");
        assert_eq!(picks[1], "http://127.0.0.1:2/v1/chat/completions");
        assert_eq!(picks[2], picks[0]);
        assert_eq!(target.provenance().base_urls.len(), 2);
    }
}
