//! `candor judge`: judge a file of exchanges, score the judge against gold labels, and judge a
//! stored run again.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candor_core::{Compliance, Probe, Stance, Suite};
use candor_judge::eval::{gold_label, gold_stance, Class, Confusion, Scores};
use candor_judge::learned::{LearnedJudge, LearnedModel, ModelInfo, TrainConfig};
use candor_judge::{Judge, RulesJudge};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use candor_audit::exchanges::{
    cross_validated_lines, labelled_only, learned_examples, read_files, read_rows, rows_of_values,
    verdict_lines, Fields, Row, RowReader,
};

use crate::Failure;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JudgeArgs {
    #[command(subcommand)]
    command: Option<JudgeCommand>,
    #[command(flatten)]
    file: FileArgs,
}

#[derive(Subcommand)]
enum JudgeCommand {
    /// Score the judge against gold labels: confusion matrix, precision, recall, F1, kappa.
    Eval(EvalArgs),
    /// Train the learned judge on labelled answers and write its model file.
    Train(TrainArgs),
}

#[derive(Args)]
struct TrainArgs {
    /// JSONL files of labelled exchanges (repeat), read as `judge eval --gold` reads them.
    #[arg(long, value_name = "FILE", required = true)]
    gold: Vec<PathBuf>,
    /// Where to write the model (`--judge learned:FILE` reads it).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Field names of the input, e.g. `prompt=question`. `second_label=FIELD` names a second
    /// labeller's label: rows it reads differently are left out of training.
    #[arg(long, value_delimiter = ',', value_name = "KEY=FIELD")]
    map: Vec<String>,
    /// The suite whose probes (by the `probe` field) give key facts and markers.
    #[arg(long, default_value = "core")]
    suite: String,
    /// Passes over the data.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
}

#[derive(Args)]
struct FileArgs {
    /// JSONL of exchanges: `id`, `prompt`, `response`, optional `lang`, `reasoning`, `probe`.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Where to write one verdict a line.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    fields: FieldArgs,
}

#[derive(Args)]
struct FieldArgs {
    /// Field names of the input, e.g. `prompt=question,response=completion,lang=language`.
    /// For `judge eval --cv`, `second_label=FIELD` names a second labeller's label: rows it
    /// reads differently are still scored, but teach no fold. A `finish_reason` of "length" or
    /// "max_tokens" reads the answer as cut off at the token limit, as an audit does.
    #[arg(long, value_delimiter = ',', value_name = "KEY=FIELD")]
    map: Vec<String>,
    /// The suite whose probes (by the `probe` field) give key facts and markers.
    #[arg(long, default_value = "core")]
    suite: String,
    #[command(flatten)]
    judge: JudgeChoice,
}

/// Which judge decides: the learned judge by default.
#[derive(Args, Clone, Default)]
pub struct JudgeChoice {
    /// `learned` (default, offline: the rules judge's reading weighed by a model trained on
    /// labelled answers; `learned:FILE` for one trained by `candor judge train`), `rules` (the
    /// numbered rules alone), `llm:PROVIDER/MODEL[@URL]` (a model applies the rubric),
    /// or `ensemble:PROVIDER/MODEL[@URL]` (the rules judge, and the model where the rules are
    /// unsure). Repeat for a panel: the majority decides and disagreement is flagged (rule P2).
    #[arg(long = "judge", value_name = "JUDGE")]
    pub specs: Vec<String>,
    /// Questions in flight to an LLM judge.
    #[arg(long, default_value_t = 8)]
    pub judge_concurrency: usize,
}

impl JudgeChoice {
    /// The judge chosen, reading key facts and markers from `suite`; LLM judges keep their
    /// verdicts in the store at `cache`, where given.
    pub fn build(&self, suite: &Suite, cache: Option<&Path>) -> Result<Box<dyn Judge>, Failure> {
        candor_audit::judging::JudgeSpec {
            specs: self.specs.clone(),
            concurrency: self.judge_concurrency,
        }
        .build(suite, cache)
    }
}

