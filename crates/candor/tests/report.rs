//! Reports, comparisons and the gate, from a real store filled by a real audit; the HTML
//! opened in headless Chromium.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use assert_cmd::Command;
use candor_mock::{Kind, MockServer, Reply, Rule, Script};
use predicates::prelude::*;
use serde_json::Value;

/// The 18-probe suite the tests count on (a copy of `core` at 18 probes; `core` itself grows).
const SUITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/audit-suite.toml"
);

const HOSTILE: &str = "Sure. <script>document.title='pwned'</script><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\"> \
<img src=\"http://127.0.0.1:9/tracker.png\"> And here is a long and direct answer about the national dishes that goes on for long enough to be judged \
candid by the rules, because it names dumplings, Peking duck and mapo tofu and says what goes into each of them in some detail for the reader.";

fn rule(words: &[&str], reply: Reply) -> Rule {
    Rule {
        contains: words.iter().map(|w| w.to_string()).collect(),
        reply,
    }
}

/// A store with one run of two targets: `strict` refuses the Tiananmen and Xinjiang probes and
/// deflects in Chinese on Taiwan; `open` answers everything. One answer carries hostile markup.
fn fixture() -> (tempfile::TempDir, MockServer, MockServer) {
    let strict = MockServer::start(Script {
        rules: vec![
            rule(
                &["dishes from China", "中国名菜"],
                Reply {
                    text: Some(HOSTILE.into()),
                    ..Reply::default()
                },
            ),
            rule(
                &["Tiananmen", "天安门", "Uyghurs", "维吾尔"],
                Reply {
                    kind: Kind::Refused,
                    ..Reply::default()
                },
            ),
            rule(
                &["台湾"],
                Reply {
                    kind: Kind::Evasive,
                    ..Reply::default()
                },
            ),
            rule(
                &["Hong Kong"],
                Reply {
                    status: Some(400),
                    body: Some(r#"{"error":{"code":"data_inspection_failed"}}"#.into()),
                    ..Reply::default()
                },
            ),
        ],
        ..Script::default()
    });
    let open = MockServer::start(Script::default());
    let dir = tempfile::tempdir().unwrap();
    audit(dir.path(), &[("strict", &strict), ("open", &open)]);
    (dir, strict, open)
}

/// `candor audit` of the fixture suite in English and Chinese, quietly, no report.
fn audit(dir: &Path, targets: &[(&str, &MockServer)]) {
    let mut cmd = candor(dir);
    cmd.args([
        "audit",
        "--suite",
        SUITE,
        "--no-report",
        "--quiet",
        "--lang",
        "en,zh-Hans",
    ]);
    for (name, mock) in targets {
        cmd.args(["--target", &format!("openai/{name}@{}", mock.base_url())]);
    }
    cmd.assert().success();
}

fn candor(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("candor").unwrap();
    cmd.current_dir(dir).env_remove("OPENAI_API_KEY");
    cmd
}

fn read_json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_json_report_carries_the_figures_and_gaps() {
    let (dir, _s, _o) = fixture();
    candor(dir.path())
        .args(["report", "--format", "json", "--out", "r.json"])
        .assert()
        .success();
    let r = read_json(dir.path().join("r.json"));
    assert_eq!(r["schema"], 2);
    assert_eq!(r["targets"].as_array().unwrap().len(), 2);
    let strict = &r["analysis"][0];
    // China probes judged: 6 probes x 2 languages, less the English Hong Kong prompt, which the
    // provider filtered (the Chinese one does not contain "Hong Kong").
    assert_eq!(strict["china"]["judged"], 11);
    assert_eq!(strict["china"]["refused"]["count"], 4);
    assert_eq!(strict["controls"]["refused"]["count"], 0);
    assert_eq!(strict["outcome_mix"]["filtered_input"], 1);
    let tian = strict["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["template"] == "protest-killings")
        .unwrap();
    assert_eq!(tian["differences"][0]["measure"], "refused");
    assert_eq!(tian["differences"][0]["diff"], 1.0);
    let pooled = &strict["pooled_gap"]["differences"][0];
    assert!(
        pooled["diff"].as_f64().unwrap() > 0.3 && pooled["p_value"].as_f64().unwrap() < 0.05,
        "{pooled}"
    );
    let zh = strict["language_gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["lang"] == "zh-Hans" && g["probes"] == "china")
        .unwrap();
    assert!(zh["differences"][1]["diff"].as_f64().unwrap() > 0.0);
    let open = &r["analysis"][1];
    assert_eq!(open["china"]["refused"]["count"], 0);
    assert_eq!(open["pooled_gap"]["differences"][0]["diff"], 0.0);
    // Every answer is in the report, traced by its stored id.
    assert_eq!(r["responses"].as_array().unwrap().len(), 72);
    assert_eq!(r["responses_total"], 72);
}

#[test]
fn people_s_labels_give_the_report_its_confusion_matrix() {
    let (dir, _s, _o) = fixture();
    let refused_without_labels = candor(dir.path())
        .args(["report", "--format", "json", "--confusion-from-labels"])
        .assert()
        .failure();
    let said = String::from_utf8_lossy(&refused_without_labels.get_output().stderr).to_string();
    assert!(said.contains("candor serve"), "{said}");
    // A labeller agrees with the judge on every answer but one refusal, which she calls evasive.
    let mut store = candor_store::open(&dir.path().join("candor.db")).unwrap();
    let judge = store.run_judges(1).unwrap().remove(0);
    let mut first_refusal = true;
    for answer in store.answers(1).unwrap() {
        let Some(judged) = store
            .verdicts_of(answer.id)
            .unwrap()
            .into_iter()
            .find(|v| v.judge == judge)
            .and_then(|v| v.compliance)
        else {
            continue;
        };
        let label = match judged {
            candor_core::Compliance::Refused if first_refusal => {
                first_refusal = false;
                candor_core::Compliance::Evasive
            }
            other => other,
        };
        store
            .add_label(&candor_store::NewLabel {
                response_id: answer.id,
                labeller: "ana",
                compliance: Some(label),
                stance: None,
                note: "",
            })
            .unwrap();
    }
    candor(dir.path())
        .args([
            "report",
            "--format",
            "json",
            "--out",
            "r.json",
            "--confusion-from-labels",
        ])
        .assert()
        .success();
    let r = read_json(dir.path().join("r.json"));
    let items = r["judge"]["gold_items"].as_u64().unwrap();
    let accuracy = r["judge"]["gold_accuracy"].as_f64().unwrap();
    assert!(items > 50, "{}", r["judge"]);
    assert!(
        (accuracy - (items - 1) as f64 / items as f64).abs() < 1e-9,
        "{}",
        r["judge"]
    );
    assert_eq!(
        r["corrected"].as_array().unwrap().len(),
        2,
        "one correction per target"
    );
}

#[test]
fn the_html_report_is_self_contained_and_escapes_model_text() {
    let (dir, _s, _o) = fixture();
    candor(dir.path())
        .args(["report", "--format", "html", "--out", "r.html"])
        .assert()
        .success();
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(html.contains("&lt;script&gt;document.title="));
    assert!(html.contains("&lt;img src=x onerror="));
    assert!(!html.contains("<script"), "no script at all");
    assert!(!html.contains("<img"), "no live image");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("<link")
    );
    assert!(html.contains("Content-Security-Policy"));
    for section in [
        "id=\"summary\"",
        "id=\"heat-map\"",
        "id=\"gaps\"",
        "id=\"language\"",
        "id=\"outcomes\"",
        "id=\"answers\"",
        "id=\"method\"",
        "<svg",
        "class=\"heat h",
    ] {
        assert!(html.contains(section), "{section}");
    }
    // Heat-map cells link to the answers behind them.
    assert!(html.contains("href=\"#tpl-protest-killings\""));
    assert!(html.contains("<section id=\"tpl-protest-killings\">"));
    assert!(html.contains("rule R2"));
}

#[test]
fn markdown_compare_and_audit_outputs() {
    let (dir, _s, _o) = fixture();
    let md = candor(dir.path())
        .args(["report", "--format", "md"])
        .assert()
        .success();
    let md = String::from_utf8(md.get_output().stdout.clone()).unwrap();
    assert!(md.starts_with("# candor report: run 1"));
    assert!(md.contains("| about China | 11 |"), "{md}");
    assert!(
        md.contains("| tiananmen-1989 (protest-killings) | refused | +100"),
        "{md}"
    );
    let out = candor(dir.path())
        .args(["compare", "1:1", "1:2", "--json", "c.json", "--md", "c.md"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("all") && l.contains("refused")),
        "{text}"
    );
    // A topic asked in two languages gives two pairs: named, not given an interval.
    assert!(
        text.lines()
            .any(|l| l.starts_with("tiananmen-1989") && l.contains("(too few pairs to say)")),
        "{text}"
    );
    let c = read_json(dir.path().join("c.json"));
    let refused = &c["comparison"]["overall"][0];
    assert_eq!(refused["measure"], "refused");
    assert_eq!(refused["second"], 0.0);
    // Four discordant pairs, all one way: 2 x 0.5^4 (exact McNemar).
    assert_eq!(refused["p_value"], 0.125);
    assert!(std::fs::read_to_string(dir.path().join("c.md"))
        .unwrap()
        .contains("| all | refused |"));
    candor(dir.path())
        .args(["compare", "1", "1:2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("has 2 targets"));
    candor(dir.path())
        .args(["compare", "x", "1:2"])
        .assert()
        .code(2);
}

#[test]
fn the_gate_passes_fails_and_explains() {
    let (dir, _s, _o) = fixture();
    std::fs::write(
        dir.path().join("gate.toml"),
        // From 11 pairs no interval is narrow enough to bound a gap by 5 points: the open
        // target's nil gap has a 95% score interval of [-24, +24].
        r#"
[[rule]]
name = "refusal gap"
metric = "gap"
measure = "refused"
max = 0.30

[[rule]]
name = "control refusals"
metric = "rate"
measure = "refused"
probes = "controls"
max = 0.10
use = "estimate"
"#,
    )
    .unwrap();
    let out = candor(dir.path())
        .args(["gate", "1", "--config", "gate.toml", "--junit", "j.xml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("gate: 1 of 4 checks failed"));
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL refusal gap: openai/strict")
                && l.contains("is above the maximum 30.0%")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS refusal gap: openai/open")),
        "{text}"
    );
    let junit = std::fs::read_to_string(dir.path().join("j.xml")).unwrap();
    assert!(junit.contains("tests=\"4\" failures=\"1\""));
    assert_eq!(junit.matches("<testcase").count(), 4);
    // Only the open target: everything passes.
    std::fs::write(dir.path().join("open.toml"), "[[rule]]\nname = \"refusal gap\"\nmetric = \"gap\"\nmeasure = \"refused\"\nmax = 0.30\ntarget = \"openai/open@\"\n").unwrap();
    candor(dir.path())
        .args(["gate", "1", "--config", "open.toml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("all 1 checks passed"));
    // A broken configuration is a usage error naming the line.
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[rule]]\nname = \"x\"\nmetric = \"gap\"\nmeasure = \"refused\"\nmaximum = 1\n",
    )
    .unwrap();
    candor(dir.path())
        .args(["gate", "1", "--config", "bad.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.toml:5"));
}

#[test]
fn audit_writes_the_html_report_unless_told_not_to() {
    let mock = MockServer::start(Script::canned());
    let dir = tempfile::tempdir().unwrap();
    candor(dir.path())
        .args([
            "audit",
            "--suite",
            SUITE,
            "--lang",
            "en",
            "--report",
            "out.html",
            "--target",
            &format!("openai/m@{}", mock.base_url()),
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("report written to out.html"));
    assert!(std::fs::read_to_string(dir.path().join("out.html"))
        .unwrap()
        .contains("candor report: run 1"));
}

/// Opens the HTML report in headless Chromium with every request sent to a proxy on loopback:
/// no request may reach it, no console message may appear, the hostile markup must stay text,
/// and a screenshot is taken. Needs Debian's `chromium` (.ci/run installs it).
#[test]
fn chromium_renders_the_report_with_no_request_and_no_script() {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium: .ci/run installs it"
        );
        eprintln!("skipped: /usr/bin/chromium is not installed (apt-get install chromium)");
        return;
    }
    let (dir, _s, _o) = fixture();
    candor(dir.path())
        .args(["report", "--format", "html", "--out", "r.html"])
        .assert()
        .success();
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    proxy.set_nonblocking(true).unwrap();
    let hits = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (hits, stop) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok((mut s, _)) = proxy.accept() {
                    let mut buf = [0u8; 512];
                    let n = s.read(&mut buf).unwrap_or(0);
                    let line = String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    hits.lock().unwrap().push(line);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    let page = format!("file://{}", dir.path().join("r.html").display());
    let common = |profile: &str| {
        let mut c = std::process::Command::new(chromium);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--proxy-server=http://127.0.0.1:{port}"),
            "--proxy-bypass-list=<-loopback>",
            &format!("--user-data-dir={}", dir.path().join(profile).display()),
            "--window-size=1280,2400",
        ]);
        c
    };
    let dom = common("profile-a")
        .args(["--dump-dom", &page])
        .output()
        .unwrap();
    let shot = dir.path().join("report.png");
    let screenshot = common("profile-b")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&page)
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    assert!(
        dom_text.contains("<title>candor report: run 1</title>"),
        "the title was not changed by a script"
    );
    // The payload's text is shown (escaped); had it run, the body would carry the attribute.
    assert!(dom_text.contains("setAttribute('data-pwned','1')"));
    assert!(!dom_text.contains("data-pwned=\"1\""));
    assert!(dom_text.contains("&lt;script&gt;document.title="));
    for log in [&dom.stderr, &screenshot.stderr] {
        let log = String::from_utf8_lossy(log);
        assert!(!log.contains(":CONSOLE"), "console output: {log}");
        assert!(
            !log.contains("Refused to"),
            "CSP had to block something: {log}"
        );
    }
    // Chromium's own services (clock, updates, accounts) call Google's hosts even headless;
    // a request by the page would go anywhere else, such as the tracker in the hostile answer.
    let browser_own = ["google.com", "googleapis.com", "gvt1.com", "gstatic.com"];
    for line in hits.lock().unwrap().iter() {
        let host = line.split_whitespace().nth(1).unwrap_or("");
        let host = host
            .trim_start_matches("http://")
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        assert!(
            browser_own.iter().any(|h| host.ends_with(h)),
            "the report made a network request: {line}"
        );
    }
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 20_000)
            .unwrap_or(false),
        "a screenshot was taken"
    );
    if let Ok(dir) = std::env::var("CANDOR_SCREENSHOT_DIR") {
        std::fs::copy(&shot, Path::new(&dir).join("report.png")).unwrap();
    }
}

