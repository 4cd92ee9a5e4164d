//! One behaviour, two backends: every test here runs against a SQLite file and against a real
//! PostgreSQL server (a fresh database each), and asserts the same answers from both.
//!
//! The server is the one `CANDOR_TEST_POSTGRES` names (an admin URL; `.ci/run` starts a
//! throwaway cluster with `scripts/postgres-for-tests.sh`). Without it the PostgreSQL half is
//! skipped with a note, unless `CANDOR_REQUIRE_POSTGRES=1`, as in CI, where that is a failure.

use std::collections::BTreeMap;

use candor_core::{
    Compliance, Intent, Outcome, Probe, Request, Response, SamplingParams, Stance, Suite, Verdict,
};
use std::time::Duration;

use candor_store::test_support::TestDatabase;
use candor_store::{NewResponse, PostgresStore, SqliteStore, Store, WorkItem, WorkLeft};

fn fresh_database() -> Option<TestDatabase> {
    TestDatabase::create()
}

/// Runs `check` on a fresh SQLite store, then on a fresh PostgreSQL one where a server is set.
fn on_both(check: impl Fn(&str, Box<dyn Store>)) {
    on_both_opening(|backend, open| check(backend, open()));
}

/// As [`on_both`], with a way to open more stores on the same database, as other processes do.
fn on_both_opening(check: impl Fn(&str, &(dyn Fn() -> Box<dyn Store> + Sync))) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.db");
    check("sqlite", &|| Box::new(SqliteStore::open(&file).unwrap()));
    if let Some(db) = fresh_database() {
        check("postgres", &|| {
            Box::new(PostgresStore::open(&db.url).unwrap())
        });
    }
}

fn probe(id: &str, topic: &str) -> Probe {
    Probe {
        id: id.into(),
        topic: topic.into(),
        subject: Some("cn".into()),
        intent: Some(Intent::Fact),
        template: Some("t".into()),
        focus: None,
        texts: BTreeMap::from([("en".into(), format!("What happened ({id})?"))]),
        key_facts: vec![],
        markers: BTreeMap::new(),
        sources: vec![],
    }
}

fn suite() -> Suite {
    Suite::new(
        "s".into(),
        "1".into(),
        String::new(),
        vec!["en".into()],
        // Not in id order, so that the order they were put in is what comes back.
        vec![
            probe("p2", "tiananmen-1989"),
            probe("p1", "taiwan"),
            probe("p3", "tibet"),
        ],
    )
}

fn request(probe_id: &str, sample: u32) -> Request {
    Request {
        probe_id: probe_id.into(),
        lang: "en".into(),
        sample,
        system: None,
        prompt: format!("What happened ({probe_id})?"),
        params: SamplingParams::default(),
    }
}

fn verdict(judge: &str, compliance: Compliance) -> Verdict {
    Verdict {
        judge: judge.into(),
        compliance: Some(compliance),
        stance: Some(Stance::Mixed),
        fact_recall: Some(0.5),
        rule: "R2".into(),
        rationale: "declines \"quoted\" 天".into(),
    }
}

