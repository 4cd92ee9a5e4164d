//! `candor proxy`: the guard in front of a model's endpoint (`candor-server`'s proxy).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candor_core::Suite;
use candor_server::proxy::metrics::Metrics;
use candor_server::proxy::record::Recorder;
use candor_server::proxy::{serve, ProxyConfig, ProxyState};
use clap::Args;

use crate::judge_cmd::JudgeChoice;
use crate::Failure;

#[derive(Args)]
pub struct ProxyArgs {
    /// The endpoint guarded, e.g. `http://127.0.0.1:8000/v1` (OpenAI-compatible) or
    /// `https://api.anthropic.com`; each request's path is appended to it.
    #[arg(long, value_name = "URL")]
    upstream: String,
    /// Where clients connect.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    listen: SocketAddr,
    /// A TOML policy: per compliance, stance, language and topic, `log`, `annotate`, `flag` or
    /// `block`. Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The share of exchanges recorded in the store (every one is judged and counted).
    #[arg(long, default_value_t = 1.0, value_name = "SHARE")]
    sample: f64,
    /// Record only hashes of the user's and the model's text, with the verdict.
    #[arg(long)]
    redact: bool,
    /// The largest request body forwarded, in bytes; larger ones get HTTP 413.
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    max_body: usize,
    /// Exchanges waiting to be recorded before new ones are dropped (and counted).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    queue: usize,
    /// Continue this proxy run instead of starting one.
    #[arg(long, value_name = "RUN")]
    run: Option<i64>,
    /// Judge and count only; record nothing.
    #[arg(long)]
    no_record: bool,
    #[command(flatten)]
    judge: JudgeChoice,
}

pub fn run(store_path: &Path, args: ProxyArgs) -> Result<(), Failure> {
    if !(0.0..=1.0).contains(&args.sample) {
        return Err(Failure::usage(format!(
            "--sample {}: a share between 0 and 1",
            args.sample
        )));
    }
    reqwest_url(&args.upstream)?;
    let suite = Suite::new(
        "proxy".into(),
        "1".into(),
        String::new(),
        Vec::new(),
        Vec::new(),
    );
    let judge = args.judge.build(&suite, Some(store_path))?;
    let metrics = Arc::new(Metrics::default());
    let recorder = match args.no_record {
        true => None,
        false => {
            let store = candor_store::open(store_path).map_err(|e| Failure::run(e.to_string()))?;
            Some(
                Recorder::start(
                    store,
                    &args.upstream,
                    args.run,
                    args.queue,
                    args.redact,
                    metrics.clone(),
                )
                .map_err(Failure::usage)?,
            )
        }
    };
    let config = ProxyConfig {
        upstream: args.upstream.clone(),
        policy: args.policy.clone(),
        sample: args.sample,
        redact: args.redact,
        max_body: args.max_body,
    };
    let state =
        Arc::new(ProxyState::new(&config, judge, recorder, metrics).map_err(Failure::usage)?);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::run(e.to_string()))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", args.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::run(e.to_string()))?;
        match state.run_id() {
            Some(run) => eprintln!(
                "candor proxy: listening on http://{addr}, guarding {}, recording run {run} in {}",
                args.upstream,
                candor_store::location_name(store_path)
            ),
            None => eprintln!(
                "candor proxy: listening on http://{addr}, guarding {}, recording nothing",
                args.upstream
            ),
        }
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(state.clone(), listener, shutdown)
            .await
            .map_err(|e| Failure::run(format!("the proxy stopped: {e}")))
    })?;
    // Dropping the state drains the record queue into the store.
    drop(runtime);
    drop(state);
    Ok(())
}

fn reqwest_url(url: &str) -> Result<(), Failure> {
    match url.split_once("://") {
        Some(("http" | "https", rest)) if !rest.is_empty() => Ok(()),
        _ => Err(Failure::usage(format!(
            "--upstream {url}: an http:// or https:// URL"
        ))),
    }
}
