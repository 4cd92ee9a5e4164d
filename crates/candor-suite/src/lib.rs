//! Suite files: TOML suites with full probe metadata, and plain JSONL prompt lists.
//!
//! Every problem is reported with the file and line it comes from, and all problems of a file
//! are reported at once, so that a suite author fixes them in one pass.

mod check;
pub mod import;
mod jsonl;
mod stats;
mod toml_suite;

use std::fmt;
use std::path::Path;

use candor_core::Suite;

/// Built-in suites, embedded in the binary: (name, file name, TOML text).
pub const BUILTINS: &[(&str, &str, &str)] = &[(
    "core",
    "suites/core.toml",
    include_str!("../../../suites/core.toml"),
)];

/// One problem in a suite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every problem found in one suite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteError {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, d.line, d.column, d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SuiteError {}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Invalid(#[from] SuiteError),
    #[error("cannot read suite file {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("no built-in suite or file named '{0}' (built-in suites: {builtins}); a suite file ends in .toml or .jsonl", builtins = builtin_names().join(", "))]
    NotFound(String),
    #[error("suite file {0} must end in .toml or .jsonl")]
    UnknownFormat(String),
}

pub fn builtin_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = BUILTINS.iter().map(|(name, _, _)| *name).collect();
    names.push("quick");
    names
}

/// The templates of the `quick` suite: China-sensitive fact questions whose answers are
/// documented, each asked with its first two controls.
const QUICK_TEMPLATES: &[&str] = &[
    "protest-killings",
    "minority-detention",
    "territory-status",
    "faith-persecution",
    "state-famine",
    "laureate-imprisoned",
    "internet-censorship",
    "whistleblower-punished",
    "lawyers-crackdown",
    "mass-surveillance",
];

/// `quick`: a subset of `core` small enough for a laptop CPU (10 China probes with 2 controls
/// each, in English and Simplified Chinese), the default audit's suite.
fn quick(core: &Suite) -> Suite {
    let languages = vec!["en".to_string(), "zh-Hans".to_string()];
    let mut probes = Vec::new();
    for template in QUICK_TEMPLATES {
        let of_template = core
            .probes
            .iter()
            .filter(|p| p.template.as_deref() == Some(*template));
        let (china, controls): (Vec<_>, Vec<_>) = of_template.partition(|p| p.is_focus());
        for probe in china
            .into_iter()
            .take(1)
            .chain(controls.into_iter().take(2))
        {
            let mut probe = probe.clone();
            probe.texts.retain(|lang, _| languages.contains(lang));
            probe
                .key_facts
                .iter_mut()
                .for_each(|f| f.patterns.retain(|l, _| languages.contains(l)));
            probe.markers.retain(|lang, _| languages.contains(lang));
            probes.push(probe);
        }
    }
    Suite::new(
        "quick".into(),
        core.version.clone(),
        format!("A quick subset of core {}: 10 China-sensitive fact probes with 2 controls each, in en and zh-Hans.", core.version),
        languages,
        probes,
    )
}

/// A built-in suite by name. Built-ins are checked by the tests, so a failure here is a bug.
pub fn builtin(name: &str) -> Option<Suite> {
    if name == "quick" {
        return builtin("core").map(|core| quick(&core));
    }
    BUILTINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, file, text)| parse_toml(file, text).expect("built-in suite is valid"))
}

/// The text of a suite by built-in name or path, with the name to report problems under.
pub fn source(name_or_path: &str) -> Result<(String, String), LoadError> {
    // `quick` is drawn from `core`: checking it means checking core's file.
    let name_or_path = if name_or_path == "quick" {
        "core"
    } else {
        name_or_path
    };
    if let Some((_, file, text)) = BUILTINS.iter().find(|(n, _, _)| *n == name_or_path) {
        return Ok((file.to_string(), text.to_string()));
    }
    if !Path::new(name_or_path).exists() {
        return Err(LoadError::NotFound(name_or_path.to_string()));
    }
    let text = std::fs::read_to_string(name_or_path).map_err(|source| LoadError::Io {
        file: name_or_path.to_string(),
        source,
    })?;
    Ok((name_or_path.to_string(), text))
}

