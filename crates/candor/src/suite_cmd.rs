//! `candor suite`: list, show, count, check and import suites.

use std::path::PathBuf;

use candor_suite::import::{self, Format, Mapping};
use clap::{Args, Subcommand, ValueEnum};

use crate::Failure;

#[derive(Args)]
pub struct SuiteArgs {
    #[command(subcommand)]
    command: SuiteCommand,
}

#[derive(Subcommand)]
enum SuiteCommand {
    /// The built-in suites.
    List,
    /// One probe: its texts, key facts, markers, sources and its matched controls.
    Show {
        /// A probe id, e.g. protest-killings.cn.
        probe: String,
        #[arg(long, default_value = "core")]
        suite: String,
    },
    /// Counts by topic, subject, intent and language; templates missing controls.
    Stats {
        #[arg(default_value = "core")]
        suite: String,
        #[arg(long)]
        json: bool,
    },
    /// Every problem of a suite by file and line; exit 1 when there is any.
    Check {
        #[arg(default_value = "core")]
        suite: String,
    },
    /// Turn another dataset's prompts into a candor JSONL suite.
    Import(ImportArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportFormat {
    Csv,
    Jsonl,
    Lines,
}

#[derive(Args)]
struct ImportArgs {
    file: PathBuf,
    #[arg(long, value_enum)]
    format: ImportFormat,
    /// Which columns or fields hold id, prompt, topic, lang, e.g. prompt=question,id=qid.
    #[arg(long, value_delimiter = ',', value_name = "KEY=COLUMN")]
    map: Vec<String>,
    /// Where to write the suite (JSONL); standard output when omitted.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(args: SuiteArgs) -> Result<(), Failure> {
    match args.command {
        SuiteCommand::List => {
            for name in candor_suite::builtin_names() {
                let s = candor_suite::builtin(name).expect("listed");
                println!(
                    "{name}\t{}\t{} probes\t{}\t{}\t{}",
                    s.version,
                    s.probes.len(),
                    s.languages.join(","),
                    &s.hash[..12],
                    s.description
                );
            }
            Ok(())
        }
        SuiteCommand::Show { probe, suite } => show(&probe, &suite),
        SuiteCommand::Stats { suite, json } => {
            let s = candor_suite::load(&suite).map_err(Failure::usage)?;
            let stats = candor_suite::stats(&s);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&stats).expect("serialises")
                );
                return Ok(());
            }
            println!(
                "suite {} {} ({}): {} probes, {} requests per target",
                stats.suite,
                stats.version,
                &stats.hash[..12],
                stats.probes,
                stats.requests_per_target
            );
            println!(
                "China-sensitive topics ({}): {}",
                stats.topics.len(),
                stats.topics.join(", ")
            );
            let line = |name: &str, m: &std::collections::BTreeMap<String, usize>| {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("{name}: {}", parts.join(", "));
            };
            line("subjects", &stats.subjects);
            line("languages", &stats.languages);
            line("intents", &stats.intents);
            println!(
                "templates with a China probe: {}; fewest controls in one: {}; without controls: {}",
                stats.templates,
                stats.min_controls_per_template,
                if stats.templates_missing_controls.is_empty() { "none".to_string() } else { stats.templates_missing_controls.join(", ") }
            );
            Ok(())
        }
        SuiteCommand::Check { suite } => {
            let (file, text) = candor_suite::source(&suite).map_err(Failure::usage)?;
            let found = if file.ends_with(".jsonl") {
                match candor_suite::parse_jsonl(&file, &text) {
                    Ok(_) => candor_suite::SuiteError {
                        file,
                        diagnostics: Vec::new(),
                    },
                    Err(e) => e,
                }
            } else {
                candor_suite::check_toml(&file, &text)
            };
            if found.diagnostics.is_empty() {
                println!("{}: no problem found", found.file);
                Ok(())
            } else {
                println!("{found}");
                Err(Failure::run(format!(
                    "{} problems in {}",
                    found.diagnostics.len(),
                    found.file
                )))
            }
        }
        SuiteCommand::Import(args) => {
            let text = std::fs::read_to_string(&args.file)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", args.file.display())))?;
            let map = Mapping::new(&args.map).map_err(Failure::usage)?;
            let format = match args.format {
                ImportFormat::Csv => Format::Csv,
                ImportFormat::Jsonl => Format::Jsonl,
                ImportFormat::Lines => Format::Lines,
            };
            let rows = import::import(&args.file.display().to_string(), &text, format, &map)
                .map_err(Failure::usage)?;
            let jsonl = import::to_jsonl(&rows);
            match &args.out {
                Some(path) => {
                    std::fs::write(path, jsonl).map_err(|e| {
                        Failure::run(format!("cannot write {}: {e}", path.display()))
                    })?;
                    eprintln!(
                        "candor: {} prompts written to {}",
                        rows.len(),
                        path.display()
                    );
                }
                None => print!("{jsonl}"),
            }
            Ok(())
        }
    }
}

fn show(id: &str, suite: &str) -> Result<(), Failure> {
    let s = candor_suite::load(suite).map_err(Failure::usage)?;
    let Some(p) = s.probe(id) else {
        let near: Vec<&str> = s
            .probes
            .iter()
            .map(|p| p.id.as_str())
            .filter(|p| p.contains(id.split('.').next().unwrap_or(id)))
            .take(8)
            .collect();
        return Err(Failure::usage(format!(
            "suite {} has no probe '{id}'{}",
            s.id,
            if near.is_empty() {
                String::new()
            } else {
                format!(" (close: {})", near.join(", "))
            }
        )));
    };
    println!(
        "{}  topic {} · subject {} · intent {} · template {}",
        p.id,
        p.topic,
        p.subject.as_deref().unwrap_or("-"),
        p.intent.map_or("-", |i| i.as_str()),
        p.template.as_deref().unwrap_or("-")
    );
    for (lang, text) in &p.texts {
        println!("  [{lang}] {text}");
    }
    for f in &p.key_facts {
        println!("  fact {}: {}", f.id, f.statement);
        for (lang, pats) in &f.patterns {
            println!("    [{lang}] {}", pats.join("  |  "));
        }
    }
    for (lang, markers) in &p.markers {
        println!("  markers [{lang}]: {}", markers.join("; "));
    }
    for src in &p.sources {
        println!("  source: {src}");
    }
    let controls: Vec<&str> = s
        .probes
        .iter()
        .filter(|c| c.template.is_some() && c.template == p.template && c.id != p.id)
        .map(|c| c.id.as_str())
        .collect();
    if !controls.is_empty() {
        println!("  same template: {}", controls.join(", "));
    }
    Ok(())
}
