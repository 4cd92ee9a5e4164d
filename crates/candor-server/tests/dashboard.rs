//! The dashboard over a real SQLite store, over HTTP on loopback: pages, escaping, the
//! Content-Security-Policy, 404s without panics, CSRF, the token, and blind labelling.

use std::collections::BTreeMap;

use candor_core::{
    Compliance, Intent, Outcome, Probe, Request, Response, SamplingParams, Suite, Verdict,
};
use candor_store::Store;

pub const HOSTILE: &str =
    "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"> 天安门";

struct Server {
    base: String,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
}

fn probe(id: &str, subject: &str) -> Probe {
    Probe {
        id: id.into(),
        topic: "protest-killings".into(),
        subject: Some(subject.into()),
        intent: Some(Intent::Fact),
        template: Some("protest-killings".into()),
        focus: None,
        texts: BTreeMap::from([("en".into(), format!("What happened ({id})?"))]),
        key_facts: vec![],
        markers: BTreeMap::new(),
        sources: vec![],
    }
}

/// A run of three answers (one hostile, one a megabyte on one line), judged by `rules@test`.
fn fill(store: &mut dyn Store) -> Vec<i64> {
    let suite = Suite::new(
        "fixture".into(),
        "1".into(),
        String::new(),
        vec!["en".into()],
        vec![
            probe("p.cn", "cn"),
            probe("p.us", "us"),
            probe("p.uk", "uk"),
        ],
    );
    let run = store.create_run(&suite, &serde_json::json!({})).unwrap();
    let target = store
        .add_target(run, 0, &serde_json::json!({"spec": "openai/m", "provider": "openai", "model": "m", "base_url": "http://x"}))
        .unwrap();
    store.put_probes(&suite).unwrap();
    let texts = [
        HOSTILE.to_string(),
        "x".repeat(1 << 20),
        "An ordinary answer about Derry.".to_string(),
    ];
    let items: Vec<(Request, Response)> = suite
        .probes
        .iter()
        .zip(texts)
        .map(|(p, text)| {
            (
                Request {
                    probe_id: p.id.clone(),
                    lang: "en".into(),
                    sample: 0,
                    system: None,
                    prompt: p.texts["en"].clone(),
                    params: SamplingParams::default(),
                },
                Response {
                    outcome: Outcome::Ok,
                    text,
                    ..Response::default()
                },
            )
        })
        .collect();
    candor_store::test_support::insert_exchanges(store, run, target, "openai/m", &items).unwrap();
    let ids: Vec<i64> = store.responses(run).unwrap().iter().map(|r| r.id).collect();
    let verdicts: Vec<(i64, Verdict)> = ids
        .iter()
        .map(|id| {
            (
                *id,
                Verdict {
                    judge: "rules@test".into(),
                    compliance: Some(Compliance::Evasive),
                    stance: None,
                    fact_recall: None,
                    rule: "R8-secret-verdict".into(),
                    rationale: String::new(),
                },
            )
        })
        .collect();
    store.insert_verdicts(&verdicts).unwrap();
    store.finish_run(run, "done").unwrap();
    ids
}

fn start(token: Option<&str>) -> (Server, Vec<i64>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let mut store = candor_store::open(&db).unwrap();
    let ids = fill(store.as_mut());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let config = candor_server::dashboard::DashboardConfig {
        listen: addr,
        token: token.map(str::to_string),
    };
    runtime.spawn(candor_server::dashboard::serve(
        config,
        store,
        listener,
        std::future::pending(),
    ));
    (
        Server {
            base: format!("http://{addr}"),
            _runtime: runtime,
            _dir: dir,
            db,
        },
        ids,
    )
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn get(s: &Server, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = client().get(format!("{}{path}", s.base)).send().unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, r.text().unwrap(), headers)
}

fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

