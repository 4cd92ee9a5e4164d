//! Reports rendered from one figures model, [`ReportData`], built from the store's rows only:
//! the terminal (`terminal`), HTML (`html`), Markdown (`markdown`) and JSON (its serde form,
//! docs/report-json.md) are renderings of the same figures, so every figure printed traces
//! back to stored responses.

pub mod compare;
pub mod components;
pub mod data;
pub mod finding;
pub mod gate;
pub mod html;
pub mod markdown;
pub mod terminal;

pub use data::{
    JudgeInfo, Methods, ReportData, ResponseView, RunInfo, TargetInfo, REPORT_SCHEMA_VERSION,
};

/// A p-value as people read them: three decimals, or "<0.001".
pub(crate) fn p_value(p: f64) -> String {
    if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// The report as JSON (docs/report-json.md).
pub fn to_json(data: &ReportData) -> String {
    serde_json::to_string_pretty(data).expect("report serialises") + "\n"
}
