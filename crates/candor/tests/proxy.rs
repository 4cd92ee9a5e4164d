//! `candor proxy` as a user runs it: a process in front of the mock, its policy reloaded by
//! SIGHUP, its record in the store after an interrupt.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use candor_mock::{MockServer, Script};
use serde_json::{json, Value};

fn signal(pid: u32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_process_judges_reloads_its_policy_on_sighup_and_records_every_exchange() {
    let mock = MockServer::start(Script::canned());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("guard.db");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "default = \"annotate\"\n").unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("candor"))
        .args([
            "--store",
            db.to_str().unwrap(),
            "proxy",
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--upstream",
            &mock.base_url(),
            "--policy",
            policy.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches(',')
        .to_string();
    assert!(line.contains("recording run 1"), "{line}");

    let ask = |prompt: &'static str| {
        let url = format!("{base}/v1/chat/completions");
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"model": "m", "messages": [{"role": "user", "content": prompt}]}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = ask("What happened at Tiananmen Square in 1989?").await;
    assert_eq!(r.headers()["x-candor-compliance"], "refused");

    std::fs::write(
        &policy,
        "[[rule]]\ncompliance = [\"refused\"]\naction = \"block\"\nmessage = \"Withheld.\"\n",
    )
    .unwrap();
    signal(child.id(), 1);
    let mut blocked = None;
    for _ in 0..50 {
        let r = ask("What happened at Tiananmen Square in 1989?").await;
        if r.status() == 403 {
            blocked = Some(r.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let blocked = blocked.expect("SIGHUP reloaded the policy");
    assert_eq!(blocked["error"]["message"], "Withheld.");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("candor_proxy_policy_actions_total{action=\"block\"} 1"),
        "{metrics}"
    );

    signal(child.id(), 2);
    assert!(child.wait().unwrap().success());
    let out = Command::new(assert_cmd::cargo::cargo_bin("candor"))
        .args([
            "--store",
            db.to_str().unwrap(),
            "report",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM responses WHERE run_id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let asked = mock.requests().len() as i64;
    assert_eq!(
        stored, asked,
        "every exchange that went upstream is recorded"
    );
    let status: String = conn
        .query_row("SELECT status FROM runs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "done");
}
