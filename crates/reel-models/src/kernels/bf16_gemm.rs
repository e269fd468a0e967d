//! bf16 matrix products on x86 CPUs with AVX-512 BF16 (`vdpbf16ps`): `x · Wᵀ (+ bias)` for a
//! linear layer whose weight `W` (out, in) is packed once, when the layer is built, as pairs of
//! bf16 in the layout of [`super::panels`]. Sums stay in f32 until the bias is added (and the
//! activation applied); the result is rounded to bf16 once, as torch's oneDNN path rounds it.

use half::bf16;

use super::elementwise::{gelu_tanh_in_place, Finished};
use super::panels::{supports, with_row, Instruction, Panels};

/// Whether this CPU runs [`PackedBf16::matmul`].
pub fn available() -> bool {
    supports(Instruction::Bf16Pairs)
}

/// A weight matrix (out, in) in the kernel's layout.
#[derive(Debug, Clone)]
pub struct PackedBf16 {
    in_dim: usize,
    panels: Panels,
}

impl PackedBf16 {
    /// Packs a row-major (out_dim, in_dim) matrix.
    pub fn pack(weight: &[bf16], out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(weight.len(), out_dim * in_dim, "weight of {} values is not {out_dim} x {in_dim}", weight.len());
        let panels = Panels::pack(out_dim, in_dim.div_ceil(2), |column, pair| {
            let row = &weight[column * in_dim..][..in_dim];
            let low = row[2 * pair].to_bits() as u32;
            let high = row.get(2 * pair + 1).map_or(0, |v| v.to_bits() as u32);
            low | (high << 16)
        });
        Self { in_dim, panels }
    }

    /// Bytes held by the packed weight.
    pub fn bytes(&self) -> usize {
        self.panels.bytes()
    }

    /// `activation(x · Wᵀ + bias)` for `x` row-major (rows, in_dim), in f32 or rounded once to
    /// bf16 (`T`). Panics when [`available`] is false.
    pub fn matmul<T: Finished>(&self, x: &[bf16], rows: usize, bias: Option<&[f32]>, activation: Activation) -> Vec<T> {
        assert_eq!(x.len(), rows * self.in_dim, "input of {} values is not {rows} x {}", x.len(), self.in_dim);
        // Rows are read as u32 pairs: an odd input width is padded so that every row starts on a pair.
        let padded;
        let x = if self.in_dim % 2 == 1 {
            padded = pad_rows(x, rows, self.in_dim);
            padded.as_slice()
        } else {
            x
        };
        // SAFETY: two bf16 (u16) make one u32 group; the length is even (padded above).
        let groups = unsafe { std::slice::from_raw_parts(x.as_ptr() as *const u32, x.len() / 2) };
        self.panels.product(Instruction::Bf16Pairs, groups, rows, |_, sums, dst| {
            with_row(sums.iter().map(|s| f32::from_bits(*s)), |row| {
                finish_row(row, bias, activation);
                T::store(row, dst);
            })
        })
    }
}

/// Adds the bias and applies the activation to one output row's f32 values.
pub fn finish_row(row: &mut [f32], bias: Option<&[f32]>, activation: Activation) {
    if let Some(bias) = bias {
        assert_eq!(bias.len(), row.len(), "bias of {} values for {} outputs", bias.len(), row.len());
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
    if activation == Activation::GeluTanh {
        gelu_tanh_in_place(row);
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
    for row in x.chunks(in_dim).take(rows) {
        padded.extend_from_slice(row);
        padded.push(bf16::ZERO);
    }
    padded
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

    #[test]
    fn bf16_weights_take_two_bytes_each() {
        assert_eq!(PackedBf16::pack(&vec![bf16::ONE; 96 * 64], 96, 64).bytes(), 96 * 64 * 2);
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
            let sums = packed.matmul::<f32>(&x, rows, bias.as_deref(), Activation::None);
            let f32_error = relative_error(sums.iter().map(|v| *v as f64), &want);
            eprintln!("{rows}x{in_dim} by {out_dim}: f32 {f32_error:.1e}");
            assert!(f32_error < 1e-6, "{rows}x{in_dim} by {out_dim}: f32 sums off by {f32_error:e}");
            let rounded: Vec<bf16> = packed.matmul(&x, rows, bias.as_deref(), Activation::None);
            let bf16_error = relative_error(rounded.iter().map(|v| v.to_f64()), &want);
            assert!(bf16_error < 4e-3, "{rows}x{in_dim} by {out_dim}: bf16 output off by {bf16_error:e}");

            // The epilogue against f64 GELU of the kernel's own f32 sums (checked above), written
            // as v / (1 + exp(-2u)), which equals 0.5 v (1 + tanh u) without its cancellation in
            // the negative tail.
            let gelu = |v: f64| v / (1.0 + (-2.0 * (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).exp());
            let want_gelu: Vec<f64> = sums.iter().map(|v| gelu(*v as f64)).collect();
            let fused = packed.matmul::<f32>(&x, rows, bias.as_deref(), Activation::GeluTanh);
            let gelu_error = relative_error(fused.iter().map(|v| *v as f64), &want_gelu);
            // f32 GELU is good to about 1e-5 relative deep in its negative tail (the rounding of u
            // grows with |u| there, in torch's f32 GELU too) and to 1e-7 elsewhere.
            assert!(gelu_error < 5e-5, "{rows}x{in_dim} by {out_dim}: GELU epilogue off by {gelu_error:e}");
        }
    }
}
