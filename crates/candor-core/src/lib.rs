//! candor's vocabulary as plain data types: no I/O, no async.
//!
//! Every other crate speaks in these types, so that each seam of the one-way flow
//! (suite -> runner -> target -> response -> judge -> verdict -> store -> report) is a plain
//! value that can be stored, compared and replayed.

mod spec;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use spec::{SpecError, TargetSpec};

/// The version written into every run and verdict, so that results of different builds are
/// never mixed silently.
pub const CANDOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a probe asks for. Operational probes are kept but analysed apart: most models refuse
/// them whatever the government, so they say nothing about selective censorship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Fact,
    Opinion,
    Critique,
    Creative,
    Operational,
}

impl Intent {
    pub const ALL: [Intent; 5] = [
        Intent::Fact,
        Intent::Opinion,
        Intent::Critique,
        Intent::Creative,
        Intent::Operational,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Fact => "fact",
            Intent::Opinion => "opinion",
            Intent::Critique => "critique",
            Intent::Creative => "creative",
            Intent::Operational => "operational",
        }
    }
}

/// A statement a candid answer would contain, with the patterns (regular expressions, per
/// language) that recognise it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyFact {
    pub id: String,
    pub statement: String,
    pub patterns: BTreeMap<String, Vec<String>>,
}

/// One question, in every language the suite has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub id: String,
    pub topic: String,
    /// The government or group the probe concerns (`cn`, `us`, ...); absent for imported
    /// prompt lists that do not say.
    pub subject: Option<String>,
    pub intent: Option<Intent>,
    /// Probes sharing a template are comparable: the focus probe (China's, in the built-in
    /// suites) and its controls.
    pub template: Option<String>,
    /// Whether this is its template's probe of interest, compared with the others as controls.
    /// Unset: the probe about [`DEFAULT_FOCUS`] is. A suite about another government sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focus: Option<bool>,
    /// Prompt text per language tag (`en`, `zh-Hans`, `zh-Hant`, ...).
    pub texts: BTreeMap<String, String>,
    pub key_facts: Vec<KeyFact>,
    /// State-narrative markers per language: literal phrases of an official line.
    pub markers: BTreeMap<String, Vec<String>>,
    pub sources: Vec<String>,
}

/// The subject whose probes are compared with matched controls where a probe does not say.
pub const DEFAULT_FOCUS: &str = "cn";

impl Probe {
    /// Whether the probe is its template's probe of interest (see [`Probe::focus`]).
    pub fn is_focus(&self) -> bool {
        self.focus
            .unwrap_or(self.subject.as_deref() == Some(DEFAULT_FOCUS))
    }
}

/// A versioned, hashed set of probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    pub id: String,
    pub version: String,
    pub description: String,
    pub languages: Vec<String>,
    pub probes: Vec<Probe>,
    /// SHA-256 of the canonical JSON of id, version, languages and probes: the same questions
    /// hash the same whatever the file's layout.
    pub hash: String,
}

impl Suite {
    pub fn new(
        id: String,
        version: String,
        description: String,
        languages: Vec<String>,
        mut probes: Vec<Probe>,
    ) -> Suite {
        // A suite that names its probes of interest names them all: the others are controls,
        // whatever their subject.
        if probes.iter().any(|p| p.focus.is_some()) {
            for p in &mut probes {
                p.focus.get_or_insert(false);
            }
        }
        let canonical = serde_json::to_vec(&(&id, &version, &languages, &probes))
            .expect("suite serialises to JSON");
        let hash = hex(&Sha256::digest(&canonical));
        Suite {
            id,
            version,
            description,
            languages,
            probes,
            hash,
        }
    }

    pub fn probe(&self, id: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.id == id)
    }
}

/// Sampling settings sent with every request of a target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A probe rendered in one language, ready to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub probe_id: String,
    pub lang: String,
    pub sample: u32,
    pub system: Option<String>,
    pub prompt: String,
    pub params: SamplingParams,
}

