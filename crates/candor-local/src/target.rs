//! `local/PATH.gguf` and `local/ALIAS`: a GGUF model on this machine's CPU behind the same
//! Target trait as any provider, so an audit needs no server at all.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use candle_core::quantized::gguf_file::{Content, Value};
use candor_core::{Outcome, Request, Response, TargetSpec};
use candor_target::{split_think, Provenance, Target, TargetError};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::engine::{Engine, Finish, Sampling};
use crate::model::Model;
use crate::template::ChatTemplate;
use crate::tokenizer::Tokenizer;
use crate::{LocalError, ModelStore};

/// The candle release the engine is built on (pinned in Cargo.toml).
pub const ENGINE: &str = "candle-core 0.11.1";

/// Answers are capped here unless the request asks otherwise: enough for a full answer to a
/// factual question, short enough that a rambling model cannot hold a slot for long.
pub const DEFAULT_MAX_TOKENS: usize = 512;

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub threads: usize,
    /// Sequences decoded together.
    pub slots: usize,
    /// Pull a known model that is not cached yet.
    pub pull: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            threads: default_threads(),
            slots: 8,
            pull: true,
        }
    }
}

/// The compute threads sized by [`crate::size_thread_pools`], else every core the process may
/// use.
pub fn default_threads() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

pub struct LocalTarget {
    engine: Engine,
    template: ChatTemplate,
    provenance: Provenance,
    model_name: String,
}

/// The compiler features the engine was built with, for provenance.
pub fn build_flags() -> String {
    let mut flags = vec![std::env::consts::ARCH.to_string()];
    for (on, name) in [
        (cfg!(target_feature = "avx2"), "avx2"),
        (cfg!(target_feature = "fma"), "fma"),
        (cfg!(target_feature = "f16c"), "f16c"),
        (cfg!(target_feature = "avx512f"), "avx512f"),
        (cfg!(target_feature = "neon"), "neon"),
        (cfg!(debug_assertions), "debug"),
    ] {
        if on {
            flags.push(name.to_string());
        }
    }
    flags.join("+")
}