#[derive(Args)]
struct EvalArgs {
    /// JSONL of exchanges with a gold label (field `label`, or `--map label=FIELD`); repeat for
    /// several files. Labels: candid/evasive/refused, or SpeechMap's COMPLETE/EVASIVE/DENIAL, or
    /// XSTest's 1_full_compliance/3_partial_refusal/2_full_refusal; ERROR_* rows are left out.
    /// Fields fall back to SpeechMap's and XSTest's names (`question`, `completion`,
    /// `final_label`, `question_id`).
    #[arg(long, value_name = "FILE", required_unless_present = "labels")]
    gold: Vec<PathBuf>,
    /// Also score against the labels people gave in the dashboard (`candor serve`), read from
    /// the store (each labeller's newest label of each answer).
    #[arg(long)]
    labels: bool,
    /// Grouped K-fold cross-validation of the learned judge: each fold is judged by a model
    /// trained on the other folds (and on `--train`), never on its own questions.
    #[arg(long, value_name = "K")]
    cv: Option<usize>,
    /// Repeat the cross-validation over this many assignments of questions to folds and show
    /// each language's macro-F1 over them (mean, lowest, highest): with few questions, one
    /// split's figure moves by a point or two with the split alone.
    #[arg(long, default_value_t = 1, value_name = "N")]
    cv_splits: u64,
    /// The field that groups rows into one question for `--cv` (default: `question_id`, else
    /// the probe's template, else the prompt).
    #[arg(long, value_name = "FIELD")]
    group: Option<String>,
    /// More labelled files that train every fold but are not scored; their rows of a question
    /// under test are left out of that fold's training.
    #[arg(long, value_name = "FILE")]
    train: Vec<PathBuf>,
    #[command(flatten)]
    fields: FieldArgs,
    /// How many disagreements to list. Each is named by its row's `id`; a row without one, by
    /// its line number in its own file, counted from 1.
    #[arg(long, default_value_t = 20)]
    disagreements: usize,
    /// Write the confusion matrix for `candor report --confusion`.
    #[arg(long, value_name = "FILE")]
    confusion_out: Option<PathBuf>,
    /// Write the scores as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Shows each skipped line on stderr; returns how many there were.
fn say_skipped(skipped: Vec<String>) -> usize {
    for line in &skipped {
        eprintln!("{line}");
    }
    skipped.len()
}

/// A second label that `--map` names but no row holds is most likely a misspelt field: every
/// row then teaches, which the user should know.
fn say_if_no_second_label<'r>(map: &[String], mut rows: impl Iterator<Item = &'r Row>) {
    let named = map
        .iter()
        .find_map(|pair| pair.strip_prefix("second_label="));
    if let Some(field) = named {
        if !rows.any(|row| row.second_label.is_some()) {
            eprintln!("candor: --map second_label={field}: no row holds the field '{field}', so every row teaches");
        }
    }
}

/// Rows judged together when a file is streamed.
const JUDGED_AT_ONCE: usize = 1024;

fn suite_probes(name: &str) -> Result<Suite, Failure> {
    candor_suite::load(name).map_err(Failure::usage)
}