#[test]
fn pages_show_model_text_as_text_under_a_strict_policy() {
    let (s, ids) = start(None);
    let (status, runs, headers) = get(&s, "/");
    assert_eq!(status, 200);
    assert!(
        runs.contains("fixture") && runs.contains("openai/m") && runs.contains("rules@test"),
        "{runs}"
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );

    let (status, overview, _) = get(&s, "/runs/1");
    assert_eq!(status, 200, "{overview}");
    assert!(overview.contains("Judge: rules@test"), "{overview}");

    for page in ["/runs/1/answers", &format!("/answers/{}", ids[0])] {
        let (status, body, _) = get(&s, page);
        assert_eq!(status, 200);
        assert!(
            !body.contains("<script>window") && !body.contains("<img src=x"),
            "{page} lets markup through"
        );
        assert!(
            body.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;"),
            "{page}"
        );
        assert!(body.contains("天安门"), "{page}");
    }
    // Filters and search, bookmarkable in the URL.
    let (_, found, _) = get(&s, "/runs/1/answers?q=DERRY");
    assert!(
        found.contains("1 answers") && found.contains("ordinary answer"),
        "{found}"
    );
    let (_, found, _) = get(
        &s,
        "/runs/1/answers?q=%E5%A4%A9%E5%AE%89%E9%97%A8&compliance=evasive",
    );
    assert!(found.contains("1 answers"), "{found}");
    let (_, none, _) = get(&s, "/runs/1/answers?compliance=refused");
    assert!(none.contains("0 answers"), "{none}");
    // The megabyte-long answer is shortened in the table and whole on its page.
    let (_, long, _) = get(&s, &format!("/answers/{}", ids[1]));
    assert!(long.contains(&"x".repeat(1 << 20)));
}

#[test]
fn bad_ids_and_pages_are_404s_and_the_server_goes_on() {
    let (s, _) = start(None);
    for path in [
        "/answers/999999",
        "/answers/abc",
        "/answers/-3",
        "/runs/42",
        "/runs/x/answers",
        "/runs/1/answers?page=99",
        "/runs/1/answers?page=0",
        "/runs/1/answers?page=zz",
        "/label?run=9",
    ] {
        let (status, body, _) = get(&s, path);
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert_eq!(get(&s, "/").0, 200);
}

#[test]
fn labels_are_blind_and_posts_need_the_csrf_token() {
    let (s, ids) = start(None);
    let (status, form, _) = get(&s, "/label?run=1&labeller=ana");
    assert_eq!(status, 200);
    assert!(
        !form.contains("R8-secret-verdict") && !form.contains("rules@test"),
        "the verdict shows before the label: {form}"
    );
    let shown: i64 = {
        let at = form.find("name=\"response\" value=\"").unwrap() + 23;
        form[at..at + form[at..].find('"').unwrap()]
            .parse()
            .unwrap()
    };
    assert!(ids.contains(&shown));
    let csrf = csrf_of(&form);
    let post = |fields: &[(&str, &str)]| {
        client()
            .post(format!("{}/label", s.base))
            .form(fields)
            .send()
            .unwrap()
    };
    let id = shown.to_string();
    let no_token = post(&[
        ("response", &id),
        ("labeller", "ana"),
        ("compliance", "candid"),
    ]);
    assert_eq!(
        no_token.status().as_u16(),
        422,
        "a form without its token is refused"
    );
    let wrong = post(&[
        ("csrf", "forged"),
        ("response", &id),
        ("labeller", "ana"),
        ("compliance", "candid"),
    ]);
    assert_eq!(wrong.status().as_u16(), 403);
    let unnamed = post(&[
        ("csrf", &csrf),
        ("response", &id),
        ("labeller", " "),
        ("compliance", "candid"),
    ]);
    assert_eq!(unnamed.status().as_u16(), 400);
    let saved = post(&[
        ("csrf", &csrf),
        ("response", &id),
        ("labeller", "ana"),
        ("compliance", "candid"),
        ("stance", "independent"),
        ("note", "<b>fine</b>"),
    ]);
    assert_eq!(saved.status().as_u16(), 303);
    let to = saved.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        to,
        format!("/answers/{shown}?saved=1&labeller=ana&mode=random")
    );
    let (_, after, _) = get(&s, &to);
    assert!(
        after.contains("R8-secret-verdict") && after.contains("Label saved"),
        "{after}"
    );
    assert!(after.contains("&lt;b&gt;fine&lt;/b&gt;"));
    // The queue moves on; another labeller meets the same answer first, for agreement.
    let (_, next, _) = get(&s, "/label?run=1&labeller=ana");
    assert!(!next.contains(&format!("name=\"response\" value=\"{shown}\"")));
    let (_, other, _) = get(&s, "/label?run=1&labeller=bo");
    let bo_csrf = csrf_of(&other);
    let bo = post(&[
        ("csrf", &bo_csrf),
        ("response", &id),
        ("labeller", "bo"),
        ("compliance", "evasive"),
    ]);
    assert_eq!(bo.status().as_u16(), 303);
    let (_, overview, _) = get(&s, "/runs/1");
    assert!(
        overview.contains("ana · bo") && overview.contains("Cohen"),
        "{overview}"
    );

    let store = candor_store::open(&s.db).unwrap();
    let labels = store.labels(Some(1)).unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(
        (labels[0].labeller.as_str(), labels[0].compliance),
        ("ana", Some(Compliance::Candid))
    );
}

