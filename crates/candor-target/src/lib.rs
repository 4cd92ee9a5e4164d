//! The Target trait and candor's providers.
//!
//! A target never fails a request with an `Err`: whatever happens on the wire becomes a
//! [`Response`] with an [`Outcome`], so that the runner stores a row for every request and an
//! audit can be read back completely, provider errors included.

mod openai;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use candor_core::{Request, Response, TargetSpec};
use serde::Serialize;

pub use openai::OpenAiTarget;

/// Providers this build knows, in the order shown to users.
pub const PROVIDERS: &[&str] = &["openai"];

/// Where a target's answers come from, recorded with every run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    pub spec: String,
    pub provider: String,
    pub model: String,
    pub base_url: String,
    /// The environment variable the key was read from (never the key).
    pub api_key_env: Option<String>,
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
}

/// Settings shared by every target of one audit.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// Environment variable holding the API key; `None` uses the provider's default.
    pub api_key_env: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            api_key_env: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(600),
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
pub fn build(spec: &TargetSpec, options: &TargetOptions) -> Result<Box<dyn Target>, TargetError> {
    match spec.provider.as_str() {
        "openai" => Ok(Box::new(OpenAiTarget::new(spec, options)?)),
        other => Err(TargetError::UnknownProvider {
            provider: other.to_string(),
            spec: spec.to_string(),
        }),
    }
}

/// Reads a key from the environment; an empty variable counts as unset.
fn key_from_env(env: &str) -> Option<Secret> {
    std::env::var(env)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| Secret(v.trim().to_string()))
}

/// Error text of a transport failure with its causes, without the request URL's query (which
/// some providers use for keys).
fn describe_reqwest(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "connection failed".to_string()
    } else if err.is_decode() {
        "malformed body".to_string()
    } else {
        "request failed".to_string()
    };
    // The innermost cause says what happened ("Connection refused"); the layers between
    // only repeat it.
    let mut source = std::error::Error::source(err);
    let mut innermost = None;
    while let Some(cause) = source {
        innermost = Some(cause.to_string());
        source = cause.source();
    }
    if let Some(cause) = innermost {
        text.push_str(": ");
        text.push_str(&cause);
    }
    text
}
