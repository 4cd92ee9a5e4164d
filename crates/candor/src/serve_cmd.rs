//! `candor serve` (the dashboard) and `candor labels export` (people's labels as gold).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use candor_server::dashboard::{serve, DashboardConfig};
use clap::{Args, Subcommand};

use crate::Failure;

#[derive(Args)]
pub struct ServeArgs {
    /// Where to listen. Off loopback, a token is required: set CANDOR_TOKEN.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// The port on 127.0.0.1 (a short form of --listen).
    #[arg(long, conflicts_with = "listen")]
    port: Option<u16>,
}

pub fn serve_dashboard(store_path: &Path, args: ServeArgs) -> Result<(), Failure> {
    let listen = match args.port {
        Some(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        None => args.listen,
    };
    let token = std::env::var("CANDOR_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if !listen.ip().is_loopback() && token.is_none() {
        return Err(Failure::usage(format!(
            "serving on {listen}, off loopback, needs a token: set CANDOR_TOKEN (people then log in with it)"
        )));
    }
    let store = crate::report::open_store(store_path)?;
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::run)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Failure::run(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(Failure::run)?;
        eprintln!(
            "candor serve: http://{addr}/ over {}{}",
            candor_store::location_name(store_path),
            if token.is_some() {
                " (token required)"
            } else {
                ""
            }
        );
        let config = DashboardConfig {
            listen: addr,
            token,
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(config, store, listener, shutdown)
            .await
            .map_err(Failure::run)
    })
}

#[derive(Args)]
pub struct LabelsArgs {
    #[command(subcommand)]
    command: LabelsCommand,
}

#[derive(Subcommand)]
enum LabelsCommand {
    /// Write people's labels as gold (JSONL), the format `candor judge eval` and `candor judge
    /// train` read: each labeller's newest label of each answer.
    Export(LabelsExportArgs),
}

#[derive(Args)]
struct LabelsExportArgs {
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Only this run's answers (default: every run's).
    #[arg(long, value_name = "RUN")]
    run: Option<i64>,
    /// Only this labeller's labels.
    #[arg(long, value_name = "NAME")]
    labeller: Option<String>,
}

pub fn labels(store_path: &Path, args: LabelsArgs) -> Result<(), Failure> {
    let LabelsCommand::Export(args) = args.command;
    let store = crate::report::open_store(store_path)?;
    let lines =
        candor_audit::labels::gold_lines(store.as_ref(), args.run, args.labeller.as_deref())?;
    let mut out = Vec::new();
    for line in &lines {
        serde_json::to_writer(&mut out, line).map_err(Failure::run)?;
        out.push(b'\n');
    }
    let partial = args.out.with_extension("partial");
    std::fs::File::create(&partial)
        .and_then(|mut f| f.write_all(&out))
        .and_then(|_| std::fs::rename(&partial, &args.out))
        .map_err(|e| Failure::run(format!("cannot write {}: {e}", args.out.display())))?;
    eprintln!(
        "candor: {} labels written to {}",
        lines.len(),
        args.out.display()
    );
    Ok(())
}
