//! The tokenizer a GGUF file carries (`tokenizer.ggml.*`), read the way llama.cpp reads it:
//! byte-level BPE with the pre-tokenizer the file names, or SentencePiece-style scores with
//! byte fallback. Wrong tokens visibly change answers, so an unknown pre-tokenizer is an
//! error, never a silent fallback.

use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, MatchKind};
use candle_core::quantized::gguf_file::{Content, Value};
use fancy_regex::Regex;

use crate::LocalError;

/// llama.cpp's token types.
const TYPE_NORMAL: i32 = 1;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

// The split patterns llama.cpp applies per `tokenizer.ggml.pre` (the upstream tokenizers'
// regexes, case-insensitive contractions spelled out).
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// The split patterns for a pre-tokenizer name, in the order they apply.
fn pre_patterns(pre: &str) -> Option<Vec<&'static str>> {
    Some(match pre {
        "qwen2" | "deepseek-r1-qwen" => vec![QWEN2],
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" => vec![LLAMA3],
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" => {
            vec![r"\p{N}", GPT2]
        }
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" => vec![GPT2],
        "default" => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        _ => return None,
    })
}

enum Model {
    /// Byte-level BPE: merge ranks by token-id pair, giving the rank and the merged id.
    Bpe {
        merges: HashMap<(u32, u32), (u32, u32)>,
        splits: Vec<Regex>,
        byte_chars: Box<[char; 256]>,
        char_bytes: HashMap<char, u8>,
    },
    /// SentencePiece: the highest-scoring merge of two adjacent pieces first; bytes the
    /// vocabulary lacks become `<0xXX>` tokens.
    Spm {
        scores: Vec<f32>,
        add_space_prefix: bool,
        byte_tokens: Vec<Option<u32>>,
    },
}

pub struct Tokenizer {
    tokens: Vec<String>,
    types: Vec<i32>,
    ids: HashMap<String, u32>,
    model: Model,
    /// Control and user-defined tokens, found in text before anything else is split.
    specials: Option<(AhoCorasick, Vec<u32>)>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    /// Tokens that end a generation.
    pub end_of_generation: HashSet<u32>,
    /// Which tokenizer this is, for provenance (`gpt2/qwen2`, `llama`).
    pub kind: String,
}

fn bad(message: impl Into<String>) -> LocalError {
    LocalError::Format(message.into())
}

fn strings(ct: &Content, key: &str) -> Result<Vec<String>, LocalError> {
    let value = ct
        .metadata
        .get(key)
        .ok_or_else(|| bad(format!("the GGUF has no `{key}`")))?;
    let Value::Array(items) = value else {
        return Err(bad(format!("`{key}` is not an array")));
    };
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(bad(format!("`{key}` holds {other:?}, not strings"))),
        })
        .collect()
}

fn number(ct: &Content, key: &str) -> Option<i64> {
    match ct.metadata.get(key)? {
        Value::U8(v) => Some(*v as i64),
        Value::I8(v) => Some(*v as i64),
        Value::U16(v) => Some(*v as i64),
        Value::I16(v) => Some(*v as i64),
        Value::U32(v) => Some(*v as i64),
        Value::I32(v) => Some(*v as i64),
        Value::U64(v) => Some(*v as i64),
        Value::I64(v) => Some(*v),
        _ => None,
    }
}

fn flag(ct: &Content, key: &str) -> Option<bool> {
    match ct.metadata.get(key)? {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

/// GPT-2's reversible map from bytes to printable characters, which byte-level vocabularies
/// are written in.
pub(crate) fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).expect("latin-1 is valid")
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("below the surrogates")
        };
    }
    table
}

