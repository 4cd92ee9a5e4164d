//! What HTTP providers share: the client, replicas, one exchange with timings, streamed events
//! with their arrival times, and the reading of failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use candor_core::{Chunk, Outcome, Response, TargetSpec};
use futures::StreamExt;

use crate::sse::{Event, SseParser};
use crate::{key_from_env, Provenance, Secret, TargetError, TargetSettings};

/// What differs between HTTP providers when reaching a target.
pub(crate) struct ProviderInfo {
    pub name: &'static str,
    pub default_base: &'static str,
    pub key_env: &'static str,
    /// The chat endpoint below the base URL.
    pub path: &'static str,
    /// A cheap GET below the base URL, for the preflight check.
    pub models_path: &'static str,
    /// A suffix users often include that the provider's paths already carry.
    pub strip_suffix: Option<&'static str>,
}

/// The half of an HTTP target that every provider shares: client, replicas, key, provenance.
pub(crate) struct Endpoint {
    pub client: reqwest::Client,
    pub replicas: Replicas,
    pub models: Replicas,
    pub key: Option<Secret>,
    pub settings: TargetSettings,
    pub provenance: Provenance,
}

impl Endpoint {
    pub fn new(
        spec: &TargetSpec,
        settings: &TargetSettings,
        info: &ProviderInfo,
    ) -> Result<Endpoint, TargetError> {
        let env = settings
            .api_key_env
            .clone()
            .unwrap_or_else(|| info.key_env.to_string());
        let key = key_from_env(&env);
        // A key is only optional where the user points at their own server.
        if key.is_none() && spec.base_url.is_none() {
            return Err(TargetError::MissingKey {
                spec: spec.to_string(),
                env,
            });
        }
        let bases: Vec<String> = bases(spec, settings, info.default_base)
            .into_iter()
            .map(|b| match info.strip_suffix {
                Some(suffix) => b.trim_end_matches(suffix).to_string(),
                None => b,
            })
            .collect();
        Ok(Endpoint {
            client: client(settings)?,
            replicas: Replicas::new(spec, bases.clone(), info.path)?,
            models: Replicas::new(spec, bases.clone(), info.models_path)?,
            provenance: Provenance {
                spec: spec.to_string(),
                provider: info.name.into(),
                model: spec.model.clone(),
                base_url: bases[0].clone(),
                base_urls: bases,
                stream: settings.stream,
                extra_body: settings.extra_body.clone(),
                api_key_env: key.as_ref().map(|_| env),
                candor_version: candor_core::CANDOR_VERSION,
                engine: None,
            },
            key,
            settings: settings.clone(),
        })
    }

    /// Every replica must answer something before any work starts.
    pub async fn preflight(&self) -> Result<(), TargetError> {
        for _ in self.models.bases() {
            let (base, url) = self.models.pick();
            preflight(&self.client, &self.provenance.spec, base, url).await?;
        }
        Ok(())
    }
}

/// Phrases by which providers mark what their moderation stopped: OpenAI and Azure
/// (`content_filter`, `content_policy`), DashScope (`data_inspection_failed`), DeepSeek
/// (`Content Exists Risk`), Moonshot and Zhipu (`sensitive`, `contentFilter`, code 1301).
const FILTER_SIGNS: &[&str] = &[
    "content_filter",
    "contentfilter",
    "content_policy",
    "data_inspection_failed",
    "inappropriate content",
    "content exists risk",
    "sensitive",
    "moderation",
    "\"1301\"",
];

pub(crate) fn looks_filtered(body: &str) -> bool {
    let lower = body.to_lowercase();
    FILTER_SIGNS.iter().any(|sign| lower.contains(sign))
}

pub(crate) fn client(settings: &TargetSettings) -> Result<reqwest::Client, TargetError> {
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| TargetError::Client(e.to_string()))
}

/// The base URLs of one target and the endpoint on each, taken round-robin.
pub(crate) struct Replicas {
    bases: Vec<String>,
    // Parsed once: URL parsing showed in profiles at tens of thousands of requests a second.
    endpoints: Vec<reqwest::Url>,
    next: AtomicUsize,
}

impl Replicas {
    pub fn new(spec: &TargetSpec, bases: Vec<String>, path: &str) -> Result<Replicas, TargetError> {
        let mut endpoints = Vec::with_capacity(bases.len());
        for base in &bases {
            let url = format!("{base}{path}");
            endpoints.push(reqwest::Url::parse(&url).map_err(|e| TargetError::Invalid {
                spec: spec.to_string(),
                message: format!("bad base URL {base}: {e}"),
            })?);
        }
        Ok(Replicas {
            bases,
            endpoints,
            next: AtomicUsize::new(0),
        })
    }

    pub fn pick(&self) -> (&str, reqwest::Url) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len();
        (&self.bases[i], self.endpoints[i].clone())
    }

    pub fn bases(&self) -> &[String] {
        &self.bases
    }
}

