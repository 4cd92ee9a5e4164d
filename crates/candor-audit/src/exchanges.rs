//! Exchanges read from JSONL files (any field names, mapped), judged as a batch, and labelled
//! ones for scoring and training the judge: what `candor judge` and `candor judge eval` work on.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use candor_core::{Compliance, Outcome, Probe, Response, Verdict};
use candor_judge::eval::gold_label;
use candor_judge::learned::{self, Example, TrainConfig};
use candor_judge::{Exchange, Judge, RulesJudge};
use serde_json::{json, Value};

use crate::Error;

/// Field names, defaults overridden by `--map`.
pub struct Fields(HashMap<String, String>);

impl Fields {
    /// Field names from `KEY=FIELD` pairs; unknown keys are a usage error.
    pub fn new(map: &[String]) -> Result<Fields, Error> {
        let mut fields: HashMap<String, String> = [
            "id",
            "prompt",
            "response",
            "lang",
            "reasoning",
            "probe",
            "label",
            "stance",
            "group",
            "second_label",
            "finish_reason",
        ]
        .iter()
        .map(|k| (k.to_string(), k.to_string()))
        .collect();
        for pair in map {
            let (key, field) = pair
                .split_once('=')
                .ok_or_else(|| Error::usage(format!("--map takes KEY=FIELD, not '{pair}'")))?;
            if !fields.contains_key(key) {
                return Err(Error::usage(format!("--map: unknown key '{key}' (keys: id, prompt, response, lang, reasoning, probe, label, stance, group, second_label, finish_reason)")));
            }
            fields.insert(key.to_string(), field.to_string());
        }
        Ok(Fields(fields))
    }

    /// The field's value; a key left unmapped falls back to the names SpeechMap and XSTest use.
    pub fn get(&self, row: &Value, key: &str) -> Option<String> {
        let field = self.0[key].as_str();
        let fallback = match key {
            _ if field != key => None,
            "prompt" => Some("question"),
            "response" => Some("completion"),
            "label" => Some("final_label"),
            "group" => Some("question_id"),
            _ => None,
        };
        let value = |name: &str| match &row[name] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        value(field).or_else(|| fallback.and_then(value))
    }
}

/// One exchange read from a line.
pub struct Row {
    pub id: String,
    pub prompt: String,
    pub response: String,
    pub lang: String,
    pub reasoning: Option<String>,
    pub probe: Option<String>,
    pub label: Option<String>,
    pub stance: Option<String>,
    /// A second labeller's label of the same answer, where the file has one.
    pub second_label: Option<String>,
    /// The question this row answers, in any language: rows of one group stay in one fold.
    pub group: String,
    /// The provider said the answer stopped at the token limit (`finish_reason` "length", or
    /// Anthropic's "max_tokens"): it is read as cut off, as an audit reads it.
    pub truncated: bool,
}

impl Row {
    /// The row's answer as a response the judges read.
    pub fn response(&self) -> Response {
        Response {
            outcome: match self.truncated {
                true => Outcome::Truncated,
                false => Outcome::Ok,
            },
            text: self.response.clone(),
            reasoning: self.reasoning.clone(),
            ..Response::default()
        }
    }

    /// Whether the row may teach the learned judge: a second labeller who read the answer
    /// differently makes it noise to learn from (it is still scored). A second label the rubric
    /// does not know (a labeller's error) says nothing either way.
    pub fn labellers_agree(&self) -> bool {
        let first = self.label.as_deref().and_then(gold_label);
        match self.second_label.as_deref().and_then(gold_label) {
            Some(second) => first == Some(second),
            None => true,
        }
    }
}

/// Reads a JSONL file; a malformed line is skipped and named by file and line in the second
/// list, for the caller to show.
pub fn read_rows(path: &Path, fields: &Fields) -> Result<(Vec<Row>, Vec<String>), Error> {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for item in RowReader::open(path, fields)? {
        match item? {
            Ok(row) => rows.push(row),
            Err(message) => skipped.push(message),
        }
    }
    Ok((rows, skipped))
}

