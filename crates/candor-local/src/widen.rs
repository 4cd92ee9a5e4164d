//! candle has hand-vectorised dot products for Q4_0, Q8_0 and the K-quants, but not for Q5_0,
//! whose scalar path took 69% of Qwen2.5's decode time. Where the VNNI kernel runs
//! (`vnni.rs`), it reads Q5_0 as it is. Elsewhere: a Q5_0 block is a scale and 32 integers in
//! -16..=15; a Q8_0 block is the same scale and 32 integers in -128..=127. So a Q5_0 matrix
//! rewritten as Q8_0 holds exactly the same numbers and runs on candle's fast kernels, for 12
//! more bytes per 32 weights.
//!
//! Q4_1 (SmolLM2) and Q5_1 blocks hold `d * q + m` with unsigned `q`: that is `d * (q - 8) + c`
//! (Q4_0's encoding, `c = 8d + m`) or `d * (q - 16) + c` (Q8_0's, `c = 16d + m`). So such a
//! matrix becomes a fast one plus a per-block offset, and `W x = Q x + C s(x)` where `s(x)`
//! sums `x` over each block of 32: an f32 product 32 times smaller than the matrix.

use std::borrow::Cow;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Result, Tensor, D};

const Q5_0_BLOCK: usize = 22;
const Q8_0_BLOCK: usize = 34;
const Q4_1_BLOCK: usize = 20;
const Q5_1_BLOCK: usize = 24;

fn f16_at(bytes: &[u8]) -> f32 {
    half_to_f32(u16::from_le_bytes([bytes[0], bytes[1]]))
}

/// IEEE half to single precision (exact).
fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let shift = m.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((m << shift) & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Q4_1 blocks as Q4_0 blocks and the offset `8d + m` of each.
fn q4_1_split(q4: &[u8]) -> (Vec<u8>, Vec<f32>) {
    let blocks = q4.len() / Q4_1_BLOCK;
    let mut out = Vec::with_capacity(blocks * 18);
    let mut offsets = Vec::with_capacity(blocks);
    for block in q4.chunks_exact(Q4_1_BLOCK) {
        let (d, m) = (f16_at(&block[0..2]), f16_at(&block[2..4]));
        out.extend_from_slice(&block[0..2]);
        out.extend_from_slice(&block[4..20]);
        offsets.push(8.0 * d + m);
    }
    (out, offsets)
}

/// Q5_1 blocks as Q8_0 blocks and the offset `16d + m` of each.
fn q5_1_split(q5: &[u8]) -> (Vec<u8>, Vec<f32>) {
    let blocks = q5.len() / Q5_1_BLOCK;
    let mut out = Vec::with_capacity(blocks * Q8_0_BLOCK);
    let mut offsets = Vec::with_capacity(blocks);
    for block in q5.chunks_exact(Q5_1_BLOCK) {
        let (d, m) = (f16_at(&block[0..2]), f16_at(&block[2..4]));
        let qh = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
        out.extend_from_slice(&block[0..2]);
        let mut values = [0i8; 32];
        for (j, &q) in block[8..24].iter().enumerate() {
            let high0 = (((qh >> j) << 4) & 0x10) as u8;
            let high1 = ((qh >> (j + 12)) & 0x10) as u8;
            values[j] = (((q & 0x0F) | high0) as i8) - 16;
            values[j + 16] = (((q >> 4) | high1) as i8) - 16;
        }
        out.extend(values.iter().map(|&v| v as u8));
        offsets.push(16.0 * d + m);
    }
    (out, offsets)
}

/// A weight matrix on candle's fastest kernels, with the per-block offsets that encoding
/// needs, if any.
pub struct Linear {
    matrix: QMatMul,
    /// `(cols / 32, rows)`: transposed once here rather than at every product.
    offsets: Option<Tensor>,
}

impl Linear {
    pub fn new(t: QTensor) -> Result<Linear> {
        let (rows, cols) = t.shape().dims2()?;
        let split = match t.dtype() {
            GgmlDType::Q4_1 => Some((q4_1_split(&t.data()?), GgmlDType::Q4_0)),
            GgmlDType::Q5_1 => Some((q5_1_split(&t.data()?), GgmlDType::Q8_0)),
            _ => None,
        };
        let Some(((blocks, offsets), dtype)) = split else {
            return Ok(Linear {
                matrix: QMatMul::from_qtensor(for_speed(t)?)?,
                offsets: None,
            });
        };
        let storage = QStorage::from_data(Cow::Owned(blocks), &Device::Cpu, dtype)?;
        Ok(Linear {
            matrix: QMatMul::from_qtensor(QTensor::new(storage, (rows, cols))?)?,
            offsets: Some(
                Tensor::from_vec(offsets, (rows, cols / 32), &Device::Cpu)?
                    .t()?
                    .contiguous()?,
            ),
        })
    }

    /// The same matrix in f32, multiplied exactly (for tests that must tell a wrong position
    /// or cache apart from 8-bit rounding).
    pub fn exact(&self) -> Result<Linear> {
        let matrix = match &self.matrix {
            QMatMul::QTensor(q) => QMatMul::Tensor(q.dequantize(&Device::Cpu)?),
            other => other.clone(),
        };
        Ok(Linear {
            matrix,
            offsets: self.offsets.clone(),
        })
    }

    /// candle multiplies a single row by a Q6_K matrix on another kernel than a batch of rows
    /// (`repack_x86::select`), which rounds differently: an answer decoded alone would then
    /// differ from the same answer decoded beside others.
    fn single_row_rounds_differently(&self, x: &Tensor) -> bool {
        matches!(&self.matrix, QMatMul::QTensor(q) if q.dtype() == GgmlDType::Q6K)
            && x.dims().first() == Some(&1)
    }

    /// The matrix's rows `ids` in f32: a token embedding's lookup.
    pub fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        let rows = match &self.matrix {
            QMatMul::QTensor(q) => q.embedding(ids)?,
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => {
                t.index_select(ids, 0)?.to_dtype(candle_core::DType::F32)?
            }
        };
        let Some(offsets) = &self.offsets else {
            return Ok(rows);
        };
        // Each block of 32 values gets its offset back.
        let (n, cols) = rows.dims2()?;
        let per_block = offsets.index_select(ids, 1)?.t()?;
        let spread = per_block
            .unsqueeze(2)?
            .broadcast_as((n, cols / 32, 32))?
            .reshape((n, cols))?;
        rows + spread
    }

    /// `x` is `(rows, cols)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match self.batched(x)? {
            Some(y) => y,
            None if self.single_row_rounds_differently(x) => {
                // Two copies of the row take the batch path; the first is the answer.
                let twice = Tensor::cat(&[x, x], 0)?;
                self.matrix.forward(&twice)?.narrow(0, 0, 1)?
            }
            None => self.matrix.forward(x)?,
        };
        match &self.offsets {
            None => Ok(y),
            Some(offsets) => {
                let (n, k) = x.dims2()?;
                let sums = x.reshape((n, k / 32, 32))?.sum(D::Minus1)?;
                y + sums.matmul(offsets)?
            }
        }
    }
}

