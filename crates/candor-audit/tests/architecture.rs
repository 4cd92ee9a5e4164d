//! The crates' arrows, read from `cargo metadata`: each crate depends only on crates above it in
//! the design's list (../shared/DESIGN.md, the README's crate list), and the named seams hold.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The design's order: a crate may depend on those before it, never on those after.
const LAYERS: &[&str] = &[
    "candor-core",
    "candor-suite",
    "candor-target",
    "candor-local",
    "candor-runner",
    "candor-judge",
    "candor-store",
    "candor-stats",
    "candor-report",
    "candor-audit",
    "candor-server",
    "candor",
];

/// Each workspace crate's normal (not dev) dependencies among the workspace's crates, and on
/// anything else by name.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn every_arrow_points_down_the_design() {
    let deps = dependencies();
    for (at, name) in LAYERS.iter().enumerate() {
        let mine = deps
            .get(*name)
            .unwrap_or_else(|| panic!("no crate {name} in the workspace"));
        for dep in mine.iter().filter(|d| d.starts_with("candor")) {
            let below = LAYERS[..at].contains(&dep.as_str());
            assert!(
                below,
                "{name} depends on {dep}, which is not above it in the design"
            );
        }
    }
    for name in deps.keys().filter(|n| n.starts_with("candor")) {
        assert!(
            LAYERS.contains(&name.as_str()) || name == "candor-mock",
            "crate {name} is missing from the design's list"
        );
    }
}

#[test]
fn the_named_seams_hold() {
    let deps = dependencies();
    let uses = |name: &str, dep: &str| deps[name].contains(dep);
    let ours = |name: &str| {
        deps[name]
            .iter()
            .filter(|d| d.starts_with("candor"))
            .count()
    };
    assert_eq!(
        ours("candor-core"),
        0,
        "candor-core imports nothing of ours"
    );
    for never in ["candor-target", "candor-runner", "candor-local"] {
        assert!(
            !uses("candor-report", never),
            "a report never asks a model: {never}"
        );
    }
    for never in ["candor-judge", "candor-report"] {
        assert!(!uses("candor-store", never), "the store knows no {never}");
    }
    assert!(
        !uses("candor-stats", "candor-store"),
        "statistics take numbers, not rows"
    );
    assert!(
        uses("candor", "candor-audit"),
        "the binary calls the application library"
    );
    for (name, mine) in &deps {
        if name != "candor-store" {
            for database in ["rusqlite", "postgres", "r2d2_postgres"] {
                assert!(
                    !mine.contains(database),
                    "{name} names {database}; only the store may"
                );
            }
        }
    }
}