fn sha256_file(path: &Path) -> Result<String, LocalError> {
    let mut file = File::open(path).map_err(|e| LocalError::Io(path.display().to_string(), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| LocalError::Io(path.display().to_string(), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(candor_core::hex(&hasher.finalize()))
}

/// A GGUF file and what was read from it, before the engine starts.
pub struct Loaded {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub quantisation: String,
    pub bytes: u64,
}

/// Reads weights, tokenizer and chat template from one GGUF file.
pub fn load(path: &Path) -> Result<Loaded, LocalError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| LocalError::Io(name.clone(), e))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader)
        .map_err(|e| LocalError::Format(format!("{name}: {}", crate::message(&e))))?;
    let tokenizer = Tokenizer::from_gguf(&content)?;
    let token = |id: Option<u32>| {
        id.and_then(|i| tokenizer.token_text(i))
            .unwrap_or_default()
            .to_string()
    };
    let source = match content.metadata.get("tokenizer.chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let template = ChatTemplate::new(source, token(tokenizer.bos), token(tokenizer.eos))?;
    let model = Model::load(&content, &mut reader)?;
    let quantisation = quantisation(&content);
    Ok(Loaded {
        model,
        tokenizer,
        template,
        quantisation,
        bytes,
    })
}

/// The weight type most of the matrices use (`Q4_K`, `Q4_1`, ...), and the GGUF's file type.
fn quantisation(content: &Content) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for (name, info) in &content.tensor_infos {
        if name.ends_with(".weight") && info.shape.rank() == 2 {
            *counts.entry(format!("{:?}", info.ggml_dtype)).or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
        .iter()
        .map(|(t, n)| format!("{t}x{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The file a `local/...` spec names: a path to a GGUF, or a known model's alias (pulled on
/// first use when `pull` is set). Returns the path and the pinned SHA-256 where known.
pub fn resolve(model: &str, pull: bool) -> Result<(PathBuf, Option<String>), LocalError> {
    let looks_like_path = model.ends_with(".gguf") || model.contains('/') || model.contains('\\');
    if looks_like_path {
        let path = PathBuf::from(model);
        if !path.is_file() {
            return Err(LocalError::Io(
                model.to_string(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such GGUF file"),
            ));
        }
        return Ok((path, None));
    }
    let store = ModelStore::from_env();
    let known = crate::known()
        .into_iter()
        .find(|m| m.alias == model)
        .ok_or_else(|| LocalError::Pull(crate::PullError::Unknown(model.to_string())))?;
    let path = if pull {
        store.pull_model(&known)?
    } else {
        store.path(model)?
    };
    Ok((path, Some(known.sha256.to_string())))
}

impl LocalTarget {
    pub fn open(spec: &TargetSpec, options: &LocalOptions) -> Result<LocalTarget, TargetError> {
        let invalid = |e: LocalError| TargetError::Invalid {
            spec: spec.to_string(),
            message: e.to_string(),
        };
        if spec.base_url.is_some() {
            return Err(invalid(LocalError::Unsupported(
                "a base URL: the local engine reads a file".into(),
            )));
        }
        let (path, pinned) = resolve(&spec.model, options.pull).map_err(invalid)?;
        let sha256 = match pinned {
            Some(sha) => sha,
            None => sha256_file(&path).map_err(invalid)?,
        };
        Self::from_file(spec, &path, sha256, options).map_err(invalid)
    }

    fn from_file(
        spec: &TargetSpec,
        path: &Path,
        sha256: String,
        options: &LocalOptions,
    ) -> Result<LocalTarget, LocalError> {
        let loaded = load(path)?;
        let tokenizer = Arc::new(loaded.tokenizer);
        let config = loaded.model.config.clone();
        let template_sha = loaded
            .template
            .source()
            .map(|s| candor_core::hex(&Sha256::digest(s.as_bytes())));
        let engine_info = json!({
            "engine": ENGINE,
            "build": build_flags(),
            "file": path.file_name().map(|f| f.to_string_lossy().into_owned()),
            "weights_sha256": sha256,
            "weights_bytes": loaded.bytes,
            "architecture": config.arch.name(),
            "quantisation": loaded.quantisation,
            "tokenizer": tokenizer.kind,
            "chat_template_sha256": template_sha,
            "threads": options.threads,
            "batch_slots": options.slots.clamp(1, crate::widen::MOST_DECODING_ROWS),
        });
        let engine = Engine::start(loaded.model, tokenizer, options.threads, options.slots)?;
        let model_name = path
            .file_stem()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.model.clone());
        Ok(LocalTarget {
            engine,
            template: loaded.template,
            provenance: Provenance {
                spec: spec.to_string(),
                provider: "local".into(),
                model: spec.model.clone(),
                base_url: String::new(),
                base_urls: Vec::new(),
                stream: false,
                extra_body: Default::default(),
                api_key_env: None,
                candor_version: candor_core::CANDOR_VERSION,
                engine: Some(engine_info),
            },
            model_name,
        })
    }
}

#[async_trait]
impl Target for LocalTarget {
    fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    async fn send(&self, request: &Request) -> Response {
        let started = Instant::now();
        let mut response = Response {
            model_reported: Some(self.model_name.clone()),
            attempts: 1,
            ..Response::default()
        };
        let prompt = match self
            .template
            .render(request.system.as_deref(), &request.prompt)
        {
            Ok(p) => p,
            Err(e) => {
                response.error = Some(e.to_string());
                return response;
            }
        };
        let tokens = self.engine.tokenizer.encode(&prompt, true);
        let max_tokens = request
            .params
            .max_tokens
            .map_or(DEFAULT_MAX_TOKENS, |m| m as usize)
            .max(1);
        let sampling = Sampling {
            temperature: request.params.temperature,
            top_p: request.params.top_p,
            seed: request.params.seed.unwrap_or(0),
        };
        let generated = self.engine.generate(tokens, max_tokens, sampling).await;
        response.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let generation = match generated {
            Ok(g) => g,
            Err(e) => {
                response.error = Some(e);
                return response;
            }
        };
        let (text, reasoning) = split_think(&generation.text);
        response.raw_body = Some(
            json!({
                "prompt": prompt,
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.tokens.len(),
                "tokens": generation.tokens,
                "prefill_ms": generation.prefill_ms,
                "decode_ms": generation.decode_ms,
            })
            .to_string(),
        );
        response.first_byte_ms = Some(response.latency_ms - generation.decode_ms);
        response.reasoning = reasoning;
        let (outcome, finish, error) = match generation.finish {
            Finish::Length => (
                Outcome::Truncated,
                "length",
                Some(format!("stopped at {max_tokens} tokens")),
            ),
            Finish::Stop if text.trim().is_empty() => (
                Outcome::Empty,
                "stop",
                Some("the model answered nothing".into()),
            ),
            Finish::Stop => (Outcome::Ok, "stop", None),
        };
        response.outcome = outcome;
        response.finish_reason = Some(finish.into());
        response.error = error;
        response.text = text;
        response
    }

    fn retries(&self) -> bool {
        false
    }
}