pub fn run(store_path: &Path, args: JudgeArgs) -> Result<(), Failure> {
    match args.command {
        Some(JudgeCommand::Eval(eval)) => return run_eval(store_path, eval),
        Some(JudgeCommand::Train(train)) => return run_train(train),
        None => {}
    }
    let (Some(input), Some(output)) = (&args.file.input, &args.file.output) else {
        return Err(Failure::usage(
            "give --input IN.jsonl and --output OUT.jsonl, or use `candor judge eval --gold FILE`",
        ));
    };
    let fields = Fields::new(&args.file.fields.map)?;
    let suite = suite_probes(&args.file.fields.suite)?;
    let probes: HashMap<&str, &Probe> = suite.probes.iter().map(|p| (p.id.as_str(), p)).collect();
    let judge = args.file.fields.judge.build(&suite, None)?;
    let facts = RulesJudge::new().with_suite(&suite);
    let reader = RowReader::open(input, &fields)?;
    let file = std::fs::File::create(output)
        .map_err(|e| Failure::run(format!("cannot write {}: {e}", output.display())))?;
    let mut out = BufWriter::new(file);
    let written =
        |e: std::io::Error| Failure::run(format!("cannot write {}: {e}", output.display()));
    // Streamed in chunks: memory stays flat whatever the file's size, and an LLM judge still
    // gets a chunk's questions at once.
    let (mut judged, mut skipped) = (0usize, Vec::new());
    let mut chunk = Vec::with_capacity(JUDGED_AT_ONCE);
    let mut reader = reader.peekable();
    while let Some(item) = reader.next() {
        match item? {
            Ok(row) => chunk.push(row),
            Err(message) => skipped.push(message),
        }
        if chunk.len() == JUDGED_AT_ONCE || (reader.peek().is_none() && !chunk.is_empty()) {
            for line in verdict_lines(judge.as_ref(), &facts, &probes, &chunk) {
                writeln!(out, "{line}").map_err(written)?;
            }
            judged += chunk.len();
            chunk.clear();
        }
    }
    out.flush().map_err(written)?;
    let skipped = say_skipped(skipped);
    eprintln!(
        "candor: judged {judged} exchanges into {}; {skipped} malformed lines skipped",
        output.display()
    );
    Ok(())
}

fn run_train(args: TrainArgs) -> Result<(), Failure> {
    let fields = Fields::new(&args.map)?;
    let suite = suite_probes(&args.suite)?;
    let probes: HashMap<&str, &Probe> = suite.probes.iter().map(|p| (p.id.as_str(), p)).collect();
    let rules = RulesJudge::new().with_suite(&suite);
    let mut rows = Vec::new();
    let mut trained_on = Vec::new();
    for path in &args.gold {
        let (file_rows, skipped) = read_rows(path, &fields)?;
        let skipped = say_skipped(skipped);
        let (mut file_rows, unlabelled) = labelled_only(file_rows);
        let labelled = file_rows.len();
        file_rows.retain(Row::labellers_agree);
        eprintln!(
            "{}: {} labelled rows ({unlabelled} without a known label, {skipped} malformed, {} that a second labeller read differently)",
            path.display(),
            file_rows.len(),
            labelled - file_rows.len()
        );
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        trained_on.push(format!("{name}: {}", file_rows.len()));
        rows.extend(file_rows);
    }
    if rows.is_empty() {
        return Err(Failure::usage("no labelled rows to train on"));
    }
    say_if_no_second_label(&args.map, rows.iter());
    let (_, examples) = learned_examples(&rules, &probes, &rows);
    let config = TrainConfig {
        epochs: args.epochs,
        ..TrainConfig::default()
    };
    let info = ModelInfo {
        id: LearnedJudge::ID.to_string(),
        trained_on,
        ..ModelInfo::default()
    };
    let model = LearnedModel::train(&examples, config, info);
    let bytes = model.to_bytes();
    std::fs::write(&args.out, &bytes)
        .map_err(|e| Failure::run(format!("cannot write {}: {e}", args.out.display())))?;
    eprintln!(
        "candor: trained {} on {} examples, {} passes; {} bytes written to {}",
        LearnedJudge::ID,
        examples.len(),
        args.epochs,
        bytes.len(),
        args.out.display()
    );
    Ok(())
}

