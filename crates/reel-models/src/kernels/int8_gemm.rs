//! int8 matrix products on x86 CPUs with AVX-512 VNNI (`vpdpbusd`): `x · Wᵀ (+ bias)` with the
//! weight quantized once, when its layer is built, and the input quantized at each call.
//!
//! Weights are symmetric int8 with one scale per output channel (`max |w| / 127`); each input row
//! gets its own scale the same way ("per-token"). `vpdpbusd` multiplies unsigned by signed bytes,
//! so inputs are stored offset by 128 (`u = q + 128`) and the offset's contribution,
//! `128 · Σ w_q`, is taken back from each column's i32 sum before scaling. Weights take one byte
//! per value in the layout of [`super::panels`] (quads of int8 per u32).

use rayon::prelude::*;

use super::bf16_gemm::{finish_row, Activation};
use super::elementwise::{round_nearest, Finished};
use super::panels::{supports, with_row, Instruction, Panels};

/// Whether this CPU runs [`PackedInt8::matmul`].
pub fn available() -> bool {
    supports(Instruction::Int8Quads)
}

/// `values` quantized to `levels`: the scale (`max |v| / 127`, 1 for an all-zero row) and the
/// integers, rounded to nearest.
fn quantize_row(values: &[f32], levels: &mut [i8]) -> f32 {
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let inverse = 1.0 / scale;
    levels.iter_mut().zip(values).for_each(|(q, v)| *q = round_nearest(v * inverse).clamp(-127.0, 127.0) as i8);
    scale
}

/// A weight matrix (out, in) quantized and packed for the kernel.
#[derive(Debug, Clone)]
pub struct PackedInt8 {
    in_dim: usize,
    panels: Panels,
    /// Per output channel.
    scales: Vec<f32>,
    /// Per output channel: the sum of its quantized weights.
    column_sums: Vec<i32>,
}

