//! The rows a store holds and returns, whatever the database behind it.

use candor_core::{Compliance, Intent, Outcome, Request, Response, Stance};
use serde::Serialize;

/// A run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub suite_id: String,
    pub suite_version: String,
    pub suite_hash: String,
    pub settings: serde_json::Value,
    pub candor_version: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    pub id: i64,
    pub position: i64,
    pub spec: String,
    pub provider: String,
    pub model: String,
    pub base_url: String,
    pub provenance: serde_json::Value,
}

/// Errors among a target's responses.
#[derive(Debug, Clone)]
pub struct ErrorCount {
    pub responses: i64,
    pub errors: i64,
    pub first: Option<String>,
}

/// A response's text and where it belongs: what a report shows, without raw bodies.
#[derive(Debug, Clone)]
pub struct Answer {
    pub id: i64,
    pub target_id: i64,
    pub probe_id: String,
    pub lang: String,
    pub sample: u32,
    pub outcome: String,
    pub text: String,
    pub error: Option<String>,
}

/// A response as stored, with where it belongs.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub id: i64,
    pub target_id: i64,
    pub probe_id: String,
    pub lang: String,
    pub sample: u32,
    pub prompt: String,
    /// The response this one was copied from by the cache.
    pub cached_from: Option<i64>,
    pub response: Response,
}

/// One judged (or not judged) response, joined with its probe's grouping fields: the unit every
/// figure of a report counts.
#[derive(Debug, Clone)]
pub struct JudgedRow {
    pub response_id: i64,
    pub target_id: i64,
    pub probe_id: String,
    pub topic: String,
    pub subject: Option<String>,
    pub intent: Option<Intent>,
    pub template: Option<String>,
    pub lang: String,
    pub sample: u32,
    pub outcome: Outcome,
    /// `None` when the response was not judged or the judge left it unscored.
    pub compliance: Option<Compliance>,
    pub stance: Option<Stance>,
    pub fact_recall: Option<f64>,
    pub rule: Option<String>,
}

/// A response to store: target by its row id; the request with its JSON and hash from
/// [`Request::keyed`].
pub struct NewResponse<'a> {
    pub run_id: i64,
    pub target_id: i64,
    pub request: &'a Request,
    pub request_json: &'a str,
    pub request_hash: &'a str,
    pub response: &'a Response,
}

/// One request of a run, by its place: what workers share and lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkItem {
    pub target_id: i64,
    pub probe_id: String,
    pub lang: String,
    pub sample: u32,
}

/// A run's requests not stored yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkLeft {
    /// Waiting for a worker (never leased, or its lease ran out).
    pub pending: i64,
    /// Leased to a worker now.
    pub leased: i64,
    /// Workers holding a lease now.
    pub workers: i64,
}

/// A person's label of one answer.
pub struct NewLabel<'a> {
    pub response_id: i64,
    pub labeller: &'a str,
    pub compliance: Option<Compliance>,
    pub stance: Option<Stance>,
    pub note: &'a str,
}

/// A label as stored, with the answer it labels.
#[derive(Debug, Clone, Serialize)]
pub struct LabelRow {
    pub id: i64,
    pub response_id: i64,
    pub run_id: i64,
    pub labeller: String,
    pub compliance: Option<Compliance>,
    pub stance: Option<Stance>,
    pub note: String,
    pub created_at: String,
    pub probe_id: String,
    pub lang: String,
    pub prompt: String,
    pub text: String,
}

/// A label row from its columns, whichever database read them: ids (label, response, run),
/// texts (labeller, note, created at, probe, language, answer), the label itself, and the
/// request's JSON, which holds the prompt. A bad value comes back as (column, value).
pub(crate) fn label_row(
    [id, response_id, run_id]: [i64; 3],
    [labeller, note, created_at, probe_id, lang, text]: [String; 6],
    (compliance, stance): (Option<String>, Option<String>),
    request: &str,
) -> Result<LabelRow, (&'static str, String)> {
    let prompt = serde_json::from_str::<Request>(request)
        .map_err(|_| ("responses.request", request.to_string()))?
        .prompt;
    Ok(LabelRow {
        id,
        response_id,
        run_id,
        labeller,
        compliance: compliance
            .map(|c| c.parse().map_err(|_| ("labels.compliance", c.clone())))
            .transpose()?,
        stance: stance
            .map(|s| s.parse().map_err(|_| ("labels.stance", s.clone())))
            .transpose()?,
        note,
        created_at,
        probe_id,
        lang,
        prompt,
        text,
    })
}

/// A page of a run's answers, filtered: what a browser asks for.
#[derive(Debug, Clone, Default)]
pub struct AnswerFilter {
    pub run_id: i64,
    /// Whose verdicts to show and filter on.
    pub judge: Option<String>,
    pub target_id: Option<i64>,
    pub lang: Option<String>,
    pub compliance: Option<String>,
    pub stance: Option<String>,
    /// Words the answer or its probe id contains (ASCII case folded; other scripts as written).
    pub text: Option<String>,
    /// One probe's answers only.
    pub probe: Option<String>,
    /// Answers to probes of this intent only.
    pub intent: Option<String>,
    /// Only answers on which the run's judges disagree: another judge gave a different
    /// compliance label, or a panel split (rule P2).
    pub disputed: bool,
    pub offset: i64,
    pub limit: i64,
}

/// One answer of a page: its first characters, with the verdict it is filtered on.
#[derive(Debug, Clone)]
pub struct AnswerHit {
    pub id: i64,
    pub target_id: i64,
    pub probe_id: String,
    pub lang: String,
    pub outcome: String,
    /// The answer's first [`EXCERPT_CHARS`] characters.
    pub excerpt: String,
    pub compliance: Option<String>,
    pub stance: Option<String>,
    pub rule: Option<String>,
}

/// Characters of an answer a page shows.
pub const EXCERPT_CHARS: i64 = 200;

/// A verdict from its columns, whichever database read them; a bad value comes back as
/// (column, value).
pub(crate) fn verdict_row(
    judge: String,
    (compliance, stance): (Option<String>, Option<String>),
    fact_recall: Option<f64>,
    rule: String,
    rationale: String,
) -> Result<candor_core::Verdict, (&'static str, String)> {
    Ok(candor_core::Verdict {
        judge,
        compliance: compliance
            .map(|c| c.parse().map_err(|_| ("verdicts.compliance", c.clone())))
            .transpose()?,
        stance: stance
            .map(|s| s.parse().map_err(|_| ("verdicts.stance", s.clone())))
            .transpose()?,
        fact_recall,
        rule,
        rationale,
    })
}
