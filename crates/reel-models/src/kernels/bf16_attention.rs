//! Softmax attention for bf16 queries, keys and values on the packed bf16 kernel: per head, the
//! keys and the transposed values are packed as the "weights" of two products (scores = q kᵀ,
//! out = p v), scores and softmax in f32, probabilities rounded to bf16 for the second product.
//! Heads run in parallel; queries go in chunks so that each head's f32 scores stay under a budget
//! whatever the sequence length.

use half::bf16;
use rayon::prelude::*;

use super::elementwise::{round_to_bf16, softmax_in_place};
use super::bf16_gemm::{Activation, PackedBf16};

/// Upper bound for one head's chunk of f32 scores, in bytes.
const SCORE_BUDGET_BYTES: usize = 32 << 20;

/// Shapes of an attention call: `heads` independent (batch x head) problems.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub heads: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub head_dim: usize,
}

/// `softmax(scale q kᵀ + bias) v` for row-major `q` (heads, q_len, d), `k`, `v` (heads, kv_len, d);
/// `bias`, if any, is f32 (heads, q_len, kv_len), added to the scaled scores.
/// Returns (heads, q_len, d) in bf16. Panics when the packed kernel is unavailable.
pub fn attention(
    q: &[bf16],
    k: &[bf16],
    v: &[bf16],
    shape: AttentionShape,
    scale: f32,
    bias: Option<&[f32]>,
) -> Vec<bf16> {
    let AttentionShape { heads, q_len, kv_len, head_dim } = shape;
    assert_eq!(q.len(), heads * q_len * head_dim, "queries are not {heads} x {q_len} x {head_dim}");
    assert_eq!(k.len(), heads * kv_len * head_dim, "keys are not {heads} x {kv_len} x {head_dim}");
    assert_eq!(v.len(), heads * kv_len * head_dim, "values are not {heads} x {kv_len} x {head_dim}");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), heads * q_len * kv_len, "attention bias is not {heads} x {q_len} x {kv_len}");
    }
    let chunk = (SCORE_BUDGET_BYTES / (4 * kv_len.max(1))).clamp(1, q_len.max(1));
    let mut out = vec![bf16::ZERO; heads * q_len * head_dim];
    out.par_chunks_mut(q_len * head_dim).enumerate().for_each(|(head, out)| {
        let keys = PackedBf16::pack(&k[head * kv_len * head_dim..][..kv_len * head_dim], kv_len, head_dim);
        let values = &v[head * kv_len * head_dim..][..kv_len * head_dim];
        let mut transposed = vec![bf16::ZERO; kv_len * head_dim];
        for (i, row) in values.chunks(head_dim).enumerate() {
            for (j, value) in row.iter().enumerate() {
                transposed[j * kv_len + i] = *value;
            }
        }
        let values_t = PackedBf16::pack(&transposed, head_dim, kv_len);
        let queries = &q[head * q_len * head_dim..][..q_len * head_dim];
        for start in (0..q_len).step_by(chunk) {
            let rows = chunk.min(q_len - start);
            let mut scores = keys.matmul::<f32>(&queries[start * head_dim..][..rows * head_dim], rows, None, Activation::None);
            let mut probs = vec![bf16::ZERO; rows * kv_len];
            for (i, (row, dst)) in scores.chunks_mut(kv_len).zip(probs.chunks_mut(kv_len)).enumerate() {
                row.iter_mut().for_each(|s| *s *= scale);
                if let Some(bias) = bias {
                    row.iter_mut().zip(&bias[(head * q_len + start + i) * kv_len..][..kv_len]).for_each(|(s, b)| *s += b);
                }
                softmax_in_place(row);
                round_to_bf16(row, dst);
            }
            let chunk_out: Vec<bf16> = values_t.matmul(&probs, rows, None, Activation::None);
            out[start * head_dim..][..rows * head_dim].copy_from_slice(&chunk_out);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f64 attention over the same bf16 inputs.
    fn reference(q: &[bf16], k: &[bf16], v: &[bf16], shape: AttentionShape, scale: f64, bias: Option<&[f32]>) -> Vec<f64> {
        let AttentionShape { heads, q_len, kv_len, head_dim: d } = shape;
        let mut out = vec![0f64; heads * q_len * d];
        for h in 0..heads {
            for i in 0..q_len {
                let scores: Vec<f64> = (0..kv_len)
                    .map(|j| {
                        let dot: f64 = (0..d).map(|c| q[(h * q_len + i) * d + c].to_f64() * k[(h * kv_len + j) * d + c].to_f64()).sum();
                        dot * scale + bias.map_or(0.0, |b| b[(h * q_len + i) * kv_len + j] as f64)
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::MIN, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                for c in 0..d {
                    out[(h * q_len + i) * d + c] = (0..kv_len).map(|j| weights[j] / sum * v[(h * kv_len + j) * d + c].to_f64()).sum();
                }
            }
        }
        out
    }

    #[test]
    fn matches_f64_attention() {
        if !crate::kernels::bf16_gemm::available() {
            eprintln!("this CPU has no AVX-512 BF16: attention never takes this path here");
            return;
        }
        let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
        eprintln!("seed {seed}");
        let mut random = |len: usize, spread: f64| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (((seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * spread) as f32
                })
                .collect()
        };
        for (heads, q_len, kv_len, head_dim, with_bias) in [(1, 1, 1, 2, false), (3, 17, 45, 13, true), (2, 130, 77, 64, false), (4, 33, 512, 128, true)] {
            let shape = AttentionShape { heads, q_len, kv_len, head_dim };
            let to_bf16 = |values: Vec<f32>| values.into_iter().map(bf16::from_f32).collect::<Vec<_>>();
            let q = to_bf16(random(heads * q_len * head_dim, 2.0));
            let k = to_bf16(random(heads * kv_len * head_dim, 2.0));
            let v = to_bf16(random(heads * kv_len * head_dim, 1.0));
            let bias = with_bias.then(|| random(heads * q_len * kv_len, 3.0));
            let scale = 1.0 / (head_dim as f64).sqrt();
            let want = reference(&q, &k, &v, shape, scale, bias.as_deref());
            let got = attention(&q, &k, &v, shape, scale as f32, bias.as_deref());
            let (mut diff, mut norm) = (0f64, 0f64);
            for (g, w) in got.iter().zip(&want) {
                diff += (g.to_f64() - w).powi(2);
                norm += w * w;
            }
            let error = (diff / norm).sqrt();
            eprintln!("{heads} heads {q_len}x{kv_len}x{head_dim}: {error:.1e}");
            // Probabilities and outputs are rounded to bf16 (8 bits of mantissa).
            assert!(error < 1e-2, "{heads} heads {q_len}x{kv_len}x{head_dim}: off by {error:e}");
        }
    }
}