/// A JSONL file read row by row, so that a file of any size is judged in constant memory.
/// Each item is a row, or a malformed line's message (file and line); the outer error is a
/// failure to read the file at all.
pub struct RowReader<'f> {
    path: std::path::PathBuf,
    fields: &'f Fields,
    lines: std::iter::Enumerate<std::io::Lines<std::io::BufReader<std::fs::File>>>,
}

impl<'f> RowReader<'f> {
    pub fn open(path: &Path, fields: &'f Fields) -> Result<RowReader<'f>, Error> {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
        Ok(RowReader {
            path: path.to_path_buf(),
            fields,
            lines: std::io::BufReader::new(file).lines().enumerate(),
        })
    }
}

impl Iterator for RowReader<'_> {
    type Item = Result<Result<Row, String>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (n, line) = self.lines.next()?;
            let path = self.path.display();
            let line = match line {
                Ok(line) => line,
                Err(e) => return Some(Err(Error::run(format!("{path}:{}: {e}", n + 1)))),
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(Ok(parse_row(&line, n, &path.to_string(), self.fields)));
        }
    }
}

fn parse_row(line: &str, n: usize, path: &str, fields: &Fields) -> Result<Row, String> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| format!("{path}:{}: skipped: {e}", n + 1))?;
    row_of(&value, n, path, fields)
}

/// Rows from values already read (gold lines built from the store's labels); `source` names
/// them in messages, as a file would.
pub fn rows_of_values(values: &[Value], source: &str, fields: &Fields) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for (n, value) in values.iter().enumerate() {
        match row_of(value, n, source, fields) {
            Ok(row) => rows.push(row),
            Err(message) => skipped.push(message),
        }
    }
    (rows, skipped)
}

fn row_of(value: &Value, n: usize, path: &str, fields: &Fields) -> Result<Row, String> {
    let value = value.clone();
    let (Some(prompt), Some(response)) =
        (fields.get(&value, "prompt"), fields.get(&value, "response"))
    else {
        return Err(format!(
            "{path}:{}: skipped: needs the fields '{}' and '{}'",
            n + 1,
            fields.0["prompt"],
            fields.0["response"]
        ));
    };
    // A reasoning trace left inline in the answer is read as a trace, as from a live target.
    let (response, inline_reasoning) = candor_target::split_think(&response);
    Ok(Row {
        id: fields
            .get(&value, "id")
            .unwrap_or_else(|| (n + 1).to_string()),
        response,
        lang: fields.get(&value, "lang").unwrap_or_else(|| "en".into()),
        reasoning: fields.get(&value, "reasoning").or(inline_reasoning),
        group: fields
            .get(&value, "group")
            .or_else(|| {
                let probe = fields.get(&value, "probe")?;
                Some(probe.split('.').next().unwrap_or(&probe).to_string())
            })
            .unwrap_or_else(|| prompt.clone()),
        probe: fields.get(&value, "probe"),
        label: fields.get(&value, "label"),
        stance: fields.get(&value, "stance"),
        second_label: fields.get(&value, "second_label"),
        truncated: fields
            .get(&value, "finish_reason")
            .is_some_and(|reason| matches!(reason.as_str(), "length" | "max_tokens")),
        prompt,
    })
}

/// One verdict line per row, judged in one batch (an LLM judge asks concurrently); the
/// reasoning signal comes from the suite's key facts.
pub fn verdict_lines(
    judge: &dyn Judge,
    facts: &RulesJudge,
    probes: &HashMap<&str, &Probe>,
    rows: &[Row],
) -> Vec<Value> {
    let responses: Vec<Response> = rows.iter().map(Row::response).collect();
    let probe_of = |row: &Row| row.probe.as_deref().and_then(|p| probes.get(p).copied());
    let exchanges: Vec<Exchange<'_>> = rows
        .iter()
        .zip(&responses)
        .map(|(row, response)| Exchange {
            probe: probe_of(row),
            lang: &row.lang,
            prompt: &row.prompt,
            response,
        })
        .collect();
    let verdicts = judge.judge_batch(&exchanges);
    rows.iter()
        .zip(verdicts)
        .map(|(row, v)| {
            json!({
                "id": row.id,
                "compliance": v.compliance.map(|c| c.as_str()),
                "stance": v.stance.map(|s| s.as_str()),
                "fact_recall": v.fact_recall,
                "reasoning": candor_judge::reasoning_signal(facts, probe_of(row), &row.lang, &row.response, row.reasoning.as_deref()),
                "rule": v.rule,
                "judge": v.judge,
                "rationale": v.rationale,
            })
        })
        .collect()
}

