//! Decoder-only transformers of the llama family (llama, qwen2) from GGUF weights, with a KV
//! cache per sequence so that sequences of different lengths decode in one batch: the weight
//! matrices (nearly all the work) are read once per step for the whole batch, attention runs per
//! sequence against its own cache. Weights stay quantised, the token embedding included, so
//! memory stays close to the file's size.

use std::io::{Read, Seek};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
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

/// Rotary angles, computed for the positions a step needs: tables for a whole context cost
/// Gemma 3 (two bases, 256-wide heads, 32K positions) 67 MB.
struct Rotary {
    inv_freq: Vec<f32>,
}

impl Rotary {
    fn new(base: f32, head_dim: usize) -> Rotary {
        let half = head_dim / 2;
        let inv_freq = (0..half)
            .map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32))
            .collect();
        Rotary { inv_freq }
    }

    /// `(cos, sin)`, each `(positions, head_dim / 2)`.
    fn rows(&self, positions: impl Iterator<Item = usize>) -> Result<(Tensor, Tensor)> {
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for p in positions {
            for f in &self.inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let shape = (cos.len() / self.inv_freq.len(), self.inv_freq.len());
        Ok((
            Tensor::from_vec(cos, shape, &Device::Cpu)?,
            Tensor::from_vec(sin, shape, &Device::Cpu)?,
        ))
    }

    /// The rows of `t` positions from `start`.
    fn span(&self, start: usize, t: usize) -> Result<(Tensor, Tensor)> {
        self.rows(start..start + t)
    }

    /// One row per sequence, `(batch, 1, head_dim / 2)`.
    fn at(&self, positions: &[usize]) -> Result<(Tensor, Tensor)> {
        let (cos, sin) = self.rows(positions.iter().copied())?;
        Ok((cos.unsqueeze(1)?, sin.unsqueeze(1)?))
    }
}

pub struct Model {
    pub config: Config,
    embed: Linear,
    layers: Vec<Layer>,
    norm: Tensor,
    /// None where the output shares the token embedding's matrix (one copy in memory).
    output: Option<Linear>,
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
    /// The positions allocated now (the cache grows by doubling).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

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

/// A tensor read straight into its blocks. candle's reader holds the bytes and a copy of them
/// at once, which at the largest tensor (Gemma 3's 178 MB embedding) set the peak memory.
fn read_tensor<R: Read + Seek>(ct: &Content, reader: &mut R, name: &str) -> Result<QTensor> {
    use candle_core::quantized::k_quants::*;
    use candle_core::quantized::{GgmlDType as T, QStorage, QuantizedType};
    let Some(info) = ct.tensor_infos.get(name) else {
        candle_core::bail!("not in the file");
    };
    let (dtype, elems) = (info.ggml_dtype, info.shape.elem_count());
    if elems % dtype.block_size() != 0 {
        candle_core::bail!(
            "{elems} values do not fill blocks of {}",
            dtype.block_size()
        );
    }
    let bytes = elems / dtype.block_size() * dtype.type_size();
    let start = ct.tensor_data_offset.saturating_add(info.offset);
    let file_size = reader.seek(std::io::SeekFrom::End(0))?;
    if start.saturating_add(bytes as u64) > file_size {
        candle_core::bail!("needs {bytes} bytes from offset {start}; the file has {file_size}");
    }
    reader.seek(std::io::SeekFrom::Start(start))?;
    fn blocks<B: GgmlType + 'static>(
        reader: &mut impl Read,
        bytes: usize,
    ) -> Result<Box<dyn QuantizedType>> {
        let mut blocks = vec![B::zeros(); bytes / std::mem::size_of::<B>()];
        // SAFETY: blocks are plain numbers (scales and packed integers) for which every bit
        // pattern is a value, and the byte view covers exactly the vector's initialised memory.
        let raw = unsafe {
            std::slice::from_raw_parts_mut(
                blocks.as_mut_ptr() as *mut u8,
                blocks.len() * std::mem::size_of::<B>(),
            )
        };
        reader.read_exact(raw)?;
        Ok(Box::new(blocks))
    }
    let storage = match dtype {
        T::F32 => blocks::<f32>(reader, bytes)?,
        // Small where they occur at all: candle's reader.
        T::F16 | T::BF16 => return info.read(reader, ct.tensor_data_offset, &Device::Cpu),
        T::Q4_0 => blocks::<BlockQ4_0>(reader, bytes)?,
        T::Q4_1 => blocks::<BlockQ4_1>(reader, bytes)?,
        T::Q5_0 => blocks::<BlockQ5_0>(reader, bytes)?,
        T::Q5_1 => blocks::<BlockQ5_1>(reader, bytes)?,
        T::Q8_0 => blocks::<BlockQ8_0>(reader, bytes)?,
        T::Q8_1 => blocks::<BlockQ8_1>(reader, bytes)?,
        T::Q2K => blocks::<BlockQ2K>(reader, bytes)?,
        T::Q3K => blocks::<BlockQ3K>(reader, bytes)?,
        T::Q4K => blocks::<BlockQ4K>(reader, bytes)?,
        T::Q5K => blocks::<BlockQ5K>(reader, bytes)?,
        T::Q6K => blocks::<BlockQ6K>(reader, bytes)?,
        T::Q8K => blocks::<BlockQ8K>(reader, bytes)?,
    };
    QTensor::new(QStorage::Cpu(storage), info.shape.clone())
}

