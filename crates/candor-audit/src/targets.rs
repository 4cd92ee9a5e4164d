//! Targets as the user declares them: `--target` flags with shared settings, or a TOML file
//! with settings per target. Either way each becomes a [`TargetConfig`], which is also what a
//! run stores, so that `--resume` rebuilds exactly the same targets.

use std::sync::Arc;
use std::time::Duration;

use candor_core::{SamplingParams, TargetSpec};
use candor_runner::{Lane, RateLimits};
use candor_target::TargetSettings;
use serde::{Deserialize, Serialize};

use crate::Error;

/// One target with everything that shapes how it is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// PROVIDER/MODEL[@BASE_URL]
    pub spec: String,
    /// Further base URLs serving the same model; requests go round-robin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// With several samples, sample N is asked with seed + N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Extra JSON fields merged into every request body.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u32>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<f64>,
    /// CPU threads, for a local model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    target: Vec<TargetConfig>,
}

impl TargetConfig {
    pub fn new(spec: String) -> TargetConfig {
        TargetConfig {
            spec,
            replicas: Vec::new(),
            api_key_env: None,
            stream: false,
            system: None,
            temperature: None,
            top_p: None,
            max_tokens: None,
            seed: None,
            extra_body: serde_json::Map::new(),
            concurrency: None,
            rpm: None,
            tpm: None,
            timeout: None,
            connect_timeout: None,
            idle_timeout: None,
            threads: None,
        }
    }

    /// Fills what this target leaves unset from the command line's shared settings.
    pub fn or(mut self, shared: &TargetConfig) -> TargetConfig {
        macro_rules! inherit {
            ($($field:ident),+) => { $( if self.$field.is_none() { self.$field = shared.$field.clone(); } )+ };
        }
        inherit!(
            api_key_env,
            system,
            temperature,
            top_p,
            max_tokens,
            seed,
            concurrency,
            rpm,
            tpm,
            timeout,
            connect_timeout,
            idle_timeout,
            threads
        );
        self.stream |= shared.stream;
        for (k, v) in &shared.extra_body {
            self.extra_body
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        self
    }

    pub fn parsed_spec(&self) -> Result<TargetSpec, Error> {
        self.spec.parse().map_err(Error::usage)
    }

    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            seed: self.seed,
        }
    }

    fn settings(&self) -> Result<TargetSettings, Error> {
        let defaults = TargetSettings::default();
        let secs = |v: Option<f64>, default: Duration, name: &str| match v {
            None => Ok(default),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
            Some(s) => Err(Error::usage(format!(
                "target '{}': {name} must be a positive number of seconds, not {s}",
                self.spec
            ))),
        };
        Ok(TargetSettings {
            api_key_env: self.api_key_env.clone(),
            replicas: self.replicas.clone(),
            stream: self.stream,
            extra_body: self.extra_body.clone(),
            request_timeout: secs(self.timeout, defaults.request_timeout, "timeout")?,
            connect_timeout: secs(
                self.connect_timeout,
                defaults.connect_timeout,
                "connect_timeout",
            )?,
            idle_timeout: secs(self.idle_timeout, defaults.idle_timeout, "idle_timeout")?,
        })
    }

    /// The target, ready to run: built from its provider with its key from the environment.
    pub fn lane(&self, default_concurrency: u32) -> Result<Lane, Error> {
        let spec = self.parsed_spec()?;
        let concurrency = self.concurrency.unwrap_or(default_concurrency).max(1) as usize;
        let target: Arc<dyn candor_target::Target> = if spec.provider == "local" {
            let options = candor_local::LocalOptions {
                threads: self
                    .threads
                    .map_or_else(candor_local::default_threads, |t| t as usize),
                slots: concurrency,
                pull: true,
            };
            Arc::new(candor_local::LocalTarget::open(&spec, &options).map_err(Error::usage)?)
        } else {
            Arc::from(candor_target::build(&spec, &self.settings()?).map_err(Error::usage)?)
        };
        Ok(Lane {
            target,
            concurrency,
            limits: RateLimits {
                rpm: self.rpm,
                tpm: self.tpm,
            },
        })
    }
}

/// Reads a target file: `[[target]]` tables with `spec` and optional settings.
pub fn read_file(path: &std::path::Path) -> Result<Vec<TargetConfig>, Error> {
    let name = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read target file {name}: {e}")))?;
    let file: TargetFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map_or(1, |s| candor_suite::line_col(&text, s.start).0);
        Error::usage(format!("{name}:{line}: {}", e.message().trim()))
    })?;
    for t in &file.target {
        t.parsed_spec()?;
    }
    Ok(file.target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_file_declares_settings_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.toml");
        std::fs::write(
            &path,
            r#"
[[target]]
spec = "openai/qwen@http://127.0.0.1:1/v1"
replicas = ["http://127.0.0.1:2/v1"]
stream = true
temperature = 0.0
extra_body = { enable_thinking = false }
rpm = 600

[[target]]
spec = "anthropic/claude@http://127.0.0.1:3"
"#,
        )
        .unwrap();
        let targets = read_file(&path).unwrap();
        assert_eq!(targets.len(), 2);
        let shared = TargetConfig {
            temperature: Some(0.7),
            max_tokens: Some(100),
            ..TargetConfig::new(String::new())
        };
        let first = targets[0].clone().or(&shared);
        assert_eq!(
            (first.temperature, first.max_tokens, first.stream),
            (Some(0.0), Some(100), true)
        );
        assert_eq!(first.extra_body["enable_thinking"], false);
        let second = targets[1].clone().or(&shared);
        assert_eq!(second.temperature, Some(0.7));
        // Stored and read back for --resume, it is the same target.
        let json = serde_json::to_string(&first).unwrap();
        assert_eq!(serde_json::from_str::<TargetConfig>(&json).unwrap(), first);
    }

    #[test]
    fn a_bad_target_file_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[[target]]\nspec = \"openai/m\"\ncolour = \"red\"\n").unwrap();
        let Err(Error::Usage(e)) = read_file(&path) else {
            panic!()
        };
        assert!(e.contains("t.toml:3:") && e.contains("colour"), "{e}");
        std::fs::write(&path, "[[target]]\nspec = \"nomodel\"\n").unwrap();
        let Err(Error::Usage(e)) = read_file(&path) else {
            panic!()
        };
        assert!(e.contains("has no provider"), "{e}");
    }
}
