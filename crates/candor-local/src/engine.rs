//! The generation loop: one worker thread owns the model and serves requests in batches.
//! A request's prompt is processed as soon as a slot is free; then every active sequence
//! advances one token per step in a single batched pass, so an audit's many short prompts share
//! each read of the weights.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;

use crate::model::{batch_row, row, Cache, Model};
use crate::tokenizer::Tokenizer;
use crate::LocalError;

/// How to pick each next token.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// `None` or `<= 0`: greedy.
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Seeds the sampler; greedy decoding ignores it.
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-generation token.
    Stop,
    /// The token budget or the context ran out.
    Length,
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: Finish,
    pub prompt_tokens: usize,
    pub prefill_ms: f64,
    /// From the end of the prompt to the last token.
    pub decode_ms: f64,
}

struct Job {
    prompt: Vec<u32>,
    max_tokens: usize,
    sampling: Sampling,
    reply: tokio::sync::oneshot::Sender<Result<Generation, String>>,
}

struct Sequence {
    job: Job,
    cache: Cache,
    rng: fastrand::Rng,
    generated: Vec<u32>,
    prefill_ms: f64,
    decode_started: Instant,
}

/// A handle to the worker; dropping every handle ends it.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    pub tokenizer: Arc<Tokenizer>,
    pub max_len: usize,
}

impl Engine {
    /// Starts the worker with `threads` compute threads and up to `slots` sequences decoding
    /// together (at most [`crate::widen::MOST_DECODING_ROWS`]).
    pub fn start(
        model: Model,
        tokenizer: Arc<Tokenizer>,
        threads: usize,
        slots: usize,
    ) -> Result<Engine, LocalError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("candor-local-{i}"))
            .build()
            .map_err(|e| LocalError::Engine(format!("cannot start compute threads: {e}")))?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        let max_len = model.max_len();
        let worker_tokenizer = tokenizer.clone();
        std::thread::Builder::new()
            .name("candor-local".into())
            .spawn(move || {
                let slots = slots.clamp(1, crate::widen::MOST_DECODING_ROWS);
                pool.install(|| serve(&model, &worker_tokenizer, inbox, slots))
            })
            .map_err(|e| LocalError::Engine(format!("cannot start the engine thread: {e}")))?;
        Ok(Engine {
            jobs,
            tokenizer,
            max_len,
        })
    }

    /// Generates up to `max_tokens` after `prompt` (token ids).
    pub async fn generate(
        &self,
        prompt: Vec<u32>,
        max_tokens: usize,
        sampling: Sampling,
    ) -> Result<Generation, String> {
        if prompt.is_empty() {
            return Err("the prompt is empty".into());
        }
        if prompt.len() >= self.max_len {
            return Err(format!(
                "the prompt is {} tokens; the model's context is {}",
                prompt.len(),
                self.max_len
            ));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            prompt,
            max_tokens,
            sampling,
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| "the engine has stopped".to_string())?;
        answer
            .await
            .unwrap_or_else(|_| Err("the engine stopped before answering".into()))
    }
}

