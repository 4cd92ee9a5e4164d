//! `candor model bench`: prompt-processing and decode speed of the engine on one model, single
//! stream and batched, measured on the model itself (no server, no judge, no store).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::engine::{pick, Sampling};
use crate::model::{batch_row, row, Cache, Model};
use crate::LocalError;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub batch: usize,
    /// Timed repetitions of each measurement; the median is reported.
    pub repeats: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub file_bytes: u64,
    pub quantisation: String,
    pub threads: usize,
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub batch: usize,
    pub load_s: f64,
    /// Prompt processing, tokens per second.
    pub prompt_tok_s: f64,
    /// One sequence decoding, tokens per second.
    pub decode_tok_s: f64,
    /// `batch` sequences decoding together, tokens per second over all of them.
    pub batch_decode_tok_s: f64,
    /// Peak resident memory of the process, bytes.
    pub peak_rss_bytes: u64,
    /// Keys and values held at the end of the batched run, bytes.
    pub kv_cache_bytes: u64,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A prompt of exactly `n` tokens of ordinary English prose.
fn prompt(tokenizer: &crate::tokenizer::Tokenizer, n: usize) -> Vec<u32> {
    let text =
        "Describe the history of the city of Paris, its rivers, bridges and markets, in detail. "
            .repeat(n / 8 + 2);
    let mut ids = tokenizer.encode(&text, false);
    ids.truncate(n);
    ids
}

const GREEDY: Sampling = Sampling {
    temperature: None,
    top_p: None,
    seed: 0,
};

fn decode_steps(
    model: &Model,
    caches: &mut [Cache],
    first: Vec<u32>,
    steps: usize,
) -> Result<(), LocalError> {
    let mut tokens = first;
    let mut rng = fastrand::Rng::with_seed(0);
    for _ in 0..steps {
        let mut refs: Vec<&mut Cache> = caches.iter_mut().collect();
        let logits = model.decode(&tokens, &mut refs)?;
        tokens = (0..tokens.len())
            .map(|i| batch_row(&logits, i).map(|r| pick(&r, &GREEDY, &mut rng)))
            .collect::<candle_core::Result<_>>()?;
    }
    Ok(())
}

pub fn run(path: &Path, threads: usize, options: &BenchOptions) -> Result<BenchReport, LocalError> {
    let started = Instant::now();
    let loaded = crate::load(path)?;
    let load_s = started.elapsed().as_secs_f64();
    let model = &loaded.model;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| LocalError::Engine(e.to_string()))?;
    pool.install(|| {
        let tokens = prompt(&loaded.tokenizer, options.prompt_tokens);
        let limit = options.prompt_tokens + options.decode_tokens + 8;
        // Warm-up: first use lays out weights for the fast kernels.
        let mut warm = model.new_cache(limit, limit)?;
        model.prefill(&tokens[..tokens.len().min(16)], &mut warm)?;
        let repeats = options.repeats.max(1);
        let mut prompt_rates = Vec::new();
        for _ in 0..repeats {
            let mut cache = model.new_cache(limit, limit)?;
            let t = Instant::now();
            model.prefill(&tokens, &mut cache)?;
            prompt_rates.push(tokens.len() as f64 / t.elapsed().as_secs_f64());
        }
        let mut decode_rates = Vec::new();
        for _ in 0..repeats {
            let mut caches = vec![model.new_cache(limit, limit)?];
            let logits = model.prefill(&tokens[..8.min(tokens.len())], &mut caches[0])?;
            let first = pick(&row(&logits)?, &GREEDY, &mut fastrand::Rng::with_seed(0));
            let t = Instant::now();
            decode_steps(model, &mut caches, vec![first], options.decode_tokens)?;
            decode_rates.push(options.decode_tokens as f64 / t.elapsed().as_secs_f64());
        }
        let mut batch_rates = Vec::new();
        let mut kv_cache_bytes = 0;
        for _ in 0..repeats {
            let mut caches = Vec::new();
            let mut firsts = Vec::new();
            for b in 0..options.batch.max(1) {
                let mut cache = model.new_cache(limit, limit)?;
                // Distinct prompts of different lengths, as an audit's are.
                let start = b % 4;
                let logits = model.prefill(
                    &tokens[start..(start + 8 + b).min(tokens.len())],
                    &mut cache,
                )?;
                firsts.push(pick(
                    &row(&logits)?,
                    &GREEDY,
                    &mut fastrand::Rng::with_seed(0),
                ));
                caches.push(cache);
            }
            let t = Instant::now();
            decode_steps(model, &mut caches, firsts, options.decode_tokens)?;
            batch_rates
                .push((caches.len() * options.decode_tokens) as f64 / t.elapsed().as_secs_f64());
            kv_cache_bytes = caches
                .iter()
                .map(|c| model.cache_bytes(c.capacity()) as u64)
                .sum();
        }
        Ok(BenchReport {
            file_bytes: loaded.bytes,
            quantisation: loaded.quantisation.clone(),
            threads,
            prompt_tokens: tokens.len(),
            decode_tokens: options.decode_tokens,
            batch: options.batch.max(1),
            load_s,
            prompt_tok_s: median(prompt_rates),
            decode_tok_s: median(decode_rates),
            batch_decode_tok_s: median(batch_rates),
            peak_rss_bytes: peak_rss(),
            kv_cache_bytes,
        })
    })
}

/// The process's peak resident set, from /proc (Linux); 0 where unknown.
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
