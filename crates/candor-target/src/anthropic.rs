//! Anthropic's Messages API, streamed or not.

use async_trait::async_trait;
use candor_core::{Outcome, Request, Response, TargetSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{self, looks_filtered, Endpoint, ProviderInfo, Wire};
use crate::{Provenance, Target, TargetError, TargetSettings};

const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
const DEFAULT_KEY_ENV: &str = "ANTHROPIC_API_KEY";
const API_VERSION: &str = "2023-06-01";
/// The API requires a limit; this one leaves room for any answer a probe asks for.
const DEFAULT_MAX_TOKENS: u32 = 2048;

pub struct AnthropicTarget {
    endpoint: Endpoint,
}

const INFO: ProviderInfo = ProviderInfo {
    name: "anthropic",
    default_base: DEFAULT_BASE_URL,
    key_env: DEFAULT_KEY_ENV,
    path: "/v1/messages",
    models_path: "/v1/models",
    // Accept a base with or without the trailing /v1 that OpenAI-style URLs carry.
    strip_suffix: Some("/v1"),
};

impl AnthropicTarget {
    pub fn new(spec: &TargetSpec, settings: &TargetSettings) -> Result<Self, TargetError> {
        Ok(AnthropicTarget {
            endpoint: Endpoint::new(spec, settings, &INFO)?,
        })
    }

    fn body<'a>(&'a self, request: &'a Request) -> MessagesRequest<'a> {
        let p = &request.params;
        MessagesRequest {
            model: &self.endpoint.provenance.model,
            max_tokens: p.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            system: request.system.as_deref(),
            messages: [UserMessage {
                role: "user",
                content: &request.prompt,
            }],
            temperature: p.temperature,
            top_p: p.top_p,
            stream: self.endpoint.settings.stream,
            extra: &self.endpoint.settings.extra_body,
        }
    }
}

#[async_trait]
impl Target for AnthropicTarget {
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
        let mut builder = e
            .client
            .post(url)
            .header("anthropic-version", API_VERSION)
            .json(&self.body(request));
        if let Some(key) = &e.key {
            builder = builder.header("x-api-key", key.expose());
        }
        let wire = http::exchange(builder, e.settings.stream, e.settings.idle_timeout).await;
        read(wire, base, e.settings.stream)
    }
}

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: [UserMessage<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    stream: bool,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, Value>,
}

