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
    Gemma3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma3 => "gemma3",
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
    /// Gemma 3: layers that see only the last `window` positions (five of every six), with
    /// their own rotary base.
    pub sliding_window: Option<usize>,
    pub rope_base_sliding: f32,
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
            "gemma3" => Arch::Gemma3,
            other => {
                return Err(LocalError::Unsupported(format!(
                    "architecture `{other}` (known: llama, qwen2, gemma3)"
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
        let head_dim = match int("attention.key_length") {
            Ok(d) => d,
            Err(_) if heads > 0 => embedding / heads,
            Err(e) => return Err(e),
        };
        if heads == 0
            || kv_heads == 0
            || heads % kv_heads != 0
            || head_dim % 2 != 0
            || head_dim == 0
        {
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
            head_dim,
            rms_eps: float("attention.layer_norm_rms_epsilon", 1e-5) as f64,
            rope_base: float("rope.freq_base", 10_000.0),
            context: int("context_length").unwrap_or(4096),
            sliding_window: match arch {
                Arch::Gemma3 => int("attention.sliding_window").ok(),
                _ => None,
            },
            rope_base_sliding: float("rope.freq_base_swa", 10_000.0),
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
    /// Gemma 3's extra norms: per head on queries and keys, and after attention and MLP.
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    post_attn_norm: Option<Tensor>,
    post_ffw_norm: Option<Tensor>,
    /// Sees only the last `sliding_window` positions, rotated with the sliding base.
    sliding: bool,
}

/// Rotary tables for every position: `(positions, head_dim / 2)`.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(base: f32, head_dim: usize, positions: usize) -> Result<Rotary> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32))
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), &Device::Cpu)?;
        let t = Tensor::arange(0u32, positions as u32, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .reshape((positions, 1))?;
        let angles = t.matmul(&inv_freq)?;
        Ok(Rotary {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// The rows of `t` positions from `start`.
    fn span(&self, start: usize, t: usize) -> Result<(Tensor, Tensor)> {
        Ok((self.cos.narrow(0, start, t)?, self.sin.narrow(0, start, t)?))
    }

    /// One row per sequence, `(batch, 1, head_dim / 2)`.
    fn at(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.cos.index_select(positions, 0)?.unsqueeze(1)?,
            self.sin.index_select(positions, 0)?.unsqueeze(1)?,
        ))
    }
}

pub struct Model {
    pub config: Config,
    embed: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Linear,
    rotary: Rotary,
    /// For sliding layers where their base differs.
    rotary_sliding: Option<Rotary>,
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
                .map_err(|e| LocalError::Format(format!("tensor `{name}`: {}", crate::message(&e))))
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
            // Tensors only some architectures have: biases (qwen2), extra norms (gemma3).
            let mut optional = |name: &str| -> std::result::Result<Option<Tensor>, LocalError> {
                let full = format!("{p}.{name}");
                if ct.tensor_infos.contains_key(&full) {
                    Ok(Some(vector(tensor(&full)?)?))
                } else {
                    Ok(None)
                }
            };
            let (q_norm, k_norm) = (
                optional("attn_q_norm.weight")?,
                optional("attn_k_norm.weight")?,
            );
            let (post_attn_norm, post_ffw_norm) = (
                optional("post_attention_norm.weight")?,
                optional("post_ffw_norm.weight")?,
            );
            layers.push(Layer {
                q_norm,
                k_norm,
                post_attn_norm,
                post_ffw_norm,
                sliding: config.sliding_window.is_some() && (i + 1) % 6 != 0,
                q_bias: optional("attn_q.bias")?,
                k_bias: optional("attn_k.bias")?,
                v_bias: optional("attn_v.bias")?,
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
        let rotary = Rotary::new(config.rope_base, config.head_dim, positions)?;
        let rotary_sliding = match config.sliding_window {
            Some(_) if config.rope_base_sliding != config.rope_base => Some(Rotary::new(
                config.rope_base_sliding,
                config.head_dim,
                positions,
            )?),
            _ => None,
        };
        Ok(Model {
            rotary,
            rotary_sliding,
            config,
            embed,
            layers,
            norm,
            output,
        })
    }

    /// The model with every matrix in f32: slow and large, but free of the kernels' 8-bit
    /// rounding of activations, so that tests can compare code paths exactly.
    pub fn exact(mut self) -> Result<Model> {
        self.output = self.output.exact()?;
        for layer in &mut self.layers {
            for m in [
                &mut layer.q,
                &mut layer.k,
                &mut layer.v,
                &mut layer.o,
                &mut layer.gate,
                &mut layer.up,
                &mut layer.down,
            ] {
                *m = m.exact()?;
            }
        }
        Ok(self)
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
            Arch::Qwen2 | Arch::Gemma3 => candle_nn::rotary_emb::rope(x, cos, sin),
        }
    }

    fn rotary_of(&self, layer: &Layer) -> &Rotary {
        match &self.rotary_sliding {
            Some(r) if layer.sliding => r,
            _ => &self.rotary,
        }
    }

    fn window_of(&self, layer: &Layer) -> Option<usize> {
        self.config.sliding_window.filter(|_| layer.sliding)
    }

    /// Token embeddings, scaled where the architecture scales them.
    fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        let x = self.embed.embedding(&Tensor::new(tokens, &Device::Cpu)?)?;
        match self.config.arch {
            Arch::Gemma3 => x * (self.config.embedding as f64).sqrt(),
            _ => Ok(x),
        }
    }

    /// Per-head norm of `x` (..., heads, head_dim), where the layer has one.
    fn head_norm(&self, x: Tensor, norm: &Option<Tensor>) -> Result<Tensor> {
        match norm {
            Some(w) => candle_nn::ops::rms_norm(&x, w, self.config.rms_eps as f32),
            None => Ok(x),
        }
    }

    /// The attention output projected and added to the residual stream, then the MLP's.
    fn finish_layer(&self, layer: &Layer, x: Tensor, attended: &Tensor) -> Result<Tensor> {
        let eps = self.config.rms_eps as f32;
        let mut out = layer.o.forward(attended)?;
        if let Some(w) = &layer.post_attn_norm {
            out = candle_nn::ops::rms_norm(&out, w, eps)?;
        }
        let x = (x + out)?;
        let mut out = self.mlp(layer, &x)?;
        if let Some(w) = &layer.post_ffw_norm {
            out = candle_nn::ops::rms_norm(&out, w, eps)?;
        }
        x + out
    }

    /// Feeds a prompt (or its continuation) through one sequence's cache; returns the logits
    /// after its last token.
    pub fn prefill(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let c = &self.config;
        let (t, start) = (tokens.len(), cache.len);
        cache.reserve(start + t)?;
        let mut x = self.embed(tokens)?;
        let mask = mask(t, start, None)?;
        let sliding_mask = match c.sliding_window {
            Some(w) => self::mask(t, start, Some(w))?,
            None => None,
        };
        let width = c.heads * c.head_dim;
        for (l, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.rms_eps as f32)?;
            let (q, k, v) = self.qkv(layer, &h)?;
            let (cos, sin) = self.rotary_of(layer).span(start, t)?;
            // (t, heads * d) -> (1, heads, t, d)
            let heads = |x: Tensor, n: usize, norm: &Option<Tensor>| {
                self.head_norm(x.reshape((t, n, c.head_dim))?, norm)?
                    .transpose(0, 1)?
                    .contiguous()?
                    .unsqueeze(0)
            };
            let q = self
                .rope(&heads(q, c.heads, &layer.q_norm)?, &cos, &sin)?
                .squeeze(0)?;
            let k = self
                .rope(&heads(k, c.kv_heads, &layer.k_norm)?, &cos, &sin)?
                .squeeze(0)?;
            let v = heads(v, c.kv_heads, &None)?.squeeze(0)?;
            cache.keys[l].slice_set(&k, 1, start)?;
            cache.values[l].slice_set(&v, 1, start)?;
            let layer_mask = if layer.sliding { &sliding_mask } else { &mask };
            let attended = self.attend(&q, cache, l, 0, start + t, layer_mask.as_ref())?;
            let attended = attended.transpose(0, 1)?.reshape((t, width))?;
            x = self.finish_layer(layer, x, &attended)?;
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
        let rows = self.rotary.at(&positions)?;
        let rows_sliding = match &self.rotary_sliding {
            Some(r) => Some(r.at(&positions)?),
            None => None,
        };
        let mut x = self.embed(tokens)?;
        let width = c.heads * c.head_dim;
        for (l, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, c.rms_eps as f32)?;
            let (q, k, v) = self.qkv(layer, &h)?;
            let (cos, sin) = match &rows_sliding {
                Some(r) if layer.sliding => r,
                _ => &rows,
            };
            let heads = |x: Tensor, n: usize, norm: &Option<Tensor>| {
                self.head_norm(x.reshape((b, n, c.head_dim))?, norm)?
                    .reshape((b, n, 1, c.head_dim))
            };
            let q = self.rope(&heads(q, c.heads, &layer.q_norm)?, cos, sin)?;
            let k = self.rope(&heads(k, c.kv_heads, &layer.k_norm)?, cos, sin)?;
            let v = v.reshape((b, c.kv_heads, 1, c.head_dim))?;
            let window = self.window_of(layer);
            let mut outs = Vec::with_capacity(b);
            for (i, cache) in caches.iter_mut().enumerate() {
                let at = cache.len;
                cache.keys[l].slice_set(&k.get(i)?.contiguous()?, 1, at)?;
                cache.values[l].slice_set(&v.get(i)?.contiguous()?, 1, at)?;
                // A sliding layer reads only the window's positions.
                let from = window.map_or(0, |w| (at + 1).saturating_sub(w));
                outs.push(self.attend(&q.get(i)?, cache, l, from, at + 1, None)?);
            }
            let attended = Tensor::stack(&outs, 0)?.reshape((b, width))?;
            x = self.finish_layer(layer, x, &attended)?;
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
        let gate = layer.gate.forward(&h)?;
        let gate = match self.config.arch {
            // tanh-approximated GELU, as Gemma is trained with.
            Arch::Gemma3 => gate.gelu()?,
            _ => candle_nn::ops::silu(&gate)?,
        };
        layer.down.forward(&(gate * layer.up.forward(&h)?)?)
    }

    /// Grouped-query attention of `q` (heads, t, d) against cached positions `from..to`:
    /// each KV head serves its group of query heads without copying the cache per head.
    fn attend(
        &self,
        q: &Tensor,
        cache: &Cache,
        layer: usize,
        from: usize,
        to: usize,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let group = c.heads / c.kv_heads;
        let t = q.dim(1)?;
        let len = to - from;
        let q = q.reshape((c.kv_heads, group * t, c.head_dim))?;
        let keys = cache.keys[layer].narrow(1, from, len)?.contiguous()?;
        let values = cache.values[layer].narrow(1, from, len)?.contiguous()?;
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

/// `-inf` where token `i` of a chunk starting at `start` would see a later position, or one
/// `window` or more positions back.
fn mask(t: usize, start: usize, window: Option<usize>) -> Result<Option<Tensor>> {
    let len = start + t;
    let hidden = |i: usize, j: usize| j > start + i || window.is_some_and(|w| start + i >= j + w);
    if (0..t).all(|i| (0..len).all(|j| !hidden(i, j))) {
        return Ok(None);
    }
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..len).map(move |j| if hidden(i, j) { f32::NEG_INFINITY } else { 0.0 }))
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
