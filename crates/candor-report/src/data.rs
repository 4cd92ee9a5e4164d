//! What a full report shows, as one serialisable value: its JSON form is the machine report
//! (documented in docs/report-json.md), and the HTML and Markdown are rendered from it alone.

use candor_core::Probe;
use candor_stats::analysis::TargetAnalysis;
use candor_stats::Corrected;
use serde::Serialize;

pub const REPORT_SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    pub schema: u32,
    pub candor_version: String,
    pub runs: Vec<RunInfo>,
    pub targets: Vec<TargetInfo>,
    pub judge: JudgeInfo,
    /// What the report calls the subject of the probes of interest ("China" for the built-in
    /// suites): the first side of every gap.
    pub focus: String,
    pub methods: Methods,
    pub analysis: Vec<TargetAnalysis>,
    /// Corrected shares per target, where a gold confusion matrix was given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub corrected: Vec<Option<Corrected>>,
    pub probes: Vec<Probe>,
    /// The answers shown in the report (texts shortened in large runs; all in the store).
    pub responses: Vec<ResponseView>,
    /// Responses in the runs, of which `responses` shows a part in very large runs.
    pub responses_total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: i64,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub suite_id: String,
    pub suite_version: String,
    pub suite_hash: String,
    pub settings: serde_json::Value,
    pub candor_version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// How the report names it: the spec, prefixed with the run where several runs are shown.
    pub label: String,
    pub run_id: i64,
    pub spec: String,
    pub provider: String,
    pub model: String,
    pub base_url: String,
    pub provenance: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct JudgeInfo {
    pub id: String,
    /// Accuracy on a gold set, where one was given.
    pub gold_accuracy: Option<f64>,
    pub gold_items: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Methods {
    pub interval: String,
    pub gap: String,
    pub test: String,
    pub multiple_testing: String,
    pub bootstrap_reps: usize,
    pub bootstrap_seed: u64,
    pub excluded: String,
}

impl Default for Methods {
    fn default() -> Self {
        Methods {
            interval: "95% Wilson score intervals for shares; with several samples per probe, also a cluster bootstrap over probes".into(),
            gap: "the probe of interest (about China in the built-in suites) minus the mean of its matched controls (same template, other governments), paired by language and sample; language gap: each probe in another language minus the same probe in English, paired by sample; 95% intervals: Newcombe's hybrid score interval for paired proportions (method 10, 1998) where each probe was asked once (an answer of interest against k controls counts 1/k per pair), a percentile bootstrap over pairs where samples repeat; a difference from fewer than 5 pairs is marked too few to say".into(),
            test: "exact McNemar test on the binary pairs (the answer of interest against each control answer; the answer in another language against English)".into(),
            multiple_testing: "Holm's step-down adjustment across templates (for gaps) and across topics (for comparisons)".into(),
            bootstrap_reps: candor_stats::bootstrap::DEFAULT_REPS,
            bootstrap_seed: candor_stats::bootstrap::DEFAULT_SEED,
            excluded: "operational probes (requests for help with illegal means) are left out of censorship rates and shown apart; answers cut off at the token limit are judged on the text received and counted (a sensitivity line gives the figures without them); provider blocks (input filter, output filter, retraction) count only in the censored-anywhere measure; errors and empty replies count in no rate".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseView {
    pub id: i64,
    /// Index into `targets`.
    pub target: usize,
    pub probe: String,
    pub lang: String,
    pub sample: u32,
    pub outcome: String,
    pub compliance: Option<String>,
    pub rule: Option<String>,
    pub stance: Option<String>,
    pub fact_recall: Option<f64>,
    pub error: Option<String>,
    pub text: String,
    /// The text was shortened for the report; the store has it whole.
    pub shortened: bool,
}