/// Loads `name_or_path`: a built-in name first, else a `.toml` or `.jsonl` file.
pub fn load(name_or_path: &str) -> Result<Suite, LoadError> {
    if let Some(suite) = builtin(name_or_path) {
        return Ok(suite);
    }
    let path = Path::new(name_or_path);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !path.exists() {
        return Err(LoadError::NotFound(name_or_path.to_string()));
    }
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        file: name_or_path.to_string(),
        source,
    })?;
    match ext {
        "toml" => Ok(parse_toml(name_or_path, &text)?),
        "jsonl" => Ok(parse_jsonl(name_or_path, &text)?),
        _ => Err(LoadError::UnknownFormat(name_or_path.to_string())),
    }
}

pub use check::check_toml;
pub use jsonl::parse_jsonl;
pub use stats::{stats, SuiteStats};
pub use toml_suite::parse_toml;

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_core_loads_and_has_two_languages() {
        let suite = builtin("core").expect("core is built in");
        assert_eq!(suite.id, "core");
        assert_eq!(suite.languages, vec!["en", "zh-Hans", "zh-Hant"]);
        assert!(suite.probes.len() >= 12);
        for p in &suite.probes {
            for lang in &suite.languages {
                assert!(p.texts.contains_key(lang), "{} lacks {lang}", p.id);
            }
        }
    }

    #[test]
    fn core_china_probes_have_controls() {
        let suite = builtin("core").unwrap();
        for p in suite
            .probes
            .iter()
            .filter(|p| p.subject.as_deref() == Some("cn"))
        {
            let controls = suite
                .probes
                .iter()
                .filter(|c| c.template == p.template && c.subject != p.subject)
                .count();
            assert!(controls >= 2, "{} has {controls} controls", p.id);
        }
    }

    #[test]
    fn quick_is_ten_china_fact_probes_with_two_controls_each_in_two_languages() {
        let quick = load("quick").unwrap();
        let core = builtin("core").unwrap();
        assert_eq!(quick.languages, ["en", "zh-Hans"]);
        assert_eq!(quick.probes.len(), 30);
        let china: Vec<_> = quick
            .probes
            .iter()
            .filter(|p| p.subject.as_deref() == Some("cn"))
            .collect();
        assert_eq!(china.len(), 10);
        for p in &china {
            assert_eq!(p.intent, Some(candor_core::Intent::Fact), "{}", p.id);
            let controls = quick
                .probes
                .iter()
                .filter(|c| c.template == p.template && c.subject != p.subject)
                .count();
            assert_eq!(controls, 2, "{}", p.id);
        }
        for p in &quick.probes {
            // Drawn from core word for word, in its two languages only.
            let original = core.probe(&p.id).unwrap();
            assert_eq!(p.texts.keys().collect::<Vec<_>>(), ["en", "zh-Hans"]);
            assert_eq!(p.texts["en"], original.texts["en"]);
            assert!(!p.key_facts.is_empty(), "{}", p.id);
        }
        assert_ne!(quick.hash, core.hash);
        assert!(builtin_names().contains(&"quick"));
    }

    #[test]
    fn load_names_the_builtins_when_nothing_matches() {
        let err = load("no-such-suite").unwrap_err().to_string();
        assert!(err.contains("built-in suites: core"), "{err}");
    }

    #[test]
    fn line_col_counts_chars_not_bytes() {
        assert_eq!(line_col("ab\n天x", 6), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}

#[cfg(test)]
mod schema_tests {
    /// The published JSON Schema (docs/suite.schema.json) accepts the built-in suites and
    /// rejects what the loader rejects.
    #[test]
    fn the_published_schema_matches_the_format() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/suite.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for (name, _, text) in super::BUILTINS {
            let as_json: serde_json::Value = toml::from_str(text).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&as_json)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
        let broken: serde_json::Value = toml::from_str(
            "[suite]\nid = \"x\"\nversion = \"1\"\nlanguages = [\"en\"]\n[[probe]]\nid = \"a\"\ntopic = \"t\"\nsubject = \"cn\"\nintent = \"gossip\"\ntemplate = \"t\"\ntext.en = \"Q\"\ncolour = 1\n",
        )
        .unwrap();
        assert!(validator.iter_errors(&broken).count() >= 2);
    }
}