/// Q5_0 blocks re-encoded as Q8_0 blocks with identical values.
pub fn q5_0_to_q8_0(q5: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(q5.len() / Q5_0_BLOCK * Q8_0_BLOCK);
    for block in q5.chunks_exact(Q5_0_BLOCK) {
        let (d, rest) = block.split_at(2);
        let (qh, qs) = rest.split_at(4);
        let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
        out.extend_from_slice(d);
        let mut values = [0i8; 32];
        for (j, &q) in qs.iter().enumerate() {
            let high0 = (((qh >> j) << 4) & 0x10) as u8;
            let high1 = ((qh >> (j + 12)) & 0x10) as u8;
            values[j] = (((q & 0x0F) | high0) as i8) - 16;
            values[j + 16] = (((q >> 4) | high1) as i8) - 16;
        }
        out.extend(values.iter().map(|&v| v as u8));
    }
    out
}

/// The tensor in the fastest exact encoding candle has for it.
pub fn for_speed(t: QTensor) -> Result<QTensor> {
    if t.dtype() != GgmlDType::Q5_0 || crate::vnni::available() {
        return Ok(t);
    }
    widen_q5_0(t)
}

fn widen_q5_0(t: QTensor) -> Result<QTensor> {
    let widened = q5_0_to_q8_0(&t.data()?);
    let storage = QStorage::from_data(Cow::Owned(widened), &Device::Cpu, GgmlDType::Q8_0)?;
    QTensor::new(storage, t.shape().clone())
}