/// The longest context the rotary tables are built for; longer windows are refused.
const MAX_CONTEXT: usize = 32_768;

impl Model {
    pub fn load<R: Read + Seek>(
        ct: &Content,
        reader: &mut R,
    ) -> std::result::Result<Model, LocalError> {
        let config = Config::from_gguf(ct)?;
        let mut tensor = |name: &str| -> std::result::Result<QTensor, LocalError> {
            read_tensor(ct, reader, name)
                .map_err(|e| LocalError::Format(format!("tensor `{name}`: {}", crate::message(&e))))
        };
        let vector = |t: QTensor| t.dequantize(&Device::Cpu).map_err(LocalError::from);
        let embed = Linear::new(tensor("token_embd.weight")?)?;
        let output = match ct.tensor_infos.contains_key("output.weight") {
            true => Some(Linear::new(tensor("output.weight")?)?),
            false => None,
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
        let rotary = Rotary::new(config.rope_base, config.head_dim);
        let rotary_sliding = match config.sliding_window {
            Some(_) if config.rope_base_sliding != config.rope_base => {
                Some(Rotary::new(config.rope_base_sliding, config.head_dim))
            }
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
        self.embed = self.embed.exact()?;
        if let Some(output) = &mut self.output {
            *output = output.exact()?;
        }
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

    fn output(&self) -> &Linear {
        self.output.as_ref().unwrap_or(&self.embed)
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
        let x = self.embed.rows(&Tensor::new(tokens, &Device::Cpu)?)?;
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
        self.output().forward(&last)?.squeeze(0)
    }

    /// One token for each sequence, all in one batch; returns logits `(batch, vocab)`.
    pub fn decode(&self, tokens: &[u32], caches: &mut [&mut Cache]) -> Result<Tensor> {
        let c = &self.config;
        let b = tokens.len();
        for cache in caches.iter_mut() {
            cache.reserve(cache.len + 1)?;
        }
        let positions: Vec<usize> = caches.iter().map(|c| c.len).collect();
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
        self.output().forward(&x)
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{gguf_file, GgmlDType};

    #[test]
    fn tensors_read_into_their_blocks_hold_what_candles_reader_reads() {
        let values: Vec<f32> = (0..4 * 512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0)
            .collect();
        let matrix = Tensor::from_vec(values, (4, 512), &Device::Cpu).unwrap();
        let types = [
            GgmlDType::F32,
            GgmlDType::F16,
            GgmlDType::Q8_0,
            GgmlDType::Q5_0,
            GgmlDType::Q4_1,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ];
        let tensors: Vec<(String, QTensor)> = types
            .iter()
            .map(|&t| (format!("{t:?}"), QTensor::quantize(&matrix, t).unwrap()))
            .collect();
        let file = tempfile::NamedTempFile::new().unwrap();
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        gguf_file::write(&mut file.reopen().unwrap(), &[], &refs).unwrap();
        let mut reader = std::fs::File::open(file.path()).unwrap();
        let content = gguf_file::Content::read(&mut reader).unwrap();
        for (name, _) in &tensors {
            let ours = read_tensor(&content, &mut reader, name).unwrap();
            let candles = content.tensor(&mut reader, name, &Device::Cpu).unwrap();
            assert_eq!(ours.dtype(), candles.dtype());
            assert_eq!(ours.shape(), candles.shape());
            let values = |t: &QTensor| -> Vec<f32> {
                t.dequantize(&Device::Cpu)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            assert_eq!(values(&ours), values(&candles), "{name}");
        }
        let missing = read_tensor(&content, &mut reader, "nowhere").unwrap_err();
        assert!(missing.to_string().contains("not in the file"));
        // A file cut short names the tensor's need and the file's size.
        let length = std::fs::metadata(file.path()).unwrap().len();
        file.as_file().set_len(length - 100).unwrap();
        let mut reader = std::fs::File::open(file.path()).unwrap();
        let last = &tensors.last().unwrap().0;
        let cut = read_tensor(&content, &mut reader, last)
            .unwrap_err()
            .to_string();
        assert!(
            cut.contains("needs") && cut.contains(&(length - 100).to_string()),
            "{cut}"
        );
    }

    #[test]
    fn rotary_angles_are_computed_for_the_positions_asked() {
        let rotary = Rotary::new(10_000.0, 8);
        let (cos, sin) = rotary.span(3, 2).unwrap();
        let (cos_at, sin_at) = rotary.at(&[3, 4]).unwrap();
        assert_eq!(cos.dims(), &[2, 4]);
        assert_eq!(cos_at.dims(), &[2, 1, 4]);
        let flat = |t: &Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
        assert_eq!(flat(&cos), flat(&cos_at));
        assert_eq!(flat(&sin), flat(&sin_at));
        // Position 4, frequency 1/10000^(2/8) = 0.1.
        assert!((flat(&cos)[5] - (4.0f32 * 0.1).cos()).abs() < 1e-6);
        assert!((flat(&sin)[5] - (4.0f32 * 0.1).sin()).abs() < 1e-6);
    }
}
