use std::collections::BTreeMap;

use candor_core::{Intent, Probe, Suite};
use serde::Deserialize;

use crate::{Diagnostic, SuiteError};

/// One line of a plain prompt list. Lines sharing an `id` with different `lang`s become one
/// probe in several languages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: IdValue,
    prompt: String,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    intent: Option<String>,
    #[serde(default)]
    template: Option<String>,
    /// Whether the row is its template's probe of interest (default: the one about `cn`).
    #[serde(default)]
    focus: Option<bool>,
}

/// Many published prompt lists number their rows; accept numbers as ids.
#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(serde_json::Number),
}

impl IdValue {
    fn into_string(self) -> String {
        match self {
            IdValue::Text(s) => s,
            IdValue::Number(n) => n.to_string(),
        }
    }
}

const DEFAULT_LANG: &str = "en";
const DEFAULT_TOPIC: &str = "general";

/// Parses a JSONL prompt list: one object per line with at least `id` and `prompt`.
pub fn parse_jsonl(file: &str, text: &str) -> Result<Suite, SuiteError> {
    let mut problems = Vec::new();
    let mut probes: Vec<Probe> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut languages: Vec<String> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let mut problem = |column: usize, message: String| {
            problems.push(Diagnostic {
                line: line_no,
                column,
                message,
            })
        };
        let line: Line = match serde_json::from_str(raw) {
            Ok(line) => line,
            Err(e) => {
                let message = e.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_string();
                problem(
                    e.column().max(1),
                    format!("{message} (each line needs at least \"id\" and \"prompt\")"),
                );
                continue;
            }
        };
        let id = line.id.into_string();
        let lang = line.lang.unwrap_or_else(|| DEFAULT_LANG.to_string());
        if id.trim().is_empty() {
            problem(1, "\"id\" is empty".into());
            continue;
        }
        if line.prompt.trim().is_empty() {
            problem(1, format!("prompt of '{id}' is empty"));
            continue;
        }
        let intent = match line.intent.as_deref().map(str::parse::<Intent>) {
            None => None,
            Some(Ok(i)) => Some(i),
            Some(Err(e)) => {
                problem(1, e.to_string());
                continue;
            }
        };
        if !languages.contains(&lang) {
            languages.push(lang.clone());
        }
        match index.get(&id) {
            Some(&at) => {
                let probe = &mut probes[at];
                if probe.texts.contains_key(&lang) {
                    problem(1, format!("duplicate id '{id}' in language '{lang}'"));
                    continue;
                }
                probe.texts.insert(lang, line.prompt);
            }
            None => {
                index.insert(id.clone(), probes.len());
                probes.push(Probe {
                    id,
                    topic: line.topic.unwrap_or_else(|| DEFAULT_TOPIC.to_string()),
                    subject: line.subject,
                    intent,
                    template: line.template,
                    focus: line.focus,
                    texts: BTreeMap::from([(lang, line.prompt)]),
                    key_facts: Vec::new(),
                    markers: BTreeMap::new(),
                    sources: Vec::new(),
                });
            }
        }
    }
    if probes.is_empty() && problems.is_empty() {
        problems.push(Diagnostic {
            line: 1,
            column: 1,
            message: "no prompts: each line needs at least \"id\" and \"prompt\"".into(),
        });
    }
    if !problems.is_empty() {
        return Err(SuiteError {
            file: file.to_string(),
            diagnostics: problems,
        });
    }
    let name = std::path::Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("prompts")
        .to_string();
    Ok(Suite::new(
        name,
        "0".into(),
        format!("prompt list {file}"),
        languages,
        probes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merges_languages_and_applies_defaults() {
        let text = r#"{"id": "q1", "prompt": "What happened in 1989?", "topic": "tiananmen"}
{"id": "q1", "prompt": "1989年发生了什么？", "lang": "zh-Hans"}

{"id": 2, "prompt": "Hello"}
"#;
        let s = parse_jsonl("data/my-prompts.jsonl", text).unwrap();
        assert_eq!(s.id, "my-prompts");
        assert_eq!(s.languages, vec!["en", "zh-Hans"]);
        assert_eq!(s.probes.len(), 2);
        assert_eq!(s.probes[0].texts.len(), 2);
        assert_eq!(s.probes[0].topic, "tiananmen");
        assert_eq!(s.probes[1].id, "2");
        assert_eq!(s.probes[1].topic, "general");
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = "{\"id\": \"a\", \"prompt\": \"x\"}\nnot json\n{\"id\": \"b\"}\n{\"id\": \"a\", \"prompt\": \"y\"}\n{\"id\": \"c\", \"prompt\": \"z\", \"intent\": \"rumour\"}\n";
        let e = parse_jsonl("p.jsonl", text).unwrap_err();
        let lines: Vec<usize> = e.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5], "{e}");
        assert!(e.to_string().contains("p.jsonl:3:"), "{e}");
        assert!(e.to_string().contains("missing field `prompt`"), "{e}");
        assert!(e.to_string().contains("duplicate id 'a'"), "{e}");
    }

    #[test]
    fn empty_file_is_an_error() {
        assert!(parse_jsonl("e.jsonl", "\n\n").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(text in "\\PC{0,300}") {
            let _ = parse_jsonl("x.jsonl", &text);
        }
    }
}