impl Tokenizer {
    pub fn from_gguf(ct: &Content) -> Result<Tokenizer, LocalError> {
        let tokens = strings(ct, "tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.to_i32().unwrap_or(TYPE_NORMAL))
                .collect(),
            _ => vec![TYPE_NORMAL; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(bad("token types and tokens differ in length"));
        }
        let ids: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let id = |key: &str| {
            number(ct, key)
                .map(|v| v as u32)
                .filter(|&v| (v as usize) < tokens.len())
        };
        let bos = id("tokenizer.ggml.bos_token_id");
        let eos = id("tokenizer.ggml.eos_token_id");
        let model_name = match ct.metadata.get("tokenizer.ggml.model") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(bad("the GGUF has no `tokenizer.ggml.model`")),
        };
        let (model, kind, default_bos) = match model_name.as_str() {
            "gpt2" => {
                let pre = match ct.metadata.get("tokenizer.ggml.pre") {
                    Some(Value::String(s)) => s.clone(),
                    _ => "default".to_string(),
                };
                let patterns = pre_patterns(&pre).ok_or_else(|| {
                    LocalError::Unsupported(format!(
                        "pre-tokenizer `{pre}` (known: qwen2, deepseek-r1-qwen, llama3, llama-bpe, smollm, starcoder, gpt-2, default)"
                    ))
                })?;
                let splits = patterns
                    .iter()
                    .map(|p| Regex::new(p).expect("built-in pattern compiles"))
                    .collect();
                let mut merges = HashMap::new();
                for (rank, line) in strings(ct, "tokenizer.ggml.merges")?.iter().enumerate() {
                    let Some((left, right)) = line.split_once(' ') else {
                        return Err(bad(format!("merge {rank} `{line}` has no space")));
                    };
                    let (Some(&l), Some(&r), Some(&m)) = (
                        ids.get(left),
                        ids.get(right),
                        ids.get(&format!("{left}{right}")),
                    ) else {
                        continue;
                    };
                    merges.entry((l, r)).or_insert((rank as u32, m));
                }
                let byte_chars = byte_chars();
                let char_bytes = byte_chars
                    .iter()
                    .enumerate()
                    .map(|(b, c)| (*c, b as u8))
                    .collect();
                (
                    Model::Bpe {
                        merges,
                        splits,
                        byte_chars: Box::new(byte_chars),
                        char_bytes,
                    },
                    format!("gpt2/{pre}"),
                    false,
                )
            }
            "llama" => {
                let scores: Vec<f32> = match ct.metadata.get("tokenizer.ggml.scores") {
                    Some(Value::Array(items)) => {
                        items.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect()
                    }
                    _ => return Err(bad("a SentencePiece GGUF needs `tokenizer.ggml.scores`")),
                };
                let mut byte_tokens = vec![None; 256];
                for (i, t) in tokens.iter().enumerate() {
                    if types[i] == TYPE_BYTE {
                        if let Some(hex) = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')) {
                            if let Ok(b) = u8::from_str_radix(hex, 16) {
                                byte_tokens[b as usize] = Some(i as u32);
                            }
                        }
                    }
                }
                (
                    Model::Spm {
                        scores,
                        add_space_prefix: flag(ct, "tokenizer.ggml.add_space_prefix")
                            .unwrap_or(true),
                        byte_tokens,
                    },
                    "llama".to_string(),
                    true,
                )
            }
            other => {
                return Err(LocalError::Unsupported(format!(
                    "tokenizer model `{other}` (known: gpt2, llama)"
                )))
            }
        };
        let special_ids: Vec<u32> = (0..tokens.len() as u32)
            .filter(|&i| {
                let t = types[i as usize];
                (t == TYPE_CONTROL || t == TYPE_USER_DEFINED) && !tokens[i as usize].is_empty()
            })
            .collect();
        let specials = if special_ids.is_empty() {
            None
        } else {
            let matcher = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(special_ids.iter().map(|&i| tokens[i as usize].as_str()))
                .map_err(|e| bad(format!("special tokens: {e}")))?;
            Some((matcher, special_ids))
        };
        let mut end_of_generation: HashSet<u32> = eos.into_iter().collect();
        if let Some(eot) = id("tokenizer.ggml.eot_token_id") {
            end_of_generation.insert(eot);
        }
        for name in [
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<EOT>",
            "<|end▁of▁sentence|>",
        ] {
            if let Some(&i) = ids.get(name) {
                if types[i as usize] == TYPE_CONTROL {
                    end_of_generation.insert(i);
                }
            }
        }
        Ok(Tokenizer {
            add_bos: flag(ct, "tokenizer.ggml.add_bos_token").unwrap_or(default_bos)
                && bos.is_some(),
            tokens,
            types,
            ids,
            model,
            specials,
            bos,
            eos,
            end_of_generation,
            kind,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Token ids for `text`, control tokens written in it (`<|im_start|>`) read as such, the
    /// BOS token first where the model asks for it.
    pub fn encode(&self, text: &str, add_bos: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_bos && self.add_bos {
            out.extend(self.bos);
        }
        let mut start = 0;
        if let Some((matcher, special_ids)) = &self.specials {
            for m in matcher.find_iter(text) {
                self.encode_plain(&text[start..m.start()], &mut out);
                out.push(special_ids[m.pattern().as_usize()]);
                start = m.end();
            }
        }
        self.encode_plain(&text[start..], &mut out);
        out
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        match &self.model {
            Model::Bpe {
                merges,
                splits,
                byte_chars,
                ..
            } => {
                for piece in split_all(splits, text) {
                    let mapped: String = piece.bytes().map(|b| byte_chars[b as usize]).collect();
                    if let Some(&id) = self.ids.get(&mapped) {
                        out.push(id);
                        continue;
                    }
                    let mut symbols: Vec<u32> = mapped
                        .chars()
                        .filter_map(|c| self.ids.get(c.encode_utf8(&mut [0; 4]) as &str).copied())
                        .collect();
                    bpe_merge(&mut symbols, |l, r| merges.get(&(l, r)).copied());
                    out.extend(symbols);
                }
            }
            Model::Spm {
                scores,
                add_space_prefix,
                byte_tokens,
            } => {
                let mut normalised = String::with_capacity(text.len() + 3);
                if *add_space_prefix && out.iter().all(|&t| Some(t) == self.bos) {
                    normalised.push('▁');
                }
                normalised.push_str(&text.replace(' ', "▁"));
                self.spm(&normalised, scores, byte_tokens, out);
            }
        }
    }

    /// SentencePiece's greedy merge: repeatedly join the adjacent pair whose joined text is the
    /// best-scoring token (leftmost on ties), then spell what is left in byte tokens.
    fn spm(&self, text: &str, scores: &[f32], byte_tokens: &[Option<u32>], out: &mut Vec<u32>) {
        let mut pieces: Vec<&str> = Vec::new();
        let mut at = 0;
        for c in text.chars() {
            pieces.push(&text[at..at + c.len_utf8()]);
            at += c.len_utf8();
        }
        // Pieces are contiguous slices, so a join is the span from one's start to the next's end.
        let span = |a: &str, b: &str| -> &str {
            let start = a.as_ptr() as usize - text.as_ptr() as usize;
            &text[start..start + a.len() + b.len()]
        };
        loop {
            let mut best: Option<(f32, usize)> = None;
            for i in 0..pieces.len().saturating_sub(1) {
                if let Some(&id) = self.ids.get(span(pieces[i], pieces[i + 1])) {
                    let score = scores.get(id as usize).copied().unwrap_or(0.0);
                    if best.is_none_or(|(s, _)| score > s) {
                        best = Some((score, i));
                    }
                }
            }
            let Some((_, i)) = best else { break };
            pieces[i] = span(pieces[i], pieces[i + 1]);
            pieces.remove(i + 1);
        }
        for piece in pieces {
            match self.ids.get(piece) {
                Some(&id) if self.types[id as usize] != TYPE_CONTROL => out.push(id),
                _ => out.extend(piece.bytes().filter_map(|b| byte_tokens[b as usize])),
            }
        }
    }

    /// The bytes a token stands for (control tokens stand for nothing in an answer).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(text) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        match self.types[id as usize] {
            TYPE_CONTROL => return Vec::new(),
            TYPE_USER_DEFINED => return text.as_bytes().to_vec(),
            _ => {}
        }
        match &self.model {
            Model::Bpe { char_bytes, .. } => text
                .chars()
                .map(|c| char_bytes.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .unwrap_or_else(|| text.as_bytes().to_vec()),
            Model::Spm { .. } => {
                if self.types[id as usize] == TYPE_BYTE {
                    if let Some(b) = text
                        .strip_prefix("<0x")
                        .and_then(|h| h.strip_suffix('>'))
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        return vec![b];
                    }
                }
                text.replace('▁', " ").into_bytes()
            }
        }
    }

