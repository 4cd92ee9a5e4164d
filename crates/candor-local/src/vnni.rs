//! Rows times a Q8_0, Q5_0 or Q4_0 matrix on AVX-512 VNNI (x86-64 CPUs that have it, detected
//! at run time). candle's kernels compute one dot product per (row, column), so a decoding
//! batch of 8 cost nearly 8 single rows, and candle has no vectorised Q5_0 product at all.
//! Here each pair of weight blocks is unpacked once into 64 unsigned bytes (`w + 128`) and
//! serves every row of the batch; `vpdpbusd` does 64 multiply-adds per instruction against the
//! row, quantised to 8 bits per block of 32 as candle's kernels do. The `+ 128` comes back out
//! once per row and weight row: `Σ_b d_w d_x Σ 128 x = Σ_b d_w e_b`, with `e` computed with the
//! row.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use candle_core::quantized::GgmlDType;

const BLOCK: usize = 32;

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The weight types the kernel reads, and their block sizes in bytes.
pub fn block_bytes(dtype: GgmlDType) -> Option<usize> {
    matches!(dtype, GgmlDType::Q8_0 | GgmlDType::Q5_0 | GgmlDType::Q4_0).then(|| dtype.type_size())
}

/// Rows quantised per block of 32 and laid out for the kernel, padded to an even number of
/// blocks with zeros.
pub struct Rows {
    pub m: usize,
    blocks: usize,
    pairs: usize,
    /// `m x pairs x 64` signed values.
    q: Vec<i8>,
    /// `m x pairs x 16`: each pair's two block scales, eight times each (one per lane).
    scales: Vec<f32>,
    /// `m x 2 pairs`: `128 d Σ q` per block, what the unsigned weights add.
    excess: Vec<f32>,
}

pub fn quantise(x: &[f32], m: usize, k: usize) -> Rows {
    let blocks = k / BLOCK;
    let pairs = blocks.div_ceil(2);
    let mut q = vec![0i8; m * pairs * 64];
    let mut scales = vec![0f32; m * pairs * 16];
    let mut excess = vec![0f32; m * pairs * 2];
    for r in 0..m {
        for b in 0..blocks {
            let values = &x[r * k + b * BLOCK..r * k + (b + 1) * BLOCK];
            let amax = values.iter().fold(0f32, |a, v| a.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let at = (r * pairs * 2 + b) * BLOCK;
            let mut sum = 0i32;
            for (o, v) in q[at..at + BLOCK].iter_mut().zip(values) {
                *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
                sum += *o as i32;
            }
            let lanes = (r * pairs + b / 2) * 16 + (b % 2) * 8;
            scales[lanes..lanes + 8].fill(scale);
            excess[r * pairs * 2 + b] = 128.0 * scale * sum as f32;
        }
    }
    Rows {
        m,
        blocks,
        pairs,
        q,
        scales,
        excess,
    }
}

/// `out[r * n + j] = row r · weight row j` for the weight rows `first..first + count`, whose
/// blocks of type `dtype` are `data`.
///
/// # Safety
/// The CPU must have the features [`available`] checks; `dtype` must be one [`block_bytes`]
/// knows; `out` must hold `rows.m * n` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
pub unsafe fn product(
    dtype: GgmlDType,
    data: &[u8],
    rows: &Rows,
    first: usize,
    count: usize,
    n: usize,
    out: *mut f32,
) {
    let block_bytes = block_bytes(dtype).expect("a type the kernel reads");
    let row_bytes = rows.blocks * block_bytes;
    let mut weight_scales = vec![0f32; rows.pairs * 2];
    for j in first..first + count {
        let weights = WeightRow {
            dtype,
            block_bytes,
            blocks: rows.blocks,
            bytes: &data[j * row_bytes..(j + 1) * row_bytes],
        };
        let mut start = 0;
        while start < rows.m {
            let group = (rows.m - start).min(GROUP);
            let at = out.add(start * n + j);
            let scales = &mut weight_scales;
            match group {
                1 => rows_times::<1>(&weights, rows, start, at, n, scales),
                2 => rows_times::<2>(&weights, rows, start, at, n, scales),
                3 => rows_times::<3>(&weights, rows, start, at, n, scales),
                4 => rows_times::<4>(&weights, rows, start, at, n, scales),
                5 => rows_times::<5>(&weights, rows, start, at, n, scales),
                6 => rows_times::<6>(&weights, rows, start, at, n, scales),
                7 => rows_times::<7>(&weights, rows, start, at, n, scales),
                8 => rows_times::<8>(&weights, rows, start, at, n, scales),
                9 => rows_times::<9>(&weights, rows, start, at, n, scales),
                10 => rows_times::<10>(&weights, rows, start, at, n, scales),
                11 => rows_times::<11>(&weights, rows, start, at, n, scales),
                _ => rows_times::<GROUP>(&weights, rows, start, at, n, scales),
            }
            start += group;
        }
    }
}

/// Rows whose accumulators stay in registers together (AVX-512 has 32).
const GROUP: usize = 12;

/// One weight row's blocks.
struct WeightRow<'a> {
    dtype: GgmlDType,
    block_bytes: usize,
    blocks: usize,
    bytes: &'a [u8],
}

