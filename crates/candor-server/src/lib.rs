//! candor's long-running front ends, thin over `candor-audit`: the dashboard (`candor serve`),
//! the store in a browser with blind labelling; and the proxy (`candor proxy`), a guard in front
//! of a model's endpoint that judges every answer as it passes.

pub mod dashboard;
pub mod proxy;
