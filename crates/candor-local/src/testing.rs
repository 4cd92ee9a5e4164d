//! A tiny GGUF with random weights, written by tests: a real file through the real loader,
//! tokenizer, template and engine, small enough to run anywhere in milliseconds.

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// A pulled model's verified file for a test that needs it, or `None` (with a note) where it
/// is not pulled. Aliases listed in `CANDOR_REQUIRE_MODELS` (comma-separated; `.ci/run` sets
/// it) must be there: a test that needs one fails instead of skipping.
pub fn pulled_model(alias: &str) -> Option<std::path::PathBuf> {
    let required = std::env::var("CANDOR_REQUIRE_MODELS").unwrap_or_default();
    match crate::ModelStore::from_env().path(alias) {
        Ok(path) => Some(path),
        Err(e) if required.split(',').any(|r| r.trim() == alias) => {
            panic!("{alias} is required here but unavailable: {e}")
        }
        Err(e) => {
            eprintln!("skipped: {alias} is not pulled ({e}); `candor model pull {alias}`");
            None
        }
    }
}

/// Which tiny model to write.
#[derive(Debug, Clone, Copy)]
pub enum Tiny {
    /// qwen2 layout with Q/K/V biases, Q5_0 and Q8_0 weights, a qwen2 pre-tokenizer.
    Qwen2,
    /// llama layout with Q4_1 weights (SmolLM2's), a tied output matrix, a smollm pre-tokenizer.
    Llama,
    /// gemma3 layout (six layers, one of them global, a sliding window of 4, per-head and
    /// post norms, wider attention than the model), a SentencePiece vocabulary, no template.
    Gemma3,
}

/// Gemma's head width in the tiny model: attention is twice as wide as the residual stream.
const GEMMA_HEAD_DIM: usize = 32;

/// A SentencePiece vocabulary: control tokens, the 256 byte tokens, then scored pieces.
fn sentencepiece_vocab() -> (Vec<String>, Vec<Value>, Vec<Value>) {
    let mut tokens: Vec<String> = [
        "<pad>",
        "<eos>",
        "<bos>",
        "<start_of_turn>",
        "<end_of_turn>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut types = vec![Value::I32(3); tokens.len()];
    let mut scores = vec![Value::F32(0.0); tokens.len()];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(Value::I32(6));
        scores.push(Value::F32(0.0));
    }
    let mut pieces: Vec<String> = ('a'..='z').chain('A'..='Z').map(String::from).collect();
    pieces.extend(["▁", "▁t", "he", "▁the", "in", "▁in", "▁a", "at"].map(String::from));
    for piece in pieces {
        // Longer pieces score higher, so they win merges.
        scores.push(Value::F32(piece.chars().count() as f32 - 10.0));
        tokens.push(piece);
        types.push(Value::I32(1));
    }
    (tokens, types, scores)
}

const EMBED: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const FF: usize = 128;
const LAYERS: usize = 2;
pub const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

fn random(rng: &mut fastrand::Rng, rows: usize, cols: usize, scale: f32) -> Tensor {
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| (rng.f32() - 0.5) * 2.0 * scale)
        .collect();
    Tensor::from_vec(values, (rows, cols), &Device::Cpu).expect("shape fits")
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
}

/// Writes the model to `path`; the same `seed` writes the same bytes.
pub fn write_tiny_gguf(path: &Path, kind: Tiny, seed: u64) -> candle_core::Result<()> {
    write_tiny_gguf_with(path, kind, seed, &[])
}