impl Request {
    /// The request as stored (JSON) and its hash for a target: everything that shapes the
    /// answer, so the hash is the cache key. One serialisation serves both.
    pub fn keyed(&self, target: &str) -> (String, String) {
        let json = serde_json::to_string(self).expect("request serialises");
        let mut hasher = Sha256::new();
        hasher.update(target.as_bytes());
        hasher.update([0u8]);
        hasher.update(json.as_bytes());
        (json, hex(&hasher.finalize()))
    }
}

/// How an exchange ended before any judging. `Ok` and `Truncated` responses are model answers
/// and are judged; the others are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    FilteredInput,
    FilteredOutput,
    Retracted,
    Truncated,
    Empty,
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::FilteredInput,
        Outcome::FilteredOutput,
        Outcome::Retracted,
        Outcome::Truncated,
        Outcome::Empty,
        Outcome::Error,
    ];

    /// Whether the model answered: a complete answer, or one cut off at the token limit (its
    /// opening shows a refusal or an answer begun as well as a whole one would).
    pub fn is_answer(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Truncated)
    }

    /// Whether the provider, not the model, kept the answer from the user: an input or output
    /// filter, or an answer retracted mid-stream.
    pub fn is_blocked(self) -> bool {
        matches!(
            self,
            Outcome::FilteredInput | Outcome::FilteredOutput | Outcome::Retracted
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::FilteredInput => "filtered_input",
            Outcome::FilteredOutput => "filtered_output",
            Outcome::Retracted => "retracted",
            Outcome::Truncated => "truncated",
            Outcome::Empty => "empty",
            Outcome::Error => "error",
        }
    }
}

/// What came back from a target. Transport failures are responses too (outcome `error`), so
/// that every request leaves a row behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub outcome: Outcome,
    pub text: String,
    pub reasoning: Option<String>,
    pub finish_reason: Option<String>,
    pub http_status: Option<u16>,
    /// A one-line description of what went wrong, for non-`ok` outcomes.
    pub error: Option<String>,
    /// The provider's body exactly as received (for streams: every event, in order).
    pub raw_body: Option<String>,
    pub model_reported: Option<String>,
    /// Sub-provider or route where the API reports one (OpenRouter's `provider`, ...).
    pub route: Option<String>,
    /// The base URL that answered (one of several replicas, possibly).
    pub base_url: Option<String>,
    pub latency_ms: f64,
    /// Time to the first byte of the body (for streams: the first event).
    pub first_byte_ms: Option<f64>,
    /// For streams: every event's data with its arrival time, so a retraction can be seen.
    pub chunks: Vec<Chunk>,
    /// How many times the request was sent (retries included).
    pub attempts: u32,
    /// What the provider asked to wait before a retry (`Retry-After`); not stored.
    #[serde(skip)]
    pub retry_after_ms: Option<u64>,
}

/// One streamed event as it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub at_ms: f64,
    pub data: String,
}

impl Default for Response {
    /// An empty `error` response: a response nobody filled in is not an answer.
    fn default() -> Self {
        Response {
            outcome: Outcome::Error,
            text: String::new(),
            reasoning: None,
            finish_reason: None,
            http_status: None,
            error: None,
            raw_body: None,
            model_reported: None,
            route: None,
            base_url: None,
            latency_ms: 0.0,
            first_byte_ms: None,
            chunks: Vec::new(),
            attempts: 1,
            retry_after_ms: None,
        }
    }
}

