//! candor's built-in local engine: a GGUF model on the CPU (candle), with its own tokenizer and
//! chat template read from the file, batched generation, and the model store that pulls known
//! models and checks every file against its pinned SHA-256.

pub mod bench;
pub mod engine;
pub mod model;
pub mod models;
pub mod target;
pub mod template;
pub mod testing;
pub mod tokenizer;
pub mod vnni;
pub mod widen;

pub use models::{known, Model as KnownModel, ModelStore, PullError, Source};
pub use target::{default_threads, load, LocalOptions, LocalTarget};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("not a usable GGUF: {0}")]
    Format(String),
    #[error("the local engine does not support {0}")]
    Unsupported(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("{0}")]
    Engine(String),
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error("tensor computation: {0}")]
    Candle(String),
}

impl From<candle_core::Error> for LocalError {
    fn from(e: candle_core::Error) -> LocalError {
        LocalError::Candle(message(&e))
    }
}

/// A candle error's message without the backtrace candle appends when `RUST_BACKTRACE` is
/// set: errors here are one line for the user.
pub fn message(e: &candle_core::Error) -> String {
    let text = e.to_string();
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let numbered = trimmed
            .split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if numbered && line.starts_with(' ') {
            break;
        }
        lines.push(line);
    }
    lines.join(" ").trim().to_string()
}

/// Sizes candle's compute pools (it reads `CANDLE_NUM_THREADS`, then `RAYON_NUM_THREADS`, and
/// otherwise parses /proc/cpuinfo on every matrix product, which halved decode speed). Call it
/// before any thread starts: the environment is not safe to change once threads run. A value
/// already in the environment wins unless `threads` is given.
pub fn size_thread_pools(threads: Option<usize>) {
    let n = threads.unwrap_or_else(|| {
        std::env::var("CANDLE_NUM_THREADS")
            .or_else(|_| std::env::var("RAYON_NUM_THREADS"))
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    });
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
}
