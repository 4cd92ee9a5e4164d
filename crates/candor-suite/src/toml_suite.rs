use std::collections::{BTreeMap, HashSet};

use candor_core::{Intent, KeyFact, Probe, Suite};
use serde::Deserialize;
use toml::Spanned;

use crate::{line_col, Diagnostic, SuiteError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    suite: RawHeader,
    #[serde(default)]
    probe: Vec<RawProbe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    id: String,
    version: String,
    #[serde(default)]
    description: String,
    languages: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    id: Spanned<String>,
    topic: String,
    subject: String,
    intent: Spanned<String>,
    template: String,
    /// Whether this is its template's probe of interest (default: the one about `cn`).
    #[serde(default)]
    focus: Option<bool>,
    text: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    facts: Vec<RawFact>,
    #[serde(default)]
    markers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFact {
    id: String,
    statement: String,
    patterns: BTreeMap<String, Vec<Spanned<String>>>,
}

/// Parses and validates a TOML suite. `file` names the source in error messages.
pub fn parse_toml(file: &str, text: &str) -> Result<Suite, SuiteError> {
    parse_with_lines(file, text).map(|(suite, _)| suite)
}

/// The suite and the line where each of its probes (in order) starts.
pub(crate) fn parse_with_lines(file: &str, text: &str) -> Result<(Suite, Vec<usize>), SuiteError> {
    let fail = |diagnostics| SuiteError {
        file: file.to_string(),
        diagnostics,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        fail(vec![Diagnostic {
            line,
            column,
            message: e.message().trim().to_string(),
        }])
    })?;

    let mut problems = Vec::new();
    let mut report = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        problems.push(Diagnostic {
            line,
            column,
            message,
        });
    };

    let languages = raw.suite.languages.get_ref().clone();
    if languages.is_empty() {
        report(
            raw.suite.languages.span().start,
            "suite.languages is empty: list at least one language tag".into(),
        );
    }
    let mut seen = HashSet::new();
    let mut probes = Vec::with_capacity(raw.probe.len());
    let mut lines = Vec::with_capacity(raw.probe.len());
    for rp in raw.probe {
        let at = rp.id.span().start;
        lines.push(line_col(text, at).0);
        let id = rp.id.get_ref().trim().to_string();
        if id.is_empty() {
            report(at, "probe id is empty".into());
        } else if !seen.insert(id.clone()) {
            report(at, format!("duplicate probe id '{id}'"));
        }
        let intent = match rp.intent.get_ref().parse::<Intent>() {
            Ok(intent) => Some(intent),
            Err(e) => {
                report(
                    rp.intent.span().start,
                    format!(
                        "{e} (expected one of: fact, opinion, critique, creative, operational)"
                    ),
                );
                None
            }
        };
        for lang in &languages {
            if !rp.text.contains_key(lang) {
                report(at, format!("probe '{id}' has no text in '{lang}'"));
            }
        }
        let mut texts = BTreeMap::new();
        for (lang, t) in rp.text {
            if !languages.contains(&lang) {
                report(
                    t.span().start,
                    format!(
                        "probe '{id}' has text in '{lang}', which is not among suite.languages"
                    ),
                );
            }
            if t.get_ref().trim().is_empty() {
                report(
                    t.span().start,
                    format!("probe '{id}' has an empty '{lang}' text"),
                );
            }
            texts.insert(lang, t.into_inner());
        }
        let mut key_facts = Vec::with_capacity(rp.facts.len());
        for fact in rp.facts {
            let mut patterns = BTreeMap::new();
            for (lang, list) in fact.patterns {
                let mut compiled = Vec::with_capacity(list.len());
                for p in list {
                    if let Err(e) = regex::Regex::new(p.get_ref()) {
                        let first = e.to_string().lines().last().unwrap_or("").to_string();
                        report(
                            p.span().start,
                            format!("pattern of fact '{}' does not compile: {first}", fact.id),
                        );
                    }
                    compiled.push(p.into_inner());
                }
                patterns.insert(lang, compiled);
            }
            key_facts.push(KeyFact {
                id: fact.id,
                statement: fact.statement,
                patterns,
            });
        }
        probes.push(Probe {
            id,
            topic: rp.topic,
            subject: Some(rp.subject),
            intent,
            template: Some(rp.template),
            focus: rp.focus,
            texts,
            key_facts,
            markers: rp.markers,
            sources: rp.sources,
        });
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let suite = Suite::new(
        raw.suite.id,
        raw.suite.version,
        raw.suite.description,
        languages,
        probes,
    );
    Ok((suite, lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = r#"[suite]
id = "mini"
version = "1"
languages = ["en", "zh-Hans"]

[[probe]]
id = "a.cn"
topic = "t"
subject = "cn"
intent = "fact"
template = "a"
text.en = "What happened?"
text.zh-Hans = "发生了什么？"
sources = ["somewhere"]

[[probe.facts]]
id = "year"
statement = "It was 1989."
patterns.en = ['\b1989\b']
"#;

    fn errors(text: &str) -> Vec<(usize, String)> {
        parse_toml("s.toml", text)
            .unwrap_err()
            .diagnostics
            .into_iter()
            .map(|d| (d.line, d.message))
            .collect()
    }

    #[test]
    fn parses_a_valid_suite() {
        let s = parse_toml("s.toml", VALID).unwrap();
        assert_eq!(s.probes.len(), 1);
        let p = &s.probes[0];
        assert_eq!(p.intent, Some(Intent::Fact));
        assert_eq!(p.texts["zh-Hans"], "发生了什么？");
        assert_eq!(p.key_facts[0].patterns["en"], vec![r"\b1989\b"]);
    }

    #[test]
    fn syntax_error_names_the_line() {
        let broken = VALID.replace("topic = \"t\"", "topic = ");
        let e = parse_toml("s.toml", &broken).unwrap_err();
        assert_eq!(e.diagnostics[0].line, 8, "{e}");
        assert!(e.to_string().starts_with("s.toml:8:"), "{e}");
    }

    #[test]
    fn unknown_field_is_an_error_with_its_line() {
        let e = errors(&VALID.replace("topic = \"t\"", "topic = \"t\"\ncolour = \"red\""));
        assert_eq!(e.len(), 1);
        assert!(e[0].1.contains("colour"), "{e:?}");
    }

    #[test]
    fn semantic_problems_are_all_reported_with_lines() {
        let mut text = VALID.replace("intent = \"fact\"", "intent = \"gossip\"");
        text = text.replace(r"'\b1989\b'", "'(unclosed'");
        text.push_str("\n[[probe]]\nid = \"a.cn\"\ntopic = \"t\"\nsubject = \"us\"\nintent = \"fact\"\ntemplate = \"a\"\ntext.en = \"Q\"\n");
        let e = errors(&text);
        let lines: Vec<usize> = e.iter().map(|(l, _)| *l).collect();
        assert!(
            e.iter()
                .any(|(l, m)| *l == 10 && m.contains("unknown intent 'gossip'")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|(l, m)| *l == 19 && m.contains("does not compile")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|(l, m)| *l == 22 && m.contains("duplicate probe id 'a.cn'")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|(_, m)| m.contains("no text in 'zh-Hans'")),
            "{e:?}"
        );
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn text_in_an_undeclared_language_is_caught() {
        let e = errors(&VALID.replace("text.en = ", "text.fr = \"Quoi ?\"\ntext.en = "));
        assert!(
            e.iter().any(|(l, m)| *l == 12 && m.contains("'fr'")),
            "{e:?}"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse_toml("x.toml", &text);
        }

        #[test]
        fn mutated_valid_files_never_panic(cut in 0usize..VALID.len(), insert in "[\\[\\]=\"'a-z\n .]{0,8}") {
            let mut text = VALID.to_string();
            let cut = (0..=cut).rev().find(|c| text.is_char_boundary(*c)).unwrap_or(0);
            text.insert_str(cut, &insert);
            if let Err(e) = parse_toml("x.toml", &text) {
                prop_assert!(!e.diagnostics.is_empty());
                for d in &e.diagnostics {
                    prop_assert!(d.line >= 1 && d.line <= text.lines().count() + 1);
                }
            }
        }
    }
}
