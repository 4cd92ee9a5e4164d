//! What a run asks: its settings (stored with it, so that it can be resumed exactly), the
//! suite, the languages, and every request, target by target.

use std::path::Path;

use candor_core::{Request, Suite};
use candor_runner::Job;
use candor_store::Store;
use serde::{Deserialize, Serialize};

use crate::targets::{self, TargetConfig};
use crate::Error;

/// What a run asks, as stored with it: enough to resume it exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSettings {
    /// The `--suite` given, if any.
    pub suite: Option<String>,
    pub languages: Vec<String>,
    pub samples: u32,
    pub concurrency: u32,
    pub retries: u32,
    pub retry_delay: f64,
    pub targets: Vec<TargetConfig>,
}

/// What an audit asks when no target is given: a small Chinese open-weight model on this
/// machine's CPU, pulled on first use.
pub const DEFAULT_TARGET: &str = "local/qwen2.5-coder-0.5b";

/// The targets declared: `specs` (from `--target`) and the tables of a targets file, each
/// completed by `shared` (the settings every target takes unless it sets its own); the default
/// target where none is declared.
pub fn declared_targets(
    specs: &[String],
    file: Option<&Path>,
    shared: &TargetConfig,
) -> Result<Vec<TargetConfig>, Error> {
    let mut declared: Vec<TargetConfig> =
        specs.iter().map(|s| TargetConfig::new(s.clone())).collect();
    if let Some(file) = file {
        declared.extend(targets::read_file(file)?);
    }
    if declared.is_empty() {
        declared.push(TargetConfig::new(DEFAULT_TARGET.to_string()));
    }
    let declared: Vec<TargetConfig> = declared.into_iter().map(|t| t.or(shared)).collect();
    for t in &declared {
        t.parsed_spec()?;
    }
    Ok(declared)
}

/// The suite asked: the one named, else the recorded exchanges of a replay-only audit, else
/// the built-in `core`.
pub fn load_suite(name: Option<&str>, targets: &[TargetConfig]) -> Result<Suite, Error> {
    if let Some(name) = name {
        return candor_suite::load(name).map_err(Error::usage);
    }
    let specs: Vec<_> = targets
        .iter()
        .map(|t| t.parsed_spec())
        .collect::<Result<_, _>>()?;
    if !specs.is_empty() && specs.iter().all(|s| s.provider == "replay") {
        let replay = candor_target::ReplayTarget::open(&specs[0]).map_err(Error::usage)?;
        return Ok(replay.suite());
    }
    candor_suite::load("core").map_err(Error::usage)
}

/// The settings and suite of a stored run, to continue it: fails where the suite has changed
/// since, as the run could not be continued exactly.
pub fn resume_settings(store: &dyn Store, run_id: i64) -> Result<(RunSettings, Suite), Error> {
    let run = store.run(run_id).map_err(Error::usage)?;
    let settings: RunSettings = serde_json::from_value(run.settings.clone()).map_err(|e| {
        Error::usage(format!(
            "run {run_id} was not stored with resumable settings: {e}"
        ))
    })?;
    let suite = load_suite(settings.suite.as_deref(), &settings.targets)?;
    if suite.hash != run.suite_hash {
        return Err(Error::usage(format!(
            "run {run_id} asked suite {} with hash {}, but it now hashes to {}: it has changed, so the run cannot be resumed",
            run.suite_id,
            &run.suite_hash[..12],
            &suite.hash[..12]
        )));
    }
    Ok((settings, suite))
}

/// The languages asked: those named (each must be the suite's), or all of the suite's.
pub fn choose_languages(suite: &Suite, asked: &[String]) -> Result<Vec<String>, Error> {
    if asked.is_empty() {
        return Ok(suite.languages.clone());
    }
    let mut langs = Vec::new();
    for lang in asked.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if !suite.languages.iter().any(|l| l == lang) {
            return Err(Error::usage(format!(
                "suite {} has no language '{lang}' (it has: {})",
                suite.id,
                suite.languages.join(", ")
            )));
        }
        if !langs.iter().any(|l| l == lang) {
            langs.push(lang.to_string());
        }
    }
    Ok(langs)
}

/// One planned request by its place: the target's index in the settings, the probe's in the
/// suite, the language's in the settings, and the sample. A million of them fit in 16 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub target: u32,
    pub probe: u32,
    pub lang: u16,
    pub sample: u32,
}

/// Every (target, probe, language, sample) the audit asks, target by target, as slots.
pub fn slots<'a>(suite: &'a Suite, settings: &'a RunSettings) -> impl Iterator<Item = Slot> + 'a {
    (0..settings.targets.len()).flat_map(move |target| {
        suite.probes.iter().enumerate().flat_map(move |(probe, p)| {
            settings
                .languages
                .iter()
                .enumerate()
                .filter(move |(_, lang)| p.texts.contains_key(*lang))
                .flat_map(move |(lang, _)| {
                    (0..settings.samples).map(move |sample| Slot {
                        target: target as u32,
                        probe: probe as u32,
                        lang: lang as u16,
                        sample,
                    })
                })
        })
    })
}

/// The request at `slot`. With several samples each gets its own seed (the target's seed plus
/// the sample number).
pub fn request(suite: &Suite, settings: &RunSettings, slot: Slot) -> Request {
    let config = &settings.targets[slot.target as usize];
    let probe = &suite.probes[slot.probe as usize];
    let lang = &settings.languages[slot.lang as usize];
    let base = config.params();
    let mut params = base.clone();
    if settings.samples > 1 {
        params.seed = Some(base.seed.unwrap_or(0) + u64::from(slot.sample));
    }
    Request {
        probe_id: probe.id.clone(),
        lang: lang.clone(),
        sample: slot.sample,
        system: config.system.clone(),
        prompt: probe.texts.get(lang).cloned().unwrap_or_default(),
        params,
    }
}

/// Every request the audit asks, target by target (see [`slots`]).
pub fn plan(suite: &Suite, settings: &RunSettings) -> Vec<Job> {
    // Sized once: growing by doubling would hold up to twice a large plan at its peak.
    let mut jobs = Vec::with_capacity(slots(suite, settings).count());
    jobs.extend(slots(suite, settings).map(|slot| Job {
        target: slot.target as usize,
        request: request(suite, settings, slot),
    }));
    jobs
}
