//! A run through a provider's batch API: export writes request files that the provider (here a
//! script) answers; import joins the results back by custom_id, idempotently, turning errors
//! and moderation into outcomes, and judges the run.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use rusqlite::Connection;
use serde_json::{json, Value};

const PROMPTS: usize = 60;

fn candor(dir: &Path, args: &[&str]) -> Output {
    Command::new(assert_cmd::cargo::cargo_bin("candor"))
        .current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("CANDOR_STORE")
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `candor batch export` of the test suite to `out/`, with the targets and options given.
fn export(dir: &Path, format: &str, more: &[&str]) -> Output {
    let mut args = vec![
        "batch",
        "export",
        "--format",
        format,
        "--out",
        "out",
        "--suite",
        "prompts.jsonl",
    ];
    args.extend_from_slice(more);
    candor(dir, &args)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_lines(path: &Path, rows: &[Value]) {
    let mut f = std::fs::File::create(path).unwrap();
    for r in rows {
        writeln!(f, "{r}").unwrap();
    }
}

fn outcomes(db: &Path) -> Vec<(String, String)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT probe_id, outcome FROM responses ORDER BY probe_id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn run_status(db: &Path) -> String {
    let conn = Connection::open(db).unwrap();
    conn.query_row("SELECT status FROM runs", [], |r| r.get(0))
        .unwrap()
}

fn suite(dir: &Path) {
    let mut prompts = std::fs::File::create(dir.join("prompts.jsonl")).unwrap();
    for i in 0..PROMPTS {
        writeln!(
            prompts,
            "{{\"id\": \"p{i:02}\", \"prompt\": \"Question {i}: what happened in Tiananmen Square in 1989?\"}}"
        )
        .unwrap();
    }
}

/// What an OpenAI batch would return for `request`: an answer, a moderation refusal, a failure
/// or an expiry, by the probe's number.
fn openai_result(request: &Value) -> Value {
    let id = request["custom_id"].as_str().unwrap();
    let n: usize = id.rsplit('p').next().unwrap().parse().unwrap();
    match n {
        0 => json!({"id": "r0", "custom_id": id, "response": {"status_code": 400, "body": {
            "error": {"message": "Content Exists Risk", "type": "invalid_request_error"}}}, "error": null}),
        1 => json!({"id": "r1", "custom_id": id, "response": null,
            "error": {"code": "server_error", "message": "the model crashed"}}),
        2 => json!({"id": "r2", "custom_id": id, "response": null,
            "error": {"code": "batch_expired", "message": "not run in 24 h"}}),
        _ => {
            json!({"id": format!("r{n}"), "custom_id": id, "response": {"status_code": 200, "body": {
            "model": "gpt-x-2025", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": format!("On 4 June 1989 troops fired on protesters ({n}).")}}]}}})
        }
    }
}

#[test]
fn an_openai_batch_exports_imports_idempotently_and_completes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    suite(d);
    // Nothing listens at this address: an export asks nothing.
    let target = "openai/gpt-x@http://127.0.0.1:9/v1";
    let stdout = ok(&export(
        d,
        "openai",
        &[
            "--max-requests",
            "25",
            "--target",
            target,
            "--temperature",
            "0",
            "--stream",
        ],
    ));
    let run: i64 = stdout.trim().parse().unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        (manifest["run"].as_i64(), manifest["format"].as_str()),
        (Some(run), Some("openai"))
    );
    let files: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "requests-t1-0001.jsonl",
            "requests-t1-0002.jsonl",
            "requests-t1-0003.jsonl"
        ]
    );
    let requests: Vec<Value> = files
        .iter()
        .flat_map(|f| lines(&d.join("out").join(f)))
        .collect();
    assert_eq!(requests.len(), PROMPTS);
    assert_eq!(lines(&d.join("out/requests-t1-0003.jsonl")).len(), 10);
    let ids: HashSet<&str> = requests
        .iter()
        .map(|r| r["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), PROMPTS, "custom ids are unique");
    let first = &requests[0];
    assert_eq!(
        (first["method"].as_str(), first["url"].as_str()),
        (Some("POST"), Some("/v1/chat/completions"))
    );
    assert_eq!(first["body"]["model"], "gpt-x");
    assert_eq!(first["body"]["temperature"], 0.0);
    assert!(
        first["body"].get("stream").is_none(),
        "a batch is never streamed: {first}"
    );
    assert!(first["custom_id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("r{run}-t")));
    let db = d.join("candor.db");
    assert_eq!(run_status(&db), "pending");
    assert!(outcomes(&db).is_empty());

    // The provider's results, in its own order, in two files.
    let mut results: Vec<Value> = requests.iter().map(openai_result).collect();
    results.reverse();
    let (part, rest) = results.split_at(20);
    write_lines(&d.join("part.jsonl"), part);
    write_lines(&d.join("rest.jsonl"), rest);

    let run_arg = run.to_string();
    ok(&candor(
        d,
        &[
            "batch",
            "import",
            &run_arg,
            "part.jsonl",
            "--judge",
            "rules",
        ],
    ));
    assert_eq!(outcomes(&db).len(), 20);
    assert_eq!(run_status(&db), "pending");
    // Again: nothing is stored twice.
    let again = candor(
        d,
        &[
            "batch",
            "import",
            &run_arg,
            "part.jsonl",
            "--judge",
            "rules",
        ],
    );
    ok(&again);
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 responses stored, 20 stored before"));
    assert_eq!(outcomes(&db).len(), 20);

    // A damaged line is named by file and line; the others are stored.
    let mut damaged = std::fs::read_to_string(d.join("rest.jsonl")).unwrap();
    damaged.insert_str(0, "{not json\n");
    std::fs::write(d.join("rest.jsonl"), damaged).unwrap();
    let out = candor(
        d,
        &[
            "batch",
            "import",
            &run_arg,
            "rest.jsonl",
            "--judge",
            "rules",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rest.jsonl:1: not JSON"), "{err}");

    let stored = outcomes(&db);
    // Every request but the expired one has its response.
    assert_eq!(stored.len(), PROMPTS - 1);
    let outcome_of = |p: &str| {
        stored
            .iter()
            .find(|(id, _)| id == p)
            .map(|(_, o)| o.as_str())
    };
    assert_eq!(outcome_of("p00"), Some("filtered_input"));
    assert_eq!(outcome_of("p01"), Some("error"));
    assert_eq!(outcome_of("p02"), None);
    assert_eq!(outcome_of("p03"), Some("ok"));
    assert_eq!(run_status(&db), "pending");
    let conn = Connection::open(&db).unwrap();
    let judged: i64 = conn
        .query_row(
            "SELECT count(*) FROM verdicts WHERE judge LIKE 'rules%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(judged, PROMPTS as i64 - 3, "every answer judged");

    // The expired request, asked again in a later batch, completes the run.
    let expired = requests
        .iter()
        .find(|r| r["custom_id"].as_str().unwrap().ends_with("p02"))
        .unwrap();
    let mut late = openai_result(expired);
    late["response"] = json!({"status_code": 200, "body": {"choices": [{"message": {"content": "Late."}, "finish_reason": "stop"}]}});
    late["error"] = Value::Null;
    write_lines(&d.join("late.jsonl"), &[late]);
    ok(&candor(
        d,
        &[
            "batch",
            "import",
            &run_arg,
            "late.jsonl",
            "--judge",
            "rules",
        ],
    ));
    assert_eq!(outcomes(&db).len(), PROMPTS);
    assert_eq!(run_status(&db), "done");
    let report: Value =
        serde_json::from_str(&ok(&candor(d, &["report", &run_arg, "--format", "json"]))).unwrap();
    assert_eq!(report["runs"][0]["status"], "done");
}

#[test]
fn an_anthropic_batch_round_trips_and_formats_must_match_their_targets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    suite(d);
    let target = "anthropic/claude-x@http://127.0.0.1:9";
    let wrong = export(d, "openai", &["--target", target]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("is not a openai target"));

    let run: i64 = ok(&export(
        d,
        "anthropic",
        &["--target", target, "--max-tokens", "300"],
    ))
    .trim()
    .parse()
    .unwrap();
    let requests = lines(&d.join("out/requests-t1-0001.jsonl"));
    assert_eq!(requests.len(), PROMPTS);
    assert_eq!(requests[0]["params"]["model"], "claude-x");
    assert_eq!(requests[0]["params"]["max_tokens"], 300);
    let results: Vec<Value> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = r["custom_id"].clone();
            if i == 0 {
                json!({"custom_id": id, "result": {"type": "errored", "error": {"type": "error",
                    "error": {"type": "overloaded_error", "message": "busy"}}}})
            } else {
                json!({"custom_id": id, "result": {"type": "succeeded", "message": {"model": "claude-x",
                    "content": [{"type": "text", "text": "I can't help with that."}], "stop_reason": "end_turn"}}})
            }
        })
        .collect();
    write_lines(&d.join("results.jsonl"), &results);
    ok(&candor(
        d,
        &[
            "batch",
            "import",
            &run.to_string(),
            "results.jsonl",
            "--judge",
            "rules",
        ],
    ));
    let db = d.join("candor.db");
    let stored = outcomes(&db);
    assert_eq!(stored.len(), PROMPTS);
    assert_eq!(stored.iter().filter(|(_, o)| o == "error").count(), 1);
    assert_eq!(run_status(&db), "done");

    // People's labels of these answers become gold that the judge is scored against.
    {
        let mut store = candor_store::open(&db).unwrap();
        let answers = store.answers(run).unwrap();
        for (i, a) in answers
            .iter()
            .filter(|a| a.outcome == "ok")
            .take(4)
            .enumerate()
        {
            store
                .add_label(&candor_store::NewLabel {
                    response_id: a.id,
                    labeller: if i % 2 == 0 { "ana" } else { "bo" },
                    compliance: Some(candor_core::Compliance::Refused),
                    stance: None,
                    note: "declines",
                })
                .unwrap();
        }
    }
    ok(&candor(
        d,
        &[
            "labels",
            "export",
            "--out",
            "gold.jsonl",
            "--labeller",
            "ana",
        ],
    ));
    let gold = lines(&d.join("gold.jsonl"));
    assert_eq!(gold.len(), 2);
    assert_eq!(
        (gold[0]["label"].as_str(), gold[0]["labeller"].as_str()),
        (Some("refused"), Some("ana"))
    );
    assert_eq!(gold[0]["response"], "I can't help with that.");
    ok(&candor(d, &["labels", "export", "--out", "all.jsonl"]));
    assert_eq!(lines(&d.join("all.jsonl")).len(), 4);
    let scored = ok(&candor(
        d,
        &["judge", "eval", "--gold", "all.jsonl", "--judge", "rules"],
    ));
    assert!(scored.contains("all.jsonl: 4 items"), "{scored}");
    // The same labels, read from the store rather than from a file, score the same.
    let stored = ok(&candor(
        d,
        &["judge", "eval", "--labels", "--judge", "rules"],
    ));
    assert!(
        stored.contains("on the store's labels: 4 items"),
        "{stored}"
    );
    let body = |t: &str| t.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&scored), body(&stored));
}

#[test]
fn submit_and_fetch_go_through_the_providers_batch_endpoints() {
    let mock = candor_mock::MockServer::start(candor_mock::Script::canned());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    suite(d);
    // Two models: OpenAI takes one model per file, so each gets files of its own.
    let (one, two) = (
        format!("openai/m1@{}", mock.base_url()),
        format!("openai/m2@{}", mock.base_url()),
    );
    let run = ok(&export(d, "openai", &["--target", &one, "--target", &two]));
    let run = run.trim().to_string();
    for (file, model) in [
        ("requests-t1-0001.jsonl", "m1"),
        ("requests-t2-0001.jsonl", "m2"),
    ] {
        let requests = lines(&d.join("out").join(file));
        assert_eq!(requests.len(), PROMPTS);
        assert!(
            requests.iter().all(|r| r["body"]["model"] == model),
            "{file}"
        );
    }
    let submitted = ok(&candor(d, &["batch", "submit", "out"]));
    assert_eq!(submitted.lines().count(), 2, "{submitted}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/manifest.json")).unwrap())
            .unwrap();
    assert!(manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["batch"].is_string()));
    // Submitting again submits nothing twice.
    ok(&candor(d, &["batch", "submit", "out"]));
    assert_eq!(mock.requests().len(), 2 * PROMPTS);

    // The mock shows a batch in progress at first look: without waiting, the fetch says so.
    let early = candor(d, &["batch", "fetch", "out", "--judge", "rules"]);
    assert_eq!(early.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&early.stderr).contains("batches still running"));
    let db = d.join("candor.db");
    assert!(outcomes(&db).is_empty());
    ok(&candor(
        d,
        &[
            "batch", "fetch", "out", "--wait", "10", "--poll", "0.05", "--judge", "rules",
        ],
    ));
    assert_eq!(outcomes(&db).len(), 2 * PROMPTS);
    assert_eq!(run_status(&db), "done");
    let report: Value =
        serde_json::from_str(&ok(&candor(d, &["report", &run, "--format", "json"]))).unwrap();
    assert_eq!(report["targets"].as_array().unwrap().len(), 2);
    // Fetching again stores nothing twice.
    ok(&candor(d, &["batch", "fetch", "out", "--judge", "rules"]));
    assert_eq!(outcomes(&db).len(), 2 * PROMPTS);
}