impl Response {
    pub fn failed(outcome: Outcome, error: impl Into<String>, latency_ms: f64) -> Response {
        Response {
            outcome,
            error: Some(error.into()),
            latency_ms,
            ..Response::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compliance {
    Candid,
    Evasive,
    Refused,
}

impl Compliance {
    pub const ALL: [Compliance; 3] = [Compliance::Candid, Compliance::Evasive, Compliance::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            Compliance::Candid => "candid",
            Compliance::Evasive => "evasive",
            Compliance::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stance {
    Independent,
    Mixed,
    StateNarrative,
}

impl Stance {
    pub fn as_str(self) -> &'static str {
        match self {
            Stance::Independent => "independent",
            Stance::Mixed => "mixed",
            Stance::StateNarrative => "state_narrative",
        }
    }
}

macro_rules! parse_by_name {
    ($ty:ident, $what:literal, [$($variant:ident),+]) => {
        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(if s == $ty::$variant.as_str() { return Ok($ty::$variant); })+
                Err(UnknownName { what: $what, name: s.to_string() })
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

parse_by_name!(
    Intent,
    "intent",
    [Fact, Opinion, Critique, Creative, Operational]
);
parse_by_name!(
    Outcome,
    "outcome",
    [
        Ok,
        FilteredInput,
        FilteredOutput,
        Retracted,
        Truncated,
        Empty,
        Error
    ]
);
parse_by_name!(Compliance, "compliance", [Candid, Evasive, Refused]);
parse_by_name!(Stance, "stance", [Independent, Mixed, StateNarrative]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{name}'")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

/// A judge's reading of one response. `compliance: None` means unscored: a judge that cannot
/// decide says so instead of guessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub judge: String,
    pub compliance: Option<Compliance>,
    pub stance: Option<Stance>,
    pub fact_recall: Option<f64>,
    /// The numbered rubric rule that decided the compliance label.
    pub rule: String,
    pub rationale: String,
}

/// The language whose patterns and markers also serve `lang`: Chinese in any other script is
/// folded to Simplified before it is read, so zh-Hans ones serve it.
pub fn folded_language(lang: &str) -> Option<&'static str> {
    (lang.starts_with("zh") && lang != "zh-Hans").then_some("zh-Hans")
}

pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(id: &str) -> Probe {
        Probe {
            id: id.into(),
            topic: "t".into(),
            subject: Some("cn".into()),
            intent: Some(Intent::Fact),
            template: Some("tpl".into()),
            focus: None,
            texts: BTreeMap::from([("en".into(), "Q?".into())]),
            key_facts: vec![],
            markers: BTreeMap::new(),
            sources: vec![],
        }
    }

    #[test]
    fn suite_hash_depends_on_content_only() {
        let a = Suite::new(
            "s".into(),
            "1".into(),
            "x".into(),
            vec!["en".into()],
            vec![probe("a")],
        );
        let b = Suite::new(
            "s".into(),
            "1".into(),
            "other description".into(),
            vec!["en".into()],
            vec![probe("a")],
        );
        let c = Suite::new(
            "s".into(),
            "1".into(),
            "x".into(),
            vec!["en".into()],
            vec![probe("b")],
        );
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        assert_eq!(a.hash.len(), 64);
    }

    #[test]
    fn request_hash_changes_with_target_and_params() {
        let r = Request {
            probe_id: "p".into(),
            lang: "en".into(),
            sample: 0,
            system: None,
            prompt: "hi".into(),
            params: SamplingParams::default(),
        };
        let mut hotter = r.clone();
        hotter.params.temperature = Some(0.7);
        let hash = |r: &Request, t: &str| r.keyed(t).1;
        assert_ne!(hash(&r, "openai/m1"), hash(&r, "openai/m2"));
        assert_ne!(hash(&r, "openai/m1"), hash(&hotter, "openai/m1"));
        assert_eq!(hash(&r, "openai/m1"), hash(&r.clone(), "openai/m1"));
        let (json, _) = r.keyed("x");
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), r);
    }

    #[test]
    fn names_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
        }
        for c in Compliance::ALL {
            assert_eq!(c.to_string().parse::<Compliance>().unwrap(), c);
        }
        for i in Intent::ALL {
            assert_eq!(i.as_str().parse::<Intent>().unwrap(), i);
        }
        assert!("state_narrative".parse::<Stance>().is_ok());
        assert_eq!(
            "nope".parse::<Outcome>().unwrap_err().to_string(),
            "unknown outcome 'nope'"
        );
    }
}