#[derive(Serialize)]
struct UserMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize, Default)]
struct Message {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Block {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
}

/// One streamed event; its `type` says which fields it carries.
#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

pub(crate) fn read(wire: Wire, base: &str, stream: bool) -> Response {
    wire.into_response(base, |w| interpret(w, stream))
}

/// What a 2xx exchange says: outcome, text, reasoning, finish reason, model.
fn interpret(wire: &Wire, stream: bool) -> Response {
    let mut r = Response::default();
    let mut text = String::new();
    let mut thinking: Option<String> = None;
    let mut stop: Option<String> = None;
    let mut finished = !stream;
    let mut stream_error: Option<String> = None;
    if stream {
        for (_, event) in &wire.events {
            let parsed: StreamEvent = match serde_json::from_str(&event.data) {
                Ok(e) => e,
                Err(e) => {
                    r.outcome = Outcome::Error;
                    r.error = Some(format!(
                        "malformed stream event: {e}: {}",
                        http::excerpt(&event.data)
                    ));
                    return r;
                }
            };
            match parsed.kind.as_str() {
                "message_start" => r.model_reported = parsed.message.and_then(|m| m.model),
                "content_block_delta" => {
                    if let Some(d) = parsed.delta {
                        if let Some(t) = d.text {
                            text.push_str(&t);
                        }
                        if let Some(t) = d.thinking {
                            thinking.get_or_insert_with(String::new).push_str(&t);
                        }
                    }
                }
                "message_delta" => {
                    if let Some(reason) = parsed.delta.and_then(|d| d.stop_reason) {
                        stop = Some(reason);
                    }
                }
                "message_stop" => finished = true,
                "error" => {
                    stream_error =
                        Some(http::excerpt(&parsed.error.unwrap_or_default().to_string()));
                    break;
                }
                _ => {}
            }
        }
    } else {
        let message: Message = match serde_json::from_str(&wire.body) {
            Ok(m) => m,
            Err(e) => {
                r.outcome = Outcome::Error;
                r.error = Some(format!("malformed JSON body: {e}"));
                return r;
            }
        };
        r.model_reported = message.model;
        stop = message.stop_reason;
        for block in message.content {
            match block.kind.as_str() {
                "text" => text.push_str(block.text.as_deref().unwrap_or("")),
                "thinking" => thinking
                    .get_or_insert_with(String::new)
                    .push_str(block.thinking.as_deref().unwrap_or("")),
                _ => {}
            }
        }
    }
    let has_text = !text.trim().is_empty();
    r.text = text;
    r.reasoning = thinking;
    r.finish_reason = stop.clone();
    (r.outcome, r.error) = match (stream_error, stop.as_deref()) {
        (Some(e), _) if looks_filtered(&e) && has_text => (
            Outcome::Retracted,
            Some(format!("content streamed, then: {e}")),
        ),
        (Some(e), _) if looks_filtered(&e) => (Outcome::FilteredOutput, Some(e)),
        (Some(e), _) => (Outcome::Error, Some(format!("error event in stream: {e}"))),
        (None, Some("refusal")) if has_text && stream => (
            Outcome::Retracted,
            Some("content streamed, then stop_reason: refusal".into()),
        ),
        (None, Some("refusal")) => (Outcome::FilteredOutput, Some("stop_reason: refusal".into())),
        (None, _) if !finished => (
            Outcome::Error,
            Some(match &wire.failure {
                Some(f) => format!("the stream broke off: {f}"),
                None => "the stream ended before message_stop".into(),
            }),
        ),
        (None, Some("max_tokens")) => (Outcome::Truncated, Some("stopped at max tokens".into())),
        (None, _) if !has_text => (Outcome::Empty, Some("no answer text".into())),
        (None, _) => (Outcome::Ok, None),
    };
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Event;
    use serde_json::json;

    fn wire(status: u16, body: &str, events: &[Value]) -> Wire {
        Wire {
            status: Some(status),
            body: body.into(),
            events: events
                .iter()
                .map(|e| {
                    (
                        0.0,
                        Event {
                            event: e["type"].as_str().map(str::to_string),
                            data: e.to_string(),
                        },
                    )
                })
                .collect(),
            failure: None,
            first_byte_ms: None,
            latency_ms: 1.0,
            retry_after_ms: None,
        }
    }

    #[test]
    fn reads_whole_messages() {
        let body = json!({"type": "message", "model": "claude-x", "stop_reason": "end_turn",
            "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Four students died."}]});
        let r = read(wire(200, &body.to_string(), &[]), "b", false);
        assert_eq!(
            (r.outcome, r.text.as_str(), r.reasoning.as_deref()),
            (Outcome::Ok, "Four students died.", Some("hmm"))
        );
        assert_eq!(r.model_reported.as_deref(), Some("claude-x"));
        let refusal = json!({"content": [], "stop_reason": "refusal"});
        assert_eq!(
            read(wire(200, &refusal.to_string(), &[]), "b", false).outcome,
            Outcome::FilteredOutput
        );
        let cut =
            json!({"content": [{"type": "text", "text": "Four"}], "stop_reason": "max_tokens"});
        assert_eq!(
            read(wire(200, &cut.to_string(), &[]), "b", false).outcome,
            Outcome::Truncated
        );
        let overloaded = read(
            wire(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error"}}"#,
                &[],
            ),
            "b",
            false,
        );
        assert_eq!(
            (overloaded.outcome, overloaded.http_status),
            (Outcome::Error, Some(529))
        );
    }

    #[test]
    fn reads_streams() {
        let events = [
            json!({"type": "message_start", "message": {"model": "claude-s", "content": []}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "t"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hel"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "lo"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
            json!({"type": "message_stop"}),
        ];
        let r = read(wire(200, "", &events), "b", true);
        assert_eq!(
            (r.outcome, r.text.as_str(), r.model_reported.as_deref()),
            (Outcome::Ok, "Hello", Some("claude-s"))
        );
        let r = read(wire(200, "", &events[..4]), "b", true);
        assert_eq!((r.outcome, r.text.as_str()), (Outcome::Error, "Hello"));
        let mut refused = events[..4].to_vec();
        refused.push(json!({"type": "message_delta", "delta": {"stop_reason": "refusal"}}));
        refused.push(json!({"type": "message_stop"}));
        assert_eq!(
            read(wire(200, "", &refused), "b", true).outcome,
            Outcome::Retracted
        );
    }

    #[test]
    fn the_body_carries_the_required_limit() {
        let spec: TargetSpec = "anthropic/claude-x@http://127.0.0.1:1/v1".parse().unwrap();
        let target = AnthropicTarget::new(&spec, &TargetSettings::default()).unwrap();
        let request = Request {
            probe_id: "p".into(),
            lang: "en".into(),
            sample: 0,
            system: None,
            prompt: "Q?".into(),
            params: Default::default(),
        };
        let body = serde_json::to_value(target.body(&request)).unwrap();
        assert_eq!(
            body,
            json!({"model": "claude-x", "max_tokens": 2048, "stream": false, "messages": [{"role": "user", "content": "Q?"}]})
        );
        assert_eq!(
            target.endpoint.replicas.pick().1.as_str(),
            "http://127.0.0.1:1/v1/messages"
        );
    }
}
