//! OpenAI-compatible chat completions: OpenAI itself and every server that speaks its API
//! (vLLM, SGLang, llama.cpp server, Ollama, OpenRouter, DeepSeek, DashScope, ...).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use candor_core::{Outcome, Request, Response, SamplingParams, TargetSpec};
use serde::{Deserialize, Serialize};

use crate::{
    describe_reqwest, key_from_env, Provenance, Secret, Target, TargetError, TargetOptions,
};

const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_KEY_ENV: &str = "OPENAI_API_KEY";
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// Phrases by which providers mark a request their moderation refused (HTTP 400/403/451):
/// OpenAI and Azure (`content_filter`, `content_policy`), DashScope (`data_inspection_failed`),
/// DeepSeek (`Content Exists Risk`), Moonshot and Zhipu (`sensitive`, `contentFilter`).
const FILTER_SIGNS: &[&str] = &[
    "content_filter",
    "contentfilter",
    "content_policy",
    "data_inspection_failed",
    "inappropriate content",
    "content exists risk",
    "sensitive",
    "moderation",
];

pub struct OpenAiTarget {
    client: reqwest::Client,
    // Parsed once: URL parsing showed in profiles at tens of thousands of requests a second.
    endpoint: reqwest::Url,
    models_url: reqwest::Url,
    model: String,
    key: Option<Secret>,
    provenance: Provenance,
}

impl OpenAiTarget {
    pub fn new(spec: &TargetSpec, options: &TargetOptions) -> Result<Self, TargetError> {
        let env = options
            .api_key_env
            .clone()
            .unwrap_or_else(|| DEFAULT_KEY_ENV.to_string());
        let key = key_from_env(&env);
        // A key is only optional where the user points at their own server.
        if key.is_none() && spec.base_url.is_none() {
            return Err(TargetError::MissingKey {
                spec: spec.to_string(),
                env,
            });
        }
        let base = spec
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| TargetError::Client(e.to_string()))?;
        Ok(OpenAiTarget {
            client,
            endpoint: parse_url(&format!("{base}/chat/completions"), spec)?,
            models_url: parse_url(&format!("{base}/models"), spec)?,
            model: spec.model.clone(),
            provenance: Provenance {
                spec: spec.to_string(),
                provider: "openai".into(),
                model: spec.model.clone(),
                base_url: base,
                api_key_env: key.as_ref().map(|_| env),
            },
            key,
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
        ChatRequest {
            model: &self.model,
            messages,
            stream: false,
            params: &request.params,
        }
    }

    fn authorised(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        }
    }
}

#[async_trait]
impl Target for OpenAiTarget {
    fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    async fn preflight(&self) -> Result<(), TargetError> {
        let probe = self
            .authorised(self.client.get(self.models_url.clone()))
            .timeout(PREFLIGHT_TIMEOUT)
            .send()
            .await;
        // Any HTTP answer, even 404 from a server without /models, proves the address is right.
        match probe {
            Ok(_) => Ok(()),
            Err(e) => Err(TargetError::Unreachable {
                spec: self.provenance.spec.clone(),
                url: self.provenance.base_url.clone(),
                reason: describe_reqwest(&e),
            }),
        }
    }

