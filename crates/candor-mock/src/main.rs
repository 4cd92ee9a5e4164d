//! `candor-mock`: the scripted OpenAI-compatible server, for demos and benchmarks.

use anyhow::Context;
use candor_mock::Script;
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "A scripted OpenAI-compatible server on loopback")]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// A JSON script of rules (see candor-mock's docs); the built-in demo script otherwise.
    #[arg(long)]
    script: Option<std::path::PathBuf>,
    /// Latency added to every reply, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut script = match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("bad script {}", path.display()))?
        }
        None => Script::canned(),
    };
    if let Some(ms) = args.latency_ms {
        script.latency_ms = ms;
    }
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    println!("listening on http://{}/v1", listener.local_addr()?);
    candor_mock::serve(listener, script).await?;
    Ok(())
}