/// The bases a spec and its settings name, without duplicates, the spec's first.
pub(crate) fn bases(spec: &TargetSpec, settings: &TargetSettings, default: &str) -> Vec<String> {
    let mut bases = vec![spec.base_url.clone().unwrap_or_else(|| default.to_string())];
    for r in &settings.replicas {
        let r = r.trim_end_matches('/').to_string();
        if !bases.contains(&r) {
            bases.push(r);
        }
    }
    bases
}

/// Any HTTP answer, even a 404 from a server without that route, proves the address right.
pub(crate) async fn preflight(
    client: &reqwest::Client,
    spec: &str,
    base: &str,
    url: reqwest::Url,
) -> Result<(), TargetError> {
    match client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(TargetError::Unreachable {
            spec: spec.to_string(),
            url: base.to_string(),
            reason: describe(&e),
        }),
    }
}

/// One exchange as it happened on the wire.
pub(crate) struct Wire {
    pub status: Option<u16>,
    /// The body as received (for streams, the raw event stream).
    pub body: String,
    /// Streamed events with their arrival times (ms since the request started).
    pub events: Vec<(f64, Event)>,
    /// A transport failure, possibly after part of the body arrived.
    pub failure: Option<String>,
    pub first_byte_ms: Option<f64>,
    pub latency_ms: f64,
    pub retry_after_ms: Option<u64>,
}

impl Wire {
    /// Moves what every provider stores the same way into a response: the raw body and
    /// stream events (no copy: bodies are the bulk of an audit's memory traffic), status,
    /// timings and the base URL that answered.
    pub fn fill(self, r: &mut Response, base: &str) {
        r.http_status = self.status;
        r.raw_body = (!self.body.is_empty() || self.status.is_some()).then_some(self.body);
        r.base_url = Some(base.to_string());
        r.latency_ms = self.latency_ms;
        r.first_byte_ms = self.first_byte_ms;
        r.retry_after_ms = self.retry_after_ms;
        r.chunks = self
            .events
            .into_iter()
            .map(|(at_ms, e)| Chunk {
                at_ms,
                data: e.data,
            })
            .collect();
    }

    /// The response: a failure's outcome, or what `interpret` reads from a 2xx answer, with
    /// the raw body, events, status and timings moved in.
    pub fn into_response(self, base: &str, interpret: impl FnOnce(&Wire) -> Response) -> Response {
        let mut r = self.failed_outcome().unwrap_or_else(|| interpret(&self));
        self.fill(&mut r, base);
        r
    }

    /// The outcome of an exchange that did not bring a 2xx answer, or `None` when it did.
    pub fn failed_outcome(&self) -> Option<Response> {
        let (outcome, error) = match self.status {
            None => (Outcome::Error, self.failure.clone()),
            Some(status) if !(200..300).contains(&status) => {
                let filtered = matches!(status, 400 | 403 | 451) && looks_filtered(&self.body);
                let outcome = if filtered {
                    Outcome::FilteredInput
                } else {
                    Outcome::Error
                };
                (
                    outcome,
                    Some(format!("HTTP {status}: {}", excerpt(&self.body))),
                )
            }
            Some(_) => return None,
        };
        Some(Response {
            outcome,
            error,
            ..Response::default()
        })
    }
}

/// Sends a request and reads the answer; with `stream`, reads server-sent events as they
/// arrive, each stamped with its time, and gives up on a silence longer than `idle`.
pub(crate) async fn exchange(
    builder: reqwest::RequestBuilder,
    stream: bool,
    idle: Duration,
) -> Wire {
    let started = Instant::now();
    let ms = |t: Instant| t.duration_since(started).as_secs_f64() * 1000.0;
    let mut wire = Wire {
        status: None,
        body: String::new(),
        events: Vec::new(),
        failure: None,
        first_byte_ms: None,
        latency_ms: 0.0,
        retry_after_ms: None,
    };
    let reply = match builder.send().await {
        Ok(reply) => reply,
        Err(e) => {
            wire.failure = Some(describe(&e));
            wire.latency_ms = ms(Instant::now());
            return wire;
        }
    };
    let status = reply.status().as_u16();
    wire.status = Some(status);
    wire.retry_after_ms = reply
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let success = (200..300).contains(&status);
    if !(stream && success) {
        match reply.bytes().await {
            Ok(bytes) => {
                wire.first_byte_ms = Some(ms(Instant::now()));
                wire.body = utf8(bytes.to_vec());
            }
            Err(e) => wire.failure = Some(describe(&e)),
        }
        wire.latency_ms = ms(Instant::now());
        return wire;
    }
    let mut body = reply.bytes_stream();
    let mut parser = SseParser::default();
    let mut raw = Vec::new();
    loop {
        let next = match tokio::time::timeout(idle, body.next()).await {
            Ok(next) => next,
            Err(_) => {
                wire.failure = Some(format!(
                    "stream idle for more than {} s",
                    idle.as_secs_f64()
                ));
                break;
            }
        };
        let now = Instant::now();
        match next {
            None => {
                match parser.finish() {
                    Ok(events) => wire.events.extend(events.into_iter().map(|e| (ms(now), e))),
                    Err(e) => wire.failure = Some(e.to_string()),
                }
                break;
            }
            Some(Err(e)) => {
                wire.failure = Some(describe(&e));
                break;
            }
            Some(Ok(bytes)) => {
                wire.first_byte_ms.get_or_insert(ms(now));
                raw.extend_from_slice(&bytes);
                match parser.push(&bytes) {
                    Ok(events) => wire.events.extend(events.into_iter().map(|e| (ms(now), e))),
                    Err(e) => {
                        wire.failure = Some(e.to_string());
                        break;
                    }
                }
            }
        }
    }
    wire.body = utf8(raw);
    wire.latency_ms = ms(Instant::now());
    wire
}