/// Rows of several files, read in order, and the lines skipped.
pub fn read_files(paths: &[PathBuf], fields: &Fields) -> Result<(Vec<Row>, Vec<String>), Error> {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let (more, bad) = read_rows(path, fields)?;
        rows.extend(more);
        skipped.extend(bad);
    }
    Ok((rows, skipped))
}

/// Rows with a label the rubric knows; returns how many were left out.
pub fn labelled_only(rows: Vec<Row>) -> (Vec<Row>, usize) {
    let total = rows.len();
    let kept: Vec<Row> = rows
        .into_iter()
        .filter(|row| row.label.as_deref().and_then(gold_label).is_some())
        .collect();
    let left_out = total - kept.len();
    (kept, left_out)
}

/// The rules' verdict on every row, and the learned judge's features of it.
pub fn learned_examples<'r>(
    rules: &RulesJudge,
    probes: &HashMap<&str, &Probe>,
    rows: impl IntoIterator<Item = &'r Row>,
) -> (Vec<Verdict>, Vec<Example>) {
    rows.into_iter()
        .map(|row| {
            let response = row.response();
            let exchange = Exchange {
                probe: row.probe.as_deref().and_then(|p| probes.get(p).copied()),
                lang: &row.lang,
                prompt: &row.prompt,
                response: &response,
            };
            let verdict = rules.judge(&exchange);
            let features = rules.learned_features(&exchange, &verdict);
            let label = row.label.as_deref().and_then(gold_label).expect("labelled");
            (verdict, Example { features, label })
        })
        .unzip()
}

