//! bf16 matrix products on x86 CPUs with AVX-512 BF16 (`vdpbf16ps`): `x · Wᵀ (+ bias)` for a
//! linear layer whose weight `W` (out, in) is packed once, when the layer is built.
//!
//! `vdpbf16ps` multiplies pairs of bf16 values and adds both products to one f32 lane, so the
//! weight is stored as pairs along its input dimension, in panels of [`PANEL`] output columns:
//! `panel[pair][column]` holds `(W[column][2 pair], W[column][2 pair + 1])` as one u32. A
//! micro-kernel keeps a [`MAX_ROWS`] x [`PANEL`] block of f32 sums in registers, broadcasts one
//! pair of an input row against three vectors of a panel per step, and walks the input dimension
//! in blocks of [`BLOCK_PAIRS`] so that the panel's slice stays in the core's caches. Sums stay
//! in f32 until the bias is added; the result is rounded to bf16 once, as torch's oneDNN path
//! rounds it. Output columns are shared out between threads (rayon).

use half::bf16;
use rayon::prelude::*;

use super::elementwise::{gelu_tanh_in_place, round_to_bf16};

/// Output columns per panel: three 16-lane vectors.
pub const PANEL: usize = 48;
/// Input rows per micro-kernel call (3 x 8 = 24 of the 32 vector registers hold sums).
pub const MAX_ROWS: usize = 8;
/// Pairs of the input dimension per cache block (1024 values: a 192 KiB panel slice).
const BLOCK_PAIRS: usize = 512;

/// Whether this CPU runs [`PackedBf16::matmul`].
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A weight matrix (out, in) in the kernel's layout.
#[derive(Debug, Clone)]
pub struct PackedBf16 {
    out_dim: usize,
    in_dim: usize,
    /// `ceil(in_dim / 2)`: pairs along the input dimension (an odd last one is padded with zero).
    pairs: usize,
    /// `panels * pairs * PANEL` u32 pairs; columns past `out_dim` are zero.
    data: Vec<u32>,
}

impl PackedBf16 {
    /// Packs a row-major (out_dim, in_dim) matrix.
    pub fn pack(weight: &[bf16], out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(weight.len(), out_dim * in_dim, "weight of {} values is not {out_dim} x {in_dim}", weight.len());
        let pairs = in_dim.div_ceil(2);
        let panels = out_dim.div_ceil(PANEL);
        let mut data = vec![0u32; panels * pairs * PANEL];
        data.par_chunks_mut(pairs * PANEL).enumerate().for_each(|(panel, dst)| {
            for column in 0..PANEL.min(out_dim - panel * PANEL) {
                let row = &weight[(panel * PANEL + column) * in_dim..][..in_dim];
                for pair in 0..pairs {
                    let low = row[2 * pair].to_bits() as u32;
                    let high = row.get(2 * pair + 1).map_or(0, |v| v.to_bits() as u32);
                    dst[pair * PANEL + column] = low | (high << 16);
                }
            }
        });
        Self { out_dim, in_dim, pairs, data }
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Bytes held by the packed weight.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    fn panels(&self) -> usize {
        self.data.len() / (self.pairs * PANEL)
    }

    /// `x · Wᵀ` for `x` row-major (rows, in_dim): f32 sums in rows of `panels * PANEL` columns
    /// (the columns past `out_dim` are zero). Panics when [`available`] is false.
    fn padded_sums(&self, x: &[bf16], rows: usize, sums: &mut Vec<f32>) {
        assert!(available(), "this CPU has no AVX-512 BF16 instructions");
        assert_eq!(x.len(), rows * self.in_dim, "input of {} values is not {rows} x {}", x.len(), self.in_dim);
        // Rows are read as u32 pairs: an odd input width is padded so that every row starts on a pair.
        let padded;
        let x = if self.in_dim % 2 == 1 {
            padded = pad_rows(x, rows, self.in_dim);
            padded.as_slice()
        } else {
            x
        };
        let width = self.panels() * PANEL;
        // Every sum is written before it is read (the first input block stores, later ones add),
        // so a reused buffer needs no clearing.
        if sums.len() < rows * width {
            sums.resize(rows * width, 0.0);
        }
        let sums_ptr = SendPtr(sums.as_mut_ptr());
        let pairs = self.pairs;
        (0..self.panels()).into_par_iter().for_each(|panel| {
            let panel_data = &self.data[panel * pairs * PANEL..][..pairs * PANEL];
            let sums_ptr = &sums_ptr;
            for block in (0..pairs).step_by(BLOCK_PAIRS) {
                let block_pairs = BLOCK_PAIRS.min(pairs - block);
                for row in (0..rows).step_by(MAX_ROWS) {
                    // SAFETY: each panel writes only its own PANEL columns of `sums`; the input
                    // rows hold `pairs` u32 each; `available()` was checked above.
                    unsafe {
                        let a = (x.as_ptr() as *const u32).add(row * pairs + block);
                        let b = panel_data.as_ptr().add(block * PANEL);
                        let c = sums_ptr.0.add(row * width + panel * PANEL);
                        x86::block(MAX_ROWS.min(rows - row), a, pairs, b, block_pairs, c, width, block > 0);
                    }
                }
            }
        });
    }

    /// `activation(x · Wᵀ + bias)` in f32, for `x` row-major (rows, in_dim). Panics when
    /// [`available`] is false.
    pub fn matmul_f32(&self, x: &[bf16], rows: usize, bias: Option<&[f32]>, activation: Activation) -> Vec<f32> {
        self.product(x, rows, bias, activation, |src, dst| dst.copy_from_slice(src))
    }

    /// `activation(x · Wᵀ + bias)` rounded to bf16 once, at the end.
    pub fn matmul(&self, x: &[bf16], rows: usize, bias: Option<&[f32]>, activation: Activation) -> Vec<bf16> {
        self.product(x, rows, bias, activation, round_to_bf16)
    }

    fn product<T: Copy + Default + Send>(
        &self,
        x: &[bf16],
        rows: usize,
        bias: Option<&[f32]>,
        activation: Activation,
        store: impl Fn(&[f32], &mut [T]) + Sync,
    ) -> Vec<T> {
        if let Some(bias) = bias {
            assert_eq!(bias.len(), self.out_dim, "bias of {} values for {} outputs", bias.len(), self.out_dim);
        }
        let mut sums = SUMS.take();
        self.padded_sums(x, rows, &mut sums);
        let width = self.panels() * PANEL;
        let out_dim = self.out_dim;
        let mut out = vec![T::default(); rows * out_dim];
        out.par_chunks_mut(out_dim).zip(sums[..rows * width].par_chunks(width)).for_each_init(
            || vec![0f32; out_dim],
            |row, (dst, src)| {
                row.copy_from_slice(&src[..out_dim]);
                if let Some(bias) = bias {
                    row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                }
                if activation == Activation::GeluTanh {
                    gelu_tanh_in_place(row);
                }
                store(row, dst);
            },
        );
        SUMS.set(sums);
        out
    }
}

/// What is applied to a product's f32 sums (after the bias) before they are rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    /// GELU, tanh approximation.
    GeluTanh,
}

