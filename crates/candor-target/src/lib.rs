//! The Target trait and candor's providers.
//!
//! A target never fails a request with an `Err`: whatever happens on the wire becomes a
//! [`Response`] with an [`Outcome`], so that the runner stores a row for every request and an
//! audit can be read back completely, provider errors included. Retries, rate limits and
//! concurrency belong to the runner; a target sends once.

mod anthropic;
pub mod batch_api;
mod http;
mod openai;
mod replay;
pub mod sse;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use candor_core::{Request, Response, TargetSpec};
use serde::Serialize;

pub use anthropic::AnthropicTarget;
pub use http::split_think;
pub use openai::OpenAiTarget;
pub use replay::{ReplayRecord, ReplayTarget};

/// Providers this build knows, in the order shown to users.
pub const PROVIDERS: &[&str] = &["openai", "anthropic", "replay", "local"];

/// Where a target's answers come from, recorded with every run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    pub spec: String,
    pub provider: String,
    pub model: String,
    /// The first base URL; `base_urls` lists every replica.
    pub base_url: String,
    pub base_urls: Vec<String>,
    pub stream: bool,
    /// Extra JSON fields sent in every request body.
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// The environment variable the key was read from (never the key).
    pub api_key_env: Option<String>,
    pub candor_version: &'static str,
    /// For the built-in engine: engine, build, weights' SHA-256, quantisation, template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<serde_json::Value>,
}

#[async_trait]
pub trait Target: Send + Sync {
    fn provenance(&self) -> &Provenance;

    /// Checks before any work starts that the target can be reached, so that a wrong address
    /// fails in one line instead of as thousands of stored errors.
    async fn preflight(&self) -> Result<(), TargetError> {
        Ok(())
    }

    async fn send(&self, request: &Request) -> Response;

    /// The body this target sends for `request`, whole rather than streamed: what a provider's
    /// batch API takes for one request. `None` for a target that is not an HTTP API.
    fn batch_body(&self, request: &Request) -> Option<serde_json::Value> {
        let _ = request;
        None
    }

    /// Whether a failed request may succeed when sent again (not for recorded answers).
    fn retries(&self) -> bool {
        true
    }
}

/// How to reach one target, beyond its spec.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    /// Environment variable holding the API key; `None` uses the provider's default.
    pub api_key_env: Option<String>,
    /// Further replicas of the spec's base URL; requests go round-robin across all of them.
    pub replicas: Vec<String>,
    /// Ask for a streamed answer (SSE) and keep every event with its arrival time.
    pub stream: bool,
    /// Extra JSON fields merged into every request body (e.g. `{"enable_thinking": false}`).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    pub connect_timeout: Duration,
    /// The whole exchange, streamed body included.
    pub request_timeout: Duration,
    /// The longest silence allowed between two events of a stream.
    pub idle_timeout: Duration,
}

impl Default for TargetSettings {
    fn default() -> Self {
        TargetSettings {
            api_key_env: None,
            replicas: Vec::new(),
            stream: false,
            extra_body: serde_json::Map::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("unknown provider '{provider}' in target '{spec}' (known providers: {known})", known = PROVIDERS.join(", "))]
    UnknownProvider { provider: String, spec: String },
    #[error("target '{spec}' needs an API key: set the environment variable {env} (or choose another with --api-key-env), or give a base URL for a local server")]
    MissingKey { spec: String, env: String },
    #[error("target '{spec}' is unreachable at {url}: {reason}")]
    Unreachable {
        spec: String,
        url: String,
        reason: String,
    },
    #[error("target '{spec}': {message}")]
    Invalid { spec: String, message: String },
    #[error("batch API at {url}: {message}")]
    BatchApi { url: String, message: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// An API key that never prints itself.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Builds the target a spec names, reading its key from the environment.
pub fn build(spec: &TargetSpec, settings: &TargetSettings) -> Result<Box<dyn Target>, TargetError> {
    match spec.provider.as_str() {
        "openai" => Ok(Box::new(OpenAiTarget::new(spec, settings)?)),
        "anthropic" => Ok(Box::new(AnthropicTarget::new(spec, settings)?)),
        "replay" => Ok(Box::new(ReplayTarget::open(spec)?)),
        other => Err(TargetError::UnknownProvider {
            provider: other.to_string(),
            spec: spec.to_string(),
        }),
    }
}

/// Reads a provider's body as if it had just arrived: the same classification a live exchange
/// gets. For re-reading stored raw bodies, and the entry point of the body fuzz target.
pub fn classify_body(provider: &str, status: u16, body: &str, stream: bool) -> Option<Response> {
    let mut wire = http::Wire {
        status: Some(status),
        body: body.to_string(),
        events: Vec::new(),
        failure: None,
        first_byte_ms: None,
        latency_ms: 0.0,
        retry_after_ms: None,
    };
    if stream {
        let mut parser = sse::SseParser::default();
        let mut events = parser.push(body.as_bytes()).unwrap_or_default();
        events.extend(parser.finish().unwrap_or_default());
        wire.events = events.into_iter().map(|e| (0.0, e)).collect();
    }
    match provider {
        "openai" => Some(openai::read(wire, "", stream)),
        "anthropic" => Some(anthropic::read(wire, "", stream)),
        _ => None,
    }
}

/// Reads a key from the environment; an empty variable counts as unset.
fn key_from_env(env: &str) -> Option<Secret> {
    std::env::var(env)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| Secret(v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::Outcome;
    use proptest::prelude::*;

    fn check(r: &Response) -> Result<(), TestCaseError> {
        prop_assert!(r.outcome != Outcome::Ok || !r.text.trim().is_empty());
        prop_assert!(r.outcome == Outcome::Ok || r.error.is_some());
        Ok(())
    }

    proptest! {
        /// Whatever a provider sends, reading it gives a consistent response and never panics.
        #[test]
        fn any_body_reads_to_a_consistent_response(
            body in prop_oneof![
                "\\PC{0,300}",
                "(data: (\\{\"choices\":\\[\\{\"delta\":\\{\"content\":\"[a-z ]{0,8}\"\\},\"finish_reason\":(null|\"stop\"|\"length\"|\"content_filter\")\\}\\]\\}|\\[DONE\\]|\\{oops)\n\n){0,6}",
                "(event: [a-z_]{0,14}\ndata: \\{\"type\":\"(message_start|content_block_delta|message_delta|message_stop|error)\",\"delta\":\\{\"text\":\"[a-z]{0,5}\",\"stop_reason\":\"(end_turn|refusal|max_tokens)\"\\}\\}\n\n){0,6}",
            ],
            status in prop_oneof![Just(200u16), Just(400u16), Just(429u16), Just(500u16), 100u16..600],
            stream in any::<bool>(),
        ) {
            for provider in ["openai", "anthropic"] {
                let r = classify_body(provider, status, &body, stream).unwrap();
                check(&r)?;
                prop_assert_eq!(r.http_status, Some(status));
            }
        }
    }
}