fn utf8(bytes: Vec<u8>) -> String {
    // Bodies are UTF-8 JSON; a lossy copy is made only for the rare body that is not.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `Retry-After` as seconds or as an HTTP date, in milliseconds from now.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| (secs * 1000.0).min(u64::MAX as f64) as u64);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64),
    )
}

/// A transport failure in one line: what kind, and the innermost cause, which says what
/// happened ("Connection refused"); the layers between only repeat it.
pub(crate) fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "connection failed".to_string()
    } else if err.is_body() || err.is_decode() {
        "the body broke off".to_string()
    } else {
        "request failed".to_string()
    };
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

pub(crate) fn excerpt(body: &str) -> String {
    const MAX: usize = 300;
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX {
        flat
    } else {
        let cut: String = flat.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

/// Splits a leading `<think>...</think>` block (Kimi's: `◁think▷...◁/think▷`), as reasoning
/// models served raw emit it, from the final answer. An unclosed block is all reasoning; a
/// closing tag with no opening one ends the reasoning that the chat template opened.
pub fn split_think(content: &str) -> (String, Option<String>) {
    let trimmed = content.trim_start();
    let markers = [("<think>", "</think>"), ("◁think▷", "◁/think▷")];
    let opened = markers
        .iter()
        .find_map(|(open, close)| trimmed.strip_prefix(open).map(|rest| (rest, *close)));
    let (think, answer) = match opened {
        // An unclosed block is all reasoning.
        Some((rest, close)) => rest.split_once(close).unwrap_or((rest, "")),
        // Chat templates that open the block themselves (DeepSeek-R1's, Qwen3's) leave only
        // its end in the text: all before it is reasoning.
        None => match markers
            .iter()
            .find_map(|(_, close)| trimmed.split_once(close))
        {
            Some(split) => split,
            None => return (content.to_string(), None),
        },
    };
    (
        answer.trim_start().to_string(),
        Some(think.trim().to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(2000));
        assert_eq!(parse_retry_after(" 0.5 "), Some(500));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0));
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let ms = parse_retry_after(&later).unwrap();
        assert!((28_000..=30_000).contains(&ms), "{ms}");
    }

    #[test]
    fn long_error_bodies_are_shortened_on_one_line() {
        let long = "x\n".repeat(400);
        let e = excerpt(&long);
        assert!(e.ends_with("...") && !e.contains('\n') && e.chars().count() == 303);
    }

    proptest::proptest! {
        /// Text with no marker is the answer, untouched; text ending a trace with a closing tag
        /// splits there, losing nothing but the tag and the space around it.
        #[test]
        fn a_closing_tag_alone_splits_and_plain_text_stays_whole(
            trace in "[a-z0-9 .<>/用户问]{0,60}",
            answer in "[a-z0-9 .<>/我不能]{0,60}",
        ) {
            proptest::prop_assume!(!trace.contains("think") && !answer.contains("think"));
            proptest::prop_assert_eq!(split_think(&answer), (answer.clone(), None));
            let (text, think) = split_think(&format!("{trace}</think>{answer}"));
            proptest::prop_assert_eq!(text, answer.trim_start());
            proptest::prop_assert_eq!(think.as_deref(), Some(trace.trim()));
        }
    }

    #[test]
    fn think_blocks_are_split_off() {
        let (text, think) = split_think("<think>\nrecall 1989\n</think>\n\nI cannot say.");
        assert_eq!(
            (text.as_str(), think.as_deref()),
            ("I cannot say.", Some("recall 1989"))
        );
        let (text, think) = split_think("<think>never closed");
        assert_eq!(
            (text.as_str(), think.as_deref()),
            ("", Some("never closed"))
        );
        assert_eq!(split_think("plain").1, None);
        let (text, think) = split_think("◁think▷weigh it◁/think▷The answer.");
        assert_eq!(
            (text.as_str(), think.as_deref()),
            ("The answer.", Some("weigh it"))
        );
        // The template opened the block: only its end is in the text.
        let (text, think) = split_think("The user asks about 1989.\n</think>\n\n我不能回答。");
        assert_eq!(
            (text.as_str(), think.as_deref()),
            ("我不能回答。", Some("The user asks about 1989."))
        );
    }
}