impl PackedInt8 {
    /// Quantizes and packs a row-major (out_dim, in_dim) f32 matrix.
    pub fn quantize(weight: &[f32], out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(weight.len(), out_dim * in_dim, "weight of {} values is not {out_dim} x {in_dim}", weight.len());
        let quads = in_dim.div_ceil(4);
        let mut levels = vec![0i8; out_dim * quads * 4];
        let mut scales = Vec::with_capacity(out_dim);
        for (row, dst) in weight.chunks(in_dim).zip(levels.chunks_mut(quads * 4)) {
            scales.push(quantize_row(row, &mut dst[..in_dim]));
        }
        let column_sums = levels.chunks(quads * 4).map(|row| row.iter().map(|q| *q as i32).sum()).collect();
        let panels = Panels::pack(out_dim, quads, |column, quad| {
            let q = &levels[column * quads * 4 + quad * 4..][..4];
            u32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8])
        });
        Self { in_dim, panels, scales, column_sums }
    }

    /// Bytes held by the packed weight and its scales.
    pub fn bytes(&self) -> usize {
        self.panels.bytes() + 8 * self.scales.len()
    }

    /// `activation(x · Wᵀ + bias)` for `x` row-major (rows, in_dim), in f32 or rounded once to
    /// bf16 (`T`). Panics when [`available`] is false.
    pub fn matmul<T: Finished>(&self, x: &[f32], rows: usize, bias: Option<&[f32]>, activation: Activation) -> Vec<T> {
        assert_eq!(x.len(), rows * self.in_dim, "input of {} values is not {rows} x {}", x.len(), self.in_dim);
        let quads = self.panels.groups;
        let mut packed = vec![0u32; rows * quads];
        let mut input_scales = vec![0f32; rows];
        packed.par_chunks_mut(quads).zip(x.par_chunks(self.in_dim)).zip(input_scales.par_iter_mut()).for_each_init(
            || vec![0i8; quads * 4],
            |levels, ((dst, row), scale)| {
                *scale = quantize_row(row, &mut levels[..self.in_dim]);
                for (d, q) in dst.iter_mut().zip(levels.chunks(4)) {
                    // Offset to unsigned; the padding beyond in_dim meets zero weights.
                    *d = u32::from_le_bytes([q[0] as u8 ^ 0x80, q[1] as u8 ^ 0x80, q[2] as u8 ^ 0x80, q[3] as u8 ^ 0x80]);
                }
            },
        );
        self.panels.product(Instruction::Int8Quads, &packed, rows, |r, sums, dst| {
            let values = sums
                .iter()
                .zip(&self.column_sums)
                .zip(&self.scales)
                .map(|((s, column_sum), scale)| (*s as i32 - 128 * column_sum) as f32 * scale * input_scales[r]);
            with_row(values, |row| {
                finish_row(row, bias, activation);
                T::store(row, dst);
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: &mut u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                let mut uniform = || {
                    *seed ^= *seed << 13;
                    *seed ^= *seed >> 7;
                    *seed ^= *seed << 17;
                    (*seed >> 11) as f64 / (1u64 << 53) as f64
                };
                let (u, v) = (uniform().max(1e-12), uniform());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect()
    }

    fn relative_error(got: &[f32], want: &[f64]) -> f64 {
        let diff: f64 = got.iter().zip(want).map(|(g, w)| (*g as f64 - w).powi(2)).sum();
        let norm: f64 = want.iter().map(|w| w * w).sum();
        (diff / norm).sqrt()
    }

    /// The kernel's integer arithmetic equals an exact emulation of the same quantization, and the
    /// quantization itself stays within int8's error of the f64 product, at awkward sizes.
    #[test]
    fn int8_products_match_their_emulation_and_f64() {
        if !available() {
            eprintln!("this CPU has no AVX-512 VNNI: q8 layers use candle's Q8_0 kernels here");
            return;
        }
        let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
        eprintln!("seed {seed}");
        for (rows, in_dim, out_dim) in [(1, 4, 1), (3, 13, 47), (9, 64, 48), (17, 1537, 100), (8, 2100, 49)] {
            let x = random(rows * in_dim, &mut seed);
            let w = random(out_dim * in_dim, &mut seed);
            let bias = random(out_dim, &mut seed);
            let packed = PackedInt8::quantize(&w, out_dim, in_dim);
            let got = packed.matmul::<f32>(&x, rows, Some(&bias), Activation::None);

            let (mut wq, mut xq) = (vec![0i8; in_dim], vec![0i8; in_dim]);
            let w_scales: Vec<(f32, Vec<i8>)> = w.chunks(in_dim).map(|r| (quantize_row(r, &mut wq), wq.clone())).collect();
            let mut emulated = Vec::new();
            let mut exact = Vec::new();
            for r in 0..rows {
                let row = &x[r * in_dim..][..in_dim];
                let x_scale = quantize_row(row, &mut xq);
                for (o, (w_scale, levels)) in w_scales.iter().enumerate() {
                    let dot: i64 = xq.iter().zip(levels).map(|(a, b)| *a as i64 * *b as i64).sum();
                    let product = dot as f64 * *w_scale as f64 * x_scale as f64;
                    emulated.push(product + bias[o] as f64);
                    // The kernel's integer sums are exact; only its f32 scaling and bias add round.
                    let arithmetic = (got[r * out_dim + o] as f64 - emulated.last().unwrap()).abs();
                    let magnitude = product.abs() + (bias[o] as f64).abs();
                    assert!(arithmetic <= 1e-6 * magnitude + 1e-30, "{rows}x{in_dim} by {out_dim}, output {r},{o}: off its emulation by {arithmetic:e}");
                    let weights = &w[o * in_dim..][..in_dim];
                    let true_dot: f64 = row.iter().zip(weights).map(|(a, b)| *a as f64 * *b as f64).sum();
                    exact.push(true_dot + bias[o] as f64);
                    // Rounding moves each input by at most half its step (scale / 2), so the error
                    // of every output is bounded, whatever its size.
                    let (dx, dw) = (x_scale as f64 / 2.0, *w_scale as f64 / 2.0);
                    let bound: f64 = row.iter().zip(weights).map(|(a, b)| (*a as f64).abs() * dw + (*b as f64).abs() * dx + dx * dw).sum();
                    let error = (got[r * out_dim + o] as f64 - exact.last().unwrap()).abs();
                    assert!(error <= bound * 1.001 + 1e-5, "{rows}x{in_dim} by {out_dim}, output {r},{o}: error {error:e} above its bound {bound:e}");
                }
            }
            let arithmetic = relative_error(&got, &emulated);
            let quantization = relative_error(&got, &exact);
            eprintln!("{rows}x{in_dim} by {out_dim}: vs emulation {arithmetic:.1e}, vs f64 {quantization:.1e}");
            // Per-channel and per-row int8 of Gaussian values: about 1% each over many outputs (a
            // handful of outputs can sit near zero, so this is checked only where there are many).
            if rows * out_dim >= 100 {
                assert!(quantization < 4e-2, "{rows}x{in_dim} by {out_dim}: int8 error {quantization:e}");
            }
        }
    }

    /// One byte per weight (plus a scale and a sum per output channel) once the panels are full.
    #[test]
    fn int8_weights_take_one_byte_each() {
        let packed = PackedInt8::quantize(&vec![0.5f32; 96 * 64], 96, 64);
        assert_eq!(packed.bytes(), 96 * 64 + 8 * 96);
    }
}
