//! A run shared by worker processes through a real PostgreSQL store: four workers on 2,000
//! requests against the mock, one killed with SIGKILL midway. The run completes with every
//! response stored once, and the mock is asked again only what the killed worker held.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candor_mock::{MockServer, Script};
use candor_store::test_support::TestDatabase;

const REQUESTS: usize = 2_000;
const BATCH: usize = 16;

fn candor(dir: &Path, store: &str) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("candor"));
    cmd.current_dir(dir)
        .env_remove("OPENAI_API_KEY")
        .env("CANDOR_STORE", store)
        .stdin(Stdio::null());
    cmd
}

fn count(db: &TestDatabase, sql: &str) -> i64 {
    db.connect().query_one(sql, &[]).unwrap().get(0)
}

fn wait_all(children: &mut [Child], within: Duration) -> Vec<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    let mut done = vec![None; children.len()];
    while done.iter().any(Option::is_none) {
        for (child, status) in children.iter_mut().zip(done.iter_mut()) {
            if status.is_none() {
                *status = child.try_wait().unwrap();
            }
        }
        if Instant::now() > deadline {
            for c in children.iter_mut() {
                let _ = c.kill();
            }
            panic!("the workers did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done.into_iter().map(Option::unwrap).collect()
}

/// Queues a run of `prompts` for workers (`--workers-only`) in `dir`; returns its id.
fn queue(dir: &Path, store: &str, mock: &MockServer, prompts: &[String], concurrency: &str) -> i64 {
    let mut file = std::fs::File::create(dir.join("prompts.jsonl")).unwrap();
    for (i, prompt) in prompts.iter().enumerate() {
        writeln!(file, "{{\"id\": \"p{i}\", \"prompt\": \"{prompt}\"}}").unwrap();
    }
    let target = format!("openai/m@{}", mock.base_url());
    let queued = candor(dir, store)
        .args(["audit", "--suite", "prompts.jsonl", "--target", &target])
        .args(["--concurrency", concurrency, "--workers-only", "--quiet"])
        .output()
        .unwrap();
    assert!(
        queued.status.success(),
        "{}",
        String::from_utf8_lossy(&queued.stderr)
    );
    String::from_utf8_lossy(&queued.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// Waits for every worker and asserts that each succeeded.
fn all_succeed(workers: &mut [Child], within: Duration) {
    let statuses = wait_all(workers, within);
    for (status, w) in statuses.iter().zip(workers.iter_mut()) {
        let mut err = String::new();
        std::io::Read::read_to_string(w.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "a worker failed: {err}");
    }
}

#[test]
fn four_workers_share_a_run_and_a_killed_ones_lease_returns() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let mock = MockServer::start(Script {
        latency_ms: 5,
        ..Script::canned()
    });
    let dir = tempfile::tempdir().unwrap();
    let prompts: Vec<String> = (0..REQUESTS)
        .map(|i| format!("Question number {i} about Taiwan?"))
        .collect();
    let run = queue(dir.path(), &db.url, &mock, &prompts, "4");
    assert_eq!(
        count(&db, "SELECT count(*) FROM work_items"),
        REQUESTS as i64
    );
    assert_eq!(count(&db, "SELECT count(*) FROM responses"), 0);
    // Queueing asks nothing (the preflight reads only the model list).
    assert_eq!(mock.requests().len(), 0);

    let run_arg = run.to_string();
    let mut workers: Vec<Child> = (0..4)
        .map(|_| {
            candor(dir.path(), &db.url)
                .args(["worker", &run_arg, "--batch", &BATCH.to_string()])
                .args([
                    "--lease", "4", "--poll", "0.2", "--quiet", "--judge", "rules",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();

    // Kill one worker once the run is under way and that worker holds a lease.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&db, "SELECT count(*) FROM responses") < 300 {
        assert!(Instant::now() < deadline, "the workers never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut victim = workers.remove(0);
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let stored_at_kill = count(&db, "SELECT count(*) FROM responses");
    assert!(
        stored_at_kill < REQUESTS as i64,
        "killed too late to matter"
    );

    all_succeed(&mut workers, Duration::from_secs(180));

    assert_eq!(
        count(&db, "SELECT count(*) FROM responses"),
        REQUESTS as i64
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM (SELECT DISTINCT target_id, probe_id, lang, sample FROM responses) d"
        ),
        REQUESTS as i64
    );
    assert_eq!(count(&db, "SELECT count(*) FROM work_items"), 0);
    let asked = mock.requests().len();
    // Every request once, and again at most what the killed worker had taken and not stored.
    assert!(
        (REQUESTS..=REQUESTS + BATCH).contains(&asked),
        "the mock was asked {asked} times"
    );
    let mut c = db.connect();
    let status: String = c
        .query_one("SELECT status FROM runs WHERE id = $1", &[&run])
        .unwrap()
        .get(0);
    assert_eq!(status, "done");
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT response_id) FROM verdicts WHERE judge LIKE 'rules%'"
        ),
        REQUESTS as i64
    );

    // Any machine sees the whole run's progress.
    let shown = candor(dir.path(), &db.url)
        .args(["status", &run_arg])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("run 1: done"), "{text}");
    assert!(
        text.contains("2000 of 2000 responses stored (0 errors); 0 waiting for a worker, 0 leased to 0 workers"),
        "{text}"
    );
    // The password-less URL is all a report needs.
    let report = candor(dir.path(), &db.url)
        .args(["report", &run_arg, "--format", "json"])
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(json["runs"][0]["id"].as_i64(), Some(run), "{json}");
}

/// A batch slower than one lease: each worker renews its leases while its requests are in
/// flight, so the idle third worker, polling, never takes them over, and the mock is asked
/// each request once.
#[test]
fn a_batch_slower_than_its_lease_is_renewed_and_asked_once() {
    const SLOW: usize = 12;
    let mock = MockServer::start(Script {
        latency_ms: 400,
        ..Script::canned()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("shared.db");
    let store = store.to_str().unwrap();
    let prompts: Vec<String> = (0..SLOW).map(|i| format!("Question {i}?")).collect();
    let run = queue(dir.path(), store, &mock, &prompts, "1").to_string();
    // Two workers take a batch of 6 each, one request at a time at 400 ms: 2.4 s, four
    // leases of 0.6 s. The third finds nothing free and polls every 0.1 s.
    let mut workers: Vec<Child> = (0..3)
        .map(|_| {
            candor(dir.path(), store)
                .args(["worker", &run, "--batch", "6", "--lease", "0.6"])
                .args(["--poll", "0.1", "--quiet", "--judge", "rules"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    all_succeed(&mut workers, Duration::from_secs(60));
    let asked = mock.requests().len();
    assert_eq!(asked, SLOW, "the mock was asked {asked} times");
    let db = candor_store::open(Path::new(store)).unwrap();
    let run: i64 = run.parse().unwrap();
    assert_eq!(db.responses(run).unwrap().len(), SLOW);
    assert_eq!(db.run(run).unwrap().status, "done");
}