    /// The text of a whole sequence of tokens (invalid UTF-8 replaced, as a model can emit it).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| self.token_bytes(i)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
}

/// Splits text by each pattern in turn, as llama.cpp does: every match is a piece, and so is
/// the text between matches.
fn split_all<'t>(patterns: &[Regex], text: &'t str) -> Vec<&'t str> {
    let mut pieces = vec![text];
    for pattern in patterns {
        let mut next = Vec::with_capacity(pieces.len() * 2);
        for piece in pieces {
            let mut at = 0;
            for m in pattern.find_iter(piece) {
                // A pattern that fails on some input leaves the rest of the piece whole.
                let Ok(m) = m else { break };
                if m.start() > at {
                    next.push(&piece[at..m.start()]);
                }
                if m.end() > m.start() {
                    next.push(m.as_str());
                }
                at = m.end();
            }
            if at < piece.len() {
                next.push(&piece[at..]);
            }
        }
        pieces = next;
    }
    pieces
}

/// Applies BPE merges to one piece: the lowest-ranked adjacent pair first, leftmost on ties.
fn bpe_merge(symbols: &mut Vec<u32>, rank: impl Fn(u32, u32) -> Option<(u32, u32)>) {
    while symbols.len() > 1 {
        let mut best: Option<(u32, usize, u32)> = None;
        for i in 0..symbols.len() - 1 {
            if let Some((r, merged)) = rank(symbols[i], symbols[i + 1]) {
                if best.is_none_or(|(b, _, _)| r < b) {
                    best = Some((r, i, merged));
                }
            }
        }
        let Some((_, i, merged)) = best else { break };
        symbols[i] = merged;
        symbols.remove(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection_onto_printable_characters() {
        let table = byte_chars();
        let distinct: HashSet<char> = table.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        assert_eq!(table[b'a' as usize], 'a');
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
    }

    #[test]
    fn qwen2_splits_digits_one_by_one_and_keeps_a_space_with_the_next_word() {
        let re = vec![Regex::new(QWEN2).unwrap()];
        assert_eq!(
            split_all(&re, "In 1989,  students'd  protest\n\n天安门"),
            [
                "In",
                " ",
                "1",
                "9",
                "8",
                "9",
                ",",
                " ",
                " students",
                "'d",
                " ",
                " protest",
                "\n\n",
                "天安门"
            ]
        );
    }

    #[test]
    fn smollm_splits_digits_then_words_gpt2_style() {
        let re: Vec<Regex> = pre_patterns("smollm")
            .unwrap()
            .iter()
            .map(|p| Regex::new(p).unwrap())
            .collect();
        assert_eq!(
            split_all(&re, "Year 1989 was"),
            ["Year", " ", "1", "9", "8", "9", " was"]
        );
    }

    #[test]
    fn merges_apply_lowest_rank_first() {
        // a b c: (b,c) has rank 0, (a,b) rank 1; so "a" + "bc" and then no merge of a,bc.
        let ranks: HashMap<(u32, u32), (u32, u32)> =
            [((1, 2), (1, 10)), ((2, 3), (0, 11))].into_iter().collect();
        let mut s = vec![1, 2, 3];
        bpe_merge(&mut s, |l, r| ranks.get(&(l, r)).copied());
        assert_eq!(s, [1, 11]);
    }

    proptest::proptest! {
        /// Splitting loses and reorders nothing, whatever the text.
        #[test]
        fn splitting_is_lossless(text in "\\PC{0,60}") {
            for pre in ["qwen2", "llama3", "smollm", "default"] {
                let re: Vec<Regex> = pre_patterns(pre).unwrap().iter().map(|p| Regex::new(p).unwrap()).collect();
                proptest::prop_assert_eq!(split_all(&re, &text).concat(), text.clone());
            }
        }
    }
}