/// The rows for (request, response) pairs of one target, handed to `write`.
fn with_rows<R>(
    run: i64,
    target: i64,
    items: &[(Request, Response)],
    write: impl FnOnce(&[NewResponse<'_>]) -> R,
) -> R {
    let keys: Vec<(String, String)> = items.iter().map(|(q, _)| q.keyed("openai/m")).collect();
    let rows: Vec<NewResponse<'_>> = items
        .iter()
        .zip(&keys)
        .map(|((q, r), (json, hash))| NewResponse {
            run_id: run,
            target_id: target,
            request: q,
            request_json: json,
            request_hash: hash,
            response: r,
        })
        .collect();
    write(&rows)
}

/// A plain answer, numbered.
fn answer(n: u32) -> Response {
    Response {
        outcome: Outcome::Ok,
        text: format!("answer {n}"),
        ..Response::default()
    }
}

/// Stores one response per (request, response) in one batch.
fn store_batch(
    store: &mut dyn Store,
    run: i64,
    target: i64,
    items: &[(Request, Response)],
) -> Result<Vec<i64>, candor_store::StoreError> {
    with_rows(run, target, items, |rows| store.insert_responses(rows))
}

fn new_run(store: &mut dyn Store) -> (i64, i64) {
    let suite = suite();
    let run = store
        .create_run(&suite, &serde_json::json!({"concurrency": 4}))
        .unwrap();
    let target = store
        .add_target(
            run,
            0,
            &serde_json::json!({"spec": "openai/m", "provider": "openai", "model": "m", "base_url": "http://x"}),
        )
        .unwrap();
    store.put_probes(&suite).unwrap();
    (run, target)
}

#[test]
fn a_run_round_trips() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        // Probes are keyed by suite hash: a second put adds nothing.
        store.put_probes(&suite()).unwrap();
        let mut failed = Response::failed(Outcome::Error, "HTTP 500: boom", 12.5);
        failed.http_status = Some(500);
        failed.raw_body = Some("boom \"quoted\" 天".into());
        let mut answer = Response {
            outcome: Outcome::Ok,
            text: "答案 with ' and \" and \\".into(),
            reasoning: Some("thinking".into()),
            finish_reason: Some("stop".into()),
            latency_ms: 3.25,
            first_byte_ms: Some(1.5),
            chunks: vec![candor_core::Chunk {
                at_ms: 1.5,
                data: "{\"x\":1}".into(),
            }],
            attempts: 2,
            base_url: Some("http://replica-2".into()),
            ..Response::default()
        };
        answer.model_reported = Some("m-2025".into());
        store_batch(
            store.as_mut(),
            run,
            target,
            &[
                (request("p1", 0), failed),
                (request("p2", 1), answer.clone()),
            ],
        )
        .unwrap();
        store.set_status(run, "pending").unwrap();
        let pending = store.run(run).unwrap();
        assert_eq!(
            (pending.status.as_str(), pending.finished_at),
            ("pending", None),
            "{backend}"
        );
        store.finish_run(run, "done").unwrap();

        assert_eq!(store.latest_run().unwrap(), run, "{backend}");
        let row = store.run(run).unwrap();
        assert_eq!(
            (row.status.as_str(), row.settings["concurrency"].as_i64()),
            ("done", Some(4)),
            "{backend}"
        );
        assert_eq!(row.suite_hash, suite().hash, "{backend}");
        assert!(
            row.started_at.ends_with('Z') && row.started_at.len() == 24,
            "{backend}: {}",
            row.started_at
        );
        assert!(row.finished_at.is_some(), "{backend}");
        let targets = store.targets(run).unwrap();
        assert_eq!(
            (targets.len(), targets[0].id, targets[0].model.as_str()),
            (1, target, "m"),
            "{backend}"
        );
        assert_eq!(targets[0].provenance["base_url"], "http://x", "{backend}");
        let probes: Vec<String> = store
            .probes(run)
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(probes, ["p2", "p1", "p3"], "{backend}");

        let stored = store.responses(run).unwrap();
        assert_eq!(stored.len(), 2, "{backend}");
        assert_eq!(stored[0].response.outcome, Outcome::Error, "{backend}");
        assert_eq!(stored[0].response.http_status, Some(500), "{backend}");
        assert_eq!(
            stored[0].response.raw_body.as_deref(),
            Some("boom \"quoted\" 天"),
            "{backend}"
        );
        assert_eq!(stored[0].prompt, "What happened (p1)?", "{backend}");
        let got = &stored[1];
        assert_eq!(
            (got.probe_id.as_str(), got.sample, got.cached_from),
            ("p2", 1, None),
            "{backend}"
        );
        assert_eq!(got.response, answer, "{backend}");

        // Paging returns the same rows in id order.
        let first = store.responses_after(run, 0, 1).unwrap();
        let rest = store.responses_after(run, first[0].id, 10).unwrap();
        assert_eq!(
            (first[0].id, rest.len(), rest[0].id),
            (stored[0].id, 1, stored[1].id),
            "{backend}"
        );

        let answered = store.answered(run).unwrap();
        assert!(
            answered.contains(&(target, "p2".to_string(), "en".to_string(), 1)),
            "{backend}"
        );
        assert_eq!(answered.len(), 2, "{backend}");
        let counts = store.error_counts(run).unwrap();
        assert_eq!(
            (counts[&target].responses, counts[&target].errors),
            (2, 1),
            "{backend}"
        );
        assert_eq!(
            counts[&target].first.as_deref(),
            Some("HTTP 500: boom"),
            "{backend}"
        );
        let answers = store.answers(run).unwrap();
        assert_eq!(
            (answers[1].text.as_str(), answers[1].outcome.as_str()),
            (answer.text.as_str(), "ok"),
            "{backend}"
        );
    });
}

