//! `candor suite` as a user runs it.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn candor(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("candor").unwrap();
    cmd.current_dir(dir);
    cmd
}

#[test]
fn list_stats_show_and_check_the_built_in_suite() {
    let dir = tempfile::tempdir().unwrap();
    candor(dir.path())
        .args(["suite", "list"])
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(
                r"^core\t\d+\.\d+\.\d+\t\d+ probes\ten,zh-Hans,zh-Hant\t[0-9a-f]{12}\t",
            )
            .unwrap(),
        );
    let out = candor(dir.path())
        .args(["suite", "stats", "--json"])
        .assert()
        .success();
    let stats: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    for key in [
        "probes",
        "topics",
        "subjects",
        "languages",
        "templates",
        "min_controls_per_template",
    ] {
        assert!(stats.get(key).is_some(), "{key}");
    }
    assert!(stats["probes"].as_u64().unwrap() >= 231);
    // The issue's bar: at least six other governments for every template.
    assert!(stats["min_controls_per_template"].as_u64().unwrap() >= 6);
    candor(dir.path())
        .args(["suite", "check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no problem found"));
    candor(dir.path())
        .args(["suite", "show", "protest-killings.cn"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "same template: protest-killings.us, protest-killings.uk",
        ));
    candor(dir.path())
        .args(["suite", "show", "protest-killings.xx"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("close: protest-killings.cn"));
}

#[test]
fn check_lists_every_problem_by_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        "[suite]\nid = \"m\"\nversion = \"1\"\nlanguages = [\"en\"]\n\n[[probe]]\nid = \"a.cn\"\ntopic = \"a\"\nsubject = \"cn\"\nintent = \"fact\"\ntemplate = \"a\"\ntext.en = \"Q?\"\n",
    )
    .unwrap();
    candor(dir.path())
        .args(["suite", "check", "mine.toml"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "mine.toml:7:1: probe 'a.cn': template 'a' has no control probe",
        ))
        .stdout(predicate::str::contains(
            "mine.toml:7:1: fact probe 'a.cn' has no key facts",
        ))
        .stdout(predicate::str::contains(
            "mine.toml:7:1: fact probe 'a.cn' cites no sources",
        ));
}

#[test]
fn an_imported_csv_is_a_suite_that_can_be_audited() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("q.csv"),
        "n,text\n1,\"What happened in Tiananmen Square in 1989?\"\n2,\"台湾是一个国家吗？\"\n",
    )
    .unwrap();
    candor(dir.path())
        .args([
            "suite",
            "import",
            "q.csv",
            "--format",
            "csv",
            "--map",
            "id=n,prompt=text",
            "--out",
            "q.jsonl",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("2 prompts written to q.jsonl"));
    candor(dir.path())
        .args(["suite", "stats", "q.jsonl"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 probes"));
    let mock = candor_mock::MockServer::start(candor_mock::Script::canned());
    candor(dir.path())
        .args([
            "audit",
            "--suite",
            "q.jsonl",
            "--no-report",
            "--target",
            &format!("openai/m@{}", mock.base_url()),
        ])
        .assert()
        .success();
    assert_eq!(mock.requests().len(), 2);
    candor(dir.path())
        .args(["suite", "import", "q.csv", "--format", "csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no column 'prompt' (columns: n, text)",
        ));
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mock = candor_mock::MockServer::start(candor_mock::Script::canned());
    candor(dir.path())
        .args([
            "audit",
            "--no-report",
            "--quiet",
            "--target",
            &format!("openai/m@{}", mock.base_url()),
        ])
        .assert()
        .success();
    // The HTML report of a core run is far larger than a pipe's buffer.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("candor"))
        .current_dir(dir.path())
        .args(["report", "--format", "html"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.to_ascii_lowercase().starts_with("<!doctype html>"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

/// Share of characters two texts have in common, in order (longest common subsequence).
fn in_common(a: &str, b: &str) -> f64 {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row = vec![0usize; b.len() + 1];
    for x in &a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                row[j + 1].max(row[j])
            };
            diagonal = above;
        }
    }
    2.0 * row[b.len()] as f64 / (a.len() + b.len()).max(1) as f64
}

/// Every Traditional Chinese text, folded to Simplified, says what its Simplified text says:
/// the two were written side by side, and only regional names and words may differ (the
/// farthest apart, at 0.75, is Saudi Arabia and the internet: 沙特/沙烏地, 互联网/網際網路).
#[test]
fn the_two_chinese_scripts_of_every_core_probe_agree() {
    let suite = candor_suite::builtin("core").unwrap();
    let mut apart = Vec::new();
    for probe in &suite.probes {
        let (Some(hans), Some(hant)) = (probe.texts.get("zh-Hans"), probe.texts.get("zh-Hant"))
        else {
            panic!("{} lacks a Chinese text", probe.id);
        };
        let share = in_common(
            &candor_judge::normalise(hans),
            &candor_judge::normalise(hant),
        );
        if share < 0.7 {
            apart.push(format!("{} ({share:.2}): {hans} | {hant}", probe.id));
        }
    }
    assert!(apart.is_empty(), "{}", apart.join("\n"));
}

#[test]
fn the_catalogue_of_official_lines_is_listed_shown_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let candor = || {
        let mut cmd = assert_cmd::Command::cargo_bin("candor").unwrap();
        cmd.current_dir(dir.path());
        cmd
    };
    candor()
        .args(["narratives", "list"])
        .assert()
        .success()
        .stdout(
            predicates::str::contains("cn.taiwan-part-of-china")
                .and(predicates::str::contains("ru.crimea-reunification"))
                .and(predicates::str::contains(
                    "names (zh-Hans): 塞尔维亚 | 贝尔格莱德",
                )),
        );
    candor()
        .args(["narratives", "show", "cn.taiwan-part-of-china"])
        .assert()
        .success()
        .stdout(
            predicates::str::contains("台湾是中国领土不可分割的一部分")
                .and(predicates::str::contains("source: ")),
        );
    candor()
        .args(["narratives", "show", "cn.nothing"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no claim 'cn.nothing'"));
    candor()
        .args(["narratives", "check"])
        .assert()
        .success()
        .stdout(predicates::str::contains("narratives/cn.toml: ok"));
    std::fs::write(
        dir.path().join("bad.toml"),
        "government = \"xx\"\nname = \"x\"\nversion = \"1\"\n[[claim]]\nid = \"xx.a\"\ntopic = \"t\"\ncues.en = [\"A\"]\n",
    )
    .unwrap();
    candor()
        .args(["narratives", "check", "bad.toml"])
        .assert()
        .code(2)
        .stderr(
            predicates::str::contains("bad.toml:4: claim \"xx.a\" has no sources").and(
                predicates::str::contains("bad.toml:7: cues: \"A\" can never match"),
            ),
        );
}
