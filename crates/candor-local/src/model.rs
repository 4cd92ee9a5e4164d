//! Decoder-only transformers of the llama family (llama, qwen2) from GGUF weights, with a KV
//! cache per sequence so that sequences of different lengths decode in one batch: the weight
//! matrices (nearly all the work) are read once per step for the whole batch, attention runs per
//! sequence against its own cache. Weights stay quantised, the token embedding included, so
//! memory stays close to the file's size.

use std::io::{Read, Seek};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Result, Tensor};

use crate::widen::Linear;
use crate::LocalError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub arch: Arch,
    pub layers: usize,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rms_eps: f64,
    pub rope_base: f32,
    pub context: usize,
}

impl Config {
    pub fn from_gguf(ct: &Content) -> std::result::Result<Config, LocalError> {
        let arch_name = match ct.metadata.get("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(LocalError::Format("no `general.architecture`".into())),
        };
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            other => {
                return Err(LocalError::Unsupported(format!(
                    "architecture `{other}` (known: llama, qwen2)"
                )))
            }
        };
        let get = |key: &str| {
            let full = format!("{arch_name}.{key}");
            ct.metadata
                .get(&full)
                .ok_or_else(|| LocalError::Format(format!("no `{full}`")))
        };
        let int = |key: &str| -> std::result::Result<usize, LocalError> {
            let v = get(key)?;
            v.to_u64()
                .or_else(|_| v.to_u32().map(u64::from))
                .map(|v| v as usize)
                .map_err(|e| LocalError::Format(format!("`{key}`: {e}")))
        };
        let float = |key: &str, default: f32| match get(key) {
            Ok(v) => v.to_f32().unwrap_or(default),
            Err(_) => default,
        };
        let embedding = int("embedding_length")?;
        let heads = int("attention.head_count")?;
        let kv_heads = int("attention.head_count_kv").unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || embedding % heads != 0 {
            return Err(LocalError::Format(format!(
                "{heads} heads, {kv_heads} KV heads and width {embedding} do not fit together"
            )));
        }
        Ok(Config {
            arch,
            layers: int("block_count")?,
            embedding,
            heads,
            kv_heads,
            head_dim: embedding / heads,
            rms_eps: float("attention.layer_norm_rms_epsilon", 1e-5) as f64,
            rope_base: float("rope.freq_base", 10_000.0),
            context: int("context_length").unwrap_or(4096),
        })
    }
}

struct Layer {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    q_bias: Option<Tensor>,
    k_bias: Option<Tensor>,
    v_bias: Option<Tensor>,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

pub struct Model {
    pub config: Config,
    embed: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
}

/// One sequence's keys and values for every layer. It starts small and doubles as needed up
/// to `limit`: most answers (refusals above all) are short, and memory is the batch's bound.
pub struct Cache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    pub len: usize,
    capacity: usize,
    pub limit: usize,
}

impl Cache {
    fn reserve(&mut self, needed: usize) -> Result<()> {
        if needed <= self.capacity {
            return Ok(());
        }
        if needed > self.limit {
            candle_core::bail!(
                "{needed} positions do not fit a sequence limit of {}",
                self.limit
            );
        }
        let capacity = needed.max(self.capacity * 2).min(self.limit);
        for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
            let (heads, _, dim) = t.dims3()?;
            let grown = Tensor::zeros((heads, capacity, dim), DType::F32, &Device::Cpu)?;
            grown.slice_set(&t.narrow(1, 0, self.len)?.contiguous()?, 1, 0)?;
            *t = grown;
        }
        self.capacity = capacity;
        Ok(())
    }
}

/// The longest context the rotary tables are built for; longer windows are refused.
const MAX_CONTEXT: usize = 32_768;