#[test]
fn verdicts_replace_and_the_last_judge_comes_first() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let ok = Response {
            outcome: Outcome::Ok,
            text: "an answer".into(),
            ..Response::default()
        };
        store_batch(
            store.as_mut(),
            run,
            target,
            &[(request("p1", 0), ok.clone()), (request("p2", 0), ok)],
        )
        .unwrap();
        let ids: Vec<i64> = store.responses(run).unwrap().iter().map(|r| r.id).collect();
        store
            .insert_verdicts(&[
                (ids[0], verdict("a@1", Compliance::Refused)),
                (ids[1], verdict("a@1", Compliance::Candid)),
            ])
            .unwrap();
        store
            .insert_verdicts(&[(ids[0], verdict("b@1", Compliance::Evasive))])
            .unwrap();
        assert_eq!(store.run_judges(run).unwrap(), ["b@1", "a@1"], "{backend}");
        // Judging again with a@1 replaces its verdict and makes it the latest.
        store
            .insert_verdicts(&[(ids[0], verdict("a@1", Compliance::Evasive))])
            .unwrap();
        assert_eq!(store.run_judges(run).unwrap(), ["a@1", "b@1"], "{backend}");
        let rows = store.judged_rows(run, "a@1").unwrap();
        assert_eq!(rows.len(), 2, "{backend}");
        assert_eq!(
            (rows[0].compliance, rows[0].stance, rows[0].fact_recall),
            (Some(Compliance::Evasive), Some(Stance::Mixed), Some(0.5)),
            "{backend}"
        );
        assert_eq!(
            (
                rows[0].topic.as_str(),
                rows[0].intent,
                rows[0].rule.as_deref()
            ),
            ("taiwan", Some(Intent::Fact), Some("R2")),
            "{backend}"
        );
        assert_eq!(rows[1].compliance, Some(Compliance::Candid), "{backend}");
        let unjudged = store.judged_rows(run, "c@1").unwrap();
        assert!(
            unjudged
                .iter()
                .all(|r| r.compliance.is_none() && r.rule.is_none()),
            "{backend}"
        );
    });
}

#[test]
fn a_stored_batch_gives_the_ids_of_its_rows_in_order() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let (other, other_target) = new_run(store.as_mut());
        let theirs = store_batch(
            store.as_mut(),
            other,
            other_target,
            &[(request("p1", 0), answer(100))],
        )
        .unwrap();
        let items: Vec<(Request, Response)> =
            (0..5).map(|n| (request("p1", n), answer(n))).collect();
        let ids = store_batch(store.as_mut(), run, target, &items).unwrap();
        let stored: Vec<(i64, String)> = store
            .responses(run)
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.response.text))
            .collect();
        let expected: Vec<(i64, String)> = ids
            .iter()
            .zip(0..)
            .map(|(id, n)| (*id, format!("answer {n}")))
            .collect();
        assert_eq!(stored, expected, "{backend}");
        assert_eq!(theirs.len(), 1, "{backend}");
        assert!(!ids.contains(&theirs[0]), "{backend}");
    });
}

/// A run and its target, its probes not yet stored.
fn bare_run(store: &mut dyn Store) -> (i64, i64) {
    let run = store.create_run(&suite(), &serde_json::json!({})).unwrap();
    let target = store
        .add_target(run, 0, &serde_json::json!({"spec": "openai/m"}))
        .unwrap();
    (run, target)
}

#[test]
fn judged_answers_are_stored_with_their_probes_and_verdicts_in_one_call() {
    on_both(|backend, mut store| {
        let (run, target) = bare_run(store.as_mut());
        let items: Vec<(Request, Response)> = [("p2", 0), ("p1", 1), ("p3", 2)]
            .map(|(p, n)| (request(p, n), answer(n)))
            .into();
        let verdicts = [
            Some(verdict("proxy@1", Compliance::Refused)),
            None,
            Some(verdict("proxy@1", Compliance::Candid)),
        ];
        let ids = with_rows(run, target, &items, |rows| {
            store.insert_judged(&suite(), rows, &verdicts)
        })
        .unwrap();
        let stored: Vec<i64> = store.responses(run).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(stored, ids, "{backend}");
        let judged: Vec<(i64, String, Option<Compliance>)> = store
            .judged_rows(run, "proxy@1")
            .unwrap()
            .into_iter()
            .map(|r| (r.response_id, r.topic, r.compliance))
            .collect();
        assert_eq!(
            judged,
            vec![
                (ids[0], "tiananmen-1989".into(), Some(Compliance::Refused)),
                (ids[1], "taiwan".into(), None),
                (ids[2], "tibet".into(), Some(Compliance::Candid)),
            ],
            "{backend}"
        );
    });
}

#[test]
fn a_judged_batch_that_fails_part_way_stores_none_of_it() {
    on_both(|backend, mut store| {
        let (run, target) = bare_run(store.as_mut());
        let good = [(request("p1", 0), answer(0))];
        let bad = [(request("p2", 1), answer(1))];
        let verdicts = [Some(verdict("proxy@1", Compliance::Candid)), None];
        // The second row names a target that does not exist: the store refuses it.
        let keys: Vec<(String, String)> = [&good[0].0, &bad[0].0]
            .iter()
            .map(|q| q.keyed("openai/m"))
            .collect();
        let rows: Vec<NewResponse<'_>> = [(&good[0], target), (&bad[0], target + 1000)]
            .iter()
            .zip(&keys)
            .map(|(((q, r), target), (json, hash))| NewResponse {
                run_id: run,
                target_id: *target,
                request: q,
                request_json: json,
                request_hash: hash,
                response: r,
            })
            .collect();
        let failed = store.insert_judged(&suite(), &rows, &verdicts);
        assert!(failed.is_err(), "{backend}: {failed:?}");
        assert!(store.responses(run).unwrap().is_empty(), "{backend}");
        assert!(store.probes(run).unwrap().is_empty(), "{backend}");
        // The same batch without the bad row goes in whole.
        let ids = store
            .insert_judged(&suite(), &rows[..1], &verdicts[..1])
            .unwrap();
        let judged = store.judged_rows(run, "proxy@1").unwrap();
        assert_eq!(judged.len(), 1, "{backend}");
        assert_eq!(
            (judged[0].response_id, judged[0].compliance),
            (ids[0], Some(Compliance::Candid)),
            "{backend}"
        );
    });
}

