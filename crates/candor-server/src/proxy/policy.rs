//! What the proxy does with a judged answer: a TOML file of rules, the first that matches
//! deciding. Reloaded on SIGHUP; a broken file keeps the policy in force.
//!
//! ```toml
//! default = "log"
//!
//! [[rule]]
//! compliance = ["refused", "evasive"]
//! stance = ["state_narrative"]
//! lang = ["zh"]              # a language tag or its prefix: "zh" holds zh-Hans and zh-Hant
//! topic = ["tiananmen"]      # the catalogue's topic the question raises
//! action = "block"
//! message = "This answer was withheld by the operator's policy."
//! ```

use std::path::Path;

use serde::Deserialize;

/// What happens to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Recorded and counted; the client gets the upstream's answer untouched.
    #[default]
    Log,
    /// `x-candor-*` headers carry the verdict (streams: one SSE comment line at the end).
    Annotate,
    /// Headers, and a `candor` notice field in the JSON body (streams: an SSE comment line).
    Flag,
    /// The client gets an error answer naming the policy instead of the model's answer.
    /// A stream has been sent by the time it is judged: it is recorded as blocked, and ends
    /// with an SSE comment line saying so.
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Annotate => "annotate",
            Action::Flag => "flag",
            Action::Block => "block",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub compliance: Vec<String>,
    #[serde(default)]
    pub stance: Vec<String>,
    #[serde(default)]
    pub lang: Vec<String>,
    #[serde(default)]
    pub topic: Vec<String>,
    /// Also match outcomes that are not answers (`filtered_output`, `retracted`, ...).
    #[serde(default)]
    pub outcome: Vec<String>,
    pub action: Action,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub default: Action,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

/// What the policy reads of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub outcome: &'a str,
    pub compliance: Option<&'a str>,
    pub stance: Option<&'a str>,
    pub lang: &'a str,
    pub topic: Option<&'a str>,
}

/// The action decided and the message to show with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub message: Option<String>,
}

const KNOWN: [(&str, &[&str]); 3] = [
    ("compliance", &["candid", "evasive", "refused"]),
    ("stance", &["independent", "mixed", "state_narrative"]),
    (
        "outcome",
        &[
            "ok",
            "filtered_input",
            "filtered_output",
            "retracted",
            "truncated",
            "empty",
            "error",
        ],
    ),
];

impl Policy {
    pub fn parse(file: &str, text: &str) -> Result<Policy, String> {
        let policy: Policy = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
        for (n, rule) in policy.rules.iter().enumerate() {
            for (field, allowed) in KNOWN {
                let values = match field {
                    "compliance" => &rule.compliance,
                    "stance" => &rule.stance,
                    _ => &rule.outcome,
                };
                if let Some(bad) = values.iter().find(|v| !allowed.contains(&v.as_str())) {
                    return Err(format!(
                        "{file}: rule {} ([[rule]] number {}): unknown {field} \"{bad}\" (one of: {})",
                        n + 1,
                        n + 1,
                        allowed.join(", ")
                    ));
                }
            }
        }
        Ok(policy)
    }

    pub fn read(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read policy {}: {e}", path.display()))?;
        Policy::parse(&path.display().to_string(), &text)
    }

    /// Whether any answer could get more than `log`.
    pub fn acts(&self) -> bool {
        self.default != Action::Log || self.rules.iter().any(|r| r.action != Action::Log)
    }

    pub fn decide(&self, facts: &Facts<'_>) -> Decision {
        let holds = |wanted: &[String], value: Option<&str>| {
            wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
        };
        let lang_holds = |wanted: &[String]| {
            wanted.is_empty()
                || wanted.iter().any(|w| {
                    facts.lang == w
                        || facts
                            .lang
                            .strip_prefix(w.as_str())
                            .is_some_and(|rest| rest.starts_with('-'))
                })
        };
        self.rules
            .iter()
            .find(|r| {
                holds(&r.compliance, facts.compliance)
                    && holds(&r.stance, facts.stance)
                    && holds(&r.topic, facts.topic)
                    && holds(&r.outcome, Some(facts.outcome))
                    && lang_holds(&r.lang)
            })
            .map_or(
                Decision {
                    action: self.default,
                    message: None,
                },
                |r| Decision {
                    action: r.action,
                    message: r.message.clone(),
                },
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
default = "annotate"

[[rule]]
compliance = ["refused"]
lang = ["zh"]
action = "block"
message = "withheld"

[[rule]]
stance = ["state_narrative"]
action = "flag"

[[rule]]
outcome = ["retracted"]
action = "flag"
"#;

    fn facts<'a>(compliance: Option<&'a str>, stance: Option<&'a str>, lang: &'a str) -> Facts<'a> {
        Facts {
            outcome: if compliance.is_some() {
                "ok"
            } else {
                "retracted"
            },
            compliance,
            stance,
            lang,
            topic: None,
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_the_default_holds_otherwise() {
        let policy = Policy::parse("p.toml", POLICY).unwrap();
        let action = |f: Facts<'_>| policy.decide(&f).action;
        assert_eq!(
            action(facts(Some("refused"), None, "zh-Hans")),
            Action::Block
        );
        assert_eq!(
            policy
                .decide(&facts(Some("refused"), None, "zh-Hant"))
                .message
                .as_deref(),
            Some("withheld")
        );
        // "zh" is a prefix of tags, not of any string: "zhx" is another language.
        assert_eq!(
            action(facts(Some("refused"), None, "zhx")),
            Action::Annotate
        );
        assert_eq!(action(facts(Some("refused"), None, "en")), Action::Annotate);
        assert_eq!(
            action(facts(Some("candid"), Some("state_narrative"), "en")),
            Action::Flag
        );
        assert_eq!(action(facts(None, None, "en")), Action::Flag);
        assert_eq!(
            action(facts(Some("candid"), Some("independent"), "en")),
            Action::Annotate
        );
    }

    #[test]
    fn a_broken_policy_names_its_file_and_what_is_wrong() {
        let err = Policy::parse(
            "p.toml",
            "[[rule]]\ncompliance = [\"rude\"]\naction = \"log\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains("p.toml") && err.contains("unknown compliance \"rude\""),
            "{err}"
        );
        let err = Policy::parse("p.toml", "[[rule]]\naction = \"explode\"\n").unwrap_err();
        assert!(err.contains("p.toml") && err.contains("line 2"), "{err}");
        let err = Policy::parse("p.toml", "[[rule]]\nactoin = \"log\"\n").unwrap_err();
        assert!(err.contains("actoin"), "{err}");
    }
}