impl Model {
    pub fn load<R: Read + Seek>(
        ct: &Content,
        reader: &mut R,
    ) -> std::result::Result<Model, LocalError> {
        let config = Config::from_gguf(ct)?;
        let device = Device::Cpu;
        let mut tensor = |name: &str| -> std::result::Result<QTensor, LocalError> {
            ct.tensor(reader, name, &device)
                .map_err(|e| LocalError::Format(format!("tensor `{name}`: {e}")))
        };
        let vector = |t: QTensor| t.dequantize(&Device::Cpu).map_err(LocalError::from);
        let embed = Arc::new(tensor("token_embd.weight")?);
        let output = if ct.tensor_infos.contains_key("output.weight") {
            Linear::new(tensor("output.weight")?)?
        } else if matches!(
            embed.dtype(),
            GgmlDType::Q4_1 | GgmlDType::Q5_1 | GgmlDType::Q5_0
        ) {
            Linear::new(tensor("token_embd.weight")?)?
        } else {
            Linear::from_matmul(QMatMul::from_arc(embed.clone())?)
        };
        let norm = vector(tensor("output_norm.weight")?)?;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = format!("blk.{i}");
            let mut matrix = |name: &str| -> std::result::Result<Linear, LocalError> {
                Ok(Linear::new(tensor(&format!("{p}.{name}.weight"))?)?)
            };
            let (q, k, v, o) = (
                matrix("attn_q")?,
                matrix("attn_k")?,
                matrix("attn_v")?,
                matrix("attn_output")?,
            );
            let (gate, up, down) = (matrix("ffn_gate")?, matrix("ffn_up")?, matrix("ffn_down")?);
            let mut bias = |name: &str| -> std::result::Result<Option<Tensor>, LocalError> {
                let full = format!("{p}.{name}.bias");
                if ct.tensor_infos.contains_key(&full) {
                    Ok(Some(vector(tensor(&full)?)?))
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                q_bias: bias("attn_q")?,
                k_bias: bias("attn_k")?,
                v_bias: bias("attn_v")?,
                attn_norm: vector(tensor(&format!("{p}.attn_norm.weight"))?)?,
                ffn_norm: vector(tensor(&format!("{p}.ffn_norm.weight"))?)?,
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
            });
        }
        let positions = config.context.min(MAX_CONTEXT);
        let half = config.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / config
                    .rope_base
                    .powf(2.0 * i as f32 / config.head_dim as f32)
            })
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), &device)?;
        let t = Tensor::arange(0u32, positions as u32, &device)?
            .to_dtype(DType::F32)?
            .reshape((positions, 1))?;
        let angles = t.matmul(&inv_freq)?;
        Ok(Model {
            cos: angles.cos()?,
            sin: angles.sin()?,
            config,
            embed,
            layers,
            norm,
            output,
        })
    }

    /// The longest sequence (prompt and answer) this model takes.
    pub fn max_len(&self) -> usize {
        self.config.context.min(MAX_CONTEXT)
    }

    /// A cache for up to `limit` positions, with room for `initial` at first.
    pub fn new_cache(&self, initial: usize, limit: usize) -> Result<Cache> {
        let c = &self.config;
        let capacity = initial.min(limit).max(1);
        let shape = (c.kv_heads, capacity, c.head_dim);
        let zeros = || Tensor::zeros(shape, DType::F32, &Device::Cpu);
        Ok(Cache {
            keys: (0..c.layers).map(|_| zeros()).collect::<Result<_>>()?,
            values: (0..c.layers).map(|_| zeros()).collect::<Result<_>>()?,
            len: 0,
            capacity,
            limit,
        })
    }

    /// Bytes of keys and values for `positions` positions of one sequence.
    pub fn cache_bytes(&self, positions: usize) -> usize {
        let c = &self.config;
        2 * c.layers * c.kv_heads * c.head_dim * positions * std::mem::size_of::<f32>()
    }

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        match self.config.arch {
            // llama GGUFs store Q and K permuted for interleaved rotation.
            Arch::Llama => candle_nn::rotary_emb::rope_i(x, cos, sin),
            Arch::Qwen2 => candle_nn::rotary_emb::rope(x, cos, sin),
        }
    }

    /// Feeds a prompt (or its continuation) through one sequence's cache; returns the logits
    /// after its last token.
    pub fn prefill(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let c = &self.config;
        let (t, start) = (tokens.len(), cache.len);
        cache.reserve(start + t)?;
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = self.embed.embedding(&ids)?;
        let cos = self.cos.narrow(0, start, t)?;
        let sin = self.sin.narrow(0, start, t)?;
        let mask = causal_mask(t, start)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.rms_eps as f32)?;
            let (q, k, v) = self.qkv(layer, &h)?;
            // (t, heads * d) -> (1, heads, t, d)
            let heads = |x: Tensor, n: usize| {
                x.reshape((t, n, c.head_dim))?
                    .transpose(0, 1)?
                    .contiguous()?
                    .unsqueeze(0)
            };
            let q = self.rope(&heads(q, c.heads)?, &cos, &sin)?.squeeze(0)?;
            let k = self.rope(&heads(k, c.kv_heads)?, &cos, &sin)?.squeeze(0)?;
            let v = heads(v, c.kv_heads)?.squeeze(0)?;
            cache.keys[l].slice_set(&k, 1, start)?;
            cache.values[l].slice_set(&v, 1, start)?;
            let attended = self.attend(&q, cache, l, start + t, mask.as_ref())?;
            let attended = attended.transpose(0, 1)?.reshape((t, c.embedding))?;
            x = (x + layer.o.forward(&attended)?)?;
            x = (&x + self.mlp(layer, &x)?)?;
        }
        cache.len = start + t;
        let last = x.narrow(0, t - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, c.rms_eps as f32)?;
        self.output.forward(&last)?.squeeze(0)
    }

    /// One token for each sequence, all in one batch; returns logits `(batch, vocab)`.
    pub fn decode(&self, tokens: &[u32], caches: &mut [&mut Cache]) -> Result<Tensor> {
        let c = &self.config;
        let b = tokens.len();
        for cache in caches.iter_mut() {
            cache.reserve(cache.len + 1)?;
        }
        let positions: Vec<u32> = caches.iter().map(|c| c.len as u32).collect();
        let positions = Tensor::new(positions.as_slice(), &Device::Cpu)?;
        let cos = self.cos.index_select(&positions, 0)?.unsqueeze(1)?;
        let sin = self.sin.index_select(&positions, 0)?.unsqueeze(1)?;
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = self.embed.embedding(&ids)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.rms_eps as f32)?;
            let (q, k, v) = self.qkv(layer, &h)?;
            let q = self.rope(&q.reshape((b, c.heads, 1, c.head_dim))?, &cos, &sin)?;
            let k = self.rope(&k.reshape((b, c.kv_heads, 1, c.head_dim))?, &cos, &sin)?;
            let v = v.reshape((b, c.kv_heads, 1, c.head_dim))?;
            let mut outs = Vec::with_capacity(b);
            for (i, cache) in caches.iter_mut().enumerate() {
                let at = cache.len;
                cache.keys[l].slice_set(&k.get(i)?.contiguous()?, 1, at)?;
                cache.values[l].slice_set(&v.get(i)?.contiguous()?, 1, at)?;
                outs.push(self.attend(&q.get(i)?, cache, l, at + 1, None)?);
            }
            let attended = Tensor::stack(&outs, 0)?.reshape((b, c.embedding))?;
            x = (x + layer.o.forward(&attended)?)?;
            x = (&x + self.mlp(layer, &x)?)?;
        }
        for cache in caches.iter_mut() {
            cache.len += 1;
        }
        let x = candle_nn::ops::rms_norm(&x, &self.norm, c.rms_eps as f32)?;
        self.output.forward(&x)
    }

    fn qkv(&self, layer: &Layer, h: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let project = |m: &Linear, bias: &Option<Tensor>| -> Result<Tensor> {
            let y = m.forward(h)?;
            match bias {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            }
        };
        Ok((
            project(&layer.q, &layer.q_bias)?,
            project(&layer.k, &layer.k_bias)?,
            project(&layer.v, &layer.v_bias)?,
        ))
    }

    fn mlp(&self, layer: &Layer, x: &Tensor) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm(x, &layer.ffn_norm, self.config.rms_eps as f32)?;
        let gate = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
        layer.down.forward(&(gate * layer.up.forward(&h)?)?)
    }

    /// Grouped-query attention of `q` (heads, t, d) against the first `len` cached positions:
    /// each KV head serves its group of query heads without copying the cache per head.
    fn attend(
        &self,
        q: &Tensor,
        cache: &Cache,
        layer: usize,
        len: usize,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let group = c.heads / c.kv_heads;
        let t = q.dim(1)?;
        let q = q.reshape((c.kv_heads, group * t, c.head_dim))?;
        let keys = cache.keys[layer].narrow(1, 0, len)?.contiguous()?;
        let values = cache.values[layer].narrow(1, 0, len)?.contiguous()?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let mut scores = (q.matmul(&keys.t()?)? * scale)?;
        if let Some(mask) = mask {
            scores = scores
                .reshape((c.kv_heads, group, t, len))?
                .broadcast_add(mask)?
                .reshape((c.kv_heads, group * t, len))?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        probs.matmul(&values)?.reshape((c.heads, t, c.head_dim))
    }
}

/// `-inf` where token `i` of a chunk starting at `start` would see a later position.
fn causal_mask(t: usize, start: usize) -> Result<Option<Tensor>> {
    if t == 1 {
        return Ok(None);
    }
    let len = start + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..len).map(move |j| {
                if j > start + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, len), &Device::Cpu).map(Some)
}

/// The last dimension's values as a vector, for sampling.
pub fn row(logits: &Tensor) -> Result<Vec<f32>> {
    logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()
}

/// Logits of row `i` of a `(batch, vocab)` tensor.
pub fn batch_row(logits: &Tensor, i: usize) -> Result<Vec<f32>> {
    logits.get(i)?.to_vec1()
}