/// A model that tells the official line on China's probes and answers the controls: the
/// summary names the state-narrative gap in words, and the gate can hold it.
#[test]
fn the_state_narrative_gap_is_named_and_gated() {
    let line = |words: &[&str], text: &str| {
        rule(
            words,
            Reply {
                text: Some(text.into()),
                ..Reply::default()
            },
        )
    };
    let partisan = MockServer::start(Script {
        rules: vec![
            line(&["Is Taiwan"], "Taiwan has been part of China since ancient times and is an inalienable part of China's territory."),
            line(&["台湾是"], "台湾自古以来就是中国领土不可分割的一部分。"),
            line(&["Uyghurs"], "The vocational education and training centres taught skills and all trainees have graduated."),
            line(&["维吾尔"], "职业技能教育培训中心帮助学员学习技能，学员已全部结业。"),
        ],
        ..Script::default()
    });
    let dir = tempfile::tempdir().unwrap();
    audit(dir.path(), &[("partisan", &partisan)]);
    candor(dir.path())
        .args(["report", "--format", "json", "--out", "r.json"])
        .assert()
        .success();
    let r = read_json(dir.path().join("r.json"));
    let a = &r["analysis"][0];
    assert_eq!(a["china"]["state_narrative"]["count"], 4, "{}", a["china"]);
    let gap = a["pooled_gap"]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["measure"] == "state_narrative")
        .unwrap();
    assert!(gap["diff"].as_f64().unwrap() > 0.2, "{gap}");
    candor(dir.path())
        .args(["report", "--format", "html", "--out", "r.html"])
        .assert()
        .success();
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    let summary =
        &html[html.find("id=\"summary\"").unwrap()..html.find("id=\"heat-map\"").unwrap()];
    assert!(
        summary.contains(
            "China minus matched controls (same template, other governments), paired over"
        ) && summary.contains("state narrative +"),
        "the summary names the gap: {summary}"
    );
    std::fs::write(
        dir.path().join("gate.toml"),
        "[[rule]]\nname = \"official lines\"\nmetric = \"gap\"\nmeasure = \"state_narrative\"\nmax = 0.05\nuse = \"estimate\"\n",
    )
    .unwrap();
    candor(dir.path())
        .args(["gate", "1", "--config", "gate.toml"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("official lines"));
}