#[test]
fn the_disagreement_queue_offers_only_answers_two_judges_label_differently() {
    let (s, ids) = start(None);
    let (_, before, _) = get(&s, "/label?run=1&labeller=cy&mode=disagreement");
    assert!(
        before.contains("id=\"done\""),
        "one judge, no disagreement: {before}"
    );
    // A second judge, written by another process, differs from the first on one answer only.
    let mut store = candor_store::open(&s.db).unwrap();
    let second = |id: i64, c: Compliance| {
        (
            id,
            Verdict {
                judge: "other@test".into(),
                compliance: Some(c),
                stance: None,
                fact_recall: None,
                rule: "X".into(),
                rationale: String::new(),
            },
        )
    };
    store
        .insert_verdicts(&[
            second(ids[0], Compliance::Evasive),
            second(ids[2], Compliance::Refused),
        ])
        .unwrap();
    let (status, form, _) = get(&s, "/label?run=1&labeller=cy&mode=disagreement");
    assert_eq!(status, 200);
    assert!(
        form.contains(&format!("name=\"response\" value=\"{}\"", ids[2])),
        "{form}"
    );
    assert!(form.contains("1 answers left"), "{form}");
    assert!(form.contains("name=\"mode\" value=\"disagreement\""));
    let (_, stratified, _) = get(&s, "/label?run=1&labeller=cy&mode=stratified");
    assert!(stratified.contains("3 answers left"), "{stratified}");
    assert_eq!(get(&s, "/label?run=1&mode=nope").0, 400);
    // The answers list filters the same disagreement, and by the probes' intent; the filters
    // stay in the form and the page links.
    let (_, disputed, _) = get(&s, "/runs/1/answers?disputed=1");
    assert!(disputed.contains("1 answers; page 1 of 1"), "{disputed}");
    assert!(
        disputed.contains(&format!("href=\"/answers/{}\"", ids[2])),
        "{disputed}"
    );
    assert!(
        disputed.contains("name=\"disputed\" value=\"1\" checked"),
        "{disputed}"
    );
    let (_, facts, _) = get(&s, "/runs/1/answers?intent=fact");
    assert!(facts.contains("3 answers; page 1 of 1"), "{facts}");
    assert!(
        facts.contains("<option value=\"fact\" selected>"),
        "{facts}"
    );
    let (_, none, _) = get(&s, "/runs/1/answers?intent=opinion&disputed=1");
    assert!(none.contains("0 answers"), "{none}");
}

#[test]
fn a_run_in_progress_reloads_itself_and_shows_what_is_stored_so_far() {
    let (s, _) = start(None);
    let (_, done, _) = get(&s, "/runs/1");
    assert!(!done.contains("http-equiv=\"refresh\""), "{done}");
    assert!(done.contains("Status: done, 3 responses"), "{done}");
    // Another process reopens the run and queues work for workers.
    let mut store = candor_store::open(&s.db).unwrap();
    store.set_status(1, "running").unwrap();
    let target = store.targets(1).unwrap()[0].id;
    let work: Vec<candor_store::WorkItem> = (1..=4)
        .map(|n| candor_store::WorkItem {
            target_id: target,
            probe_id: "p.cn".into(),
            lang: "en".into(),
            sample: n,
        })
        .collect();
    store.add_work(1, &work).unwrap();
    let (status, live, _) = get(&s, "/runs/1");
    assert_eq!(status, 200);
    assert!(
        live.contains("<meta http-equiv=\"refresh\" content=\"2\">"),
        "{live}"
    );
    assert!(
        live.contains("3 responses stored so far; 4 requests waiting, 0 leased to 0 workers"),
        "{live}"
    );
    store.finish_run(1, "done").unwrap();
    let (_, after, _) = get(&s, "/runs/1");
    assert!(!after.contains("http-equiv"), "{after}");
}