/// From this many rows on (a prompt, not a decoding batch), a product unpacks the weights in
/// cache-sized slices and multiplies in f32. candle's quantised kernels cost each row what one
/// row costs; this way a slice of weights, once unpacked, serves every row. Unpacking costs
/// about what 16 rows of candle's kernels do (measured with `candor model bench`: at 8 rows
/// it was 0.6x as fast, for a 128-token prompt 2.2x as fast), so below this candle's stay.
const BATCHED_ROWS: usize = 32;
/// The most sequences that decode together: more would take the prompt path above, which
/// rounds differently, and an answer would depend on how many decoded beside it.
pub const MOST_DECODING_ROWS: usize = BATCHED_ROWS - 1;
/// Weight rows unpacked at a time: a slice stays in the core's cache while it is used.
const SLICE_ROWS: usize = 64;

impl Linear {
    fn batched(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let QMatMul::QTensor(q) = &self.matrix else {
            return Ok(None);
        };
        let (m, k) = x.dims2()?;
        let dtype = q.dtype();
        if crate::vnni::block_bytes(dtype).is_none() || k % 32 != 0 {
            return Ok(None);
        }
        let (n, cols) = q.shape().dims2()?;
        if cols != k {
            candle_core::bail!("a {m}x{k} input does not fit a {n}x{cols} matrix");
        }
        // Single rows too: the kernel is at least as fast as candle's for them (and candle has
        // no vectorised Q5_0 product), and every decoding step of every sequence then goes
        // through the same kernel, so an answer does not depend on what else decoded beside
        // it (kernels round differently, which can flip a near-tie).
        if m < BATCHED_ROWS && crate::vnni::available() {
            return self.decoding_batch(q, x).map(Some);
        }
        if m < BATCHED_ROWS {
            return Ok(None);
        }
        let data = q.data()?;
        let row_bytes = data.len() / n;
        let lhs: Vec<f32> = x.contiguous()?.flatten_all()?.to_vec1()?;
        let mut out = vec![0f32; m * n];
        let out_at = out.as_mut_ptr() as usize;
        in_parallel(n.div_ceil(SLICE_ROWS), |slice| {
            let first = slice * SLICE_ROWS;
            let rows = SLICE_ROWS.min(n - first);
            let bytes = &data[first * row_bytes..(first + rows) * row_bytes];
            let mut weights = vec![0f32; rows * k];
            match dtype {
                GgmlDType::Q8_0 => unpack_q8_0(bytes, &mut weights),
                GgmlDType::Q5_0 => unpack_q5_0(bytes, &mut weights),
                _ => unpack_q4_0(bytes, &mut weights),
            }
            // SAFETY: every slice writes only its own columns `first..first + rows` of `out`,
            // which outlives the parallel loop; the strides describe the buffers' real shapes.
            unsafe {
                gemm::gemm(
                    m,
                    rows,
                    k,
                    (out_at as *mut f32).add(first),
                    1,
                    n as isize,
                    false,
                    lhs.as_ptr(),
                    1,
                    k as isize,
                    weights.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
        Ok(Some(Tensor::from_vec(out, (m, n), &Device::Cpu)?))
    }
}

/// Runs `work(0..items)` on candle's compute threads. They spin a while after each of candle's
/// own products; work handed to another pool (rayon's) competed with that spinning for the
/// cores (14% of a batched decode's time went to it).
fn in_parallel(items: usize, work: impl Fn(usize) + Sync) {
    candle_core::utils::barrier_pool().execute_chunked(items, |range| range.for_each(&work));
}

impl Linear {
    /// A decoding batch on the VNNI kernel: each weight block serves every row.
    fn decoding_batch(&self, q: &QTensor, x: &Tensor) -> Result<Tensor> {
        let (m, k) = x.dims2()?;
        let (n, _) = q.shape().dims2()?;
        let data = q.data()?;
        let lhs: Vec<f32> = x.contiguous()?.flatten_all()?.to_vec1()?;
        let rows = crate::vnni::quantise(&lhs, m, k);
        let mut out = vec![0f32; m * n];
        let out_at = out.as_mut_ptr() as usize;
        let dtype = q.dtype();
        in_parallel(n.div_ceil(SLICE_ROWS), |slice| {
            let first = slice * SLICE_ROWS;
            let count = SLICE_ROWS.min(n - first);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available()` was checked and the kernel reads `dtype`; each slice writes
            // only its own columns of `out`, which holds m * n values and outlives the loop.
            unsafe {
                crate::vnni::product(dtype, &data, &rows, first, count, n, out_at as *mut f32);
            }
        });
        Tensor::from_vec(out, (m, n), &Device::Cpu)
    }
}

fn unpack_q8_0(blocks: &[u8], out: &mut [f32]) {
    for (block, values) in blocks
        .chunks_exact(Q8_0_BLOCK)
        .zip(out.chunks_exact_mut(32))
    {
        let d = f16_at(&block[0..2]);
        for (v, &q) in values.iter_mut().zip(&block[2..34]) {
            *v = (q as i8) as f32 * d;
        }
    }
}

fn unpack_q5_0(blocks: &[u8], out: &mut [f32]) {
    for (block, values) in blocks
        .chunks_exact(Q5_0_BLOCK)
        .zip(out.chunks_exact_mut(32))
    {
        let d = f16_at(&block[0..2]);
        let high = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
        for (i, v) in values.iter_mut().enumerate() {
            let nibble = if i < 16 {
                block[6 + i] & 0x0F
            } else {
                block[6 + i - 16] >> 4
            };
            let fifth = ((high >> i) & 1) << 4;
            *v = ((nibble as u32 | fifth) as i32 - 16) as f32 * d;
        }
    }
}

fn unpack_q4_0(blocks: &[u8], out: &mut [f32]) {
    for (block, values) in blocks.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
        let d = f16_at(&block[0..2]);
        for (j, &q) in block[2..18].iter().enumerate() {
            values[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            values[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    /// A `rows x cols` matrix of varied values, the same on every run.
    fn matrix(rows: usize, cols: usize, step: usize, modulus: usize, scale: f32) -> Tensor {
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * step % modulus) as f32 - (modulus / 2) as f32) / scale)
            .collect();
        Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap()
    }

    fn flat(t: Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// `x` times the quantised `w`, in f32 on the stored weights.
    fn exact_product(w: &Tensor, x: &Tensor, dtype: GgmlDType) -> Vec<f32> {
        let stored = QTensor::quantize(w, dtype)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        flat(x.matmul(&stored.t().unwrap()).unwrap())
    }

    fn worst(got: &[f32], exact: &[f32]) -> f32 {
        got.iter()
            .zip(exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    fn linear(w: &Tensor, dtype: GgmlDType) -> Linear {
        Linear::new(QTensor::quantize(w, dtype).unwrap()).unwrap()
    }

    #[test]
    fn widened_q5_0_holds_exactly_the_same_weights() {
        let q5 = QTensor::quantize(&matrix(64, 32, 37, 101, 7.0), GgmlDType::Q5_0).unwrap();
        let weights = |q: &QTensor| flat(q.dequantize(&Device::Cpu).unwrap());
        let before = weights(&q5);
        let q8 = widen_q5_0(q5).unwrap();
        assert_eq!(q8.dtype(), GgmlDType::Q8_0);
        assert_eq!(before, weights(&q8));
    }

    #[test]
    fn offset_encodings_compute_the_same_products() {
        let (w, x) = (matrix(16, 64, 53, 89, 11.0), matrix(3, 64, 17, 23, 5.0));
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q5_1] {
            let exact = exact_product(&w, &x, dtype);
            // candle's own kernel for the type, which quantises x to 8 bits as the fast one does.
            let q = QTensor::quantize(&w, dtype).unwrap();
            let original = worst(
                &flat(QMatMul::from_qtensor(q).unwrap().forward(&x).unwrap()),
                &exact,
            );
            let fast = worst(&flat(linear(&w, dtype).forward(&x).unwrap()), &exact);
            // Neither is exact; the fast one may be no further off than candle's own.
            assert!(
                fast <= 1.5 * original + 1e-3,
                "{dtype:?}: {fast} vs {original}"
            );
        }
    }

    const TYPES: [GgmlDType; 4] = [
        GgmlDType::Q8_0,
        GgmlDType::Q4_0,
        GgmlDType::Q5_0,
        GgmlDType::Q4_1,
    ];

    #[test]
    fn batched_products_unpack_the_weights_exactly() {
        let (w, x) = (matrix(200, 64, 31, 97, 9.0), matrix(40, 64, 13, 29, 3.0));
        for dtype in TYPES {
            let exact = exact_product(&w, &x, dtype);
            // Forty rows take the batched path, which multiplies the stored weights in f32.
            let got = flat(linear(&w, dtype).forward(&x).unwrap());
            for (a, b) in exact.iter().zip(&got) {
                assert!(
                    (a - b).abs() <= 1e-3 * a.abs().max(1.0),
                    "{dtype:?}: {a} vs {b}"
                );
            }
        }
    }

    /// Each row of `x` through `forward` alone.
    fn row_by_row(forward: impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Vec<f32> {
        (0..x.dim(0).unwrap())
            .flat_map(|r| flat(forward(&x.narrow(0, r, 1).unwrap())))
            .collect()
    }

    #[test]
    fn decoding_batches_are_as_close_as_candles_own_kernels() {
        let (w, x) = (matrix(300, 128, 29, 83, 13.0), matrix(11, 128, 7, 31, 4.0));
        for dtype in TYPES {
            let exact = exact_product(&w, &x, dtype);
            // Eleven rows: the VNNI kernel where the CPU has it, candle's otherwise.
            let batched = worst(&flat(linear(&w, dtype).forward(&x).unwrap()), &exact);
            let candle = QMatMul::from_qtensor(QTensor::quantize(&w, dtype).unwrap()).unwrap();
            let single = worst(&row_by_row(|r| candle.forward(r).unwrap(), &x), &exact);
            assert!(
                batched <= 1.5 * single + 1e-3,
                "{dtype:?}: {batched} vs {single}"
            );
        }
    }

    #[test]
    fn a_batch_computes_what_its_rows_compute_alone() {
        // Odd block counts, several register groups, more rows than a slice.
        for (n, k, m) in [
            (264, 64, 2),
            (32, 96, 3),
            (300, 128, 11),
            (70, 896, 8),
            (65, 160, 13),
            (40, 64, 31),
        ] {
            let (w, x) = (matrix(n, k, 29, 83, 13.0), matrix(m, k, 7, 31, 4.0));
            for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q5_0] {
                let linear = linear(&w, dtype);
                let batched = flat(linear.forward(&x).unwrap());
                let alone = row_by_row(|r| linear.forward(r).unwrap(), &x);
                if crate::vnni::available() {
                    // One kernel whatever the batch: bit for bit.
                    assert_eq!(batched, alone, "{dtype:?} {n}x{k} m={m}");
                    continue;
                }
                for (a, b) in batched.iter().zip(&alone) {
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{dtype:?} {n}x{k} m={m}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn k_quant_rows_alone_round_as_they_do_in_a_batch() {
        if !crate::vnni::available() {
            return;
        }
        let (w, x) = (matrix(64, 512, 29, 83, 13.0), matrix(5, 512, 7, 31, 4.0));
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let linear = linear(&w, dtype);
            let batched = flat(linear.forward(&x).unwrap());
            let alone = row_by_row(|r| linear.forward(r).unwrap(), &x);
            assert_eq!(batched, alone, "{dtype:?}");
        }
    }

    #[test]
    fn q5_0_is_widened_only_where_the_kernel_cannot_read_it() {
        let q5 = QTensor::quantize(&matrix(8, 64, 37, 101, 7.0), GgmlDType::Q5_0).unwrap();
        let kept = for_speed(q5).unwrap().dtype();
        let expected = if crate::vnni::available() {
            GgmlDType::Q5_0
        } else {
            GgmlDType::Q8_0
        };
        assert_eq!(kept, expected);
    }

    #[test]
    fn an_embedding_lookup_gives_the_stored_rows() {
        let w = matrix(40, 64, 53, 89, 11.0);
        let ids = Tensor::new(&[3u32, 0, 39, 3], &Device::Cpu).unwrap();
        for dtype in [
            GgmlDType::Q8_0,
            GgmlDType::Q5_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_1,
        ] {
            let stored = QTensor::quantize(&w, dtype)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap();
            let expected = flat(stored.index_select(&ids, 0).unwrap());
            let got = flat(linear(&w, dtype).rows(&ids).unwrap());
            assert_eq!(got.len(), expected.len());
            // Offset encodings add `8d + m` back: the same number up to f32 rounding.
            assert!(worst(&got, &expected) < 1e-5, "{dtype:?}");
        }
    }

    #[test]
    fn halves_convert_exactly() {
        for (h, f) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x0001, 5.960_464_5e-8),
            (0x7bff, 65504.0),
            (0, 0.0),
        ] {
            assert_eq!(half_to_f32(h), f);
        }
    }
}