#[test]
fn paged_reads_give_every_row_once_in_id_order_and_only_the_runs() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let (other, other_target) = new_run(store.as_mut());
        // Interleaved with another run's rows, so that a page must skip them by run.
        for n in 0..7 {
            store_batch(
                store.as_mut(),
                run,
                target,
                &[(request("p1", n), answer(n))],
            )
            .unwrap();
            store_batch(
                store.as_mut(),
                other,
                other_target,
                &[(request("p1", n), answer(100 + n))],
            )
            .unwrap();
        }
        let ids: Vec<i64> = store.responses(run).unwrap().iter().map(|r| r.id).collect();
        store
            .insert_verdicts(&[(ids[3], verdict("a@1", Compliance::Refused))])
            .unwrap();
        let mut judged = Vec::new();
        candor_store::for_each_page(
            |after| store.judged_rows_after(run, "a@1", after, 3),
            |r| r.response_id,
            |page| {
                assert!(page.len() <= 3, "{backend}");
                judged.extend(page);
                Ok(())
            },
        )
        .unwrap();
        let judged_ids: Vec<i64> = judged.iter().map(|r| r.response_id).collect();
        assert_eq!(judged_ids, ids, "{backend}");
        let refused: Vec<i64> = judged
            .iter()
            .filter(|r| r.compliance == Some(Compliance::Refused))
            .map(|r| r.response_id)
            .collect();
        assert_eq!(refused, [ids[3]], "{backend}");
        let texts: Vec<String> = store
            .answers_after(run, ids[4], 10)
            .unwrap()
            .into_iter()
            .map(|a| a.text)
            .collect();
        assert_eq!(texts, ["answer 5", "answer 6"], "{backend}");
        // The whole-run reads are the pages joined.
        assert_eq!(store.answers(run).unwrap().len(), 7, "{backend}");
        assert_eq!(
            store.judged_rows(other, "a@1").unwrap().len(),
            7,
            "{backend}"
        );
    });
}

#[test]
fn the_high_water_mark_rises_with_every_answer_and_verdict_stored() {
    on_both(|backend, mut store| {
        let empty = store.high_water().unwrap();
        assert_eq!((empty.response, empty.verdict), (0, 0), "{backend}");
        let (run, target) = new_run(store.as_mut());
        let answer = Response {
            outcome: Outcome::Ok,
            text: "an answer".into(),
            ..Response::default()
        };
        store_batch(store.as_mut(), run, target, &[(request("p1", 0), answer)]).unwrap();
        let answered = store.high_water().unwrap();
        assert!(answered.response > empty.response, "{backend}");
        let id = store.responses(run).unwrap()[0].id;
        store
            .insert_verdicts(&[(id, verdict("a@1", Compliance::Candid))])
            .unwrap();
        let judged = store.high_water().unwrap();
        assert!(judged.verdict > answered.verdict, "{backend}");
        assert_eq!(
            store.high_water().unwrap(),
            judged,
            "{backend}: reading moves nothing"
        );
        // The same judge's verdict again replaces the first and moves the mark.
        store
            .insert_verdicts(&[(id, verdict("a@1", Compliance::Refused))])
            .unwrap();
        assert!(
            store.high_water().unwrap().verdict > judged.verdict,
            "{backend}"
        );
    });
}

#[test]
fn the_caches_find_the_original_and_keep_a_judges_verdict() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let ok = Response {
            outcome: Outcome::Ok,
            text: "cached answer".into(),
            ..Response::default()
        };
        let q = request("p1", 0);
        let (_, hash) = q.keyed("openai/m");
        assert_eq!(store.cached(&hash).unwrap(), None, "{backend}");
        store_batch(store.as_mut(), run, target, &[(q.clone(), ok)]).unwrap();
        let original = store.responses(run).unwrap()[0].id;
        assert_eq!(store.cached(&hash).unwrap(), Some(original), "{backend}");

        let (run2, target2) = new_run(store.as_mut());
        let (json, _) = q.keyed("openai/m");
        store
            .copy_cached(run2, &[(target2, &json, original)])
            .unwrap();
        let copy = &store.responses(run2).unwrap()[0];
        assert_eq!(
            (copy.cached_from, copy.response.text.as_str()),
            (Some(original), "cached answer"),
            "{backend}"
        );
        // A copy of a copy points at the original.
        assert_eq!(store.cached(&hash).unwrap(), Some(original), "{backend}");

        assert_eq!(store.cached_judgement("k").unwrap(), None, "{backend}");
        store
            .cache_judgement("k", &verdict("llm:x", Compliance::Evasive))
            .unwrap();
        store
            .cache_judgement("k", &verdict("llm:x", Compliance::Refused))
            .unwrap();
        assert_eq!(
            store.cached_judgement("k").unwrap(),
            Some(verdict("llm:x", Compliance::Refused)),
            "{backend}"
        );
    });
}