fn pad_rows(x: &[bf16], rows: usize, in_dim: usize) -> Vec<bf16> {
    let mut padded = Vec::with_capacity(rows * (in_dim + 1));
    for row in x.chunks(in_dim) {
        padded.extend_from_slice(row);
        padded.push(bf16::ZERO);
    }
    padded
}

thread_local! {
    /// The f32 sums of the last product on this thread, kept for the next: products of a model's
    /// size would otherwise map and fault in tens of MB of fresh pages each time.
    static SUMS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

struct SendPtr(*mut f32);
// SAFETY: threads write disjoint columns through it (see `matmul_f32`).
unsafe impl Sync for SendPtr {}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::PANEL;

    /// Dispatches a block of `rows` (1..=8) input rows to the micro-kernel of that height.
    ///
    /// # Safety
    /// `a` points at `rows` rows of `lda` u32 pairs (at least `pairs` readable from each), `b` at
    /// `pairs * PANEL` u32, `c` at `rows` rows of `ldc` f32 (at least PANEL writable from each),
    /// and the CPU has AVX-512 F and BF16.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn block(rows: usize, a: *const u32, lda: usize, b: *const u32, pairs: usize, c: *mut f32, ldc: usize, accumulate: bool) {
        unsafe {
            match rows {
                8 => kernel::<8>(a, lda, b, pairs, c, ldc, accumulate),
                7 => kernel::<7>(a, lda, b, pairs, c, ldc, accumulate),
                6 => kernel::<6>(a, lda, b, pairs, c, ldc, accumulate),
                5 => kernel::<5>(a, lda, b, pairs, c, ldc, accumulate),
                4 => kernel::<4>(a, lda, b, pairs, c, ldc, accumulate),
                3 => kernel::<3>(a, lda, b, pairs, c, ldc, accumulate),
                2 => kernel::<2>(a, lda, b, pairs, c, ldc, accumulate),
                1 => kernel::<1>(a, lda, b, pairs, c, ldc, accumulate),
                _ => unreachable!("a block has 1 to 8 rows"),
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn kernel<const ROWS: usize>(a: *const u32, lda: usize, b: *const u32, pairs: usize, c: *mut f32, ldc: usize, accumulate: bool) {
        unsafe {
            let mut sums = [[_mm512_setzero_ps(); 3]; ROWS];
            if accumulate {
                for (r, row) in sums.iter_mut().enumerate() {
                    for (j, sum) in row.iter_mut().enumerate() {
                        *sum = _mm512_loadu_ps(c.add(r * ldc + 16 * j));
                    }
                }
            }
            for p in 0..pairs {
                let panel = b.add(p * PANEL);
                let columns: [__m512bh; 3] = [
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(panel as *const __m512i)),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(panel.add(16) as *const __m512i)),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(panel.add(32) as *const __m512i)),
                ];
                for (r, row) in sums.iter_mut().enumerate() {
                    let pair = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(a.add(r * lda + p).read_unaligned() as i32));
                    for (sum, column) in row.iter_mut().zip(&columns) {
                        *sum = _mm512_dpbf16_ps(*sum, pair, *column);
                    }
                }
            }
            for (r, row) in sums.iter().enumerate() {
                for (j, sum) in row.iter().enumerate() {
                    _mm512_storeu_ps(c.add(r * ldc + 16 * j), *sum);
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn block(_: usize, _: *const u32, _: usize, _: *const u32, _: usize, _: *mut f32, _: usize, _: bool) {
        unreachable!("available() is false off x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh normal-ish values each run (the seed is printed so that a failure can be replayed).
    fn random_bf16(len: usize, seed: &mut u64) -> Vec<bf16> {
        (0..len)
            .map(|_| {
                let mut uniform = || {
                    *seed ^= *seed << 13;
                    *seed ^= *seed >> 7;
                    *seed ^= *seed << 17;
                    (*seed >> 11) as f64 / (1u64 << 53) as f64
                };
                let (u, v) = (uniform().max(1e-12), uniform());
                bf16::from_f64((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos())
            })
            .collect()
    }

    fn reference(x: &[bf16], w: &[bf16], bias: Option<&[f32]>, rows: usize, out_dim: usize, in_dim: usize) -> Vec<f64> {
        let mut out = vec![0f64; rows * out_dim];
        for r in 0..rows {
            for o in 0..out_dim {
                let dot: f64 = (0..in_dim).map(|i| x[r * in_dim + i].to_f64() * w[o * in_dim + i].to_f64()).sum();
                out[r * out_dim + o] = dot + bias.map_or(0.0, |b| b[o] as f64);
            }
        }
        out
    }

    fn relative_error(got: impl Iterator<Item = f64>, want: &[f64]) -> f64 {
        let (mut diff, mut norm) = (0f64, 0f64);
        for (g, w) in got.zip(want) {
            diff += (g - w) * (g - w);
            norm += w * w;
        }
        (diff / norm).sqrt()
    }

    /// Awkward sizes: single rows and columns, odd input widths, partial panels and row blocks,
    /// input widths spanning several cache blocks.
    #[test]
    fn packed_products_match_f64() {
        if !available() {
            eprintln!("this CPU has no AVX-512 BF16: the packed kernel is never chosen here (linear layers use candle's matmul)");
            assert!(!crate::kernels::use_bf16_kernel(candle_core::DType::BF16, &candle_core::Device::Cpu));
            return;
        }
        let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
        eprintln!("seed {seed}");
        for (rows, in_dim, out_dim, with_bias) in
            [(1, 2, 1, false), (3, 13, 47, true), (9, 64, 48, false), (17, 1537, 100, true), (8, 2100, 49, false), (33, 96, 145, true)]
        {
            let x = random_bf16(rows * in_dim, &mut seed);
            let w = random_bf16(out_dim * in_dim, &mut seed);
            let bias: Option<Vec<f32>> = with_bias.then(|| random_bf16(out_dim, &mut seed).iter().map(|v| v.to_f32()).collect());
            let want = reference(&x, &w, bias.as_deref(), rows, out_dim, in_dim);
            let packed = PackedBf16::pack(&w, out_dim, in_dim);
            let sums = packed.matmul_f32(&x, rows, bias.as_deref(), Activation::None);
            let f32_error = relative_error(sums.iter().map(|v| *v as f64), &want);
            eprintln!("{rows}x{in_dim} by {out_dim}: f32 {f32_error:.1e}");
            assert!(f32_error < 1e-6, "{rows}x{in_dim} by {out_dim}: f32 sums off by {f32_error:e}");
            let rounded = packed.matmul(&x, rows, bias.as_deref(), Activation::None);
            let bf16_error = relative_error(rounded.iter().map(|v| v.to_f64()), &want);
            assert!(bf16_error < 4e-3, "{rows}x{in_dim} by {out_dim}: bf16 output off by {bf16_error:e}");

            let gelu = |v: f64| 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh());
            let want_gelu: Vec<f64> = want.iter().map(|v| gelu(*v)).collect();
            let fused = packed.matmul_f32(&x, rows, bias.as_deref(), Activation::GeluTanh);
            let gelu_error = relative_error(fused.iter().map(|v| *v as f64), &want_gelu);
            assert!(gelu_error < 1e-6, "{rows}x{in_dim} by {out_dim}: GELU epilogue off by {gelu_error:e}");
        }
    }
}