#[test]
fn the_overview_follows_verdicts_another_process_stores() {
    let (s, ids) = start(None);
    let (_, first, _) = get(&s, "/runs/1");
    // All three answers evasive, in one topic: its heat-map cell is full.
    assert!(first.contains(">100%</a>"), "{first}");
    assert_eq!(
        get(&s, "/runs/1").1,
        first,
        "the same store gives the same page"
    );
    // Another process judges one answer again with the same judge: candid now.
    let mut store = candor_store::open(&s.db).unwrap();
    let candid = Verdict {
        judge: "rules@test".into(),
        compliance: Some(Compliance::Candid),
        stance: None,
        fact_recall: None,
        rule: "R9".into(),
        rationale: String::new(),
    };
    store.insert_verdicts(&[(ids[0], candid.clone())]).unwrap();
    let (_, again, _) = get(&s, "/runs/1");
    assert!(again.contains(">67%</a>"), "the cell moves: {again}");
    // A new judge's verdicts: the overview reads them, as the run's last judge.
    let other: Vec<(i64, Verdict)> = ids
        .iter()
        .map(|id| {
            let v = Verdict {
                judge: "other@2".into(),
                ..candid.clone()
            };
            (*id, v)
        })
        .collect();
    store.insert_verdicts(&other).unwrap();
    let (_, latest, _) = get(&s, "/runs/1");
    assert!(latest.contains("Judge: other@2"), "{latest}");
}

#[test]
fn the_compare_page_pairs_two_sides_and_names_a_bad_one() {
    let (s, _) = start(None);
    let (status, form, _) = get(&s, "/compare");
    assert_eq!(status, 200);
    assert!(form.contains("id=\"compare-form\"") && !form.contains("id=\"comparison\""));
    // A run against itself: every answer pairs with itself, no difference.
    let (status, page, _) = get(&s, "/compare?a=1&b=1:1");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"comparison\""), "{page}");
    assert!(page.contains("<td>all</td><td>non_candid</td><td class=\"num\">100%</td><td class=\"num\">100%</td><td class=\"num\">+0"), "{page}");
    let (status, bad, _) = get(&s, "/compare?a=x&b=1");
    assert_eq!(status, 400);
    assert!(bad.contains("is not RUN or RUN:N"), "{bad}");
    assert_eq!(get(&s, "/compare?a=1:7&b=1").0, 400);
}

#[test]
fn a_probe_page_sets_the_probe_beside_its_controls_and_answers_escape() {
    let (s, ids) = start(None);
    let (status, page, _) = get(&s, "/runs/1/probes/p.us");
    assert_eq!(status, 200, "{page}");
    // The probe of interest first, then the controls; each with its answers and verdicts.
    let (cn, uk, us) = (
        page.find("<h2>p.cn").unwrap(),
        page.find("<h2>p.uk").unwrap(),
        page.find("<h2>p.us (this probe)").unwrap(),
    );
    assert!(cn < uk && uk < us, "{page}");
    assert!(
        page.contains(&format!("href=\"/answers/{}\"", ids[0])),
        "{page}"
    );
    assert!(page.contains("rule R8-secret-verdict"), "{page}");
    assert!(
        !page.contains("<script>window.pwned"),
        "model text is escaped"
    );
    assert!(page.contains("&lt;script&gt;"), "{page}");
    // The answers page links each probe there and filters by it.
    let (_, answers, _) = get(&s, "/runs/1/answers?probe=p.uk");
    assert!(
        answers.contains("href=\"/runs/1/probes/p.uk\""),
        "{answers}"
    );
    assert!(
        answers.contains("Derry") && !answers.contains("pwned"),
        "{answers}"
    );
    assert_eq!(get(&s, "/runs/1/probes/nope").0, 404);
    assert_eq!(get(&s, "/runs/9/probes/p.cn").0, 404);
}

#[test]
fn a_topic_page_lists_its_probes_with_their_answers_by_verdict() {
    let (s, _) = start(None);
    let (_, overview, _) = get(&s, "/runs/1");
    assert!(
        overview.contains("href=\"/runs/1/topics/protest-killings\""),
        "{overview}"
    );
    let (status, page, _) = get(&s, "/runs/1/topics/protest-killings");
    assert_eq!(status, 200, "{page}");
    // Three probes, the one of interest first, each with its one evasive answer.
    let cn = page.find("href=\"/runs/1/probes/p.cn\"").unwrap();
    let uk = page.find("href=\"/runs/1/probes/p.uk\"").unwrap();
    assert!(cn < uk, "{page}");
    assert_eq!(
        page.matches("<td class=\"num\">0</td><td class=\"num\">1</td><td class=\"num\">0</td>")
            .count(),
        3,
        "{page}"
    );
    assert_eq!(get(&s, "/runs/1/topics/nothing-here").0, 404);
}