#[test]
fn a_batch_with_a_duplicate_stores_nothing_of_itself() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let r = Response::failed(Outcome::Empty, "", 1.0);
        store_batch(
            store.as_mut(),
            run,
            target,
            &[(request("p1", 0), r.clone())],
        )
        .unwrap();
        let again = store_batch(
            store.as_mut(),
            run,
            target,
            &[(request("p2", 0), r.clone()), (request("p1", 0), r)],
        );
        assert!(again.is_err(), "{backend}");
        let stored: Vec<String> = store
            .responses(run)
            .unwrap()
            .into_iter()
            .map(|s| s.probe_id)
            .collect();
        assert_eq!(stored, ["p1"], "{backend}");
    });
}

#[test]
fn missing_runs_are_clear_errors() {
    on_both(|backend, store| {
        assert!(
            store
                .latest_run()
                .unwrap_err()
                .to_string()
                .contains("holds no run yet"),
            "{backend}"
        );
        assert!(
            store.run(7).unwrap_err().to_string().contains("no run 7"),
            "{backend}"
        );
    });
}

#[test]
fn model_output_that_breaks_formats_is_stored() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let hostile = "<script>alert(1)</script>'); DROP TABLE responses; --\u{0}after the NUL";
        let r = Response {
            outcome: Outcome::Ok,
            text: hostile.into(),
            raw_body: Some(hostile.into()),
            ..Response::default()
        };
        store_batch(store.as_mut(), run, target, &[(request("p1", 0), r)]).unwrap();
        let text = store.answers(run).unwrap().remove(0).text;
        // PostgreSQL text cannot hold NUL: it is kept as U+2400; everything else is as sent.
        let expected = if backend == "postgres" {
            hostile.replace('\0', "\u{2400}")
        } else {
            hostile.to_string()
        };
        assert_eq!(text, expected, "{backend}");
    });
}

#[test]
fn postgres_schema_version_and_concurrent_first_opens() {
    let Some(db) = fresh_database() else { return };
    // Workers started together migrate once, under the advisory lock.
    let opened: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    PostgresStore::open(&db.url)
                        .unwrap()
                        .schema_version()
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(opened, [7, 7, 7, 7]);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    assert_eq!(sqlite.schema_version().unwrap(), 7);
}

#[test]
fn postgres_failures_are_named() {
    let Some(db) = fresh_database() else { return };
    let open_err = |url: &str| PostgresStore::open(url).err().expect("refused").to_string();

    let (base, _) = db.url.rsplit_once('/').unwrap();
    let missing = open_err(&format!("{base}/no_such_database"));
    assert!(missing.contains("no such database"), "{missing}");

    let stranger = base.replacen("candor@", "stranger:secret-pw@", 1);
    let refused = open_err(&format!("{stranger}/postgres"));
    assert!(
        refused.contains("refused the login") && refused.contains("stranger"),
        "{refused}"
    );
    assert!(
        !refused.contains("secret-pw"),
        "the password must not appear: {refused}"
    );

    let bad = open_err("postgres://candor@127.0.0.1:notaport/x");
    assert!(bad.contains("not a PostgreSQL URL"), "{bad}");

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = open_err(&format!("postgres://candor@127.0.0.1:{port}/x"));
    assert!(
        down.contains(&format!("127.0.0.1:{port}")) && down.to_lowercase().contains("connect"),
        "{down}"
    );

    // A database migrated by a newer candor.
    drop(PostgresStore::open(&db.url).unwrap());
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    c.batch_execute("UPDATE candor_schema SET version = 99")
        .unwrap();
    let newer = open_err(&db.url);
    assert!(
        newer.contains("schema version 99, newer than this candor knows (7)"),
        "{newer}"
    );
}