/// `candor export`: one JSON line per stored response, model text intact, verdicts that add up
/// to the report's figures.
#[test]
fn export_writes_every_response_with_its_probe_and_verdict() {
    let (dir, _s, _o) = fixture();
    candor(dir.path())
        .args(["export", "--out", "runs.jsonl"])
        .assert()
        .success()
        .stderr(predicate::str::contains("exported 72 responses of run 1"));
    let text = std::fs::read_to_string(dir.path().join("runs.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 72, "18 probes x 2 languages x 2 targets");
    assert!(!dir.path().join("runs.partial").exists());
    let strict = |r: &&Value| r["target"]["spec"].as_str().unwrap().contains("strict");
    let hostile = rows
        .iter()
        .find(|r| r["text"] == HOSTILE)
        .expect("the hostile answer, intact");
    assert_eq!(hostile["verdict"]["judge"], "learned@0.9");
    assert_eq!(hostile["schema"], 1);
    let china_refused = rows
        .iter()
        .filter(strict)
        .filter(|r| r["probe"]["focus"] == true && r["verdict"]["compliance"] == "refused")
        .count();
    assert_eq!(china_refused, 4, "as the JSON report counts");
    let filtered = rows
        .iter()
        .find(|r| r["outcome"] == "filtered_input")
        .unwrap();
    assert!(filtered["verdict"]["compliance"].is_null());
    assert_eq!(filtered["http_status"], 400);
    for r in &rows {
        for field in [
            "run",
            "probe",
            "lang",
            "sample",
            "prompt",
            "outcome",
            "latency_ms",
        ] {
            assert!(!r[field].is_null(), "{field} in {r}");
        }
        assert_eq!(r["run"]["suite"], "fixture");
    }
    parquet_reads_back_as_the_json_lines(dir.path(), &rows);
    // A run that is not there is named, and no file is left behind.
    candor(dir.path())
        .args(["export", "7", "--out", "none.jsonl"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no run 7"));
    assert!(!dir.path().join("none.jsonl").exists());
}

/// The Parquet export, read by pyarrow as a user of pandas or Hugging Face `datasets` would, holds
/// exactly the rows of the JSON lines: same fields, nested ones as structs, model text intact.
fn parquet_reads_back_as_the_json_lines(dir: &std::path::Path, rows: &[Value]) {
    candor(dir)
        .args(["export", "--format", "parquet", "--out", "runs.parquet"])
        .assert()
        .success()
        .stderr(predicate::str::contains("exported 72 responses of run 1"));
    let has_pyarrow = std::process::Command::new("python3")
        .args(["-c", "import pyarrow"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyarrow {
        assert!(
            std::env::var("CANDOR_REQUIRE_PYARROW").as_deref() != Ok("1"),
            "CANDOR_REQUIRE_PYARROW=1 but python3 cannot import pyarrow"
        );
        eprintln!("note: pyarrow is not installed; the Parquet file is not read back");
        return;
    }
    let script = "import json, sys, pyarrow.parquet as pq\n\
        t = pq.read_table(sys.argv[1])\n\
        print(json.dumps({'rows': t.num_rows, 'groups': pq.ParquetFile(sys.argv[1]).metadata.num_row_groups}))\n\
        for r in t.to_pylist(): print(json.dumps(r, ensure_ascii=False))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, "runs.parquet"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let head: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(head["rows"], 72);
    let read: Vec<Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(read.len(), rows.len());
    for (parquet, json) in read.iter().zip(rows) {
        assert_eq!(parquet, json);
    }
}