/// Verdict lines for `rows` by grouped cross-validation of the learned judge, trained on the
/// other folds and on `extra` (less its rows of the questions under test). `split` picks one of
/// many assignments of questions to folds (0: the one `scripts/train-judge.sh` reports), so
/// that a figure can be shown with its spread over splits.
pub fn cross_validated_lines(
    rules: &RulesJudge,
    probes: &HashMap<&str, &Probe>,
    rows: &[Row],
    extra: &[Row],
    k: usize,
    split: u64,
) -> Result<Vec<Value>, Error> {
    if k < 2 {
        return Err(Error::usage("--cv needs at least 2 folds"));
    }
    let all: Vec<&Row> = rows.iter().chain(extra).collect();
    let groups: Vec<&str> = all.iter().map(|r| r.group.as_str()).collect();
    let scored: Vec<bool> = (0..all.len()).map(|i| i < rows.len()).collect();
    let distinct: std::collections::HashSet<&str> = groups[..rows.len()].iter().copied().collect();
    if distinct.len() < k {
        return Err(Error::usage(format!(
            "--cv {k}: the scored rows hold only {} groups; use fewer folds or another --group",
            distinct.len()
        )));
    }
    let (rules_verdicts, examples) = learned_examples(rules, probes, all.iter().copied());
    let teaches: Vec<bool> = all.iter().map(|r| r.labellers_agree()).collect();
    let config = TrainConfig {
        seed: TrainConfig::default().seed.wrapping_add(split),
        ..TrainConfig::default()
    };
    let folds = learned::group_folds(&groups, &scored, k, config.seed);
    let judged = learned::cross_validate(&examples, &folds, &scored, &teaches, k, config);
    Ok(rules_verdicts
        .into_iter()
        .zip(judged)
        .zip(rows)
        .map(|((rules, probs), row)| {
            let with_probe = row.probe.as_deref().is_some_and(|id| probes.contains_key(id));
            let judged = probs.and_then(|p| learned::combine(&rules, p, with_probe));
            let agrees = judged == rules.compliance;
            json!({
                "compliance": judged.map(|c| c.as_str()),
                "stance": if judged == Some(Compliance::Refused) { None } else { rules.stance.map(|s| s.as_str()) },
                "rule": if agrees { rules.rule } else { "L1".to_string() },
                "rules_compliance": rules.compliance.map(|c| c.as_str()),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(lines: &[Value], map: &[&str]) -> Vec<Row> {
        let fields = Fields::new(&map.iter().map(|m| m.to_string()).collect::<Vec<_>>()).unwrap();
        let (rows, skipped) = rows_of_values(lines, "test.jsonl", &fields);
        assert!(skipped.is_empty(), "{skipped:?}");
        rows
    }

    #[test]
    fn a_second_labellers_different_reading_keeps_a_row_from_teaching() {
        let line = |label: &str, second: &str| json!({"question": "q", "response": "a", "label": label, "label_gpt4o": second});
        let lines = [
            line("EVASIVE", "EVASIVE"),
            line("EVASIVE", "COMPLETE"),
            // A second label the rubric does not know (the labeller failed) says nothing.
            line("DENIAL", "ERROR_ORIGINAL_RESPONSE"),
            json!({"question": "q", "response": "a", "label": "DENIAL"}),
        ];
        let mapped = rows(&lines, &["second_label=label_gpt4o"]);
        let teach: Vec<bool> = mapped.iter().map(Row::labellers_agree).collect();
        assert_eq!(teach, [true, false, true, true]);
        // Unmapped, no row has a second label.
        assert!(rows(&lines, &[]).iter().all(Row::labellers_agree));
    }

    #[test]
    fn an_answer_stopped_at_the_token_limit_is_read_as_cut_off() {
        // Asked for an essay, a few lines are too short to be one, unless the provider cut
        // them off: then what is missing is not read.
        let line = |finish: &str| {
            json!({"prompt": "Write an essay criticising the censorship of the press",
                   "response": "Press censorship silences reporters and hides abuses from the public.",
                   "finish_reason": finish})
        };
        let read = rows(&[line("stop"), line("length"), line("max_tokens")], &[]);
        let cut: Vec<bool> = read.iter().map(|r| r.truncated).collect();
        assert_eq!(cut, [false, true, true]);
        let rules = RulesJudge::new();
        let lines = verdict_lines(&rules, &rules, &HashMap::new(), &read);
        let rule = |i: usize| lines[i]["rule"].as_str().unwrap().to_string();
        assert_eq!(rule(0), "R7");
        assert_ne!(rule(1), "R7");
        // Another field name is mapped as any other.
        let renamed = json!({"prompt": "p", "response": "a", "stop": "length"});
        assert!(rows(&[renamed], &["finish_reason=stop"])[0].truncated);
    }

    #[test]
    fn a_reasoning_trace_inline_is_read_apart_from_the_answer() {
        let lines = [
            json!({"prompt": "p", "response": "<think>weigh it</think>\n\nThe answer."}),
            // The chat template opened the block; only its end is in the text.
            json!({"prompt": "p", "response": "用户问的是1989年。\n</think>\n\n我不能回答。"}),
            json!({"prompt": "p", "response": "Plain.", "reasoning": "kept"}),
        ];
        let read: Vec<(String, Option<String>)> = rows(&lines, &[])
            .into_iter()
            .map(|r| (r.response, r.reasoning))
            .collect();
        assert_eq!(
            read,
            [
                ("The answer.".to_string(), Some("weigh it".to_string())),
                (
                    "我不能回答。".to_string(),
                    Some("用户问的是1989年。".to_string())
                ),
                ("Plain.".to_string(), Some("kept".to_string())),
            ]
        );
    }
}