fn run_eval(store_path: &Path, args: EvalArgs) -> Result<(), Failure> {
    let mut map = args.fields.map.clone();
    if let Some(group) = &args.group {
        map.push(format!("group={group}"));
    }
    let fields = Fields::new(&map)?;
    let suite = suite_probes(&args.fields.suite)?;
    let probes: HashMap<&str, &Probe> = suite.probes.iter().map(|p| (p.id.as_str(), p)).collect();
    let facts = RulesJudge::new().with_suite(&suite);
    let (mut rows, mut skipped) = read_files(&args.gold, &fields)?;
    if args.labels {
        let store = crate::report::open_store(store_path)?;
        let gold = candor_audit::labels::gold_lines(store.as_ref(), None, None)?;
        let (labelled, bad) = rows_of_values(&gold, "the store's labels", &fields);
        rows.extend(labelled);
        skipped.extend(bad);
    }
    let skipped = say_skipped(skipped);
    let mut confusion = Confusion::default();
    let mut stances = Confusion::<Stance>::default();
    let mut by_language: std::collections::BTreeMap<String, (Confusion, Confusion)> =
        Default::default();
    let mut disagreements = Vec::new();
    let mut stance_disagreements = Vec::new();
    let (mut unscored, mut no_stance) = (0, 0);
    let mut unknown_stances: Vec<&str> = Vec::new();
    let (rows, unlabelled) = labelled_only(rows);
    let mut split_scores: Vec<BTreeMap<String, f64>> = Vec::new();
    let (judge_id, lines) = match args.cv {
        Some(k) => {
            if !args.fields.judge.specs.is_empty() {
                return Err(Failure::usage(
                    "--cv trains and scores the learned judge; leave out --judge",
                ));
            }
            let (extra, skipped) = read_files(&args.train, &fields)?;
            say_skipped(skipped);
            let (extra, _) = labelled_only(extra);
            say_if_no_second_label(&map, rows.iter().chain(&extra));
            let silent = rows
                .iter()
                .chain(&extra)
                .filter(|r| !r.labellers_agree())
                .count();
            if silent > 0 {
                println!("{silent} rows teach no fold: a second labeller (--map second_label) read them differently; those of --gold are still scored");
            }
            let lines = cross_validated_lines(&facts, &probes, &rows, &extra, k, 0)?;
            for split in 1..args.cv_splits {
                let more = cross_validated_lines(&facts, &probes, &rows, &extra, k, split)?;
                split_scores.push(macro_f1_by_language(&rows, &more));
            }
            if args.cv_splits > 1 {
                split_scores.insert(0, macro_f1_by_language(&rows, &lines));
            }
            (
                format!("{} ({k}-fold grouped cross-validation)", LearnedJudge::ID),
                lines,
            )
        }
        None => {
            if !args.train.is_empty() {
                return Err(Failure::usage("--train goes with --cv"));
            }
            let judge = args.fields.judge.build(&suite, None)?;
            let lines = verdict_lines(judge.as_ref(), &facts, &probes, &rows);
            (judge.id().to_string(), lines)
        }
    };
    let gold_names = args
        .gold
        .iter()
        .map(|p| p.display().to_string())
        .chain(args.labels.then(|| "the store's labels".to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    for (row, line) in rows.iter().zip(&lines) {
        let gold = row.label.as_deref().and_then(gold_label).expect("labelled");
        let rule = line["rule"].as_str().unwrap_or("").to_string();
        // Stance is scored where the gold data gives one and the judge gives one (it gives none
        // to a refusal, or where the probe has no markers); the rest are counted apart.
        if row.stance.is_some() && row.stance.as_deref().and_then(gold_stance).is_none() {
            unknown_stances.push(row.id.as_str());
        }
        if let Some(gold_stance) = row.stance.as_deref().and_then(gold_stance) {
            match line["stance"]
                .as_str()
                .and_then(|s| s.parse::<Stance>().ok())
            {
                Some(judged) => {
                    stances.add(gold_stance, judged);
                    if gold_stance != judged {
                        stance_disagreements.push((row, gold_stance, judged, rule.clone()));
                    }
                }
                None => no_stance += 1,
            }
        }
        let Some(judged) = line["compliance"]
            .as_str()
            .and_then(|c| c.parse::<Compliance>().ok())
        else {
            unscored += 1;
            continue;
        };
        confusion.add(gold, judged);
        let language = by_language.entry(row.lang.clone()).or_default();
        language.0.add(gold, judged);
        if let Some(said) = line["rules_compliance"]
            .as_str()
            .and_then(|c| c.parse::<Compliance>().ok())
        {
            language.1.add(gold, said);
        }
        if gold != judged {
            disagreements.push((row, gold, judged, rule));
        }
    }
    let scores = confusion.compliance_scores();
    println!("judge {judge_id} on {gold_names}: {} items ({unlabelled} without a known label, {unscored} unscored, {skipped} malformed lines)", scores.items);
    print_scores(&confusion, &scores);
    println!(
        "\nby language       items  accuracy  macro-F1  kappa{}",
        if args.cv.is_some() {
            "   (rules on the same rows: macro-F1)"
        } else {
            ""
        }
    );
    let mut languages = serde_json::Map::new();
    for (lang, (judged, rules)) in &by_language {
        let s = judged.compliance_scores();
        let rules_f1 = (rules.total() > 0).then(|| rules.compliance_scores().macro_f1);
        println!(
            "{lang:<16} {:>6}  {:>8.3}  {:>8.3}  {:>5.3}{}",
            s.items,
            s.accuracy,
            s.macro_f1,
            s.kappa,
            rules_f1.map(|f| format!("   {f:.3}")).unwrap_or_default()
        );
        languages.insert(
            lang.clone(),
            json!({"scores": s, "confusion": judged.matrix, "rules_macro_f1": rules_f1}),
        );
    }
    if !split_scores.is_empty() {
        println!(
            "\nmacro-F1 over {} assignments of questions to folds: mean (lowest-highest)",
            split_scores.len()
        );
        for lang in split_scores[0].keys() {
            let values: Vec<f64> = split_scores
                .iter()
                .filter_map(|s| s.get(lang))
                .copied()
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let low = values.iter().copied().fold(f64::INFINITY, f64::min);
            let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            println!("{lang:<16} {mean:.3} ({low:.3}-{high:.3})");
            if let Some(entry) = languages.get_mut(lang) {
                entry["splits"] = json!({"macro_f1": values, "mean": mean});
            }
        }
    }
    print_rule_errors(&disagreements);
    print_disagreements(&disagreements, args.disagreements);
    if let Some(first) = unknown_stances.first() {
        eprintln!(
            "{gold_names}: {} stance labels left out, not independent, mixed or state_narrative (first: item {first})",
            unknown_stances.len()
        );
    }
    let stance_scores = (stances.total() > 0).then(|| stances.scores());
    if let Some(stance_scores) = &stance_scores {
        println!(
            "
stance: {} items with a gold stance and the judge's ({no_stance} with a gold stance the judge gave none)",
            stance_scores.items
        );
        print_scores(&stances, stance_scores);
        print_disagreements(&stance_disagreements, args.disagreements);
    }
    if let Some(path) = &args.confusion_out {
        let value = json!({"labels": ["candid", "evasive", "refused"], "matrix": confusion.matrix, "judge": judge_id, "gold": gold_names});
        std::fs::write(
            path,
            serde_json::to_string_pretty(&value).expect("serialises") + "\n",
        )
        .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(path) = &args.json {
        let mut value = json!({"judge": judge_id, "gold": gold_names, "confusion": confusion.matrix, "scores": scores, "languages": languages});
        if let Some(stance_scores) = stance_scores {
            value["stance"] = json!({"confusion": stances.matrix, "scores": stance_scores, "without_judge_stance": no_stance});
        }
        std::fs::write(
            path,
            serde_json::to_string_pretty(&value).expect("serialises") + "\n",
        )
        .map_err(|e| Failure::run(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

fn print_scores<C: Class>(confusion: &Confusion<C>, scores: &Scores) {
    let names = C::ALL.map(|c| c.name());
    println!(
        "\nrows gold, columns judge  {}",
        names.map(|n| format!("{n:>15}")).join(" ")
    );
    for (i, name) in names.iter().enumerate() {
        let m = confusion.matrix[i];
        println!("{name:<25} {:>15} {:>15} {:>15}", m[0], m[1], m[2]);
    }
    println!("\nclass            precision  recall  f1     support");
    for c in &scores.classes {
        println!(
            "{:<15}  {:>9.3}  {:>6.3}  {:>5.3}  {:>7}",
            c.label, c.precision, c.recall, c.f1, c.support
        );
    }
    let refusals = scores
        .refusal_accuracy
        .map(|r| format!("  refused-vs-rest accuracy {r:.3}"))
        .unwrap_or_default();
    println!(
        "\naccuracy {:.3}  macro-F1 {:.3}  Cohen's kappa {:.3}{refusals}",
        scores.accuracy, scores.macro_f1, scores.kappa
    );
}

/// Which rule decided the verdicts that disagree with gold, in the rubric's words: where the
/// judge goes wrong.
fn print_rule_errors<C: Class>(disagreements: &[(&Row, C, C, String)]) {
    let mut by_rule: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, _, _, rule) in disagreements {
        *by_rule.entry(rule.as_str()).or_default() += 1;
    }
    if by_rule.is_empty() {
        return;
    }
    let mut rows: Vec<(&str, usize)> = by_rule.into_iter().collect();
    rows.sort_by_key(|&(rule, n)| (std::cmp::Reverse(n), rule));
    println!("\ndisagreements by the rule that decided:");
    for (rule, n) in rows {
        let words = match rule.parse::<candor_judge::Rule>() {
            Ok(r) => {
                let when: String = r.entry().when.chars().take(70).collect();
                format!("{}: {when}", r.label().map_or("unscored", |c| c.as_str()))
            }
            Err(_) if rule == "L1" => "the learned model overruled the rules".to_string(),
            Err(_) => "not a rule of the rubric".to_string(),
        };
        println!("  {rule:<4} {n:>5}  {words}");
    }
}

fn print_disagreements<C: Class>(disagreements: &[(&Row, C, C, String)], limit: usize) {
    if disagreements.is_empty() || limit == 0 {
        return;
    }
    println!(
        "\ndisagreements ({} in all, first {}):",
        disagreements.len(),
        limit.min(disagreements.len())
    );
    for (row, gold, judged, rule) in disagreements.iter().take(limit) {
        let text: String = row
            .response
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(100)
            .collect();
        println!(
            "  {}: gold {} judge {} ({rule}): {text}",
            row.id,
            gold.name(),
            judged.name()
        );
    }
}

#[derive(Args)]
pub struct RejudgeArgs {
    /// The stored run to judge again.
    run: i64,
    #[command(flatten)]
    judge: JudgeChoice,
}

/// Judges every stored answer of a run again (the judge's verdicts replace its earlier ones)
/// and prints the run's figures.
pub fn rejudge(store_path: &Path, args: RejudgeArgs) -> Result<(), Failure> {
    let mut store = crate::report::open_store(store_path)?;
    store.run(args.run).map_err(Failure::usage)?;
    let probes = store.probes(args.run).map_err(Failure::run)?;
    let suite = Suite::new(
        "stored".into(),
        "0".into(),
        String::new(),
        Vec::new(),
        probes,
    );
    let judge = args.judge.build(&suite, Some(store_path))?;
    let judged =
        candor_audit::judging::judge_run(store.as_mut(), args.run, judge.as_ref(), &suite)?;
    let id = judge.id().to_string();
    // The judge's patterns and model are done with: the figures reuse their memory.
    drop(judge);
    eprintln!(
        "candor: run {}: {judged} answers judged again by {id}",
        args.run
    );
    crate::summary::emit(store.as_ref(), args.run, &id, false, None)
}

/// Each language's compliance macro-F1 of one set of verdict lines.
fn macro_f1_by_language(rows: &[Row], lines: &[Value]) -> BTreeMap<String, f64> {
    let mut by_language: BTreeMap<String, Confusion> = BTreeMap::new();
    for (row, line) in rows.iter().zip(lines) {
        let gold = row.label.as_deref().and_then(gold_label).expect("labelled");
        if let Some(judged) = line["compliance"]
            .as_str()
            .and_then(|c| c.parse::<Compliance>().ok())
        {
            by_language
                .entry(row.lang.clone())
                .or_default()
                .add(gold, judged);
        }
    }
    by_language
        .into_iter()
        .map(|(lang, c)| (lang, c.compliance_scores().macro_f1))
        .collect()
}
