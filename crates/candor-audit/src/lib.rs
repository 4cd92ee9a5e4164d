//! The application as a library: what every front end (the `candor` binary, a server) calls.
//!
//! - [`plan`]: settings, languages, the suite, every request;
//! - [`run`]: preflight, cache, resume, the store sink, the judging of the run;
//! - [`judging`]: a judge from its spec, a stored run judged again;
//! - [`figures`]: the one figures model ([`candor_report::ReportData`]) from the store's rows;
//! - [`exchanges`]: exchanges from JSONL files, judged, scored, cross-validated;
//! - [`gate`]: the gate's rules, checked on those figures;
//! - [`Error`]: bad usage or a failed run.
//!
//! It holds no command line and prints nothing: front ends parse, print and choose exit codes.

pub mod batch;
mod error;
pub mod exchanges;
pub mod figures;
pub mod gate;
pub mod judging;
pub mod label_queue;
pub mod labels;
pub mod plan;
pub mod run;
pub mod targets;

pub use error::Error;
