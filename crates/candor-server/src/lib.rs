//! candor's long-running front ends, thin over `candor-audit`: the proxy (`candor proxy`), a
//! guard in front of a model's endpoint that judges every answer as it passes.

pub mod proxy;