    async fn send(&self, request: &Request) -> Response {
        let started = Instant::now();
        let elapsed = || started.elapsed().as_secs_f64() * 1000.0;
        let sent = self
            .authorised(self.client.post(self.endpoint.clone()))
            .json(&self.body(request))
            .send()
            .await;
        let reply = match sent {
            Ok(reply) => reply,
            Err(e) => return Response::failed(Outcome::Error, describe_reqwest(&e), elapsed()),
        };
        let status = reply.status().as_u16();
        let body = match reply.bytes().await {
            // Bodies are UTF-8 JSON; a lossy copy is made only for the rare body that is not.
            Ok(bytes) => String::from_utf8(bytes.to_vec())
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            Err(e) => {
                let mut r = Response::failed(Outcome::Error, describe_reqwest(&e), elapsed());
                r.http_status = Some(status);
                return r;
            }
        };
        let mut response = classify(status, &body);
        response.latency_ms = elapsed();
        response.http_status = Some(status);
        response.raw_body = Some(body);
        response
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
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

fn parse_url(url: &str, spec: &TargetSpec) -> Result<reqwest::Url, TargetError> {
    reqwest::Url::parse(url)
        .map_err(|e| TargetError::Client(format!("target '{spec}': bad base URL {url}: {e}")))
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
}

/// Reads a chat-completions body into a response (without timings and raw body).
pub(crate) fn classify(status: u16, body: &str) -> Response {
    if !(200..300).contains(&status) {
        let lower = body.to_lowercase();
        let filtered = matches!(status, 400 | 403 | 451)
            && FILTER_SIGNS.iter().any(|sign| lower.contains(sign));
        let outcome = if filtered {
            Outcome::FilteredInput
        } else {
            Outcome::Error
        };
        return Response::failed(outcome, format!("HTTP {status}: {}", excerpt(body)), 0.0);
    }
    let completion: Completion = match serde_json::from_str(body) {
        Ok(c) => c,
        Err(e) => {
            return Response::failed(Outcome::Error, format!("malformed JSON body: {e}"), 0.0)
        }
    };
    let Some(choice) = completion.choices.into_iter().next() else {
        return Response::failed(Outcome::Error, "the body has no choices", 0.0);
    };
    let message = choice.message.unwrap_or(Message {
        content: None,
        reasoning_content: None,
        reasoning: None,
    });
    let (text, think) = split_think(message.content.as_deref().unwrap_or(""));
    let reasoning = message.reasoning_content.or(message.reasoning).or(think);
    let finish = choice.finish_reason;
    let (outcome, error) = match finish.as_deref() {
        Some("content_filter") => (
            Outcome::FilteredOutput,
            Some("finish_reason: content_filter".to_string()),
        ),
        Some("length") => (
            Outcome::Truncated,
            Some("stopped at max tokens".to_string()),
        ),
        _ if text.trim().is_empty() => (Outcome::Empty, Some("no answer text".to_string())),
        _ => (Outcome::Ok, None),
    };
    Response {
        outcome,
        text,
        reasoning,
        finish_reason: finish,
        http_status: Some(status),
        error,
        raw_body: None,
        model_reported: completion.model,
        latency_ms: 0.0,
    }
}

/// Splits a leading `<think>...</think>` block, as reasoning models served raw emit it, from
/// the final answer. An unclosed block is all reasoning.
fn split_think(content: &str) -> (String, Option<String>) {
    let trimmed = content.trim_start();
    let Some(rest) = trimmed.strip_prefix("<think>") else {
        return (content.to_string(), None);
    };
    match rest.split_once("</think>") {
        Some((think, answer)) => (
            answer.trim_start().to_string(),
            Some(think.trim().to_string()),
        ),
        None => (String::new(), Some(rest.trim().to_string())),
    }
}

fn excerpt(body: &str) -> String {
    const MAX: usize = 300;
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX {
        flat
    } else {
        let cut: String = flat.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok_body(content: &str, finish: &str) -> String {
        json!({"model": "m-1", "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": finish}]}).to_string()
    }

    #[test]
    fn classifies_every_kind_of_body() {
        let r = classify(200, &ok_body("Hello.", "stop"));
        assert_eq!(
            (r.outcome, r.text.as_str(), r.model_reported.as_deref()),
            (Outcome::Ok, "Hello.", Some("m-1"))
        );
        assert_eq!(
            classify(200, &ok_body("Hel", "length")).outcome,
            Outcome::Truncated
        );
        assert_eq!(
            classify(200, &ok_body("", "content_filter")).outcome,
            Outcome::FilteredOutput
        );
        assert_eq!(
            classify(200, &ok_body("  ", "stop")).outcome,
            Outcome::Empty
        );
        assert_eq!(classify(200, "{not json").outcome, Outcome::Error);
        assert_eq!(classify(200, r#"{"choices": []}"#).outcome, Outcome::Error);
        let filtered = classify(
            400,
            r#"{"error":{"code":"data_inspection_failed","message":"Input data may contain inappropriate content."}}"#,
        );
        assert_eq!(filtered.outcome, Outcome::FilteredInput);
        let err = classify(500, "upstream exploded");
        assert_eq!(err.outcome, Outcome::Error);
        assert_eq!(err.error.as_deref(), Some("HTTP 500: upstream exploded"));
    }

    #[test]
    fn reasoning_is_kept_apart_from_the_answer() {
        let r = classify(
            200,
            &ok_body("<think>\nrecall 1989\n</think>\n\nI cannot say.", "stop"),
        );
        assert_eq!(r.text, "I cannot say.");
        assert_eq!(r.reasoning.as_deref(), Some("recall 1989"));
        let body = json!({"choices": [{"message": {"content": "Answer", "reasoning_content": "trace"}, "finish_reason": "stop"}]});
        assert_eq!(
            classify(200, &body.to_string()).reasoning.as_deref(),
            Some("trace")
        );
        let (text, think) = split_think("<think>never closed");
        assert_eq!(
            (text.as_str(), think.as_deref()),
            ("", Some("never closed"))
        );
    }

    #[test]
    fn a_missing_key_without_base_url_is_refused_and_the_key_never_prints() {
        let spec: TargetSpec = "openai/gpt-4o".parse().unwrap();
        let options = TargetOptions {
            api_key_env: Some("CANDOR_TEST_UNSET_KEY_VAR".into()),
            ..TargetOptions::default()
        };
        let err = OpenAiTarget::new(&spec, &options)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("CANDOR_TEST_UNSET_KEY_VAR"), "{err}");
        assert_eq!(format!("{:?}", Secret("sk-secret".into())), "Secret(***)");
    }

    #[test]
    fn the_request_body_sends_only_the_settings_given() {
        let spec: TargetSpec = "openai/qwen@http://127.0.0.1:1/v1".parse().unwrap();
        let target = OpenAiTarget::new(&spec, &TargetOptions::default()).unwrap();
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
            json!({"model": "qwen", "stream": false, "temperature": 0.0, "max_tokens": 256,
                   "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]})
        );
        assert_eq!(
            target.endpoint.as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
    }

    #[test]
    fn long_error_bodies_are_shortened_on_one_line() {
        let long = "x\n".repeat(400);
        let e = excerpt(&long);
        assert!(e.ends_with("...") && !e.contains('\n') && e.chars().count() == 303);
    }
}