#[test]
fn an_anthropic_batch_goes_through_message_batches_and_a_refused_key_is_named() {
    let mock = candor_mock::MockServer::start(candor_mock::Script::canned());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    suite(d);
    let base = mock.base_url();
    let target = format!("anthropic/claude-x@{}", base.trim_end_matches("/v1"));
    ok(&export(d, "anthropic", &["--target", &target]));
    ok(&candor(d, &["batch", "submit", "out"]));
    ok(&candor(
        d,
        &[
            "batch", "fetch", "out", "--wait", "10", "--poll", "0.05", "--judge", "rules",
        ],
    ));
    let db = d.join("candor.db");
    let stored = outcomes(&db);
    assert_eq!(stored.len(), PROMPTS);
    assert!(stored.iter().all(|(_, o)| o == "ok"), "{stored:?}");

    // A provider that refuses the key: the status and its body, and no key in the message.
    let guarded = candor_mock::MockServer::start(candor_mock::Script {
        require_key: Some("right-key".into()),
        ..candor_mock::Script::canned()
    });
    let other = tempfile::tempdir().unwrap();
    let o = other.path();
    suite(o);
    let target = format!("openai/m@{}", guarded.base_url());
    ok(&export(o, "openai", &["--target", &target]));
    let refused = Command::new(assert_cmd::cargo::cargo_bin("candor"))
        .current_dir(o)
        .env("OPENAI_API_KEY", "wrong-key-123")
        .args(["batch", "submit", "out"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("HTTP 401") && err.contains("invalid api key"),
        "{err}"
    );
    assert!(!err.contains("wrong-key-123"), "{err}");
}