/// As [`write_tiny_gguf`], with some metadata replaced (to write broken or unusual files).
pub fn write_tiny_gguf_with(
    path: &Path,
    kind: Tiny,
    seed: u64,
    replaced: &[(&str, Value)],
) -> candle_core::Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed);
    // Byte-level vocabulary: the 256 byte characters, a few merges, then the control tokens.
    let byte_chars = crate::tokenizer::byte_chars();
    let mut tokens: Vec<String> = byte_chars.iter().map(|c| c.to_string()).collect();
    let merges: Vec<(String, String)> = [
        ("Ġ", "t"),
        ("h", "e"),
        ("Ġt", "he"),
        ("i", "n"),
        ("Ġ", "in"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    for (a, b) in &merges {
        tokens.push(format!("{a}{b}"));
    }
    let mut types = vec![Value::I32(1); tokens.len()];
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.to_string());
        types.push(Value::I32(3));
    }
    let (arch, pre, matrix_type) = match kind {
        Tiny::Qwen2 => ("qwen2", "qwen2", GgmlDType::Q5_0),
        Tiny::Llama => ("llama", "smollm", GgmlDType::Q4_1),
        Tiny::Gemma3 => ("gemma3", "default", GgmlDType::Q5_0),
    };
    let gemma = matches!(kind, Tiny::Gemma3);
    let layers = if gemma { 6 } else { LAYERS };
    let head_dim = if gemma { GEMMA_HEAD_DIM } else { EMBED / HEADS };
    let merges_text: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let key = |k: &str| format!("{arch}.{k}");
    let mut tokenizer: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        ("tokenizer.ggml.merges".into(), strings(&merges_text)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        (
            "tokenizer.chat_template".into(),
            Value::String(CHATML.into()),
        ),
    ];
    let (eos, bos) = ((tokens.len() - 1) as u32, (tokens.len() - 3) as u32);
    let (tokens, types, eos, bos) = if gemma {
        let (spm_tokens, spm_types, scores) = sentencepiece_vocab();
        tokenizer = vec![
            ("tokenizer.ggml.model".into(), Value::String("llama".into())),
            ("tokenizer.ggml.scores".into(), Value::Array(scores)),
            ("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)),
            ("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)),
            (key("attention.key_length"), Value::U32(head_dim as u32)),
            (key("attention.value_length"), Value::U32(head_dim as u32)),
            (key("attention.sliding_window"), Value::U32(4)),
        ];
        (spm_tokens, spm_types, 1, 2)
    } else {
        (tokens, types, eos, bos)
    };
    let vocab = tokens.len();
    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String(format!("tiny-{arch}"))),
        (key("block_count"), Value::U32(layers as u32)),
        (key("context_length"), Value::U32(512)),
        (key("embedding_length"), Value::U32(EMBED as u32)),
        (key("feed_forward_length"), Value::U32(FF as u32)),
        (key("attention.head_count"), Value::U32(HEADS as u32)),
        (key("attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (key("rope.freq_base"), Value::F32(10_000.0)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        ("tokenizer.ggml.tokens".into(), strings(&tokens)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(eos)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(bos)),
    ];
    metadata.extend(tokenizer);
    let metadata: Vec<(String, Value)> = metadata
        .into_iter()
        .filter(|(k, _)| !replaced.iter().any(|(r, _)| r == k))
        .chain(replaced.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .collect();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut add = |name: String, t: Tensor, dtype: GgmlDType| -> candle_core::Result<()> {
        tensors.push((name, QTensor::quantize(&t, dtype)?));
        Ok(())
    };
    add(
        "token_embd.weight".into(),
        random(&mut rng, vocab, EMBED, 1.0),
        GgmlDType::Q8_0,
    )?;
    // Norm weights near 1, as trained models have them.
    let norm = |rng: &mut fastrand::Rng| random(rng, 1, EMBED, 0.2).affine(1.0, 1.0)?.squeeze(0);
    add("output_norm.weight".into(), norm(&mut rng)?, GgmlDType::F32)?;
    if matches!(kind, Tiny::Qwen2) {
        add(
            "output.weight".into(),
            random(&mut rng, vocab, EMBED, 0.5),
            GgmlDType::Q8_0,
        )?;
    }
    for l in 0..layers {
        let p = format!("blk.{l}");
        let scale = 0.3;
        for (name, rows, cols) in [
            ("attn_q", HEADS * head_dim, EMBED),
            ("attn_k", KV_HEADS * head_dim, EMBED),
            ("attn_v", KV_HEADS * head_dim, EMBED),
            ("attn_output", EMBED, HEADS * head_dim),
            ("ffn_gate", FF, EMBED),
            ("ffn_up", FF, EMBED),
            ("ffn_down", EMBED, FF),
        ] {
            add(
                format!("{p}.{name}.weight"),
                random(&mut rng, rows, cols, scale),
                matrix_type,
            )?;
        }
        for name in ["attn_norm", "ffn_norm"] {
            add(
                format!("{p}.{name}.weight"),
                norm(&mut rng)?,
                GgmlDType::F32,
            )?;
        }
        if gemma {
            for name in ["attn_q_norm", "attn_k_norm"] {
                let w = random(&mut rng, 1, head_dim, 0.2)
                    .affine(1.0, 1.0)?
                    .squeeze(0)?;
                add(format!("{p}.{name}.weight"), w, GgmlDType::F32)?;
            }
            for name in ["post_attention_norm", "post_ffw_norm"] {
                add(
                    format!("{p}.{name}.weight"),
                    norm(&mut rng)?,
                    GgmlDType::F32,
                )?;
            }
        }
        if matches!(kind, Tiny::Qwen2) {
            for (name, n) in [
                ("attn_q", EMBED),
                ("attn_k", KV_HEADS * head_dim),
                ("attn_v", KV_HEADS * head_dim),
            ] {
                add(
                    format!("{p}.{name}.bias"),
                    random(&mut rng, 1, n, 0.1).squeeze(0)?,
                    GgmlDType::F32,
                )?;
            }
        }
    }
    let mut file = std::fs::File::create(path)?;
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut file, &metadata, &tensors)
}