#[cfg(target_arch = "x86_64")]
impl WeightRow<'_> {
    /// Blocks `2p` and `2p + 1` as 64 unsigned bytes `w + 128`, and their scales (zero past
    /// the last block).
    #[inline(always)]
    unsafe fn pair(&self, p: usize) -> (__m512i, f32, f32) {
        let (w0, d0) = self.block(2 * p);
        let (w1, d1) = if 2 * p + 1 < self.blocks {
            self.block(2 * p + 1)
        } else {
            (_mm256_setzero_si256(), 0.0)
        };
        (
            _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1),
            d0,
            d1,
        )
    }

    /// Block `b` as 32 unsigned bytes `w + 128`, and its scale.
    #[inline(always)]
    unsafe fn block(&self, b: usize) -> (__m256i, f32) {
        let block = self.bytes.as_ptr().add(b * self.block_bytes);
        let bits = std::ptr::read_unaligned(block as *const u16) as i32;
        let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)));
        let w = match self.dtype {
            // i8 w flipped at the sign bit is w + 128.
            GgmlDType::Q8_0 => _mm256_xor_si256(
                _mm256_loadu_si256(block.add(2) as *const __m256i),
                _mm256_set1_epi8(-128i8),
            ),
            // q in 0..=15 stands for q - 8.
            GgmlDType::Q4_0 => _mm256_add_epi8(nibbles(block.add(2)), _mm256_set1_epi8(120)),
            // The fifth bit of value i is bit i of the 32-bit `qh`; q in 0..=31 stands for q - 16.
            _ => {
                let high = std::ptr::read_unaligned(block.add(2) as *const u32);
                let fifth = _mm256_maskz_mov_epi8(high, _mm256_set1_epi8(0x10));
                _mm256_add_epi8(
                    _mm256_or_si256(nibbles(block.add(6)), fifth),
                    _mm256_set1_epi8(112),
                )
            }
        };
        (w, d)
    }
}

/// 16 bytes of nibbles as 32 bytes: the low nibbles first, then the high ones.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn nibbles(packed: *const u8) -> __m256i {
    let packed = _mm_loadu_si128(packed as *const __m128i);
    let low = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(packed, low);
    let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
    _mm256_set_m128i(hi, lo)
}

/// Two scales as 16 lanes, eight each.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn halves(d0: f32, d1: f32) -> __m512 {
    let (d0, d1) = (_mm256_set1_ps(d0), _mm256_set1_ps(d1));
    _mm512_castpd_ps(_mm512_insertf64x4(
        _mm512_castpd256_pd512(_mm256_castps_pd(d0)),
        _mm256_castps_pd(d1),
        1,
    ))
}

/// `G` rows from `start` times one weight row, written to `out`, `out + n`, ...; the weight
/// row's block scales are left in `weight_scales`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn rows_times<const G: usize>(
    weights: &WeightRow,
    rows: &Rows,
    start: usize,
    out: *mut f32,
    n: usize,
    weight_scales: &mut [f32],
) {
    let mut acc = [_mm512_setzero_ps(); G];
    let zero = _mm512_setzero_si512();
    for p in 0..rows.pairs {
        let (w, d0, d1) = weights.pair(p);
        weight_scales[2 * p] = d0;
        weight_scales[2 * p + 1] = d1;
        let d_w = halves(d0, d1);
        for (g, a) in acc.iter_mut().enumerate() {
            let at = (start + g) * rows.pairs + p;
            let x = _mm512_loadu_si512(rows.q.as_ptr().add(at * 64) as *const _);
            let dot = _mm512_dpbusd_epi32(zero, w, x);
            let scale = _mm512_mul_ps(d_w, _mm512_loadu_ps(rows.scales.as_ptr().add(at * 16)));
            *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, *a);
        }
    }
    for (g, a) in acc.iter().enumerate() {
        let r = start + g;
        let excess = &rows.excess[r * rows.pairs * 2..(r + 1) * rows.pairs * 2];
        *out.add(g * n) = _mm512_reduce_add_ps(*a) - dot(weight_scales, excess);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < a.len() {
        let left = a.len() - i;
        let mask: __mmask16 = if left >= 16 {
            0xFFFF
        } else {
            (1u16 << left) - 1
        };
        let x = _mm512_maskz_loadu_ps(mask, a.as_ptr().add(i));
        let y = _mm512_maskz_loadu_ps(mask, b.as_ptr().add(i));
        acc = _mm512_fmadd_ps(x, y, acc);
        i += 16;
    }
    _mm512_reduce_add_ps(acc)
}
