//! `candor narratives`: the catalogue of official lines that stance is read against.

use std::path::PathBuf;

use candor_judge::narratives::{Catalogue, Claim};
use clap::{Args, Subcommand};

use crate::Failure;

#[derive(Args)]
pub struct NarrativesArgs {
    #[command(subcommand)]
    command: NarrativesCommand,
}

#[derive(Subcommand)]
enum NarrativesCommand {
    /// Every government's claims, one a line.
    List,
    /// One claim in full: cues, phrases, the independent record's counter-claim, sources.
    Show {
        /// The claim's id, e.g. `cn.taiwan-part-of-china`.
        id: String,
    },
    /// Check catalogue files (the built-in catalogue when none is given): every problem with
    /// its file and line.
    Check { files: Vec<PathBuf> },
}

fn phrases(label: &str, by_language: &std::collections::BTreeMap<String, Vec<String>>) {
    for (lang, list) in by_language {
        println!("{label} ({lang}): {}", list.join(" | "));
    }
}

fn show(claim: &Claim) {
    println!(
        "{} · government {} · topic {}",
        claim.id, claim.government, claim.topic
    );
    phrases("cues", &claim.cues);
    phrases("asserts", &claim.asserts);
    if let Some(counter) = &claim.counter {
        println!("the independent record: {counter}");
    }
    for source in &claim.sources {
        println!("source: {source}");
    }
}

pub fn run(args: NarrativesArgs) -> Result<(), Failure> {
    match args.command {
        NarrativesCommand::List => {
            for government in &Catalogue::built_in().governments {
                println!(
                    "{} · {} · version {} · claims: {} · {}",
                    government.code,
                    government.name,
                    government.version,
                    government.claims.len(),
                    government.file
                );
                for (lang, names) in &government.names {
                    println!("  names ({lang}): {}", names.join(" | "));
                }
                for claim in &government.claims {
                    println!("  {:<34} {}", claim.id, claim.topic);
                }
            }
            Ok(())
        }
        NarrativesCommand::Show { id } => {
            let catalogue = Catalogue::built_in();
            let claim = catalogue.claim(&id).ok_or_else(|| {
                Failure::usage(format!(
                    "no claim '{id}' in the catalogue; `candor narratives list` shows them"
                ))
            })?;
            show(claim);
            Ok(())
        }
        NarrativesCommand::Check { files } => {
            let catalogue = if files.is_empty() {
                Catalogue::built_in().clone()
            } else {
                let texts = files
                    .iter()
                    .map(|f| {
                        std::fs::read_to_string(f)
                            .map(|t| (f.display().to_string(), t))
                            .map_err(|e| {
                                Failure::usage(format!("cannot read {}: {e}", f.display()))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Catalogue::from_files(texts).map_err(Failure::usage)?
            };
            for g in &catalogue.governments {
                let phrases: usize = g
                    .claims
                    .iter()
                    .map(|c| c.asserts.values().map(Vec::len).sum::<usize>())
                    .sum();
                println!(
                    "{}: ok · {} · claims: {}, asserting phrases: {phrases}, voice formulas: {}",
                    g.file,
                    g.code,
                    g.claims.len(),
                    g.voice.values().map(Vec::len).sum::<usize>()
                );
            }
            Ok(())
        }
    }
}
