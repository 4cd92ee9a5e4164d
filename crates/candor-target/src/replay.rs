//! Replayed transcripts: a JSONL file of recorded exchanges answers like a model, so that
//! existing transcripts are judged and reported like any run.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use candor_core::{Outcome, Probe, Request, Response, Suite, TargetSpec};
use serde::Deserialize;

use crate::{Provenance, Target, TargetError};

/// One recorded exchange.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayRecord {
    pub id: String,
    pub prompt: String,
    pub response: String,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub reasoning: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// The suite probe this exchange answers, where the recording knows it.
    #[serde(default)]
    pub probe: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
}

const DEFAULT_LANG: &str = "en";

pub struct ReplayTarget {
    records: Vec<ReplayRecord>,
    by_probe: HashMap<(String, String), usize>,
    by_prompt: HashMap<String, usize>,
    provenance: Provenance,
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl ReplayTarget {
    /// Reads `replay/FILE`; the model part of the spec is the file's path.
    pub fn open(spec: &TargetSpec) -> Result<ReplayTarget, TargetError> {
        let path = &spec.model;
        let invalid = |message: String| TargetError::Invalid {
            spec: spec.to_string(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read {path}: {e}")))?;
        let mut records = Vec::new();
        let mut problems = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ReplayRecord>(line) {
                Ok(r) => records.push(r),
                Err(e) => problems.push(format!(
                    "{path}:{}: {e} (each line needs \"id\", \"prompt\" and \"response\")",
                    n + 1
                )),
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems.join("\n")));
        }
        if records.is_empty() {
            return Err(invalid(format!("{path} holds no recorded exchange")));
        }
        let mut by_probe = HashMap::new();
        let mut by_prompt = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            let lang = r.lang.clone().unwrap_or_else(|| DEFAULT_LANG.to_string());
            let probe = r.probe.clone().unwrap_or_else(|| r.id.clone());
            by_probe.entry((probe, lang)).or_insert(i);
            by_prompt.entry(squash(&r.prompt)).or_insert(i);
        }
        Ok(ReplayTarget {
            by_probe,
            by_prompt,
            provenance: Provenance {
                spec: spec.to_string(),
                provider: "replay".into(),
                model: path.clone(),
                base_url: format!("file:{path}"),
                base_urls: vec![format!("file:{path}")],
                stream: false,
                extra_body: serde_json::Map::new(),
                api_key_env: None,
                candor_version: candor_core::CANDOR_VERSION,
                engine: None,
            },
            records,
        })
    }

    /// The recorded exchanges as a suite: what `candor audit --target replay/FILE` asks when no
    /// suite is given, so that exactly the recorded exchanges are judged.
    pub fn suite(&self) -> Suite {
        let mut probes: Vec<Probe> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut languages: Vec<String> = Vec::new();
        for r in &self.records {
            let id = r.probe.clone().unwrap_or_else(|| r.id.clone());
            let lang = r.lang.clone().unwrap_or_else(|| DEFAULT_LANG.to_string());
            if !languages.contains(&lang) {
                languages.push(lang.clone());
            }
            let at = *index.entry(id.clone()).or_insert_with(|| {
                probes.push(Probe {
                    id,
                    topic: r.topic.clone().unwrap_or_else(|| "replay".into()),
                    subject: None,
                    intent: None,
                    template: None,
                    focus: None,
                    texts: BTreeMap::new(),
                    key_facts: Vec::new(),
                    markers: BTreeMap::new(),
                    sources: Vec::new(),
                });
                probes.len() - 1
            });
            probes[at]
                .texts
                .entry(lang)
                .or_insert_with(|| r.prompt.clone());
        }
        Suite::new(
            format!("replay:{}", self.provenance.model),
            "0".into(),
            format!("recorded exchanges in {}", self.provenance.model),
            languages,
            probes,
        )
    }
}

#[async_trait]
impl Target for ReplayTarget {
    fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    fn retries(&self) -> bool {
        false
    }

    async fn send(&self, request: &Request) -> Response {
        let found = self
            .by_probe
            .get(&(request.probe_id.clone(), request.lang.clone()))
            .or_else(|| self.by_prompt.get(&squash(&request.prompt)));
        let Some(&i) = found else {
            return Response::failed(
                Outcome::Error,
                format!(
                    "no recorded answer for probe {} ({})",
                    request.probe_id, request.lang
                ),
                0.0,
            );
        };
        let r = &self.records[i];
        let empty = r.response.trim().is_empty();
        Response {
            outcome: if empty { Outcome::Empty } else { Outcome::Ok },
            error: empty.then(|| "no answer text".to_string()),
            text: r.response.clone(),
            reasoning: r.reasoning.clone(),
            model_reported: r.model.clone(),
            base_url: Some(self.provenance.base_url.clone()),
            ..Response::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_core::SamplingParams;

    fn request(probe: &str, lang: &str, prompt: &str) -> Request {
        Request {
            probe_id: probe.into(),
            lang: lang.into(),
            sample: 0,
            system: None,
            prompt: prompt.into(),
            params: SamplingParams::default(),
        }
    }

    #[tokio::test]
    async fn matches_by_probe_then_by_prompt_and_builds_a_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(
            &path,
            "{\"id\": \"1\", \"probe\": \"protest-killings.cn\", \"prompt\": \"What happened?\", \"response\": \"I cannot say.\", \"model\": \"qwen\"}\n\
             {\"id\": \"2\", \"prompt\": \"天安门  发生了什么？\", \"response\": \"\", \"lang\": \"zh-Hans\"}\n",
        )
        .unwrap();
        let spec: TargetSpec = format!("replay/{}", path.display()).parse().unwrap();
        let t = ReplayTarget::open(&spec).unwrap();
        let r = t
            .send(&request("protest-killings.cn", "en", "anything"))
            .await;
        assert_eq!(
            (r.outcome, r.text.as_str(), r.model_reported.as_deref()),
            (Outcome::Ok, "I cannot say.", Some("qwen"))
        );
        let r = t
            .send(&request("other", "zh-Hans", "天安门 发生了什么？"))
            .await;
        assert_eq!(r.outcome, Outcome::Empty);
        let r = t.send(&request("missing", "en", "nope")).await;
        assert_eq!(r.outcome, Outcome::Error);
        let suite = t.suite();
        assert_eq!(suite.probes.len(), 2);
        assert_eq!(suite.languages, vec!["en", "zh-Hans"]);
        assert_eq!(suite.probes[0].id, "protest-killings.cn");
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "{\"id\": \"1\", \"prompt\": \"x\"}\n").unwrap();
        let spec: TargetSpec = format!("replay/{}", path.display()).parse().unwrap();
        let err = ReplayTarget::open(&spec).err().unwrap().to_string();
        assert!(
            err.contains("bad.jsonl:1: missing field `response`"),
            "{err}"
        );
    }
}