#[test]
fn a_token_guards_every_page_and_the_login_sets_it() {
    let (s, _) = start(Some("s3cret-token"));
    let (status, _, headers) = get(&s, "/");
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/login");
    let ok = client()
        .get(format!("{}/runs/1", s.base))
        .bearer_auth("s3cret-token")
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let wrong = client()
        .get(format!("{}/", s.base))
        .bearer_auth("s3cret-tokeN")
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 303);
    let (_, login, _) = get(&s, "/login");
    let csrf = csrf_of(&login);
    let refused = client()
        .post(format!("{}/login", s.base))
        .form(&[("csrf", csrf.as_str()), ("token", "guess")])
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let logged = client()
        .post(format!("{}/login", s.base))
        .form(&[("csrf", csrf.as_str()), ("token", "s3cret-token")])
        .send()
        .unwrap();
    assert_eq!(logged.status().as_u16(), 303);
    let cookie = logged.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap();
    let in_ = client()
        .get(format!("{}/", s.base))
        .header("cookie", pair)
        .send()
        .unwrap();
    assert_eq!(in_.status().as_u16(), 200);
}

/// A headless Chromium driven over the DevTools protocol: commands out, their answers and the
/// page's events (console, exceptions, requests) in.
struct Browser {
    child: std::process::Child,
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next: u64,
    events: Vec<serde_json::Value>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Option<Browser> {
        let chromium = std::path::Path::new("/usr/bin/chromium");
        if !chromium.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have chromium: .ci/run installs it"
            );
            eprintln!("skipped: /usr/bin/chromium is not installed");
            return None;
        }
        let profile = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1280,1600",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Chromium writes the port it chose into the profile.
        let active = profile.path().join("DevToolsActivePort");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&active)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.parse::<u16>().ok()))
            {
                break port;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromium did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let targets: serde_json::Value =
            reqwest::blocking::get(format!("http://127.0.0.1:{port}/json/list"))
                .unwrap()
                .json()
                .unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let (socket, _) =
            tungstenite::connect(page["webSocketDebuggerUrl"].as_str().unwrap()).unwrap();
        let mut browser = Browser {
            child,
            socket,
            next: 0,
            events: Vec::new(),
            _profile: profile,
        };
        for domain in ["Page", "Runtime", "Network", "Log"] {
            browser.call(&format!("{domain}.enable"), serde_json::json!({}));
        }
        Some(browser)
    }

    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next += 1;
        let id = self.next;
        let message = serde_json::json!({"id": id, "method": method, "params": params});
        self.socket
            .send(tungstenite::Message::text(message.to_string()))
            .unwrap();
        loop {
            let text = match self.socket.read().unwrap() {
                tungstenite::Message::Text(t) => t.to_string(),
                _ => continue,
            };
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
            self.events.push(value);
        }
    }

    /// Waits for the page to finish loading (after a navigation or a form's submission).
    fn loaded(&mut self) {
        let seen = self.events.len();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.events[seen..]
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the page never loaded"
            );
            let value = match self.socket.read().unwrap() {
                tungstenite::Message::Text(t) => serde_json::from_str(&t).unwrap(),
                _ => continue,
            };
            self.events.push(value);
        }
    }

    fn open(&mut self, url: &str) {
        self.call("Page.navigate", serde_json::json!({ "url": url }));
        self.loaded();
    }

    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    fn key(&mut self, key: &str) {
        let (text, code) = match key {
            "Enter" => ("\r", 13),
            k => (k, k.to_ascii_uppercase().chars().next().unwrap() as u32),
        };
        self.call("Input.dispatchKeyEvent", serde_json::json!({"type": "keyDown", "key": key, "text": text, "windowsVirtualKeyCode": code}));
        self.call(
            "Input.dispatchKeyEvent",
            serde_json::json!({"type": "keyUp", "key": key, "windowsVirtualKeyCode": code}),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tests the issue names, in a real browser: the runs page, a probe's answer, three answers
/// labelled with the keyboard (the verdict hidden until saved), the labels kept across a
/// reload, hostile model text shown as text with no console error and no request off loopback,
/// and a screenshot.
#[test]
fn a_person_labels_three_answers_with_the_keyboard_in_chromium() {
    let Some(mut browser) = Browser::start() else {
        return;
    };
    let (s, ids) = start(None);
    browser.open(&format!("{}/", s.base));
    assert_eq!(
        browser.eval("document.querySelectorAll('#runs tbody tr').length"),
        1
    );
    // The overview draws the report's heat map, coloured by the stylesheet alone: the page's
    // policy allows no inline style.
    browser.open(&format!("{}/runs/1", s.base));
    let cell = "getComputedStyle(document.querySelector('table.heat-map td.heat a').parentElement).backgroundColor";
    let colour = browser.eval(cell);
    assert!(
        colour.as_str().is_some_and(|c| c.starts_with("rgb(")),
        "{colour}"
    );
    assert!(
        browser
            .eval("document.querySelectorAll('svg.forest').length")
            .as_u64()
            >= Some(1)
    );
    browser.open(&format!("{}/runs/1/answers", s.base));
    assert_eq!(
        browser.eval("document.querySelectorAll('#answers tbody tr').length"),
        3
    );
    browser.open(&format!("{}/answers/{}", s.base, ids[0]));
    assert_eq!(
        browser.eval("document.getElementById('answer-text').textContent"),
        HOSTILE
    );
    assert_eq!(
        browser.eval("typeof window.pwned"),
        "undefined",
        "the answer's script ran"
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('main img').length"),
        0
    );

    let mut labelled = Vec::new();
    for (compliance, stance) in [("c", "i"), ("e", "m"), ("r", "s")] {
        browser.open(&format!("{}/label?run=1&labeller=ana", s.base));
        let text = browser
            .eval("document.body.innerText")
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            !text.contains("R8-secret-verdict") && !text.contains("rules@test"),
            "the verdict shows before the label"
        );
        labelled.push(browser.eval("document.querySelector('input[name=response]').value"));
        browser.key(compliance);
        browser.key(stance);
        let before = browser.events.len();
        browser.key("Enter");
        if !browser.events[before..]
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            browser.loaded();
        }
        let saved = browser
            .eval("document.body.innerText")
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            saved.contains("Label saved") && saved.contains("R8-secret-verdict"),
            "{saved}"
        );
    }
    browser.open(&format!("{}/label?run=1&labeller=ana", s.base));
    assert!(
        browser.eval("document.getElementById('done') !== null") == true,
        "three answers, three labels"
    );
    // After a reload the labels are still there, as the store keeps them.
    browser.call("Page.reload", serde_json::json!({}));
    browser.loaded();
    let store = candor_store::open(&s.db).unwrap();
    let kept: Vec<(String, Option<&str>, Option<&str>)> = store
        .labels(Some(1))
        .unwrap()
        .iter()
        .map(|l| {
            (
                l.response_id.to_string(),
                l.compliance.map(|c| c.as_str()),
                l.stance.map(|s| s.as_str()),
            )
        })
        .collect();
    assert_eq!(kept.len(), 3);
    let got: Vec<&str> = kept.iter().map(|k| k.1.unwrap()).collect();
    assert_eq!(got, ["candid", "evasive", "refused"]);
    let stances: Vec<&str> = kept.iter().map(|k| k.2.unwrap()).collect();
    assert_eq!(stances, ["independent", "mixed", "state_narrative"]);
    for (k, shown) in kept.iter().zip(&labelled) {
        assert_eq!(shown.as_str(), Some(k.0.as_str()));
    }

    let shot = browser.call(
        "Page.captureScreenshot",
        serde_json::json!({"format": "png"}),
    );
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 2000);
    std::fs::write(std::env::temp_dir().join("candor-dashboard.png"), png).unwrap();

    for e in &browser.events {
        let method = e["method"].as_str().unwrap_or("");
        assert_ne!(method, "Runtime.exceptionThrown", "{e}");
        if method == "Runtime.consoleAPICalled" {
            assert_ne!(e["params"]["type"], "error", "{e}");
        }
        if method == "Log.entryAdded" {
            assert_ne!(e["params"]["entry"]["level"], "error", "{e}");
        }
        if method == "Network.requestWillBeSent" {
            let url = e["params"]["request"]["url"].as_str().unwrap();
            assert!(
                url.starts_with(&s.base) || url == "about:blank",
                "a request left loopback: {url}"
            );
        }
    }
}