fn serve(model: &Model, tokenizer: &Tokenizer, inbox: mpsc::Receiver<Job>, slots: usize) {
    let mut active: Vec<Sequence> = Vec::new();
    loop {
        while active.len() < slots {
            let job = if active.is_empty() {
                match inbox.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            } else {
                match inbox.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            if job.reply.is_closed() {
                continue;
            }
            match prefill(model, &job) {
                Ok((cache, logits, prefill_ms)) => {
                    let mut seq = Sequence {
                        rng: fastrand::Rng::with_seed(job.sampling.seed),
                        job,
                        cache,
                        generated: Vec::new(),
                        prefill_ms,
                        decode_started: Instant::now(),
                    };
                    if let Err(e) = advance(&mut seq, &logits) {
                        let _ = seq.job.reply.send(Err(crate::message(&e)));
                        continue;
                    }
                    active.push(seq);
                }
                Err(e) => {
                    let _ = job.reply.send(Err(format!(
                        "prompt processing failed: {}",
                        crate::message(&e)
                    )));
                }
            }
        }
        active = finish_done(active, tokenizer);
        if active.is_empty() {
            continue;
        }
        let tokens: Vec<u32> = active
            .iter()
            .map(|s| *s.generated.last().expect("a started sequence has a token"))
            .collect();
        let logits = {
            let mut caches: Vec<&mut Cache> = active.iter_mut().map(|s| &mut s.cache).collect();
            model.decode(&tokens, &mut caches)
        };
        let stepped = logits.and_then(|logits| {
            for (i, seq) in active.iter_mut().enumerate() {
                let row = batch_row(&logits, i)?;
                let next = pick(&row, &seq.job.sampling, &mut seq.rng);
                seq.generated.push(next);
            }
            Ok(())
        });
        if let Err(e) = stepped {
            for seq in active.drain(..) {
                let _ = seq
                    .job
                    .reply
                    .send(Err(format!("decoding failed: {}", crate::message(&e))));
            }
        }
    }
}

/// Processes a job's prompt in a fresh cache: the cache, the logits after the prompt, and the
/// milliseconds it took.
fn prefill(model: &Model, job: &Job) -> candle_core::Result<(Cache, Tensor, f64)> {
    let started = Instant::now();
    let limit = (job.prompt.len() + job.max_tokens).min(model.max_len());
    let mut cache = model.new_cache(job.prompt.len() + 64, limit)?;
    let logits = model.prefill(&job.prompt, &mut cache)?;
    Ok((cache, logits, started.elapsed().as_secs_f64() * 1000.0))
}

fn advance(seq: &mut Sequence, logits: &Tensor) -> candle_core::Result<()> {
    let row = row(logits)?;
    let next = pick(&row, &seq.job.sampling, &mut seq.rng);
    seq.generated.push(next);
    Ok(())
}

/// Answers the sequences that are done and keeps the rest.
fn finish_done(active: Vec<Sequence>, tokenizer: &Tokenizer) -> Vec<Sequence> {
    let mut kept = Vec::with_capacity(active.len());
    for mut seq in active {
        let last = *seq
            .generated
            .last()
            .expect("a started sequence has a token");
        let finish = if tokenizer.end_of_generation.contains(&last) {
            seq.generated.pop();
            Some(Finish::Stop)
        } else if seq.generated.len() >= seq.job.max_tokens || seq.cache.len + 1 >= seq.cache.limit
        {
            Some(Finish::Length)
        } else {
            None
        };
        match finish {
            None if !seq.job.reply.is_closed() => kept.push(seq),
            None => {}
            Some(finish) => {
                let generation = Generation {
                    text: tokenizer.decode(&seq.generated),
                    prompt_tokens: seq.job.prompt.len(),
                    prefill_ms: seq.prefill_ms,
                    decode_ms: seq.decode_started.elapsed().as_secs_f64() * 1000.0,
                    tokens: std::mem::take(&mut seq.generated),
                    finish,
                };
                let _ = seq.job.reply.send(Ok(generation));
            }
        }
    }
    kept
}

/// The next token: the most likely one, or a draw from the nucleus at the temperature.
pub fn pick(logits: &[f32], sampling: &Sampling, rng: &mut fastrand::Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0 as u32
    };
    let temperature = match sampling.temperature {
        Some(t) if t > 0.0 && t.is_finite() => t as f32,
        _ => return argmax(),
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut weights: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u32, ((v - max) / temperature).exp()))
        .filter(|(_, w)| *w > 1e-9)
        .collect();
    weights.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    let total: f32 = weights.iter().map(|w| w.1).sum();
    let top_p = sampling
        .top_p
        .filter(|p| *p > 0.0 && *p < 1.0)
        .unwrap_or(1.0) as f32;
    let mut kept = 0.0;
    let mut cut = weights.len();
    for (i, (_, w)) in weights.iter().enumerate() {
        kept += w;
        if kept >= top_p * total {
            cut = i + 1;
            break;
        }
    }
    weights.truncate(cut.max(1));
    let mass: f32 = weights.iter().map(|w| w.1).sum();
    let mut draw = rng.f32() * mass;
    for (id, w) in &weights {
        if draw < *w {
            return *id;
        }
        draw -= w;
    }
    weights.last().map_or_else(argmax, |w| w.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit_and_sampling_is_seeded() {
        let logits = [0.1, 2.5, -1.0, 2.4];
        let greedy = Sampling {
            temperature: None,
            top_p: None,
            seed: 1,
        };
        assert_eq!(pick(&logits, &greedy, &mut fastrand::Rng::with_seed(9)), 1);
        let warm = Sampling {
            temperature: Some(1.0),
            top_p: None,
            seed: 1,
        };
        let draws = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..50)
                .map(|_| pick(&logits, &warm, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        let seen: std::collections::HashSet<u32> = draws(7).into_iter().collect();
        assert!(seen.contains(&1) && seen.contains(&3), "{seen:?}");
        // A small nucleus keeps only the top token.
        let narrow = Sampling {
            temperature: Some(1.0),
            top_p: Some(0.1),
            seed: 1,
        };
        let mut rng = fastrand::Rng::with_seed(3);
        assert!((0..50).all(|_| pick(&logits, &narrow, &mut rng) == 1));
    }
}
