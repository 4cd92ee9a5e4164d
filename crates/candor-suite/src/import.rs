//! `candor suite import`: another dataset's prompts (a CSV, a JSONL of questions, one prompt a
//! line) as a candor prompt list (JSONL), so that published prompt sets can be audited. The
//! data is read from the user's file at run time; nothing of it ships with candor.

use std::collections::HashMap;

use serde::Serialize;

use crate::{Diagnostic, SuiteError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Lines,
}

/// One imported prompt, as a line of a candor JSONL suite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imported {
    pub id: String,
    pub prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// Column (or field) names for `id`, `prompt`, `topic`, `lang`; defaults are those names.
pub struct Mapping(HashMap<&'static str, String>);

impl Mapping {
    pub fn new(pairs: &[String]) -> Result<Mapping, String> {
        let mut map: HashMap<&'static str, String> = ["id", "prompt", "topic", "lang"]
            .iter()
            .map(|k| (*k, k.to_string()))
            .collect();
        for pair in pairs {
            let (key, column) = pair
                .split_once('=')
                .ok_or(format!("--map takes KEY=COLUMN, not '{pair}'"))?;
            let key = *["id", "prompt", "topic", "lang"]
                .iter()
                .find(|k| **k == key)
                .ok_or(format!(
                    "--map: unknown key '{key}' (keys: id, prompt, topic, lang)"
                ))?;
            map.insert(key, column.to_string());
        }
        Ok(Mapping(map))
    }
}

fn problem(line: usize, message: String) -> Diagnostic {
    Diagnostic {
        line,
        column: 1,
        message,
    }
}

/// Reads `text` in `format`; every unreadable row is reported by line, the rest imported.
pub fn import(
    file: &str,
    text: &str,
    format: Format,
    map: &Mapping,
) -> Result<Vec<Imported>, SuiteError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let field = |k: &str| map.0[k].as_str();
    match format {
        Format::Lines => {
            for (n, line) in text.lines().enumerate() {
                if !line.trim().is_empty() {
                    out.push(Imported {
                        id: (n + 1).to_string(),
                        prompt: line.trim().to_string(),
                        topic: None,
                        lang: None,
                    });
                }
            }
        }
        Format::Jsonl => {
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value: serde_json::Value = match serde_json::from_str(line) {
                    Ok(v) => v,
                    Err(e) => {
                        problems.push(problem(n + 1, e.to_string()));
                        continue;
                    }
                };
                let get = |k: &str| match &value[field(k)] {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(x) => Some(x.to_string()),
                    _ => None,
                };
                match get("prompt").filter(|p| !p.trim().is_empty()) {
                    Some(prompt) => out.push(Imported {
                        id: get("id").unwrap_or_else(|| (n + 1).to_string()),
                        prompt,
                        topic: get("topic"),
                        lang: get("lang"),
                    }),
                    None => problems.push(problem(
                        n + 1,
                        format!("no text in field '{}'", field("prompt")),
                    )),
                }
            }
        }
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(text.as_bytes());
            let headers = match reader.headers() {
                Ok(h) => h.clone(),
                Err(e) => {
                    return Err(SuiteError {
                        file: file.into(),
                        diagnostics: vec![problem(1, e.to_string())],
                    })
                }
            };
            let column = |k: &str| headers.iter().position(|h| h.trim() == field(k));
            let Some(prompt_col) = column("prompt") else {
                let names: Vec<&str> = headers.iter().collect();
                return Err(SuiteError {
                    file: file.into(),
                    diagnostics: vec![problem(
                        1,
                        format!(
                            "no column '{}' (columns: {}); choose one with --map prompt=COLUMN",
                            field("prompt"),
                            names.join(", ")
                        ),
                    )],
                });
            };
            let (id_col, topic_col, lang_col) = (column("id"), column("topic"), column("lang"));
            for (n, record) in reader.records().enumerate() {
                let line = record
                    .as_ref()
                    .ok()
                    .and_then(|r| r.position())
                    .map_or(n + 2, |p| p.line() as usize);
                let record = match record {
                    Ok(r) => r,
                    Err(e) => {
                        problems.push(problem(line, e.to_string()));
                        continue;
                    }
                };
                let cell = |c: Option<usize>| {
                    c.and_then(|c| record.get(c))
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                };
                match cell(Some(prompt_col)) {
                    Some(prompt) => out.push(Imported {
                        id: cell(id_col).unwrap_or_else(|| (n + 1).to_string()),
                        prompt,
                        topic: cell(topic_col),
                        lang: cell(lang_col),
                    }),
                    None => problems.push(problem(line, format!("empty '{}'", field("prompt")))),
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(SuiteError {
            file: file.into(),
            diagnostics: problems,
        });
    }
    Ok(out)
}

/// The prompts as a candor JSONL suite.
pub fn to_jsonl(rows: &[Imported]) -> String {
    rows.iter()
        .map(|r| serde_json::to_string(r).expect("serialises") + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mapping(pairs: &[&str]) -> Mapping {
        Mapping::new(&pairs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_csv_round_trips_through_a_jsonl_suite() {
        let csv = "qid,question,category,language\n1,\"What happened in Beijing, June 1989?\",history,en\n2,\"六四事件是什么？\",history,zh-Hans\n3,\"A \"\"quoted\"\"\nmulti-line prompt\",misc,en\n";
        let rows = import(
            "q.csv",
            csv,
            Format::Csv,
            &mapping(&[
                "id=qid",
                "prompt=question",
                "topic=category",
                "lang=language",
            ]),
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].prompt, "A \"quoted\"\nmulti-line prompt");
        let suite = crate::parse_jsonl("q.jsonl", &to_jsonl(&rows)).unwrap();
        assert_eq!(suite.probes.len(), 3);
        assert_eq!(
            suite.probes[0].texts["en"],
            "What happened in Beijing, June 1989?"
        );
        assert_eq!(suite.probes[1].texts["zh-Hans"], "六四事件是什么？");
        assert_eq!(suite.probes[1].topic, "history");
    }

    #[test]
    fn jsonl_and_lines_import_and_bad_rows_are_named() {
        let rows = import(
            "q.jsonl",
            "{\"q\": \"First?\"}\n{\"q\": \"Second?\", \"id\": 7}\n",
            Format::Jsonl,
            &mapping(&["prompt=q"]),
        )
        .unwrap();
        assert_eq!((rows[0].id.as_str(), rows[1].id.as_str()), ("1", "7"));
        let rows = import("q.txt", "one\n\n two \n", Format::Lines, &mapping(&[])).unwrap();
        assert_eq!((rows[1].id.as_str(), rows[1].prompt.as_str()), ("3", "two"));
        let err = import(
            "q.jsonl",
            "{\"q\": \"ok\"}\nnope\n{\"x\": 1}\n",
            Format::Jsonl,
            &mapping(&["prompt=q"]),
        )
        .unwrap_err();
        assert_eq!(
            err.diagnostics.iter().map(|d| d.line).collect::<Vec<_>>(),
            vec![2, 3]
        );
        let err = import("q.csv", "a,b\n1,2\n", Format::Csv, &mapping(&[])).unwrap_err();
        assert!(
            err.to_string()
                .contains("no column 'prompt' (columns: a, b)"),
            "{err}"
        );
        assert!(Mapping::new(&["colour=x".into()]).is_err());
    }

    proptest! {
        /// Any prompt text survives a CSV import and the JSONL suite it becomes.
        #[test]
        fn prompts_survive_csv_and_jsonl(prompts in proptest::collection::vec("[^\r]{1,40}", 1..8)) {
            let prompts: Vec<String> = prompts.into_iter().filter(|p| !p.trim().is_empty()).collect();
            prop_assume!(!prompts.is_empty());
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(["prompt"]).unwrap();
            for p in &prompts {
                writer.write_record([p]).unwrap();
            }
            let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
            let rows = import("p.csv", &text, Format::Csv, &mapping(&[])).unwrap();
            let suite = crate::parse_jsonl("p.jsonl", &to_jsonl(&rows)).unwrap();
            let back: Vec<String> = suite.probes.iter().map(|p| p.texts["en"].clone()).collect();
            let expected: Vec<String> = prompts.iter().map(|p| p.trim().to_string()).collect();
            prop_assert_eq!(back, expected);
        }
    }
}
