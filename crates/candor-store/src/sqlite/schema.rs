//! The SQLite schema, migration by migration.

use rusqlite_migration::{Migrations, M};

/// Schema versions, oldest first. Never edit a released migration: append a new one.
pub(super) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        // 1: the skeleton.
        M::up(
            "CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            suite_id TEXT NOT NULL,
            suite_version TEXT NOT NULL,
            suite_hash TEXT NOT NULL,
            settings TEXT NOT NULL,
            candor_version TEXT NOT NULL,
            started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'running'
        );
        CREATE TABLE targets (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            position INTEGER NOT NULL,
            spec TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            base_url TEXT NOT NULL,
            provenance TEXT NOT NULL,
            UNIQUE (run_id, position)
        );
        CREATE TABLE probes (
            suite_hash TEXT NOT NULL,
            probe_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            subject TEXT,
            intent TEXT,
            template TEXT,
            body TEXT NOT NULL,
            PRIMARY KEY (suite_hash, probe_id)
        );
        CREATE TABLE responses (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            target_id INTEGER NOT NULL REFERENCES targets(id),
            probe_id TEXT NOT NULL,
            lang TEXT NOT NULL,
            sample INTEGER NOT NULL,
            request_hash TEXT NOT NULL,
            request TEXT NOT NULL,
            outcome TEXT NOT NULL,
            text TEXT NOT NULL,
            reasoning TEXT,
            finish_reason TEXT,
            http_status INTEGER,
            error TEXT,
            raw_body TEXT,
            model_reported TEXT,
            latency_ms REAL NOT NULL,
            received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            UNIQUE (run_id, target_id, probe_id, lang, sample)
        );
        CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,
            response_id INTEGER NOT NULL REFERENCES responses(id),
            judge TEXT NOT NULL,
            compliance TEXT,
            stance TEXT,
            fact_recall REAL,
            rule TEXT NOT NULL,
            rationale TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            UNIQUE (response_id, judge)
        );",
        ),
        // 2: streaming, retries, replicas, cache.
        M::up(
            "ALTER TABLE responses ADD COLUMN first_byte_ms REAL;
             ALTER TABLE responses ADD COLUMN chunks TEXT;
             ALTER TABLE responses ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE responses ADD COLUMN base_url TEXT;
             ALTER TABLE responses ADD COLUMN route TEXT;
             ALTER TABLE responses ADD COLUMN candor_version TEXT;
             ALTER TABLE responses ADD COLUMN cached_from INTEGER REFERENCES responses(id);
             CREATE INDEX responses_by_hash ON responses(request_hash);",
        ),
        // 3: what LLM judges said, so that an exchange is put to a judge once.
        M::up(
            "CREATE TABLE judge_cache (
            key TEXT PRIMARY KEY,
            judge TEXT NOT NULL,
            verdict TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );",
        ),
        // 4: requests not yet answered, shared by workers under leases (epoch milliseconds).
        M::up(
            "CREATE TABLE work_items (
            seq INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            target_id INTEGER NOT NULL REFERENCES targets(id),
            probe_id TEXT NOT NULL,
            lang TEXT NOT NULL,
            sample INTEGER NOT NULL,
            lease_owner TEXT,
            lease_until INTEGER,
            UNIQUE (run_id, target_id, probe_id, lang, sample)
        );",
        ),
        // 5: people's labels of answers, for the judge's validation.
        M::up(
            "CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            response_id INTEGER NOT NULL REFERENCES responses(id),
            labeller TEXT NOT NULL,
            compliance TEXT,
            stance TEXT,
            note TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );
        CREATE INDEX labels_by_response ON labels(response_id);",
        ),
        // 6: a run's responses in id order, for keyset pages and a browser's first pages
        // without sorting the run.
        M::up("CREATE INDEX responses_by_run ON responses(run_id, id);"),
        // 7: one question's answers in a run (a probe page), without scanning the run.
        M::up("CREATE INDEX responses_by_probe ON responses(run_id, probe_id, id);"),
    ])
}
