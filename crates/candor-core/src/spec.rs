use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One target as the user writes it: `PROVIDER/MODEL[@BASE_URL]`.
///
/// The model id may itself hold slashes (`openai/meta-llama/Llama-3.1-8B`), so the provider is
/// everything before the first slash and the base URL everything after the last `@` that
/// starts an `http://` or `https://` address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    pub provider: String,
    pub model: String,
    pub base_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("target '{0}' has no provider: write PROVIDER/MODEL[@BASE_URL], e.g. openai/gpt-4o")]
    NoProvider(String),
    #[error("target '{0}' has no model: write PROVIDER/MODEL[@BASE_URL], e.g. openai/gpt-4o")]
    NoModel(String),
    #[error("target '{0}': the base URL after '@' must start with http:// or https://")]
    BadUrl(String),
}

impl FromStr for TargetSpec {
    type Err = SpecError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let s = raw.trim();
        let (provider, rest) = s
            .split_once('/')
            .ok_or_else(|| SpecError::NoProvider(raw.to_string()))?;
        if provider.is_empty() {
            return Err(SpecError::NoProvider(raw.to_string()));
        }
        let (model, base_url) = match rest.rfind('@') {
            Some(at) => {
                let url = &rest[at + 1..];
                if url.starts_with("http://") || url.starts_with("https://") {
                    (&rest[..at], Some(url.trim_end_matches('/').to_string()))
                } else if url.contains("://") || url.contains(':') {
                    return Err(SpecError::BadUrl(raw.to_string()));
                } else {
                    // An '@' inside a model id (rare, but legal for some hubs).
                    (rest, None)
                }
            }
            None => (rest, None),
        };
        if model.is_empty() {
            return Err(SpecError::NoModel(raw.to_string()));
        }
        Ok(TargetSpec {
            provider: provider.to_ascii_lowercase(),
            model: model.to_string(),
            base_url,
        })
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)?;
        if let Some(url) = &self.base_url {
            write!(f, "@{url}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_forms() {
        let s: TargetSpec = "openai/gpt-4o".parse().unwrap();
        assert_eq!(
            (s.provider.as_str(), s.model.as_str(), s.base_url),
            ("openai", "gpt-4o", None)
        );

        let s: TargetSpec = "openai/qwen2.5-72b@http://127.0.0.1:8000/v1/"
            .parse()
            .unwrap();
        assert_eq!(s.model, "qwen2.5-72b");
        assert_eq!(s.base_url.as_deref(), Some("http://127.0.0.1:8000/v1"));

        let s: TargetSpec = "openai/meta-llama/Llama-3.1-8B@https://host/v1"
            .parse()
            .unwrap();
        assert_eq!(s.model, "meta-llama/Llama-3.1-8B");
        assert_eq!(
            s.to_string(),
            "openai/meta-llama/Llama-3.1-8B@https://host/v1"
        );
    }

    #[test]
    fn rejects_malformed_specs() {
        assert!(matches!(
            "gpt-4o".parse::<TargetSpec>(),
            Err(SpecError::NoProvider(_))
        ));
        assert!(matches!(
            "/gpt".parse::<TargetSpec>(),
            Err(SpecError::NoProvider(_))
        ));
        assert!(matches!(
            "openai/".parse::<TargetSpec>(),
            Err(SpecError::NoModel(_))
        ));
        assert!(matches!(
            "openai/@http://x".parse::<TargetSpec>(),
            Err(SpecError::NoModel(_))
        ));
        assert!(matches!(
            "openai/m@ftp://host".parse::<TargetSpec>(),
            Err(SpecError::BadUrl(_))
        ));
    }

    proptest! {
        #[test]
        fn display_round_trips(provider in "[a-z]{1,8}", model in "[A-Za-z0-9._-]{1,12}(/[A-Za-z0-9._-]{1,12})?", port in 1u16..) {
            let spec = TargetSpec { provider, model, base_url: Some(format!("http://127.0.0.1:{port}/v1")) };
            prop_assert_eq!(spec.to_string().parse::<TargetSpec>().unwrap(), spec);
        }

        #[test]
        fn never_panics(raw in ".*") {
            let _ = raw.parse::<TargetSpec>();
        }
    }
}