#[test]
fn postgres_tls_is_used_verified_or_refused_as_the_url_says() {
    let Some(db) = fresh_database() else { return };
    let ca = match std::env::var("CANDOR_TEST_POSTGRES_CA") {
        Ok(ca) => ca,
        Err(_) => {
            assert!(
                std::env::var("CANDOR_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CANDOR_REQUIRE_POSTGRES=1 but CANDOR_TEST_POSTGRES_CA names no CA"
            );
            eprintln!("note: CANDOR_TEST_POSTGRES_CA is not set; the TLS test is skipped");
            return;
        }
    };
    let tls_of = |query: &str| {
        PostgresStore::open(&format!("{}?{query}", db.url))
            .and_then(|s| s.uses_tls())
            .map_err(|e| e.to_string())
    };
    // Verified against the test CA, host name included.
    assert_eq!(
        tls_of(&format!("sslmode=verify-full&sslrootcert={ca}")),
        Ok(true)
    );
    assert_eq!(
        tls_of(&format!("sslmode=require&sslrootcert={ca}")),
        Ok(true)
    );
    // Without the CA, verification fails and says how to give it.
    let refused = tls_of("sslmode=verify-full").unwrap_err();
    assert!(refused.contains("sslrootcert"), "{refused}");
    assert!(!refused.contains(&ca), "{refused}");
    // libpq's `require` and `prefer` without a CA: encrypted, the peer unchecked.
    assert_eq!(tls_of("sslmode=require"), Ok(true));
    assert_eq!(tls_of("application_name=candor-test"), Ok(true));
    assert_eq!(tls_of("sslmode=disable"), Ok(false));
    let unreadable = tls_of("sslmode=verify-full&sslrootcert=/no/such/ca.pem").unwrap_err();
    assert!(unreadable.contains("/no/such/ca.pem"), "{unreadable}");
}

#[test]
fn postgres_a_lost_connection_keeps_what_was_committed() {
    let Some(db) = fresh_database() else { return };
    let mut store = PostgresStore::open(&db.url).unwrap();
    let (run, target) = new_run(&mut store);
    let ok = Response {
        outcome: Outcome::Ok,
        text: "kept".into(),
        ..Response::default()
    };
    store_batch(&mut store, run, target, &[(request("p1", 0), ok.clone())]).unwrap();
    // The server drops every connection of the store's, as a restart or a network cut would.
    let mut admin = postgres::Client::connect(&db.admin, postgres::NoTls).unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .unwrap()
        .get(0);
    assert!(killed >= 1);
    // The store reconnects, what was committed is there, and the run goes on where it stopped.
    let answered = store.answered(run).unwrap();
    assert_eq!(answered.len(), 1);
    store_batch(&mut store, run, target, &[(request("p2", 0), ok)]).unwrap();
    assert_eq!(store.responses(run).unwrap().len(), 2);
}

#[test]
fn postgres_works_from_inside_an_async_runtime() {
    let Some(db) = fresh_database() else { return };
    // The runner writes from inside tokio, where the blocking client could not start its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let run = runtime.block_on(async {
        let mut store = PostgresStore::open(&db.url).unwrap();
        let (run, _) = new_run(&mut store);
        run
    });
    assert_eq!(
        PostgresStore::open(&db.url).unwrap().latest_run().unwrap(),
        run
    );
}

#[test]
fn urls_lose_their_passwords_in_messages() {
    assert_eq!(
        candor_store::redact("postgres://u:pw@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(
        candor_store::redact("postgresql://u@h/db?password=pw&x=1"),
        "postgresql://u@h/db?password=***&x=1"
    );
    assert_eq!(candor_store::redact("postgres://h/db"), "postgres://h/db");
    assert!(candor_store::is_postgres_url("postgresql://h/db"));
    assert!(!candor_store::is_postgres_url("candor.db"));
}

fn work(target_id: i64, n: u32) -> Vec<WorkItem> {
    (0..n)
        .map(|i| WorkItem {
            target_id,
            probe_id: format!("p{i:04}"),
            lang: "en".into(),
            sample: 0,
        })
        .collect()
}

fn answer_for(item: &WorkItem) -> (Request, Response) {
    let mut q = request(&item.probe_id, item.sample);
    q.lang = item.lang.clone();
    let r = Response {
        outcome: Outcome::Ok,
        text: format!("answer to {}", item.probe_id),
        ..Response::default()
    };
    (q, r)
}

#[test]
fn workers_lease_work_and_a_dead_workers_lease_runs_out() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let items = work(target, 5);
        store.add_work(run, &items).unwrap();
        store.add_work(run, &items).unwrap();
        let left = store.work_left(run).unwrap();
        assert_eq!(
            left,
            WorkLeft {
                pending: 5,
                leased: 0,
                workers: 0
            },
            "{backend}"
        );

        let hour = Duration::from_secs(3600);
        let a = store.claim_work(run, "a", 2, hour).unwrap();
        assert_eq!(a, items[..2], "{backend}: the oldest first");
        let b = store
            .claim_work(run, "b", 10, Duration::from_secs(2))
            .unwrap();
        assert_eq!(b, items[2..], "{backend}: never what another holds");
        assert!(
            store.claim_work(run, "c", 10, hour).unwrap().is_empty(),
            "{backend}"
        );
        assert_eq!(
            store.work_left(run).unwrap(),
            WorkLeft {
                pending: 0,
                leased: 5,
                workers: 2
            },
            "{backend}"
        );

        // a answers its two; b dies holding three.
        let answers: Vec<_> = a.iter().map(answer_for).collect();
        assert_eq!(
            store_completed(store.as_mut(), run, target, &answers),
            2,
            "{backend}"
        );
        // The same answers again (a worker whose lease ran out) store nothing twice.
        assert_eq!(
            store_completed(store.as_mut(), run, target, &answers),
            0,
            "{backend}"
        );
        assert_eq!(store.responses(run).unwrap().len(), 2, "{backend}");
        assert_eq!(
            store.work_left(run).unwrap(),
            WorkLeft {
                pending: 0,
                leased: 3,
                workers: 1
            },
            "{backend}"
        );

        // A lease that has run out returns its requests to whoever asks next.
        let fresh = claim_when_free(store.as_mut(), run);
        assert_eq!(fresh, b, "{backend}");
        let answers: Vec<_> = fresh.iter().map(answer_for).collect();
        assert_eq!(
            store_completed(store.as_mut(), run, target, &answers),
            3,
            "{backend}"
        );
        assert_eq!(
            store.work_left(run).unwrap(),
            WorkLeft::default(),
            "{backend}"
        );
        assert_eq!(store.responses(run).unwrap().len(), 5, "{backend}");
    });
}

