//! For tests of this crate and the ones above it: a fresh database on the PostgreSQL server that
//! `CANDOR_TEST_POSTGRES` names (an admin URL; `.ci/run` starts a throwaway cluster with
//! `scripts/postgres-for-tests.sh`). Without one, tests that need it are skipped with a note,
//! unless `CANDOR_REQUIRE_POSTGRES=1`, as in CI, where that is a failure.

use std::sync::atomic::{AtomicUsize, Ordering};

use candor_core::{Request, Response};

use crate::{NewResponse, Store, StoreError};

/// A database of its own for one test, dropped (with its connections) when done.
pub struct TestDatabase {
    pub admin: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A new empty database, or `None` where no server is set and none is required.
    pub fn create() -> Option<TestDatabase> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let admin = match std::env::var("CANDOR_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var("CANDOR_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "CANDOR_REQUIRE_POSTGRES=1 but CANDOR_TEST_POSTGRES names no server"
                );
                eprintln!("note: CANDOR_TEST_POSTGRES is not set; the PostgreSQL test is skipped");
                return None;
            }
        };
        let name = format!(
            "candor_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut client =
            postgres::Client::connect(&admin, postgres::NoTls).expect("the test server answers");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("the test server creates a database");
        let (base, _) = admin
            .rsplit_once('/')
            .expect("an admin URL ends in /DATABASE");
        Some(TestDatabase {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    /// A plain connection to the test database, for a test to look at its rows.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("the test database answers")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Stores (request, response) pairs of one target of a run in one batch, keyed for `spec`;
/// gives their ids.
pub fn insert_exchanges(
    store: &mut dyn Store,
    run_id: i64,
    target_id: i64,
    spec: &str,
    items: &[(Request, Response)],
) -> Result<Vec<i64>, StoreError> {
    let keys: Vec<(String, String)> = items.iter().map(|(q, _)| q.keyed(spec)).collect();
    let rows: Vec<NewResponse<'_>> = items
        .iter()
        .zip(&keys)
        .map(|((q, r), (json, hash))| NewResponse {
            run_id,
            target_id,
            request: q,
            request_json: json,
            request_hash: hash,
            response: r,
        })
        .collect();
    store.insert_responses(&rows)
}
