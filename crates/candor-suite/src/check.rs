//! `candor suite check`: everything wrong with a suite, by file and line. Beyond what loading
//! refuses (syntax, unknown fields, duplicate ids, missing languages, patterns that do not
//! compile), it finds what makes a suite unfair or unverifiable: a China probe without
//! controls, a fact probe without key facts or sources, a key fact without patterns in one of
//! the suite's languages.

use std::collections::{BTreeMap, BTreeSet};

use candor_core::{Intent, Suite};

use crate::{toml_suite, Diagnostic, SuiteError};

/// Every problem of a TOML suite; empty when it is sound.
pub fn check_toml(file: &str, text: &str) -> SuiteError {
    let (suite, lines) = match toml_suite::parse_with_lines(file, text) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    SuiteError {
        file: file.to_string(),
        diagnostics: lint(&suite, &lines),
    }
}

fn lint(suite: &Suite, lines: &[usize]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut at = |line: usize, message: String| {
        out.push(Diagnostic {
            line,
            column: 1,
            message,
        })
    };
    // Per template, the subjects of its controls (every probe but the one of interest).
    let mut controls: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for p in &suite.probes {
        if let Some(t) = &p.template {
            let entry = controls.entry(t).or_default();
            if let (false, Some(s)) = (p.is_focus(), &p.subject) {
                entry.insert(s);
            }
        }
    }
    for (p, &line) in suite.probes.iter().zip(lines) {
        if p.is_focus() {
            if let Some(t) = &p.template {
                if controls[t.as_str()]
                    .iter()
                    .all(|s| Some(*s) == p.subject.as_deref())
                {
                    at(line, format!("probe '{}': template '{t}' has no control probe about another government", p.id));
                }
            }
        }
        if p.intent == Some(Intent::Fact) {
            if p.key_facts.is_empty() {
                at(line, format!("fact probe '{}' has no key facts", p.id));
            }
            if p.sources.is_empty() {
                at(line, format!("fact probe '{}' cites no sources", p.id));
            }
        }
        for fact in &p.key_facts {
            for lang in &suite.languages {
                let has = |l: &str| fact.patterns.get(l).is_some_and(|v| !v.is_empty());
                let served = has(lang) || candor_core::folded_language(lang).is_some_and(has);
                if !served {
                    at(
                        line,
                        format!(
                            "probe '{}': key fact '{}' has no pattern in '{lang}'",
                            p.id, fact.id
                        ),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = r#"[suite]
id = "t"
version = "1"
languages = ["en", "zh-Hans"]

[[probe]]
id = "a.cn"
topic = "a"
subject = "cn"
intent = "fact"
template = "a"
text.en = "Q"
text.zh-Hans = "问"

[[probe.facts]]
id = "f"
statement = "s"
patterns.en = ['x']

[[probe]]
id = "b.cn"
topic = "b"
subject = "cn"
intent = "opinion"
template = "b"
text.en = "Q"
text.zh-Hans = "问"

[[probe]]
id = "b.us"
topic = "b-us"
subject = "us"
intent = "opinion"
template = "b"
text.en = "Q"
text.zh-Hans = "问"
"#;

    #[test]
    fn finds_each_kind_of_defect_on_its_line() {
        let found = check_toml("t.toml", SUITE);
        let got: Vec<(usize, &str)> = found
            .diagnostics
            .iter()
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    7,
                    "probe 'a.cn': template 'a' has no control probe about another government"
                ),
                (7, "fact probe 'a.cn' cites no sources"),
                (7, "probe 'a.cn': key fact 'f' has no pattern in 'zh-Hans'"),
            ]
        );
        let duplicate = check_toml("t.toml", &SUITE.replace("id = \"b.us\"", "id = \"b.cn\""));
        assert_eq!(duplicate.diagnostics[0].line, 30);
        assert!(duplicate.diagnostics[0]
            .message
            .contains("duplicate probe id 'b.cn'"));
    }

    #[test]
    fn the_built_in_suite_is_sound() {
        for (name, file, text) in crate::BUILTINS {
            let found = check_toml(file, text);
            assert!(found.diagnostics.is_empty(), "{name}: {found}");
        }
    }
}
