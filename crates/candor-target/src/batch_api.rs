//! The providers' batch APIs: OpenAI's Files and Batches endpoints, Anthropic's Message
//! Batches. Upload a request file, create a batch, look at it, download its results; candor
//! writes the files and reads the results (`candor_audit::batch`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::{key_from_env, Secret, TargetError};

const ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    OpenAi,
    Anthropic,
}

/// One provider's batch API at a base URL, with its key.
pub struct BatchApi {
    api: Api,
    /// The target's base URL, as its provenance records it (OpenAI's ends in `/v1`).
    base: String,
    key: Option<Secret>,
    client: reqwest::Client,
}

/// A batch as the provider last showed it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchState {
    pub id: String,
    /// The provider's own word: `validating`, `in_progress`, `completed`, `ended`...
    pub status: String,
    /// No more results will come.
    pub ended: bool,
    /// Where the results are, once ended: OpenAI's output and error file ids, or Anthropic's
    /// results URL.
    pub results: Vec<String>,
}

impl BatchApi {
    /// The batch API of `provider` (`openai` or `anthropic`) at `base_url`; the key comes from
    /// `key_env`, or the provider's usual variable. A key is optional only for a server of
    /// one's own (a base URL on loopback or a private network is the user's to judge).
    pub fn new(
        provider: &str,
        base_url: &str,
        key_env: Option<&str>,
    ) -> Result<BatchApi, TargetError> {
        let (api, default_env) = match provider {
            "openai" => (Api::OpenAi, "OPENAI_API_KEY"),
            "anthropic" => (Api::Anthropic, "ANTHROPIC_API_KEY"),
            other => {
                return Err(TargetError::Invalid {
                    spec: format!("{other}/..."),
                    message: "only openai and anthropic targets have a batch API".into(),
                })
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| TargetError::Invalid {
                spec: provider.into(),
                message: e.to_string(),
            })?;
        Ok(BatchApi {
            api,
            base: base_url.trim_end_matches('/').to_string(),
            key: key_from_env(key_env.unwrap_or(default_env)),
            client,
        })
    }

    fn url(&self, path: &str) -> String {
        match self.api {
            Api::OpenAi => format!("{}{path}", self.base),
            Api::Anthropic => format!("{}/v1{path}", self.base),
        }
    }

    fn authorised(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let builder = match self.api {
            Api::OpenAi => builder,
            Api::Anthropic => builder.header("anthropic-version", ANTHROPIC_VERSION),
        };
        match (&self.key, self.api) {
            (Some(key), Api::OpenAi) => builder.bearer_auth(key.expose()),
            (Some(key), Api::Anthropic) => builder.header("x-api-key", key.expose()),
            (None, _) => builder,
        }
    }

    /// Sends a request and returns the body of a 2xx answer; any other status is an error
    /// with the status and the body as the provider sent it.
    async fn send(
        &self,
        url: &str,
        builder: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, TargetError> {
        let failed = |message: String| TargetError::BatchApi {
            url: url.to_string(),
            message,
        };
        let response = self
            .authorised(builder)
            .send()
            .await
            .map_err(|e| failed(crate::http::describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(format!("the body broke off: {e}")))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(failed(format!(
                "HTTP {}: {}",
                status.as_u16(),
                crate::http::excerpt(&text)
            )));
        }
        Ok(body.to_vec())
    }

    async fn send_json(
        &self,
        url: &str,
        builder: reqwest::RequestBuilder,
    ) -> Result<Value, TargetError> {
        let body = self.send(url, builder).await?;
        serde_json::from_slice(&body).map_err(|e| TargetError::BatchApi {
            url: url.to_string(),
            message: format!("not JSON: {e}"),
        })
    }

    /// Uploads one request file (JSONL, as `candor batch export` writes it) and creates its
    /// batch; returns the batch's id.
    pub async fn submit(&self, name: &str, content: Vec<u8>) -> Result<String, TargetError> {
        match self.api {
            Api::OpenAi => {
                let url = self.url("/files");
                let form = reqwest::multipart::Form::new()
                    .text("purpose", "batch")
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(content).file_name(name.to_string()),
                    );
                let file = self
                    .send_json(&url, self.client.post(&url).multipart(form))
                    .await?;
                let file_id = string_field(&file, "id", &url)?;
                let url = self.url("/batches");
                let create = json!({
                    "input_file_id": file_id,
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                });
                let batch = self
                    .send_json(&url, self.client.post(&url).json(&create))
                    .await?;
                string_field(&batch, "id", &url)
            }
            Api::Anthropic => {
                let url = self.url("/messages/batches");
                let requests: Vec<Value> = String::from_utf8_lossy(&content)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .enumerate()
                    .map(|(i, l)| {
                        serde_json::from_str(l).map_err(|e| TargetError::BatchApi {
                            url: url.clone(),
                            message: format!("{name}:{}: not JSON: {e}", i + 1),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                let batch = self
                    .send_json(
                        &url,
                        self.client
                            .post(&url)
                            .json(&json!({ "requests": requests })),
                    )
                    .await?;
                string_field(&batch, "id", &url)
            }
        }
    }

    /// The batch as the provider shows it now.
    pub async fn look(&self, id: &str) -> Result<BatchState, TargetError> {
        let url = match self.api {
            Api::OpenAi => self.url(&format!("/batches/{id}")),
            Api::Anthropic => self.url(&format!("/messages/batches/{id}")),
        };
        let batch = self.send_json(&url, self.client.get(&url)).await?;
        Ok(match self.api {
            Api::OpenAi => {
                let status = string_field(&batch, "status", &url)?;
                let ended = matches!(
                    status.as_str(),
                    "completed" | "failed" | "expired" | "cancelled"
                );
                let results = ["output_file_id", "error_file_id"]
                    .iter()
                    .filter_map(|f| batch[*f].as_str().map(str::to_string))
                    .collect();
                BatchState {
                    id: id.into(),
                    status,
                    ended,
                    results,
                }
            }
            Api::Anthropic => {
                let status = string_field(&batch, "processing_status", &url)?;
                BatchState {
                    id: id.into(),
                    ended: status == "ended",
                    status,
                    results: batch["results_url"]
                        .as_str()
                        .map(str::to_string)
                        .into_iter()
                        .collect(),
                }
            }
        })
    }

    /// An ended batch's results, as the provider's JSONL (OpenAI: answers, then errors).
    pub async fn results(&self, state: &BatchState) -> Result<Vec<u8>, TargetError> {
        let mut all = Vec::new();
        for place in &state.results {
            let url = match self.api {
                Api::OpenAi => self.url(&format!("/files/{place}/content")),
                Api::Anthropic => place.clone(),
            };
            let mut part = self.send(&url, self.client.get(&url)).await?;
            if !part.is_empty() && !part.ends_with(b"\n") {
                part.push(b'\n');
            }
            all.extend(part);
        }
        Ok(all)
    }
}

fn string_field(v: &Value, name: &str, url: &str) -> Result<String, TargetError> {
    v[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| TargetError::BatchApi {
            url: url.to_string(),
            message: format!(
                "the answer has no {name}: {}",
                crate::http::excerpt(&v.to_string())
            ),
        })
}
