//! A batch of rows times a Q8_0 or Q4_0 matrix on AVX-512 VNNI (x86-64 CPUs that have it,
//! detected at run time). candle's kernels compute one dot product per (row, column), so a
//! decoding batch of 8 cost nearly 8 single rows; here each weight block is loaded and
//! unpacked once and serves every row of the batch, with `vpdpbusd` doing 32 multiply-adds per
//! instruction. Rows are quantised to 8 bits per block of 32, as candle's kernels do.

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
            is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rows quantised per block of 32: values shifted to unsigned (`q + 128`) and a scale each.
pub struct Rows {
    pub m: usize,
    blocks: usize,
    q: Vec<u8>,
    d: Vec<f32>,
}

pub fn quantise(x: &[f32], m: usize, k: usize) -> Rows {
    let blocks = k / BLOCK;
    let mut q = vec![0u8; m * k];
    let mut d = vec![0f32; m * blocks];
    for (i, (values, out)) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .enumerate()
    {
        let amax = values.iter().fold(0f32, |a, v| a.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        for (o, v) in out.iter_mut().zip(values) {
            *o = ((v * inv).round().clamp(-127.0, 127.0) as i32 + 128) as u8;
        }
        d[i] = scale;
    }
    Rows { m, blocks, q, d }
}

/// `out[r * n + j] = row r · weight row j` for the weight rows `first..first + count`, whose
/// blocks are `data` (Q8_0: 34 bytes a block, Q4_0: 18).
///
/// # Safety
/// The CPU must have the features [`available`] checks; `out` must hold `rows.m * n` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
pub unsafe fn product(
    dtype: GgmlDType,
    data: &[u8],
    rows: &Rows,
    first: usize,
    count: usize,
    n: usize,
    out: *mut f32,
) {
    let block_bytes = if dtype == GgmlDType::Q8_0 { 34 } else { 18 };
    let row_bytes = rows.blocks * block_bytes;
    let c128 = _mm256_set1_epi8(-128i8);
    let zero = _mm256_setzero_si256();
    let low = _mm_set1_epi8(0x0F);
    let eight = _mm256_set1_epi8(8);
    const GROUP: usize = 8;
    for j in first..first + count {
        let weights = &data[j * row_bytes..(j + 1) * row_bytes];
        let mut start = 0;
        while start < rows.m {
            let group = GROUP.min(rows.m - start);
            let mut acc = [_mm256_setzero_ps(); GROUP];
            for b in 0..rows.blocks {
                let block = &weights[b * block_bytes..(b + 1) * block_bytes];
                let bits = u16::from_le_bytes([block[0], block[1]]) as i32;
                let d_w = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)));
                let w = if dtype == GgmlDType::Q8_0 {
                    _mm256_loadu_si256(block[2..].as_ptr() as *const __m256i)
                } else {
                    let packed = _mm_loadu_si128(block[2..].as_ptr() as *const __m128i);
                    let lo = _mm_and_si128(packed, low);
                    let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
                    _mm256_sub_epi8(_mm256_set_m128i(hi, lo), eight)
                };
                // Σ 128·w, to take back out of each row's dot product of (q + 128)·w.
                let shift = _mm256_dpbusd_epi32(zero, c128, w);
                for (g, a) in acc.iter_mut().enumerate().take(group) {
                    let r = start + g;
                    let at = (r * rows.blocks + b) * BLOCK;
                    let xq = _mm256_loadu_si256(rows.q[at..].as_ptr() as *const __m256i);
                    let dot = _mm256_sub_epi32(_mm256_dpbusd_epi32(zero, xq, w), shift);
                    let scale = _mm256_set1_ps(d_w * rows.d[r * rows.blocks + b]);
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, *a);
                }
            }
            for (g, a) in acc.iter().enumerate().take(group) {
                let hi = _mm256_extractf128_ps(*a, 1);
                let s = _mm_add_ps(_mm256_castps256_ps128(*a), hi);
                let s = _mm_hadd_ps(s, s);
                let s = _mm_hadd_ps(s, s);
                *out.add((start + g) * n + j) = _mm_cvtss_f32(s);
            }
            start += group;
        }
    }
}