#[test]
fn a_renewed_lease_keeps_its_work_from_other_workers() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let items = work(target, 3);
        store.add_work(run, &items).unwrap();
        let short = Duration::from_millis(300);
        let held = store.claim_work(run, "a", 2, short).unwrap();
        assert_eq!(held.len(), 2, "{backend}");
        // Renewed before it runs out, the lease outlives its first term.
        assert_eq!(
            store
                .renew_leases(run, "a", Duration::from_secs(3600))
                .unwrap(),
            2,
            "{backend}"
        );
        assert_eq!(
            store.renew_leases(run, "nobody", short).unwrap(),
            0,
            "{backend}"
        );
        std::thread::sleep(Duration::from_millis(450));
        let other = store.claim_work(run, "b", 10, short).unwrap();
        assert_eq!(other, items[2..], "{backend}: only the item a never held");
        assert_eq!(
            store.work_left(run).unwrap(),
            WorkLeft {
                pending: 0,
                leased: 3,
                workers: 2
            },
            "{backend}"
        );
        // b does not renew: its lease runs out and its item returns; a's do not.
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!(
            claim_when_free(store.as_mut(), run),
            items[2..],
            "{backend}"
        );
    });
}

/// Claims for a new worker, waiting until some lease has run out.
fn claim_when_free(store: &mut dyn Store, run: i64) -> Vec<WorkItem> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = store
            .claim_work(run, "d", 10, Duration::from_secs(3600))
            .unwrap();
        if !got.is_empty() {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never ran out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn store_completed(
    store: &mut dyn Store,
    run: i64,
    target: i64,
    items: &[(Request, Response)],
) -> usize {
    with_rows(run, target, items, |rows| {
        store.complete_work(rows).unwrap()
    })
}

#[test]
fn workers_claiming_at_once_never_share_a_request() {
    on_both_opening(|backend, open| {
        let mut store = open();
        let (run, target) = new_run(store.as_mut());
        let items = work(target, 400);
        store.add_work(run, &items).unwrap();
        let start = std::sync::Barrier::new(4);
        let taken: Vec<Vec<WorkItem>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|w| {
                    let start = &start;
                    s.spawn(move || {
                        let mut mine = open();
                        start.wait();
                        let mut got = Vec::new();
                        loop {
                            let batch = mine
                                .claim_work(run, &format!("w{w}"), 7, Duration::from_secs(3600))
                                .unwrap();
                            if batch.is_empty() {
                                return got;
                            }
                            got.extend(batch);
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<WorkItem> = taken.concat();
        let total = all.len();
        all.sort();
        all.dedup();
        assert_eq!(
            (total, all.len()),
            (400, 400),
            "{backend}: every request once"
        );
    });
}

#[test]
fn labels_are_kept_with_the_answer_they_label() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let answer = Response {
            outcome: Outcome::Ok,
            text: "<b>answer</b> 答".into(),
            ..Response::default()
        };
        store_batch(store.as_mut(), run, target, &[(request("p1", 0), answer)]).unwrap();
        let id = store.responses(run).unwrap()[0].id;
        let (found_run, found) = store.response_by_id(id).unwrap().expect("the response");
        assert_eq!(
            (found_run, found.id, found.prompt.as_str()),
            (run, id, "What happened (p1)?"),
            "{backend}"
        );
        assert!(
            store.response_by_id(id + 100).unwrap().is_none(),
            "{backend}"
        );
        assert!(store.labels(None).unwrap().is_empty(), "{backend}");
        for (who, c) in [("ana", Compliance::Evasive), ("bo", Compliance::Candid)] {
            store
                .add_label(&candor_store::NewLabel {
                    response_id: id,
                    labeller: who,
                    compliance: Some(c),
                    stance: Some(Stance::StateNarrative),
                    note: "names no one \"quoted\"",
                })
                .unwrap();
        }
        let labels = store.labels(Some(run)).unwrap();
        assert_eq!(labels.len(), 2, "{backend}");
        let first = &labels[0];
        assert_eq!(
            (first.labeller.as_str(), first.compliance, first.stance),
            (
                "ana",
                Some(Compliance::Evasive),
                Some(Stance::StateNarrative)
            ),
            "{backend}"
        );
        assert_eq!(
            (first.text.as_str(), first.prompt.as_str(), first.run_id),
            ("<b>answer</b> 答", "What happened (p1)?", run),
            "{backend}"
        );
        assert_eq!(store.labels(Some(run + 1)).unwrap().len(), 0, "{backend}");
        assert_eq!(store.labels(None).unwrap().len(), 2, "{backend}");
    });
}

#[test]
fn a_page_of_answers_is_filtered_and_counted_in_the_database() {
    on_both(|backend, mut store| {
        let (run, target) = new_run(store.as_mut());
        let answer = |text: &str| Response {
            outcome: Outcome::Ok,
            text: text.into(),
            ..Response::default()
        };
        let long = format!("Troops fired. {}", "x".repeat(1000));
        store_batch(
            store.as_mut(),
            run,
            target,
            &[
                (request("p1", 0), answer(&long)),
                (request("p2", 0), answer("天安门 answer")),
                (request("p3", 0), answer("another")),
            ],
        )
        .unwrap();
        let ids: Vec<i64> = store.responses(run).unwrap().iter().map(|r| r.id).collect();
        store
            .insert_verdicts(&[
                (ids[0], verdict("a@1", Compliance::Candid)),
                (ids[1], verdict("a@1", Compliance::Evasive)),
            ])
            .unwrap();
        store
            .insert_verdicts(&[(ids[0], verdict("b@1", Compliance::Refused))])
            .unwrap();
        let page = |f: candor_store::AnswerFilter| {
            store
                .answer_page(&candor_store::AnswerFilter {
                    run_id: run,
                    judge: Some("a@1".into()),
                    limit: if f.limit == 0 { 10 } else { f.limit },
                    ..f
                })
                .unwrap()
        };
        let (total, all) = page(Default::default());
        assert_eq!((total, all.len()), (3, 3), "{backend}");
        assert_eq!(
            all[0].excerpt.chars().count(),
            candor_store::EXCERPT_CHARS as usize,
            "{backend}"
        );
        assert_eq!(
            (all[0].compliance.as_deref(), all[2].compliance.as_deref()),
            (Some("candid"), None),
            "{backend}"
        );
        let (total, found) = page(candor_store::AnswerFilter {
            text: Some("TROOPS".into()),
            ..Default::default()
        });
        assert_eq!((total, found[0].id), (1, ids[0]), "{backend}");
        let (total, _) = page(candor_store::AnswerFilter {
            text: Some("天安门".into()),
            compliance: Some("evasive".into()),
            ..Default::default()
        });
        assert_eq!(total, 1, "{backend}");
        let (total, second) = page(candor_store::AnswerFilter {
            offset: 1,
            limit: 1,
            ..Default::default()
        });
        assert_eq!(
            (total, second.len(), second[0].id),
            (3, 1, ids[1]),
            "{backend}"
        );
        let (total, _) = page(candor_store::AnswerFilter {
            target_id: Some(target + 99),
            ..Default::default()
        });
        assert_eq!(total, 0, "{backend}");
        let (total, one) = page(candor_store::AnswerFilter {
            probe: Some("p3".into()),
            ..Default::default()
        });
        assert_eq!((total, one[0].id), (1, ids[2]), "{backend}");
        // A probe id is matched whole, not as a part.
        let (total, _) = page(candor_store::AnswerFilter {
            probe: Some("p".into()),
            ..Default::default()
        });
        assert_eq!(total, 0, "{backend}");
        let (total, _) = page(candor_store::AnswerFilter {
            intent: Some("fact".into()),
            ..Default::default()
        });
        assert_eq!(total, 3, "{backend}");
        let (total, _) = page(candor_store::AnswerFilter {
            intent: Some("opinion".into()),
            ..Default::default()
        });
        assert_eq!(total, 0, "{backend}");
        // Only the first answer has a second judge's verdict, and it differs.
        let (total, disputed) = page(candor_store::AnswerFilter {
            disputed: true,
            ..Default::default()
        });
        assert_eq!(
            (total, disputed.len(), disputed[0].id),
            (1, 1, ids[0]),
            "{backend}"
        );
        let verdicts: Vec<String> = store
            .verdicts_of(ids[0])
            .unwrap()
            .into_iter()
            .map(|v| v.judge)
            .collect();
        assert_eq!(verdicts, ["b@1", "a@1"], "{backend}");
    });
}
